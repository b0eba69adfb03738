"""Local X.509 work: bytes in, immutable facts out.

* :func:`load_certificates` reads PEM (one or many; CRLF, BOM, junk around it; UTF-16 text), DER,
  PKCS#7 (PEM/DER ``.p7b``), PKCS#12 (``.pfx``), CSRs (PEM/DER, also certreq's ``NEW CERTIFICATE
  REQUEST``), and the CA's notification mail — pasted text or a saved ``.eml`` in ISO-2022-JP,
  Shift_JIS or UTF-8, with MIME parts — into a :class:`Bundle`.
* :func:`summarize` → :class:`CertSummary` (``.row()`` for a pandas table).
* :func:`build_chains` → every path from a leaf through a pool, cross certificates included.
* :func:`key_matches`, :func:`hostname_matches`, :func:`check_warnings` (stable codes, clock passed in).
* :data:`KNOWN` — the catalogue of real certificates shipped in ``opslib/data/`` (the VeriSign G5 root,
  its cross certificate, the old Class 3 root); :func:`is_forbidden_root`, :func:`is_cross_certificate`.
* PFX helpers for the backup step: :func:`load_pkcs12`, :func:`check_pfx` → :class:`PfxCheck`.

This is the only module (besides the rehearsal's PKI factory) that parses with ``cryptography``;
everything else goes through the names here. Errors are :class:`~opslib.errors.CertificateError`
naming the source.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import ipaddress
import json
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from importlib import resources
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .errors import CertificateError

# cryptography warns on every access to a name attribute longer than RFC 5280's upper bound (e.g. a
# 72-character CN). Real CAs issued such names and Windows accepts them; the warning tells an operator
# nothing they can act on, so it is silenced for exactly that message.
warnings.filterwarnings("ignore", message="Attribute's length must be", category=UserWarning)

Certificate = x509.Certificate
CSR = x509.CertificateSigningRequest
PrivateKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | dsa.DSAPrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)
PublicKey = (
    rsa.RSAPublicKey
    | ec.EllipticCurvePublicKey
    | dsa.DSAPublicKey
    | ed25519.Ed25519PublicKey
    | ed448.Ed448PublicKey
)

__all__ = [
    "KNOWN",
    "WARNING_CODES",
    "Bundle",
    "CertSummary",
    "Chain",
    "Finding",
    "HostnameMatch",
    "KnownCertificate",
    "PfxCheck",
    "build_chains",
    "check_pfx",
    "check_warnings",
    "encode_der",
    "encode_pem",
    "encode_pkcs7",
    "hostname_match",
    "hostname_matches",
    "is_cross_certificate",
    "is_forbidden_root",
    "is_self_signed",
    "key_description",
    "subject_alt_names",
    "key_matches",
    "load_certificates",
    "load_pkcs12",
    "public_key_info",
    "sha256_hex",
    "summarize",
    "thumbprint",
]

# --- small facts ---------------------------------------------------------------------------------


def thumbprint(cert: Certificate) -> str:
    """SHA-1 of the DER, as Windows shows it: 40 upper-case hex digits (store key names, SSLCertHash)."""
    return cert.fingerprint(hashes.SHA1()).hex().upper()


def sha256_hex(cert: Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex().upper()


def encode_der(cert: Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def encode_pem(*certs: Certificate) -> bytes:
    """PEM text of the certificates (LF line ends), e.g. for an upload or a CA file."""
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def encode_pkcs7(certs: Sequence[Certificate], *, der: bool = True) -> bytes:
    """A certs-only PKCS#7 (``.p7b``) holding ``certs`` (what ``certreq -accept`` takes)."""
    enc = serialization.Encoding.DER if der else serialization.Encoding.PEM
    return pkcs7.serialize_certificates(list(certs), enc)


def _public_key(item: Any) -> Any:
    if isinstance(item, (x509.Certificate, x509.CertificateSigningRequest)):
        return item.public_key()
    if hasattr(item, "public_key") and not hasattr(item, "public_bytes"):
        return item.public_key()  # a private key
    return item


def public_key_info(item: Any) -> bytes:
    """DER SubjectPublicKeyInfo of a certificate, CSR, private key or public key."""
    key = _public_key(item)
    try:
        return bytes(
            key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
    except (AttributeError, TypeError, ValueError) as exc:
        raise TypeError(f"not a certificate, CSR or key: {type(item).__name__}") from exc


def key_matches(a: Any, b: Any) -> bool:
    """True when ``a`` and ``b`` carry the same public key.

    Each may be a certificate, a CSR, a private key or a public key — e.g. the mailed certificate and
    the placeholder certificate Windows keeps in the REQUEST store for the pending request.
    """
    return public_key_info(a) == public_key_info(b)


def _signed_by(cert: Certificate, issuer: Certificate) -> bool:
    """Name chaining + signature check. Works for SHA-1 signatures too (cryptography's helper refuses them)."""
    if cert.issuer != issuer.subject:
        return False
    key = issuer.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            pad = cert.signature_algorithm_parameters
            algorithm = cert.signature_hash_algorithm
            if not isinstance(pad, (padding.PKCS1v15, padding.PSS)) or algorithm is None:
                return False
            key.verify(cert.signature, cert.tbs_certificate_bytes, pad, algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            params = cert.signature_algorithm_parameters
            if not isinstance(params, ec.ECDSA):
                return False
            key.verify(cert.signature, cert.tbs_certificate_bytes, params)
        elif isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            key.verify(cert.signature, cert.tbs_certificate_bytes)
        elif isinstance(key, dsa.DSAPublicKey):
            algorithm = cert.signature_hash_algorithm
            if algorithm is None:
                return False
            key.verify(cert.signature, cert.tbs_certificate_bytes, algorithm)
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False
    return True


def is_self_signed(cert: Certificate) -> bool:
    """Subject equals issuer and the certificate's own key verifies its signature."""
    return cert.subject == cert.issuer and _signed_by(cert, cert)


def _ext(cert: Certificate | CSR, cls: type) -> Any:
    try:
        return cert.extensions.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None


def _is_ca(cert: Certificate) -> bool:
    bc = _ext(cert, x509.BasicConstraints)
    return bool(bc and bc.ca)


def _cn(name: x509.Name) -> str:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if attrs:
        return str(attrs[-1].value)
    ous = name.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    return str(ous[-1].value) if ous else name.rfc4514_string()


# --- the catalogue -------------------------------------------------------------------------------


@dataclass(frozen=True)
class KnownCertificate:
    """One real certificate shipped in ``opslib/data/`` (see ``catalogue.json`` for provenance)."""

    name: str
    role: str  # "forbidden_root" | "cross" | "root"
    certificate: Certificate
    sha1: str
    provenance: tuple[str, ...]


@dataclass(frozen=True)
class Catalogue:
    entries: tuple[KnownCertificate, ...]

    @property
    def certificates(self) -> tuple[Certificate, ...]:
        return tuple(e.certificate for e in self.entries)

    def by_role(self, role: str) -> tuple[KnownCertificate, ...]:
        return tuple(e for e in self.entries if e.role == role)

    def lookup(self, cert: Certificate) -> KnownCertificate | None:
        """The catalogue entry for ``cert``: by thumbprint, or by subject + issuer + public key (re-issues)."""
        sha1 = thumbprint(cert)
        for e in self.entries:
            if e.sha1 == sha1:
                return e
        for e in self.entries:
            k = e.certificate
            if (k.subject, k.issuer) == (cert.subject, cert.issuer) and key_matches(k, cert):
                return e
        return None


def _load_catalogue() -> Catalogue:
    base = resources.files("opslib") / "data"
    meta = json.loads((base / "catalogue.json").read_text(encoding="utf-8"))
    entries = []
    for item in meta["certificates"]:
        cert = x509.load_pem_x509_certificate((base / item["file"]).read_bytes())
        if thumbprint(cert) != item["sha1"]:  # a damaged package must not silently weaken the check
            raise RuntimeError(f"opslib/data/{item['file']}: SHA-1 differs from catalogue.json")
        entries.append(
            KnownCertificate(
                name=item["name"],
                role=item["role"],
                certificate=cert,
                sha1=item["sha1"],
                provenance=tuple(item.get("provenance", ())),
            )
        )
    return Catalogue(tuple(entries))


KNOWN: Catalogue = _load_catalogue()
G5_THUMBPRINT = "4EB6D578499B1CCF5F581EAD56BE3D9B6744A5E5"


def _normalize_thumbprint(value: str) -> str:
    return re.sub(r"[^0-9A-Fa-f]", "", value).upper()


def normalize_thumbprint(value: str) -> str:
    """A thumbprint as typed or copied (spaces, colons, lower case) → upper-case hex digits only."""
    return _normalize_thumbprint(value)


def is_forbidden_root(cert: Certificate, extra_thumbprints: Iterable[str] = ()) -> bool:
    """True for the VeriSign G5 root (by thumbprint, or by subject + public key as a re-issue would
    carry) and for any certificate whose SHA-1 is in ``extra_thumbprints``.

    The G5 *cross* certificate (same subject and key, issued by another CA) is not a root and is not
    forbidden: it is the certificate the server must send.
    """
    sha1 = thumbprint(cert)
    if sha1 in {_normalize_thumbprint(t) for t in extra_thumbprints}:
        return True
    for entry in KNOWN.by_role("forbidden_root"):
        g5 = entry.certificate
        if sha1 == entry.sha1:
            return True
        if cert.subject == g5.subject and cert.issuer == cert.subject and key_matches(cert, g5):
            return True
    return False


def is_cross_certificate(cert: Certificate, pool: Iterable[Certificate] = ()) -> bool:
    """A CA certificate that is not self-signed but shares subject and key with a root.

    True for the catalogue's G5 cross certificate (and re-issues: G5 subject and key, another issuer),
    and for any certificate in ``pool`` ∪ catalogue that has a self-signed twin (same subject and key).
    """
    if not _is_ca(cert) or cert.subject == cert.issuer:
        return False
    for twin in (*pool, *KNOWN.certificates):
        if twin.subject == cert.subject and twin.issuer == twin.subject and key_matches(twin, cert):
            return True
    return False


# --- summary -------------------------------------------------------------------------------------

_EKU_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
}
_KU_FIELDS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)


def _key_description(key: Any) -> tuple[str, int | None]:
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name}", key.curve.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size
    return type(key).__name__, None


key_description = _key_description


def _now(now_utc: datetime | None) -> datetime:
    if now_utc is None:
        return datetime.now(UTC)
    if now_utc.tzinfo is None:
        raise ValueError("now_utc must be timezone-aware")
    return now_utc


@dataclass(frozen=True)
class CertSummary:
    """What an operator or reviewer needs to know about one certificate."""

    subject: str
    issuer: str
    common_name: str
    serial: str  # upper-case hex, no separators
    not_before_utc: datetime
    not_after_utc: datetime
    days_left: int
    thumbprint: str  # SHA-1, Windows form
    sha256: str
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    key_type: str
    key_size: int | None
    signature_algorithm: str
    key_usage: tuple[str, ...]
    extended_key_usage: tuple[str, ...]
    is_ca: bool
    path_length: int | None
    subject_key_id: str | None
    authority_key_id: str | None
    self_signed: bool
    known_as: str = ""  # catalogue name, "" when not a known certificate

    def row(self) -> dict[str, Any]:
        """A flat dict for one pandas row."""
        return {
            "common_name": self.common_name,
            "issuer": _short_name(self.issuer),
            "not_before_utc": self.not_before_utc,
            "not_after_utc": self.not_after_utc,
            "days_left": self.days_left,
            "thumbprint": self.thumbprint,
            "serial": self.serial,
            "dns_names": ", ".join(self.dns_names),
            "key": f"{self.key_type} {self.key_size or ''}".strip(),
            "signature": self.signature_algorithm,
            "ca": self.is_ca,
            "self_signed": self.self_signed,
            "known_as": self.known_as,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "issuer": self.issuer,
            "common_name": self.common_name,
            "serial": self.serial,
            "not_before_utc": _iso(self.not_before_utc),
            "not_after_utc": _iso(self.not_after_utc),
            "days_left": self.days_left,
            "sha1": self.thumbprint,
            "sha256": self.sha256,
            "dns_names": list(self.dns_names),
            "ip_addresses": list(self.ip_addresses),
            "key_type": self.key_type,
            "key_size": self.key_size,
            "signature_algorithm": self.signature_algorithm,
            "key_usage": list(self.key_usage),
            "extended_key_usage": list(self.extended_key_usage),
            "is_ca": self.is_ca,
            "path_length": self.path_length,
            "subject_key_id": self.subject_key_id,
            "authority_key_id": self.authority_key_id,
            "self_signed": self.self_signed,
            "known_as": self.known_as or None,
        }


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _short_name(rfc4514: str) -> str:
    m = re.search(r"(?:^|,)CN=((?:[^,\\]|\\.)*)", rfc4514)
    return m.group(1).replace("\\", "") if m else rfc4514


def _san(cert: Certificate | CSR) -> tuple[tuple[str, ...], tuple[str, ...]]:
    san = _ext(cert, x509.SubjectAlternativeName)
    if san is None:
        return (), ()
    dns = tuple(str(n) for n in san.get_values_for_type(x509.DNSName))
    ips = tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    return dns, ips


subject_alt_names = _san


def summarize(cert: Certificate, *, now_utc: datetime | None = None) -> CertSummary:
    """Facts about ``cert``; ``days_left`` is counted from ``now_utc`` (default: now)."""
    now = _now(now_utc)
    key_type, key_size = _key_description(cert.public_key())
    dns, ips = _san(cert)
    ku = _ext(cert, x509.KeyUsage)
    key_usage: tuple[str, ...] = ()
    if ku is not None:
        key_usage = tuple(f for f in _KU_FIELDS if getattr(ku, f))
    eku = _ext(cert, x509.ExtendedKeyUsage)
    ekus = tuple(_EKU_NAMES.get(o, o.dotted_string) for o in eku) if eku is not None else ()
    bc = _ext(cert, x509.BasicConstraints)
    ski = _ext(cert, x509.SubjectKeyIdentifier)
    aki = _ext(cert, x509.AuthorityKeyIdentifier)
    try:
        sig = cert.signature_algorithm_oid._name
    except Exception:  # pragma: no cover - cryptography always names known OIDs
        sig = cert.signature_algorithm_oid.dotted_string
    known = KNOWN.lookup(cert)
    return CertSummary(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        common_name=_cn(cert.subject),
        serial=f"{cert.serial_number:X}",
        not_before_utc=cert.not_valid_before_utc,
        not_after_utc=cert.not_valid_after_utc,
        days_left=(cert.not_valid_after_utc - now).days,
        thumbprint=thumbprint(cert),
        sha256=sha256_hex(cert),
        dns_names=dns,
        ip_addresses=ips,
        key_type=key_type,
        key_size=key_size,
        signature_algorithm=sig if sig != "Unknown OID" else cert.signature_algorithm_oid.dotted_string,
        key_usage=key_usage,
        extended_key_usage=ekus,
        is_ca=bool(bc and bc.ca),
        path_length=bc.path_length if bc else None,
        subject_key_id=ski.digest.hex().upper() if ski is not None else None,
        authority_key_id=aki.key_identifier.hex().upper() if aki is not None and aki.key_identifier else None,
        self_signed=is_self_signed(cert),
        known_as=known.name if known else "",
    )


# --- host names ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostnameMatch:
    name: str
    matched: bool
    via: str  # "san_dns" | "san_ip" | "cn" | "" (no match)
    entry: str = ""  # the SAN/CN entry that matched


def _to_alabel(name: str) -> str:
    name = name.strip().rstrip(".").lower()
    if not name or name.isascii():
        return name
    labels = []
    for label in name.split("."):
        labels.append(label if label.isascii() else "xn--" + label.encode("punycode").decode("ascii"))
    return ".".join(labels)


def _dns_match(pattern: str, host: str) -> bool:
    pattern = _to_alabel(pattern)
    if not pattern or not host:
        return False
    if "*" not in pattern:
        return pattern == host
    # RFC 6125 §6.4.3 as browsers apply it: only a whole left-most label "*", matching exactly one
    # non-empty label, never on the last two labels ("*.com", "*.co.jp" stay unmatched).
    p_labels = pattern.split(".")
    h_labels = host.split(".")
    if p_labels[0] != "*" or "*" in ".".join(p_labels[1:]) or len(p_labels) < 3:
        return False
    if len(p_labels) == 3 and len(p_labels[-1]) == 2 and len(p_labels[-2]) <= 3:
        return False  # *.co.jp, *.ne.jp …: a second-level registry domain
    return len(h_labels) == len(p_labels) and h_labels[1:] == p_labels[1:] and bool(h_labels[0])


def hostname_match(cert: Certificate, name: str) -> HostnameMatch:
    """How ``cert`` covers ``name``: SANs first (DNS with wildcard rules and IDN, IP SANs for
    addresses); the subject CN only when the certificate has no DNS/IP SAN at all (``via="cn"``)."""
    dns, ips = _san(cert)
    try:
        ip = ipaddress.ip_address(name.strip().strip("[]"))
    except ValueError:
        ip = None
    if ip is not None:
        for entry in ips:
            if ipaddress.ip_address(entry) == ip:
                return HostnameMatch(name, True, "san_ip", entry)
        return HostnameMatch(name, False, "")
    host = _to_alabel(name)
    for entry in dns:
        if _dns_match(entry, host):
            return HostnameMatch(name, True, "san_dns", entry)
    if not dns and not ips:
        for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
            if _dns_match(str(attr.value), host):
                return HostnameMatch(name, True, "cn", str(attr.value))
    return HostnameMatch(name, False, "")


def hostname_matches(cert: Certificate, name: str) -> bool:
    return hostname_match(cert, name).matched


# --- chains --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chain:
    """One path from a leaf towards a root: ``path[0]`` is the leaf."""

    path: tuple[Certificate, ...]
    anchor: Certificate | None  # the self-signed root (or given anchor) the path ends at
    complete: bool
    missing: str = ""  # what is missing when incomplete: the issuer name not found
    trusted: bool = False  # the anchor is one of the given anchors

    @property
    def thumbprints(self) -> tuple[str, ...]:
        return tuple(thumbprint(c) for c in self.path)

    def describe(self) -> str:
        names = " → ".join(_cn(c.subject) for c in self.path)
        if self.complete:
            return names
        return f"{names} → ? ({self.missing})"

    def to_json(self) -> dict[str, Any]:
        return {
            "path": list(self.thumbprints),
            "anchor": thumbprint(self.anchor) if self.anchor is not None else None,
            "complete": self.complete,
            "missing": self.missing or None,
            "trusted": self.trusted,
        }


def _unique(certs: Iterable[Certificate]) -> list[Certificate]:
    seen: set[bytes] = set()
    out = []
    for c in certs:
        der = encode_der(c)
        if der not in seen:
            seen.add(der)
            out.append(c)
    return out


def build_chains(
    leaf: Certificate,
    pool: Iterable[Certificate],
    *,
    anchors: Iterable[Certificate] = (),
    max_depth: int = 8,
) -> list[Chain]:
    """Every path from ``leaf`` through ``pool`` ∪ ``anchors``.

    An issuer is any certificate whose subject is the current certificate's issuer and whose key
    verifies its signature — so a cross certificate (same subject and key as a root, another issuer)
    yields a second path. A path ends at a self-signed certificate or at one of ``anchors``
    (complete), or where no issuer is found (incomplete; ``missing`` names the issuer). A path never
    visits the same subject+key twice. Complete paths come first, shorter before longer.
    """
    anchor_list = _unique(anchors)
    anchor_ders = {encode_der(a) for a in anchor_list}
    candidates = _unique([*pool, *anchor_list])
    chains: list[Chain] = []

    def identity(c: Certificate) -> tuple[bytes, bytes]:
        return (c.subject.public_bytes(), public_key_info(c))

    def walk(path: list[Certificate]) -> None:
        current = path[-1]
        der = encode_der(current)
        if is_self_signed(current) or (der in anchor_ders and len(path) > 1):
            chains.append(Chain(tuple(path), current, True, "", der in anchor_ders))
            return
        if len(path) > max_depth:
            chains.append(Chain(tuple(path), None, False, "path too long (loop?)"))
            return
        seen = {identity(c) for c in path}
        issuers = [
            c
            for c in candidates
            if identity(c) not in seen and c.subject == current.issuer and _signed_by(current, c)
        ]
        if not issuers:
            missing = f"issuer not found: {current.issuer.rfc4514_string()}"
            chains.append(Chain(tuple(path), None, False, missing))
            return
        for issuer in issuers:
            walk([*path, issuer])

    walk([leaf])
    chains.sort(key=lambda ch: (not ch.complete, not ch.trusted, len(ch.path)))
    return chains


# --- warnings ------------------------------------------------------------------------------------

WARNING_CODES = (
    "expired",
    "not_yet_valid",
    "expires_soon",
    "sha1_signature",
    "weak_key",
    "no_san",
    "hostname_mismatch",
    "hostname_cn_only",
    "chain_incomplete",
    "forbidden_root_in_chain",
    "self_signed_leaf",
)


@dataclass(frozen=True)
class Finding:
    """One warning: a stable ``code``, a message for people, and the certificate's SHA-1 ("" if none)."""

    code: str
    message: str
    certificate: str = ""

    def to_json(self) -> dict[str, str | None]:
        return {"code": self.code, "message": self.message, "certificate": self.certificate or None}


def _weak(cert: Certificate) -> str:
    key = cert.public_key()
    if isinstance(key, (rsa.RSAPublicKey, dsa.DSAPublicKey)) and key.key_size < 2048:
        return (
            f"{'RSA' if isinstance(key, rsa.RSAPublicKey) else 'DSA'} {key.key_size}-bit key (minimum 2048)"
        )
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size < 256:
        return f"EC {key.curve.name} key (minimum 256 bits)"
    return ""


def _weak_signature(cert: Certificate) -> str:
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return cert.signature_algorithm_oid.dotted_string  # MD2 and friends
    if isinstance(algorithm, (hashes.SHA1, hashes.MD5)):
        return algorithm.name.upper().replace("SHA1", "SHA-1")
    return ""


def certificate_warnings(
    cert: Certificate, *, now_utc: datetime | None = None, warn_days: int = 30
) -> list[Finding]:
    """Checks that apply to any certificate: validity, signature hash (not for roots), key size."""
    now = _now(now_utc)
    sha1 = thumbprint(cert)
    name = _cn(cert.subject)
    out: list[Finding] = []
    if now > cert.not_valid_after_utc:
        out.append(Finding("expired", f"{name} expired on {_iso(cert.not_valid_after_utc)}", sha1))
    elif now < cert.not_valid_before_utc:
        out.append(
            Finding("not_yet_valid", f"{name} is not valid before {_iso(cert.not_valid_before_utc)}", sha1)
        )
    else:
        days = (cert.not_valid_after_utc - now).days
        if days < warn_days:
            out.append(
                Finding(
                    "expires_soon",
                    f"{name} expires in {days} days ({_iso(cert.not_valid_after_utc)}; threshold {warn_days} days)",
                    sha1,
                )
            )
    weak_sig = _weak_signature(cert)
    if weak_sig and not is_self_signed(cert):  # a root's self-signature is not checked by clients
        out.append(Finding("sha1_signature", f"{name} is signed with {weak_sig}", sha1))
    weak = _weak(cert)
    if weak:
        out.append(Finding("weak_key", f"{name} has a weak key: {weak}", sha1))
    return out


def check_warnings(
    leaf: Certificate,
    *,
    now_utc: datetime | None = None,
    chains: Sequence[Chain] | None = None,
    hostnames: Sequence[str] = (),
    warn_days: int = 30,
    forbidden_roots: Iterable[str] = (),
    supplied: Iterable[Certificate] | None = None,
) -> list[Finding]:
    """Every warning for ``leaf``: its own checks, the intermediates' checks, host names and chains.

    ``chains`` default to :func:`build_chains` over nothing but the catalogue. ``forbidden_root_in_chain``
    fires when a forbidden root (G5 or ``forbidden_roots``) that was *supplied* (``supplied``; default:
    every certificate of the chains) lies on a chain of the leaf — the catalogue's own copy of G5, used
    only to recognise it, does not count.
    """
    now = _now(now_utc)
    forbidden = tuple(forbidden_roots)
    sha1 = thumbprint(leaf)
    name = _cn(leaf.subject)
    out = certificate_warnings(leaf, now_utc=now, warn_days=warn_days)
    if is_self_signed(leaf):
        out.append(Finding("self_signed_leaf", f"{name} is self-signed: no client will trust it", sha1))
    dns, ips = _san(leaf)
    if not dns and not ips:
        out.append(
            Finding(
                "no_san", f"{name} has no subjectAltName: browsers ignore the CN and will reject it", sha1
            )
        )
    for host in hostnames:
        m = hostname_match(leaf, host)
        if not m.matched:
            covered = ", ".join(dns + ips) or f"CN {name}"
            out.append(
                Finding("hostname_mismatch", f"{name} does not cover {host} (it covers: {covered})", sha1)
            )
        elif m.via == "cn":
            out.append(Finding("hostname_cn_only", f"{host} matches only the CN of {name}, not a SAN", sha1))
    if chains is None:
        chains = build_chains(leaf, (), anchors=KNOWN.certificates)
    if chains and not any(c.complete for c in chains):
        missing = "; ".join(sorted({c.missing for c in chains if c.missing}))
        out.append(Finding("chain_incomplete", f"no complete chain for {name}: {missing}", sha1))
    elif not chains and not is_self_signed(leaf):
        out.append(Finding("chain_incomplete", f"no chain for {name}", sha1))
    supplied_ders = (
        {encode_der(c) for c in supplied}
        if supplied is not None
        else {encode_der(c) for ch in chains for c in ch.path}
    )
    catalogue_ders = {encode_der(c) for c in KNOWN.certificates}
    flagged: set[str] = set()
    for chain in chains:
        for cert in chain.path[1:]:
            der = encode_der(cert)
            if der not in supplied_ders or (supplied is None and der in catalogue_ders):
                continue
            tp = thumbprint(cert)
            if tp not in flagged and is_forbidden_root(cert, forbidden):
                flagged.add(tp)
                out.append(
                    Finding(
                        "forbidden_root_in_chain",
                        f"the chain of {name} ends at the forbidden root {_cn(cert.subject)} (SHA-1 {tp}); "
                        "disable it in the server's Trusted Root store so the cross certificate is sent",
                        tp,
                    )
                )
    return out


# --- loading -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bundle:
    """What one source held."""

    source: str
    certificates: tuple[Certificate, ...] = ()
    private_key: Any = None  # a cryptography private key object, or None
    csrs: tuple[CSR, ...] = ()
    formats: tuple[
        str, ...
    ] = ()  # how it was read: "pem", "der", "pkcs7", "pkcs12", "csr", "mail", "eml", "utf-16"

    @cached_property
    def leaf(self) -> Certificate | None:
        """The end-entity certificate: the one matching the private key, else the first non-CA
        certificate that issued none of the others; None when the bundle holds only CA certificates."""
        if self.private_key is not None:
            for c in self.certificates:
                if key_matches(c, self.private_key):
                    return c
        for c in self.certificates:
            if not _is_ca(c) and not any(o is not c and o.issuer == c.subject for o in self.certificates):
                return c
        return None

    @property
    def others(self) -> tuple[Certificate, ...]:
        """Every certificate but the leaf (intermediates, cross certificates, roots)."""
        leaf = self.leaf
        return tuple(c for c in self.certificates if c is not leaf)

    def rows(self, *, now_utc: datetime | None = None) -> list[dict[str, Any]]:
        """One row per certificate for a table, ``role`` leaf or CA first."""
        leaf = self.leaf
        return [
            {"role": "leaf" if c is leaf else "CA", **summarize(c, now_utc=now_utc).row()}
            for c in self.certificates
        ]

    def require_leaf(self) -> Certificate:
        """The leaf; :class:`CertificateError` when the source holds only CA certificates."""
        if self.leaf is None:
            raise CertificateError(
                self.source,
                "holds no server certificate (only CA certificates)",
                hint="give the mail or file with the サーバID",
            )
        return self.leaf


# Findings that stop step 1 before anything is sent to the server.
# Findings that stop an install: the runner refuses them before anything starts (all but the chain,
# which needs the server's roots), and step 1 again with the server's stores.
INSTALL_BLOCKING = (
    "expired",
    "not_yet_valid",
    "hostname_mismatch",
    "self_signed_leaf",
    "sha1_signature",
    "weak_key",
    "chain_incomplete",
)


def raise_for_blocking(
    findings: Iterable[Finding], *, source: str, blocking: Iterable[str] = INSTALL_BLOCKING
) -> None:
    """:class:`CertificateError` naming every finding whose code is in ``blocking`` (nothing was changed)."""
    codes = set(blocking)
    stop = [f for f in findings if f.code in codes]
    if stop:
        raise CertificateError(
            source,
            "; ".join(f.message for f in stop),
            hint="check that this is the certificate the CA issued for this renewal; nothing was changed",
        )


# A BEGIN marker counts only when base64 or a line end follows it: mails quote the markers in prose
# ("(-----BEGIN CERTIFICATE-----) から (-----END CERTIFICATE-----) までをコピー").
_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 #]+?)-----(?=[ \t]*(?:\r?\n|[A-Za-z0-9+/]))(.*?)(?:-----END \1-----|(?=-----BEGIN )|\Z)",
    re.S,
)
_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/=]")
_HEADER_LINE = re.compile(rb"^[A-Za-z][A-Za-z0-9-]*:[ \t]")


def _looks_utf16(data: bytes) -> str | None:
    if data.startswith(b"\xff\xfe"):
        return "utf-16-le"
    if data.startswith(b"\xfe\xff"):
        return "utf-16-be"
    head = data[:200]
    if len(head) >= 8 and head[1::2].count(0) > len(head) // 4 and head[0::2].count(0) == 0:
        return "utf-16-le"
    if len(head) >= 8 and head[0::2].count(0) > len(head) // 4 and head[1::2].count(0) == 0:
        return "utf-16-be"
    return None


def _der_header(data: bytes, pos: int = 0) -> tuple[int, int, int] | None:
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


def _is_der(data: bytes) -> bool:
    h = _der_header(data)
    return h is not None and h[0] == 0x30 and h[1] + h[2] == len(data)


def _is_pkcs12(data: bytes) -> bool:
    # PFX ::= SEQUENCE { version INTEGER (3), authSafe ContentInfo, macData OPTIONAL } (RFC 7292 §4)
    h = _der_header(data)
    return h is not None and h[0] == 0x30 and data[h[1] : h[1] + 3] == b"\x02\x01\x03"


class _Collector:
    def __init__(self, source: str) -> None:
        self.source = source
        self.certs: list[Certificate] = []
        self.csrs: list[CSR] = []
        self.key: Any = None
        self.formats: list[str] = []

    def fmt(self, name: str) -> None:
        if name not in self.formats:
            self.formats.append(name)

    def fail(self, problem: str, hint: str = "") -> CertificateError:
        return CertificateError(self.source, problem, hint=hint)


def _load_der(col: _Collector, der: bytes, *, password: bytes | None, what: str = "") -> bool:
    """Try every DER structure; True when something was found."""
    if _is_pkcs12(der):
        _load_pfx_into(col, der, password)
        return True
    try:
        col.certs.append(x509.load_der_x509_certificate(der))
        col.fmt("der")
        return True
    except ValueError:
        pass
    try:
        certs = pkcs7.load_der_pkcs7_certificates(der)
    except ValueError as exc:
        if "no certificate" in str(exc):
            raise col.fail(f"the PKCS#7 {what or 'data'} holds no certificates") from None
        certs = None
    except UnsupportedAlgorithm:
        certs = None
    if certs is not None:
        if not certs:
            raise col.fail(f"the PKCS#7 {what or 'data'} holds no certificates")
        col.certs.extend(certs)
        col.fmt("pkcs7")
        return True
    try:
        col.csrs.append(x509.load_der_x509_csr(der))
        col.fmt("csr")
        return True
    except ValueError:
        pass
    return False


def _load_pfx_into(col: _Collector, data: bytes, password: bytes | None) -> None:
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(data, password)
    except ValueError:
        if password is None:
            raise col.fail(
                "PKCS#12 (PFX) file is password-protected",
                hint="pass the name of an environment variable holding the password (--password-env VAR)",
            ) from None
        raise col.fail(
            "could not open the PKCS#12 (PFX) file: wrong password or damaged file",
            hint="check the password the environment variable holds",
        ) from None
    except UnsupportedAlgorithm as exc:
        raise col.fail(f"PKCS#12 (PFX) uses an unsupported algorithm: {exc}") from None
    if cert is not None:
        col.certs.append(cert)
    col.certs.extend(extra)
    if key is not None:
        col.key = key
    col.fmt("pkcs12")


def _load_pem_blocks(col: _Collector, text: bytes, *, password: bytes | None) -> int:
    found = 0
    for m in _PEM_BLOCK.finditer(text):
        label = m.group(1).decode("ascii")
        whole = m.group(0)
        if not whole.rstrip().endswith(f"-----END {label}-----".encode()):
            line = text[: m.start()].count(b"\n") + 1
            raise col.fail(
                f"the PEM block '{label}' starting on line {line} has no END line (truncated?)",
                hint="copy the whole block, from -----BEGIN to -----END",
            )
        body = m.group(2)
        # Drop RFC 1421 headers (Proc-Type, DEK-Info) and any quoting/indentation around base64 lines.
        lines = [ln for ln in body.splitlines() if not _HEADER_LINE.match(ln.strip())]
        b64 = _B64_JUNK.sub(b"", b"".join(lines))
        try:
            der = base64.b64decode(b64 + b"=" * (-len(b64) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise col.fail(f"the PEM block '{label}' is damaged (not base64)") from None
        if not der:
            continue
        found += 1
        try:
            if label in ("CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE"):
                col.certs.append(
                    x509.load_der_x509_certificate(der if label != "TRUSTED CERTIFICATE" else _first_tlv(der))
                )
                col.fmt("pem")
            elif label in ("PKCS7", "PKCS #7 SIGNED DATA", "CMS"):
                try:
                    certs = pkcs7.load_der_pkcs7_certificates(der)
                except ValueError as exc:
                    if "no certificate" not in str(exc):
                        raise
                    certs = []
                if not certs:
                    raise col.fail("the PKCS#7 block holds no certificates")
                col.certs.extend(certs)
                col.fmt("pkcs7")
            elif label in ("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"):
                col.csrs.append(x509.load_der_x509_csr(der))
                col.fmt("csr")
            elif label.endswith("PRIVATE KEY"):
                if b"Proc-Type:" in body:  # traditional OpenSSL encryption (RFC 1421 headers)
                    col.key = serialization.load_pem_private_key(whole.strip(), password)
                else:
                    col.key = serialization.load_der_private_key(der, password)
                col.fmt("key")
            else:
                found -= 1  # public keys, CRLs, … are not our business
        except CertificateError:
            raise
        except TypeError:
            raise col.fail(
                f"the PEM block '{label}' is encrypted", hint="pass its password with --password-env VAR"
            ) from None
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise col.fail(f"the PEM block '{label}' is damaged: {_short(exc)}") from None
    return found


def _first_tlv(der: bytes) -> bytes:
    h = _der_header(der)
    return der[: h[1] + h[2]] if h else der


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


def _looks_like_mail(data: bytes) -> bool:
    head = data.lstrip()[:4096]
    lines = head.split(b"\n", 40)
    headers = 0
    for ln in lines:
        ln = ln.rstrip(b"\r")
        if not ln:
            break
        if _HEADER_LINE.match(ln) or (headers and ln[:1] in (b" ", b"\t")):
            headers += 1
        else:
            return False
    names = {ln.split(b":", 1)[0].lower() for ln in lines if b":" in ln}
    return headers >= 2 and bool(names & {b"mime-version", b"content-type", b"from", b"subject", b"received"})


def _load_mail(col: _Collector, data: bytes, *, password: bytes | None) -> int:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    found = 0
    for part in msg.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes) or not payload:
            continue
        if part.get_content_maintype() == "text":
            charset = part.get_content_charset() or "us-ascii"
            try:
                text = payload.decode(charset, errors="replace")
            except LookupError:
                text = payload.decode("latin-1")
            found += _load_pem_blocks(col, text.encode("utf-8"), password=password)
        elif _PEM_BLOCK.search(payload):
            found += _load_pem_blocks(col, payload, password=password)
        elif _is_der(payload) and _load_der(
            col, payload, password=password, what=f"attachment {part.get_filename() or ''}".strip()
        ):
            found += 1
    col.fmt("eml")
    return found


def load_certificates(data: bytes, *, source: str, password: bytes | None = None) -> Bundle:
    """Read every certificate, key and CSR in ``data``; ``source`` names it in errors and reports.

    Formats are detected, not guessed from a file name: PEM anywhere in the text (the CA's mail as
    pasted), an RFC 5322 message (``.eml``: MIME parts, transfer and charset encodings), UTF-16 text,
    DER certificate / PKCS#7 / CSR, PKCS#12 (``password`` as bytes; None tries an empty password).
    """
    col = _Collector(source)
    if not data or not data.strip():
        raise col.fail(
            "the file is empty", hint="give a certificate file (PEM, DER, .p7b, .pfx, CSR) or the CA's mail"
        )
    enc = _looks_utf16(data)
    if enc is not None:
        try:
            text = data.decode(enc).lstrip("\ufeff")
        except UnicodeDecodeError:
            raise col.fail("looks like UTF-16 text but does not decode") from None
        if "-----BEGIN " not in text:
            raise col.fail("UTF-16 text without a PEM block (-----BEGIN …-----)")
        data = text.encode("utf-8")
        col.fmt("utf-16")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    found = 0
    if _is_der(data) or _is_pkcs12(data):
        if not _load_der(col, data, password=password):
            raise col.fail("DER data that is neither a certificate, PKCS#7, PKCS#12 nor a CSR")
        found = 1
    elif _looks_like_mail(data):
        found = _load_mail(col, data, password=password)
    else:
        found = _load_pem_blocks(col, data, password=password)
        if found and (
            b"\xe3\x81" in data or b"\x1b$B" in data or re.search(rb"[\x81-\x9f][\x40-\xfc]", data)
        ):
            col.fmt("mail")
    if not found:
        if data[:1] == b"\x30":
            raise col.fail("damaged or truncated DER data (the length does not match the file size)")
        raise col.fail(
            "no certificate found: neither a PEM block (-----BEGIN CERTIFICATE-----) nor DER/PKCS#7/PKCS#12 data",
            hint="give a certificate file (PEM, DER, .p7b, .pfx, CSR) or the CA's notification mail",
        )
    return Bundle(
        source=source,
        certificates=tuple(_unique(col.certs)),
        private_key=col.key,
        csrs=tuple(col.csrs),
        formats=tuple(col.formats),
    )


# --- PFX (backup step) ---------------------------------------------------------------------------


def load_pkcs12(data: bytes, password: bytes | str | None, *, source: str) -> Bundle:
    """Open a PFX with ``password``; the bundle's ``private_key`` and ``leaf`` are set."""
    col = _Collector(source)
    if not _is_pkcs12(data):
        raise col.fail("not a PKCS#12 (PFX) file")
    pw = password.encode("utf-8") if isinstance(password, str) else password
    _load_pfx_into(col, data, pw)
    return Bundle(
        source=source, certificates=tuple(_unique(col.certs)), private_key=col.key, formats=("pkcs12",)
    )


_PBE_NAMES = {
    "1.2.840.113549.1.12.1.3": "pbeWithSHAAnd3-KeyTripleDES-CBC",
    "1.2.840.113549.1.12.1.6": "pbeWithSHAAnd40BitRC2-CBC",
    "1.2.840.113549.1.12.1.1": "pbeWithSHAAnd128BitRC4",
    "2.16.840.1.101.3.4.1.42": "AES-256-CBC (PBES2)",
    "2.16.840.1.101.3.4.1.2": "AES-128-CBC (PBES2)",
    "1.2.840.113549.3.7": "DES-EDE3-CBC (PBES2)",
}


def _oids(der: bytes, depth: int = 0) -> list[str]:
    """Dotted OIDs found walking DER (into constructed values and DER-looking OCTET STRINGs)."""
    out: list[str] = []
    pos = 0
    while pos < len(der) and depth < 12:
        h = _der_header(der, pos)
        if h is None:
            break
        tag, hl, ln = h
        content = der[pos + hl : pos + hl + ln]
        if len(content) != ln:
            break
        if tag == 0x06:
            out.append(_oid_text(content))
        elif tag & 0x20:
            out.extend(_oids(content, depth + 1))
        elif tag == 0x04 and content[:1] == b"\x30" and _is_der(content):
            out.extend(_oids(content, depth + 1))
        pos += hl + ln
    return out


def _oid_text(content: bytes) -> str:
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


@dataclass(frozen=True)
class PfxCheck:
    """The proof a backup PFX is usable: opens, key matches, chain inside."""

    source: str
    opens: bool
    leaf_thumbprint: str
    key_matches: bool
    certificates: tuple[str, ...]  # SHA-1 of every certificate inside
    has_intermediate: bool
    has_cross: bool
    encryption: tuple[str, ...]  # PBE/cipher algorithms seen outside the encrypted parts
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.problems

    def row(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "opens": self.opens,
            "leaf": self.leaf_thumbprint,
            "key_matches": self.key_matches,
            "certificates": len(self.certificates),
            "intermediate": self.has_intermediate,
            "cross": self.has_cross,
            "encryption": ", ".join(self.encryption),
            "problems": "; ".join(self.problems),
        }


def check_pfx(
    data: bytes,
    password: bytes | str,
    *,
    source: str,
    expected_thumbprint: str = "",
    anchors: Iterable[Certificate] = (),
    require_cross: bool = True,
) -> PfxCheck:
    """Open the PFX and check it as a backup: leaf (the expected thumbprint), its private key, the
    intermediate (the leaf's issuer) and the cross certificate inside. Raises CertificateError when it
    does not open; otherwise reports ``problems`` (empty = usable)."""
    bundle = load_pkcs12(data, password, source=source)
    leaf = bundle.leaf
    problems: list[str] = []
    if leaf is None:
        raise CertificateError(source, "the PFX holds no end-entity certificate")
    tp = thumbprint(leaf)
    if expected_thumbprint and tp != _normalize_thumbprint(expected_thumbprint):
        problems.append(
            f"the certificate inside is {tp}, expected {_normalize_thumbprint(expected_thumbprint)}"
        )
    matches = bundle.private_key is not None and key_matches(leaf, bundle.private_key)
    if bundle.private_key is None:
        problems.append("the PFX holds no private key")
    elif not matches:
        problems.append("the private key does not belong to the certificate")
    others = [c for c in bundle.certificates if c is not leaf]
    has_intermediate = any(_signed_by(leaf, c) for c in others)
    if not has_intermediate:
        problems.append(f"the intermediate ({leaf.issuer.rfc4514_string()}) is not inside")
    pool = [*others, *anchors]
    has_cross = any(is_cross_certificate(c, pool) for c in others)
    if require_cross and not has_cross:
        problems.append("no cross certificate inside (export with the whole chain)")
    algorithms = tuple(dict.fromkeys(_PBE_NAMES[o] for o in _oids(data) if o in _PBE_NAMES))
    return PfxCheck(
        source=source,
        opens=True,
        leaf_thumbprint=tp,
        key_matches=matches,
        certificates=tuple(thumbprint(c) for c in bundle.certificates),
        has_intermediate=has_intermediate,
        has_cross=has_cross,
        encryption=algorithms,
        problems=tuple(problems),
    )
