"""The emulated LocalMachine certificate stores, kept in the rehearsal host's registry.

Windows keeps each system-registry store under ``HKLM\\SOFTWARE\\Microsoft\\SystemCertificates\\<STORE>``;
each certificate is a subkey ``Certificates\\<SHA1>`` (upper-case thumbprint, seen in public
scripts that ``REG DELETE`` such keys — docs/windows-behaviour.md W-REG-STORE-LAYOUT) with one
REG_BINARY value ``Blob``.

``Blob`` layout (MS-GPEF 2.2.1.1.1, "Certificate BLOB": "zero or more certificate properties,
followed by the encoded certificate",
https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-gpef/6a9e35fa-2ac7-4c10-81e1-eabe8d2472f1 ;
each property is ``PropertyID`` u32 LE, ``Reserved`` u32 LE (= 1), ``Length`` u32 LE, ``Value``,
https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-gpef/e051aba9-c9df-4f82-a42a-c13012c9d381 ).
Property IDs used here: 2 KEY_PROV_INFO, 3 SHA1_HASH, 9 ENHKEY_USAGE, 11 FRIENDLY_NAME (same
MS-GPEF table; CERTENROLL_PROPERTYID in certenroll.h), and 0x20 CERT_CERT_PROP_ID for the encoded
certificate itself [I: the certificate trailer uses the same header with ID 0x20].

This module is written from those documents, independently of the kit's own parser in
:mod:`opslib.server.stores`, so that a misreading in one is caught by the other.

Not emulated: the ``.SmartCard`` physical store (no registry location) and user stores.
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ..host import HKLM_CERTS, Host, KeyPair

# --- where the stores live (W-REG-STORE-LAYOUT; system-store-locations doc:
# https://learn.microsoft.com/en-us/windows/win32/seccrypto/system-store-locations ) -----------------
STORE_KEYS: dict[str, str] = {
    "MY": HKLM_CERTS + r"\MY",
    "CA": HKLM_CERTS + r"\CA",
    "REQUEST": HKLM_CERTS + r"\REQUEST",  # [I] path
    "Disallowed": HKLM_CERTS + r"\Disallowed",
    # Physical stores of the LocalMachine logical "Root" store [V membership, I paths for the last two]:
    "ROOT": HKLM_CERTS + r"\ROOT",  # .Default
    "AuthRoot": HKLM_CERTS + r"\AuthRoot",  # .AuthRoot (third-party roots)
    "GroupPolicy": r"HKLM\SOFTWARE\Policies\Microsoft\SystemCertificates\Root",  # .GroupPolicy
    "Enterprise": r"HKLM\SOFTWARE\Microsoft\EnterpriseCertificates\Root",  # .Enterprise
}
# The physical stores that make up the logical LocalMachine "Root" store, in enumeration order.
ROOT_PHYSICAL: tuple[str, ...] = ("ROOT", "AuthRoot", "GroupPolicy", "Enterprise")

# Property IDs (MS-GPEF 2.2.1.1.1.1; wincrypt.h CERT_*_PROP_ID).
KEY_PROV_INFO = 2
SHA1_HASH = 3
ENHKEY_USAGE = 9
FRIENDLY_NAME = 11
CERT_CERT = 0x20

# CRYPT_KEY_PROV_INFO.dwFlags CRYPT_MACHINE_KEYSET (wincrypt.h) — the IIS wizard's keys are machine keys.
CRYPT_MACHINE_KEYSET = 0x20
PROV_RSA_SCHANNEL = 12  # provider type of "Microsoft RSA SChannel Cryptographic Provider"
AT_KEYEXCHANGE = 1
EMPTY_EKU = b"\x30\x00"  # SEQUENCE {} — "no valid uses" [I]; as GUI "Disable all purposes" it is [U]


@dataclass
class StoredCert:
    """One certificate as the emulated registry holds it."""

    store: str  # name in STORE_KEYS
    key: str  # registry key of the certificate (…\Certificates\<SHA1>)
    thumbprint: str
    cert: x509.Certificate
    properties: dict[int, bytes] = field(default_factory=dict)

    @property
    def key_container(self) -> str | None:
        raw = self.properties.get(KEY_PROV_INFO)
        return decode_key_prov_info(raw)["container"] if raw else None

    @property
    def eku(self) -> bytes | None:
        """The raw ENHKEY_USAGE property (None when absent = all purposes of the certificate)."""
        return self.properties.get(ENHKEY_USAGE)

    @property
    def disabled(self) -> bool:
        return self.eku is not None and eku_oids(self.eku) == []

    @property
    def blob(self) -> bytes:
        return encode_blob(self.properties, self.cert.public_bytes(serialization.Encoding.DER))


# --- encoding --------------------------------------------------------------------------------------


def encode_property(prop_id: int, value: bytes) -> bytes:
    return struct.pack("<III", prop_id, 1, len(value)) + value


def encode_blob(properties: dict[int, bytes], der: bytes) -> bytes:
    """Properties (ascending ID) followed by the certificate as property 0x20."""
    out = b"".join(encode_property(pid, val) for pid, val in sorted(properties.items()) if pid != CERT_CERT)
    return out + encode_property(CERT_CERT, der)


def decode_blob(blob: bytes) -> tuple[dict[int, bytes], bytes]:
    """Split a Blob into its properties and the DER certificate (raises ValueError on a bad blob)."""
    props: dict[int, bytes] = {}
    der = b""
    pos = 0
    while pos < len(blob):
        if pos + 12 > len(blob):
            raise ValueError("truncated property header")
        pid, _reserved, length = struct.unpack_from("<III", blob, pos)
        pos += 12
        if pos + length > len(blob):
            raise ValueError(f"property {pid} runs past the end")
        value = blob[pos : pos + length]
        pos += length
        if pid == CERT_CERT:
            der = value
        else:
            props[pid] = value
    if not der:
        raise ValueError("no certificate (property 0x20) in blob")
    return props, der


def encode_key_prov_info(
    container: str,
    provider: str,
    *,
    provider_type: int = PROV_RSA_SCHANNEL,
    flags: int = CRYPT_MACHINE_KEYSET,
    key_spec: int = AT_KEYEXCHANGE,
) -> bytes:
    """The serialized CRYPT_KEY_PROV_INFO (MS-GPEF 2.2.1.1.1.1.1 "Key Provider Information").

    Seven u32 LE fields — ContainerNameOffset, ProviderNameOffset, ProviderType, Flags,
    ProviderParameterCount, ProviderParameterOffset, KeySpec — then the two NUL-terminated
    UTF-16LE strings; offsets count from the start of the value. No provider parameters.
    """
    cont = container.encode("utf-16-le") + b"\x00\x00"
    prov = provider.encode("utf-16-le") + b"\x00\x00"
    header = 7 * 4
    return struct.pack("<7I", header, header + len(cont), provider_type, flags, 0, 0, key_spec) + cont + prov


def _utf16z(data: bytes, offset: int) -> str:
    end = offset
    while end + 1 < len(data) and data[end : end + 2] != b"\x00\x00":
        end += 2
    return data[offset:end].decode("utf-16-le")


def decode_key_prov_info(value: bytes) -> dict[str, Any]:
    c_off, p_off, p_type, flags, _count, _poff, spec = struct.unpack_from("<7I", value, 0)
    return {
        "container": _utf16z(value, c_off) if c_off else "",
        "provider": _utf16z(value, p_off) if p_off else "",
        "provider_type": p_type,
        "flags": flags,
        "key_spec": spec,
    }


def encode_eku(oids: list[str] | None) -> bytes | None:
    """DER SEQUENCE OF OBJECT IDENTIFIER (RFC 5280 §4.2.1.12) or None (= property absent)."""
    if oids is None:
        return None
    if not oids:
        return EMPTY_EKU
    ext = x509.ExtendedKeyUsage([x509.ObjectIdentifier(o) for o in oids])
    return ext.public_bytes()


def eku_oids(value: bytes) -> list[str]:
    # cryptography parses extension values only inside certificates; a SEQUENCE OF OID is simple
    # enough to walk by hand.
    oids: list[str] = []
    if value[:1] != b"\x30":
        raise ValueError("EKU property is not a SEQUENCE")
    length, pos = _der_len(value, 1)
    end = pos + length
    while pos < end:
        if value[pos] != 0x06:
            raise ValueError("EKU element is not an OID")
        olen, pos = _der_len(value, pos + 1)
        oids.append(_oid_str(value[pos : pos + olen]))
        pos += olen
    return oids


def _der_len(data: bytes, pos: int) -> tuple[int, int]:
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    n = first & 0x7F
    return int.from_bytes(data[pos + 1 : pos + 1 + n], "big"), pos + 1 + n


def _oid_str(body: bytes) -> str:
    parts: list[int] = []
    val = 0
    for b in body:
        val = (val << 7) | (b & 0x7F)
        if not b & 0x80:
            parts.append(val)
            val = 0
    first = parts[0]
    head = [0, first] if first < 40 else ([1, first - 40] if first < 80 else [2, first - 80])
    return ".".join(str(p) for p in head + parts[1:])


# --- store access ---------------------------------------------------------------------------------


def store_key(store: str) -> str:
    """Registry key of a store name (case-insensitive; "Root" is the .Default physical store)."""
    for name, key in STORE_KEYS.items():
        if name.upper() == store.upper():
            return key
    raise KeyError(f"unknown store {store!r}; known: {', '.join(STORE_KEYS)}")


def store_name(store: str) -> str:
    for name in STORE_KEYS:
        if name.upper() == store.upper():
            return name
    raise KeyError(f"unknown store {store!r}")


def ensure_key(host: Host, key: str) -> None:
    """Create an empty registry key (the host model has no API for a key without values)."""
    with host.lock:
        k = key.rstrip("\\").upper()
        host.registry.setdefault(k, {})
        host.registry_case.setdefault(k, key.rstrip("\\"))


def ensure_store(host: Host, store: str) -> None:
    """Create a store's key with its ``Certificates``, ``CRLs`` and ``CTLs`` subkeys as Windows does [I]."""
    base = store_key(store)
    ensure_key(host, base)
    for sub in ("Certificates", "CRLs", "CTLs"):
        ensure_key(host, base + "\\" + sub)


def init_stores(host: Host, *, group_policy: bool = False) -> None:
    """Create the stores a fresh 2003 server has (the GroupPolicy Root key only exists under GP [I])."""
    for name in STORE_KEYS:
        if name == "GroupPolicy" and not group_policy:
            continue
        ensure_store(host, name)


def _physical(store: str, physical: str | None) -> str:
    if physical is None:
        return store_name(store)
    if store.upper() not in ("ROOT", physical.upper()):
        raise KeyError(f"physical={physical!r} only applies to the Root store, not {store!r}")
    return store_name(physical)


def thumbprint_of(cert: x509.Certificate) -> str:
    return hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()


def add_certificate(
    host: Host,
    store: str,
    cert: x509.Certificate,
    *,
    physical: str | None = None,
    key_container: str | None = None,
    key: rsa.RSAPrivateKey | Any | None = None,
    exportable: bool = True,
    eku_disabled: bool = False,
    friendly_name: str | None = None,
    provider: str | None = None,
) -> str:
    """Put ``cert`` into a store (``store`` = MY/CA/REQUEST/Disallowed/ROOT/AuthRoot/GroupPolicy/
    Enterprise; or ``store="ROOT", physical="AuthRoot"`` …) and return its thumbprint.

    With ``key`` the private key is put into ``host.keys`` under ``key_container`` (a GUID-like
    name is made when none is given) and property 2 links the certificate to it; with only
    ``key_container`` the link points to a key the host already holds.
    """
    name = _physical(store, physical)
    thumb = thumbprint_of(cert)
    der = cert.public_bytes(serialization.Encoding.DER)
    props: dict[int, bytes] = {SHA1_HASH: bytes.fromhex(thumb)}
    if key is not None or key_container:
        container = key_container or "{" + str(uuid.UUID(bytes=hashlib.md5(der).digest())).upper() + "}"
        with host.lock:
            if key is not None:
                pem = key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ).decode("ascii")
                pair = KeyPair(container=container, pkcs8_pem=pem, exportable=exportable)
                if provider:
                    pair.provider = provider
                host.keys[container] = pair
            held = host.keys.get(container)
        prov_name = provider or (held.provider if held else "Microsoft RSA SChannel Cryptographic Provider")
        props[KEY_PROV_INFO] = encode_key_prov_info(container, prov_name)
    if eku_disabled:
        props[ENHKEY_USAGE] = EMPTY_EKU
    if friendly_name:
        props[FRIENDLY_NAME] = friendly_name.encode("utf-16-le") + b"\x00\x00"
    ensure_store(host, name)
    host.reg_set(store_key(name) + "\\Certificates\\" + thumb, "Blob", "REG_BINARY", encode_blob(props, der))
    return thumb


def write_properties(host: Host, store: str, thumbprint: str, properties: dict[int, bytes]) -> None:
    """Replace the properties of a stored certificate (keeps the certificate)."""
    entry = find_certificate(host, store, thumbprint)
    if entry is None:
        raise KeyError(f"{thumbprint} not in {store}")
    host.reg_set(
        entry.key,
        "Blob",
        "REG_BINARY",
        encode_blob(properties, entry.cert.public_bytes(serialization.Encoding.DER)),
    )


def certificates(host: Host, store: str, *, physical: str | None = None) -> list[StoredCert]:
    """The certificates of one physical store (``"Root"`` alone means the .Default store)."""
    name = _physical(store, physical)
    base = store_key(name) + r"\Certificates"
    out: list[StoredCert] = []
    with host.lock:
        for sub in host.reg_subkeys(base):
            key = base + "\\" + sub
            value = host.reg_get(key, "Blob")
            if value is None or not isinstance(value[2], bytes):
                continue
            try:
                props, der = decode_blob(value[2])
                cert = x509.load_der_x509_certificate(der)
            except ValueError:
                continue  # a damaged blob is skipped, as CryptoAPI skips undecodable elements [I]
            out.append(StoredCert(store=name, key=key, thumbprint=sub.upper(), cert=cert, properties=props))
    return out


def logical_certificates(host: Host, store: str) -> list[StoredCert]:
    """What opening the LocalMachine *logical* store shows: Root = every physical Root store [I]."""
    if store.upper() == "ROOT":
        return [c for phys in ROOT_PHYSICAL for c in certificates(host, phys)]
    return certificates(host, store)


def find_certificate(
    host: Host, store: str, thumbprint: str, *, physical: str | None = None
) -> StoredCert | None:
    want = thumbprint.replace(" ", "").upper()
    pool = certificates(host, store, physical=physical) if physical else logical_certificates(host, store)
    for entry in pool:
        if entry.thumbprint == want:
            return entry
    return None


def set_eku(
    host: Host, store: str, thumbprint: str, oids: list[str] | None, *, physical: str | None = None
) -> bool:
    """Set (list of OIDs), empty (``[]`` = disable all purposes [U]) or remove (None) the EKU property.

    For the logical Root store the change lands in the physical store that holds the certificate
    [I]. Returns False when the certificate is not there.
    """
    entry = find_certificate(host, store, thumbprint, physical=physical)
    if entry is None:
        return False
    props = dict(entry.properties)
    value = encode_eku(oids)
    if value is None:
        props.pop(ENHKEY_USAGE, None)
    else:
        props[ENHKEY_USAGE] = value
    write_properties(host, entry.store, entry.thumbprint, props)
    return True


def remove_certificate(host: Host, store: str, thumbprint: str, *, physical: str | None = None) -> bool:
    entry = find_certificate(host, store, thumbprint, physical=physical)
    if entry is None:
        return False
    return host.reg_delete_key(entry.key)


def key_for(host: Host, entry: StoredCert) -> KeyPair | None:
    """The private key a certificate's property 2 points to, when the host holds it."""
    container = entry.key_container
    return host.keys.get(container) if container else None


def register(host: Host) -> None:
    """No program of its own: makes sure the standard stores exist (used by ``register_all`` callers)."""
    init_stores(host)
