"""Small remote plumbing shared by the server readers and the steps: temporary files, ``reg export``.

Every command line goes through :meth:`opslib.winrm.Connection.run` (the one quoting function).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from ..errors import RemoteCommandFailed

if TYPE_CHECKING:
    from ..winrm import CommandResult, Connection

__all__ = ["delete_remote", "download", "export_key", "failed", "host_of", "remote_path"]


def host_of(conn: Connection) -> str:
    return str(getattr(conn, "host", "") or getattr(conn, "url", "") or "server")


def remote_path(conn: Connection, suffix: str) -> str:
    """A fresh file name in the connection's temporary folder (fresh: ``reg export`` on 2003 has no /y).
    The connection remembers it: if the folder cannot be removed at close, this file is checked."""
    path = str(conn.temp_dir).rstrip("\\") + f"\\opslib-{uuid.uuid4().hex[:12]}{suffix}"
    note = getattr(conn, "note_remote_file", None)
    if note is not None:
        note(path)
    return path


def delete_remote(conn: Connection, path: str, *, what: str = "") -> bool:
    """``del /f /q F``, then prove F gone in the same line (``if exist``); once more when it stays.

    True only when read back absent. cmd's DEL exits 0 also when the file stays (held open, access
    denied: docs/windows-behaviour.md W-DEL), so its exit code is never the answer (W-IF-EXIST is).
    A file that stays is in ``conn.remote_left`` for the step's facts and the run's summary.
    """
    return bool(conn.remove_file(path, what=what or f"delete {path} and check it is gone"))


def download(conn: Connection, path: str, *, what: str) -> bytes:
    """``conn.download``; the transport removes its base64 staging copy itself."""
    return conn.download(path, what=what)


def failed(conn: Connection, result: CommandResult, what: str, hint: str = "") -> RemoteCommandFailed:
    return RemoteCommandFailed(
        host=host_of(conn),
        command=result.command_line,
        exit_code=result.exit_code,
        stderr=result.stderr_text,
        stdout=result.stdout_text,
        what=what,
        hint=hint,
    )


def export_key(conn: Connection, key: str, *, what: str) -> bytes | None:
    """``reg export`` one key (with its subkeys) to a temporary file, download it, delete it.

    Returns None when the key does not exist. reg.exe exits 0 on success and 1 on failure
    (``reg /?``: "0 - Successful, 1 - Failed", https://learn.microsoft.com/en-us/windows-server/administration/windows-commands/reg-export);
    a failed export is told apart from a missing key by ``reg query KEY`` (exit 1 = absent [I]).
    No ``/y``: the 2003 reg.exe usage does not list it [U]; the file name is always fresh instead.
    """
    # A key read since the last command that could change the server is not read again (each read
    # costs reg export + download + delete: about six commands). A change — any command outside
    # ``conn.reading()`` — makes it stale, so every read-back after a change still goes to the server.
    cached, value = conn.cached_read(f"reg export {key}")
    if cached:
        return value  # type: ignore[no-any-return]
    started_at = conn.commands_run
    with conn.reading():
        data = _export_key(conn, key, what=what)
    conn.remember_read(f"reg export {key}", data, started_at=started_at)
    return data


def _export_key(conn: Connection, key: str, *, what: str) -> bytes | None:
    path = remote_path(conn, ".reg")
    result = conn.run(["reg", "export", key, path], check=False, what=f"{what}: reg export {key} to {path}")
    if result.exit_code != 0:
        # reg query (https://learn.microsoft.com/en-us/windows-server/administration/windows-commands/reg-query)
        query = conn.run(["reg", "query", key], check=False, what=f"does {key} exist? (reg query)")
        if query.exit_code != 0:
            return None
        raise failed(
            conn, result, what, hint="the key exists but could not be exported; check the account's rights"
        )
    try:
        return download(conn, path, what=what)
    finally:
        delete_remote(conn, path)
