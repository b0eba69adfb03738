"""The one quoting function: every remote command line is built here from a list of arguments.

:func:`cmdline` quotes for cmd.exe and CommandLineToArgvW and refuses values cmd.exe cannot carry
safely (:class:`~opslib.errors.UnsafeArgument`); :func:`join_commands` chains lines; :class:`Raw` marks
kit-owned cmd syntax. :func:`codec` names the Python codec of a console code page.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..errors import (
    UnsafeArgument,
)

CMD_LINE_MAX = 8191  # cmd.exe's limit (docs/windows-behaviour.md W-CMD-LINE-8191)
ECHO_CHUNK_MAX = 7900  # base64 characters per prefix-redirect echo (W-WINRM-ECHO-CHUNK)


CODEPAGE_CODECS = {437: "cp437", 932: "cp932", 65001: "utf-8"}


def codec(codepage: int) -> str:
    return CODEPAGE_CODECS.get(codepage, f"cp{codepage}")


# --- quoting ---------------------------------------------------------------------------------------


class Raw(str):
    """Kit-owned cmd syntax passed verbatim by :func:`cmdline` (``%I``, ``%~zI``, ``%TEMP%``).

    Never wrap a parameter value in ``Raw``: values go through the checks and quoting.
    """


class Bare(str):
    """A ``key=value`` token made only of safe characters (letters, digits, ``. : - _ * { } [ ]``), passed
    by :func:`cmdline` without quotes, as Microsoft's netsh examples write them
    (``ipport=0.0.0.0:443 certhash=… appid={…}``,
    https://learn.microsoft.com/en-us/windows-server/networking/technologies/netsh/netsh-http). cmd.exe
    hands a program its quotes unchanged, and no public capture shows netsh taking a quoted
    ``key=value`` from cmd (W-NETSH-BARE-TOKENS). Anything else in it raises :class:`UnsafeArgument`.
    """


_BARE_SAFE = re.compile(r"[A-Za-z][A-Za-z0-9]*=[A-Za-z0-9.:_*{}\[\]-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff\ufffe\uffff]")  # also what XML 1.0 cannot carry
_NEEDS_QUOTES = re.compile(r"[\s&|<>()^,;=@]")
_ECHO_UNSAFE = re.compile(r"[&|<>()^\"%!\x00-\x1f\x7f]")


def check_argument(value: str, name: str) -> None:
    if not isinstance(value, str):
        raise UnsafeArgument(name, f"expected text, got {type(value).__name__}")
    if _CONTROL.search(value):
        raise UnsafeArgument(name, "it contains a control character, a line break or an invalid character")
    for ch, why in (
        ('"', 'a double quote (")'),
        ("%", "a percent sign (cmd expands %NAME% even inside quotes)"),
        ("!", "an exclamation mark (delayed expansion)"),
    ):
        if ch in value:
            raise UnsafeArgument(name, f"it contains {why}")


def _quote(value: str, name: str) -> str:
    """Quote one argument for cmd.exe and CommandLineToArgvW.

    Inside double quotes cmd treats ``& | < > ( ) ^`` as text; backslashes are literal except
    before a quote, so trailing backslashes are doubled before the closing quote
    (https://learn.microsoft.com/en-us/windows/win32/api/shellapi/nf-shellapi-commandlinetoargvw).
    """
    check_argument(value, name)
    if value and not _NEEDS_QUOTES.search(value):
        return value
    trailing = len(value) - len(value.rstrip("\\"))
    return '"' + value + "\\" * trailing + '"'


def cmdline(
    argv: Sequence[str],
    *,
    names: Sequence[str] | None = None,
    redirect: tuple[str, str] | None = None,
) -> str:
    """Build one cmd.exe command line from an argument list; refuse what cmd cannot carry.

    * Arguments with spaces or cmd metacharacters are double-quoted; ``%``, ``!``, ``"``, control
      characters and line breaks are refused (:class:`UnsafeArgument` names the value by
      ``names[i]`` or its position). Base64 and Windows paths never need them.
    * ``echo`` prints its text verbatim (quotes included), so its arguments are never quoted:
      they must be free of cmd metacharacters.
    * ``redirect=("append"|"write", path)`` prefixes ``>>"path"`` / ``>"path"`` — the prefix form
      avoids echo's trailing space and the ``1>>`` handle pitfall (W-CMD-ECHO-SPACE).
    * :class:`Raw` items are kit-owned syntax and pass unchanged; :class:`Bare` ``key=value`` tokens of
      safe characters pass without quotes (anything else in them is refused).
    """
    if not argv:
        raise UnsafeArgument("command", "no program given")

    def label(i: int) -> str:
        if names is not None and i < len(names) and names[i]:
            return names[i]
        return "program" if i == 0 else f"argument {i}"

    parts: list[str] = []
    if redirect is not None:
        mode, path = redirect
        if mode not in ("append", "write"):
            raise ValueError(f"redirect mode must be 'append' or 'write', not {mode!r}")
        check_argument(path, "redirect target")
        parts.append(
            (">>" if mode == "append" else ">")
            + '"'
            + path
            + "\\" * (len(path) - len(path.rstrip("\\")))
            + '"'
        )
    is_echo = not isinstance(argv[0], Raw) and argv[0].lower() in ("echo", "@echo")
    for i, arg in enumerate(argv):
        if isinstance(arg, Raw):
            parts.append(str(arg))
        elif isinstance(arg, Bare):
            if not _BARE_SAFE.fullmatch(arg):
                raise UnsafeArgument(label(i), "a bare key=value token holds a character that needs quotes")
            parts.append(str(arg))
        elif is_echo and i > 0:
            if _ECHO_UNSAFE.search(arg) or not arg:
                raise UnsafeArgument(label(i), "echo text must not be empty or contain cmd metacharacters")
            parts.append(arg)
        else:
            parts.append(_quote(arg, label(i)))
    if is_echo:
        text = " ".join(str(a) for a in argv[1:]).strip().lower()
        if text in ("", "on", "off") or text.startswith("/?"):
            raise UnsafeArgument(label(1), "echo would not print this text (ECHO ON/OFF or help)")
    line = " ".join(parts)
    if len(line) > CMD_LINE_MAX:
        longest = max(range(len(argv)), key=lambda i: len(argv[i]))
        raise UnsafeArgument(
            label(longest),
            f"the command line would be {len(line)} characters; cmd.exe takes at most {CMD_LINE_MAX}",
        )
    return line


def join_commands(lines: Sequence[str], *, op: str = "&&") -> str:
    """Join command lines built by :func:`cmdline` with ``&&`` (run the next only on success) or ``&``."""
    if op not in ("&&", "&"):
        raise ValueError(f"operator must be '&&' or '&', not {op!r}")
    line = op.join(lines)
    if len(line) > CMD_LINE_MAX:
        raise UnsafeArgument(
            "command", f"the joined command line would be {len(line)} characters (max {CMD_LINE_MAX})"
        )
    return line


def size_command(path: str) -> str:
    """Print a file's size in bytes, or nothing useful if it is missing.

    ``for %I in ("file") do @echo %~zI`` — ``%~zI`` expands to the file size (``for /?``,
    https://learn.microsoft.com/en-us/windows-server/administration/windows-commands/for); for a
    missing file it is empty and echo prints its localized ``ECHO is on.``, which is not digits.
    """
    return cmdline(
        [
            Raw("for"),
            Raw("%I"),
            Raw("in"),
            Raw("(" + _quote(path, "remote path") + ")"),
            Raw("do"),
            Raw("@echo"),
            Raw("%~zI"),
        ]
    )


def gone_check(path: str, *, name: str = "remote path") -> str:
    """``if exist "P" (exit /b 1) else (exit /b 0)``: exit 0 exactly when ``path`` is absent.

    The read-back after a delete (docs/windows-behaviour.md W-IF-EXIST): ``del`` and ``rmdir`` exit 0
    whether or not they removed anything (W-DEL, W-RMDIR-SQ-LOCKED), so only this exit code proves
    absence. Both branches end in an explicit ``exit /b`` (W-CMD-EXITCODE: the exit code of a line
    whose last command sets no status differs between cmd builds and the rehearsal host).
    """
    return cmdline([Raw("if"), Raw("exist"), Raw(_quote(path, name)), Raw("(exit /b 1) else (exit /b 0)")])


def delete_and_check(argv: Sequence[str], path: str, *, names: Sequence[str] | None = None) -> str:
    """``<argv> & if exist "P" (exit /b 1) else (exit /b 0)``: run a delete (``del /f /q P`` or
    ``rmdir /s /q P``), then prove ``path`` gone by :func:`gone_check` in the same line (``&``: the
    check runs whatever the delete's status; its ``exit /b`` is the line's exit code)."""
    return join_commands([cmdline(argv, names=names), gone_check(path)], op="&")
