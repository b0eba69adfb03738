"""``reg.exe`` of the rehearsal host: query, add, delete, export, import.

Sources: ``reg /?`` syntax (https://learn.microsoft.com/en-us/windows-server/administration/windows-commands/reg);
the export file format is regedit 5 — UTF-16LE with BOM, header ``Windows Registry Editor Version
5.00``, a blank line before each ``[KEY]``, ``"Name"=hex:xx,xx,…`` wrapped with ``,\\`` + CRLF + two
spaces once a line reaches 77 characters, CRLF line ends (Wine's ``programs/reg/export.c``, which
reproduces reg.exe byte for byte: MAX_HEX_CHARS 77, header ``\\uFEFFWindows Registry Editor Version
5.00\\r\\n``; https://github.com/wine-mirror/wine/blob/master/programs/reg/export.c ; the UTF-16LE +
BOM default also in http://ugts.azurewebsites.net/data/UGTS/document/2/3/36.aspx).

Exit codes: 0 success, 1 failure (reg.exe documents "0 successful, 1 failed" in ``reg query /?``).
Messages: English as reg.exe prints them; the Japanese wording is [U] (no captured output found).

Emulation choices where Windows behaviour is unknown:
* The ``! REG.EXE VERSION 3.0`` banner and tab-separated ``reg query`` lines of XP/2003 reg.exe are [U]
  (W-REG-EXPORT); emitted on 5.x hosts so that nothing parses that text.
* ``reg export … /y`` is not in the XP/2003 usage text as we remember it [U]; refused on 5.x so the
  kit must avoid it (it exports to a fresh file name instead).
* ``reg query HKU\\S-1-5-19`` fails with "Access is denied." for non-administrators [I]: the
  LocalService hive is readable only by administrators and SYSTEM — a common batch-file admin probe.
"""

from __future__ import annotations

import re
from typing import Any

from ..host import Host, Invocation

ROOTS = {
    "HKLM": "HKEY_LOCAL_MACHINE",
    "HKCU": "HKEY_CURRENT_USER",
    "HKCR": "HKEY_CLASSES_ROOT",
    "HKU": "HKEY_USERS",
    "HKCC": "HKEY_CURRENT_CONFIG",
}
_LONG = {v: k for k, v in ROOTS.items()}
LOCAL_SERVICE_HIVE = r"HKU\S-1-5-19"
TYPES = ("REG_SZ", "REG_EXPAND_SZ", "REG_MULTI_SZ", "REG_DWORD", "REG_BINARY", "REG_NONE", "REG_QWORD")
_TYPE_IDS = {
    "REG_NONE": 0,
    "REG_SZ": 1,
    "REG_EXPAND_SZ": 2,
    "REG_BINARY": 3,
    "REG_DWORD": 4,
    "REG_MULTI_SZ": 7,
}
_ID_TYPES = {v: k for k, v in _TYPE_IDS.items()} | {0xB: "REG_QWORD"}

OK = ("The operation completed successfully.", "この操作を正しく終了しました。")
NOT_FOUND = (
    "ERROR: The system was unable to find the specified registry key or value.",
    "エラー: 指定されたレジストリ キーまたは値が見つかりませんでした。",
)
ACCESS_DENIED = ("ERROR: Access is denied.", "エラー: アクセスが拒否されました。")
INVALID_SYNTAX = ("ERROR: Invalid syntax.", "エラー: 無効な構文です。")
CANCELLED = ("The operation was cancelled by the user.", "この操作はユーザーによって取り消されました。")


# --- key names -------------------------------------------------------------------------------------


def short_key(key: str) -> str | None:
    """``HKEY_LOCAL_MACHINE\\X`` / ``HKLM\\X`` → ``HKLM\\X`` (None when the root is unknown)."""
    key = key.strip().rstrip("\\")
    root, _, rest = key.partition("\\")
    r = root.upper()
    if r in ROOTS:
        short = r
    elif r in _LONG:
        short = _LONG[r]
    else:
        return None
    return short + ("\\" + rest if rest else "")


def long_key(host: Host, key: str) -> str:
    """The key as Windows prints it (long root name, the case it was created with)."""
    k = key.rstrip("\\")
    shown = host.registry_case.get(k.upper(), k)
    root, _, rest = shown.partition("\\")
    return ROOTS.get(root.upper(), root) + ("\\" + rest if rest else "")


def key_exists(host: Host, key: str) -> bool:
    k = key.rstrip("\\").upper()
    if "\\" not in k:
        return k in ROOTS
    if k == LOCAL_SERVICE_HIVE.upper():
        return True  # a loaded hive on every Windows host
    return k in host.registry or any(x.startswith(k + "\\") for x in host.registry)


def subkeys(host: Host, key: str) -> list[str]:
    """Immediate subkey names, in the case-insensitive order the registry enumerates them."""
    k = key.rstrip("\\").upper() + "\\"
    names: dict[str, str] = {}
    for x in host.registry:
        if x.startswith(k):
            first = x[len(k) :].split("\\")[0]
            shown = host.registry_case.get(k[:-1] + "\\" + first, None)
            names.setdefault(first, shown.rsplit("\\", 1)[-1] if shown else first)
    return [names[n] for n in sorted(names)]


def ensure_key(host: Host, key: str) -> None:
    with host.lock:
        k = key.rstrip("\\").upper()
        host.registry.setdefault(k, {})
        host.registry_case.setdefault(k, key.rstrip("\\"))


# --- value formatting ------------------------------------------------------------------------------


def _query_data(type_: str, data: Any) -> str:
    if isinstance(data, bytes):
        return data.hex().upper()
    if type_ == "REG_DWORD":
        return f"0x{int(data):x}"
    if isinstance(data, list):
        return "\\0".join(data)
    return str(data)


def _value_bytes(type_: str, data: Any) -> bytes:
    if isinstance(data, bytes):
        return data
    if type_ == "REG_DWORD":
        return int(data).to_bytes(4, "little")
    if type_ == "REG_MULTI_SZ":
        return ("\0".join(data) + "\0\0").encode("utf-16-le")
    return (str(data) + "\0").encode("utf-16-le")


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def export_value(name: str, type_: str, data: Any) -> str:
    """One value in regedit-5 form (lines joined with CRLF, no trailing CRLF)."""
    head = f'"{_escape(name)}"=' if name else "@="
    if type_ == "REG_SZ":
        return head + f'"{_escape(str(data))}"'
    if type_ == "REG_DWORD" and not isinstance(data, bytes):
        return head + f"dword:{int(data):08x}"
    raw = _value_bytes(type_, data)
    prefix = "hex:" if type_ == "REG_BINARY" else f"hex({_TYPE_IDS.get(type_, 0):x}):"
    out = head + prefix
    column = len(out)
    for i, byte in enumerate(raw):
        out += f"{byte:02x}"
        if i == len(raw) - 1:
            break
        out += ","
        column += 3
        if column >= 77:  # MAX_HEX_CHARS in Wine's reg export, matching reg.exe
            out += "\\\r\n  "
            column = 2
    return out


def export_text(host: Host, key: str) -> str:
    """The whole regedit-5 text of ``key`` and its subkeys (without the BOM)."""
    parts = ["Windows Registry Editor Version 5.00\r\n"]

    def walk(k: str) -> None:
        parts.append(f"\r\n[{long_key(host, k)}]\r\n")
        for name, type_, data in host.registry.get(k.upper(), {}).values():
            parts.append(export_value(name, type_, data) + "\r\n")
        for sub in subkeys(host, k):
            walk(k + "\\" + sub)

    walk(key.rstrip("\\"))
    parts.append("\r\n")
    return "".join(parts)


# --- .reg import parser (the emulation's own; the kit has a separate one) -------------------------


def parse_reg_file(data: bytes) -> list[tuple[str, str | None, str | None, Any]]:
    """Operations of a .reg file: (key, None, None, None) create / ("-"+key, …) delete key /
    (key, name, type, data) set value / (key, name, None, None) delete value. Raises ValueError."""
    if data.startswith(b"\xff\xfe"):
        text = data[2:].decode("utf-16-le")
    elif data.startswith(b"\xef\xbb\xbf"):
        text = data[3:].decode("utf-8")
    else:
        text = data.decode("latin-1")
    lines = text.replace("\r\n", "\n").split("\n")
    if not lines or lines[0].strip() not in ("Windows Registry Editor Version 5.00", "REGEDIT4"):
        raise ValueError("not a registry script")
    logical: list[str] = []
    buf = ""
    for line in lines[1:]:
        if buf:
            line = line.lstrip()
        if line.endswith("\\") and not line.startswith("["):
            buf += line[:-1]
            continue
        logical.append(buf + line)
        buf = ""
    if buf:
        logical.append(buf)
    ops: list[tuple[str, str | None, str | None, Any]] = []
    current: str | None = None
    for line in logical:
        s = line.strip()
        if not s or s.startswith(";"):
            continue
        if s.startswith("[") and s.endswith("]"):
            inner = s[1:-1]
            if inner.startswith("-"):
                k = short_key(inner[1:])
                if k is None:
                    raise ValueError(f"bad key {inner!r}")
                ops.append(("-" + k, None, None, None))
                current = None
            else:
                k = short_key(inner)
                if k is None:
                    raise ValueError(f"bad key {inner!r}")
                ops.append((k, None, None, None))
                current = k
            continue
        if current is None:
            raise ValueError(f"value outside a key: {s[:40]!r}")
        m = re.match(r'^(@|"((?:[^"\\]|\\.)*)")\s*=\s*(.*)$', s)
        if not m:
            raise ValueError(f"bad line {s[:40]!r}")
        name = "" if m.group(1) == "@" else re.sub(r"\\(.)", r"\1", m.group(2))
        rhs = m.group(3)
        if rhs == "-":
            ops.append((current, name, None, None))
        elif rhs.startswith('"'):
            ops.append((current, name, "REG_SZ", re.sub(r"\\(.)", r"\1", rhs[1:-1])))
        elif rhs.lower().startswith("dword:"):
            ops.append((current, name, "REG_DWORD", int(rhs[6:], 16)))
        else:
            hm = re.match(r"^hex(?:\(([0-9a-fA-F]+)\))?:(.*)$", rhs)
            if not hm:
                raise ValueError(f"bad value {rhs[:40]!r}")
            type_id = int(hm.group(1), 16) if hm.group(1) else 3
            raw = bytes(int(x, 16) for x in hm.group(2).replace(" ", "").split(",") if x)
            type_ = _ID_TYPES.get(type_id, "REG_BINARY")
            value: Any = raw
            if type_ in ("REG_SZ", "REG_EXPAND_SZ"):
                value = raw.decode("utf-16-le").rstrip("\0")
            elif type_ == "REG_MULTI_SZ":
                value = [x for x in raw.decode("utf-16-le").split("\0") if x]
            elif type_ == "REG_DWORD":
                value = int.from_bytes(raw[:4], "little")
            ops.append((current, name, type_, value))
    return ops


# --- the program -----------------------------------------------------------------------------------


def _say(inv: Invocation, msg: tuple[str, str], *, err: bool = False) -> None:
    inv.say(msg[0], msg[1], err=err)


def _opts(args: list[str]) -> tuple[list[str], dict[str, str | bool]]:
    """Split positional arguments and ``/x [value]`` switches (value-taking: /v /t /d /s /se)."""
    takes_value = {"/v", "/t", "/d", "/se"}
    pos: list[str] = []
    opts: dict[str, str | bool] = {}
    i = 0
    while i < len(args):
        a = args[i]
        low = a.lower()
        if low.startswith(("/", "-")) and len(a) > 1 and not re.match(r"^[a-zA-Z]:", a):
            low = "/" + low[1:]
            if low in takes_value:
                if i + 1 >= len(args):
                    raise ValueError(low)
                opts[low] = args[i + 1]
                i += 2
                continue
            opts[low] = True
        else:
            pos.append(a)
        i += 1
    return pos, opts


def _denied_write(inv: Invocation, key: str) -> bool:
    if not inv.host.is_admin and key.upper().startswith(("HKLM", "HKU")):
        _say(inv, ACCESS_DENIED, err=True)
        return True
    return False


def _confirm(inv: Invocation) -> bool:
    """reg.exe's Yes/No prompts read the console; over WinRM there is only the stdin we were given [U]."""
    answer = inv.stdin.decode("ascii", "replace").strip().lower()
    return answer.startswith("y")


def _is_legacy(host: Host) -> bool:
    return host.windows_version.startswith("5.")


def _query(inv: Invocation, args: list[str]) -> int:
    host = inv.host
    pos, opts = _opts(args)
    key = short_key(pos[0]) if pos else None
    if key is None or len(pos) != 1:
        _say(inv, INVALID_SYNTAX, err=True)
        return 1
    if key.upper() == LOCAL_SERVICE_HIVE.upper() or key.upper().startswith(LOCAL_SERVICE_HIVE.upper() + "\\"):
        if not host.is_admin:
            _say(inv, ACCESS_DENIED, err=True)
            return 1
    if not key_exists(host, key):
        _say(inv, NOT_FOUND, err=True)
        return 1
    legacy = _is_legacy(host)
    sep = "\t" if legacy else "    "
    out: list[str] = []
    if legacy:
        out.append("\r\n! REG.EXE VERSION 3.0\r\n")
    name_filter = opts.get("/v")
    want_default = bool(opts.get("/ve"))
    recursive = bool(opts.get("/s"))
    matches = 0

    def show(k: str) -> None:
        nonlocal matches
        values = list(host.registry.get(k.upper(), {}).values())
        if isinstance(name_filter, str):
            values = [v for v in values if v[0].upper() == name_filter.upper()]
        elif want_default:
            values = [v for v in values if v[0] == ""]
        if values or not (name_filter or want_default):
            out.append(f"\r\n{long_key(host, k)}\r\n")
        for name, type_, data in values:
            shown = name or "(Default)"
            out.append(f"    {shown}{sep}{type_}{sep}{_query_data(type_, data)}\r\n")
            matches += 1
        subs = subkeys(host, k)
        if recursive:
            for sub in subs:
                show(k + "\\" + sub)
        elif not (name_filter or want_default):
            out.append("\r\n" if subs else "")
            for sub in subs:
                out.append(f"{long_key(host, k + chr(92) + sub)}\r\n")

    show(key)
    if (name_filter or want_default) and not matches:
        _say(inv, NOT_FOUND, err=True)
        return 1
    for part in out:
        inv.write(part)
    inv.write("\r\n")
    if recursive and not legacy:
        inv.say(f"End of search: {matches} match(es) found.", f"検索の終わり: {matches} 件見つかりました。")
    return 0


def _parse_data(type_: str, data: str, sep: str) -> Any:
    if type_ == "REG_BINARY" or type_ == "REG_NONE":
        if len(data) % 2 or not re.fullmatch(r"[0-9a-fA-F]*", data):
            raise ValueError("binary data")
        return bytes.fromhex(data)
    if type_ == "REG_DWORD":
        return int(data, 0) if data else 0
    if type_ == "REG_MULTI_SZ":
        return [x for x in data.split(sep) if x]
    return data


def _add(inv: Invocation, args: list[str]) -> int:
    host = inv.host
    pos, opts = _opts(args)
    key = short_key(pos[0]) if len(pos) == 1 else None
    type_ = str(opts.get("/t", "REG_SZ")).upper()
    if key is None or "\\" not in key or type_ not in TYPES:
        _say(inv, INVALID_SYNTAX, err=True)
        return 1
    if _denied_write(inv, key):
        return 1
    name = "" if opts.get("/ve") else opts.get("/v")
    if not isinstance(name, str):  # no /v and no /ve: create the key only
        ensure_key(host, key)
        _say(inv, OK)
        return 0
    try:
        value = _parse_data(type_, str(opts.get("/d", "")), str(opts.get("/se", "\\0")))
    except ValueError:
        _say(inv, INVALID_SYNTAX, err=True)
        return 1
    if host.reg_get(key, name) is not None and not opts.get("/f"):
        inv.write(f"Value {name or '(Default)'} exists, overwrite(Yes/No)? ")
        if not _confirm(inv):
            _say(inv, CANCELLED)
            return 1  # [U] exit code after a refused prompt
    ensure_key(host, key)
    host.reg_set(key, name, type_, value)
    _say(inv, OK)
    return 0


def _delete(inv: Invocation, args: list[str]) -> int:
    host = inv.host
    pos, opts = _opts(args)
    key = short_key(pos[0]) if len(pos) == 1 else None
    if key is None or "\\" not in key:
        _say(inv, INVALID_SYNTAX, err=True)
        return 1
    if _denied_write(inv, key):
        return 1
    if not key_exists(host, key):
        _say(inv, NOT_FOUND, err=True)
        return 1
    name = "" if opts.get("/ve") else opts.get("/v")
    if not opts.get("/f"):
        what = f"value {name}" if isinstance(name, str) else f"registry key {long_key(host, key)}"
        inv.write(f"Permanently delete the {what} (Yes/No)? ")
        if not _confirm(inv):
            _say(inv, CANCELLED)
            return 1
    with host.lock:
        if isinstance(name, str):
            values = host.registry.get(key.upper(), {})
            if name.upper() not in values:
                _say(inv, NOT_FOUND, err=True)
                return 1
            del values[name.upper()]
        elif opts.get("/va"):
            host.registry.get(key.upper(), {}).clear()
        else:
            host.reg_delete_key(key)
    _say(inv, OK)
    return 0


def _export(inv: Invocation, args: list[str]) -> int:
    host = inv.host
    pos, opts = _opts(args)
    key = short_key(pos[0]) if len(pos) == 2 else None
    if key is None or set(opts) - {"/y"} or (opts.get("/y") and _is_legacy(host)):
        _say(inv, INVALID_SYNTAX, err=True)
        return 1
    if not key_exists(host, key):
        _say(inv, NOT_FOUND, err=True)
        return 1
    path = resolve_path(host, pos[1])
    if not host.parent_exists(path):
        inv.say(
            "ERROR: The system cannot find the path specified.",
            "エラー: 指定されたパスが見つかりません。",
            err=True,
        )
        return 1
    if host.exists(path) and not opts.get("/y"):
        inv.write(f"File {pos[1]} already exists. Overwrite (Yes/No)? ")
        if not _confirm(inv):
            _say(inv, CANCELLED)
            return 1
    host.write_file(path, b"\xff\xfe" + export_text(host, key).encode("utf-16-le"))
    _say(inv, OK)
    return 0


def _import(inv: Invocation, args: list[str]) -> int:
    host = inv.host
    pos, _opts_ = _opts(args)
    if len(pos) != 1:
        _say(inv, INVALID_SYNTAX, err=True)
        return 1
    data = host.read_file(resolve_path(host, pos[0]))
    if data is None:
        inv.say(
            "ERROR: Error opening the file. There may be a disk or file system error.",
            "エラー: ファイルを開けませんでした。ディスクまたはファイル システムのエラーの可能性があります。",
            err=True,
        )
        return 1
    try:
        ops = parse_reg_file(data)
    except (ValueError, UnicodeDecodeError):
        inv.say(
            "ERROR: The specified file is not a registry file. You can import only registry files.",
            "エラー: 指定されたファイルはレジストリ ファイルではありません。",
            err=True,
        )
        return 1
    if not host.is_admin and any(op[0].lstrip("-").upper().startswith(("HKLM", "HKU")) for op in ops):
        inv.say(
            "ERROR: Error accessing the registry.",
            "エラー: レジストリへのアクセス中にエラーが発生しました。",
            err=True,
        )
        return 1
    with host.lock:
        for key, name, type_, value in ops:
            if key.startswith("-"):
                host.reg_delete_key(key[1:])
            elif name is None:
                ensure_key(host, key)
            elif type_ is None:
                host.registry.get(key.upper(), {}).pop(name.upper(), None)
            else:
                host.reg_set(key, name, type_, value)
    _say(inv, OK)
    return 0


def resolve_path(host: Host, path: str) -> str:
    """An absolute Windows path, resolved as the interpreter resolves it."""
    from ..cmd import resolve_path as _resolve  # lazy: cmd imports the programs package

    return _resolve(host, path.strip('"'))


def reg(inv: Invocation) -> int:
    args = inv.argv[1:]
    if not args or args[0] in ("/?", "-?"):
        inv.write(
            "\r\nREG Operation [Parameter List]\r\n\r\n"
            "  Operation  [ QUERY   | ADD    | DELETE  | COPY    |\r\n"
            "               SAVE    | LOAD   | UNLOAD  | RESTORE |\r\n"
            "               COMPARE | EXPORT | IMPORT  ]\r\n\r\n"
            "Return Code: (Except for REG COMPARE)\r\n\r\n  0 - Successful\r\n  1 - Failed\r\n"
        )
        return 0 if args else 1
    verb = args[0].lower()
    rest = args[1:]
    handlers = {"query": _query, "add": _add, "delete": _delete, "export": _export, "import": _import}
    handler = handlers.get(verb)
    if handler is None:
        _say(inv, INVALID_SYNTAX, err=True)
        inv.say('Type "REG /?" for usage.', '使い方を表示するには "REG /?" と入力してください。', err=True)
        return 1
    if rest and rest[0] in ("/?", "-?"):
        inv.write(f"\r\nREG {verb.upper()} /?\r\n")
        return 0
    try:
        return handler(inv, rest)
    except ValueError:
        _say(inv, INVALID_SYNTAX, err=True)
        return 1


def register(host: Host) -> None:
    host.programs["reg"] = reg
