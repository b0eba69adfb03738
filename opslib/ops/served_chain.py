"""The chain the new certificate will be served with, predicted from the server's stores before the swap.

:func:`read_sources` reads the server's Intermediate CA store and every Trusted Root physical store
(enabled *and* disabled entries; an empty EKU property = disabled, ``W-EKU-EMPTY-DISABLES``), and
:func:`predict` builds the expected path for the new leaf with :func:`opslib.certs.expect_chain`:
forbidden roots count as disabled (step 0's planned disabling applied as in a dry run). A path that
ends at a forbidden or untrusted root, needs an expired certificate or is incomplete is refused by
:func:`require_usable` (:class:`~opslib.errors.PreconditionFailed`, nothing changed). Read-only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .. import certs
from ..errors import PreconditionFailed
from ..server.stores import read_store, trusted_roots

if TYPE_CHECKING:
    from ..server import Server

__all__ = ["PREDICTED_FACT", "predict", "predict_installed", "read_sources", "require_usable"]

PREDICTED_FACT = "predicted_chain"  # the fact step 1 records (thumbprints, leaf first) and step 4 consumes


def read_sources(server: Server) -> list[certs.Source]:
    """Every certificate of the server's CA store and Trusted Root physical stores, with ``enabled``."""
    out: list[certs.Source] = []
    for e in [*read_store(server.conn, "CA"), *trusted_roots(server.conn)]:
        if e.certificate is not None:
            out.append(certs.Source(e.certificate, e.store, e.enabled))
    return out


def predict(
    server: Server,
    leaf: certs.Certificate,
    *,
    supplied: Iterable[certs.Certificate] = (),
    forbidden_roots: Iterable[str] = (),
    sources: Sequence[certs.Source] | None = None,
    now_utc: datetime | None = None,
) -> certs.ExpectedChain:
    """The expected chain of ``leaf`` on this server (``supplied``: the CA's certificates)."""
    return certs.expect_chain(
        leaf,
        supplied=supplied,
        stores=read_sources(server) if sources is None else sources,
        forbidden_roots=forbidden_roots,
        now_utc=now_utc,
    )


def require_usable(expected: certs.ExpectedChain, *, host: str) -> certs.ExpectedChain:
    """``expected`` when it is usable; else :class:`PreconditionFailed` naming each certificate and the
    way out (nothing was changed: every caller runs before the first change)."""
    if not expected.ok:
        raise PreconditionFailed(host, expected.message() + " — nothing was changed", hint=expected.hint())
    return expected


def predict_installed(
    server: Server, new_thumbprint: str, *, forbidden_roots: Iterable[str] = (), dry_run: bool = False
) -> certs.ExpectedChain | None:
    """Step 2's Plan: the expected chain of the certificate step 1 installed (MY store), refused before the
    swap when unusable. None in a dry run when step 1 did not install it (step 1's prediction applies)."""
    thumb = certs.normalize_thumbprint(new_thumbprint)
    leaf = next((e.certificate for e in read_store(server.conn, "MY") if e.thumbprint == thumb), None)
    if leaf is None:
        if dry_run:
            return None
        raise PreconditionFailed(
            server.host,
            f"the MY store does not hold the new certificate {thumb}; nothing was changed",
            hint="run step 1 (01_install_certificate) first",
        )
    expected = predict(server, leaf, forbidden_roots=forbidden_roots)
    return expected if dry_run else require_usable(expected, host=server.host)


def rows(expected: certs.ExpectedChain | None) -> list[dict[str, Any]]:
    """The table for a notebook: the path, or one row saying why there is none."""
    if expected is None:
        return [
            {"position": "", "role": "", "subject": "not installed yet (dry run): see step 1's prediction"}
        ]
    return [*expected.rows(), *({"role": "problem", "subject": p.message} for p in expected.problems)]
