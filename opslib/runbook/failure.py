"""After a failed run: the exact next command, and what production serves now.

:func:`advise` turns a step's failure into one whose hint is the exact next command (a rollback never
advises itself); :func:`recovery_lines` gives the operator's last lines (:func:`.console.failure_lines`)
and the :class:`.console.Serving` recorded as ``production_now``, from a read-only TLS handshake with
``verify.endpoint`` (:func:`serving_now`) or, when that fails, the facts recorded so far.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import certs, credentials, tls
from .. import params as params_
from ..errors import OpsError, StepFailed
from ..evidence import iso_utc
from . import console
from .steps import ALL_STEPS, RESTORE_ROOTS, Step


@dataclass(frozen=True)
class Situation:
    """A run at the moment it failed."""

    run_dir: Path
    params: params_.Parameters
    facts: Mapping[str, Any]
    done: Sequence[tuple[Step, Mapping[str, Any]]]  # the steps done (carried from a resumed run first)
    rollback: bool  # a rollback run: it never advises another rollback
    dry_run: bool
    yes: bool
    root_backups: Sequence[Path] = ()  # rollback --roots: the .reg files it imports
    # The failed step's record says ``server_changed: false``: its error was a refusal raised before
    # anything on the server changed (:func:`opslib.errors.raised_before_any_change`).
    refused_before_change: bool = False


def changed_nothing(situation: Situation, failed_step: str | None) -> bool:
    """True when the run (with the runs it resumes) changed nothing on the server: no step done
    changed anything, and the failed step either never changes the server or refused before doing so."""
    if situation.rollback:
        return False
    if situation.dry_run:
        return True  # a dry run never changes the server: correct the file and dry-run it again
    if console.changed_lines(situation.done, dry_run=False) != ["nothing on the server"]:
        return False
    failed = {s.name: s for s in (*ALL_STEPS, RESTORE_ROOTS)}.get(failed_step or "")
    return failed is None or not failed.changes_server or situation.refused_before_change


def advise(failure: StepFailed, situation: Situation) -> StepFailed:
    """The failure with the exact next command as its hint (a rollback's: by hand, never itself)."""
    if situation.rollback:
        cause = drop_rollback_advice(failure.cause)
        hint = "a rollback is not retried automatically: put it right by hand (see the lines below)"
    else:
        cause = failure.cause
        # The exact next commands are the "next" lines (recovery_lines): printed once, not here again.
        hint = f"{failure.hint + '; ' if failure.hint else ''}then see the next commands below"
    return StepFailed(
        failure.step,
        failure.notebook,
        cause,
        cell=failure.cell,
        hint=hint,
        server_changed=failure.server_changed,
    )


def drop_rollback_advice(cause: str) -> str:
    """A message's last " — …rollback…" advice cut off (a rollback's failure must not advise itself)."""
    head, sep, tail = cause.rpartition(" — ")
    return head if sep and "rollback" in tail else cause


def recovery_lines(situation: Situation, failed_step: str | None) -> tuple[list[str], console.Serving]:
    """The operator's last lines after a failure, and what production serves now."""
    steps = {s.name: s for s in (*ALL_STEPS, RESTORE_ROOTS)}
    done = [s.name for s, _ in situation.done]
    serving = serving_now(situation.params, situation.facts, done)
    changed = console.changed_lines(situation.done, dry_run=situation.dry_run)
    failed = steps.get(failed_step or "")
    if failed is not None and failed.changes_server and not situation.dry_run:
        where = "run.json" if failed.in_process else failed.notebook
        part = f"{failed.number}: failed; what it did before it stopped is in {situation.run_dir / where}"
        changed = [*(c for c in changed if c != "nothing on the server"), part]
    lines = console.failure_lines(
        run_id=situation.run_dir.name,
        failed=failed,
        serving=serving,
        changed=changed,
        next_commands=next_commands(situation, failed_step),
    )
    return lines, serving


def next_commands(situation: Situation, failed_step: str | None) -> list[str]:
    """What to type next: resume (or correct and resume), or undo; after a rollback: by hand."""
    run_dir, params, facts = situation.run_dir, situation.params, situation.facts
    if situation.rollback:
        old = facts.get("restored_thumbprint") or params.data.get("rollback", {}).get("old_thumbprint", "?")
        if failed_step == RESTORE_ROOTS.name:
            by_hand = (
                "re-enable the roots by hand: copy each of these files to the server and `reg import` it "
                "(or Certificates MMC → Trusted Root → Properties → Enable all purposes): "
                + ", ".join(str(p) for p in situation.root_backups)
            )
        else:
            by_hand = (
                f"or put certificate {old} back by hand: IIS Manager → site {params.site} → Directory "
                "Security → Server Certificate, then start the site"
            )
            # A failed rollback is undone by the kit (production serves what it served before, read
            # back): fixing the cause and running the same rollback again is safe (it is idempotent).
            undone = situation.run_dir.parent / str(params.data.get("rollback", {}).get("run_id", "RUN"))
            roots = " --roots" if situation.root_backups else ""
            again = f"opslib rollback {undone}{roots}{' --yes' if situation.yes else ''}"
            return [
                f"fix the cause (the error above), then run the rollback again: {again}",
                by_hand,
                f"check what is served: opslib inspect {params.get('verify.endpoint')}",
            ]
        return [by_hand, f"check what is served: opslib inspect {params.get('verify.endpoint')}"]
    yes = " --yes" if situation.yes else ""
    if changed_nothing(situation, failed_step):
        # Nothing to continue from and nothing to undo: the same parameters file, corrected, again.
        again = f"opslib run {params.source}{' --dry-run' if situation.dry_run else ''}{yes}"
        return [f"nothing changed on the server: correct the file and run again: {again}"]
    lines = [
        f"fix the cause, then continue: opslib resume {run_dir}{yes}",
        "a wrong parameter (verify.*, backup.*, winrm.*, forbidden_roots, warn_days): "
        f"opslib resume {run_dir} --params FIXED.yaml{yes}",
    ]
    swapped = (run_dir / "rollback.yaml").exists()
    disabled = bool(facts.get("forbidden_roots_disabled"))
    if not situation.dry_run and (swapped or disabled):
        roots = " --roots" if disabled else ""
        lines.append(f"or undo what changed: opslib rollback {run_dir}{roots}{yes}")
    return lines


def serving_now(params: params_.Parameters, facts: Mapping[str, Any], done: Sequence[str]) -> console.Serving:
    """What production serves now: a read-only TLS handshake with ``verify.endpoint`` (with SNI when
    ``verify.servername`` is set); the facts recorded so far when the handshake fails."""
    rollback = params.data.get("rollback") if params.mode == params_.ROLLBACK else None
    recorded = console.recorded_serving(params.site, facts, done, rollback=rollback)
    endpoint = str(params.get("verify.endpoint"))
    try:
        with_sni, without = tls.fetch_both(
            endpoint, servername=str(params.get("verify.servername") or "") or None, timeout_s=5
        )
    except OpsError as exc:
        return console.Serving(
            recorded.site,
            "",
            recorded.thumbprint,
            recorded.not_after_utc,
            recorded.source,
            unreachable=credentials.redact(str(exc)),
        )
    summary = certs.summarize((with_sni or without).leaf)
    return console.Serving(
        params.site,
        recorded.state if recorded.thumbprint == summary.thumbprint else "",
        summary.thumbprint,
        iso_utc(summary.not_after_utc),
        f"read-only TLS handshake with {endpoint} at {iso_utc(datetime.now(UTC).replace(microsecond=0))}",
    )
