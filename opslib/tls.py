"""What a TLS endpoint serves: every certificate it sends, in order, with or without SNI.

No verification happens here — we *inspect* (an expired or untrusted chain is exactly what an
operator wants to see). The handshake uses pyOpenSSL because its ``get_peer_cert_chain()`` returns
the certificates as the server sent them; they are converted to ``cryptography`` objects through
:mod:`opslib.certs`.
"""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from OpenSSL import SSL

from . import certs
from .errors import EndpointError, VerificationFailed


@dataclass(frozen=True)
class ServedChain:
    """The certificates an endpoint sent, ``certificates[0]`` being its leaf."""

    host: str
    port: int
    servername: str | None  # the SNI name sent, None when none was sent
    certificates: tuple[certs.Certificate, ...]
    protocol: str  # e.g. "TLSv1.3"
    cipher: str

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def leaf(self) -> certs.Certificate:
        return self.certificates[0]

    @property
    def thumbprints(self) -> tuple[str, ...]:
        return tuple(certs.thumbprint(c) for c in self.certificates)

    def contains(self, thumbprint: str) -> bool:
        return thumbprint.upper() in self.thumbprints

    def row(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "servername": self.servername or "(no SNI)",
            "protocol": self.protocol,
            "leaf": certs.thumbprint(self.leaf),
            "certificates_sent": len(self.certificates),
            "chain": " → ".join(certs.summarize(c).common_name for c in self.certificates),
        }


def parse_endpoint(text: str, *, default_port: int = 443) -> tuple[str, int]:
    """``host:port`` (``[v6]:port``; port defaults to 443) → (host, port); ValueError when malformed."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"malformed endpoint {text!r}")
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    if not host:
        raise ValueError(f"malformed endpoint {text!r}")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"bad port in {text!r}")
    return host, int(port_text)


def fetch_chain(host: str, port: int, *, servername: str | None, timeout_s: float = 10) -> ServedChain:
    """Connect, handshake (sending ``servername`` as SNI unless None), and return what was served."""
    where = f"{host}:{port}"
    deadline = time.monotonic() + timeout_s
    try:
        sock = socket.create_connection((host, port), timeout=timeout_s)
    except TimeoutError:
        raise EndpointError(
            where, f"no answer within {timeout_s:g} s", hint="check the host, the port and firewalls"
        ) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise EndpointError(
            where,
            f"cannot connect: {reason}",
            hint="check the host name, the port and that the site is started",
        ) from None
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.set_verify(SSL.VERIFY_NONE, lambda *_: True)
    # Accept what old IIS 6 servers offer (TLS 1.0, SHA-1 chains): we inspect, we do not trust.
    ctx.set_min_proto_version(0)
    try:
        ctx.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
    except SSL.Error:  # pragma: no cover - builds without security levels
        pass
    conn = SSL.Connection(ctx, sock)
    if servername:
        conn.set_tlsext_host_name(servername.encode("idna"))
    conn.set_connect_state()
    try:
        sock.setblocking(False)
        while True:
            try:
                conn.do_handshake()
                break
            except SSL.WantReadError:
                event = selectors.EVENT_READ
            except SSL.WantWriteError:
                event = selectors.EVENT_WRITE
            remaining = deadline - time.monotonic()
            # selectors (poll/epoll), not select.select: a long-lived process may hold descriptors
            # above FD_SETSIZE (1024), which select() cannot wait on.
            with selectors.DefaultSelector() as waiter:
                waiter.register(sock, event)
                ready = waiter.select(remaining) if remaining > 0 else []
            if not ready:
                raise EndpointError(where, f"TLS handshake did not finish within {timeout_s:g} s")
        chain = conn.get_peer_cert_chain(as_cryptography=True) or []
        protocol = conn.get_protocol_version_name()
        cipher = conn.get_cipher_name() or ""
    except EndpointError:
        raise
    except TimeoutError:
        raise EndpointError(where, f"TLS handshake did not finish within {timeout_s:g} s") from None
    except SSL.Error as exc:
        raise EndpointError(
            where, f"TLS handshake failed: {_ssl_reason(exc)}", hint="is this a TLS port?"
        ) from None
    except OSError as exc:
        raise EndpointError(
            where, f"connection broke during the TLS handshake: {exc.strerror or exc}"
        ) from None
    finally:
        sock.close()  # no TLS close_notify: we only looked at the handshake
    if not chain:
        raise EndpointError(where, "the server sent no certificate")
    return ServedChain(
        host=host,
        port=port,
        servername=servername or None,
        certificates=tuple(chain),
        protocol=protocol,
        cipher=cipher,
    )


def _ssl_reason(exc: SSL.Error) -> str:
    details = exc.args[0] if exc.args else None
    if isinstance(details, list) and details:
        last = details[-1]
        if isinstance(last, tuple) and len(last) == 3:
            return str(last[2])
    text = str(exc).strip()
    return text or "the server closed the connection"


def fetch_both(
    endpoint: str, *, servername: str | None, timeout_s: float = 15
) -> tuple[ServedChain | None, ServedChain]:
    """Two handshakes with ``endpoint`` (``host:port``): with SNI ``servername`` (None when no name is
    given) and without SNI — what a browser and an old client without SNI each get."""
    try:
        host, port = parse_endpoint(endpoint)
    except ValueError as exc:
        raise EndpointError(endpoint, str(exc), hint="give HOST:PORT, e.g. www1.example.jp:443") from None
    with_sni = fetch_chain(host, port, servername=servername, timeout_s=timeout_s) if servername else None
    return with_sni, fetch_chain(host, port, servername=None, timeout_s=timeout_s)


# Findings of the served leaf that fail step 4 (the others — expires_soon, sha1_signature … — are shown).
BLOCKING_FINDINGS = ("expired", "not_yet_valid", "hostname_mismatch", "forbidden_root_in_chain")


@dataclass(frozen=True)
class HandshakeCheck:
    """What one handshake served, judged: the expected leaf, the chain sent, no forbidden root."""

    label: str  # "SNI www1.example.jp" or "no SNI"
    served: ServedChain
    chains: tuple[certs.Chain, ...]  # built from what was sent (+ the anchors)
    expected_thumbprint: str  # "" = any leaf
    leaf_ok: bool
    intermediate_sent: bool
    cross_sent: bool  # shown; required only through ``predicted`` (when the predicted path has one)
    chain_complete: bool
    forbidden_root_sent: bool
    hostnames_ok: bool
    findings: tuple[certs.Finding, ...]
    predicted: tuple[str, ...] = ()  # the predicted chain (thumbprints, leaf first, root last); () = none
    predicted_missing: tuple[str, ...] = ()  # its certificates (root excluded) the handshake did not send
    forbidden_anchor: str = ""  # every complete chain of what was sent ends at this forbidden root ("" = no)
    # True after ``opslib rollback RUN --roots`` re-enabled the roots: IIS then stops sending the cross
    # certificate (why step 0 disabled G5), so a chain ending at the re-enabled root is a warning.
    cross_loss_expected: bool = False

    @property
    def problems(self) -> tuple[str, ...]:
        leaf = self.served.thumbprints[0]
        failed = [
            (f"serves {leaf}, expected {self.expected_thumbprint}", not self.leaf_ok),
            ("the intermediate certificate is not sent", not self.intermediate_sent),
            (
                "the chain differs from the one predicted before the swap: not sent "
                + ", ".join(self.predicted_missing),
                bool(self.predicted_missing),
            ),
            ("the chain is incomplete", not self.chain_complete),
            (
                f"the chain sent ends at the forbidden {self.forbidden_anchor}: the cross certificate is not sent",
                bool(self.forbidden_anchor) and not self.cross_loss_expected,
            ),
            ("a forbidden root (G5) is sent", self.forbidden_root_sent),
        ]
        blocking = [f.message for f in self.findings if f.code in BLOCKING_FINDINGS]
        return tuple(f"{self.label}: {text}" for text in [*(t for t, bad in failed if bad), *blocking])

    @property
    def expected_warnings(self) -> tuple[str, ...]:
        """What is wrong but expected (not a failure): the cross certificate lost after ``--roots``."""
        if not (self.forbidden_anchor and self.cross_loss_expected):
            return ()
        return (
            f"{self.label}: the chain sent ends at {self.forbidden_anchor}, re-enabled by rollback --roots: "
            "IIS no longer sends the cross certificate, so clients that do not trust that root (older "
            "Windows/Java) fail; expected after re-enabling the roots step 0 disabled",
        )

    def row(self) -> dict[str, Any]:
        return {
            "handshake": self.label,
            "leaf": self.served.thumbprints[0],
            "expected_leaf": self.expected_thumbprint or "(any)",
            "leaf_ok": self.leaf_ok,
            "intermediate_sent": self.intermediate_sent,
            "cross_sent": self.cross_sent,
            "predicted_sent": not self.predicted_missing if self.predicted else "(no prediction)",
            "chain_complete": self.chain_complete,
            "forbidden_root_sent": self.forbidden_root_sent,
            "hostnames_ok": self.hostnames_ok,
            "chain": self.chains[0].describe() if self.chains else "",
        }


@dataclass(frozen=True)
class ServedCheck:
    """Step 4's verdict on an endpoint: one :class:`HandshakeCheck` per handshake (SNI first)."""

    endpoint: str
    handshakes: tuple[HandshakeCheck, ...]
    hint: str = field(
        default="if the swap is at fault, put the previous certificate back: "
        "opslib run <run folder>/rollback.yaml"
    )

    @property
    def problems(self) -> tuple[str, ...]:
        return tuple(p for h in self.handshakes for p in h.problems)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def expected_warnings(self) -> tuple[str, ...]:
        return tuple(w for h in self.handshakes for w in h.expected_warnings)

    def rows(self) -> list[dict[str, Any]]:
        """One row per handshake: each check as a column."""
        return [h.row() for h in self.handshakes]

    def certificate_rows(self) -> list[dict[str, Any]]:
        """Every certificate sent, in order, per handshake."""
        return [
            {"handshake": h.label, "position": n, **certs.summarize(cert).row()}
            for h in self.handshakes
            for n, cert in enumerate(h.served.certificates)
        ]

    def warning_rows(self) -> list[dict[str, Any]]:
        """Every finding for the served leaf (``code``, ``message``, ``certificate``), per handshake."""
        rows = [{"handshake": h.label, **f.to_json()} for h in self.handshakes for f in h.findings]
        return rows + [  # after rollback --roots: the cross certificate no longer sent, expected
            {"handshake": h.label, "code": "cross_not_sent_expected", "message": w, "certificate": None}
            for h in self.handshakes
            for w in h.expected_warnings
        ]

    def problem_rows(self) -> list[dict[str, str]]:
        return [{"problem": p} for p in self.problems] or [{"problem": "none"}]

    def raise_for_problems(self) -> None:
        """:class:`VerificationFailed` naming every problem (all handshakes) and the undo; else nothing."""
        if self.problems:
            raise VerificationFailed(self.endpoint, "; ".join(self.problems), hint=self.hint)

    def facts(self) -> dict[str, Any]:
        """Facts for the evidence (what each handshake served, the verdict)."""
        by_label = {h.label: h for h in self.handshakes}
        sni = next((h for h in self.handshakes if h.served.servername), None)
        no_sni = by_label.get("no SNI")
        return {
            "verify_endpoint": self.endpoint,
            "served": {h.label: list(h.served.thumbprints) for h in self.handshakes},
            "served_leaf_sni": sni.served.thumbprints[0] if sni else "",
            "served_leaf_no_sni": no_sni.served.thumbprints[0] if no_sni else "",
            "served_protocol": no_sni.served.protocol if no_sni else "",
            "chain_ok": self.ok,
            "verify_problems": list(self.problems),
            "verify_warnings": sorted({f.code for h in self.handshakes for f in h.findings}),
            **({"verify_expected_warnings": list(self.expected_warnings)} if self.expected_warnings else {}),
            **({"verify_expiring": expiring} if (expiring := self._expiring()) else {}),
        }

    def _expiring(self) -> list[str]:
        """The messages of the served certificates that expire within ``warn_days`` (once each)."""
        return list(
            dict.fromkeys(f.message for h in self.handshakes for f in h.findings if f.code == "expires_soon")
        )


def check_handshake(
    label: str,
    served: ServedChain,
    *,
    expected_thumbprint: str = "",
    expected_hostnames: Sequence[str] = (),
    forbidden_roots: Iterable[str] = (),
    anchors: Sequence[certs.Certificate] = (),
    warn_days: int = 30,
    now_utc: datetime | None = None,
    predicted: Sequence[str] = (),
) -> HandshakeCheck:
    """Judge one handshake: the leaf is ``expected_thumbprint``; the leaf's issuer (the intermediate)
    is among the certificates *sent*; when ``predicted`` (the chain step 1 predicted, leaf first, root
    last) is for this leaf, every certificate of it but the root is sent — so a cross certificate is
    required exactly when the predicted path has one; a complete chain can be built from what was
    sent (+ ``anchors``); no forbidden root (G5 or ``forbidden_roots``) is sent; the leaf covers
    ``expected_hostnames``; plus :func:`opslib.certs.check_warnings` for the leaf."""
    expected = certs.normalize_thumbprint(expected_thumbprint)
    forbidden = tuple(forbidden_roots)
    sent = served.certificates
    sent_thumbprints = served.thumbprints
    chains = tuple(certs.build_chains(served.leaf, sent[1:], anchors=anchors))
    want = tuple(certs.normalize_thumbprint(t) for t in predicted)
    if want and want[0] != sent_thumbprints[0]:
        want = ()  # a prediction for another certificate (the leaf check reports the mismatch)
    missing = tuple(t for t in want[1:-1] if t not in sent_thumbprints[1:])
    complete = [c for c in chains if c.complete and c.anchor is not None]
    forbidden_anchor = ""
    if complete and all(certs.is_forbidden_root(c.anchor, forbidden) for c in complete if c.anchor):
        forbidden_anchor = certs.describe_certificate(complete[0].path[-1], [*sent, *anchors])
    findings = certs.check_warnings(
        served.leaf,
        now_utc=now_utc,
        chains=chains,
        hostnames=expected_hostnames,
        warn_days=warn_days,
        forbidden_roots=forbidden,
        supplied=sent,
    )
    return HandshakeCheck(
        label=label,
        served=served,
        chains=chains,
        expected_thumbprint=expected,
        leaf_ok=not expected or sent_thumbprints[0] == expected,
        intermediate_sent=any(len(c.path) > 1 and c.thumbprints[1] in sent_thumbprints[1:] for c in chains),
        cross_sent=any(certs.is_cross_certificate(c, [*sent, *anchors]) for c in sent[1:]),
        chain_complete=any(c.complete for c in chains),
        forbidden_root_sent=any(certs.is_forbidden_root(c, forbidden) for c in sent),
        hostnames_ok=all(certs.hostname_matches(served.leaf, h) for h in expected_hostnames),
        findings=tuple(findings),
        predicted=want,
        predicted_missing=missing,
        forbidden_anchor=forbidden_anchor,
    )


def check_served(
    served_sni: ServedChain | None,
    served_no_sni: ServedChain | None,
    *,
    expected_thumbprint: str = "",
    expected_hostnames: Sequence[str] = (),
    forbidden_roots: Iterable[str] = (),
    anchors: Sequence[certs.Certificate] = (),
    warn_days: int = 30,
    now_utc: datetime | None = None,
    predicted: Sequence[str] = (),
) -> ServedCheck:
    """Step 4: judge what an endpoint served with SNI and without (either may be None: not fetched).

    Every handshake must serve ``expected_thumbprint`` ("" = any) with the intermediate and every
    certificate of the ``predicted`` chain but its root, a complete chain, no forbidden root, a leaf covering ``expected_hostnames``
    and no blocking finding (:data:`BLOCKING_FINDINGS`). Nothing raises here: read
    :attr:`ServedCheck.problems`, or call :meth:`ServedCheck.raise_for_problems`.
    """
    given = [
        (f"SNI {served_sni.servername}" if served_sni else "", served_sni),
        ("no SNI", served_no_sni),
    ]
    handshakes = [
        check_handshake(
            label,
            served,
            expected_thumbprint=expected_thumbprint,
            expected_hostnames=expected_hostnames,
            forbidden_roots=forbidden_roots,
            anchors=anchors,
            warn_days=warn_days,
            now_utc=now_utc,
            predicted=predicted,
        )
        for label, served in given
        if served is not None
    ]
    if not handshakes:
        raise ValueError("check_served needs at least one served chain")
    endpoint = handshakes[0].served.endpoint
    return ServedCheck(endpoint=endpoint, handshakes=tuple(handshakes))


def fetch_names(endpoint: str, names: Sequence[str], *, timeout_s: float = 10) -> dict[str, ServedChain]:
    """One handshake per host name, each sending that name as SNI (RFC 6066 §3): what HTTP.sys serves
    for each SNI binding on a shared ``IP:port`` (IIS 8+). A wildcard name (``*.…``) is skipped."""
    host, port = parse_endpoint(endpoint)
    return {
        name: fetch_chain(host, port, servername=name, timeout_s=timeout_s)
        for name in dict.fromkeys(n.strip().lower() for n in names)
        if name and not name.startswith("*")
    }
