"""``certreq -new PolicyFileIn RequestFileOut`` of the rehearsal host: a new key and a PKCS #10 request.

What it does (docs/windows-behaviour.md W-CERTREQ-NEW): reads the INF (``[Version]``, ``[NewRequest]``,
on 2008+ also ``[Extensions]`` and ``[RequestAttributes]``), makes an RSA key in a new key container
(machine keys with ``MachineKeySet = TRUE``), writes the base64 request between ``-----BEGIN NEW
CERTIFICATE REQUEST-----`` lines, and leaves the request *pending on the computer*: a self-signed
placeholder carrying the new key in the REQUEST store ("Once you have created a certificate request
with certreq.exe, it remains in a pending state on your computer until …", Microsoft's certreq page
for Server 2003,
https://learn.microsoft.com/en-us/previous-versions/windows/it-pro/windows-server-2003/cc736326(v=ws.10)).

Per Windows version (the host's ``windows_version``):

* Server 2003 (5.2, xenroll): the ``[NewRequest]`` keys of the 2003 page (Subject, KeySpec, KeyLength,
  Exportable, MachineKeySet, ProviderName, ProviderType, RequestType, KeyUsage, SMIME, UserProtected,
  UseExistingKeySet, KeyContainer, Silent, EncipherOnly, PrivateKeyArchive); the request is signed
  with SHA-1 (xenroll's ``HashAlgorithm`` property "SHA1 (the default)",
  https://learn.microsoft.com/en-us/windows/win32/api/xenroll/nf-xenroll-icenroll-put_hashalgorithm ).
  A 2008+ key (``HashAlgorithm``, ``FriendlyName``, ``[Extensions]`` …) is refused with E_INVALIDARG and
  *nothing* is made [assumed: no public capture of a 2003 certreq given such an INF was found; the
  opposite — ignoring the key — is ``host.extra["certreq_ignores_unknown_inf_keys"] = True``. The kit
  never sends these keys to 2003 and reads the CSR's hash back, so either way it does not rely on it].
* 2008 and later (CertEnroll): also ``HashAlgorithm`` (default SHA-1: "using Secure Hash Algorithm 1
  (SHA1)", the current certreq page,
  https://learn.microsoft.com/en-us/windows-server/administration/windows-commands/certreq_1 ) and
  ``[Extensions]`` with ``2.5.29.17 = "{text}"`` plus ``_continue_ = "dns=…&"`` lines.

A request whose INF lacks ``MachineKeySet = TRUE`` goes to the *user's* REQUEST store: the emulator
keeps no user stores, so it is kept in ``host.extra["user_requests"]`` (the kit, which reads only the
machine store, then finds nothing — as it would on Windows). The exact message texts are [U].
Exit codes as certutil: 0 / the HRESULT.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from ..host import Invocation
from . import stores
from .certutil import E_ACCESSDENIED, E_INVALIDARG, ERROR_FILE_EXISTS, ERROR_FILE_NOT_FOUND, MESSAGES, resolve

KEYS_2003 = frozenset(
    k.lower()
    for k in (
        "Subject",
        "KeySpec",
        "KeyLength",
        "Exportable",
        "MachineKeySet",
        "ProviderName",
        "ProviderType",
        "RequestType",
        "KeyUsage",
        "SMIME",
        "UserProtected",
        "UseExistingKeySet",
        "KeyContainer",
        "Silent",
        "EncipherOnly",
        "PrivateKeyArchive",
    )
)
KEYS_2008 = KEYS_2003 | {
    "hashalgorithm",
    "friendlyname",
    "keyalgorithm",
    "providertype",
    "securitydescriptor",
}
SECTIONS_2003 = frozenset({"version", "newrequest", "enhancedkeyusageextension", "requestattributes"})
SECTIONS_2008 = SECTIONS_2003 | {"extensions", "strings"}
SAN_OID = "2.5.29.17"
_NAME_OIDS = {
    "CN": NameOID.COMMON_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "L": NameOID.LOCALITY_NAME,
    "S": NameOID.STATE_OR_PROVINCE_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "C": NameOID.COUNTRY_NAME,
    "E": NameOID.EMAIL_ADDRESS,
}
_SHA1_RSA = bytes.fromhex("300d06092a864886f70d0101050500")


def _fail(inv: Invocation, hresult: int) -> int:
    code, en, ja = MESSAGES[hresult]
    inv.say(f"Certificate Request Processor: {en} {code}", f"証明書要求プロセッサ: {ja} {code}", err=True)
    return hresult


def _text(data: bytes, codepage: int) -> str:
    """An INF as certreq reads it: UTF-16 with its BOM, else the system's ANSI code page."""
    if data.startswith(b"\xff\xfe"):
        return data[2:].decode("utf-16-le")
    return data.decode("cp932" if codepage == 932 else "cp1252", errors="replace")


def parse_inf(text: str) -> dict[str, list[tuple[str, str]]]:
    """The INF as {lower-case section: [(key, value without quotes), …]} (order kept)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(";"):
            continue
        head = re.fullmatch(r"\[([^\]]+)\]", line)
        if head:
            current = head.group(1).strip().lower()
            sections.setdefault(current, [])
            continue
        key, sep, value = line.partition("=")
        if not sep:
            continue
        sections.setdefault(current, []).append((key.strip(), value.strip().strip('"')))
    return sections


def parse_subject(text: str) -> x509.Name:
    """``CN=www1.example.jp, O=Example K.K., C=JP`` (quoted values may hold commas) → x509.Name."""
    parts = re.findall(r'\s*([A-Za-z]+)\s*=\s*("(?:[^"]|"")*"|[^,;]*)\s*[,;]?', text)
    attributes = []
    for name, value in parts:
        oid = _NAME_OIDS.get(name.upper())
        if oid is None:
            raise ValueError(name)
        clean = value[1:-1].replace('""', '"') if value.startswith('"') else value.strip()
        attributes.append(x509.NameAttribute(oid, clean))
    # certreq writes the RDNs in reverse of the text (X.500 order; [I]): C first, CN last.
    return x509.Name(list(reversed(attributes)))


def _sans(values: list[tuple[str, str]]) -> list[str]:
    text = ""
    take = False
    for key, value in values:
        if key == SAN_OID:
            take, text = True, value
        elif key.lower() == "_continue_" and take:
            text += value
        else:
            take = False
    return [part[4:] for part in text.replace("{text}", "").split("&") if part.lower().startswith("dns=")]


def _sign_sha1(csr: x509.CertificateSigningRequest, key: rsa.RSAPrivateKey) -> bytes:
    """The same request signed with sha1WithRSAEncryption (cryptography makes no SHA-1 requests)."""
    info = csr.tbs_certrequest_bytes
    signature = key.sign(info, padding.PKCS1v15(), hashes.SHA1())

    def der(tag: int, body: bytes) -> bytes:
        n = len(body)
        size = (
            bytes([n])
            if n < 0x80
            else bytes([0x80 | ((n.bit_length() + 7) // 8)]) + n.to_bytes((n.bit_length() + 7) // 8, "big")
        )
        return bytes([tag]) + size + body

    return der(0x30, info + _SHA1_RSA + der(0x03, b"\x00" + signature))


def _true(value: str) -> bool:
    return value.strip().upper() in ("TRUE", "1")


def new(inv: Invocation, ops: list[str]) -> int:
    host = inv.host
    if len(ops) != 2:
        return _fail(inv, E_INVALIDARG)
    data = host.read_file(resolve(inv, ops[0]))
    if data is None:
        return _fail(inv, ERROR_FILE_NOT_FOUND)
    out_path = resolve(inv, ops[1])
    if host.exists(out_path):
        return _fail(inv, ERROR_FILE_EXISTS)
    is_2003 = int(host.windows_version.split(".")[0]) < 6
    inf = parse_inf(_text(data, host.default_codepage))
    allowed_keys, allowed_sections = (KEYS_2003, SECTIONS_2003) if is_2003 else (KEYS_2008, SECTIONS_2008)
    lenient = bool(host.extra.get("certreq_ignores_unknown_inf_keys", False))
    unknown = [s for s in inf if s and s not in allowed_sections]
    unknown += [k for k, _ in inf.get("newrequest", []) if k.lower() not in allowed_keys]
    if unknown and not lenient:
        inv.write(f"CertReq: Unknown INF entry: {unknown[0]}\r\n")  # [U] the text; decided by the exit code
        return _fail(inv, E_INVALIDARG)
    values = {k.lower(): v for k, v in inf.get("newrequest", [])}
    try:
        subject = parse_subject(values.get("subject", ""))
    except ValueError:
        return _fail(inv, E_INVALIDARG)
    if _true(values.get("machinekeyset", "")) and not host.is_admin:
        return _fail(inv, E_ACCESSDENIED)
    size = int(values.get("keylength", "1024" if is_2003 else "2048"))
    key = rsa.generate_private_key(public_exponent=65537, key_size=size)
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    names = [] if is_2003 and not lenient else _sans(inf.get("extensions", []))
    if names and not is_2003:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
    hash_name = "sha1" if is_2003 else values.get("hashalgorithm", "sha1").lower()
    if hash_name == "sha256":
        der = builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    else:
        der = _sign_sha1(builder.sign(key, hashes.SHA256()), key)
    body = base64.encodebytes(der).decode("ascii").replace("\n", "\r\n")
    text = f"-----BEGIN NEW CERTIFICATE REQUEST-----\r\n{body}-----END NEW CERTIFICATE REQUEST-----\r\n"
    now = datetime.now(UTC).replace(microsecond=0)
    placeholder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(hashlib.sha256(der).digest()[:8], "big") or 1)
        .not_valid_before(now - timedelta(minutes=10))
        .not_valid_after(now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    container = "{" + str(uuid.uuid4()).upper() + "}"
    provider = values.get("providername", "Microsoft RSA SChannel Cryptographic Provider")
    with host.lock:
        if _true(values.get("machinekeyset", "")):
            stores.add_certificate(
                host,
                "REQUEST",
                placeholder,
                key=key,
                key_container=container,
                exportable=_true(values.get("exportable", "")),
                provider=provider,
            )
        else:
            host.extra.setdefault("user_requests", []).append(stores.thumbprint_of(placeholder))
        host.write_file(out_path, text.encode("ascii"))
    inv.say(
        f"CertReq: Request Created ({out_path})", f"CertReq: 要求が作成されました ({out_path})"
    )  # [U] the text
    return 0
