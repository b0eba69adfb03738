"""Chains: the catalogue of known certificates, forbidden roots, cross certificates, every path.

:data:`KNOWN` is the catalogue of real certificates shipped in ``opslib/data/`` (the VeriSign G5 root,
its cross certificate, the old Class 3 root).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from cryptography import x509

from .facts import (
    Certificate,
    display_name,
    encode_der,
    is_ca,
    key_matches,
    normalize_thumbprint,
    thumbprint,
    unique,
)
from .paths import PathBuilder

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


def is_forbidden_root(cert: Certificate, extra_thumbprints: Iterable[str] = ()) -> bool:
    """True for the VeriSign G5 root (by thumbprint, or by subject + public key as a re-issue would
    carry) and for any certificate whose SHA-1 is in ``extra_thumbprints``.

    The G5 *cross* certificate (same subject and key, issued by another CA) is not a root and is not
    forbidden: it is the certificate the server must send.
    """
    sha1 = thumbprint(cert)
    if sha1 in {normalize_thumbprint(t) for t in extra_thumbprints}:
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
    if not is_ca(cert) or cert.subject == cert.issuer:
        return False
    for twin in (*pool, *KNOWN.certificates):
        if twin.subject == cert.subject and twin.issuer == twin.subject and key_matches(twin, cert):
            return True
    return False


# --- chains --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chain:
    """One path from a leaf towards a root: ``path[0]`` is the leaf."""

    path: tuple[Certificate, ...]
    anchor: Certificate | None  # the self-signed root the path ends at (None when incomplete)
    complete: bool
    missing: str = ""  # what is missing when incomplete: the issuer name not found
    trusted: bool = False  # the root is one of the given anchors

    @property
    def thumbprints(self) -> tuple[str, ...]:
        return tuple(thumbprint(c) for c in self.path)

    def describe(self) -> str:
        names = " → ".join(display_name(c.subject) for c in self.path)
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


@dataclass(frozen=True)
class ChainSearch:
    """The chains of one certificate and, when the builder's limits cut the search, why ("" if not)."""

    chains: tuple[Chain, ...]
    truncated: str = ""
    warning: str = ""  # the "too many paths" sentence for people ("" if not cut)


def search_chains(
    leaf: Certificate,
    pool: Iterable[Certificate],
    *,
    anchors: Iterable[Certificate] = (),
    builder: PathBuilder | None = None,
) -> ChainSearch:
    """Every path from ``leaf`` through ``pool`` ∪ ``anchors``, by the kit's one path builder
    (:mod:`opslib.certs.paths`: bounded, memoized).

    An issuer is any certificate whose subject is the current certificate's issuer and whose key
    verifies its signature — so a cross certificate (same subject and key as a root, another issuer)
    yields a second path. A path is complete only when it ends at a self-signed certificate; ``trusted``
    says that root is one of ``anchors``. Incomplete paths name the issuer not found (``missing``).
    Complete paths come first, trusted before untrusted, shorter before longer. ``builder``: one
    :class:`~opslib.certs.paths.PathBuilder` shared by several leaves over the same pool (its memo).
    """
    anchor_list = unique(anchors)
    anchor_ders = {encode_der(a) for a in anchor_list}
    paths = builder or PathBuilder([*pool, *anchor_list])
    found = paths.search(leaf)
    chains = [
        Chain(
            p.certs,
            p.certs[-1] if p.complete else None,
            p.complete,
            p.missing,
            p.complete and encode_der(p.certs[-1]) in anchor_ders,
        )
        for p in found.paths
    ]
    chains.sort(key=lambda ch: (not ch.complete, not ch.trusted, len(ch.path)))
    return ChainSearch(tuple(chains), found.truncated, found.too_many_paths(display_name(leaf.subject)))


def build_chains(
    leaf: Certificate,
    pool: Iterable[Certificate],
    *,
    anchors: Iterable[Certificate] = (),
) -> list[Chain]:
    """The chains of :func:`search_chains` (for callers that need no "too many paths" flag)."""
    return list(search_chains(leaf, pool, anchors=anchors).chains)
