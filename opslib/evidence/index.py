"""Reading runs back: :func:`scan` a root, :func:`load_runs` (one row per run, from ``run.json``
files only), :func:`select_runs`, :func:`load_run` → :class:`RunRecord`, :func:`run_summary`, and the
chain link to the previous run (:func:`previous_run`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import winerror
from ..credentials import redact
from ..errors import EvidenceError, UsageError
from .heads import finalized_entries, read_heads
from .manifest import (
    RUN_JSON,
    STATUSES,
    TRANSCRIPT,
    UNREADABLE,
    UNSEALED_DIR,
    is_finalized,
    parse_utc,
    read_run_json,
)

if TYPE_CHECKING:
    import pandas as pd


RUN_COLUMNS = (
    "run_id",
    "host",
    "site",
    "operator",
    "started_utc",
    "finished_utc",
    "status",
    "failed_step",
    "dry_run",
    "mode",
    "nonzero_exits",
    "probe_nonzero_exits",
    "old_thumbprint",
    "old_not_after_utc",
    "new_thumbprint",
    "new_not_after_utc",
    "serving_thumbprint",
    "serving_not_after_utc",
    "backup_sha256",
    "kit_version",
    "path",
)
_DATETIME_COLUMNS = (
    "started_utc",
    "finished_utc",
    "old_not_after_utc",
    "new_not_after_utc",
    "serving_not_after_utc",
)


# --- reading ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScanEntry:
    """One folder of a root as scanned: its name, path, raw run.json bytes and parsed manifest."""

    name: str
    path: str
    raw: bytes = b""
    doc: dict[str, Any] | None = None
    problem: str = ""

    @property
    def run_id(self) -> str:
        return str(self.doc.get("run_id")) if self.doc else self.name


def scan(root: str | os.PathLike[str]) -> list[ScanEntry]:
    """Every run folder of ``root`` (folders holding a run.json), sorted by name. Fast: scandir + json."""
    entries: list[ScanEntry] = []
    try:
        it = os.scandir(root)
    except FileNotFoundError:
        raise EvidenceError(
            str(root),
            "no such evidence root",
            hint="pass --root DIR (runs are written to ./evidence by default)",
        ) from None
    except NotADirectoryError:
        raise EvidenceError(str(root), "not a folder", hint="pass the evidence root folder") from None
    with it:
        for item in it:
            if item.name.startswith(".") or not item.is_dir():
                continue
            try:
                with open(os.path.join(item.path, RUN_JSON), "rb") as fh:
                    raw = fh.read()
            except (FileNotFoundError, NotADirectoryError):
                continue  # not a run folder
            except OSError as exc:
                entries.append(
                    ScanEntry(item.name, item.path, problem=f"run.json unreadable ({exc.strerror})")
                )
                continue
            try:
                doc = json.loads(raw)
            except ValueError as exc:
                entries.append(
                    ScanEntry(item.name, item.path, raw, problem=f"run.json is not valid JSON ({exc})")
                )
                continue
            if not isinstance(doc, dict) or not isinstance(doc.get("run_id"), str):
                entries.append(ScanEntry(item.name, item.path, raw, problem="run.json is not a run manifest"))
                continue
            entries.append(ScanEntry(item.name, item.path, raw, doc))
    entries.sort(key=lambda e: e.name)
    return entries


def _row(entry: ScanEntry, docs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    doc = entry.doc
    if doc is None:
        row: dict[str, Any] = dict.fromkeys(RUN_COLUMNS)
        row.update(run_id=entry.name, status=UNREADABLE, path=entry.path)
        return row
    raw_facts = doc.get("facts")
    facts: dict[str, Any] = raw_facts if isinstance(raw_facts, dict) else {}
    raw_commands = doc.get("commands")
    commands: dict[str, Any] = raw_commands if isinstance(raw_commands, dict) else {}
    return {
        "run_id": doc.get("run_id"),
        "host": doc.get("host"),
        "site": doc.get("site"),
        "operator": doc.get("operator"),
        "started_utc": doc.get("started_utc"),
        "finished_utc": doc.get("finished_utc"),
        "status": doc.get("status"),
        "failed_step": doc.get("failed_step"),
        "dry_run": bool(doc.get("dry_run")),
        "mode": run_mode(doc),
        "nonzero_exits": commands.get("nonzero_exits"),
        "probe_nonzero_exits": commands.get("probe_nonzero_exits"),
        **certificates(doc, undone=docs.get(_link_id(doc.get("rolls_back")) or "")),
        "backup_sha256": facts.get("backup_sha256"),
        "kit_version": doc.get("kit_version"),
        "path": entry.path,
    }


MODES = ("renew", "dry run", "rollback", "resume")


def run_mode(doc: Mapping[str, Any]) -> str:
    """What kind of run: ``renew``, ``dry run``, ``rollback`` or ``resume`` (a dry run's resume: ``resume``).

    From run.json's ``mode`` (written by the runner since resumes became runs of their own), else from
    its parameters' mode (older runs).
    """
    mode = str(doc.get("mode") or "")
    if not mode:
        parameters = doc.get("parameters")
        mode = str(parameters.get("mode") or "") if isinstance(parameters, dict) else ""
    if mode == "resume":
        return "resume"
    if mode == "rollback":
        return "rollback"
    return "dry run" if doc.get("dry_run") else "renew"


def _facts(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    facts = doc.get("facts")
    return facts if isinstance(facts, Mapping) else {}


def _rollback_section(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    parameters = doc.get("parameters")
    section = parameters.get("rollback") if isinstance(parameters, Mapping) else None
    return section if isinstance(section, Mapping) else {}


_KNOWN_EXPIRIES = (
    ("new_thumbprint", "new_not_after_utc"),
    ("old_thumbprint", "old_not_after_utc"),
    ("production_thumbprint_before", "production_not_after_utc_before"),
    ("restored_thumbprint", "restored_not_after_utc"),
)


def _expiry_in(facts: Mapping[str, Any], thumbprint: Any) -> Any:
    """The expiry a run recorded for ``thumbprint`` (None when it recorded none)."""
    wanted = str(thumbprint or "").upper()
    for thumb_key, after_key in _KNOWN_EXPIRIES:
        if wanted and str(facts.get(thumb_key) or "").upper() == wanted and facts.get(after_key):
            return facts.get(after_key)
    return None


def certificates(doc: Mapping[str, Any], *, undone: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A run's certificates as a reviewer reads them (``evidence list/show``, the review notebook):

    * ``old_*``: what production served before the run — step 2's record, else step 0's (a run that
      failed before the swap); for a rollback, the certificate it took off (``replaced_*``);
    * ``new_*``: the certificate the run put in service — the renewal's new certificate (installed by
      step 1, even when the run stopped before the swap); for a rollback, the one it put back (the
      expiry of the one it took off comes from ``undone``, the run.json of the run it rolls back);
    * ``serving_*``: what production serves after the run — the new certificate when the run succeeded
      for real, else what the run found after its failure (``production_now``: a read-only handshake or
      the last recorded fact), else the old certificate (a dry run, or an older run.json).
    """
    facts = _facts(doc)
    if run_mode(doc) == "rollback" or facts.get("restored_thumbprint"):
        section = _rollback_section(doc)
        old = facts.get("replaced_thumbprint") or section.get("replaced_thumbprint")
        old_after = _expiry_in(_facts(undone or {}), old)
        new = facts.get("restored_thumbprint") or section.get("old_thumbprint")
        new_after = facts.get("restored_not_after_utc") or section.get("old_not_after_utc")
    else:
        old = facts.get("old_thumbprint") or facts.get("production_thumbprint_before")
        old_after = facts.get("old_not_after_utc") or facts.get("production_not_after_utc_before")
        new, new_after = facts.get("new_thumbprint"), facts.get("new_not_after_utc")
    now = doc.get("production_now")
    if doc.get("status") == "succeeded" and not doc.get("dry_run") and new:
        serving, serving_after = new, new_after
    elif isinstance(now, Mapping) and now.get("thumbprint"):
        serving, serving_after = now.get("thumbprint"), now.get("not_after_utc")
    else:
        serving, serving_after = old, old_after
    return {
        "old_thumbprint": old or None,
        "old_not_after_utc": old_after or None,
        "new_thumbprint": new or None,
        "new_not_after_utc": new_after or None,
        "serving_thumbprint": serving or None,
        "serving_not_after_utc": serving_after or None,
    }


def load_runs(root: str | os.PathLike[str]) -> pd.DataFrame:
    """One row per run of ``root`` (columns :data:`RUN_COLUMNS`), oldest first, read from run.json
    files only; datetimes are tz-aware UTC. A run.json that cannot be read gives a row with status
    ``unreadable`` rather than disappearing."""
    import pandas as pd

    entries = scan(root)
    docs = {e.run_id: e.doc for e in entries if e.doc is not None}
    df = pd.DataFrame([_row(e, docs) for e in entries], columns=list(RUN_COLUMNS))
    for column in _DATETIME_COLUMNS:
        df[column] = pd.to_datetime(df[column], utc=True, format="ISO8601", errors="coerce")
    df["dry_run"] = df["dry_run"].fillna(False).astype(bool)
    return df.sort_values(["started_utc", "run_id"], na_position="first", kind="stable").reset_index(
        drop=True
    )


@dataclass(frozen=True, eq=False)
class RunRecord:
    """One run read back: its manifest, a per-step table and the transcript of remote commands."""

    path: Path
    run: dict[str, Any]
    steps: pd.DataFrame  # name, notebook, status, started_utc, finished_utc, duration_s, facts, error
    transcript: pd.DataFrame  # what, command, exit_code, duration_s (empty without transcript.jsonl)
    transcript_problems: tuple[str, ...] = field(default=())

    @property
    def run_id(self) -> str:
        return str(self.run.get("run_id"))

    @property
    def facts(self) -> dict[str, Any]:
        facts = self.run.get("facts")
        return dict(facts) if isinstance(facts, dict) else {}

    @property
    def renders(self) -> list[Path]:
        """The nbconvert HTML renders for reviewers (not what was regenerated after sealing)."""
        return sorted(
            p for p in self.path.rglob("*.html") if p.relative_to(self.path).parts[0] != UNSEALED_DIR
        )

    def transcript_summary(self) -> dict[str, Any]:
        """Commands run, how many exited non-zero — capability probes (whose non-zero exit is an answer,
        not a failure: :func:`is_probe`) counted apart — and the total time they took."""
        t = self.transcript
        return {
            "commands": len(t),
            "nonzero_exits": int(((t["exit_code"].fillna(0) != 0) & ~t["probe"]).sum()),
            "probe_nonzero_exits": int(((t["exit_code"].fillna(0) != 0) & t["probe"]).sum()),
            "total_duration_s": round(float(t["duration_s"].fillna(0).sum()), 3),
            "unreadable_lines": len(self.transcript_problems),
        }


_STEP_COLUMNS = ("name", "notebook", "status", "started_utc", "finished_utc", "duration_s", "facts", "error")
_TRANSCRIPT_COLUMNS = ("what", "command", "exit_code", "duration_s", "probe")


def is_probe(item: Mapping[str, Any]) -> bool:
    """A transcript record of a command whose non-zero exit is an expected answer: flagged by the
    transport (``probe`` / ``expected_nonzero``), or labelled with a question (``does certutil know
    -exportPFX?``, ``read … (does the key exist?)``) — the kit labels exactly its probes that way — and the
    transport's ``certutil -hashfile … SHA256`` answered NTE_BAD_ALGID (Server 2003 has no SHA-256 there)."""
    if item.get("probe") or item.get("expected_nonzero"):
        return True
    command = str(item.get("command_line") or "")
    if (
        command.lower().startswith("certutil -hashfile ")
        and winerror.hresult(int(item.get("exit_code") or 0)) == winerror.NTE_BAD_ALGID
    ):
        return True  # the transport's SHA-256 try on Server 2003 (NTE_BAD_ALGID): then size checks only
    what = str(item.get("what") or item.get("kind") or "")
    return what.rstrip(") ").endswith("?")


def load_run(path: str | os.PathLike[str]) -> RunRecord:
    """One run folder read back (manifest, steps, transcript)."""
    import pandas as pd

    run_dir = Path(path)
    doc = read_run_json(run_dir)
    steps = pd.DataFrame(
        [{c: s.get(c) for c in _STEP_COLUMNS} for s in doc.get("steps") or []], columns=list(_STEP_COLUMNS)
    )
    for column in ("started_utc", "finished_utc"):
        steps[column] = pd.to_datetime(steps[column], utc=True, format="ISO8601", errors="coerce")
    steps["duration_s"] = pd.to_numeric(steps["duration_s"], errors="coerce")
    rows, problems = _read_transcript(run_dir / TRANSCRIPT)
    transcript = pd.DataFrame(rows, columns=list(_TRANSCRIPT_COLUMNS))
    transcript["exit_code"] = pd.to_numeric(transcript["exit_code"], errors="coerce").astype("Int64")
    transcript["duration_s"] = pd.to_numeric(transcript["duration_s"], errors="coerce")
    transcript["probe"] = transcript["probe"].fillna(False).astype(bool)
    return RunRecord(run_dir, doc, steps, transcript, tuple(problems))


def _read_transcript(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """transcript.jsonl: one JSON object per remote command (written by the transport)."""
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return rows, problems
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            problems.append(f"{path.name} line {number}: not JSON")
            continue
        if not isinstance(item, dict):
            problems.append(f"{path.name} line {number}: not an object")
            continue
        if not any(k in item for k in ("command_line", "command", "argv", "upload", "download")):
            continue  # a channel or acceptance line: a fact about the connection, not a command
        command = item.get("command_line") or item.get("command")
        if not command and isinstance(item.get("argv"), list):
            command = " ".join(str(a) for a in item["argv"])
        rows.append(
            {
                "what": item.get("what") or item.get("kind") or "",
                "command": redact(str(command or "")),
                "exit_code": item.get("exit_code"),
                "duration_s": item.get("duration_s"),
                "probe": is_probe(item),
            }
        )
    # ``reg export KEY`` that fails, then "(does the key exist?)" answering no: the key is absent, an
    # answer the kit expects (opslib.server.remote.export_key), not a failure.
    for row, nxt in zip(rows, rows[1:], strict=False):
        if nxt["probe"] and nxt["what"] == f"{row['what']} (does the key exist?)" and nxt["exit_code"]:
            row["probe"] = True
    return rows, problems


def command_counts(transcript: Path) -> dict[str, int]:
    """``{commands, nonzero_exits, probe_nonzero_exits}`` of a transcript (written into run.json when
    the run is finalized, so that ``evidence list`` reads no transcript)."""
    rows, _ = _read_transcript(transcript)
    failed = [r for r in rows if r["exit_code"] not in (None, 0)]
    return {
        "commands": len(rows),
        "nonzero_exits": sum(1 for r in failed if not r["probe"]),
        "probe_nonzero_exits": sum(1 for r in failed if r["probe"]),
    }


def previous_run(run_dir: Path, doc: Mapping[str, Any]) -> dict[str, str] | None:
    """The chain link: the newest other finalized run of the same root that started before ``doc``.

    Where the root has a head record, a run counts as finalized only once its head entry is written
    with the hash of its run.json as it is now: a run that runs at the same time (a fleet) writes its
    status and finish time a while before it finalizes (its report comes in between), and a link to
    that unfinished run.json would break as soon as it finalizes."""
    started = parse_utc(doc.get("started_utc"))
    listed = finalized_entries(read_heads(run_dir.parent))
    candidates: list[tuple[dt.datetime, str, ScanEntry]] = []
    for entry in scan(run_dir.parent):
        if entry.doc is None or entry.run_id == doc["run_id"] or not is_finalized(entry.doc):
            continue
        if "commands" not in entry.doc and not entry.doc.get("files"):
            continue  # says succeeded/failed but finalize_run has not written it yet: see above
        head = listed.get(entry.run_id)
        if listed and (
            head is None
            or head.doc is None
            or head.doc.get("run_json_sha256") != hashlib.sha256(entry.raw).hexdigest()
        ):
            continue  # not finalized yet (or changed since): see above
        other = parse_utc(entry.doc.get("started_utc"))
        if started is not None and other is not None and other < started:
            candidates.append((other, entry.run_id, entry))
    if not candidates:
        return None
    best = max(candidates, key=lambda c: (c[0], c[1]))[2]
    return {"run_id": best.run_id, "run_json_sha256": hashlib.sha256(best.raw).hexdigest()}


def select_runs(
    df: pd.DataFrame,
    *,
    host: str | None = "",
    site: str | None = "",
    since: str | None = "",
    status: str | None = "",
) -> pd.DataFrame:
    """Rows of :func:`load_runs` matching every given filter (host and site case-insensitive, ``since``
    a UTC date ``YYYY-MM-DD`` or ISO datetime, ``status`` one of running/succeeded/failed/unreadable)."""
    import pandas as pd

    mask = pd.Series(True, index=df.index)
    if host:
        mask &= df["host"].fillna("").str.lower() == host.lower()
    if site:
        mask &= df["site"].fillna("").str.lower() == site.lower()
    if since:
        since_utc = _parse_since(since)
        mask &= df["started_utc"] >= pd.Timestamp(since_utc)
    if status:
        if status not in (*STATUSES, UNREADABLE):
            raise UsageError(f"--status {status!r}: expected one of {', '.join((*STATUSES, UNREADABLE))}")
        mask &= df["status"] == status
    return df[mask].reset_index(drop=True)


def _parse_since(since: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(since.strip())
    except ValueError:
        raise UsageError(f"--since {since!r}: expected a date such as 2026-11-01 (UTC)") from None
    return parsed.astimezone(dt.UTC) if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _link_id(link: Any) -> str | None:
    return str(link.get("run_id")) if isinstance(link, Mapping) and link.get("run_id") else None


def _undone(record: RunRecord) -> dict[str, Any] | None:
    """The run.json of the run a rollback rolls back (a folder of the same root), when readable."""
    run_id = _link_id(record.run.get("rolls_back"))
    if not run_id or "/" in run_id or "\\" in run_id or run_id.startswith("."):
        return None
    try:
        doc = json.loads((record.path.parent / run_id / RUN_JSON).read_bytes())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def run_summary(record: RunRecord) -> dict[str, Any]:
    """The facts a reviewer reads first about one run (used by ``show`` and the review notebook)."""
    run = record.run
    facts = record.facts
    started, finished = parse_utc(run.get("started_utc")), parse_utc(run.get("finished_utc"))
    previous = run.get("previous_run")
    link: dict[str, Any] = previous if isinstance(previous, dict) else {}
    return {
        "run_id": record.run_id,
        "path": os.fspath(record.path),
        "host": run.get("host"),
        "site": run.get("site"),
        "operator": run.get("operator"),
        "status": run.get("status"),
        "failed_step": run.get("failed_step"),
        "error": run.get("error"),
        "dry_run": bool(run.get("dry_run")),
        "mode": run_mode(run),
        "resumes": _link_id(run.get("resumes")),
        "rolls_back": _link_id(run.get("rolls_back")),
        "parameter_changes": list(run.get("parameter_changes") or []),
        "production_now": run.get("production_now"),
        "started_utc": run.get("started_utc"),
        "finished_utc": run.get("finished_utc"),
        "duration_s": round((finished - started).total_seconds(), 3) if started and finished else None,
        "kit_version": run.get("kit_version"),
        "tls_validation": run.get("tls_validation"),
        **certificates(run, undone=_undone(record)),
        "backup_file": facts.get("backup_file"),
        "backup_sha256": facts.get("backup_sha256"),
        "previous_run": link.get("run_id"),
        "signed": bool(run.get("hmac")),
        "files": len(run.get("files") or {}),
        "transcript": record.transcript_summary(),
        "renders": [p.relative_to(record.path).as_posix() for p in record.renders],
    }
