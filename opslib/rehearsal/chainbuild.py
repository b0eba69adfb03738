"""The certificate path the rehearsal host's CryptoAPI would build, from its emulated stores.

One function, :func:`build_path`, used by the emulated ``certreq -accept`` (and meant for the TLS
endpoints' "chain Schannel sends" as well). It returns the *best* path from a leaf to a root and the
HRESULT a base-policy check of that path gives.

Rules, and what supports each:

* **Issuer candidates** are found by name (issuer of the child = subject of the candidate) and, when
  both carry them, AuthorityKeyIdentifier = SubjectKeyIdentifier; the candidate's key must verify the
  child's signature. RFC 5280 §4.2.1.1 ("The key identifier ... can be used to identify the
  public key ... to help build paths") and §6.1.3 (signature check of each certificate);
  how CryptoAPI weighs name-only matches is [assumed].
* **Where candidates come from**: the LocalMachine Intermediate CA store (``CA``), the physical stores
  of the logical Root store (``.Default``, ``.AuthRoot``, ``.GroupPolicy``, ``.Enterprise``), and the
  caller's ``extra`` certificates (for certreq: the certificates of the accepted file — CertGetCertificateChain's
  ``hAdditionalStore``, "any additional store to search for supporting certificates",
  https://learn.microsoft.com/en-us/windows/win32/api/wincrypt/nf-wincrypt-certgetcertificatechain ).
  Certificates in the ``Disallowed`` store are never used [assumed: explicit distrust].
* **Trust anchors** are the self-signed certificates of the Root physical stores that are *enabled*:
  an entry whose Enhanced Key Usage property is present and empty ("disabled for all purposes", what
  the kit's step 0 writes) is **not** an anchor, and a path that ends at it ends at an untrusted root.
  The EKU property restricting a root's purposes: CERT_ENHKEY_USAGE_PROP_ID in
  https://learn.microsoft.com/en-us/windows/win32/api/wincrypt/nf-wincrypt-certgetcertificatecontextproperty ;
  that the empty list is what "Disable all purposes for this certificate" writes is [assumed].
  With ``purpose`` (an EKU OID) an anchor whose EKU property lists neither that OID nor anyExtendedKeyUsage
  is not an anchor either [assumed; CryptoAPI reports CERT_TRUST_IS_NOT_VALID_FOR_USAGE there].
* **Several paths**: CryptoAPI builds the possible paths and returns the best one ("lower quality"
  chains exist: ``rgpLowerQualityChainContext`` in
  https://learn.microsoft.com/en-us/windows/win32/api/wincrypt/ns-wincrypt-cert_chain_context ).
  The weights are not documented; this module uses the order of Wine's public reimplementation
  (``CRYPT_ChainQuality`` in dlls/crypt32/chain.c, https://gitlab.winehq.org/wine/wine/-/blob/master/dlls/crypt32/chain.c ):
  valid signatures > every certificate time-valid > complete chain > trusted root; ties go to the
  shorter path [assumed for Windows]. Consequence: when the only cross certificate to a trusted
  old root has *expired*, a time-valid path to a root that is present but disabled wins, and the
  result is CERT_E_UNTRUSTEDROOT, not CERT_E_EXPIRED [assumed] — either way the path fails.
* **Result codes** (base policy errors of CertVerifyCertificateChainPolicy,
  https://learn.microsoft.com/en-us/windows/win32/api/wincrypt/ns-wincrypt-cert_chain_policy_status ;
  which one wins when several apply — here incomplete, then untrusted, then expired — is [assumed];
  values and texts: https://learn.microsoft.com/en-us/windows/win32/seccrypto/certificate-and-trust-return-values ):
  CERT_E_CHAINING 0x800B010A when no path reaches a self-signed root (missing intermediate);
  CERT_E_UNTRUSTEDROOT 0x800B0109 when the best path ends at a self-signed root that is not an
  enabled anchor; CERT_E_EXPIRED 0x800B0101 when the best path reaches an anchor but a certificate in
  it is outside its validity period.
* **Not emulated**: revocation (no CRL/OCSP fetching — a real server may add CRYPT_E_REVOCATION_OFFLINE
  failures) [assumed: not checked], AIA fetching of missing intermediates (Windows may download them
  when online; the rehearsal host is offline) [assumed], name constraints, policies, path length.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from .host import Host
from .programs import stores
from .programs.certutil import is_self_signed, issued_by

# HRESULTs (signed, as a process exit code); https://learn.microsoft.com/en-us/windows/win32/seccrypto/certificate-and-trust-return-values
CERT_E_EXPIRED = -2146762495  # 0x800B0101
CERT_E_UNTRUSTEDROOT = -2146762487  # 0x800B0109
CERT_E_CHAINING = -2146762486  # 0x800B010A

ANY_EKU = "2.5.29.37.0"
_MAX_DEPTH = 8


@dataclass(frozen=True)
class ChainPath:
    """The best path for one leaf: the certificates (leaf first), its anchor and the base-policy result."""

    certs: tuple[x509.Certificate, ...]
    anchor: stores.StoredCert | None  # the enabled Root entry the path ends at; None when it ends elsewhere
    error: int  # 0, CERT_E_CHAINING, CERT_E_UNTRUSTEDROOT or CERT_E_EXPIRED
    expired: tuple[x509.Certificate, ...] = field(default=())  # certificates outside their validity period

    @property
    def ok(self) -> bool:
        return self.error == 0

    @property
    def to_send(self) -> list[x509.Certificate]:
        """The path without a self-signed root at its end (what a TLS server sends)."""
        certs = list(self.certs)
        if len(certs) > 1 and is_self_signed(certs[-1]):
            certs.pop()
        return certs


@dataclass(frozen=True)
class _Candidate:
    cert: x509.Certificate
    entry: stores.StoredCert | None  # the store entry it came from (None: an ``extra`` certificate)
    anchor: bool  # an enabled Root entry


def _key_id(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> bytes | None:
    try:
        ext = cert.extensions.get_extension_for_oid(oid).value
    except x509.ExtensionNotFound:
        return None
    if isinstance(ext, x509.SubjectKeyIdentifier):
        return ext.digest
    if isinstance(ext, x509.AuthorityKeyIdentifier):
        return ext.key_identifier
    return None


def _issues(candidate: x509.Certificate, cert: x509.Certificate) -> bool:
    aki = _key_id(cert, ExtensionOID.AUTHORITY_KEY_IDENTIFIER)
    ski = _key_id(candidate, ExtensionOID.SUBJECT_KEY_IDENTIFIER)
    if aki is not None and ski is not None and aki != ski:
        return False
    return issued_by(cert, candidate)


def _is_anchor(entry: stores.StoredCert, purpose: str | None) -> bool:
    if entry.disabled:
        return False
    if purpose is None or entry.eku is None:
        return True
    oids = stores.eku_oids(entry.eku)
    return purpose in oids or ANY_EKU in oids


def _candidates(host: Host, extra: Iterable[x509.Certificate], purpose: str | None) -> list[_Candidate]:
    disallowed = {e.thumbprint for e in stores.certificates(host, "Disallowed")}
    out: list[_Candidate] = []
    seen: set[str] = set()
    # Anchors first, so that of two copies of one root (e.g. in .Default and .AuthRoot) an enabled copy
    # wins [assumed: which copy's properties CryptoAPI reads from the logical Root store is unknown].
    roots = [e for phys in stores.ROOT_PHYSICAL for e in stores.certificates(host, phys)]
    for entry in sorted(roots, key=lambda e: not _is_anchor(e, purpose)):
        if entry.thumbprint in disallowed or entry.thumbprint in seen:
            continue
        seen.add(entry.thumbprint)
        out.append(_Candidate(entry.cert, entry, _is_anchor(entry, purpose) and is_self_signed(entry.cert)))
    for entry in stores.certificates(host, "CA"):
        if entry.thumbprint not in disallowed and entry.thumbprint not in seen:
            seen.add(entry.thumbprint)
            out.append(_Candidate(entry.cert, entry, False))
    for cert in extra:
        thumb = stores.thumbprint_of(cert)
        if thumb not in disallowed and thumb not in seen:
            seen.add(thumb)
            out.append(_Candidate(cert, None, False))
    return out


def _walk(chain: list[_Candidate], pool: list[_Candidate], depth: int) -> Iterator[list[_Candidate]]:
    """Every path from ``chain[-1]`` upwards; a path ends at an anchor, a self-signed certificate or a dead end."""
    last = chain[-1]
    if last.anchor or is_self_signed(last.cert) or depth >= _MAX_DEPTH:
        yield chain
        return
    used = {stores.thumbprint_of(c.cert) for c in chain}
    nexts = [c for c in pool if stores.thumbprint_of(c.cert) not in used and _issues(c.cert, last.cert)]
    if not nexts:
        yield chain
        return
    for nxt in nexts:
        yield from _walk([*chain, nxt], pool, depth + 1)


def _time_valid(cert: x509.Certificate, now_utc: datetime) -> bool:
    return cert.not_valid_before_utc <= now_utc <= cert.not_valid_after_utc


def _judge(path: list[_Candidate], now_utc: datetime) -> tuple[tuple[int, int, int, int], ChainPath]:
    certs = tuple(c.cert for c in path)
    expired = tuple(c for c in certs if not _time_valid(c, now_utc))
    last = path[-1]
    complete = is_self_signed(last.cert) or last.anchor
    trusted = last.anchor
    if not complete:
        error = CERT_E_CHAINING
    elif not trusted:
        error = CERT_E_UNTRUSTEDROOT
    elif expired:
        error = CERT_E_EXPIRED
    else:
        error = 0
    # Wine's CRYPT_ChainQuality order (module docstring); every path here has valid signatures.
    quality = (int(not expired), int(complete), int(trusted), -len(certs))
    result = ChainPath(certs=certs, anchor=last.entry if trusted else None, error=error, expired=expired)
    return quality, result


def host_now(host: Host) -> datetime:
    """The emulated host's clock: the scenario's clock (``host.extra["now_utc"]``) when set, else now.

    A scenario's certificates are made relative to its clock; checking them against the real time
    would make a rehearsal built with a fixed clock expire a year later.
    """
    raw = host.extra.get("now_utc")
    if isinstance(raw, str) and raw:
        return datetime.fromisoformat(raw).astimezone(UTC)
    return datetime.now(UTC)


def build_path(
    host: Host,
    leaf: x509.Certificate,
    *,
    extra: Iterable[x509.Certificate] = (),
    purpose: str | None = None,
    now_utc: datetime | None = None,
) -> ChainPath:
    """The best path from ``leaf`` through the host's CA/Root stores (and ``extra``) and its result.

    ``purpose``: an EKU OID (e.g. serverAuth) a Root entry's EKU property must allow for it to be an
    anchor; None = any root not disabled for all purposes. ``now_utc``: the time to check validity at
    (default: :func:`host_now`).
    """
    when = (now_utc or host_now(host)).astimezone(UTC)
    # The rehearsal G5 CN is longer than RFC 5280's 64; cryptography warns on every access to it.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Attribute's length must be", category=UserWarning)
        pool = _candidates(host, extra, purpose)
        start = _Candidate(leaf, None, False)
        best: tuple[tuple[int, int, int, int], ChainPath] | None = None
        for path in _walk([start], pool, 0):
            judged = _judge(path, when)
            if best is None or judged[0] > best[0]:
                best = judged
    assert best is not None  # _walk yields at least the leaf alone
    return best[1]
