"""Local X.509 work: bytes in, immutable facts out.

* :mod:`.load` — :func:`load_certificates` reads PEM, DER, PKCS#7, PKCS#12, CSRs and the CA's
  notification mail (pasted text or ``.eml``) into a :class:`Bundle`.
* :mod:`.facts` — :func:`thumbprint`, :func:`normalize_thumbprint`, :func:`key_matches`, encodings,
  :func:`hostname_match`; :mod:`.summary` — :func:`summarize` → :class:`CertSummary` (``.row()``).
* :mod:`.chains` — :data:`KNOWN` (the catalogue shipped in ``opslib/data/``), :func:`is_forbidden_root`,
  :func:`is_cross_certificate`, :func:`build_chains` / :func:`search_chains` (cross certificates included).
* :mod:`.paths` — :class:`PathBuilder`: the kit's one path builder (bounded, memoized), used by
  :mod:`.chains` and :mod:`.expect`.
* :mod:`.expect` — :func:`expect_chain` → :class:`ExpectedChain`: the path the new certificate must be
  served with, to a trusted and allowed root (``docs/chains.md``).
* :mod:`.policy` — :func:`check_warnings` (stable codes, clock passed in), :func:`raise_for_blocking`.
* :mod:`.pfx` — :func:`load_pkcs12`, :func:`check_pfx` → :class:`PfxCheck` for the backup step.
* :mod:`.der` — the one small DER/OID reader.

This package is the only part of the kit (besides the rehearsal's PKI factory and emulated
programs) that parses with ``cryptography``; everything else goes through the names here.
"""

from __future__ import annotations

from .chains import (
    G5_THUMBPRINT,
    KNOWN,
    Catalogue,
    Chain,
    ChainSearch,
    KnownCertificate,
    build_chains,
    is_cross_certificate,
    is_forbidden_root,
    search_chains,
)
from .expect import (
    ChainProblem,
    ExpectedChain,
    Source,
    cert_role,
    describe_certificate,
    expect_chain,
    is_ca_certificate,
    is_root,
)
from .facts import (
    CSR,
    Certificate,
    HostnameMatch,
    PrivateKey,
    PublicKey,
    RequestFacts,
    encode_der,
    encode_pem,
    encode_pkcs7,
    hostname_match,
    hostname_matches,
    is_self_signed,
    key_description,
    key_matches,
    normalize_thumbprint,
    public_key_info,
    request_facts,
    sha256_hex,
    subject_alt_names,
    thumbprint,
)
from .load import Bundle, load_certificates
from .paths import MAX_DEPTH, MAX_ISSUERS, MAX_PATHS, MAX_STEPS, PathBuilder
from .pfx import PfxCheck, check_pfx, load_pkcs12
from .policy import (
    INSTALL_BLOCKING,
    WARNING_CODES,
    Finding,
    SubjectIndex,
    certificate_warnings,
    check_warnings,
    forbidden_root_findings,
    raise_for_blocking,
)
from .summary import CertSummary, summarize

__all__ = [
    "CSR",
    "RequestFacts",
    "ChainProblem",
    "ExpectedChain",
    "Source",
    "cert_role",
    "describe_certificate",
    "expect_chain",
    "is_ca_certificate",
    "is_root",
    "G5_THUMBPRINT",
    "INSTALL_BLOCKING",
    "KNOWN",
    "WARNING_CODES",
    "Bundle",
    "Catalogue",
    "CertSummary",
    "Certificate",
    "Chain",
    "ChainSearch",
    "MAX_DEPTH",
    "MAX_ISSUERS",
    "MAX_PATHS",
    "MAX_STEPS",
    "PathBuilder",
    "forbidden_root_findings",
    "search_chains",
    "Finding",
    "SubjectIndex",
    "HostnameMatch",
    "KnownCertificate",
    "PfxCheck",
    "PrivateKey",
    "PublicKey",
    "build_chains",
    "certificate_warnings",
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
    "key_matches",
    "load_certificates",
    "load_pkcs12",
    "normalize_thumbprint",
    "public_key_info",
    "request_facts",
    "raise_for_blocking",
    "sha256_hex",
    "subject_alt_names",
    "summarize",
    "thumbprint",
]
