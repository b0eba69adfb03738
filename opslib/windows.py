"""Windows server operations: certificate stores, pending requests, root disabling, PFX export.

Every fact comes from exit codes, bytes and registry values, never from localized text
(``shared/reference/windows-commands.md`` §0):

* stores are read as one ``reg export`` per physical store (regedit-5 ``.reg`` file, UTF-16LE with
  BOM), brought back with ``conn.download`` and parsed here: each ``…\\Certificates\\<SHA1>`` key's
  ``Blob`` value is the CryptoAPI property serialization (MS-GPEF 2.2.1.1.1,
  https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-gpef/6a9e35fa-2ac7-4c10-81e1-eabe8d2472f1 ,
  property format e051aba9-c9df-4f82-a42a-c13012c9d381): ``PropertyID`` u32 LE, ``Reserved`` u32,
  ``Length`` u32, ``Value``; the certificate itself is property 0x20 [I], property 2 is the key
  provider info (MS-GPEF 2.2.1.1.1.1.1), 9 the EKU (ENHKEY_USAGE), 11 the friendly name;
* certificates are parsed through :mod:`opslib.certs`;
* mutating verbs probe first (:func:`probe`), refuse with :class:`CapabilityMissing` when the server
  lacks what they need, save what is needed to undo them, act, and read the result back.

Unverified behaviour the kit relies on is marked [U] where it is used; the kit probes for it or
fails safe (nothing changed) rather than guess.
"""

from __future__ import annotations

import hashlib
import re
import struct
import uuid
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import certs, secrets
from .errors import (
    CapabilityMissing,
    CertificateError,
    PreconditionFailed,
    RemoteCommandFailed,
    VerificationFailed,
)

if TYPE_CHECKING:
    from ._transport import CommandResult, Connection
    from .iis import Site

__all__ = [
    "ROOT_STORES",
    "Capabilities",
    "Change",
    "ExportResult",
    "InstallResult",
    "StoreEntry",
    "check_roots_disabled",
    "disable_roots",
    "export_pfx",
    "forbidden_entries",
    "install_certificate",
    "match_pending_request",
    "parse_blob",
    "parse_reg_export",
    "pending_requests",
    "plan_disable_roots",
    "plan_export",
    "plan_install",
    "probe",
    "read_store",
    "restore_roots",
    "store_entries",
    "trusted_roots",
]

# --- registry layout (windows-commands.md §1) ---------------------------------------------------------

_SYSTEM_CERTS = r"HKLM\SOFTWARE\Microsoft\SystemCertificates"
# The physical stores of the LocalMachine Trusted Root store, with the registry key of each and the
# certutil arguments that open it. Membership [V]
# (https://learn.microsoft.com/en-us/windows/win32/seccrypto/system-store-locations); the Policies and
# EnterpriseCertificates paths are [I] (windows-commands.md §1).
ROOT_STORES: tuple[tuple[str, str], ...] = (
    ("ROOT", _SYSTEM_CERTS + r"\ROOT"),
    ("AuthRoot", _SYSTEM_CERTS + r"\AuthRoot"),
    ("GroupPolicy", r"HKLM\SOFTWARE\Policies\Microsoft\SystemCertificates\Root"),
    ("Enterprise", r"HKLM\SOFTWARE\Microsoft\EnterpriseCertificates\Root"),
)
STORE_KEYS: dict[str, str] = {
    "MY": _SYSTEM_CERTS + r"\MY",
    "CA": _SYSTEM_CERTS + r"\CA",
    "REQUEST": _SYSTEM_CERTS + r"\REQUEST",  # [I] path (windows-commands.md §1)
    **dict(ROOT_STORES),
}
# certutil options + store name that open one physical Root store (certutil reference: -enterprise
# "Use local machine Enterprise registry certificate store", -grouppolicy "Use Group Policy certificate
# store", https://learn.microsoft.com/en-us/windows-server/administration/windows-commands/certutil).
_CERTUTIL_STORE: dict[str, tuple[list[str], str]] = {
    "ROOT": ([], "Root"),
    "AuthRoot": ([], "AuthRoot"),
    "GroupPolicy": (["-grouppolicy"], "Root"),
    "Enterprise": (["-enterprise"], "Root"),
    "MY": ([], "MY"),
    "CA": ([], "CA"),
    "REQUEST": ([], "REQUEST"),
}

KEY_PROV_INFO, SHA1_HASH, ENHKEY_USAGE, FRIENDLY_NAME, CERT_CERT = 2, 3, 9, 11, 0x20
EMPTY_EKU = b"\x30\x00"  # SEQUENCE {}: no valid uses [I]; equal to GUI "Disable all purposes" is [U] (§2)

# HRESULTs the kit decides on (exit code = HRESULT is commonly observed, [U] per §0).
CRYPT_E_NOT_FOUND = 0x80092004
NTE_BAD_KEY_STATE = 0x8009000B
ERROR_ACCESS_DENIED = 5  # cmd could not start a program (winerror.h ERROR_ACCESS_DENIED)
NOT_RECOGNIZED = 9009  # cmd.exe: "'x' is not recognized as an internal or external command"

_PROBED_CERTUTIL_VERBS = ("exportPFX", "repairstore", "hashfile")


# --- facts --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """A planned or made change: ``target``'s ``field`` goes from ``before`` to ``after``."""

    target: str
    field: str
    before: Any
    after: Any

    def row(self) -> dict[str, Any]:
        return {"target": self.target, "field": self.field, "before": self.before, "after": self.after}


@dataclass(frozen=True)
class Capabilities:
    """What :func:`probe` found on the server (read-only probes; nothing is changed)."""

    host: str
    windows_version: str  # "5.2.3790" from ``ver``; "" when unreadable
    iis_major: int  # HKLM\SOFTWARE\Microsoft\InetStp MajorVersion; 0 when IIS is absent
    iis_minor: int
    codepage: int
    cscript: bool
    powershell: bool
    is_admin: bool
    certutil_verbs: tuple[str, ...]  # the probed verbs that exist, e.g. ("exportPFX", "hashfile")
    certreq_accept: bool
    certreq_machine: bool
    certreq_quiet: bool

    @property
    def windows_major(self) -> int:
        head = self.windows_version.split(".")[0]
        return int(head) if head.isdigit() else 0

    def has_certutil(self, verb: str) -> bool:
        return verb.lower() in {v.lower() for v in self.certutil_verbs}

    def row(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "windows_version": self.windows_version,
            "iis": f"{self.iis_major}.{self.iis_minor}" if self.iis_major else "absent",
            "codepage": self.codepage,
            "administrator": self.is_admin,
            "cscript": self.cscript,
            "powershell": self.powershell,
            "certutil_verbs": ", ".join(self.certutil_verbs),
            "certreq_accept": self.certreq_accept,
            "certreq_machine": self.certreq_machine,
        }


@dataclass(frozen=True)
class StoreEntry:
    """One certificate of one physical store, as its registry ``Blob`` holds it."""

    store: str  # physical store: ROOT, AuthRoot, GroupPolicy, Enterprise, MY, CA, REQUEST
    registry_key: str  # HKLM\…\Certificates\<SHA1>
    thumbprint: str
    summary: certs.CertSummary
    enabled: bool  # no EKU property (all purposes), or an EKU property listing purposes
    blob: bytes = field(repr=False)
    purposes: tuple[str, ...] | None = None  # OIDs of the EKU property; None = property absent
    key_container: str = ""  # from property 2 (CRYPT_KEY_PROV_INFO); "" = no private key link
    key_provider: str = ""
    certificate: certs.Certificate | None = field(default=None, repr=False, compare=False)

    @property
    def has_key_link(self) -> bool:
        return bool(self.key_container)

    def row(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "thumbprint": self.thumbprint,
            "common_name": self.summary.common_name,
            "issuer": self.summary.row()["issuer"],
            "not_after_utc": self.summary.not_after_utc,
            "enabled": self.enabled,
            "purposes": "all" if self.purposes is None else (", ".join(self.purposes) or "none (disabled)"),
            "key_container": self.key_container,
            "known_as": self.summary.known_as,
            "registry_key": self.registry_key,
        }


@dataclass(frozen=True)
class InstallResult:
    """What :func:`install_certificate` did (or found already done)."""

    thumbprint: str
    request_thumbprint: str  # the REQUEST-store placeholder completed ("" when already installed)
    key_container: str
    ca_certificates: tuple[str, ...]  # thumbprints of the intermediates/cross certificates now in CA
    skipped_roots: tuple[str, ...]  # self-signed certificates of the bundle that were never sent
    already_installed: bool
    work_site: str | None
    changes: tuple[Change, ...]

    def row(self) -> dict[str, Any]:
        return {
            "thumbprint": self.thumbprint,
            "request_thumbprint": self.request_thumbprint,
            "key_container": self.key_container,
            "ca_certificates": ", ".join(self.ca_certificates),
            "skipped_roots": ", ".join(self.skipped_roots),
            "already_installed": self.already_installed,
            "work_site": self.work_site or "",
        }


class ExportResult(bytes):
    """The verified PFX: *is* the PFX bytes (the contract's ``-> bytes``) and carries the facts.

    ``sha256``, ``thumbprint``, ``check`` (:class:`opslib.certs.PfxCheck`), ``remote_path`` (the
    server-side copy, deleted), ``chain`` and ``route`` (how it was exported). ``.data`` gives plain bytes.
    """

    sha256: str
    thumbprint: str
    check: certs.PfxCheck
    remote_path: str
    remote_deleted: bool
    chain: bool
    route: str  # "certutil -exportPFX" or "IIS.CertObj via W3SVC/n"

    def __new__(
        cls,
        data: bytes,
        *,
        thumbprint: str,
        check: certs.PfxCheck,
        remote_path: str,
        remote_deleted: bool,
        chain: bool,
        route: str = "certutil -exportPFX",
    ) -> ExportResult:
        obj = super().__new__(cls, data)
        obj.sha256 = hashlib.sha256(data).hexdigest().upper()
        obj.thumbprint = thumbprint
        obj.check = check
        obj.remote_path = remote_path
        obj.remote_deleted = remote_deleted
        obj.chain = chain
        obj.route = route
        return obj

    @property
    def data(self) -> bytes:
        return bytes(self)

    def facts(self) -> dict[str, Any]:
        return {
            "pfx_sha256": self.sha256,
            "pfx_size": len(self),
            "pfx_thumbprint": self.thumbprint,
            "pfx_certificates": list(self.check.certificates),
            "pfx_has_intermediate": self.check.has_intermediate,
            "pfx_has_cross": self.check.has_cross,
            "pfx_encryption": list(self.check.encryption),
            "server_copy_deleted": self.remote_deleted,
            "pfx_export_route": self.route,
        }

    def row(self) -> dict[str, Any]:
        return {
            **self.check.row(),
            "sha256": self.sha256,
            "route": self.route,
            "server_copy_deleted": self.remote_deleted,
        }


# --- local parsers (independent of the rehearsal's writer) ----------------------------------------------


def parse_blob(blob: bytes) -> tuple[dict[int, bytes], bytes]:
    """Split a certificate ``Blob`` into {property ID: value} and the DER certificate (property 0x20).

    MS-GPEF: "zero or more certificate properties, followed by the encoded certificate"; each element is
    ``PropertyID`` (u32 LE), ``Reserved`` (u32), ``Length`` (u32 LE), ``Value``. Raises ValueError.
    """
    props: dict[int, bytes] = {}
    der = b""
    offset = 0
    while offset + 12 <= len(blob):
        prop_id, _reserved, length = struct.unpack_from("<III", blob, offset)
        start = offset + 12
        if start + length > len(blob):
            raise ValueError(f"property {prop_id} at offset {offset} runs past the end of the blob")
        if prop_id == CERT_CERT:
            der = blob[start : start + length]
        else:
            props[prop_id] = blob[start : start + length]
        offset = start + length
    if offset != len(blob):
        raise ValueError("trailing bytes after the last property")
    if not der:
        raise ValueError("no encoded certificate (property 0x20) in the blob")
    return props, der


def _with_property(blob: bytes, prop_id: int, value: bytes) -> bytes:
    """``blob`` with ``prop_id`` set to ``value`` (properties kept in order, the certificate last)."""
    props, der = parse_blob(blob)
    props[prop_id] = value

    def element(pid: int, data: bytes) -> bytes:
        return struct.pack("<III", pid, 1, len(data)) + data

    return b"".join(element(p, v) for p, v in sorted(props.items())) + element(CERT_CERT, der)


def _utf16z(data: bytes, offset: int) -> str:
    if not offset or offset >= len(data):
        return ""
    end = offset
    while end + 1 < len(data) and data[end : end + 2] != b"\x00\x00":
        end += 2
    return data[offset:end].decode("utf-16-le", "replace")


def _key_prov_info(value: bytes) -> tuple[str, str]:
    """(container, provider) of a serialized CRYPT_KEY_PROV_INFO (MS-GPEF 2.2.1.1.1.1.1): seven u32 —
    ContainerNameOffset, ProviderNameOffset, ProviderType, Flags, ParamCount, ParamOffset, KeySpec —
    then NUL-terminated UTF-16LE strings at the offsets."""
    if len(value) < 28:
        return "", ""
    container_off, provider_off = struct.unpack_from("<II", value, 0)
    return _utf16z(value, container_off), _utf16z(value, provider_off)


def _der_oids(value: bytes) -> tuple[str, ...]:
    """OIDs of a DER ``SEQUENCE OF OBJECT IDENTIFIER`` (the EKU property). Raises ValueError."""

    def length(pos: int) -> tuple[int, int]:
        first = value[pos]
        if first < 0x80:
            return first, pos + 1
        n = first & 0x7F
        return int.from_bytes(value[pos + 1 : pos + 1 + n], "big"), pos + 1 + n

    if not value or value[0] != 0x30:
        raise ValueError("EKU property is not a SEQUENCE")
    total, pos = length(1)
    end = pos + total
    oids: list[str] = []
    while pos < end:
        if value[pos] != 0x06:
            raise ValueError("EKU element is not an OBJECT IDENTIFIER")
        n, pos = length(pos + 1)
        arcs: list[int] = []
        acc = 0
        for b in value[pos : pos + n]:
            acc = (acc << 7) | (b & 0x7F)
            if not b & 0x80:
                arcs.append(acc)
                acc = 0
        first = min(arcs[0] // 40, 2)
        oids.append(".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]]))
        pos += n
    return tuple(oids)


def parse_reg_export(data: bytes) -> dict[str, dict[str, tuple[str, Any]]]:
    """A regedit-5 / REGEDIT4 export → {key (HKLM\\… form): {value name: (type, data)}}.

    Format (Wine's reg export, which matches reg.exe: https://github.com/wine-mirror/wine/blob/master/programs/reg/export.c ;
    UTF-16LE + BOM default: http://ugts.azurewebsites.net/data/UGTS/document/2/3/36.aspx): header line,
    ``[KEY]`` lines, ``"Name"=hex:xx,…`` with ``\\`` continuation lines, ``dword:xxxxxxxx``, ``"text"``,
    ``hex(N):`` for other types. Raises ValueError when it is not a registry export.
    """
    if data.startswith(b"\xff\xfe"):
        text = data[2:].decode("utf-16-le")
    elif data.startswith(b"\xef\xbb\xbf"):
        text = data[3:].decode("utf-8")
    else:
        text = data.decode("cp1252", "replace")
    lines = text.splitlines()
    if not lines or lines[0].strip() not in ("Windows Registry Editor Version 5.00", "REGEDIT4"):
        raise ValueError("not a registry export (missing the 'Windows Registry Editor Version 5.00' header)")
    joined: list[str] = []
    carry = ""
    for line in lines[1:]:
        piece = line.lstrip() if carry else line
        if not piece.startswith("[") and piece.rstrip().endswith("\\"):
            carry += piece.rstrip()[:-1]
            continue
        joined.append(carry + piece)
        carry = ""
    roots = {
        "HKEY_LOCAL_MACHINE": "HKLM",
        "HKEY_CURRENT_USER": "HKCU",
        "HKEY_USERS": "HKU",
        "HKEY_CLASSES_ROOT": "HKCR",
        "HKEY_CURRENT_CONFIG": "HKCC",
    }
    out: dict[str, dict[str, tuple[str, Any]]] = {}
    current: dict[str, tuple[str, Any]] | None = None
    value_line = re.compile(r'^(@|"((?:[^"\\]|\\.)*)")=(.*)$')
    for line in joined:
        s = line.strip()
        if not s or s.startswith(";"):
            continue
        if s.startswith("[") and s.endswith("]"):
            root, _, rest = s[1:-1].partition("\\")
            key = roots.get(root.upper(), root) + ("\\" + rest if rest else "")
            current = out.setdefault(key, {})
            continue
        m = value_line.match(s)
        if m is None or current is None:
            raise ValueError(f"unexpected line in registry export: {s[:60]!r}")
        name = "" if m.group(1) == "@" else re.sub(r"\\(.)", r"\1", m.group(2))
        rhs = m.group(3)
        if rhs.startswith('"'):
            current[name] = ("REG_SZ", re.sub(r"\\(.)", r"\1", rhs[1:-1]))
        elif rhs.startswith("dword:"):
            current[name] = ("REG_DWORD", int(rhs[6:], 16))
        elif rhs.startswith("hex"):
            hm = re.match(r"^hex(?:\(([0-9a-fA-F]+)\))?:(.*)$", rhs)
            if hm is None:
                raise ValueError(f"bad hex value: {rhs[:40]!r}")
            raw = bytes(int(x, 16) for x in hm.group(2).split(",") if x.strip())
            kind = {None: "REG_BINARY", "2": "REG_EXPAND_SZ", "7": "REG_MULTI_SZ", "0": "REG_NONE"}.get(
                hm.group(1), f"hex({hm.group(1)})"
            )
            current[name] = (kind, raw)
        elif rhs == "-":
            continue  # a deletion line: not part of an export
        else:
            raise ValueError(f"unknown value type: {rhs[:40]!r}")
    return out


def store_entries(store: str, registry_key: str, export: bytes | None) -> list[StoreEntry]:
    """The certificates of one physical store from its ``reg export`` (None = key absent = empty)."""
    if export is None:
        return []
    keys = parse_reg_export(export)
    prefix = registry_key.rstrip("\\").upper() + "\\CERTIFICATES\\"
    entries: list[StoreEntry] = []
    for key, values in keys.items():
        if not key.upper().startswith(prefix) or "\\" in key[len(prefix) :]:
            continue
        blob_value = values.get("Blob")
        if blob_value is None or blob_value[0] != "REG_BINARY":
            continue
        blob = blob_value[1]
        try:
            props, der = parse_blob(blob)
            cert = certs.load_certificates(der, source=key).certificates[0]
        except (ValueError, CertificateError, IndexError) as exc:
            raise VerificationFailed(
                "registry",
                f"{key}: the Blob value is not a certificate ({exc})",
                hint="inspect the key by hand",
            ) from None
        purposes: tuple[str, ...] | None = None
        if ENHKEY_USAGE in props:
            try:
                purposes = _der_oids(props[ENHKEY_USAGE])
            except (ValueError, IndexError):
                purposes = ("(undecodable)",)
        container, provider = _key_prov_info(props[KEY_PROV_INFO]) if KEY_PROV_INFO in props else ("", "")
        entries.append(
            StoreEntry(
                store=store,
                registry_key=key,
                thumbprint=key[len(prefix) :].upper(),
                summary=certs.summarize(cert),
                enabled=purposes is None or len(purposes) > 0,
                blob=blob,
                purposes=purposes,
                key_container=container,
                key_provider=provider,
                certificate=cert,
            )
        )
    return sorted(entries, key=lambda e: e.thumbprint)


# --- remote helpers -------------------------------------------------------------------------------------


def _host(conn: Connection) -> str:
    return str(getattr(conn, "host", "") or getattr(conn, "url", "") or "server")


def _remote(conn: Connection, suffix: str) -> str:
    """A fresh file name in the connection's temporary folder (fresh: ``reg export`` on 2003 has no /y)."""
    return str(conn.temp_dir).rstrip("\\") + f"\\opslib-{uuid.uuid4().hex[:12]}{suffix}"


def _hresult(exit_code: int) -> int:
    return exit_code & 0xFFFFFFFF


def _delete_remote(conn: Connection, path: str) -> bool:
    # cmd's DEL (https://learn.microsoft.com/en-us/windows-server/administration/windows-commands/del);
    # its exit code is 0 even for a missing file [I], so this is best effort and reported as such.
    result = conn.run(["del", "/f", "/q", path], check=False, what="remove a temporary file")
    return result.exit_code == 0


def _download(conn: Connection, path: str, *, what: str) -> bytes:
    """``conn.download``; the transport removes its base64 staging copy itself."""
    return conn.download(path, what=what)


def _failed(conn: Connection, result: CommandResult, what: str, hint: str = "") -> RemoteCommandFailed:
    return RemoteCommandFailed(
        host=_host(conn),
        command=result.command_line,
        exit_code=result.exit_code,
        stderr=result.stderr_text,
        stdout=result.stdout_text,
        what=what,
        hint=hint,
    )


def _export_key(conn: Connection, key: str, *, what: str) -> bytes | None:
    """``reg export`` one key (with its subkeys) to a temporary file, download it, delete it.

    Returns None when the key does not exist. reg.exe exits 0 on success and 1 on failure
    (``reg /?``: "0 - Successful, 1 - Failed", https://learn.microsoft.com/en-us/windows-server/administration/windows-commands/reg-export);
    a failed export is told apart from a missing key by ``reg query KEY`` (exit 1 = absent [I]).
    No ``/y``: the 2003 reg.exe usage does not list it [U]; the file name is always fresh instead.
    """
    path = _remote(conn, ".reg")
    result = conn.run(["reg", "export", key, path], check=False, what=what)
    if result.exit_code != 0:
        # reg query (https://learn.microsoft.com/en-us/windows-server/administration/windows-commands/reg-query)
        query = conn.run(["reg", "query", key], check=False, what=f"{what} (does the key exist?)")
        if query.exit_code != 0:
            return None
        raise _failed(
            conn, result, what, hint="the key exists but could not be exported; check the account's rights"
        )
    try:
        return _download(conn, path, what=what)
    finally:
        _delete_remote(conn, path)


def read_store(conn: Connection, store: str) -> list[StoreEntry]:
    """The certificates of one physical store (a key of :data:`STORE_KEYS`: MY, CA, REQUEST, ROOT,
    AuthRoot, GroupPolicy, Enterprise) from one ``reg export``; an absent key is an empty store."""
    key = STORE_KEYS[store]
    return store_entries(store, key, _export_key(conn, key, what=f"read the {store} certificate store"))


def _read_entry(conn: Connection, store: str, thumbprint: str) -> tuple[StoreEntry | None, bytes | None]:
    """One certificate key of a store: (entry, the raw .reg export of that key)."""
    key = STORE_KEYS[store] + "\\Certificates\\" + thumbprint
    export = _export_key(conn, key, what=f"read {store}\\{thumbprint}")
    entries = store_entries(store, STORE_KEYS[store], export)
    return (entries[0] if entries else None), export


# --- probe ---------------------------------------------------------------------------------------------

_probe_cache: weakref.WeakKeyDictionary[Any, Capabilities] = weakref.WeakKeyDictionary()


def probe(conn: Connection, *, refresh: bool = False) -> Capabilities:
    """What the server offers. Read-only; cached per connection (``refresh=True`` probes again)."""
    if not refresh:
        try:
            cached = _probe_cache.get(conn)
        except TypeError:
            cached = None
        if cached is not None:
            return cached

    def runs(argv: list[str], what: str) -> int:
        result = conn.run(argv, check=False, what=what)
        if result.exit_code == ERROR_ACCESS_DENIED:
            # cmd could not start the program at all ("Access is denied", exit 5): the probe has no
            # answer, so it must not be read as "absent" (a wrong cause in the message) [I].
            raise _failed(
                conn, result, what, hint="the probe itself failed; nothing was changed — run it again"
            )
        return result.exit_code

    # ver: "Microsoft Windows [Version 5.2.3790]" — only the digits are read (the words are not localized
    # on en/ja, but nothing depends on them). cmd built-in:
    # https://learn.microsoft.com/en-us/windows-server/administration/windows-commands/ver
    ver = conn.run(["ver"], check=False, what="read the Windows version")
    m = re.search(r"(\d+)\.(\d+)\.(\d+)", ver.stdout_text)
    windows_version = m.group(0) if m else ""

    # IIS version: HKLM\SOFTWARE\Microsoft\InetStp MajorVersion/MinorVersion (DWORDs written by IIS setup [I];
    # the key's absence means IIS is not installed).
    iis_major = iis_minor = 0
    inetstp = r"HKLM\SOFTWARE\Microsoft\InetStp"
    export = _export_key(conn, inetstp, what="read the IIS version")
    if export is not None:
        values = parse_reg_export(export).get(inetstp, {})
        major, minor = values.get("MajorVersion"), values.get("MinorVersion")
        iis_major = int(major[1]) if major and major[0] == "REG_DWORD" else 0
        iis_minor = int(minor[1]) if minor and minor[0] == "REG_DWORD" else 0

    # Presence of a program: cmd answers exit 9009 for an unknown command (CONTRIBUTING, cmd emulation);
    # any other exit code means the program started. cscript //nologo with no script prints its usage.
    cscript = runs(["cscript", "//nologo"], "is cscript.exe present?") != NOT_RECOGNIZED
    # -InputFormat None: powershell.exe otherwise waits for stdin under WinRS [I].
    powershell = (
        runs(
            ["powershell", "-NoProfile", "-NonInteractive", "-InputFormat", "None", "-Command", "exit 0"],
            "is PowerShell present?",
        )
        != NOT_RECOGNIZED
    )

    # Administrator: the LocalService profile hive HKU\S-1-5-19 is readable only by administrators and
    # SYSTEM, so `reg query` exits 0 only for them [I] (a common batch-file probe; the documented
    # alternative `net session` works the same way: https://tutorialreference.pages.dev/batch-scripting/examples/faq/batch-script-how-to-check-for-administrator-privileges).
    is_admin = runs(["reg", "query", r"HKU\S-1-5-19"], "does the account have administrator rights?") == 0

    # certutil VERB -? prints the verb's usage and exits 0 when the verb exists; an unknown verb fails
    # (windows-commands.md §5: "probe `certutil -exportPFX -?` (non-zero/usage ⇒ absent)").
    verbs = tuple(
        v
        for v in _PROBED_CERTUTIL_VERBS
        if runs(["certutil", f"-{v}", "-?"], f"does certutil know -{v}?") == 0
    )
    # certreq -accept / -machine / -q: same rule; -machine on 2003 is [U] (windows-commands.md §3, open item 1).
    certreq_accept = runs(["certreq", "-accept", "-?"], "does certreq know -accept?") == 0
    certreq_machine = (
        certreq_accept and runs(["certreq", "-machine", "-?"], "does certreq know -machine?") == 0
    )
    certreq_quiet = certreq_accept and runs(["certreq", "-q", "-?"], "does certreq know -q?") == 0

    caps = Capabilities(
        host=_host(conn),
        windows_version=windows_version,
        iis_major=iis_major,
        iis_minor=iis_minor,
        codepage=int(getattr(conn, "codepage", 0) or 0),
        cscript=cscript,
        powershell=powershell,
        is_admin=is_admin,
        certutil_verbs=verbs,
        certreq_accept=certreq_accept,
        certreq_machine=certreq_machine,
        certreq_quiet=certreq_quiet,
    )
    try:
        _probe_cache[conn] = caps
    except TypeError:
        pass
    return caps


def _require_admin(caps: Capabilities, action: str) -> None:
    if not caps.is_admin:
        raise CapabilityMissing(
            caps.host,
            "administrator rights for this account",
            hint=f"{action} writes LocalMachine certificate stores; connect with an account in the local "
            "Administrators group",
        )


# --- trusted roots (step 0) ---------------------------------------------------------------------------


def trusted_roots(conn: Connection) -> list[StoreEntry]:
    """Every certificate of every physical LocalMachine Trusted Root store (one export per store)."""
    out: list[StoreEntry] = []
    for store, _key in ROOT_STORES:
        out.extend(read_store(conn, store))
    return out


def forbidden_entries(entries: Iterable[StoreEntry], forbidden: Iterable[str] = ()) -> list[StoreEntry]:
    """The entries that are the G5 root (catalogue) or one of the ``forbidden`` SHA-1 thumbprints."""
    extra = tuple(forbidden)
    return [
        e
        for e in entries
        if (e.certificate is not None and certs.is_forbidden_root(e.certificate, extra))
        or _thumb_in(e, extra)
    ]


def check_roots_disabled(
    entries: Iterable[StoreEntry], *, forbidden: Iterable[str] = (), host: str, dry_run: bool = False
) -> list[StoreEntry]:
    """Step 0's read-back: the forbidden entries of ``entries`` (for a table), none of them enabled.

    An enabled one raises :class:`VerificationFailed` naming its store and thumbprint — unless
    ``dry_run`` (nothing was disabled, so the entries are only reported).
    """
    found = forbidden_entries(entries, forbidden)
    left = [e for e in found if e.enabled]
    if left and not dry_run:
        raise VerificationFailed(
            host,
            "forbidden roots are still enabled: " + ", ".join(f"{e.store} {e.thumbprint}" for e in left),
            hint="disable them by hand (MMC certificates snap-in → Properties → Disable all purposes), then resume",
        )
    return found


def _thumb_in(entry: StoreEntry, thumbprints: Sequence[str]) -> bool:
    wanted = {re.sub(r"[^0-9A-Fa-f]", "", t).upper() for t in thumbprints}
    return entry.thumbprint in wanted


def _purposes_text(entry: StoreEntry) -> str:
    if entry.purposes is None:
        return "all purposes"
    return ", ".join(entry.purposes) if entry.purposes else "disabled (no purposes)"


def plan_disable_roots(entries: Iterable[StoreEntry]) -> list[Change]:
    """What :func:`disable_roots` would change (no remote command)."""
    return [
        Change(
            f"{e.store}\\{e.thumbprint}",
            "purposes (EKU property 9)",
            _purposes_text(e),
            "disabled (no purposes)" if e.enabled else "unchanged: already disabled",
        )
        for e in entries
    ]


def _inf_disable_all_purposes() -> bytes:
    # certutil -repairstore PropertyInfFile, documented form ("[Properties]", `ID = "{hex}…"`, `ID = "{text}…"`
    # with `_continue_` lines) — certutil reference, -repairstore. Property 9 = the DER of an empty EKU
    # SEQUENCE (30 00): "no valid uses" per CertGetEnhancedKeyUsage [I]; that this equals the GUI's
    # "Disable all purposes" is [U] (windows-commands.md §2). [Version] as in public examples.
    return b'[Version]\r\nSignature = "$Windows NT$"\r\n\r\n[Properties]\r\n9 = "{hex}30 00"\r\n'


def disable_roots(
    conn: Connection,
    entries: Iterable[StoreEntry],
    *,
    backup_dir: Path,
    allow_registry_fallback: bool = False,
) -> list[Change]:
    """Disable every enabled entry for all purposes, after saving each key's ``.reg`` export.

    Per entry: export the certificate's key and save it in ``backup_dir`` (the run's evidence folder)
    BEFORE any change; ``certutil -repairstore`` with an INF setting property 9 to an empty EKU; read the
    key back (property 9 present and empty). An entry already disabled is recorded, not touched.
    ``allow_registry_fallback`` (when the server's certutil lacks ``-repairstore``) writes the Blob with
    ``reg add`` instead — [U, high risk] (windows-commands.md §2 option 3).
    Undo: :func:`restore_roots` with the saved files.
    """
    todo = list(entries)
    changes: list[Change] = []
    pending = [e for e in todo if e.enabled]
    for e in todo:
        if not e.enabled:
            changes.append(
                Change(f"{e.store}\\{e.thumbprint}", "purposes (EKU property 9)", "disabled", "disabled")
            )
    if not pending:
        return changes
    caps = probe(conn)
    _require_admin(caps, "disabling a root certificate")
    use_certutil = caps.has_certutil("repairstore")
    if not use_certutil and not allow_registry_fallback:
        raise CapabilityMissing(
            caps.host,
            "certutil -repairstore (needed to disable a root for all purposes)",
            hint="disable it by hand (Certificates MMC → Local Computer → Trusted Root Certification Authorities → "
            "Properties → 'Disable all purposes for this certificate'), or allow the registry fallback "
            "(writes the Blob with reg add; unverified on real Windows)",
        )
    backup_dir = Path(backup_dir)
    backup_dir.mkdir(parents=True, exist_ok=True)
    # 1. Back up every affected key first.
    current: list[tuple[StoreEntry, Path]] = []
    for e in pending:
        fresh, export = _read_entry(conn, e.store, e.thumbprint)
        if fresh is None or export is None:
            raise PreconditionFailed(
                caps.host,
                f"{e.store}\\{e.thumbprint} is no longer in the store — nothing was changed",
                hint="read the root stores again (trusted_roots) and plan again",
            )
        path = backup_dir / f"root-backup_{e.store}_{e.thumbprint}.reg"
        path.write_bytes(export)
        changes.append(Change(fresh.registry_key, "backup (.reg export)", None, path.name))
        current.append((fresh, path))
    # 2. Disable, 3. read back.
    for fresh, path in current:
        target = f"{fresh.store}\\{fresh.thumbprint}"
        if not fresh.enabled:
            changes.append(Change(target, "purposes (EKU property 9)", "disabled", "disabled"))
            continue
        if use_certutil:
            inf = _remote(conn, ".inf")
            conn.upload(_inf_disable_all_purposes(), inf)
            options, name = _CERTUTIL_STORE[fresh.store]
            try:
                # certutil [-enterprise|-grouppolicy] -repairstore Store CertId PropertyInfFile (certutil reference)
                result = conn.run(
                    ["certutil", *options, "-repairstore", name, fresh.thumbprint, inf],
                    check=False,
                    what=f"disable {target} for all purposes",
                )
            finally:
                _delete_remote(conn, inf)
            if result.exit_code != 0:
                raise _failed(
                    conn,
                    result,
                    f"disable {target} for all purposes",
                    hint=f"the key was saved to {path.name} before this step; restore_roots puts it back",
                )
        else:
            # reg add KEY /v Blob /t REG_BINARY /d HEX /f (reg add reference,
            # https://learn.microsoft.com/en-us/windows-server/administration/windows-commands/reg-add) [U, high risk:
            # CryptoAPI may cache the store; windows-commands.md §2 option 3].
            blob = _with_property(fresh.blob, ENHKEY_USAGE, EMPTY_EKU)
            result = conn.run(
                [
                    "reg",
                    "add",
                    fresh.registry_key,
                    "/v",
                    "Blob",
                    "/t",
                    "REG_BINARY",
                    "/d",
                    blob.hex().upper(),
                    "/f",
                ],
                check=False,
                what=f"write the Blob of {target}",
            )
            if result.exit_code != 0:
                raise _failed(conn, result, f"write the Blob of {target}", hint=f"backup: {path.name}")
        after, _ = _read_entry(conn, fresh.store, fresh.thumbprint)
        if after is None or after.purposes != ():
            raise VerificationFailed(
                caps.host,
                f"{target} still shows {_purposes_text(after) if after else 'no certificate'} after disabling",
                hint=f"restore it with restore_roots([{path.name!r}]) and disable it by hand in the Certificates MMC",
            )
        changes.append(
            Change(target, "purposes (EKU property 9)", _purposes_text(fresh), "disabled (no purposes)")
        )
        if fresh.store == "GroupPolicy":
            changes.append(
                Change(
                    target, "note", None, "a Group Policy refresh may put this root back [I]: fix the GPO too"
                )
            )
    return changes


def restore_roots(conn: Connection, backups: Iterable[Path | str]) -> list[Change]:
    """Put back keys saved by :func:`disable_roots`: upload each ``.reg`` file, ``reg import`` it, read back."""
    caps = probe(conn)
    _require_admin(caps, "restoring a root certificate")
    changes: list[Change] = []
    for backup in backups:
        path = Path(backup)
        data = path.read_bytes()
        try:
            saved = parse_reg_export(data)
        except ValueError as exc:
            raise PreconditionFailed(caps.host, f"{path.name}: {exc} — nothing was changed") from None
        blobs = {k: v["Blob"][1] for k, v in saved.items() if "Blob" in v and v["Blob"][0] == "REG_BINARY"}
        if not blobs:
            raise PreconditionFailed(
                caps.host, f"{path.name} holds no certificate Blob — nothing was changed"
            )
        targets: list[tuple[str, str, str, bytes]] = []  # (store, thumbprint, before, saved blob)
        for key, blob in blobs.items():
            store = next((s for s, k in STORE_KEYS.items() if key.upper().startswith(k.upper() + "\\")), None)
            thumb = key.rsplit("\\", 1)[-1].upper()
            before, _ = _read_entry(conn, store, thumb) if store else (None, None)
            if store is None or before is None:
                raise PreconditionFailed(
                    caps.host,
                    f"{path.name}: {key} is not a certificate of this server's stores — nothing was changed",
                    hint="a backup restores a certificate that is still there; check that the file belongs to this server",
                )
            targets.append((store, thumb, _purposes_text(before), blob))
        remote = _remote(conn, ".reg")
        conn.upload(data, remote)
        try:
            # reg import FILE (https://learn.microsoft.com/en-us/windows-server/administration/windows-commands/reg-import)
            result = conn.run(["reg", "import", remote], check=False, what=f"restore {path.name}")
        finally:
            _delete_remote(conn, remote)
        if result.exit_code != 0:
            raise _failed(conn, result, f"restore {path.name}")
        for store, thumb, before_text, blob in targets:
            after, _ = _read_entry(conn, store, thumb)
            if after is None or after.blob != blob:
                raise VerificationFailed(
                    caps.host,
                    f"{store}\\{thumb} does not hold the saved Blob after reg import of {path.name}",
                    hint="import the file by hand (regedit) and check the certificate in the Certificates MMC",
                )
            changes.append(
                Change(f"{store}\\{thumb}", "purposes (EKU property 9)", before_text, _purposes_text(after))
            )
    return changes


# --- pending requests and installation (step 1) ---------------------------------------------------------


def pending_requests(conn: Connection) -> list[StoreEntry]:
    """The placeholders of pending requests (LocalMachine REQUEST store; windows-commands.md §3)."""
    return read_store(conn, "REQUEST")


def _match_request(host: str, requests: Sequence[StoreEntry], leaf: certs.Certificate) -> StoreEntry:
    found = [r for r in requests if r.certificate is not None and certs.key_matches(r.certificate, leaf)]
    if not found:
        summary = certs.summarize(leaf)
        raise PreconditionFailed(
            host,
            f"this server holds no pending request for the key of {summary.thumbprint} "
            f"(subject {summary.subject}); the certificate was requested on another server or the "
            "request was deleted — nothing was changed",
            hint="install it on the server that made the request, or make a new request here and have it re-issued",
        )
    return found[0]


def match_pending_request(
    conn: Connection, leaf: certs.Certificate, *, installed_ok: bool = False
) -> StoreEntry:
    """The REQUEST-store placeholder whose public key is the key of ``leaf``.

    ``installed_ok`` (step 1): when an earlier attempt already completed the request (``certreq
    -accept`` ran, its reply was lost), the placeholder is gone and MY holds ``leaf`` with its key
    link: that MY entry is returned, so that a resumed step recognises its own work instead of failing.
    """
    requests = pending_requests(conn)
    if not installed_ok or any(
        r.certificate is not None and certs.key_matches(r.certificate, leaf) for r in requests
    ):
        return _match_request(_host(conn), requests, leaf)
    thumb = certs.thumbprint(leaf)
    done, _ = _read_entry(conn, "MY", thumb)
    if done is not None and done.has_key_link:
        return done
    return _match_request(_host(conn), requests, leaf)


def _split_bundle(
    bundle: certs.Bundle,
) -> tuple[certs.Certificate, list[certs.Certificate], list[certs.Certificate]]:
    leaf = bundle.leaf
    if leaf is None:
        raise CertificateError(bundle.source, "holds no server certificate (only CA certificates)")
    cas: list[certs.Certificate] = []
    roots: list[certs.Certificate] = []
    for c in bundle.others:
        (roots if certs.is_self_signed(c) else cas).append(c)
    return leaf, cas, roots


@dataclass(frozen=True)
class _InstallState:
    leaf: certs.Certificate
    thumbprint: str
    cas: list[certs.Certificate]
    roots: list[certs.Certificate]
    my: list[StoreEntry]
    request: StoreEntry | None
    ca_held: set[str]

    @property
    def installed(self) -> StoreEntry | None:
        return next((e for e in self.my if e.thumbprint == self.thumbprint and e.has_key_link), None)


def _install_state(conn: Connection, bundle: certs.Bundle) -> _InstallState:
    leaf, cas, roots = _split_bundle(bundle)
    thumb = certs.thumbprint(leaf)
    my = read_store(conn, "MY")
    requests = read_store(conn, "REQUEST")
    ca_held = {e.thumbprint for e in read_store(conn, "CA")}
    installed = any(e.thumbprint == thumb and e.has_key_link for e in my)
    request = None if installed else _match_request(_host(conn), requests, leaf)
    if installed:
        request = next(
            (r for r in requests if r.certificate is not None and certs.key_matches(r.certificate, leaf)),
            None,
        )
    return _InstallState(leaf, thumb, cas, roots, my, request, ca_held)


def _install_changes(state: _InstallState) -> list[Change]:
    changes: list[Change] = []
    name = certs.summarize(state.leaf).common_name
    if state.installed is not None:
        changes.append(
            Change(f"MY\\{state.thumbprint}", "certificate", "present", "present (already installed)")
        )
    else:
        assert state.request is not None
        changes.append(
            Change(
                f"REQUEST\\{state.request.thumbprint}", "pending request", "pending", "completed (removed)"
            )
        )
        changes.append(
            Change(
                f"MY\\{state.thumbprint}", "certificate", None, f"{name} (key {state.request.key_container})"
            )
        )
    for c in state.cas:
        tp = certs.thumbprint(c)
        cn = certs.summarize(c).common_name
        changes.append(Change(f"CA\\{tp}", "certificate", "present" if tp in state.ca_held else None, cn))
    for r in state.roots:
        changes.append(
            Change(
                f"ROOT\\{certs.thumbprint(r)}", "certificate", None, "not sent (roots are never installed)"
            )
        )
    return changes


def plan_install(conn: Connection, bundle: certs.Bundle) -> list[Change]:
    """What :func:`install_certificate` would change (reads MY, REQUEST and CA; changes nothing)."""
    return _install_changes(_install_state(conn, bundle))


def install_certificate(
    conn: Connection, bundle: certs.Bundle, *, work_site: str | None = None
) -> InstallResult:
    """Complete the pending request with the bundle's leaf and install its CA certificates.

    The leaf goes alone (a DER ``.cer``) to ``certreq -accept``; the intermediates and cross certificates
    go one by one to ``certutil -addstore CA``; self-signed roots are never sent (a root in the accepted
    file can make Windows prompt, which would hang over WinRM — windows-commands.md §3). Read back: MY
    holds the thumbprint with a key link (property 2), the placeholder is gone, CA holds the CA
    certificates. A lost reply is recognised: MY already holds it with a key → recorded as done.
    Binding to ``work_site`` is :func:`opslib.iis.bind_certificate`'s job; the name is recorded here.
    """
    caps = probe(conn)
    state = _install_state(conn, bundle)
    planned = _install_changes(state)
    need_ca = [c for c in state.cas if certs.thumbprint(c) not in state.ca_held]
    if state.installed is not None and not need_ca:
        return InstallResult(
            thumbprint=state.thumbprint,
            request_thumbprint="",
            key_container=state.installed.key_container,
            ca_certificates=tuple(certs.thumbprint(c) for c in state.cas),
            skipped_roots=tuple(certs.thumbprint(r) for r in state.roots),
            already_installed=True,
            work_site=work_site,
            changes=tuple(planned),
        )
    _require_admin(caps, "installing a certificate")
    if state.installed is None:
        if not caps.certreq_accept:
            raise CapabilityMissing(
                caps.host,
                "certreq -accept",
                hint="complete the pending request in IIS Manager (Directory Security → Server Certificate → "
                "Process the pending request)",
            )
        assert state.request is not None
        cer = _remote(conn, ".cer")
        conn.upload(certs.encode_der(state.leaf), cer)
        # certreq -accept [-machine] [-q] CertFileIn (certreq reference, windows-commands.md §3:
        # https://learn.microsoft.com/en-us/previous-versions/windows/it-pro/windows-server-2003/cc736326(v=ws.10)).
        argv = ["certreq", "-accept"]
        if caps.certreq_machine:
            argv.append("-machine")
        if caps.certreq_quiet:
            argv.append("-q")
        try:
            result = conn.run([*argv, cer], check=False, what="complete the pending request", timeout_s=120)
        finally:
            _delete_remote(conn, cer)
        if result.exit_code != 0:
            hint = "nothing was installed; check the pending request in IIS Manager"
            if _hresult(result.exit_code) == CRYPT_E_NOT_FOUND:
                hint = (
                    "certreq found no matching request (CRYPT_E_NOT_FOUND) although the REQUEST store holds "
                    f"{state.request.thumbprint}; complete it in IIS Manager instead"
                )
            raise _failed(conn, result, "complete the pending request", hint=hint)
    for c in need_ca:
        path = _remote(conn, ".cer")
        conn.upload(certs.encode_der(c), path)
        try:
            # certutil -addstore CA InFile, one certificate per file (whether the 2003 certutil takes a .p7b is
            # [U], windows-commands.md §3).
            result = conn.run(
                ["certutil", "-addstore", "CA", path], check=False, what=f"add {certs.thumbprint(c)} to CA"
            )
        finally:
            _delete_remote(conn, path)
        if result.exit_code != 0:
            raise _failed(conn, result, f"add the CA certificate {certs.thumbprint(c)} to the CA store")
    # Read back.
    my = {e.thumbprint: e for e in read_store(conn, "MY")}
    entry = my.get(state.thumbprint)
    if entry is None or not entry.has_key_link:
        raise VerificationFailed(
            caps.host,
            f"MY does not hold {state.thumbprint} with a private key link after certreq -accept",
            hint=f"repair the link with `certutil -repairstore MY {state.thumbprint}` and check in the Certificates MMC",
        )
    if state.request is not None and state.installed is None:
        left = {e.thumbprint for e in read_store(conn, "REQUEST")}
        if state.request.thumbprint in left:
            raise VerificationFailed(
                caps.host, f"the pending request {state.request.thumbprint} is still in the REQUEST store"
            )
    ca_now = {e.thumbprint for e in read_store(conn, "CA")}
    missing = [certs.thumbprint(c) for c in state.cas if certs.thumbprint(c) not in ca_now]
    if missing:
        raise VerificationFailed(caps.host, f"the CA store lacks {', '.join(missing)} after -addstore")
    return InstallResult(
        thumbprint=state.thumbprint,
        request_thumbprint=state.request.thumbprint if state.request and state.installed is None else "",
        key_container=entry.key_container,
        ca_certificates=tuple(certs.thumbprint(c) for c in state.cas),
        skipped_roots=tuple(certs.thumbprint(r) for r in state.roots),
        already_installed=state.installed is not None,
        work_site=work_site,
        changes=tuple(planned),
    )


# --- PFX export (step 3) ----------------------------------------------------------------------------------


def _check_password(host: str, password: str) -> None:
    if len(password) < 8:
        raise PreconditionFailed(host, "the PFX password must have at least 8 characters — nothing was sent")
    if password[0] in "-/" or "," in password or any(ch.isspace() for ch in password):
        # certutil reads a leading - or / as an option and (newer builds) a comma as a password list [U].
        raise PreconditionFailed(
            host,
            "the PFX password must not start with - or / nor contain commas or spaces — nothing was sent",
        )


def _exportable_entry(conn: Connection, thumbprint: str) -> StoreEntry:
    thumb = re.sub(r"[^0-9A-Fa-f]", "", thumbprint).upper()
    entry, _ = _read_entry(conn, "MY", thumb)
    if entry is None:
        raise PreconditionFailed(
            _host(conn), f"the Personal (MY) store holds no certificate {thumb} — nothing was changed"
        )
    if not entry.has_key_link:
        raise PreconditionFailed(
            _host(conn),
            f"MY\\{thumb} has no private key link (property 2) — nothing was changed",
            hint=f"repair it with `certutil -repairstore MY {thumb}` if the key exists on this server",
        )
    return entry


CERTUTIL_ROUTE = "certutil -exportPFX"


@dataclass(frozen=True)
class _Route:
    """How :func:`export_pfx` exports: ``certutil -exportPFX``, or ``IIS.CertObj`` through ``site``."""

    site: Site | None = None  # the site IIS.CertObj exports through; None for certutil
    pending: str = ""  # a dry run's IIS.CertObj route: the certificate is not bound to a site yet

    @property
    def certutil(self) -> bool:
        return self.site is None and not self.pending

    @property
    def label(self) -> str:
        if self.site is not None:
            return f"IIS.CertObj via {self.site.path}"
        return f"IIS.CertObj via {self.pending}" if self.pending else CERTUTIL_ROUTE


def _require_export(caps: Capabilities) -> None:
    """Refuse unless one export route can exist: certutil -exportPFX, or IIS 6 with cscript."""
    _require_admin(caps, "exporting a private key")
    if caps.has_certutil("exportPFX") or (caps.iis_major == 6 and caps.cscript):
        return
    if caps.iis_major == 6:
        lacking = "cscript.exe (Windows Script Host), which the IIS.CertObj export fallback needs"
    else:
        iis = f"IIS {caps.iis_major}.{caps.iis_minor}" if caps.iis_major else "no IIS"
        lacking = f"an IIS 6 for the IIS.CertObj export fallback (it has {iis})"
    raise CapabilityMissing(
        caps.host,
        f"certutil -exportPFX, and {lacking}",
        hint="export the certificate with its private key by hand (IIS Manager → Directory Security → "
        "Server Certificate → Export to a .pfx file, or the Certificates MMC), include the chain, and keep "
        "the file safe",
    )


def _export_route(
    conn: Connection, caps: Capabilities, thumbprint: str, *, site: str | None, installed: bool = True
) -> _Route:
    """certutil when the probe found ``-exportPFX``; otherwise IIS.CertObj through a site that has
    ``thumbprint`` bound (``site`` names one: ServerComment or W3SVC/n). IIS.CertObj exports only a
    site's certificate (MS-IMSA ExportToBlob takes an InstanceName, windows-commands.md §5)."""
    _require_export(caps)
    if caps.has_certutil("exportPFX"):
        return _Route()
    from . import iis  # iis imports this module

    iis.require_backend(caps)
    found = iis.sites(conn)
    if site:
        chosen = iis.find_site(found, site, host=caps.host)
        if not installed:
            return _Route(pending=f"{chosen.path} (once it has {thumbprint} bound)")
        if chosen.cert_thumbprint != thumbprint or chosen.store_name.upper() != "MY":
            bound_to = (
                f"{chosen.store_name or '?'}\\{chosen.cert_thumbprint}"
                if chosen.cert_thumbprint
                else "no certificate"
            )
            raise PreconditionFailed(
                caps.host,
                f"{chosen.label} is bound to {bound_to}, not MY\\{thumbprint}; without "
                "certutil -exportPFX the key can only be exported through the site it is bound to "
                "(IIS.CertObj) — nothing was changed",
                hint=f"bind {thumbprint} to {chosen.label} first, or name the site that has it bound",
            )
        return _Route(site=chosen)
    bound = [s for s in found if s.cert_thumbprint == thumbprint and s.store_name.upper() == "MY"]
    if not bound:
        if not installed:
            return _Route(pending="the site it is bound to (steps 1–2 bind it; not in a dry run)")
        listing = "; ".join(f"{s.label}: {s.cert_thumbprint or 'none'}" for s in found) or "no sites"
        raise PreconditionFailed(
            caps.host,
            f"this server's certutil has no -exportPFX and no IIS site has MY\\{thumbprint} bound, so "
            f"IIS.CertObj cannot export it (sites: {listing}) — nothing was changed",
            hint=f"bind {thumbprint} to a site first (step 1 binds it to the work site: "
            "opslib.iis.bind_certificate), then export again; or export it by hand in the Certificates MMC",
        )
    # A started site first (the production site after step 2), then the lowest id: any bound site
    # exports the same certificate and key.
    return _Route(site=min(bound, key=lambda s: (not s.started, s.id)))


def plan_export(
    conn: Connection,
    thumbprint: str,
    *,
    chain: bool = True,
    installed: bool = True,
    site: str | None = None,
) -> list[Change]:
    """What :func:`export_pfx` would do (read-only: probes, reads MY and, without ``-exportPFX``, the sites).

    ``installed=False`` is a dry run's plan: step 1 installed nothing, so MY holds no certificate to
    read yet; the capability is still checked, so a dry run says now that the export could not work.
    The plan names the route: ``certutil -exportPFX`` or ``IIS.CertObj via W3SVC/n``.
    """
    caps = probe(conn)
    thumb = re.sub(r"[^0-9A-Fa-f]", "", thumbprint).upper()
    route = _export_route(conn, caps, thumb, site=site, installed=installed)
    before = "installed by step 1 (not in a dry run)"
    if installed:
        entry = _exportable_entry(conn, thumb)
        thumb, before = entry.thumbprint, f"on the server only (container {entry.key_container})"
    with_chain = chain or not route.certutil  # IIS.CertObj always adds the chain
    return [
        Change(
            f"MY\\{thumb}",
            "private key",
            before,
            "exported to a password-protected PFX"
            + (" with the chain" if with_chain else "")
            + f" ({route.label})",
        ),
        Change(f"{caps.host}:{conn.temp_dir}", "temporary PFX", None, "created, downloaded, deleted"),
    ]


def _key_not_exportable(host: str, thumbprint: str) -> PreconditionFailed:
    return PreconditionFailed(
        host,
        f"the private key of {thumbprint} was created non-exportable, so Windows refuses to "
        "export it (NTE_BAD_KEY_STATE 0x8009000B) — nothing was changed",
        hint="keep the server itself as the key's only copy, or make a new request with an "
        "exportable key (IIS wizard: 'Mark the key as exportable') and have the certificate re-issued",
    )


def export_pfx(
    conn: Connection,
    thumbprint: str,
    *,
    password: str,
    chain: bool = True,
    anchors: Sequence[certs.Certificate] | None = None,
    site: str | None = None,
) -> ExportResult:
    """Export MY\\<thumbprint> with its key (and the chain) to a PFX, bring it back, prove it, delete the
    server copy (also on failure).

    Route (:func:`plan_export` names it): ``certutil -p PASSWORD -exportPFX MY THUMB out.pfx [NoChain]``
    (certutil reference, windows-commands.md §5) when the probe found ``-exportPFX``; otherwise, on
    IIS 6 with cscript, ``IIS.CertObj`` ``Export`` through the site that has the certificate bound
    (``site`` names it; default: a started site, else the lowest id) — :func:`opslib.iis.export_certificate`.
    IIS.CertObj always includes the chain (``chain=False`` is honoured by certutil only); ``site`` is
    used on the IIS.CertObj route only.
    The password is registered for redaction before anything is sent and reaches the server only
    inside that one command. Verified locally with :func:`opslib.certs.check_pfx`: opens with the
    password, key matches, the intermediate and (with the chain) the cross certificate inside.
    ``anchors`` (default: the server's Trusted Root certificates) let the check recognise a cross
    certificate by its self-signed twin.
    """
    secrets.register(password)
    host = _host(conn)
    _check_password(host, password)
    conn.require_confidential("export the certificate and its private key to a PFX and bring it back")
    caps = probe(conn)
    thumb = re.sub(r"[^0-9A-Fa-f]", "", thumbprint).upper()
    route = _export_route(conn, caps, thumb, site=site)
    entry = _exportable_entry(conn, thumb)
    if route.site is not None:
        chain = True
    if anchors is None:
        anchors = [e.certificate for e in trusted_roots(conn) if e.certificate is not None]
    remote = _remote(conn, ".pfx")
    deleted = False
    try:
        if route.site is not None:
            from . import iis

            exported = iis.export_certificate(conn, route.site, remote, password=password)
            if exported != entry.thumbprint:
                raise VerificationFailed(
                    host,
                    f"{route.site.label} exported {exported or 'no certificate'}, not {entry.thumbprint} "
                    "(its binding changed meanwhile?)",
                    hint="list the sites (opslib.iis.sites) and export again",
                )
        else:
            argv = ["certutil", "-p", password, "-exportPFX", "MY", entry.thumbprint, remote]
            if not chain:
                argv.append("NoChain")
            result = conn.run(
                argv,
                check=False,
                what=f"export MY\\{entry.thumbprint} to a PFX",
                timeout_s=120,
                secrets=[password],
                names=["certutil", "", "PFX password"],
            )
            if result.exit_code != 0:
                if _hresult(result.exit_code) == NTE_BAD_KEY_STATE:
                    raise _key_not_exportable(host, entry.thumbprint)
                raise _failed(conn, result, f"export MY\\{entry.thumbprint} to a PFX")
        data = _download(conn, remote, what="bring the PFX back")
    finally:
        deleted = _delete_remote(conn, remote)
    try:
        check = certs.check_pfx(
            data,
            password,
            source=f"{host}:{remote}",
            expected_thumbprint=entry.thumbprint,
            anchors=anchors,
            require_cross=chain,
        )
    except CertificateError as exc:
        raise VerificationFailed(host, f"the exported PFX does not open: {exc.problem}") from None
    if not check.ok:
        raise VerificationFailed(
            host,
            f"the exported PFX ({route.label}) is not a usable backup: " + "; ".join(check.problems),
            hint="if the cross certificate is missing, disable the G5 root (step 0) and export again",
        )
    return ExportResult(
        data,
        thumbprint=entry.thumbprint,
        check=check,
        remote_path=remote,
        remote_deleted=deleted,
        chain=chain,
        route=route.label,
    )
