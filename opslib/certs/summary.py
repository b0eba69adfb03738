""":func:`summarize` → :class:`CertSummary`: what an operator or reviewer reads about one certificate."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from .chains import KNOWN
from .facts import (
    Certificate,
    display_name,
    extension,
    is_ca_certificate,
    is_self_signed,
    iso_utc,
    key_description,
    require_now_utc,
    sha256_hex,
    short_name,
    subject_alt_names,
    thumbprint,
)

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
            "issuer": short_name(self.issuer),
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
            "not_before_utc": iso_utc(self.not_before_utc),
            "not_after_utc": iso_utc(self.not_after_utc),
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


def summarize(cert: Certificate, *, now_utc: datetime | None = None) -> CertSummary:
    """Facts about ``cert``; ``days_left`` is counted from ``now_utc`` (default: now)."""
    now = require_now_utc(now_utc)
    key_type, key_size = key_description(cert.public_key())
    dns, ips = subject_alt_names(cert)
    ku = extension(cert, x509.KeyUsage)
    key_usage: tuple[str, ...] = ()
    if ku is not None:
        key_usage = tuple(f for f in _KU_FIELDS if getattr(ku, f))
    eku = extension(cert, x509.ExtendedKeyUsage)
    ekus = tuple(_EKU_NAMES.get(o, o.dotted_string) for o in eku) if eku is not None else ()
    bc = extension(cert, x509.BasicConstraints)
    ski = extension(cert, x509.SubjectKeyIdentifier)
    aki = extension(cert, x509.AuthorityKeyIdentifier)
    try:
        sig = cert.signature_algorithm_oid._name
    except Exception:  # pragma: no cover - cryptography always names known OIDs
        sig = cert.signature_algorithm_oid.dotted_string
    known = KNOWN.lookup(cert)
    return CertSummary(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        common_name=display_name(cert.subject),
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
        is_ca=is_ca_certificate(cert),  # a self-signed v1 root without basicConstraints is a CA
        path_length=bc.path_length if bc else None,
        subject_key_id=ski.digest.hex().upper() if ski is not None else None,
        authority_key_id=aki.key_identifier.hex().upper() if aki is not None and aki.key_identifier else None,
        self_signed=is_self_signed(cert),
        known_as=known.name if known else "",
    )
