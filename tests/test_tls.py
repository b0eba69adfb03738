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
