"""The one small DER reader: TLV headers, the shape of a DER/PKCS#12 blob, and dotted OIDs.

Enough ASN.1 to recognise a format before handing bytes to ``cryptography`` and to list the
algorithm OIDs a PFX shows outside its encrypted parts (X.690 §8.1 for the TLV encoding,
§8.19 for OBJECT IDENTIFIER: https://www.itu.int/rec/T-REC-X.690).
"""

from __future__ import annotations


def der_header(data: bytes, pos: int = 0) -> tuple[int, int, int] | None:
    """(tag, header length, content length) of the TLV at ``pos``, or None."""
    if pos + 2 > len(data):
        return None
    tag = data[pos]
    first = data[pos + 1]
    if first < 0x80:
        return tag, 2, first
    n = first & 0x7F
    if n == 0 or n > 4 or pos + 2 + n > len(data):
        return None
    return tag, 2 + n, int.from_bytes(data[pos + 2 : pos + 2 + n], "big")


def is_der(data: bytes) -> bool:
    h = der_header(data)
    return h is not None and h[0] == 0x30 and h[1] + h[2] == len(data)


def is_pkcs12(data: bytes) -> bool:
    # PFX ::= SEQUENCE { version INTEGER (3), authSafe ContentInfo, macData OPTIONAL } (RFC 7292 §4)
    h = der_header(data)
    return h is not None and h[0] == 0x30 and data[h[1] : h[1] + 3] == b"\x02\x01\x03"


def first_tlv(der: bytes) -> bytes:
    h = der_header(der)
    return der[: h[1] + h[2]] if h else der


def oids(der: bytes, depth: int = 0) -> list[str]:
    """Dotted OIDs found walking DER (into constructed values and DER-looking OCTET STRINGs)."""
    out: list[str] = []
    pos = 0
    while pos < len(der) and depth < 12:
        h = der_header(der, pos)
        if h is None:
            break
        tag, hl, ln = h
        content = der[pos + hl : pos + hl + ln]
        if len(content) != ln:
            break
        if tag == 0x06:
            out.append(oid_text(content))
        elif tag & 0x20:
            out.extend(oids(content, depth + 1))
        elif tag == 0x04 and content[:1] == b"\x30" and is_der(content):
            out.extend(oids(content, depth + 1))
        pos += hl + ln
    return out


def oid_text(content: bytes) -> str:
    parts: list[int] = []
    value = 0
    for b in content:
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            parts.append(value)
            value = 0
    if not parts:
        return ""
    first = min(parts[0] // 40, 2)
    return ".".join(str(p) for p in [first, parts[0] - 40 * first, *parts[1:]])


def sequence_of_oids(value: bytes) -> tuple[str, ...]:
    """The OIDs of a DER ``SEQUENCE OF OBJECT IDENTIFIER`` (e.g. the EKU extension or the Windows
    store's enhanced-key-usage property, CERT_ENHKEY_USAGE_PROP_ID). Raises ValueError otherwise."""
    outer = der_header(value)
    if outer is None or outer[0] != 0x30:
        raise ValueError("not a DER SEQUENCE")
    pos, end = outer[1], outer[1] + outer[2]
    if end > len(value):
        raise ValueError("the SEQUENCE is truncated")
    found: list[str] = []
    while pos < end:
        h = der_header(value, pos)
        if h is None or h[0] != 0x06:
            raise ValueError("an element is not an OBJECT IDENTIFIER")
        content = value[pos + h[1] : pos + h[1] + h[2]]
        if len(content) != h[2] or pos + h[1] + h[2] > end:
            raise ValueError("an OBJECT IDENTIFIER is truncated")
        found.append(oid_text(content))
        pos += h[1] + h[2]
    return tuple(found)
