"""What a TLS endpoint serves: every certificate it sends, in order, with or without SNI.

No verification happens here — we *inspect* (an expired or untrusted chain is exactly what an
operator wants to see). The handshake uses pyOpenSSL because its ``get_peer_cert_chain()`` returns
the certificates as the server sent them; they are converted to ``cryptography`` objects through
:mod:`opslib.certs`.
"""

from __future__ import annotations

import select
import socket
import time
from dataclasses import dataclass
from typing import Any

from OpenSSL import SSL

from . import certs
from .errors import EndpointError


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
                wait_read, wait_write = [sock], []
            except SSL.WantWriteError:
                wait_read, wait_write = [], [sock]
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not any(select.select(wait_read, wait_write, [], remaining)):
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
