"""The run record: ``run.json``'s step records, the HTML renders, the report, closing the evidence, and
the summary printed at the end.

:class:`RunRecorder` keeps one record per step (``name``, ``title``, ``notebook``, ``engine`` — the
engine that ran it, :mod:`.engines` —, ``status``, times, ``facts``, ``error``) and writes them to
``run.json`` as they change; :meth:`RunRecorder.close` waits for the background renders, writes the
auditor's report and finalizes the evidence (:func:`opslib.evidence.finalize_run`): a finalized
``run.json`` is never written again.
"""

from __future__ import annotations

import errno
import getpass
import hashlib
import json
import os
import sys
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import evidence
from ..errors import EvidenceError, StepFailed, UsageError
from ..evidence.report import write_report
from ..text import escape_lines, escape_text
from ..winrm.transcript import channels, cleartext_acceptances
from .chores import connection_state, left_on_server, size_only_checks
from .steps import Step


def now_utc() -> datetime:
    return datetime.now(UTC)


def iso_utc(moment: datetime) -> str:
    """``2026-11-26T19:45:00Z`` (seconds, UTC), as run.json writes times."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def operator() -> str:
    """Who runs the kit (run.json's ``operator``, the server lock's holder)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"


def read_manifest(folder: Path) -> dict[str, Any]:
    """A run folder's ``run.json`` (:class:`UsageError` when there is none or it cannot be read)."""
    path = folder / "run.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{folder}: no run.json here; give the run folder of an earlier run") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot read it ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: not a run manifest")
    return data


def link(root: Path, run_id: str) -> dict[str, Any]:
    """``{run_id, run_json_sha256}`` of a run of ``root`` as it is now (the hash None when it is missing)."""
    path = root / run_id / "run.json"
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    return {"run_id": run_id, "run_json_sha256": digest}


class RunFailed(StepFailed):
    """A step failed and the run's evidence is closed; ``recovery`` holds the operator's last lines
    (what production serves now, what changed so far, the exact next command)."""

    def __init__(self, failure: StepFailed, recovery: Sequence[str]) -> None:
        super().__init__(failure.step, failure.notebook, failure.cause, cell=failure.cell, hint=failure.hint)
        self.recovery = tuple(recovery)


@dataclass
class RunRecorder:
    """The step records of one run folder, kept in ``run.json`` as they change, and its closing."""

    run_dir: Path
    steps: list[dict[str, Any]] = field(default_factory=list)
    renders: list[Future[None]] = field(default_factory=list)  # waited for before finalizing
    # evidence.hmac_key: every write of the unfinished run.json is signed (progress_hmac), so that a
    # resume can tell the runner's writes from anyone else's (evidence.verify_for_resume).
    hmac_key: bytes | None = field(default=None, repr=False)
    # The first write that failed (disk full, read-only): the run stops there, with one message.
    write_failed: EvidenceError | None = None

    def write(self, **fields: Any) -> None:
        """Update run.json (signed with the run's key when one is set): the runner's one writer. A
        failed write raises :class:`EvidenceError` (:func:`write_failure`) and stops the run."""
        try:
            evidence.update_run(self.run_dir, hmac_key=self.hmac_key, **fields)
        except OSError as exc:
            self.write_failed = self.write_failed or write_failure(self.run_dir, exc)
            raise self.write_failed from None

    def open_step(self, step: Step, *, engine: str) -> dict[str, Any]:
        """A new record for ``step`` (status ``running``), written to run.json at once."""
        record: dict[str, Any] = {
            "name": step.name,
            "title": step.title,  # Japanese / English, as the console and the renders show it
            "notebook": "" if step.in_process else step.notebook,
            "engine": engine,  # what ran it: kernel | inprocess | runner (never claims a kernel that did not run)
            "status": "running",
            "started_utc": iso_utc(now_utc()),
            "finished_utc": None,
            "duration_s": None,
            "facts": {},
            "error": None,
        }
        self.steps.append(record)
        self.write(steps=self.steps)
        return record

    def end_step(self, record: dict[str, Any], *, duration_s: float) -> None:
        record.update(finished_utc=iso_utc(now_utc()), duration_s=round(duration_s, 3))

    def step_failed(self, record: dict[str, Any], error: StepFailed, *, step: str) -> None:
        record.update(status="failed", error=str(error))
        if error.server_changed is not None:
            record["server_changed"] = error.server_changed  # false: refused before any change
        self.write(steps=self.steps, failed_step=step)

    def step_succeeded(
        self, record: dict[str, Any], facts: dict[str, Any], *, all_facts: dict[str, Any]
    ) -> None:
        record.update(status="succeeded", facts=facts)
        self.write(steps=self.steps, facts=all_facts)

    def stop_running(self, error: str | None) -> None:
        """A step still running as the run closes (the runner itself was stopped) failed."""
        for record in self.steps:
            if record.get("status") == "running":
                record.update(status="failed", error=error)

    def failed_step(self) -> str | None:
        """The last step recorded as failed (None when none failed)."""
        return next((r["name"] for r in reversed(self.steps) if r.get("status") == "failed"), None)

    def wait_for_renders(self) -> None:
        for future in self.renders:
            future.result()

    def close(
        self,
        *,
        status: str,
        error: str | None,
        failed_step: str | None,
        facts: dict[str, Any],
        hmac_key: bytes | None,
        extra: dict[str, Any],
    ) -> None:
        """Close the evidence: the last fields of run.json, the report, the file hashes (finalized).

        After a failed write (:attr:`write_failed`) a second failure here is not reported again: the
        evidence stays unfinished, and ``opslib resume`` closes it once the disk is back."""
        try:
            self._close(
                status=status,
                error=error,
                failed_step=failed_step,
                facts=facts,
                hmac_key=hmac_key,
                extra=extra,
            )
        except (OSError, EvidenceError) as exc:
            if self.write_failed is not None:
                return
            self.write_failed = exc if isinstance(exc, EvidenceError) else write_failure(self.run_dir, exc)
            raise self.write_failed from None

    def _close(
        self,
        *,
        status: str,
        error: str | None,
        failed_step: str | None,
        facts: dict[str, Any],
        hmac_key: bytes | None,
        extra: dict[str, Any],
    ) -> None:
        transcript = self.run_dir / "transcript.jsonl"
        self.write(
            status=status,
            error=error,
            failed_step=failed_step if status == "failed" else None,
            finished_utc=iso_utc(now_utc()),
            steps=self.steps,
            facts=facts,
            **extra,
            channels=channels(transcript),  # what each connection ran over (TLS version, cipher, sealing)
            cleartext_secrets_accepted=cleartext_acceptances(transcript),
            left_on_server=left_on_server(self.run_dir, facts),  # read back, or named here
            size_only_checks=size_only_checks(self.run_dir),  # no silent downgrade (W-CERTUTIL-HASHFILE)
            server_has_sha256=connection_state(self.run_dir).get("hashfile_sha256"),  # None: never asked
        )
        write_run_report(self.run_dir)  # before finalizing: run.json's file hashes cover it
        evidence.finalize_run(self.run_dir, now_utc=now_utc(), hmac_key=hmac_key)


# What a full or read-only evidence disk raises (a notebook or render written by an engine): one message.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EIO})


def write_failure(run_dir: Path, exc: OSError) -> EvidenceError:
    """The one message of a run whose evidence folder cannot be written (disk full, read-only)."""
    why = os.strerror(exc.errno) if exc.errno else type(exc).__name__
    return EvidenceError(
        str(run_dir),
        f"cannot write the evidence ({why}): the run stopped before its next change",
        hint="the server's lock is released and the run's temp folder removed on the way out; free space "
        f"(or make the folder writable), then continue: opslib resume {run_dir}",
    )


def write_run_report(run_dir: Path) -> None:
    """The auditor's report (``report.html``, :mod:`opslib.evidence.report`); a failure to write it
    never stops the evidence from being finalized."""
    try:
        write_report(run_dir, before_finalizing=True)
    except Exception as exc:  # the report is a reading aid; the notebooks and run.json are the evidence
        print(
            escape_text(f"opslib: could not write the report ({type(exc).__name__}: {exc})"), file=sys.stderr
        )


def summarize(run_dir: str | os.PathLike[str]) -> str:
    """A short text summary of a run: steps with status and duration, the key facts."""
    m = read_manifest(Path(run_dir))
    facts = m.get("facts") or {}
    mode = str(m.get("mode") or "")
    kind = " (dry run)" if m.get("dry_run") else (f" ({mode})" if mode in ("resume", "rollback") else "")
    lines = [f"run {m.get('run_id', Path(run_dir).name)}: {m.get('status')}{kind}"]
    resumed = m.get("resumes") if isinstance(m.get("resumes"), dict) else None
    if resumed:
        carried = ", ".join(resumed.get("steps") or []) or "none"
        lines.append(f"  resumes run {resumed.get('run_id')} (steps done there: {carried})")
    for s in m.get("steps", []):
        duration = s.get("duration_s")
        took = f"{duration:6.1f} s" if isinstance(duration, int | float) else "      -"
        lines.append(f"  {s.get('name', '?'):<26} {s.get('status', '?'):<10} {took}")
    if facts.get("restored_thumbprint"):
        lines.append(
            f"  certificate put back: {facts['restored_thumbprint']} (until {facts.get('restored_not_after_utc') or '?'})"
            f", taken off: {facts.get('replaced_thumbprint') or '?'}"
        )
    if facts.get("roots_restored"):
        lines.append(
            f"  roots re-enabled: {', '.join(str(r.get('target')) for r in facts['roots_restored'])}"
        )
    if facts.get("old_thumbprint") or facts.get("new_thumbprint"):
        old = facts.get("old_thumbprint") or facts.get("production_thumbprint_before") or "?"
        until = facts.get("old_not_after_utc") or facts.get("production_not_after_utc_before") or "?"
        lines.append(
            f"  certificate: {old} (until {until})"
            f"\n            → {facts.get('new_thumbprint', '?')} (until {facts.get('new_not_after_utc', '?')})"
        )
    if facts.get("backup_file"):
        lines.append(f"  backup: {facts['backup_file']} (sha256 {facts.get('backup_sha256', '?')})")
    lines += [f"  STILL ON THE SERVER: {advice}" for advice in left_on_server(Path(run_dir), facts)]
    lines += [f"  CHECKED BY SIZE ONLY: {line}" for line in size_only_checks(Path(run_dir))]
    if m.get("error"):  # the message itself is printed once, by the command line's error line
        where = f"step {m['failed_step']}" if m.get("failed_step") else "the run"
        lines.append(f"  failed: {where} — the error and what to do next follow")
    lines.append(f"  evidence: {Path(run_dir).resolve()}")
    # Certificate, server and file-name text: control characters escaped line by line.
    return "\n".join(printable(part) for line in lines for part in line.split("\n"))


def printable(line: str) -> str:
    """One console line with every control character escaped (:func:`opslib.text.escape_lines`)."""
    return escape_lines(line)
