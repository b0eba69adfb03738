"""``opslib run|resume|rollback``: each command is one call of the runbook (which prints as it goes)."""

from __future__ import annotations

import argparse

from .. import runbook


def run(a: argparse.Namespace) -> int:
    return runbook.run(
        a.params,
        evidence_root=a.evidence_root,
        dry_run=a.dry_run,
        yes=a.yes,
        steps=a.steps,
        verbose=a.verbose,
        break_lock=a.break_lock,
        run_dir_file=a.run_dir_file,
    )


def resume(a: argparse.Namespace) -> int:
    return runbook.resume(
        a.run_dir,
        yes=a.yes,
        params_file=a.params,
        verbose=a.verbose,
        break_lock=a.break_lock,
        force_older=a.force_older,
    )


def rollback(a: argparse.Namespace) -> int:
    return runbook.rollback(
        a.run_dir,
        roots=a.roots,
        yes=a.yes,
        verbose=a.verbose,
        force_older=a.force_older,
        force_expired=a.force_expired,
    )
