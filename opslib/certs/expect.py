"""The expected chain of a new certificate: the path Windows must build to a root that is trusted and allowed.

:func:`expect_chain` takes the new leaf, the CA certificates the CA supplied, the server's
Intermediate CA store and every entry of its Trusted Root physical stores (enabled *and* disabled),
and returns an :class:`ExpectedChain`: the path (leaf first, the root last), its anchor, and the
problems that make it unusable. The rule (``docs/chains.md`` has the worked examples and sources):

1. **Issuers** are found by name and signature: the issuer of a certificate is a certificate whose
   subject is its issuer name and whose public key verifies its signature (RFC 5280 §6.1.3 (a)(1),
   (a)(4): https://www.rfc-editor.org/rfc/rfc5280#section-6.1.3 ). A cross certificate — the same
   subject and key as a root, signed by another CA — is such an issuer too, so a path may continue
   through it to the other CA's root.
2. **Candidates** are the CA's certificates, the server's Intermediate CA store and its Root stores
   (CertGetCertificateChain searches the system stores and the ``hAdditionalStore``:
   https://learn.microsoft.com/en-us/windows/win32/api/wincrypt/nf-wincrypt-certgetcertificatechain ).
3. **A path ends** at a self-signed certificate (RFC 5280 §6.1: the trust anchor). It is *usable*
   when that root is an enabled entry of a Trusted Root physical store (not "disabled for all
   purposes": an empty EKU property), is not forbidden (the G5 root by the catalogue, or a
   ``forbidden_roots`` thumbprint: step 0 disables those, so they are treated as disabled here),
   and every CA certificate of the path is inside its validity period (RFC 5280 §6.1.3 (a)(2);
   CERT_E_EXPIRED in
   https://learn.microsoft.com/en-us/windows/win32/seccrypto/certificate-and-trust-return-values ).
4. **The expected path** is the shortest usable path (ties: the order of the candidates, the CA's
   certificates first). A cross certificate is therefore expected only when no usable path without
   it exists. Which path Windows prefers among several usable ones is not documented (assumed: a
   usable one; every usable path is acceptable to the checks of steps 3 and 4, which compare with
   this one).
5. **No usable path** → the problems of every path tried, each naming the certificate (role, common
   name, "issued by …", thumbprint prefix): ``incomplete`` (no issuer found), ``untrusted_root``
   (absent from, or disabled in, the Trusted Root stores), ``forbidden_root``, ``expired`` /
   ``expired_cross``.

Pure: no server access here (:mod:`opslib.ops.served_chain` reads the stores); the clock is passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .chains import KNOWN, is_forbidden_root
from .facts import (
    Certificate,
    display_name,
    is_ca_certificate,
    is_self_signed,
    iso_utc,
    key_matches,
    require_now_utc,
    thumbprint,
)
from .paths import PathBuilder

__all__ = [
    "ChainProblem",
    "ExpectedChain",
    "Source",
    "cert_role",
    "describe_certificate",
    "expect_chain",
    "is_ca_certificate",
    "is_root",
]


def is_root(cert: Certificate) -> bool:
    """Self-signed: a root (also a version-1 certificate without basicConstraints, as the real
    Class 3 PCA root is — Windows and OpenSSL use such a certificate as a trust anchor)."""
    return is_self_signed(cert)


def _twin_root(cert: Certificate, pool: Iterable[Certificate]) -> Certificate | None:
    for other in pool:
        if other.subject == cert.subject and is_self_signed(other) and key_matches(other, cert):
            return other
    return None


def cert_role(cert: Certificate, pool: Iterable[Certificate] = ()) -> str:
    """``root`` (self-signed), ``cross certificate`` (not self-signed, same subject and key as a root in
    ``pool`` or the catalogue), ``intermediate`` (another CA certificate) or ``certificate`` (end entity)."""
    if is_self_signed(cert):
        return "root"
    if not is_ca_certificate(cert):
        return "certificate"
    if _twin_root(cert, [*pool, *KNOWN.certificates]) is not None:
        return "cross certificate"
    return "intermediate"


def describe_certificate(cert: Certificate, pool: Iterable[Certificate] = ()) -> str:
    """For messages: role, common name, who issued it, thumbprint prefix —
    ``cross certificate "VeriSign Class 3 … - G5" issued by "Class 3 Public Primary Certification
    Authority" (3225C9A2…)`` or ``root "…" (self-signed, 4EB6D578…)``."""
    role = cert_role(cert, pool)
    name = display_name(cert.subject)
    tp = thumbprint(cert)[:8] + "…"
    if role == "root":
        return f'{role} "{name}" (self-signed, {tp})'
    return f'{role} "{name}" issued by "{display_name(cert.issuer)}" ({tp})'


@dataclass(frozen=True)
class Source:
    """Where a candidate certificate is: the CA's file (``file``), the Intermediate CA store (``CA``) or
    a Trusted Root physical store (``ROOT``, ``AuthRoot``, ``GroupPolicy``, ``Enterprise``)."""

    certificate: Certificate = field(repr=False)
    store: str
    enabled: bool = True  # Root stores: False = disabled for all purposes (empty EKU property)

    @property
    def thumbprint(self) -> str:
        return thumbprint(self.certificate)


@dataclass(frozen=True)
class ChainProblem:
    """Why one path is not usable: ``code`` (stable) and a message naming the certificate."""

    code: str  # incomplete | untrusted_root | forbidden_root | expired | expired_cross | too_many_paths
    message: str
    thumbprint: str = ""

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "certificate": self.thumbprint}


@dataclass(frozen=True)
class _Path:
    certs: tuple[Certificate, ...]
    problems: tuple[ChainProblem, ...]

    @property
    def usable(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class ExpectedChain:
    """The expected path of ``leaf`` (``path[0]``), or — when no usable path exists — the best path
    tried with the problems of every path tried."""

    leaf: Certificate = field(repr=False)
    path: tuple[Certificate, ...] = field(repr=False)
    problems: tuple[ChainProblem, ...]
    sources: dict[str, tuple[str, ...]] = field(repr=False)  # thumbprint → stores it was found in
    usable_paths: tuple[tuple[Certificate, ...], ...] = field(repr=False, default=())
    supplied: tuple[Certificate, ...] = field(repr=False, default=())  # the CA's certificates (file)
    pool: tuple[Certificate, ...] = field(repr=False, default=())
    tried: tuple[tuple[Certificate, ...], ...] = field(repr=False, default=())  # every path built
    too_many_paths: str = ""  # the builder's limit cut the search ("" if not): why, for people

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.path) and is_root(self.path[-1])

    @property
    def anchor(self) -> Certificate | None:
        return self.path[-1] if self.ok else None

    @property
    def thumbprints(self) -> tuple[str, ...]:
        return tuple(thumbprint(c) for c in self.path)

    @property
    def to_send(self) -> tuple[Certificate, ...]:
        """What the server must send and a backup PFX must hold: the path without its root."""
        return self.path[:-1] if self.path and is_root(self.path[-1]) else self.path

    @property
    def needs_cross(self) -> bool:
        return any(cert_role(c, self.pool) == "cross certificate" for c in self.path[1:])

    @property
    def on_path(self) -> tuple[Certificate, ...]:
        """The CA certificates (not roots) of every usable path: what step 1 may install."""
        seen: dict[str, Certificate] = {}
        for p in self.usable_paths:
            for c in p[1:]:
                if not is_root(c):
                    seen.setdefault(thumbprint(c), c)
        return tuple(seen.values())

    @property
    def ignored(self) -> tuple[Certificate, ...]:
        """The CA's certificates on no usable path (never installed; listed as ignored)."""
        wanted = {thumbprint(c) for c in self.on_path}
        leaf = thumbprint(self.leaf)
        return tuple(c for c in self.supplied if thumbprint(c) not in wanted and thumbprint(c) != leaf)

    def describe(self) -> str:
        names = " → ".join(display_name(c.subject) for c in self.path)
        return names if self.ok else f"{names} (not usable)"

    def message(self) -> str:
        """One line for an error: the leaf and every problem."""
        lead = describe_certificate(self.leaf, self.pool)
        if self.ok:
            return f"{lead}: {self.describe()}"
        tried = " → ".join(display_name(c.subject) for c in self.path)
        return (
            f"{lead} has no usable path to a trusted, allowed root: "
            + "; ".join(p.message for p in self.problems)
            + f" (path predicted: {tried})"
        )

    def hint(self) -> str:
        codes = {p.code for p in self.problems}
        if "too_many_paths" in codes:
            return (
                "give certificate_file with only the new certificate and the CA certificates of its chain "
                "(not a whole vendor bundle of cross certificates); nothing was changed"
            )
        if "expired_cross" in codes or "expired" in codes:
            return (
                "ask the CA for its current chain (an intermediate or cross certificate that is valid today "
                "and leads to a root this server trusts) and give it in certificate_file; nothing was changed"
            )
        if "incomplete" in codes:
            return (
                "add the missing CA certificate (the CA's intermediate, from its download page) to "
                "certificate_file; nothing was changed"
            )
        return (
            "install the CA's root in the server's Trusted Root store (or ask the CA for a chain to a root the "
            "server trusts), or remove it from forbidden_roots if it is allowed; nothing was changed"
        )

    def rows(self) -> list[dict[str, Any]]:
        """The predicted chain as a table: position, role, name, issuer, thumbprint, validity, where found."""
        out: list[dict[str, Any]] = []
        for n, c in enumerate(self.path):
            tp = thumbprint(c)
            out.append(
                {
                    "position": n,
                    "role": "leaf" if n == 0 else cert_role(c, self.pool),
                    "subject": display_name(c.subject),
                    "issued_by": display_name(c.issuer),
                    "thumbprint": tp,
                    "not_after_utc": iso_utc(c.not_valid_after_utc),
                    "found_in": ", ".join(self.sources.get(tp, ())) or ("CA's file" if n == 0 else ""),
                    "sent": n == 0 or not is_root(c),
                }
            )
        return out

    def problem_rows(self) -> list[dict[str, str]]:
        return [p.to_json() for p in self.problems]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "path": list(self.thumbprints),
            "chain": self.describe(),
            "needs_cross": self.needs_cross,
            "problems": self.problem_rows(),
            "too_many_paths": self.too_many_paths or None,
        }


def _problems(
    path: Sequence[Certificate],
    *,
    trusted: dict[str, bool],
    forbidden: tuple[str, ...],
    pool: Sequence[Certificate],
    now_utc: datetime,
    complete: bool,
) -> tuple[ChainProblem, ...]:
    problems: list[ChainProblem] = []
    last = path[-1]
    if not complete:
        problems.append(
            ChainProblem(
                "incomplete",
                f"no issuer found for {describe_certificate(last, pool)} "
                f"(needed: \"{display_name(last.issuer)}\") in the CA's file or the server's stores",
                thumbprint(last),
            )
        )
    elif is_forbidden_root(last, forbidden):
        problems.append(
            ChainProblem(
                "forbidden_root",
                f"the path ends at the forbidden {describe_certificate(last, pool)}",
                thumbprint(last),
            )
        )
    elif not trusted.get(thumbprint(last), False):
        where = (
            "is disabled in the server's Trusted Root store"
            if thumbprint(last) in trusted
            else "is not in the server's Trusted Root stores"
        )
        problems.append(
            ChainProblem(
                "untrusted_root",
                f"the path ends at {describe_certificate(last, pool)}, which {where}",
                thumbprint(last),
            )
        )
    for c in path[1:]:
        if not c.not_valid_before_utc <= now_utc <= c.not_valid_after_utc:
            role = cert_role(c, pool)
            when = (
                f"expired on {iso_utc(c.not_valid_after_utc)}"
                if now_utc > c.not_valid_after_utc
                else f"is not valid before {iso_utc(c.not_valid_before_utc)}"
            )
            problems.append(
                ChainProblem(
                    "expired_cross" if role == "cross certificate" else "expired",
                    f"the {describe_certificate(c, pool)} on the path {when}",
                    thumbprint(c),
                )
            )
    return tuple(problems)


def expect_chain(
    leaf: Certificate,
    *,
    supplied: Iterable[Certificate] = (),
    stores: Iterable[Source] = (),
    forbidden_roots: Iterable[str] = (),
    now_utc: datetime | None = None,
) -> ExpectedChain:
    """The path the new ``leaf`` must be served with (see the module docstring for the rule).

    ``supplied``: the CA's certificates (its file, the leaf may be among them); ``stores``: every
    certificate of the server's Intermediate CA and Trusted Root physical stores, with ``enabled``.
    """
    now = require_now_utc(now_utc)
    forbidden = tuple(forbidden_roots)
    leaf_tp = thumbprint(leaf)
    supplied_list = [c for c in supplied if thumbprint(c) != leaf_tp]
    sources: dict[str, list[str]] = {}
    candidates: dict[str, Certificate] = {}
    for c in supplied_list:
        sources.setdefault(thumbprint(c), []).append("CA's file")
        candidates.setdefault(thumbprint(c), c)
    trusted: dict[str, bool] = {}  # Root-store thumbprint → enabled in at least one physical store
    for s in stores:
        tp = s.thumbprint
        label = s.store if s.enabled or s.store == "CA" else f"{s.store} (disabled)"
        sources.setdefault(tp, []).append(label)
        candidates.setdefault(tp, s.certificate)
        if s.store != "CA":
            trusted[tp] = trusted.get(tp, False) or s.enabled
    pool = tuple(candidates.values())

    search = PathBuilder(pool).search(leaf)  # the kit's one path builder (bounded; opslib.certs.paths)
    paths: list[_Path] = []
    if is_root(leaf):
        paths.append(
            _Path((leaf,), (ChainProblem("untrusted_root", "the certificate is self-signed", leaf_tp),))
        )
    else:
        for built in search.paths:
            found = _problems(
                built.certs,
                trusted=trusted,
                forbidden=forbidden,
                pool=pool,
                now_utc=now,
                complete=built.complete,
            )
            paths.append(_Path(built.certs, found))
    tried = tuple(p.certs for p in paths)
    too_many = search.too_many_paths(display_name(leaf.subject))
    usable = sorted((p for p in paths if p.usable), key=lambda p: len(p.certs))
    frozen_sources = {tp: tuple(dict.fromkeys(v)) for tp, v in sources.items()}
    if usable:
        best = usable[0]
        return ExpectedChain(
            leaf,
            best.certs,
            (),
            frozen_sources,
            tuple(p.certs for p in usable),
            tuple(supplied_list),
            pool,
            tried,
            too_many,
        )
    # No usable path: show the most promising one (complete first, fewer problems, shorter) and every problem.
    ranked = sorted(
        paths,
        key=lambda p: (
            any(x.code == "incomplete" for x in p.problems),
            any(x.code in ("untrusted_root", "forbidden_root") for x in p.problems),
            len(p.problems),
            len(p.certs),
        ),
    )
    problems: dict[tuple[str, str], ChainProblem] = {}
    if too_many:  # the limit may have cut the usable path: say so first
        problems[("too_many_paths", too_many)] = ChainProblem("too_many_paths", too_many, leaf_tp)
    for p in ranked:
        for x in p.problems:
            problems.setdefault((x.code, x.message), x)
    return ExpectedChain(
        leaf,
        ranked[0].certs,
        tuple(problems.values()),
        frozen_sources,
        (),
        tuple(supplied_list),
        pool,
        tried,
        too_many,
    )
