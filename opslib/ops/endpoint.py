"""Step 4: what the site serves, seen from outside as a browser sees it (with SNI and without) —
fetch, judge, verify. Nothing on the server changes; :mod:`opslib.tls` does the handshakes.

The notebook calls :func:`fetch`, :func:`judge`, :func:`verify` and records ``check.facts()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import certs, tls

__all__ = ["Served", "fetch", "judge", "verify"]


@dataclass(frozen=True)
class Served:
    """The two handshakes: with SNI (None when no name is given) and without."""

    sni: tls.ServedChain | None
    no_sni: tls.ServedChain

    def rows(self) -> list[dict[str, Any]]:
        return [chain.row() for chain in (self.sni, self.no_sni) if chain is not None]


def fetch(endpoint: str, *, servername: str = "", timeout_s: float = 15) -> Served:
    """Connect twice to ``endpoint`` (``HOST:PORT``): with SNI ``servername`` ("" = skip) and without."""
    sni, no_sni = tls.fetch_both(endpoint, servername=servername or None, timeout_s=timeout_s)
    return Served(sni, no_sni)


def judge(
    served: Served,
    *,
    expected_thumbprint: str,
    expected_hostnames: Sequence[str] = (),
    forbidden_roots: Sequence[str] = (),
    ca_file: str = "",
    warn_days: int = 30,
    predicted_chain: Sequence[str] = (),
) -> tls.ServedCheck:
    """Each handshake: the expected leaf, its intermediate and every certificate of the chain step 1
    predicted (``predicted_chain``, thumbprints; the root need not be sent) — a cross certificate only
    when the prediction has one —, a complete chain, no forbidden root, the host names covered.
    ``ca_file`` (PEM, "" = none) adds trust anchors."""
    anchors = (
        certs.load_certificates(Path(ca_file).read_bytes(), source=ca_file).certificates if ca_file else ()
    )
    return tls.check_served(
        served.sni,
        served.no_sni,
        expected_thumbprint=expected_thumbprint,
        expected_hostnames=expected_hostnames,
        forbidden_roots=forbidden_roots,
        anchors=anchors,
        warn_days=warn_days,
        predicted=predicted_chain,
    )


def verify(check: tls.ServedCheck, *, dry_run: bool = False) -> list[dict[str, str]]:
    """The problem rows; any problem raises (:class:`~opslib.errors.VerificationFailed`) unless ``dry_run``
    (nothing was changed before this step, so the old state is what is served)."""
    if not dry_run:
        check.raise_for_problems()
    return check.problem_rows()
