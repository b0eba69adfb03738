"""Step 4: what the site serves, seen from outside as a browser sees it (with SNI and without) —
fetch, judge, verify. Nothing on the server changes; :mod:`opslib.tls` does the handshakes.

The notebook calls :func:`fetch`, :func:`judge`, :func:`verify` and records ``check.facts()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .. import certs, tls

__all__ = ["Served", "SniServedCheck", "fetch", "judge", "verify"]


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


@dataclass(frozen=True)
class SniServedCheck(tls.ServedCheck):
    """An SNI endpoint (IIS 8+: several certificates on one IP:port, chosen by the name the client
    sends): every expected host name is judged with SNI; what a client *without* SNI gets (the
    ``IP:port`` binding's certificate, another site's or none) is reported, not judged."""

    fallback: tls.HandshakeCheck | None = None

    def rows(self) -> list[dict[str, Any]]:
        rows = super().rows()
        if self.fallback is not None:
            rows.append({**self.fallback.row(), "handshake": "no SNI (fallback, reported only)"})
        return rows

    def facts(self) -> dict[str, Any]:
        facts = super().facts()
        if self.fallback is not None:
            leaf = self.fallback.served.leaf
            facts["served"]["no SNI"] = list(self.fallback.served.thumbprints)
            facts["served_leaf_no_sni"] = self.fallback.served.thumbprints[0]
            facts["served_protocol"] = self.fallback.served.protocol
            facts["no_sni_fallback"] = (
                f"a client without SNI gets {self.fallback.served.thumbprints[0]} "
                f"({certs.summarize(leaf).common_name}), not this site's certificate"
            )
        return facts


def judge(
    served: Served,
    *,
    expected_thumbprint: str,
    expected_hostnames: Sequence[str] = (),
    forbidden_roots: Sequence[str] = (),
    ca_file: str = "",
    warn_days: int = 30,
    predicted_chain: Sequence[str] = (),
    roots_restored: bool = False,
) -> tls.ServedCheck:
    """See :func:`_judge`; ``roots_restored`` (the run re-enabled the roots step 0 disabled, before this
    check) makes a chain ending at the re-enabled root without the cross certificate a warning."""
    check = _judge(
        served,
        expected_thumbprint=expected_thumbprint,
        expected_hostnames=expected_hostnames,
        forbidden_roots=forbidden_roots,
        ca_file=ca_file,
        warn_days=warn_days,
        predicted_chain=predicted_chain,
    )
    if not roots_restored:
        return check
    return replace(check, handshakes=tuple(replace(h, cross_loss_expected=True) for h in check.handshakes))


def _judge(
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
    ``ca_file`` (PEM, "" = none) adds trust anchors.

    When the SNI handshake and the one without SNI get different leaves, the endpoint selects by SNI
    (IIS 8+ ``hostname:port`` bindings): then each of ``expected_hostnames`` is fetched and judged with
    SNI (:func:`opslib.tls.fetch_names`), and the handshake without SNI is reported as the fallback a
    client without SNI gets (:class:`SniServedCheck`), not held to the new certificate."""
    anchors = (
        certs.load_certificates(Path(ca_file).read_bytes(), source=ca_file).certificates if ca_file else ()
    )
    kwargs: dict[str, Any] = {
        "expected_thumbprint": expected_thumbprint,
        "expected_hostnames": expected_hostnames,
        "forbidden_roots": forbidden_roots,
        "anchors": anchors,
        "warn_days": warn_days,
        "predicted": predicted_chain,
    }
    sni = served.sni
    if sni is None or sni.thumbprints[0] == served.no_sni.thumbprints[0]:
        check = tls.check_served(sni, served.no_sni, **kwargs)
        if (
            sni is not None
            and not check.ok
            and sni.thumbprints[0] != certs.normalize_thumbprint(expected_thumbprint)
        ):
            # The name got what a client without SNI gets: on IIS 8+ no SNI binding answers for it.
            check = replace(
                check,
                hint=f"{sni.servername} was answered with the certificate sent without SNI: if the site "
                f"has an SNI binding, check its host name (netsh http show sslcert hostnameport="
                f"{sni.servername}:{sni.port}) and verify.servername; {check.hint}",
            )
        return check
    check = tls.check_served(sni, None, **kwargs)
    names = [n for n in expected_hostnames if n.lower() != (sni.servername or "").lower()]
    more = [
        tls.check_handshake(f"SNI {name}", chain, **kwargs)
        for name, chain in tls.fetch_names(sni.endpoint, names).items()
    ]
    fallback = tls.check_handshake("no SNI", served.no_sni, anchors=anchors, warn_days=warn_days)
    return SniServedCheck(
        endpoint=check.endpoint, handshakes=(*check.handshakes, *more), hint=check.hint, fallback=fallback
    )


def verify(check: tls.ServedCheck, *, dry_run: bool = False) -> list[dict[str, str]]:
    """The problem rows; any problem raises (:class:`~opslib.errors.VerificationFailed`) unless ``dry_run``
    (nothing was changed before this step, so the old state is what is served)."""
    if not dry_run:
        check.raise_for_problems()
    return check.problem_rows()
