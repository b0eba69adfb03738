"""Warnings (stable codes, clock passed in) and the checks that block an install."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa

from ..errors import CertificateError
from .chains import KNOWN, Chain, build_chains, is_forbidden_root
from .facts import (
    Certificate,
    display_name,
    encode_der,
    hostname_match,
    is_ca_certificate,
    is_self_signed,
    iso_utc,
    key_matches,
    require_now_utc,
    subject_alt_names,
    subject_der,
    thumbprint,
)

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
    "too_many_paths",
    "certificates_left_out",
    "csr_sha1_signature",
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


class SubjectIndex:
    """Certificates by subject (DER), built once: naming a root and its cross certificate apart in a
    500-certificate bundle is then one lookup per certificate, not a pass over the bundle."""

    def __init__(self, pool: Iterable[Certificate]) -> None:
        self._by_subject: dict[bytes, list[Certificate]] = {}
        for c in (*pool, *KNOWN.certificates):
            self._by_subject.setdefault(subject_der(c), []).append(c)

    def same_subject(self, cert: Certificate) -> list[Certificate]:
        return self._by_subject.get(subject_der(cert), [])


def _name(cert: Certificate, pool: Iterable[Certificate] | SubjectIndex) -> str:
    """The common name; for a root or a cross certificate sharing its subject with another certificate of
    ``pool`` (or the catalogue), also which one: "… (cross certificate issued by …)" / "… (root, self-signed)"."""
    name = display_name(cert.subject)
    index = pool if isinstance(pool, SubjectIndex) else SubjectIndex(pool)
    twins = [o for o in index.same_subject(cert) if o != cert and key_matches(o, cert)]
    if not twins:
        return name
    if is_self_signed(cert):
        return f"{name} (root, self-signed)"
    return f"{name} (cross certificate issued by {display_name(cert.issuer)})"


def certificate_warnings(
    cert: Certificate,
    *,
    now_utc: datetime | None = None,
    warn_days: int = 30,
    pool: Iterable[Certificate] | SubjectIndex = (),
) -> list[Finding]:
    """Checks that apply to any certificate: validity, signature hash (not for roots), key size (not for
    roots either: a root's key is the trust store's business, and the real Class 3 PCA root is 1024-bit).
    ``pool``: the other certificates (or their :class:`SubjectIndex`, built once for many calls), so that a
    root and its cross certificate are named apart."""
    now = require_now_utc(now_utc)
    sha1 = thumbprint(cert)
    name = _name(cert, pool)
    out: list[Finding] = []
    if now > cert.not_valid_after_utc:
        out.append(Finding("expired", f"{name} expired on {iso_utc(cert.not_valid_after_utc)}", sha1))
    elif now < cert.not_valid_before_utc:
        out.append(
            Finding("not_yet_valid", f"{name} is not valid before {iso_utc(cert.not_valid_before_utc)}", sha1)
        )
    else:
        days = (cert.not_valid_after_utc - now).days
        if days < warn_days:
            out.append(
                Finding(
                    "expires_soon",
                    f"{name} expires in {days} days ({iso_utc(cert.not_valid_after_utc)}; threshold {warn_days} days)",
                    sha1,
                )
            )
    weak_sig = _weak_signature(cert)
    if weak_sig and not is_self_signed(cert):  # a root's self-signature is not checked by clients
        out.append(Finding("sha1_signature", f"{name} is signed with {weak_sig}", sha1))
    weak = "" if is_self_signed(cert) and is_ca_certificate(cert) else _weak(cert)
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
    now = require_now_utc(now_utc)
    forbidden = tuple(forbidden_roots)
    sha1 = thumbprint(leaf)
    name = display_name(leaf.subject)
    out = certificate_warnings(leaf, now_utc=now, warn_days=warn_days)
    if is_self_signed(leaf):
        out.append(Finding("self_signed_leaf", f"{name} is self-signed: no client will trust it", sha1))
    dns, ips = subject_alt_names(leaf)
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
    return out + forbidden_root_findings(leaf, chains, forbidden_roots=forbidden, supplied=supplied)


def forbidden_root_findings(
    start: Certificate,
    chains: Sequence[Chain],
    *,
    forbidden_roots: Iterable[str] = (),
    supplied: Iterable[Certificate] | None = None,
) -> list[Finding]:
    """``forbidden_root_in_chain`` for each forbidden root (G5 or ``forbidden_roots``) on a chain of
    ``start`` (a leaf, or the CA certificate a CA's bundle starts at) that was *supplied* (``supplied``;
    default: every certificate of the chains, the catalogue's own copies excepted)."""
    forbidden = tuple(forbidden_roots)
    name = display_name(start.subject)
    supplied_ders = (
        {encode_der(c) for c in supplied}
        if supplied is not None
        else {encode_der(c) for ch in chains for c in ch.path}
    )
    catalogue_ders = {encode_der(c) for c in KNOWN.certificates}
    out: list[Finding] = []
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
                        f"the chain of {name} ends at the forbidden root {display_name(cert.subject)} (SHA-1 {tp}); "
                        "disable it in the server's Trusted Root store so the cross certificate is sent",
                        tp,
                    )
                )
    return out


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
