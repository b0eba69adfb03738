"""Integrity: :func:`verify_run`, :func:`verify_root` → :class:`VerifyReport` listing :class:`Problem` s.

Recomputes the SHA-256 of every file, checks the HMAC where a key is given, and follows the chain of
``previous_run`` links across the runs of a root (an edited, added or removed file or run shows up).
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import hmac as hmac_
import itertools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import EvidenceError
from .index import ScanEntry, scan
from .manifest import RUN_JSON, UNREADABLE, hash_files, is_finalized, parse_utc, sign_hmac

if TYPE_CHECKING:
    pass


# --- integrity ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the evidence. ``path`` names the file (or run folder) concerned."""

    kind: str  # edited | added | missing | hmac | chain | unfinalized | unreadable | renamed
    path: str
    detail: str

    def line(self) -> str:
        return f"{self.path}: {self.kind}: {self.detail}"

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "path": self.path, "detail": self.detail}


@dataclass(frozen=True)
class VerifyReport:
    """The integrity result of one run folder: empty ``problems`` means every check passed."""

    run_id: str
    run_dir: str
    problems: tuple[Problem, ...]
    files_checked: int = 0
    hmac_checked: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "run_dir": self.run_dir,
            "ok": self.ok,
            "files_checked": self.files_checked,
            "hmac_checked": self.hmac_checked,
            "problems": [p.as_dict() for p in self.problems],
        }


def _short(digest: str) -> str:
    return f"{digest[:12]}…"


def _check_entry(entry: ScanEntry, *, hmac_key: bytes | None) -> tuple[list[Problem], int, bool]:
    """Files and HMAC of one run; returns (problems, files checked, hmac checked)."""
    run_json = os.path.join(entry.path, RUN_JSON)
    if entry.doc is None:
        return [Problem(UNREADABLE, run_json, f"{entry.problem}; restore it from your backup copy")], 0, False
    doc = entry.doc
    problems: list[Problem] = []
    if doc.get("run_id") != entry.name:
        problems.append(
            Problem(
                "renamed",
                entry.path,
                f"run.json belongs to run {doc.get('run_id')}, the folder is {entry.name}",
            )
        )
    if not is_finalized(doc):
        problems.append(
            Problem(
                "unfinalized",
                run_json,
                f"status {doc.get('status')!r} and no file hashes: the run is still in progress or was "
                "interrupted; finish it with `opslib resume` before relying on it",
            )
        )
        return problems, 0, False
    files = doc.get("files")
    recorded: dict[str, Any] = files if isinstance(files, dict) else {}
    actual = hash_files(Path(entry.path))
    for rel in sorted(recorded.keys() | actual.keys()):
        where = os.path.join(entry.path, *rel.split("/"))
        if rel not in actual:
            problems.append(Problem("missing", where, "listed in run.json but no longer in the folder"))
        elif rel not in recorded:
            problems.append(Problem("added", where, "in the folder but not listed in run.json"))
        elif recorded[rel] != actual[rel]:
            problems.append(
                Problem(
                    "edited",
                    where,
                    f"SHA-256 {_short(actual[rel])} differs from the {_short(str(recorded[rel]))} in run.json",
                )
            )
    hmac_checked = False
    if hmac_key:
        hmac_checked = True
        signed = doc.get("hmac")
        if not signed:
            problems.append(
                Problem("hmac", run_json, "no hmac in run.json (the run was finalized without a key)")
            )
        elif not hmac_.compare_digest(str(signed), sign_hmac(doc, hmac_key)):
            problems.append(
                Problem(
                    "hmac",
                    run_json,
                    "HMAC mismatch: run.json changed after it was signed, or the key is wrong",
                )
            )
    return problems, len(actual), hmac_checked


def _check_link(entry: ScanEntry, by_id: Mapping[str, ScanEntry], root: str) -> list[Problem]:
    """The chain link from ``entry`` back to its previous run."""
    link = entry.doc.get("previous_run") if entry.doc else None
    if not isinstance(link, dict):
        return []
    prev_id = str(link.get("run_id"))
    prev = by_id.get(prev_id)
    if prev is None:
        return [
            Problem(
                "chain",
                os.path.join(root, prev_id),
                f"run {entry.run_id} points back at this run, which no longer exists in {root or '.'} "
                "(a run was removed from the chain)",
            )
        ]
    actual = hashlib.sha256(prev.raw).hexdigest()
    recorded = str(link.get("run_json_sha256"))
    if actual != recorded:
        return [
            Problem(
                "chain",
                os.path.join(prev.path, RUN_JSON),
                f"SHA-256 {_short(actual)} differs from the {_short(recorded)} that the next run "
                f"{entry.run_id} recorded: this run.json changed after that run was finalized",
            )
        ]
    return []


def verify_run(run_dir: str | os.PathLike[str], *, hmac_key: bytes | None = None) -> VerifyReport:
    """Recompute one run's hashes: every edited, added or missing file, an HMAC mismatch (with a key),
    and the chain links into and out of this run (its previous run; later runs pointing at it)."""
    path = Path(run_dir)
    if not path.is_dir():
        raise EvidenceError(str(run_dir), "no such run folder", hint="give a folder made by `opslib run`")
    if not (path / RUN_JSON).exists():
        raise EvidenceError(str(path / RUN_JSON), "missing: this is not a run folder (no run.json)")
    real = path.resolve()
    given = os.path.normpath(os.fspath(run_dir))
    # Name files as the user named the folder; "." (inside a run folder) falls back to absolute paths.
    root = os.path.dirname(given) if os.path.basename(given) == real.name else os.fspath(real.parent)
    entries = [
        ScanEntry(e.name, os.path.join(root, e.name), e.raw, e.doc, e.problem) for e in scan(real.parent)
    ]
    entry = next((e for e in entries if e.name == real.name), None)
    if entry is None:  # the folder vanished between the checks above and the scan
        raise EvidenceError(str(run_dir), "the run folder disappeared while it was being verified")
    problems, files_checked, hmac_checked = _check_entry(entry, hmac_key=hmac_key)
    by_id = {e.run_id: e for e in entries}  # unreadable ones too, by folder name
    problems += _check_link(entry, by_id, root)
    for later in entries:
        link = later.doc.get("previous_run") if later.doc else None
        if isinstance(link, dict) and link.get("run_id") == entry.run_id and later.name != entry.name:
            problems += _check_link(later, {entry.run_id: entry}, root)
    return VerifyReport(entry.run_id, entry.path, tuple(problems), files_checked, hmac_checked)


def verify_root(root: str | os.PathLike[str], *, hmac_key: bytes | None = None) -> list[VerifyReport]:
    """:func:`verify_run` for every run of ``root`` plus every break in the chain: a previous run that
    no longer exists (a removed run), a previous run.json that changed, and a run that starts a new
    chain although an earlier run had been finalized before it."""
    root_s = os.fspath(root)
    entries = scan(root)
    by_id = {e.run_id: e for e in entries}  # unreadable ones too, by folder name
    # For the cut-chain check: finalized runs by start time, with the earliest finish among those so far.
    finalized = sorted(
        (started, finished, e.run_id)
        for e in entries
        if e.doc is not None and is_finalized(e.doc)
        for started, finished in [
            (parse_utc(e.doc.get("started_utc")), parse_utc(e.doc.get("finished_utc")))
        ]
        if started is not None and finished is not None
    )
    starts = [f[0] for f in finalized]
    first_finished: list[tuple[dt.datetime, str]] = list(
        itertools.accumulate(((f[1], f[2]) for f in finalized), min)
    )
    reports: list[VerifyReport] = []
    for entry in entries:
        problems, files_checked, hmac_checked = _check_entry(entry, hmac_key=hmac_key)
        problems += _check_link(entry, by_id, root_s)
        doc = entry.doc
        if doc is not None and is_finalized(doc) and doc.get("previous_run") is None:
            started, finished = parse_utc(doc.get("started_utc")), parse_utc(doc.get("finished_utc"))
            before = bisect.bisect_left(starts, started) if started is not None else 0
            if before and finished is not None and first_finished[before - 1][0] <= finished:
                problems.append(
                    Problem(
                        "chain",
                        os.path.join(entry.path, RUN_JSON),
                        f"previous_run is empty although run {first_finished[before - 1][1]} started and was "
                        "finalized before it (the chain was cut here)",
                    )
                )
        reports.append(VerifyReport(entry.run_id, entry.path, tuple(problems), files_checked, hmac_checked))
    return reports



