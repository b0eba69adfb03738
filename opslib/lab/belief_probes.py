"""Lab probes for the beliefs of issue 24 a real server can settle, registered in :data:`opslib.lab.probes.READ_ONLY`
(``iis6.sslcerthash-inherit``, ``winrm.unknown-command``) and :data:`opslib.lab.reversible.REVERSIBLE`
(``certutil.hashfile-held-empty``). Each names the behaviour-table rows it settles; each answer is compared by
``opslib lab compare`` with the rehearsal host's answer to the same probe, key by key.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from .. import winerror
from ..iis.iis6_inherit import inherit_script
from ..winrm import CommandResult, Connection, Raw, cmdline
from ..winrm.identify import unknown_command_fault
from ..winrm.quoting import check_argument
from ..winrm.transfer import HASHFILE_ABSENT


class _Rec(Protocol):
    """What a probe needs of :class:`opslib.lab.probes.Recorder`."""

    conn: Connection
    scratch: dict[str, Any]
    facts: dict[str, Any]

    def run(
        self, label: str, argv: Sequence[str], *, redirect: tuple[str, str] | None = None
    ) -> CommandResult: ...

    def run_line(self, label: str, line: str, *, timeout_s: float = 60) -> CommandResult: ...

    def note(self, label: str, facts: dict[str, Any]) -> None: ...

    def temp(self, suffix: str) -> str: ...


def _gone(rec: _Rec, label: str, path: str) -> bool:
    """``del /f /q F`` then ``if exist "F" (exit /b 7)``: True when the file is gone (W-DEL, W-IF-EXIST)."""
    rec.run(f"{label}-del", ["del", "/f", "/q", path])
    exists = [Raw("if"), Raw("exist"), path, Raw("(exit"), Raw("/b"), Raw("7)")]
    return rec.run(f"{label}-exists", exists).exit_code != 7


# --- IIS 6: SSLCertHash inheritance (read-only) ------------------------------------------------------


def sslcerthash_inherit(rec: _Rec) -> dict[str, Any]:
    """``sslinherit.js`` (opslib/scripts): per site, a value read through ``Get``, ``IsInherit`` and whether
    the site holds its own value (``GetDataPaths``). The kit believes ``IsInherit`` is true exactly for a site
    that reads a value without holding its own (W-IIS6-SSLCERTHASH-INHERIT); each key below is that belief
    for one kind of site, True when it holds for every site of that kind seen (the kinds seen and the counts
    are facts: a server without an inheriting site settles only the other kinds)."""
    if int(rec.scratch.get("iis_major") or 0) != 6:
        return {"backend": "none"}
    path = rec.temp(".js")
    rec.conn.upload(inherit_script(), path, what="lab probe: upload sslinherit.js")
    try:
        r = rec.run("sslinherit", ["cscript", "//nologo", "//E:jscript", path])
    finally:
        _gone(rec, "script", path)
    try:
        answer = json.loads(r.stdout.decode("ascii").strip().splitlines()[-1])
        sites = [s for s in answer["sites"] if isinstance(s, dict)]
    except (UnicodeDecodeError, ValueError, IndexError, KeyError, TypeError):
        return {"exit_code": r.exit_code, "json": False}
    own = [s for s in sites if s.get("own")]
    inheriting = [s for s in sites if s.get("value") and not s.get("own")]
    empty = [s for s in sites if not s.get("value")]
    rec.facts.update(
        {
            "sites_with_own_value": len(own),
            "sites_reading_an_inherited_value": len(inheriting),
            "sites_without_any_value": len(empty),
            "service_level_value": bool(answer.get("service", {}).get("value")),
        }
    )
    return {
        "exit_code": r.exit_code,
        "json": True,
        "data_paths_answered": answer.get("data_paths") in ("ok", "none"),
        "own_value_reads_not_inherited": all(s.get("is_inherit") is False for s in own),
        "inherited_value_reads_inherited": all(s.get("is_inherit") is True for s in inheriting),
        "no_value_reads_not_inherited": all(s.get("is_inherit") is False for s in empty),
        "own_value_is_a_value": all(s.get("value") for s in own),
    }


# --- WinRM: a command id the live shell does not know (read-only) ------------------------------------


def unknown_command(rec: _Rec) -> dict[str, Any]:
    """Receive and Signal for a made-up command id on the live shell (W-WINRM-UNKNOWN-COMMAND): code +
    subcode of each fault, then whether the same shell still takes a Command (W-WINRM-SHELL-GONE: the kit
    keeps a live shell and never opens a second one)."""
    outcome = unknown_command_fault(rec.conn)
    rec.note("unknown-command-id", outcome)
    return {
        "receive": outcome.get("receive"),
        "signal": outcome.get("signal"),
        "shell_alive_after": outcome.get("shell_alive_after"),
        "same_shell_after": outcome.get("same_shell_after"),
    }


# --- certutil -hashfile on a held and on an empty file (reversible) ---------------------------------

HELD_DATA = b"opslib lab check: a file held open while certutil hashes it\r\n"


def _digest_line(r: CommandResult) -> bool:
    """A line of 64 hex digits once spaces are removed (W-CERTUTIL-HASHFILE, as the transport reads it)."""
    lines = [x.replace(" ", "").strip().lower() for x in r.stdout.decode("ascii", "replace").splitlines()]
    return any(len(x) == 64 and all(c in "0123456789abcdef" for c in x) for x in lines)


def hashfile_held_empty(rec: _Rec) -> dict[str, Any]:
    """A throw-away file in the kit's temp folder, held open for writing by the ``cmd`` running the line
    (``certutil -hashfile "F" SHA256 9>>"F"``: cmd opens handle 9 on F before certutil starts and closes it
    when certutil ends — redirection of handles 3-9,
    https://learn.microsoft.com/en-us/previous-versions/windows/it-pro/windows-xp/bb490982(v=technet.10)),
    hashed; released (the line ended), hashed again, deleted and read back gone. Then a zero-byte file
    (``>"E" type nul``) hashed, deleted and read back gone. Exit codes decide
    (W-CERTUTIL-HASHFILE-HELD: 0x80070020; W-CERTUTIL-HASHFILE-EMPTY: 0x800703EE)."""
    held = rec.temp(".txt")
    rec.conn.upload(HELD_DATA, held, what="lab probe: upload a throw-away file to hold open")
    out: dict[str, Any] = {}
    try:
        control = rec.run("hashfile-control", ["certutil", "-hashfile", held, "SHA256"])
        # No SHA-256 here (Server 2003, W-CERTUTIL-HASHFILE-2003): the held and empty cases with certutil's
        # default algorithm (SHA1), so that their codes are settled on that server too.
        alg = [] if winerror.hresult(control.exit_code) in HASHFILE_ABSENT else ["SHA256"]
        out["algorithm"] = "SHA256" if alg else "default (SHA1)"
        check_argument(held, "lab temp file")
        r = rec.run_line("hashfile-held", cmdline(["certutil", "-hashfile", held, *alg]) + f' 9>>"{held}"')
        out["held_exit_code"] = r.exit_code
        out["held_digest_line"] = _digest_line(r)
        released = rec.run("hashfile-released", ["certutil", "-hashfile", held, *alg])
        out["released_exit_code"] = released.exit_code
    finally:
        out["held_file_gone"] = _gone(rec, "held", held)
    empty = rec.temp(".txt")
    try:
        rec.run("create-empty", ["type", "nul"], redirect=("write", empty))
        r = rec.run("hashfile-empty", ["certutil", "-hashfile", empty, *alg])
        out["empty_exit_code"] = r.exit_code
        out["empty_digest_line"] = _digest_line(r)
    finally:
        out["empty_file_gone"] = _gone(rec, "empty", empty)
    return out


# (id, tier, rows, what it sends, function)
BELIEF_PROBES: tuple[tuple[str, str, tuple[str, ...], str, Callable[[Any], dict[str, Any]]], ...] = (
    (
        "iis6.sslcerthash-inherit",
        "read-only",
        ("W-IIS6-SSLCERTHASH-INHERIT",),
        'upload sslinherit.js; cscript //nologo //E:jscript sslinherit.js (Get, GetPropertyAttribObj("SSLCertHash")'
        '.IsInherit, W3SVC.GetDataPaths("SSLCertHash", 0)); del',
        sslcerthash_inherit,
    ),
    (
        "winrm.unknown-command",
        "read-only",
        ("W-WINRM-UNKNOWN-COMMAND", "W-WINRM-SHELL-GONE"),
        "ver; Receive and Signal for a made-up command id on the same shell; ver on the same shell",
        unknown_command,
    ),
    (
        "certutil.hashfile-held-empty",
        "reversible",
        ("W-CERTUTIL-HASHFILE-HELD", "W-CERTUTIL-HASHFILE-EMPTY", "W-DEL", "W-IF-EXIST"),
        'upload F; certutil -hashfile "F" SHA256; the same with 9>>"F"; again; del F; '
        '>"E" type nul; certutil -hashfile "E" SHA256; del E (each read back gone)',
        hashfile_held_empty,
    ),
)
BELIEF_IF_DIFFERENT = {
    "iis6.sslcerthash-inherit": "IIS 6 reports an inherited SSLCertHash otherwise than the kit believes: the kit may "
    "call an inherited certificate the site's own (or the reverse) — do not renew a site that inherits until "
    "this is reported",
    "winrm.unknown-command": "the WinRM service answers an unknown command id otherwise: after a lost Receive the kit "
    "may misjudge whether its shell lives — report it",
    "certutil.hashfile-held-empty": "certutil answers a held or an empty file otherwise: a transfer may be checked by "
    "size only more often (said in run.json) — report it",
}
