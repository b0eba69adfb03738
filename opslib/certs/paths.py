"""The kit's one certification path builder: every path from a certificate up through a pool, bounded.

``opslib inspect`` (:func:`opslib.certs.build_chains`), the runbook's expected chain
(:func:`opslib.certs.expect_chain`), the TLS check and the PFX check all build paths here; the rehearsal
host's engine (``opslib/rehearsal/chainbuild.py``) is written apart on purpose.

Rules (``docs/chains.md`` has the sources):

* **An issuer** of a certificate is a certificate of the pool whose subject is its issuer name and whose
  key verifies its signature (RFC 5280 §6.1.3 (a)(1), (a)(4)). A cross certificate is such an issuer too.
* **A path ends only at a self-signed certificate** (complete), or where no issuer is left (incomplete,
  ``missing`` says which name); it never holds the same subject + key twice (loop detection, RFC 4158
  §2.4: https://www.rfc-editor.org/rfc/rfc4158 ).
* **Bounded** (RFC 4158 §3: sort candidates rather than eliminate them, and keep the search finite):
  breadth first, so shorter paths come first and a limit cuts only longer ones; at most
  :data:`MAX_DEPTH` CA certificates above the start; at most :data:`MAX_ISSUERS` issuers tried per
  certificate, preferred by key identifier (AKI = SKI first, a mismatch last, RFC 4158 §3.5) and then
  by the pool's order; at most :data:`MAX_PATHS` paths and :data:`MAX_STEPS` partial paths per start.
  A search cut by a limit says so (:attr:`PathSearch.truncated`), and every caller reports "too many
  paths".
* **Memoized**: the pool is indexed by subject name once per :class:`PathBuilder`; each signature is
  checked at most once per builder (a builder serves every start of one inspect or one prediction).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from .facts import Certificate, public_key_info, signed_by

__all__ = ["MAX_DEPTH", "MAX_ISSUERS", "MAX_PATHS", "MAX_STEPS", "BuiltPath", "PathBuilder", "PathSearch"]

MAX_DEPTH = 8  # CA certificates above the start (a real chain has 2–4)
MAX_ISSUERS = 8  # issuer candidates tried per certificate
MAX_PATHS = 32  # paths kept per start
MAX_STEPS = 512  # partial paths expanded per start


@dataclass(frozen=True)
class BuiltPath:
    """One path: ``certs[0]`` is the start; complete = it ends at a self-signed certificate."""

    certs: tuple[Certificate, ...]
    complete: bool
    missing: str = ""  # when incomplete: what was not found (or the depth limit)


@dataclass(frozen=True)
class PathSearch:
    """Every path found from ``start`` (shortest first) and, when a limit cut the search, why."""

    start: Certificate
    paths: tuple[BuiltPath, ...]
    truncated: str = ""  # "" = every path was built; else the limit that stopped the search

    def too_many_paths(self, name: str) -> str:
        """The "too many paths" sentence for messages ("" when the search was not cut)."""
        if not self.truncated:
            return ""
        return (
            f"too many paths from {name}: {self.truncated}; the {len(self.paths)} shortest are shown "
            "(a CA file of many cross certificates?)"
        )


def _key_id(cert: Certificate, cls: type) -> bytes | None:
    try:
        value: Any = cert.extensions.get_extension_for_class(cls).value
    except (x509.ExtensionNotFound, ValueError):
        return None
    return value.digest if isinstance(value, x509.SubjectKeyIdentifier) else value.key_identifier


class PathBuilder:
    """The pool indexed by subject (name chaining in one lookup), signatures memoized."""

    def __init__(self, pool: Iterable[Certificate]) -> None:
        self._by_subject: dict[bytes, list[Certificate]] = {}
        self._order: dict[Certificate, int] = {}
        for cert in pool:
            if cert in self._order:
                continue
            self._order[cert] = len(self._order)
            self._by_subject.setdefault(cert.subject.public_bytes(), []).append(cert)
        self._signed: dict[tuple[Certificate, Certificate], bool] = {}
        self._identity: dict[Certificate, tuple[bytes, bytes]] = {}
        self.signature_checks = 0  # how many signatures were verified (memoization is visible in tests)

    def signed(self, cert: Certificate, issuer: Certificate) -> bool:
        key = (cert, issuer)
        found = self._signed.get(key)
        if found is None:
            self.signature_checks += 1
            found = self._signed[key] = signed_by(cert, issuer)
        return found

    def self_signed(self, cert: Certificate) -> bool:
        return cert.subject == cert.issuer and self.signed(cert, cert)

    def identity(self, cert: Certificate) -> tuple[bytes, bytes]:
        """Subject + key: a path holds each at most once (a root and its cross certificate share it)."""
        found = self._identity.get(cert)
        if found is None:
            found = self._identity[cert] = (cert.subject.public_bytes(), public_key_info(cert))
        return found

    def issuers(self, cert: Certificate) -> list[Certificate]:
        """Every pool certificate that issued ``cert``, preferred: matching key identifier, then pool order."""
        named = self._by_subject.get(cert.issuer.public_bytes(), [])
        found = [c for c in named if c != cert and self.signed(cert, c)]
        aki = _key_id(cert, x509.AuthorityKeyIdentifier)

        def rank(c: Certificate) -> tuple[int, int]:
            ski = _key_id(c, x509.SubjectKeyIdentifier) if aki is not None else None
            match = 1 if aki is None or ski is None else (0 if ski == aki else 2)
            return (match, self._order.get(c, 0))

        return sorted(found, key=rank)

    def search(self, start: Certificate) -> PathSearch:
        """Every path from ``start`` (breadth first: shorter paths first), within the limits."""
        if self.self_signed(start):
            return PathSearch(start, (BuiltPath((start,), True),))
        out: list[BuiltPath] = []
        queue: deque[tuple[Certificate, ...]] = deque([(start,)])
        truncated = ""
        steps = 0
        while queue:
            if len(out) >= MAX_PATHS:
                truncated = f"more than {MAX_PATHS} paths"
                break
            if steps >= MAX_STEPS:
                truncated = f"more than {MAX_STEPS} partial paths tried"
                break
            path = queue.popleft()
            steps += 1
            current = path[-1]
            seen = {self.identity(c) for c in path}
            issuers = [c for c in self.issuers(current) if self.identity(c) not in seen]
            if not issuers:
                out.append(BuiltPath(path, False, f"issuer not found: {current.issuer.rfc4514_string()}"))
                continue
            if len(issuers) > MAX_ISSUERS:
                truncated = truncated or f"more than {MAX_ISSUERS} issuers of one certificate"
                issuers = issuers[:MAX_ISSUERS]
            for issuer in issuers:
                longer = (*path, issuer)
                if self.self_signed(issuer):
                    out.append(BuiltPath(longer, True))
                elif len(longer) - 1 >= MAX_DEPTH:
                    out.append(BuiltPath(longer, False, f"no root within {MAX_DEPTH} CA certificates"))
                    truncated = truncated or f"a path longer than {MAX_DEPTH} CA certificates"
                else:
                    queue.append(longer)
        return PathSearch(start, tuple(out[:MAX_PATHS]), truncated)
