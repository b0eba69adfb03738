"""Small remote plumbing shared by the server readers and the steps: temporary files, ``reg export``.

Every command line goes through :meth:`opslib.winrm.Connection.run` (the one quoting function).
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import RemoteCommandFailed, UnsafeArgument, VerificationFailed
from ..winrm import CMD_LINE_MAX, Raw, cmdline, join_commands

if TYPE_CHECKING:
    from ..winrm import CommandResult, Connection

__all__ = [
    "batch_line",
    "delete_remote",
    "download",
    "export_key",
    "export_keys",
    "failed",
    "host_of",
    "parse_batch",
    "remote_path",
]


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
        remote_exit_code=result.exit_code,
        stderr=result.stderr_text,
        stdout=result.stdout_text,
        what=what,
        hint=hint,
    )


def export_key(conn: Connection, key: str, *, what: str) -> bytes | None:
    """``reg export`` one key (with its subkeys): its bytes, or None when the key does not exist."""
    return export_keys(conn, [key], what=what)[key]


def export_keys(conn: Connection, keys: Sequence[str], *, what: str) -> dict[str, bytes | None]:
    """``reg export`` several keys (each with its subkeys) in as few command lines as cmd takes.

    {key: the .reg file's bytes, or None when the key does not exist}. A key read since the last
    command that could change the server is not read again: a change — any command outside
    ``conn.reading()`` — makes every earlier read stale, so every read-back after a change still goes
    to the server. The keys not cached are read together by :func:`_export_batch` (one command line
    for all of them, split only when the line would pass cmd's 8,191 characters).
    """
    wanted = list(dict.fromkeys(keys))
    out: dict[str, bytes | None] = {}
    todo: list[str] = []
    for key in wanted:
        cached, value = conn.cached_read(f"reg export {key}")
        if cached:
            out[key] = value
        else:
            todo.append(key)
    if todo:
        started_at = conn.commands_run
        with conn.reading():
            fresh = _export_batch(conn, todo, what=what)
        for key, data in fresh.items():
            conn.remember_read(f"reg export {key}", data, started_at=started_at)
        out.update(fresh)
    return {key: out[key] for key in keys}


# Markers the batch line echoes around each key's part of the output: kit-owned ASCII (never
# localized), with a hyphen, which base64 never contains, so no data line can be taken for one.
_MARK = re.compile(rb"^opslib-(begin|end|failed|present)-(\d+)$")


def _key_segment(n: int, key: str, reg: str, b64: str) -> str:
    """One key's part of the batch line (docs/windows-behaviour.md W-CMD-CHAIN-MARKERS)::

        reg export K F >nul 2>&1 && certutil -f -encode F F.b64 >nul 2>&1 && echo opslib-begin-N
          && type F.b64 && echo opslib-end-N || echo opslib-failed-N
        & reg query K >nul 2>&1 && echo opslib-present-N

    ``&&``/``||`` run the next command only after success/failure and ``&`` always; ``&`` binds
    loosest, so each key's part runs whatever the earlier keys did. ``begin``…``end`` frame the
    base64 copy (its BEGIN/END lines prove it complete); ``failed`` without ``present`` is an absent
    key (``reg query`` exits 1, W-REG-QUERY-ABSENT), ``failed`` with ``present`` a key that exists but
    could not be read. No ``/y``: the file names are always fresh.
    """
    quiet = [Raw(">nul"), Raw("2>&1")]
    names = ["reg", "", "registry key", "remote path"]
    return (
        join_commands(
            [
                cmdline(["reg", "export", key, reg, *quiet], names=names),
                cmdline(
                    ["certutil", "-f", "-encode", reg, b64, *quiet],
                    names=["certutil", "", "", "remote path", "staging file"],
                ),
                cmdline(["echo", f"opslib-begin-{n}"]),
                cmdline(["type", b64], names=["type", "staging file"]),
                cmdline(["echo", f"opslib-end-{n}"]),
            ]
        )
        + "||"
        + join_commands(
            [
                cmdline(["echo", f"opslib-failed-{n}"]),
                join_commands(
                    [
                        cmdline(["reg", "query", key, *quiet], names=["reg", "", "registry key"]),
                        cmdline(["echo", f"opslib-present-{n}"]),
                    ]
                ),
            ],
            op="&",
        )
    )


def _export_batch(conn: Connection, keys: Sequence[str], *, what: str) -> dict[str, bytes | None]:
    parts: list[tuple[int, str, str, str]] = []  # (n, key, .reg path, .b64 path)
    for n, key in enumerate(keys, 1):
        reg = remote_path(conn, ".reg")
        parts.append((n, key, reg, reg[: -len(".reg")] + ".b64"))
    lines: list[list[tuple[int, str, str, str]]] = [[]]
    for part in parts:
        trial = [*lines[-1], part]
        if lines[-1] and not _fits(trial):
            lines.append([part])
        else:
            lines[-1] = trial
    out: dict[str, bytes | None] = {}
    for batch in lines:
        line = batch_line(batch)
        named = ", ".join(key for _, key, _, _ in batch)
        result = conn.run_line(
            line,
            check=False,
            what=f"{what}: reg export {named} (each to a fresh file, base64 by certutil -encode, typed)",
            log_data=False,
        )
        out.update(parse_batch(conn, result, batch, what=what))
    return out


def _fits(batch: Sequence[tuple[int, str, str, str]]) -> bool:
    try:
        return len(batch_line(batch)) <= CMD_LINE_MAX
    except UnsafeArgument:  # join_commands refuses a line over cmd's limit
        return False


def batch_line(batch: Sequence[tuple[int, str, str, str]]) -> str:
    """The keys' segments joined by ``&``, then one ``del`` of every staging file (its exit code proves
    nothing, W-DEL: the connection's temp folder is removed and read back at the end)."""
    staged = [p for _, _, reg, b64 in batch for p in (reg, b64)]
    cleanup = cmdline(
        ["del", "/f", "/q", *staged, Raw(">nul"), Raw("2>&1")],
        names=["del", "", "", *["staging file"] * len(staged)],
    )
    return join_commands([*(_key_segment(*part) for part in batch), cleanup], op="&")


def parse_batch(
    conn: Connection, result: CommandResult, batch: Sequence[tuple[int, str, str, str]], *, what: str
) -> dict[str, bytes | None]:
    """{key: bytes, or None when absent} from a :func:`batch_line`'s output, decided by its markers only;
    raises when a key's markers are missing, unmatched, or say it exists but could not be read."""
    seen: dict[int, set[str]] = {}
    body: dict[int, list[bytes]] = {}
    current: int | None = None
    for raw in result.stdout.splitlines():
        line = raw.strip()
        m = _MARK.match(line)
        if m:
            kind, n = m.group(1).decode(), int(m.group(2))
            seen.setdefault(n, set()).add(kind)
            if kind == "begin":
                current = n
                body[n] = []
            elif kind == "end":
                current = None
            continue
        if current is not None and line and not line.startswith(b"-----"):
            body[current].append(line)
    out: dict[str, bytes | None] = {}
    for n, key, _reg, _b64 in batch:
        kinds = seen.get(n, set())
        if "begin" in kinds and "end" in kinds:
            try:
                out[key] = base64.b64decode(b"".join(body[n]), validate=True)
            except (binascii.Error, ValueError):
                raise VerificationFailed(
                    host_of(conn), f"{key}: the server's base64 copy could not be decoded", hint="run again"
                ) from None
            if not out[key]:
                raise VerificationFailed(
                    host_of(conn), f"{key}: the export came back empty", hint="run again"
                )
        elif "failed" in kinds and "present" not in kinds:
            out[key] = None
        elif "failed" in kinds:
            raise failed(
                conn,
                result,
                f"{what}: reg export {key}",
                hint="the key exists but could not be exported into the kit's temp folder: check the account's rights and that the folder is still there (a new run makes a new one)",
            )
        else:
            raise VerificationFailed(
                host_of(conn),
                f"{key}: the export line ended before this key's part ran (exit code {result.exit_code})",
                hint="run again; nothing was changed",
            )
    return out
