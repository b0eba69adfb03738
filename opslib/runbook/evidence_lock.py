"""The evidence folder's lock: it keeps two runs against the same host and site from overlapping.

``.locks/<host>_<site>.lock`` under the evidence root, created exclusively (``O_EXCL``) and holding
who took it (pid, machine, time). A lock left by a process of this machine that no longer exists is
stale and is removed once; any other existing lock refuses the run (:class:`~opslib.errors.RunLocked`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import RunLocked
from ..text import escape_text


def lock_path(root: str | os.PathLike[str], host: str, site: str) -> Path:
    """The lock file that keeps two runs against the same host and site from overlapping."""
    return Path(root) / ".locks" / f"{_safe(host)}_{_safe(site)}.lock"


@contextlib.contextmanager
def locked(root: Path, host: str, site: str) -> Iterator[Path]:
    """Hold the lock for ``host`` and ``site`` while the block runs; :class:`RunLocked` if another run does."""
    path = lock_path(root, host, site)
    path.parent.mkdir(parents=True, exist_ok=True)
    started_utc = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "started_utc": started_utc}
    for attempt in (1, 2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            other = _read_lock(path)
            if attempt == 1 and _stale(other):
                print(f"opslib: removing a stale lock {path} ({_describe(other)})", file=sys.stderr)
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                continue
            raise RunLocked(str(path), _describe(other)) from None
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(holder, fh)
        break
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _read_lock(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _stale(holder: dict[str, Any]) -> bool:
    """True only when the holder is a process on this machine that no longer exists."""
    pid = holder.get("pid")
    if holder.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _describe(holder: dict[str, Any]) -> str:
    if not holder:
        return "holder unknown"
    text = f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('started_utc')}"
    return escape_text(text, limit=300)  # what a file says: escaped before it reaches a terminal


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "_"
