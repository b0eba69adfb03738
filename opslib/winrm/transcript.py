"""What a connection records: command results, transfers, and the JSON-lines transcript.

Every transcript line passes through :func:`opslib.credentials.redact`; transfers record sizes and
SHA-256 only, never the data. :func:`stale_temp_dirs` reads a run's transcript back to find the
temp folders earlier connections left on the server.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import credentials as _secrets
from .quoting import codec

# --- results -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommandResult:
    """What one remote command returned. ``command_line`` is redacted (safe to show and record)."""

    command_line: str
    exit_code: int
    stdout: bytes
    stderr: bytes
    duration_s: float
    codepage: int

    @property
    def stdout_text(self) -> str:
        return self.stdout.decode(codec(self.codepage), "replace")

    @property
    def stderr_text(self) -> str:
        return self.stderr.decode(codec(self.codepage), "replace")


@dataclass(frozen=True)
class Transfer:
    """A finished upload or download: the remote file, its size and SHA-256, and how it was checked."""

    remote_path: str
    size: int
    sha256: str
    verified_by: str  # "size+sha256" or "size" (when the server's certutil has no SHA-256)
    commands: int


# --- transcript ------------------------------------------------------------------------------------


class Transcript:
    """A JSON-lines sink (``<run_dir>/transcript.jsonl``). Every line passes through redaction."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def write(self, entry: dict[str, Any]) -> None:
        line = _secrets.redact(json.dumps(with_text(entry), ensure_ascii=True, sort_keys=False))
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")


def with_text(entry: dict[str, Any]) -> dict[str, Any]:
    """``entry`` plus ``stdout_text``/``stderr_text``: the recorded (redacted) base64 bytes decoded with
    the entry's ``codepage`` (W-CODEPAGE-DECODE), so a reviewer reads a Japanese host's output without
    tools. The base64 stays the record; the text is a convenience (undecodable bytes become U+FFFD)."""
    codepage = entry.get("codepage")
    if not isinstance(codepage, int) or not codepage:
        return entry
    out = dict(entry)
    for stream in ("stdout", "stderr"):
        raw = entry.get(f"{stream}_b64")
        if isinstance(raw, str):
            try:
                data = base64.b64decode(raw, validate=True)
            except ValueError:
                continue
            try:
                out[f"{stream}_text"] = data.decode(codec(codepage), "replace")
            except LookupError:
                continue
    return out


def redacted_b64(data: bytes) -> str:
    return base64.b64encode(_secrets.redact_bytes(data)).decode("ascii")


def digest(data: bytes) -> dict[str, Any]:
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


# --- temp folders, as the transcript records them ------------------------------------------------

CREATE_TEMP = "create the connection's temp folder"
REMOVE_TEMP = "remove the temp folder (rmdir /s /q) and check it is gone"
REMOVE_STALE_TEMP = (
    "remove a temp folder an earlier connection of this run left (rmdir /s /q) and check it is gone"
)


def stale_temp_dirs(transcript: str | Path) -> list[str]:
    """The kit temp folders a run's transcript shows created (or tried) and not yet removed.

    Removed = an ``rmdir`` of that folder whose line ended with exit code 0: its read-back
    (``if exist``, W-IF-EXIST) found nothing. Transcripts before the read-back also count exit 2
    (W-RMDIR-SQ: not found).
    """
    created: list[str] = []
    removed: set[str] = set()
    try:
        lines = Path(transcript).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        argv = entry.get("argv") if isinstance(entry, dict) else None
        if not isinstance(argv, list) or not argv or not isinstance(argv[-1], str):
            continue
        if entry.get("what") == CREATE_TEMP and argv[-1] not in created:
            created.append(argv[-1])
        elif str(entry.get("what", "")).startswith((REMOVE_TEMP, REMOVE_STALE_TEMP)):
            # ["rmdir", "/s", "/q", FOLDER, "&", "if", "exist", FOLDER, …] (read back) or ["rmdir", …, FOLDER]
            folder = argv[3] if argv[0] == "rmdir" and len(argv) > 3 else argv[-1]
            if entry.get("exit_code") == 0 or (len(argv) == 4 and entry.get("exit_code") == 2):
                removed.add(folder)
    return [folder for folder in created if folder not in removed]


def channels(transcript: str | Path) -> list[dict[str, Any]]:
    """The distinct channels (``Connection.channel``) a run's transcript records, in order.

    For ``run.json``: what each connection ran over (TLS version and cipher negotiated, message
    encryption), and every line where the operator accepted secrets crossing in clear text.
    """
    out: list[dict[str, Any]] = []
    for entry in _entries(transcript):
        item = entry.get("channel")
        if isinstance(item, dict) and item not in out:
            out.append(item)
    return out


def _entries(transcript: str | Path) -> list[dict[str, Any]]:
    """The transcript's JSON objects (unreadable file or lines skipped: these are summaries, not checks)."""
    try:
        lines = Path(transcript).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    out: list[dict[str, Any]] = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            out.append(entry)
    return out


def cleartext_acceptances(transcript: str | Path) -> list[str]:
    """The transcript's plain-words lines saying secrets crossed an unencrypted channel (accepted)."""
    out: list[str] = []
    for entry in _entries(transcript):
        text = entry.get("cleartext_secrets_accepted")
        if isinstance(text, str) and text not in out:
            out.append(text)
    return out
