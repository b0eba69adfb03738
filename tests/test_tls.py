"""opslib.tls against a loopback TLS server started here (Python ssl, chain file, SNI callback)."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opslib import certs, tls
from opslib.errors import EndpointError
from opslib.rehearsal.pki import Pki, make_pki

NOW = datetime.now(UTC).replace(microsecond=0)


def _context(tmp: Path, name: str, pki: Pki, leaf_key: object, *chain: object) -> ssl.SSLContext:
    pem = tmp / f"{name}.pem"
    key = tmp / f"{name}.key"
    pem.write_bytes(pki.pem(*chain))  # type: ignore[arg-type]
    key.write_bytes(pki.key_pem(leaf_key))  # type: ignore[arg-type]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pem, key)
    return ctx


class Server:
    """Serves new_leaf + intermediate + cross to clients sending SNI www1.example.jp, and
    current_leaf + intermediate to everyone else (as an IIS 6 site without SNI would)."""

    def __init__(self, tmp: Path, pki: Pki) -> None:
        self.default = _context(tmp, "default", pki, pki.current_key, pki.current_leaf, pki.intermediate)
        self.sni = _context(tmp, "sni", pki, pki.new_key, pki.new_leaf, pki.intermediate, pki.cross)
        self.default.sni_callback = self._pick
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.stopping = False
        self.thread.start()

    def _pick(self, sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        if name == "www1.example.jp":
            sock.context = self.sni

    def _serve(self) -> None:
        while not self.stopping:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            try:
                with self.default.wrap_socket(conn, server_side=True) as s:
                    s.recv(1)
            except (OSError, ssl.SSLError):
                pass

    def stop(self) -> None:
        self.stopping = True
        self.listener.close()


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki(now_utc=NOW)


@pytest.fixture
def server(tmp_path: Path, pki: Pki) -> Iterator[Server]:
    s = Server(tmp_path, pki)
    yield s
    s.stop()


def test_fetch_chain_with_sni_returns_every_certificate_in_order(server: Server, pki: Pki) -> None:
    served = tls.fetch_chain("127.0.0.1", server.port, servername="www1.example.jp")
    assert served.certificates == (pki.new_leaf, pki.intermediate, pki.cross)
    assert served.leaf == pki.new_leaf
    assert served.servername == "www1.example.jp"
    assert served.contains(certs.thumbprint(pki.cross).lower())
    assert served.protocol.startswith("TLS")
    assert served.row()["certificates_sent"] == 3


def test_fetch_chain_without_sni_gets_the_default_certificate(server: Server, pki: Pki) -> None:
    served = tls.fetch_chain("127.0.0.1", server.port, servername=None)
    assert served.certificates == (pki.current_leaf, pki.intermediate)
    assert served.servername is None


def test_fetch_chain_refused_port() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connection refused
        with pytest.raises(
            EndpointError, match=rf"^127.0.0.1:{port}: cannot connect: .*— check the host name"
        ):
            tls.fetch_chain("127.0.0.1", port, servername=None, timeout_s=2)


def test_fetch_chain_not_tls() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer() -> None:
        conn, _ = listener.accept()
        conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
        conn.close()

    t = threading.Thread(target=answer, daemon=True)
    t.start()
    try:
        with pytest.raises(EndpointError, match=rf"^127.0.0.1:{port}: TLS handshake failed"):
            tls.fetch_chain("127.0.0.1", port, servername=None, timeout_s=5)
    finally:
        listener.close()


def test_fetch_chain_silent_server_times_out() -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # accepts (backlog) but never answers
    port = listener.getsockname()[1]
    try:
        with pytest.raises(EndpointError, match=r"TLS handshake did not finish within 0.5 s"):
            tls.fetch_chain("127.0.0.1", port, servername=None, timeout_s=0.5)
    finally:
        listener.close()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("www1.example.jp:8443", ("www1.example.jp", 8443)),
        ("[::1]:443", ("::1", 443)),
        ("host", ("host", 443)),
    ],
)
def test_parse_endpoint(text: str, expected: tuple[str, int]) -> None:
    assert tls.parse_endpoint(text) == expected


def test_parse_endpoint_bad_port() -> None:
    with pytest.raises(ValueError, match="bad port"):
        tls.parse_endpoint("host:99999")


# --- check_served: step 4's verdict -------------------------------------------------------------------


def _chain(pki: Pki, *sent: object, servername: str | None = None) -> tls.ServedChain:
    """What an endpoint sent, as fetch_chain returns it (for cases a live server here does not make)."""
    return tls.ServedChain("127.0.0.1", 443, servername, tuple(sent), "TLSv1.2", "AES128-SHA")  # type: ignore[arg-type]


def test_check_served_passes_the_sni_handshake_and_flags_the_other(server: Server, pki: Pki) -> None:
    from opslib.errors import VerificationFailed

    sni, no_sni = tls.fetch_both(f"127.0.0.1:{server.port}", servername="www1.example.jp", timeout_s=5)
    assert sni is not None and no_sni.servername is None
    new = certs.thumbprint(pki.new_leaf)
    check = tls.check_served(
        sni,
        no_sni,
        expected_thumbprint=new.lower(),
        expected_hostnames=["www1.example.jp"],
        forbidden_roots=pki.forbidden_thumbprints,
        anchors=[pki.old_root, pki.g5_root],
    )
    first, second = check.rows()
    assert first["handshake"] == "SNI www1.example.jp" and second["handshake"] == "no SNI"
    assert {
        k: first[k] for k in ("leaf_ok", "intermediate_sent", "cross_sent", "chain_complete")
    } == dict.fromkeys(("leaf_ok", "intermediate_sent", "cross_sent", "chain_complete"), True)
    assert (first["forbidden_root_sent"], first["hostnames_ok"]) == (False, True)
    assert (second["leaf_ok"], second["intermediate_sent"], second["cross_sent"]) == (False, True, False)
    current = certs.thumbprint(pki.current_leaf)
    # The old leaf's chain ends at the forbidden G5 root: the G5 short-circuit, whatever the prediction.
    g5 = certs.describe_certificate(pki.g5_root)
    assert check.problems == (
        f"no SNI: serves {current}, expected {new}",
        f"no SNI: the chain sent ends at the forbidden {g5}: the cross certificate is not sent",
    )
    assert [r["position"] for r in check.certificate_rows()] == [0, 1, 2, 0, 1]
    facts = check.facts()
    assert (facts["served_leaf_sni"], facts["served_leaf_no_sni"], facts["chain_ok"]) == (new, current, False)
    with pytest.raises(
        VerificationFailed,
        match=rf"^127.0.0.1:{server.port}: check failed: no SNI: serves {current}, expected {new}; "
        r"no SNI: the chain sent ends at the forbidden root .* is not sent — if the swap is at fault, put the previous certificate "
        r"back: opslib run <run folder>/rollback.yaml$",
    ):
        check.raise_for_problems()


def test_check_served_without_sni_only_and_any_leaf(server: Server, pki: Pki) -> None:
    sni, no_sni = tls.fetch_both(f"127.0.0.1:{server.port}", servername=None, timeout_s=5)
    assert sni is None
    check = tls.check_served(sni, no_sni, anchors=[pki.old_root, pki.g5_root])
    assert [r["handshake"] for r in check.rows()] == ["no SNI"]
    assert check.rows()[0]["expected_leaf"] == "(any)"
    # G5 not forbidden here and no prediction: a chain without a cross certificate is fine.
    assert check.problems == ()
    forbidden = tls.check_served(
        sni, no_sni, anchors=[pki.old_root, pki.g5_root], forbidden_roots=pki.forbidden_thumbprints
    )
    assert [p.split(": the cross")[0] for p in forbidden.problems] == [
        f"no SNI: the chain sent ends at the forbidden {certs.describe_certificate(pki.g5_root)}"
    ]


def test_check_served_compares_with_the_predicted_chain(pki: Pki) -> None:
    predicted = [certs.thumbprint(c) for c in (pki.new_leaf, pki.intermediate, pki.cross, pki.old_root)]
    full = _chain(pki, pki.new_leaf, pki.intermediate, pki.cross)
    ok = tls.check_served(None, full, anchors=[pki.old_root], predicted=predicted)
    assert ok.problems == () and ok.rows()[0]["predicted_sent"] is True
    short = _chain(pki, pki.new_leaf, pki.intermediate)
    bad = tls.check_served(None, short, anchors=[pki.old_root, pki.g5_root], predicted=predicted)
    assert bad.problems == (
        "no SNI: the chain differs from the one predicted before the swap: not sent "
        + certs.thumbprint(pki.cross),
    )
    # A modern-like prediction (no cross certificate): the short chain is what must be sent.
    modern = [certs.thumbprint(c) for c in (pki.new_leaf, pki.intermediate, pki.g5_root)]
    assert tls.check_served(None, short, anchors=[pki.g5_root], predicted=modern).problems == ()


def test_check_served_finds_a_served_forbidden_root_and_a_wrong_host(pki: Pki) -> None:
    from opslib.errors import VerificationFailed

    sent = _chain(pki, pki.new_leaf, pki.intermediate, pki.cross, pki.g5_root, servername="www2.example.jp")
    check = tls.check_served(
        sent,
        None,
        expected_hostnames=["www2.example.jp"],
        forbidden_roots=pki.forbidden_thumbprints,
        anchors=[pki.old_root],
    )
    row = check.rows()[0]
    assert (row["forbidden_root_sent"], row["hostnames_ok"], row["cross_sent"]) == (True, False, True)
    assert "SNI www2.example.jp: a forbidden root (G5) is sent" in check.problems
    assert any("does not cover www2.example.jp" in p for p in check.problems)
    assert {"hostname_mismatch", "forbidden_root_in_chain"} <= {w["code"] for w in check.warning_rows()}
    with pytest.raises(VerificationFailed, match=r"a forbidden root \(G5\) is sent; .*does not cover www2"):
        check.raise_for_problems()


def test_check_served_flags_an_expired_leaf_and_a_missing_intermediate(pki: Pki) -> None:
    check = tls.check_served(None, _chain(pki, pki.expired), anchors=[pki.old_root, pki.g5_root])
    row = check.rows()[0]
    assert (row["intermediate_sent"], row["chain_complete"]) == (False, False)
    assert "no SNI: the intermediate certificate is not sent" in check.problems
    assert "no SNI: the chain is incomplete" in check.problems
    assert any(p.startswith("no SNI: ") and "expired on" in p for p in check.problems)


def test_check_served_needs_a_handshake() -> None:
    with pytest.raises(ValueError, match="needs at least one served chain"):
        tls.check_served(None, None)


def test_fetch_both_refuses_a_malformed_endpoint() -> None:
    with pytest.raises(EndpointError, match=r"^host:99999: bad port in 'host:99999' — give HOST:PORT"):
        tls.fetch_both("host:99999", servername=None)
