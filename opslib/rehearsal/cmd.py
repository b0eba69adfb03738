"""A cmd.exe-like interpreter for exactly the command lines the kit sends.

:func:`execute` runs one WinRS command line the way ``cmd /c`` would on the emulated host:

* phase 1, ``%VAR%`` expansion from the host's environment (command-line mode: an undefined
  variable is left as typed, as cmd does outside batch files);
* the operators ``&&``, ``||`` and ``&`` evaluated left to right on the previous status (``&`` always runs;
  ``a && b || c`` runs ``c`` when ``a`` or ``b`` failed) and ``( … )`` blocks as one command (W-CMD-GROUP;
  ``if`` and ``for`` swallow the rest of the line, as in cmd);
* redirections anywhere in a command, including the prefix form ``>>"C:\\t\\f.b64" echo chunk``:
  ``>``, ``>>``, ``n>``, ``n>>``, ``n>&m``, ``<``; ``^`` escapes outside double quotes;
* built-ins: ``echo`` (``echo.``, and the trailing space that ``echo x >f`` keeps), ``type``,
  ``del``/``erase``, ``mkdir``/``md``, ``rmdir``/``rd``, ``chcp``, ``set``, ``ver``, ``cd``/``chdir``,
  ``if [not] exist``, ``if [not] errorlevel``, ``for %I in (set) do …`` (``%~zI`` and friends),
  ``exit [/b] N``, ``rem``; ``hostname`` and ``whoami`` (programs on Windows, answered here);
* every other name starts a program from ``host.programs`` (lower case, ``.exe`` stripped, a
  path-qualified name is looked up by its file name) with an argv split by the CommandLineToArgvW
  rules; an unknown name answers ``'x' is not recognized …`` with exit code 9009.

Text is encoded in the shell's code page (437 / 932 / 65001) with ``?`` for characters the code
page cannot hold, as the console does. ``type`` copies bytes unchanged.

Sources: the cmd quoting and parsing rules follow ``cmd /?`` and the phase description in
https://stackoverflow.com/questions/4094699 (dbenham); CommandLineToArgvW follows
https://learn.microsoft.com/en-us/windows/win32/api/shellapi/nf-shellapi-commandlinetoargvw and
Wine's implementation of it (``dlls/shcore/main.c``), which documents the undocumented ``""`` rule.
Messages are the ones Windows prints (docs/windows-behaviour.md lists the sources); a Japanese text
marked [U] below is our best knowledge, not captured output.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from .host import CommandResult, Host, Invocation

log = logging.getLogger(__name__)

NOT_RECOGNIZED_EXIT = 9009  # cmd's exit code for an unknown command
# cmd.exe takes at most 8191 characters (https://learn.microsoft.com/en-us/troubleshoot/windows-client/
# shell-experience/command-line-string-limitation; docs/windows-behaviour.md W-CMD-LINE-8191). The
# message and exit code of a longer line, and whether the limit counts exactly this text, are [U].
CMD_LINE_MAX = 8191
MSG_LINE_TOO_LONG = ("The input line is too long.", "入力行が長すぎます。")  # ja [U]
ACCESS_DENIED_EXIT = 5  # ERROR_ACCESS_DENIED

# (en, ja) message pairs. The ja forms of "not recognized", "Access is denied." and chcp are
# captured output seen in public logs; the others marked [U] are unverified wording.
MSG_NOT_RECOGNIZED = (
    "'{0}' is not recognized as an internal or external command,\r\noperable program or batch file.",
    "'{0}' は、内部コマンドまたは外部コマンド、\r\n操作可能なプログラムまたはバッチ ファイルとして認識されていません。",
)
MSG_FILE_NOT_FOUND = ("The system cannot find the file specified.", "指定されたファイルが見つかりません。")
MSG_PATH_NOT_FOUND = ("The system cannot find the path specified.", "指定されたパスが見つかりません。")
MSG_ACCESS_DENIED = ("Access is denied.", "アクセスが拒否されました。")
MSG_ECHO_ON = ("ECHO is on.", "ECHO は <ON> です。")
MSG_ACTIVE_CP = ("Active code page: {0}", "現在のコード ページ: {0}")
MSG_INVALID_CP = ("Invalid code page", "無効なコード ページです")  # ja [U]
MSG_DIR_EXISTS = (
    "A subdirectory or file {0} already exists.",
    "サブディレクトリまたはファイル {0} は既に存在します。",
)
MSG_COULD_NOT_FIND = ("Could Not Find {0}", "{0} が見つかりませんでした。")  # ja [U]
MSG_DIR_NOT_EMPTY = ("The directory is not empty.", "ディレクトリが空ではありません。")
MSG_DIR_INVALID = ("The directory name is invalid.", "ディレクトリ名が無効です。")  # ja [U]
# ERROR_SHARING_VIOLATION (32), the system message text
# (https://learn.microsoft.com/en-us/windows/win32/debug/system-error-codes--0-499-); ja [U].
MSG_SHARING_VIOLATION = (
    "The process cannot access the file because it is being used by another process.",
    "プロセスはファイルにアクセスできません。別のプロセスが使用中です。",
)
MSG_ENV_NOT_DEFINED = ("Environment variable {0} not defined", "環境変数 {0} が定義されていません")  # ja [U]
MSG_SYNTAX = ("The syntax of the command is incorrect.", "コマンドの構文が誤っています。")
MSG_UNSUPPORTED = (
    "[rehearsal host] this cmd.exe feature is not emulated: {0}",
    "[rehearsal host] この cmd.exe の機能はエミュレートされていません: {0}",
)

_CODECS = {437: "cp437", 932: "cp932", 65001: "utf-8", 1252: "cp1252", 850: "cp850"}
SUPPORTED_CODEPAGES = frozenset(_CODECS)


def codec(codepage: int) -> str:
    """The Python codec for a Windows code page number."""
    return _CODECS.get(codepage, f"cp{codepage}")


def encode_text(text: str, codepage: int) -> bytes:
    """Encode text as the console would: characters outside the code page become ``?``."""
    return text.encode(codec(codepage), errors="replace")


# --- host defaults -----------------------------------------------------------------------------


def _default_env(host: Host) -> dict[str, str]:
    """Environment a WinRM logon gets when the scenario did not set one.

    Windows Server 2003 keeps profiles under ``C:\\Documents and Settings``; cmd there prints %TEMP%
    in 8.3 form (``C:\\DOCUME~1\\ADMINI~1\\LOCALS~1\\Temp``) — the model has no short names, so the
    long form is used [U: the kit must not depend on either form].
    """
    user = host.env.get("USERNAME", "Administrator")
    legacy = host.windows_version.startswith("5.")
    profile = f"C:\\Documents and Settings\\{user}" if legacy else f"C:\\Users\\{user}"
    temp = f"{profile}\\Local Settings\\Temp" if legacy else f"{profile}\\AppData\\Local\\Temp"
    sysroot = "C:\\WINDOWS" if legacy else "C:\\Windows"
    return {
        "USERNAME": user,
        "USERPROFILE": profile,
        "TEMP": temp,
        "TMP": temp,
        "SystemRoot": sysroot,
        "windir": sysroot,
        "SystemDrive": "C:",
        "COMPUTERNAME": host.hostname.upper(),
        "ComSpec": f"{sysroot}\\system32\\cmd.exe",
        "PATHEXT": ".COM;.EXE;.BAT;.CMD;.VBS;.VBE;.JS;.JSE;.WSF;.WSH",
        "OS": "Windows_NT",
    }


def prepare_host(host: Host) -> None:
    """Give a host the environment variables and folders every Windows logon has (idempotent)."""
    with host.lock:
        present = {k.upper() for k in host.env}
        for name, value in _default_env(host).items():
            if name.upper() not in present:
                host.env[name] = value
        for name in ("USERPROFILE", "TEMP", "SystemRoot"):
            folder = _env_get(host.env, name)
            if folder:
                make_dirs(host, folder)
        sysroot = _env_get(host.env, "SystemRoot")
        if sysroot:
            make_dirs(host, sysroot + "\\system32")


def _env_get(env: dict[str, str], name: str) -> str | None:
    for k, v in env.items():
        if k.upper() == name.upper():
            return v
    return None


def make_dirs(host: Host, path: str) -> None:
    """Create ``path`` and its missing parents in the host's file system."""
    with host.lock:
        parts = Host.norm(path).split("\\")
        for i in range(2, len(parts) + 1):
            host.add_dir("\\".join(parts[:i]))


# --- CommandLineToArgvW --------------------------------------------------------------------------


def split_argv(command_line: str) -> list[str]:
    """Split a command line exactly as CommandLineToArgvW does (Wine's port of the rules).

    argv[0] is taken up to the next double quote (when it starts with one) or whitespace, without
    backslash processing. Later arguments: 2n backslashes + ``"`` → n backslashes and a quote
    toggle; 2n+1 backslashes + ``"`` → n backslashes and a literal ``"``; inside quotes, each
    third consecutive quote is a literal ``"``.
    """
    s = command_line
    n = len(s)
    i = 0
    argv: list[str] = []
    # argv[0]
    while i < n and s[i] in " \t":
        i += 1
    if i >= n:
        return argv
    cur: list[str] = []
    if s[i] == '"':
        i += 1
        while i < n and s[i] != '"':
            cur.append(s[i])
            i += 1
        i += 1  # the closing quote (if any)
    else:
        while i < n and s[i] not in " \t":
            cur.append(s[i])
            i += 1
    argv.append("".join(cur))
    while i < n and s[i] in " \t":
        i += 1
    if i >= n:
        return argv
    cur = []
    qcount = 0
    bcount = 0
    in_arg = True
    while i < n:
        c = s[i]
        if c in " \t" and qcount == 0:
            argv.append("".join(cur))
            cur = []
            bcount = 0
            while i < n and s[i] in " \t":
                i += 1
            in_arg = i < n
            continue
        if c == "\\":
            cur.append(c)
            bcount += 1
            i += 1
            continue
        if c == '"':
            if bcount % 2 == 0:
                del cur[len(cur) - bcount // 2 :]
                qcount += 1
            else:
                del cur[len(cur) - bcount // 2 - 1 :]
                cur.append('"')
            i += 1
            bcount = 0
            while i < n and s[i] == '"':
                qcount += 1
                if qcount == 3:
                    cur.append('"')
                    qcount = 0
                i += 1
            if qcount == 2:
                qcount = 0
            continue
        cur.append(c)
        bcount = 0
        i += 1
    if in_arg:
        argv.append("".join(cur))
    return argv


# --- the interpreter -----------------------------------------------------------------------------


class _Exit(Exception):
    """``exit`` ends the whole ``cmd /c`` line."""


@dataclass
class _Redirect:
    handle: int
    mode: str  # "write" | "append" | "read" | "dup"
    target: str  # path, or the handle digit for "dup"


@dataclass
class _Ctx:
    host: Host
    codepage: int
    env: dict[str, str]
    cwd: str
    stdin: bytes
    errorlevel: int = 0
    out: bytearray = field(default_factory=bytearray)
    err: bytearray = field(default_factory=bytearray)

    def text(self, pair: tuple[str, str], *args: object) -> str:
        return self.host.text(*pair).format(*args)

    def encode(self, text: str) -> bytes:
        return encode_text(text, self.codepage)


@dataclass
class _Streams:
    """Where one simple command writes: a bytearray per handle (1 stdout, 2 stderr)."""

    out: bytearray
    err: bytearray


Builtin = Callable[[_Ctx, str, _Streams, bytes], int | None]


def execute(
    host: Host,
    command_line: str,
    *,
    codepage: int,
    stdin: bytes = b"",
    skip_cmd_shell: bool = False,
) -> CommandResult:
    """Run one WinRS command line as ``cmd /c`` would; save the host's state afterwards.

    With ``skip_cmd_shell`` (WINRS_SKIP_CMD_SHELL) the line goes to the program directly: no
    expansion, no redirection, no built-ins.
    """
    prepare_host(host)
    with host.lock:
        ctx = _Ctx(
            host=host,
            codepage=codepage,
            env=dict(host.env),
            cwd=_env_get(host.env, "USERPROFILE") or "C:\\",
            stdin=stdin,
        )
        try:
            if not skip_cmd_shell and len(command_line) > CMD_LINE_MAX:
                ctx.err.extend(ctx.encode(ctx.text(MSG_LINE_TOO_LONG) + "\r\n"))
                ctx.errorlevel = 1
            elif skip_cmd_shell:
                streams = _Streams(ctx.out, ctx.err)
                rc = _run_program(ctx, command_line, streams, stdin)
                ctx.errorlevel = rc
            else:
                _run_line(ctx, _expand(command_line, ctx.env))
        except _Exit:
            pass
        result = CommandResult(stdout=bytes(ctx.out), stderr=bytes(ctx.err), exit_code=ctx.errorlevel)
        host.history.append({"command": command_line, "exit_code": result.exit_code, "codepage": codepage})
    host.save_state()
    return result


def program_name(command_line: str) -> str:
    """The lower-case name of the command a line starts (``echo`` for ``>>"f" echo x``), for matching."""
    seg = _split_ops(command_line)
    if not seg:
        return ""
    text, _ = _parse_redirects(seg[0][1])
    text = text.lstrip(" \t@").lstrip()
    if not text:
        return ""
    m = re.match(r"[A-Za-z]+", text)
    if m and m.group(0).lower() in _BUILTINS:
        rest = text[m.end() :]
        if not rest or rest[0] in _BUILTIN_DELIMS:
            return m.group(0).lower()
    argv = split_argv(text)
    return program_key(argv[0]) if argv else ""


def program_key(name: str) -> str:
    base = re.split(r"[\\/]", name)[-1].lower()
    for ext in (".exe", ".com"):
        if base.endswith(ext):
            base = base[: -len(ext)]
    return base


def _expand(text: str, env: dict[str, str]) -> str:
    """Phase 1: ``%NAME%`` → value. Undefined names stay as typed (command-line mode, not batch).

    Scanning resumes right after a ``%`` that did not start a defined variable [U: for the rare
    ``%undefined%defined%`` case cmd's resume point is not documented].
    """
    upper = {k.upper(): v for k, v in env.items()}
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "%":
            j = text.find("%", i + 1)
            if j > i + 1:
                name = text[i + 1 : j].upper()
                if name in upper:
                    out.append(upper[name])
                    i = j + 1
                    continue
            out.append("%")
            i += 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _group_end(line: str, open_at: int) -> int:
    """The index just after the ``)`` that closes the ``(`` at ``open_at`` (quotes and nesting
    respected); the end of the line when it is not closed."""
    depth, in_quote = 0, False
    for i in range(open_at, len(line)):
        c = line[i]
        if c == '"':
            in_quote = not in_quote
        elif not in_quote and c == "(":
            depth += 1
        elif not in_quote and c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
    return len(line)


def _split_ops(line: str) -> list[tuple[str, str]]:
    """Split at ``&&``, ``||``, ``&`` (and ``|``) outside quotes → [(operator before, segment)].

    ``if`` and ``for`` take the rest of the line as their body (cmd parses it as part of them).
    """
    result: list[tuple[str, str]] = []
    op = ""
    i = 0
    n = len(line)
    while True:
        start = i
        head = line[start:].lstrip(" \t@").lstrip()
        if re.match(r"(?i)(if|for)[ \t]", head):
            result.append((op, line[start:]))
            return result
        in_quote = False
        if head.startswith("("):
            # A parenthesised block is one command: skip to its closing parenthesis (W-CMD-GROUP).
            i = _group_end(line, line.index("(", start))
        while i < n:
            c = line[i]
            if c == '"':
                in_quote = not in_quote
            elif not in_quote:
                if c == "^":
                    i += 2
                    continue
                if c in "<>" and i + 1 < n and line[i + 1] == "&":
                    i += 2  # n>&m duplicates a handle: not an operator
                    continue
                if c in "&|":
                    break
            i += 1
        result.append((op, line[start:i]))
        if i >= n:
            return result
        if line[i : i + 2] in ("&&", "||"):
            op = line[i : i + 2]
            i += 2
        else:
            op = line[i]
            i += 1


def _parse_redirects(segment: str) -> tuple[str, list[_Redirect]]:
    """Remove redirections from one simple command; remove ``^`` escapes outside quotes.

    The text around a redirection is kept, so ``echo x >f`` keeps the space after ``x`` (as cmd
    does) while ``>f echo x`` does not add one.
    """
    buf: list[str] = []
    redirs: list[_Redirect] = []
    i = 0
    n = len(segment)
    in_quote = False
    while i < n:
        c = segment[i]
        if in_quote:
            buf.append(c)
            if c == '"':
                in_quote = False
            i += 1
            continue
        if c == '"':
            in_quote = True
            buf.append(c)
            i += 1
            continue
        if c == "^":
            if i + 1 < n:
                buf.append(segment[i + 1])
            i += 2
            continue
        if c in "<>":
            handle = 0 if c == "<" else 1
            # A single digit right before the operator names the handle when it starts a token.
            if buf and buf[-1].isdigit() and (len(buf) == 1 or buf[-2] in " \t"):
                handle = int(buf.pop())
            mode = "read" if c == "<" else "write"
            i += 1
            if c == ">" and i < n and segment[i] == ">":
                mode = "append"
                i += 1
            if i < n and segment[i] == "&":
                j = i + 1
                if j < n and segment[j].isdigit():
                    redirs.append(_Redirect(handle, "dup", segment[j]))
                    i = j + 1
                    continue
            while i < n and segment[i] in " \t":
                i += 1
            target: list[str] = []
            q = False
            while i < n:
                ch = segment[i]
                if ch == '"':
                    q = not q
                elif not q and (ch in " \t<>"):
                    break
                elif not q and ch == "^" and i + 1 < n:
                    i += 1
                    target.append(segment[i])
                else:
                    target.append(ch)
                i += 1
            redirs.append(_Redirect(handle, mode, "".join(target)))
            continue
        buf.append(c)
        i += 1
    return "".join(buf), redirs


def _run_line(ctx: _Ctx, line: str) -> int | None:
    """Run a line of ``&&``/``||``/``&`` joined commands; return the last command's own status."""
    last: int | None = None
    for op, segment in _split_ops(line):
        ok = last is None or last == 0
        if op == "&&" and not ok:
            continue
        if op == "||" and ok:
            continue
        if op == "|":
            ctx.err.extend(ctx.encode(ctx.text(MSG_UNSUPPORTED, "| (pipe)") + "\r\n"))
            ctx.errorlevel = last = 1
            continue
        last = _run_simple(ctx, segment)
        if last is not None:
            ctx.errorlevel = last
    return last


def resolve_path(host: Host, path: str, *, cwd: str | None = None) -> str:
    """An absolute Windows path for ``path`` (relative paths against ``cwd`` or %USERPROFILE%)."""
    p = path.replace("/", "\\")
    base = cwd or _env_get(host.env, "USERPROFILE") or "C:\\"
    if re.match(r"^[A-Za-z]:\\", p):
        full = p
    elif re.match(r"^[A-Za-z]:$", p):
        full = p + "\\"
    elif p.startswith("\\"):
        full = base[:2] + p
    else:
        full = base.rstrip("\\") + "\\" + p
    parts: list[str] = []
    for part in full.split("\\"):
        if part in ("", "."):
            continue
        if part == "..":
            if len(parts) > 1:
                parts.pop()
            continue
        parts.append(part)
    return "\\".join(parts) if len(parts) > 1 else parts[0] + "\\"


def _is_nul(path: str) -> bool:
    return re.split(r"[\\/]", path)[-1].lower() in ("nul", "nul:")


def _run_simple(ctx: _Ctx, segment: str, *, streams: _Streams | None = None) -> int | None:
    outer = streams or _Streams(ctx.out, ctx.err)
    head = segment.lstrip(" \t@").lstrip()
    m = re.match(r"(?i)(if|for)(?=[ \t])", head)
    if m:
        # The body of if/for is parsed as its own command line (its redirections are its own).
        return _BUILTINS[m.group(1).lower()](ctx, head[m.end() :], outer, b"")
    if head.startswith("("):
        # ``(A & B)``: the block's commands as one line; its status is its last command's
        # (Microsoft's "Command shell overview": ``(command1 & command2)`` groups; W-CMD-GROUP).
        end = _group_end(head, 0)
        if end > len(head) or head[end - 1] != ")" or head[end:].strip():
            _line(ctx, outer, MSG_UNSUPPORTED, "a block without its closing parenthesis", err=True)
            return 1
        return _run_line(ctx, head[1 : end - 1])
    text, redirs = _parse_redirects(segment)
    # Handle table: where handle 1 and 2 go. A file target is created/truncated before the command runs.
    targets: dict[int, tuple[str, str]] = {1: ("stream", "1"), 2: ("stream", "2")}
    stdin = ctx.stdin  # the WinRS stdin stream, unless "<" says otherwise
    for r in redirs:
        if r.mode == "dup":
            targets[r.handle] = targets.get(int(r.target), ("nul", ""))
            continue
        if r.mode == "read":
            if _is_nul(r.target):
                stdin = b""
                continue
            path = resolve_path(ctx.host, r.target, cwd=ctx.cwd)
            data = ctx.host.read_file(path)
            if data is None:
                outer.err.extend(ctx.encode(ctx.text(MSG_FILE_NOT_FOUND) + "\r\n"))
                return 1
            stdin = data
            continue
        if _is_nul(r.target):
            targets[r.handle] = ("nul", "")
            continue
        path = resolve_path(ctx.host, r.target, cwd=ctx.cwd)
        if ctx.host.is_dir(path):
            outer.err.extend(ctx.encode(ctx.text(MSG_ACCESS_DENIED) + "\r\n"))
            return 1
        if not ctx.host.parent_exists(path):
            outer.err.extend(ctx.encode(ctx.text(MSG_PATH_NOT_FOUND) + "\r\n"))
            return 1
        if r.mode == "write" or ctx.host.read_file(path) is None:
            ctx.host.write_file(path, b"")
        targets[r.handle] = ("file", path)

    local = _Streams(bytearray(), bytearray())
    # The redirection targets stay open (for writing) while the program runs (W-CERTUTIL-HASHFILE-HELD).
    held = [Host.norm(where) for kind, where in targets.values() if kind == "file"]
    for key in held:
        ctx.host.open_for_write[key] = ctx.host.open_for_write.get(key, 0) + 1
    try:
        rc = _dispatch(ctx, text, local, stdin)
    finally:
        for key in held:
            ctx.host.open_for_write[key] -= 1
            if not ctx.host.open_for_write[key]:
                del ctx.host.open_for_write[key]
    for handle, produced in ((1, local.out), (2, local.err)):
        if not produced:
            continue
        kind, where = targets.get(handle, ("stream", str(handle)))
        if kind == "nul":
            continue
        if kind == "file":
            ctx.host.write_file(where, bytes(produced), append=True)
        else:
            (outer.out if where == "1" else outer.err).extend(produced)
    return rc


_BUILTIN_DELIMS = " \t,;=./\\(+:[]"


def _dispatch(ctx: _Ctx, text: str, streams: _Streams, stdin: bytes) -> int | None:
    text = text.lstrip(" \t")
    while text.startswith("@"):
        text = text[1:].lstrip(" \t")
    if not text.strip():
        return None
    m = re.match(r"[A-Za-z]+", text)
    if m:
        word = m.group(0).lower()
        rest = text[m.end() :]
        fn = _BUILTINS.get(word)
        if fn is not None and (not rest or rest[0] in _BUILTIN_DELIMS):
            return fn(ctx, rest, streams, stdin)
    return _run_program(ctx, text, streams, stdin)


def _run_program(ctx: _Ctx, text: str, streams: _Streams, stdin: bytes) -> int:
    argv = split_argv(text)
    if not argv or not argv[0]:
        return 0
    key = program_key(argv[0])
    prog = ctx.host.programs.get(key) or FALLBACK_PROGRAMS.get(key)
    if prog is None:
        streams.err.extend(ctx.encode(ctx.text(MSG_NOT_RECOGNIZED, argv[0]) + "\r\n"))
        return NOT_RECOGNIZED_EXIT
    inv = Invocation(host=ctx.host, argv=argv, stdin=stdin)
    try:
        rc = int(prog(inv))
    except Exception as exc:  # an emulation bug must not take the endpoint down
        log.exception("emulated program %s failed", key)
        inv.write_err(
            f"[rehearsal host] internal error in emulated program {key}: {type(exc).__name__}: {exc}\r\n"
        )
        rc = 1
    streams.out.extend(ctx.encode("".join(inv.out)))
    streams.err.extend(ctx.encode("".join(inv.err)))
    return rc


# --- built-ins -----------------------------------------------------------------------------------


def _args(rest: str) -> list[str]:
    """Built-in argument split: whitespace-separated, double quotes group and are removed."""
    out: list[str] = []
    for m in re.finditer(r'(?:"[^"]*"?|[^\s"])+', rest):
        out.append(m.group(0).replace('"', ""))
    return out


def _line(ctx: _Ctx, streams: _Streams, pair: tuple[str, str], *args: object, err: bool = False) -> None:
    data = ctx.encode(ctx.text(pair, *args) + "\r\n")
    (streams.err if err else streams.out).extend(data)


def _echo(ctx: _Ctx, rest: str, streams: _Streams, stdin: bytes) -> int | None:
    # "echo." / "echo:" / "echo/" print what follows the delimiter (an empty line for "echo.").
    if rest and rest[0] in ".:/\\(+[];=,":
        streams.out.extend(ctx.encode(rest[1:] + "\r\n"))
        return None
    body = rest[1:] if rest else ""  # one delimiter after ECHO is consumed
    if not body.strip():
        _line(ctx, streams, MSG_ECHO_ON)
        return None
    if body.strip().lower() in ("on", "off"):
        return None
    streams.out.extend(ctx.encode(body + "\r\n"))
    return None


def _type(ctx: _Ctx, rest: str, streams: _Streams, stdin: bytes) -> int | None:
    names = _args(rest)
    if not names:
        _line(ctx, streams, MSG_SYNTAX, err=True)
        return 1
    rc: int | None = 0
    for name in names:
        if _is_nul(name):  # the NUL device reads as empty: `type NUL` succeeds (Wine's test_builtins.bat.exp)
            continue
        data = ctx.host.read_file(resolve_path(ctx.host, name, cwd=ctx.cwd))
        if data is None:
            _line(ctx, streams, MSG_FILE_NOT_FOUND, err=True)
            rc = 1
            continue
        streams.out.extend(data)  # bytes as stored: no code page conversion
    return rc


def _delete_one(ctx: _Ctx, streams: _Streams, key: str) -> None:
    """Delete one file unless another process holds it open; a held file stays and DEL says so.

    DeleteFile fails with ERROR_SHARING_VIOLATION (32) while another handle lacks FILE_SHARE_DELETE
    (https://learn.microsoft.com/en-us/windows/win32/api/fileapi/nf-fileapi-deletefilew). DEL prints the
    path and the system message and goes on; its status stays 0 (docs/windows-behaviour.md W-DEL).
    The message layout (path line, then the text) is [U]; nothing may parse it.
    """
    if ctx.host.is_locked(key):
        shown = ctx.host.file_case.get(key, key)
        _line(ctx, streams, ("{0}", "{0}"), shown, err=True)
        _line(ctx, streams, MSG_SHARING_VIOLATION, err=True)
        return
    ctx.host.delete_file(key)


def _del(ctx: _Ctx, rest: str, streams: _Streams, stdin: bytes) -> int | None:
    """DEL / ERASE (docs/windows-behaviour.md rows W-DEL, W-DEL-MISSING, W-DEL-NOPATH).

    Status, as Wine's cmd conformance test expects from Windows (programs/cmd/tests/test_builtins.bat.exp,
    "success/failure for ERASE command"): no argument → 1; a file deleted → 0; a wildcard with no match →
    0 ("Could Not Find"); a path whose folder does not exist → 1. A file that cannot be deleted (held open,
    access denied) leaves the status at 0 with a message on stderr — "DEL: Always clears ERRORLEVEL, even
    if the DEL fails" (https://stackoverflow.com/questions/34968009, experiments on Windows 10); a missing file
    in an existing folder → "Could Not Find" and 0 (same source; https://ss64.com/nt/del.html).
    """
    names = [a for a in _args(rest) if not a.startswith("/")]
    if not names:
        _line(ctx, streams, MSG_SYNTAX, err=True)
        return 1
    rc = 0
    for name in names:
        path = resolve_path(ctx.host, name, cwd=ctx.cwd)
        if not ctx.host.parent_exists(path):
            _line(ctx, streams, MSG_PATH_NOT_FOUND, err=True)
            rc = 1
            continue
        if "*" in path or "?" in path:
            folder, pattern = path.rsplit("\\", 1)
            hits = [k for k in list(ctx.host.files) if k.rsplit("\\", 1)[0] == Host.norm(folder)]
            hits = [k for k in hits if fnmatch.fnmatch(k.rsplit("\\", 1)[1], pattern.lower())]
            if not hits:
                _line(ctx, streams, MSG_COULD_NOT_FIND, path, err=True)
            for k in hits:
                _delete_one(ctx, streams, k)
            continue
        if ctx.host.is_dir(path):  # "del dir" deletes the files in it (after a prompt without /q)
            for k in [k for k in list(ctx.host.files) if k.rsplit("\\", 1)[0] == Host.norm(path)]:
                _delete_one(ctx, streams, k)
            continue
        key = Host.norm(path)
        if key not in ctx.host.files:
            # DEL prints the message but leaves its status at 0 (https://ss64.com/nt/del.html).
            _line(ctx, streams, MSG_COULD_NOT_FIND, path, err=True)
            continue
        _delete_one(ctx, streams, key)
    return rc


def _mkdir(ctx: _Ctx, rest: str, streams: _Streams, stdin: bytes) -> int | None:
    names = _args(rest)
    if not names:
        _line(ctx, streams, MSG_SYNTAX, err=True)
        return 1
    rc = 0
    for name in names:
        path = resolve_path(ctx.host, name, cwd=ctx.cwd)
        if ctx.host.exists(path):
            _line(ctx, streams, MSG_DIR_EXISTS, name, err=True)
            rc = 1
            continue
        # Command extensions (on by default) create the intermediate folders too.
        with ctx.host.lock:
            parts = Host.norm(path).split("\\")
            for i in range(2, len(parts) + 1):
                sub = "\\".join(parts[:i])
                if sub in ctx.host.files:
                    _line(ctx, streams, MSG_PATH_NOT_FOUND, err=True)
                    rc = 1
                    break
                ctx.host.add_dir(sub)
    return rc


def _rmdir(ctx: _Ctx, rest: str, streams: _Streams, stdin: bytes) -> int | None:
    """RMDIR / RD (docs/windows-behaviour.md rows W-RMDIR-SQ, W-RMDIR-SQ-LOCKED).

    Failure statuses as Wine's cmd conformance test expects from Windows (test_builtins.bat.exp,
    "success/failure for RMDIR/RD command"): no argument → 1, not empty → 145 (ERROR_DIR_NOT_EMPTY),
    a file → 267 (ERROR_DIRECTORY), gone → 2, parent gone → 3. RD never sets ERRORLEVEL, but the exit
    code of ``cmd /c`` is the return code of its last command ("The return code returned by CMD /C is
    the return code of the last command executed", https://stackoverflow.com/questions/34936240), so WinRS sees
    these numbers.
    With ``/s``, files another process holds open stay (with the sharing-violation message), and so do
    the folders above them; the exit code of that case is unknown, so the worst case for a caller that
    trusts it is emulated: 0 [assumed].
    """
    args = _args(rest)
    recursive = any(a.lower() == "/s" for a in args)
    names = [a for a in args if not a.startswith("/")]
    if not names:
        _line(ctx, streams, MSG_SYNTAX, err=True)
        return 1
    rc = 0
    for name in names:
        path = Host.norm(resolve_path(ctx.host, name, cwd=ctx.cwd))
        if path in ctx.host.files:
            _line(ctx, streams, MSG_DIR_INVALID, err=True)
            rc = 267  # ERROR_DIRECTORY
            continue
        if path not in ctx.host.dirs:
            if not ctx.host.parent_exists(path):
                _line(ctx, streams, MSG_PATH_NOT_FOUND, err=True)
                rc = 3  # ERROR_PATH_NOT_FOUND
                continue
            _line(ctx, streams, MSG_FILE_NOT_FOUND, err=True)
            rc = 2  # ERROR_FILE_NOT_FOUND
            continue
        with ctx.host.lock:
            inner_files = sorted(k for k in ctx.host.files if k.startswith(path + "\\"))
            inner_dirs = [d for d in ctx.host.dirs if d.startswith(path + "\\")]
            if (inner_files or inner_dirs) and not recursive:
                _line(ctx, streams, MSG_DIR_NOT_EMPTY, err=True)
                rc = 145  # ERROR_DIR_NOT_EMPTY
                continue
            kept: list[str] = []
            for k in inner_files:
                _delete_one(ctx, streams, k)
                if k in ctx.host.files:
                    kept.append(k)
            # A folder stays while it still holds a file (and so do its parents up to ``path``).
            keep_dirs = {path}
            for k in kept:
                parts = k.split("\\")
                for i in range(len(path.split("\\")) + 1, len(parts)):
                    keep_dirs.add("\\".join(parts[:i]))
            for d in inner_dirs:
                if d not in keep_dirs:
                    ctx.host.dirs.discard(d)
            if kept:
                continue  # [assumed] exit code 0: see the docstring
            ctx.host.dirs.discard(path)
    return rc


def _chcp(ctx: _Ctx, rest: str, streams: _Streams, stdin: bytes) -> int | None:
    args = _args(rest)
    if args:
        if not args[0].isdigit() or int(args[0]) not in SUPPORTED_CODEPAGES:
            _line(ctx, streams, MSG_INVALID_CP, err=True)
            return 1
        # Takes effect for the rest of this line; whether it persists across the commands of one
        # WinRS shell is [U], so the model keeps the shell's WINRS_CODEPAGE for the next command.
        ctx.codepage = int(args[0])
    _line(ctx, streams, MSG_ACTIVE_CP, ctx.codepage)
    return 0


def _set(ctx: _Ctx, rest: str, streams: _Streams, stdin: bytes) -> int | None:
    body = rest[1:] if rest else ""
    body = body.strip()
    if body.startswith('"') and body.endswith('"') and len(body) >= 2:
        body = body[1:-1]
    if "=" in body:
        name, _, value = body.partition("=")
        for k in [k for k in ctx.env if k.upper() == name.upper()]:
            del ctx.env[k]
        if value:
            ctx.env[name] = value  # this cmd /c only: the variable dies with the process
        return None
    hits = sorted(
        ((k, v) for k, v in ctx.env.items() if k.upper().startswith(body.upper())),
        key=lambda kv: kv[0].upper(),
    )
    if not hits:
        _line(ctx, streams, MSG_ENV_NOT_DEFINED, body, err=True)
        return 1
    for k, v in hits:
        streams.out.extend(ctx.encode(f"{k}={v}\r\n"))
    return 0


def _ver(ctx: _Ctx, rest: str, streams: _Streams, stdin: bytes) -> int | None:
    streams.out.extend(ctx.encode(f"\r\nMicrosoft Windows [Version {ctx.host.windows_version}]\r\n"))
    return 0


def _hostname(inv: Invocation) -> int:
    inv.write(inv.host.hostname + "\r\n")
    return 0


def _whoami(inv: Invocation) -> int:
    user = _env_get(inv.host.env, "USERNAME") or "administrator"
    inv.write(f"{inv.host.hostname.lower()}\\{user.lower()}\r\n")
    return 0


def ping_count(argv: list[str]) -> int:
    """``ping -n N`` sends N echo requests, about a second apart (default 4):
    https://learn.microsoft.com/en-us/windows-server/administration/windows-commands/ping"""
    for flag, value in zip(argv, argv[1:], strict=False):
        if flag.lower() in ("-n", "/n") and value.isdigit():
            return max(1, int(value))
    return 4


def _ping(inv: Invocation) -> int:
    """ping.exe to a loopback address only (the lab's slow command): N replies, exit 0. The wall-clock
    wait (about N-1 s) is the endpoint's (``server._start``), outside the host's lock."""
    target = next((a for a in inv.argv[1:] if not a.startswith(("-", "/")) and not a.isdigit()), "")
    if not target.startswith("127."):
        inv.write_err(f"Ping request could not find host {target}.\r\n")  # [U] no network in the model
        return 1
    inv.write(f"\r\nPinging {target} with 32 bytes of data:\r\n")
    for _ in range(ping_count(inv.argv)):
        inv.write(f"Reply from {target}: bytes=32 time<1ms TTL=128\r\n")
    return 0


# hostname.exe, whoami.exe and ping.exe (built in since Server 2003) answer even on a bare Host; a
# scenario may register its own under the same name.
FALLBACK_PROGRAMS = {"hostname": _hostname, "whoami": _whoami, "ping": _ping}


def _cd(ctx: _Ctx, rest: str, streams: _Streams, stdin: bytes) -> int | None:
    args = [a for a in _args(rest) if a.lower() != "/d"]
    if not args:
        streams.out.extend(ctx.encode(ctx.cwd + "\r\n"))
        return 0
    path = resolve_path(ctx.host, " ".join(args), cwd=ctx.cwd)
    if not ctx.host.is_dir(path) and len(Host.norm(path)) > 2:
        _line(ctx, streams, MSG_PATH_NOT_FOUND, err=True)
        return 1
    ctx.cwd = path
    return 0


def _rem(ctx: _Ctx, rest: str, streams: _Streams, stdin: bytes) -> int | None:
    return None


MSG_DIR_NO_MATCH = ("File Not Found", "ファイルが見つかりません")  # ja [U]


def _dir(ctx: _Ctx, rest: str, streams: _Streams, stdin: bytes) -> int | None:
    """``dir /b /ad "FOLDER\\PATTERN"`` only (W-DIR-BARE): the bare names of the matching folders, one a
    line, in name order; none → "File Not Found" on stderr and exit 1. Any other form: not emulated."""
    args = _args(rest)
    switches = sorted(a.lower() for a in args if a.startswith("/"))
    names = [a for a in args if not a.startswith("/")]
    if switches != ["/ad", "/b"] or len(names) != 1:
        _line(ctx, streams, MSG_UNSUPPORTED, "dir " + rest.strip(), err=True)
        return 1
    pattern = Host.norm(resolve_path(ctx.host, names[0], cwd=ctx.cwd))
    parent, _, leaf = pattern.rpartition("\\")
    found = sorted(
        d.rpartition("\\")[2]
        for d in ctx.host.dirs
        if d.rpartition("\\")[0] == parent and fnmatch.fnmatchcase(d.rpartition("\\")[2], leaf)
    )
    if not found:
        _line(ctx, streams, MSG_DIR_NO_MATCH, err=True)
        return 1
    for name in found:  # [emulated] folder names as the host keeps them (lower-cased)
        streams.out.extend(ctx.encode(name + "\r\n"))
    return 0


def _exit(ctx: _Ctx, rest: str, streams: _Streams, stdin: bytes) -> int | None:
    args = [a for a in _args(rest) if a.lower() != "/b"]
    if args and re.fullmatch(r"-?\d+", args[0]):
        ctx.errorlevel = int(args[0])
    raise _Exit()


def _token(text: str) -> tuple[str, str]:
    """The next whitespace-delimited token (double quotes kept) and the rest."""
    text = text.lstrip(" \t")
    m = re.match(r'(?:"[^"]*"?|[^\s"])+', text)
    if not m:
        return "", text
    return m.group(0), text[m.end() :]


def _exists(ctx: _Ctx, target: str) -> bool:
    """``if exist``: a file or a folder of that name; ``*``/``?`` match file names (``if /?``)."""
    path = resolve_path(ctx.host, target.replace('"', ""), cwd=ctx.cwd)
    if "*" not in path and "?" not in path:
        return ctx.host.exists(path)
    folder, pattern = path.rsplit("\\", 1)
    return any(
        k.rsplit("\\", 1)[0] == Host.norm(folder) and fnmatch.fnmatch(k.rsplit("\\", 1)[1], pattern.lower())
        for k in ctx.host.files
    )


def _block_end(text: str) -> int | None:
    """Index of the ``)`` that closes the ``(`` at ``text[0]`` (quotes and ``^`` respected), or None."""
    depth = 0
    in_quote = False
    i = 0
    while i < len(text):
        c = text[i]
        if c == '"':
            in_quote = not in_quote
        elif not in_quote:
            if c == "^":
                i += 2
                continue
            if c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
                if depth == 0:
                    return i
        i += 1
    return None


def _if_branches(ctx: _Ctx, body: str, streams: _Streams) -> tuple[str, str | None] | None:
    """Split an IF body into (then, else). ``(block)`` and ``(block) else (block)``/``else cmd``.

    Without parentheses the whole rest of the line is the command and ``else`` is plain text, as in
    cmd. After a closing ``)`` anything but ``else`` (e.g. ``& echo x``) is not emulated — how cmd
    groups it is not settled here [U] — so the line fails loudly instead of guessing.
    """
    text = body.lstrip(" \t")
    if not text.startswith("("):
        return body, None
    end = _block_end(text)
    if end is None:
        _line(ctx, streams, MSG_UNSUPPORTED, "an IF block without its closing parenthesis", err=True)
        return None
    then, tail = text[1:end], text[end + 1 :].strip(" \t")
    if not tail:
        return then, None
    m = re.match(r"(?i)else(?=[ \t(])[ \t]*(.*)$", tail, re.S)
    if not m:
        _line(ctx, streams, MSG_UNSUPPORTED, "text after an IF block: " + tail, err=True)
        return None
    other = m.group(1)
    if other.startswith("("):
        end2 = _block_end(other)
        if end2 is None or other[end2 + 1 :].strip(" \t"):
            _line(ctx, streams, MSG_UNSUPPORTED, "text after an ELSE block", err=True)
            return None
        other = other[1:end2]
    return then, other


def _if(ctx: _Ctx, rest: str, streams: _Streams, stdin: bytes) -> int | None:
    """IF [/I] [NOT] EXIST path | ERRORLEVEL n | a==b, then a command or a ``(block)`` [ELSE …].

    https://learn.microsoft.com/en-us/windows-server/administration/windows-commands/if and ``if /?``:
    ``exist`` is true for a file or a folder; ``errorlevel n`` is true when ERRORLEVEL ≥ n. A false IF
    runs nothing and leaves ERRORLEVEL unchanged (Wine's conformance test test_builtins.bat.exp:
    ``(if 1==0 …) && echo SUCCESS`` keeps the earlier value), so ``if exist "F" (exit /b 1)`` ends
    ``cmd /c`` with 1 exactly when F is still there, and ``exit /b N`` outside a batch file ends cmd
    with N (same test: ``cmd.exe /c "echo foo & exit /b 1024"`` → 1024; https://ss64.com/nt/exit.html).
    docs/windows-behaviour.md row W-IF-EXIST.
    """
    tok, tail = _token(rest)
    if tok.lower() == "/i":
        rest = tail
        tok, tail = _token(rest)
    negate = tok.lower() == "not"
    if negate:
        rest = tail
        tok, tail = _token(rest)
    if tok.lower() == "exist":
        target, body = _token(tail)
        if not target:
            _line(ctx, streams, MSG_SYNTAX, err=True)
            return 1
        cond = _exists(ctx, target)
    elif tok.lower() == "errorlevel":
        number, body = _token(tail)
        if not number.isdigit():
            _line(ctx, streams, MSG_SYNTAX, err=True)
            return 1
        cond = ctx.errorlevel >= int(number)
    else:
        m = re.match(r'\s*("[^"]*"|[^\s=]+)\s*==\s*("[^"]*"|[^\s]+)(.*)$', rest, re.S)
        if not m:
            _line(ctx, streams, MSG_SYNTAX, err=True)
            return 1
        cond = m.group(1) == m.group(2)
        body = m.group(3)
    if not body.strip():
        _line(ctx, streams, MSG_SYNTAX, err=True)
        return 1
    branches = _if_branches(ctx, body, streams)
    if branches is None:
        return 1
    then, other = branches
    chosen = then if cond != negate else other
    if chosen is None:
        return None
    return _run_line(ctx, chosen)


_FOR = re.compile(r"^\s+%(?P<var>[A-Za-z])\s+in\s*\((?P<set>[^)]*)\)\s+do\s+(?P<body>.*)$", re.I | re.S)


def _for(ctx: _Ctx, rest: str, streams: _Streams, stdin: bytes) -> int | None:
    m = _FOR.match(rest)
    if not m:
        if rest.strip().startswith("/"):
            _line(ctx, streams, MSG_UNSUPPORTED, "for " + rest.strip().split()[0], err=True)
        else:
            _line(ctx, streams, MSG_SYNTAX, err=True)
        return 1
    var, body = m.group("var"), m.group("body")
    items: list[str] = []
    for item in re.findall(r'"[^"]*"|[^\s,;="]+', m.group("set")):
        bare = item.replace('"', "")
        if "*" in bare or "?" in bare:
            path = resolve_path(ctx.host, bare, cwd=ctx.cwd)
            folder, pattern = path.rsplit("\\", 1)
            for k in sorted(ctx.host.files):
                if k.rsplit("\\", 1)[0] == Host.norm(folder) and fnmatch.fnmatch(
                    k.rsplit("\\", 1)[1], pattern.lower()
                ):
                    items.append(ctx.host.file_case.get(k, k))
        else:
            items.append(item)
    last: int | None = None
    for item in items:
        line = re.sub(
            r"%(~[fdpnxsz]*)?" + re.escape(var),
            lambda mm, item=item: _for_modifier(ctx, item, mm.group(1) or ""),  # type: ignore[misc]
            body,
        )
        if not line.lstrip().startswith("@"):
            # Echo is on under cmd /c: each iteration's command is echoed after the prompt.
            streams.out.extend(ctx.encode(f"\r\n{ctx.cwd}>{line.strip()}\r\n"))
        last = _run_line(ctx, line)
    return last


def _for_modifier(ctx: _Ctx, item: str, mods: str) -> str:
    """``%~zI`` size, ``%~fI`` full path, ``%~nxI`` name, ``%~I`` without quotes (``for /?``)."""
    if not mods:
        return item
    bare = item.replace('"', "")
    flags = mods[1:]
    if not flags:
        return bare
    full = resolve_path(ctx.host, bare, cwd=ctx.cwd)
    parts: list[str] = []
    if "z" in flags:
        data = ctx.host.read_file(full)
        return str(len(data)) if data is not None else ""
    if "f" in flags:
        return full
    if "d" in flags:
        parts.append(full[:2])
    if "p" in flags:
        parts.append(full[2:].rsplit("\\", 1)[0] + "\\")
    name = full.rsplit("\\", 1)[-1]
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    if "n" in flags:
        parts.append(stem)
    if "x" in flags:
        parts.append("." + ext if ext else "")
    return "".join(parts)


_BUILTINS: dict[str, Builtin] = {
    "echo": _echo,
    "type": _type,
    "del": _del,
    "erase": _del,
    "mkdir": _mkdir,
    "md": _mkdir,
    "rmdir": _rmdir,
    "rd": _rmdir,
    "chcp": _chcp,
    "set": _set,
    "ver": _ver,
    "cd": _cd,
    "chdir": _cd,
    "rem": _rem,
    "dir": _dir,
    "exit": _exit,
    "if": _if,
    "for": _for,
}
