"""The head record of an evidence root: an append-only log of finalized runs, so that a run removed
from the end of the chain (which no later run points back at) or a finalized run rewritten and set
back to ``running`` shows up in :func:`.verify.verify_root`.

Design: ``<root>/.heads/`` holds one small JSON file per finalized run, named by its position in the
log, ``00000001.json``, ``00000002.json``, … Each entry holds ``seq``, the ``run_id``, the SHA-256 of
that run's ``run.json`` as finalized, ``finalized_utc``, ``previous_entry_sha256`` (the SHA-256 of the
bytes of entry ``seq - 1``; null for the first) and, when the operator's key is set, ``hmac`` over the
canonical entry. :func:`append_head` writes the entry to a temporary file in ``.heads/`` and publishes
it with ``os.link`` to the next free name: the link fails when another finalization took that name
first, and the writer re-reads the newest entry and tries the next number. So many runs of a fleet
finalizing under one root at once get one linear chain without a lock, and a reader never sees a
half-written entry. The runs' own ``previous_run`` links stay as they were (a chain by start time).

What it proves (the threat model is in docs/evidence.md): an entry in the middle that was
removed leaves a gap in the numbers or a broken ``previous_entry_sha256``; an entry that was edited
breaks the next entry's hash and, with a key, its own HMAC; a run named by an entry that is missing,
or whose run.json no longer has the recorded hash, is reported. Removing the newest run *and* its
entry (the tail of the log) cannot be told from a log that ended there: compare :func:`head_digest`
(printed by ``opslib evidence verify --root``) with a copy kept elsewhere, e.g. in the change ticket.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac as hmac_
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import EvidenceError
from .manifest import RUN_JSON, iso_utc, sign_hmac

HEADS_DIR = ".heads"
_ENTRY = re.compile(r"^(\d{8})\.json$")
_ATTEMPTS = 10_000


@dataclass(frozen=True)
class HeadEntry:
    """One entry of the head record as read back: ``doc`` is None when the file is not valid JSON."""

    seq: int
    path: str
    raw: bytes
    doc: dict[str, Any] | None

    @property
    def run_id(self) -> str:
        return str(self.doc.get("run_id")) if self.doc else ""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()


def heads_dir(root: str | os.PathLike[str]) -> Path:
    return Path(root) / HEADS_DIR


def read_heads(root: str | os.PathLike[str], *, newest_only: bool = False) -> list[HeadEntry]:
    """Every entry of ``root``'s head record, in log order (empty when the root has none);
    ``newest_only``: just the last one (what :func:`append_head` chains to)."""
    folder = heads_dir(root)
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
    numbered = sorted((int(m.group(1)), name) for name in names if (m := _ENTRY.match(name)))
    entries: list[HeadEntry] = []
    for seq, name in numbered[-1:] if newest_only else numbered:
        path = folder / name
        try:
            raw = path.read_bytes()
        except OSError:
            raw = b""
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = None
        entries.append(HeadEntry(seq, str(path), raw, doc if isinstance(doc, dict) else None))
    return entries


def head_digest(root: str | os.PathLike[str]) -> tuple[int, str] | None:
    """(number, SHA-256) of the newest entry: what to keep elsewhere to detect a cut tail."""
    newest = read_heads(root, newest_only=True)
    return (newest[-1].seq, newest[-1].sha256) if newest else None


def append_head(
    root: str | os.PathLike[str],
    run_dir: str | os.PathLike[str],
    *,
    hmac_key: bytes | None = None,
    now_utc: dt.datetime | None = None,
    manifest: str = RUN_JSON,
    id_key: str = "run_id",
) -> dict[str, Any]:
    """Add the finalized run ``run_dir`` (its run.json as it is now) to ``root``'s head record.

    Called by :func:`.folder.finalize_run` right after it writes the final run.json. Safe to call from
    many processes and threads at once (see the module docstring). Returns the entry written.
    ``manifest`` / ``id_key``: the same log for other records (a fleet: ``fleet.json`` and its
    ``fleet_id``, under ``<root>/fleets``); the entry names it as ``run_id`` and hashes ``manifest``
    in ``run_json_sha256``."""
    folder = heads_dir(root)
    run_json = Path(run_dir) / manifest
    try:
        raw = run_json.read_bytes()
        run_id = str(json.loads(raw)[id_key])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EvidenceError(
            str(run_json), f"cannot record the run in the head record ({type(exc).__name__})"
        ) from None
    folder.mkdir(exist_ok=True)
    when = iso_utc(now_utc or dt.datetime.now(dt.UTC))
    for _ in range(_ATTEMPTS):
        newest = read_heads(root, newest_only=True)
        last = newest[-1] if newest else None
        doc: dict[str, Any] = {
            "seq": (last.seq if last else 0) + 1,
            "run_id": run_id,
            "run_json_sha256": hashlib.sha256(raw).hexdigest(),
            "finalized_utc": when,
            "previous_entry_sha256": last.sha256 if last else None,
        }
        if hmac_key:
            doc["hmac"] = sign_hmac(doc, hmac_key)
        fd, tmp = tempfile.mkstemp(prefix=".entry.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
                fh.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, folder / f"{doc['seq']:08d}.json")  # fails if the name is taken: no overwrite
            except FileExistsError:
                continue  # another run finalized first: chain after its entry
            return doc
        finally:
            Path(tmp).unlink(missing_ok=True)
    raise EvidenceError(str(folder), f"could not append to the head record after {_ATTEMPTS} attempts")


@dataclass(frozen=True)
class HeadFinding:
    """A break in the head record itself (``run_id`` "" when the entry is unreadable)."""

    kind: str
    path: str
    detail: str


def check_heads(entries: list[HeadEntry], *, hmac_key: bytes | None) -> list[HeadFinding]:
    """Gaps, broken links, unreadable entries and (with a key) HMAC mismatches in the head record."""
    findings: list[HeadFinding] = []
    previous: HeadEntry | None = None
    for entry in entries:
        doc = entry.doc
        if doc is None or doc.get("seq") != entry.seq or not doc.get("run_id"):
            findings.append(HeadFinding("head", entry.path, "unreadable or renumbered head entry"))
        else:
            expected_prev = previous.sha256 if previous and previous.seq == entry.seq - 1 else None
            if entry.seq > 1 and (previous is None or previous.seq != entry.seq - 1):
                findings.append(
                    HeadFinding(
                        "head",
                        entry.path,
                        f"head entries before number {entry.seq} are missing (entries were removed)",
                    )
                )
            elif expected_prev is not None and doc.get("previous_entry_sha256") != expected_prev:
                findings.append(
                    HeadFinding(
                        "head",
                        entry.path,
                        f"the entry before it (number {entry.seq - 1}) changed after this entry was written",
                    )
                )
            if hmac_key:
                signed = doc.get("hmac")
                if not signed:
                    findings.append(
                        HeadFinding("hmac", entry.path, "head entry not signed with the HMAC key")
                    )
                elif not hmac_.compare_digest(str(signed), sign_hmac(doc, hmac_key)):
                    findings.append(
                        HeadFinding(
                            "hmac", entry.path, "HMAC mismatch: head entry changed, or the key is wrong"
                        )
                    )
        previous = entry
    return findings


def finalized_entries(entries: list[HeadEntry]) -> dict[str, HeadEntry]:
    """``run_id`` → its newest readable head entry."""
    out: dict[str, HeadEntry] = {}
    for entry in entries:
        if entry.doc is not None and entry.run_id:
            out[entry.run_id] = entry
    return out
