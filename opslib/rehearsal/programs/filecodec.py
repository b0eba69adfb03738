"""certutil's file verbs: ``-decode``, ``-encode`` and ``-hashfile`` on the rehearsal host.

The rest of certutil lives in :mod:`opslib.rehearsal.programs.certutil` (server operations), which
calls :func:`decode`, :func:`encode` and :func:`hashfile` for these verbs. :func:`register`
installs a minimal ``certutil`` that knows only these verbs, for hosts (and tests) without the full one.

Behaviour follows https://learn.microsoft.com/en-us/windows-server/administration/windows-commands/certutil:

* ``certutil [-f] -decode InFile OutFile`` — "Decodes a Base64-encoded file"; ``-encode`` — "Encodes a
  file to Base64". Without ``-f`` ("Force overwrite") an existing OutFile is not replaced: certutil
  fails with ERROR_FILE_EXISTS (``CertUtil: -decode command FAILED: 0x80070050 (WIN32: 80 ERROR_FILE_EXISTS)``).
* ``-encode`` writes ``-----BEGIN CERTIFICATE-----``, 64-character lines and ``-----END CERTIFICATE-----``
  with CRLF line ends (the form the kit strips on download, W-CERTUTIL-ENCODE).
* ``-decode`` accepts base64 with or without the BEGIN/END lines (CryptStringToBinary with
  CRYPT_STRING_BASE64_ANY); long lines are accepted [U: line-length limits of the Server 2003 (V2)
  certutil are untested — the kit always writes the BEGIN/END lines].
* ``certutil -hashfile InFile [HashAlgorithm]`` prints ``<ALG> hash of file <name>:``, the digest in hex,
  and the success line. Windows 7/2008 R2 print the hex as space-separated pairs, Windows 8+ without
  spaces. On Server 2003 ``-hashfile`` with SHA256 is [U]; the model refuses it there
  (NTE_BAD_ALGID) so that the kit's size-only fallback is exercised.

Success/failure is decided by the exit code; certutil's exit code on failure is the HRESULT
(commonly observed, [U] per W-CERTUTIL-HASHFILE). Messages are localized (ja: ``CertUtil: -hashfile
コマンドは正常に完了しました。`` is captured output; the ja ``入力長``/``出力長`` labels are [U]).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re

from ..host import Host, Invocation

HRESULT_FILE_NOT_FOUND = -2147024894  # 0x80070002 ERROR_FILE_NOT_FOUND
HRESULT_FILE_EXISTS = -2147024816  # 0x80070050 ERROR_FILE_EXISTS
HRESULT_PATH_NOT_FOUND = -2147024893  # 0x80070003 ERROR_PATH_NOT_FOUND
HRESULT_BAD_DATA = -2146893819  # 0x80090005 NTE_BAD_DATA
HRESULT_BAD_ALGID = -2146893816  # 0x80090008 NTE_BAD_ALGID
HRESULT_INVALID_ARG = -2147024809  # 0x80070057 E_INVALIDARG
HRESULT_SHARING_VIOLATION = -2147024864  # 0x80070020 ERROR_SHARING_VIOLATION (W-CERTUTIL-HASHFILE-HELD)
HRESULT_FILE_INVALID = -2147023890  # 0x800703EE ERROR_FILE_INVALID (W-CERTUTIL-HASHFILE-EMPTY)

_HEX = {
    HRESULT_FILE_NOT_FOUND: (
        "0x80070002 (WIN32: 2 ERROR_FILE_NOT_FOUND)",
        "The system cannot find the file specified.",
        "指定されたファイルが見つかりません。",
    ),
    HRESULT_FILE_EXISTS: (
        "0x80070050 (WIN32: 80 ERROR_FILE_EXISTS)",
        "The file exists.",
        "ファイルが存在します。",
    ),
    HRESULT_PATH_NOT_FOUND: (
        "0x80070003 (WIN32: 3 ERROR_PATH_NOT_FOUND)",
        "The system cannot find the path specified.",
        "指定されたパスが見つかりません。",
    ),
    HRESULT_BAD_DATA: ("0x80090005 (-2146893819 NTE_BAD_DATA)", "Bad Data.", "無効なデータです。"),
    HRESULT_BAD_ALGID: (
        "0x80090008 (-2146893816 NTE_BAD_ALGID)",
        "Invalid algorithm specified.",
        "指定されたアルゴリズムは無効です。",
    ),
    HRESULT_INVALID_ARG: (
        "0x80070057 (WIN32: 87 ERROR_INVALID_PARAMETER)",
        "The parameter is incorrect.",
        "パラメーターが間違っています。",
    ),
    HRESULT_SHARING_VIOLATION: (
        "0x80070020 (WIN32: 32 ERROR_SHARING_VIOLATION)",
        "The process cannot access the file because it is being used by another process.",
        "プロセスはファイルにアクセスできません。別のプロセスが使用中です。",  # [U]
    ),
    HRESULT_FILE_INVALID: (
        "0x800703ee (WIN32: 1006 ERROR_FILE_INVALID)",
        "The volume for a file has been externally altered so that the opened file is no longer valid.",
        "ファイルのボリュームが外部から変更されたため、開かれているファイルは無効になりました。",  # [U]
    ),
}

# An "antivirus" (host.extra["hashfile_held_reads"] = N): each file written by certutil -decode is held
# open for its next N ``-hashfile`` reads, which fail with ERROR_SHARING_VIOLATION as on real Windows while
# a scanner holds a fresh file (W-CERTUTIL-HASHFILE-HELD); host.extra["hashfile_held"] counts per file.
HELD_READS = "hashfile_held_reads"


_PEM_LINE = re.compile(r"^-----(BEGIN|END)[^-\r\n]*-----\s*$", re.M)
_HASHES = {"MD5": "md5", "SHA1": "sha1", "SHA256": "sha256", "SHA384": "sha384", "SHA512": "sha512"}


def _options(argv: list[str]) -> tuple[set[str], list[str]]:
    """Split certutil's ``-x``/``/x`` switches (lower-cased, without the dash) from its operands."""
    switches: set[str] = set()
    operands: list[str] = []
    for arg in argv[1:]:
        if len(arg) > 1 and arg[0] in "-/" and not re.match(r"^[A-Za-z]:", arg):
            switches.add(arg[1:].lower())
        else:
            operands.append(arg)
    return switches, operands


def fail(
    inv: Invocation,
    verb: str,
    hresult: int,
    *,
    tool: str = "CertUtil",
    messages: dict[int, tuple[str, str, str]] | None = None,
) -> int:
    """Print certutil's two failure lines (verb FAILED: code, then the system message); return the HRESULT."""
    code, en, ja = (messages or _HEX)[hresult]
    inv.say(f"{tool}: -{verb} command FAILED: {code}", f"{tool}: -{verb} コマンドは失敗しました: {code}")
    inv.say(f"{tool}: {en}", f"{tool}: {ja}")
    return hresult


def done(inv: Invocation, verb: str) -> int:
    """certutil's success line (captured output, W-CERTUTIL-EXITCODE)."""
    inv.say(
        f"CertUtil: -{verb} command completed successfully.",
        f"CertUtil: -{verb} コマンドは正常に完了しました。",
    )
    return 0


def resolve(inv: Invocation, name: str) -> str:
    from ..cmd import resolve_path

    return resolve_path(inv.host, name)


def _transform(inv: Invocation, verb: str) -> tuple[bytes, str] | int:
    """Common part of -decode/-encode: read InFile, check OutFile; returns (data, out path) or an exit code."""
    switches, operands = _options(inv.argv)
    if len(operands) != 2:
        return fail(inv, verb, HRESULT_INVALID_ARG)
    src, dst = (resolve(inv, p) for p in operands)
    data = inv.host.read_file(src)
    if data is None:
        return fail(inv, verb, HRESULT_FILE_NOT_FOUND)
    if inv.host.exists(dst) and "f" not in switches:
        return fail(inv, verb, HRESULT_FILE_EXISTS)
    if not inv.host.parent_exists(dst) or inv.host.is_dir(dst):
        return fail(inv, verb, HRESULT_PATH_NOT_FOUND)
    return data, dst


def decode(inv: Invocation) -> int:
    """``certutil [-f] -decode InFile OutFile``."""
    got = _transform(inv, "decode")
    if isinstance(got, int):
        return got
    data, dst = got
    text = data.decode("latin-1")
    text = _PEM_LINE.sub("", text)
    compact = re.sub(r"\s+", "", text)
    try:
        raw = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return fail(inv, "decode", HRESULT_BAD_DATA)
    inv.host.write_file(dst, raw)
    if inv.host.extra.get(HELD_READS):
        inv.host.extra.setdefault("hashfile_held", {})[Host.norm(dst)] = int(inv.host.extra[HELD_READS])
    inv.say(f"Input Length = {len(data)}", f"入力長 = {len(data)}")
    inv.say(f"Output Length = {len(raw)}", f"出力長 = {len(raw)}")
    return done(inv, "decode")


def encode(inv: Invocation) -> int:
    """``certutil [-f] -encode InFile OutFile``."""
    got = _transform(inv, "encode")
    if isinstance(got, int):
        return got
    data, dst = got
    b64 = base64.b64encode(data).decode("ascii")
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    out = (
        "-----BEGIN CERTIFICATE-----\r\n"
        + "".join(f"{line}\r\n" for line in lines)
        + "-----END CERTIFICATE-----\r\n"
    )
    encoded = out.encode("ascii")
    inv.host.write_file(dst, encoded)
    inv.say(f"Input Length = {len(data)}", f"入力長 = {len(data)}")
    inv.say(f"Output Length = {len(encoded)}", f"出力長 = {len(encoded)}")
    return done(inv, "encode")


def hashfile(inv: Invocation) -> int:
    """``certutil -hashfile InFile [HashAlgorithm]`` (default SHA1)."""
    _, operands = _options(inv.argv)
    if not operands:
        return fail(inv, "hashfile", HRESULT_INVALID_ARG)
    alg = operands[1].upper() if len(operands) > 1 else "SHA1"
    if alg not in _HASHES:
        return fail(inv, "hashfile", HRESULT_BAD_ALGID)
    if alg != "SHA1" and inv.host.windows_version.startswith("5."):
        return fail(inv, "hashfile", HRESULT_BAD_ALGID)  # [U] see the module docstring
    path = resolve(inv, operands[0])
    data = inv.host.read_file(path)
    if data is None:
        return fail(inv, "hashfile", HRESULT_FILE_NOT_FOUND)
    if inv.host.open_for_write.get(Host.norm(path)):
        # Another process (the cmd running the line, through a redirection) holds it open for writing.
        return fail(inv, "hashfile", HRESULT_SHARING_VIOLATION)  # W-CERTUTIL-HASHFILE-HELD
    held = inv.host.extra.get("hashfile_held", {})
    if held.get(Host.norm(path), 0) > 0:
        held[Host.norm(path)] -= 1
        return fail(inv, "hashfile", HRESULT_SHARING_VIOLATION)
    if not data:
        return fail(inv, "hashfile", HRESULT_FILE_INVALID)  # a zero-byte file (W-CERTUTIL-HASHFILE-EMPTY)
    digest = hashlib.new(_HASHES[alg], data).hexdigest()
    spaced = inv.host.windows_version.split(".")[:2] in (["5", "2"], ["6", "0"], ["6", "1"])
    shown = " ".join(digest[i : i + 2] for i in range(0, len(digest), 2)) if spaced else digest
    inv.say(f"{alg} hash of file {operands[0]}:", f"{alg} ハッシュ (対象 {operands[0]}):")  # ja label [U]
    inv.write(shown + "\r\n")
    return done(inv, "hashfile")


VERBS = {"decode": decode, "encode": encode, "hashfile": hashfile}


def certutil_file_verbs(inv: Invocation) -> int:
    """A certutil that knows only the file verbs (the full one is ``programs/certutil.py``)."""
    switches, _ = _options(inv.argv)
    for verb, fn in VERBS.items():
        if verb in switches:
            return fn(inv)
    verb = next(iter(sorted(switches - {"f"})), "")
    inv.write(f"CertUtil: Unknown arg: -{verb}\r\n")
    return fail(inv, verb or "?", HRESULT_INVALID_ARG)


def register(host: Host) -> None:
    """Install the file-verb certutil unless a fuller certutil is already registered."""
    host.programs.setdefault("certutil", certutil_file_verbs)
