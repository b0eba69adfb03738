"""Local parsers for what the server's registry holds: ``reg export`` files and certificate Blobs.

A physical certificate store is read as one ``reg export`` (regedit-5 ``.reg`` file, UTF-16LE with
BOM); each ``…\\Certificates\\<SHA1>`` key's ``Blob`` value is the CryptoAPI property serialization
(MS-GPEF 2.2.1.1.1,
https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-gpef/6a9e35fa-2ac7-4c10-81e1-eabe8d2472f1 ,
property format e051aba9-c9df-4f82-a42a-c13012c9d381): ``PropertyID`` u32 LE, ``Reserved`` u32,
``Length`` u32, ``Value``; the certificate itself is property 0x20 [I], property 2 is the key
provider info (MS-GPEF 2.2.1.1.1.1.1), 9 the EKU (ENHKEY_USAGE), 11 the friendly name.
No remote command here: bytes in, facts out (independent of the rehearsal's writer).
"""

from __future__ import annotations

import re
import struct
from typing import Any

from ..certs.der import sequence_of_oids

__all__ = [
    "CERT_CERT",
    "EMPTY_EKU",
    "ENHKEY_USAGE",
    "FRIENDLY_NAME",
    "KEY_PROV_INFO",
    "SHA1_HASH",
    "der_oids",
    "key_prov_info",
    "parse_blob",
    "parse_reg_export",
    "with_property",
]

KEY_PROV_INFO, SHA1_HASH, ENHKEY_USAGE, FRIENDLY_NAME, CERT_CERT = 2, 3, 9, 11, 0x20
EMPTY_EKU = b"\x30\x00"  # SEQUENCE {}: no valid uses [I]; equal to GUI "Disable all purposes" is [U] (§2)


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


def with_property(blob: bytes, prop_id: int, value: bytes) -> bytes:
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


def key_prov_info(value: bytes) -> tuple[str, str]:
    """(container, provider) of a serialized CRYPT_KEY_PROV_INFO (MS-GPEF 2.2.1.1.1.1.1): seven u32 —
    ContainerNameOffset, ProviderNameOffset, ProviderType, Flags, ParamCount, ParamOffset, KeySpec —
    then NUL-terminated UTF-16LE strings at the offsets."""
    if len(value) < 28:
        return "", ""
    container_off, provider_off = struct.unpack_from("<II", value, 0)
    return _utf16z(value, container_off), _utf16z(value, provider_off)


def der_oids(value: bytes) -> tuple[str, ...]:
    """OIDs of a DER ``SEQUENCE OF OBJECT IDENTIFIER`` (the EKU property). Raises ValueError.

    The one DER reader is :mod:`opslib.certs.der`; this name stays for the store parser."""
    return sequence_of_oids(value)


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
