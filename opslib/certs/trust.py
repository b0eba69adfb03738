"""Publicly trusted or private: does a chain end at a root of a public trust store?

The public store is the one ``certifi`` ships (Mozilla's CA certificate list, as Python clients use it:
https://github.com/certifi/python-certifi). A chain is *public* when one of its certificates is such a
root, or when its last certificate was signed by one (servers usually do not send the root itself);
otherwise it is *private* (an enterprise CA, the rehearsal's test PKI). The CA/Browser Forum's lifetime
limits (ballot SC-081) bind publicly trusted certificates only, so the calendar states this per entry.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import certifi
from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning

from .facts import Certificate, display_name, normalize_thumbprint, signed_by, thumbprint

STORE_NAME = "certifi (Mozilla CA list)"


@dataclass(frozen=True)
class PublicRoots:
    """The roots of the public trust store: by SHA-1 thumbprint, and by subject (DER)."""

    version: str
    by_thumbprint: dict[str, Certificate]
    by_subject: dict[bytes, tuple[Certificate, ...]]


@dataclass(frozen=True)
class Trust:
    """What a chain ends at: ``public`` with the root's name, or private with the reason."""

    public: bool
    root: str  # the public root's name ("" when private)
    reason: str  # one plain English sentence

    @property
    def label(self) -> str:
        return "public" if self.public else "private"


@functools.cache
def public_roots() -> PublicRoots:
    """certifi's bundle, read once per process."""
    with open(certifi.where(), "rb") as fh, warnings.catch_warnings():
        # A few public roots carry a non-positive serial number (cryptography warns, still parses).
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        roots = x509.load_pem_x509_certificates(fh.read())
    by_subject: dict[bytes, list[Certificate]] = {}
    for root in roots:
        by_subject.setdefault(root.subject.public_bytes(), []).append(root)
    return PublicRoots(
        version=str(getattr(certifi, "__version__", "")),
        by_thumbprint={thumbprint(r): r for r in roots},
        by_subject={k: tuple(v) for k, v in by_subject.items()},
    )


def is_public_root(sha1: str) -> bool:
    """True when ``sha1`` (a SHA-1 thumbprint) is a root of the public store."""
    return normalize_thumbprint(sha1) in public_roots().by_thumbprint


def chain_trust(chain: Sequence[Certificate]) -> Trust:
    """Public or private for a served chain (leaf first), judged against :func:`public_roots`."""
    store = public_roots()
    where = f"{STORE_NAME} {store.version}".strip()
    for cert in chain:
        if thumbprint(cert) in store.by_thumbprint:
            name = display_name(cert.subject)
            return Trust(True, name, f"the chain contains {name}, a root of {where}")
    if chain:
        last = chain[-1]
        for root in store.by_subject.get(last.issuer.public_bytes(), ()):
            if signed_by(last, root):
                name = display_name(root.subject)
                return Trust(True, name, f"the chain ends at {name}, a root of {where}")
    return Trust(False, "", f"the chain does not end at a root of {where}")


def thumbprints_trust(thumbprints: Sequence[str]) -> Trust | None:
    """Public when a chain known only by its SHA-1 thumbprints (leaf first, e.g. the evidence's
    ``predicted_chain``) contains a root of the public store; None otherwise: a chain recorded without
    its root cannot be judged by thumbprints alone."""
    store = public_roots()
    for sha1 in thumbprints:
        root = store.by_thumbprint.get(normalize_thumbprint(sha1))
        if root is not None:
            name = display_name(root.subject)
            where = f"{STORE_NAME} {store.version}".strip()
            return Trust(True, name, f"the recorded chain contains {name}, a root of {where}")
    return None
