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


def request(a: argparse.Namespace) -> int:
    """``opslib request``: the run, then the CSR ready to paste and what to do when the CA's mail arrives."""
    from ..runbook import lineage

    root_before = set(lineage.run_folders(a.evidence_root))
    code = runbook.request(
        a.params,
        evidence_root=a.evidence_root,
        dry_run=a.dry_run,
        yes=a.yes,
        new_request=a.new_request,
        key_size=a.key_size,
        verbose=a.verbose,
        break_lock=a.break_lock,
    )
    new = [d for d in lineage.run_folders(a.evidence_root) if d not in root_before]
    if code == 0 and new and not a.dry_run:
        for line in lineage.paste_lines(new[-1], a.params):
            print(line)
    return code
