"""Small facts about one certificate: thumbprints, encodings, keys, signatures, host names.

``thumbprint`` is SHA-1 of the DER as Windows shows it; :func:`normalize_thumbprint` is the one
function that turns a thumbprint as typed or copied into that form.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

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


@functools.lru_cache(maxsize=8192)
def _certificate_key_info(cert: Certificate) -> bytes:
    return bytes(
        cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


@functools.lru_cache(maxsize=8192)
def subject_der(cert: Certificate) -> bytes:
    """The DER of the subject name (memoized: comparing names of a 500-certificate bundle pairwise stays fast)."""
    return bytes(cert.subject.public_bytes())


def public_key_info(item: Any) -> bytes:
    """DER SubjectPublicKeyInfo of a certificate, CSR, private key or public key (memoized for certificates)."""
    if isinstance(item, x509.Certificate):
        return _certificate_key_info(item)
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


def signed_by(cert: Certificate, issuer: Certificate) -> bool:
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


@functools.lru_cache(maxsize=8192)
def is_self_signed(cert: Certificate) -> bool:
    """Subject equals issuer and the certificate's own key verifies its signature."""
    return cert.subject == cert.issuer and signed_by(cert, cert)


def extension(cert: Certificate | CSR, cls: type) -> Any:
    try:
        return cert.extensions.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None


def is_ca(cert: Certificate) -> bool:
    bc = extension(cert, x509.BasicConstraints)
    return bool(bc and bc.ca)


def is_ca_certificate(cert: Certificate) -> bool:
    """A CA certificate: basicConstraints cA=TRUE, or a self-signed certificate without
    basicConstraints (a version-1 root such as the real Class 3 PCA root: Windows and OpenSSL use it
    as a trust anchor; RFC 5280 §6.1.4 (k) asks cA=TRUE of version-3 intermediates only)."""
    if is_ca(cert):
        return True
    return extension(cert, x509.BasicConstraints) is None and is_self_signed(cert)


def display_name(name: x509.Name) -> str:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if attrs:
        return str(attrs[-1].value)
    ous = name.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    return str(ous[-1].value) if ous else name.rfc4514_string()


def normalize_thumbprint(value: str) -> str:
    """A thumbprint as typed or copied (spaces, colons, lower case) → upper-case hex digits only."""
    return re.sub(r"[^0-9A-Fa-f]", "", value).upper()


def key_description(key: Any) -> tuple[str, int | None]:
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


def require_now_utc(now_utc: datetime | None) -> datetime:
    if now_utc is None:
        return datetime.now(UTC)
    if now_utc.tzinfo is None:
        raise ValueError("now_utc must be timezone-aware")
    return now_utc


def iso_utc(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def short_name(rfc4514: str) -> str:
    m = re.search(r"(?:^|,)CN=((?:[^,\\]|\\.)*)", rfc4514)
    return m.group(1).replace("\\", "") if m else rfc4514


def subject_alt_names(cert: Certificate | CSR) -> tuple[tuple[str, ...], tuple[str, ...]]:
    san = extension(cert, x509.SubjectAlternativeName)
    if san is None:
        return (), ()
    dns = tuple(str(n) for n in san.get_values_for_type(x509.DNSName))
    ips = tuple(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    return dns, ips


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
    dns, ips = subject_alt_names(cert)
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


def unique(certs: Iterable[Certificate]) -> list[Certificate]:
    seen: set[bytes] = set()
    out = []
    for c in certs:
        der = encode_der(c)
        if der not in seen:
            seen.add(der)
            out.append(c)
    return out


@dataclass(frozen=True)
class RequestFacts:
    """What a CA sees in a PKCS #10 request: subject, names, key, the signature's hash."""

    subject: str
    common_name: str
    dns_names: tuple[str, ...]
    key_type: str
    key_size: int | None
    key_sha256: str  # SHA-256 of the DER SubjectPublicKeyInfo, hex: compares keys without the key
    signature_hash: str  # "sha1", "sha256", … (the request's own signature)
    signature_valid: bool

    def row(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "dns_names": ", ".join(self.dns_names) or "(none)",
            "key": f"{self.key_type} {self.key_size}",
            "key_sha256": self.key_sha256,
            "signature_hash": self.signature_hash,
            "signature_valid": self.signature_valid,
        }


def request_facts(csr: CSR) -> RequestFacts:
    """The facts of a request; the signature is checked here (cryptography's own check refuses SHA-1,
    which is exactly what a Server 2003 request carries)."""
    algorithm = csr.signature_hash_algorithm
    valid = False
    key = csr.public_key()
    if algorithm is not None and isinstance(key, rsa.RSAPublicKey):
        try:
            key.verify(csr.signature, csr.tbs_certrequest_bytes, padding.PKCS1v15(), algorithm)
            valid = True
        except InvalidSignature:
            valid = False
    else:
        valid = csr.is_signature_valid
    key_type, key_size = key_description(key)
    cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    dns, _ips = subject_alt_names(csr)
    return RequestFacts(
        subject=csr.subject.rfc4514_string(),
        common_name=str(cns[0].value) if cns else "",
        dns_names=tuple(dns),
        key_type=key_type,
        key_size=key_size,
        key_sha256=hashlib.sha256(public_key_info(csr)).hexdigest(),
        signature_hash=algorithm.name if algorithm is not None else "",
        signature_valid=valid,
    )
