"""Real TLS endpoints for the rehearsal host's started IIS sites.

Every secure binding of a *started* site (``SecureBindings`` ``IP:port:``) gets one listening
socket on loopback; ``host.extra["tls_ports"]`` maps the binding to the local port and
``host.extra["verify_endpoint"]`` is ``127.0.0.1:PORT`` of the production site's binding. The port
of a binding stays the same for the life of the endpoints, so a swap (work site stopped, production
site started on ``:443:``) is seen on the same port, as on the real server's port 443.

What a connection gets, following what Windows does:
* the certificate the site's SSLCertHash names in SSLStoreName (MY) and its private key from
  ``host.keys``. IIS 6 has no SNI (SecureBindings has no host part), so every client gets the same
  certificate whatever name it sends;
* the chain Schannel sends: the leaf, then issuers found in the Intermediate CA and Trusted Root
  stores, up to a trusted root. CryptoAPI prefers a path that ends at a trusted root directly, so
  with the G5 root *enabled* in Trusted Root the chain stops at G5 and the cross certificate is not
  sent — the problem the CA's article describes (SO24006/SO23584; docs/windows-behaviour.md
  W-SCHANNEL-CHAIN). With G5 disabled (EKU property empty = no valid purposes) or absent,
  G5 is no trust anchor and the path goes through the cross certificate (CA store) to the old root;
  the cross certificate is then sent;
* the root itself is not sent: "When IIS is building up a certificate chain to send to the client
  during SSL negotiation, it excludes the root certificate from the chain" (forum report,
  https://security1684.rssing.com/chan-10675106/article915.html) [I; for IIS 6 / 2003 U];
* a site bound to a certificate that is missing from the store or has no private key still starts
  (ADSI does not check) but cannot complete a handshake: Schannel needs the private key
  (https://techcommunity.microsoft.com/t5/iis-support-blog/about-https-schannel-tls-capi-ssl-certificates-and-their-keys/ba-p/815200)
  — here the connection is closed without a handshake [U: the exact alert/reset real IIS 6 sends];
* a binding no started site holds: a real server refuses the TCP connection; here the listener stays
  (to keep its port) and closes each connection at once [U-free approximation; a client sees no TLS].

Deliberate deviation: the listeners speak TLS 1.2+ because the test clients' OpenSSL refuses the
SSL 3.0 / TLS 1.0 that Schannel on Windows Server 2003 offers [I: 2003 has no TLS 1.1/1.2]. The kit's
outside check (step 4) must therefore allow TLS 1.0 against a real 2003 server.

IIS 7–10 hosts (``host.web_sites``, :mod:`opslib.rehearsal.iis7`): the certificate is HTTP.sys's,
read from the registry bindings, not from the site. One listener per IP:port that any site's https
binding names (``*`` = ``0.0.0.0``); it answers while a *started* site holds an https binding there
(W3SVC registers the site's URLs with HTTP.sys only while it runs [I]). Certificate choice per
connection, as HTTP.sys does it on IIS 8+: a client that sends SNI gets the
``SslSniBindingInfo\\<name>:<port>`` binding when one exists; otherwise (no SNI, no SNI binding for
that name, or IIS 7.x which has no SNI) the ``SslBindingInfo\\<ip>:<port>`` binding, then
``0.0.0.0:<port>``; with neither the handshake fails ("it would try to determine a binding with
the combination of IP:Port, if this is not present, then the SSL handshake fails",
https://github.com/kaushalp/kaushalp.github.io/blob/master/_posts/2012-09-04-server-name-indication-sni-with-iis-8-windows-server-2012.md ).
A binding whose certificate is missing or has no key: handshake failure [I]. The HTTP answer
names the started site whose binding matches the Host header (then the one without a host name),
else 404 [I]. ``host.extra["tls_ports"]`` is keyed ``"0.0.0.0:443"`` there.

Changes take effect through ``host.on_change`` (called after every command), so swaps, starts,
stops and root disabling are what the next connection sees. Chain order and choice between several
candidate issuers beyond this G5/cross case are [U].
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import ssl
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from . import iis7
from .host import STARTED, Host, Site
from .programs import stores

_SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH.dotted_string
_TRUST_STORES = stores.ROOT_PHYSICAL


@dataclass(frozen=True)
class Served:
    """What one binding serves right now."""

    site_id: int
    thumbprint: str
    chain_pem: bytes  # leaf first, then the intermediates Schannel would send
    key_pem: bytes  # b"" when the key is missing: no TLS


def _valid_for_server_auth(entry: stores.StoredCert) -> bool:
    """A Trusted Root entry is an anchor for server authentication unless its EKU property excludes it."""
    eku = entry.eku
    if eku is None:
        return True
    oids = stores.eku_oids(eku)
    return _SERVER_AUTH in oids or "2.5.29.37.0" in oids


def _key_id(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> bytes | None:
    try:
        ext = cert.extensions.get_extension_for_oid(oid).value
    except x509.ExtensionNotFound:
        return None
    if isinstance(ext, x509.SubjectKeyIdentifier):
        return ext.digest
    if isinstance(ext, x509.AuthorityKeyIdentifier):
        return ext.key_identifier
    return None


def _same_name(a: x509.Name, b: x509.Name) -> bool:
    return a.public_bytes() == b.public_bytes()


def _issues(candidate: x509.Certificate, cert: x509.Certificate) -> bool:
    # CryptoAPI finds issuer candidates by name and, when present, AKI = SKI [I].
    if not _same_name(candidate.subject, cert.issuer):
        return False
    aki = _key_id(cert, ExtensionOID.AUTHORITY_KEY_IDENTIFIER)
    ski = _key_id(candidate, ExtensionOID.SUBJECT_KEY_IDENTIFIER)
    return aki is None or ski is None or aki == ski


def _self_signed(cert: x509.Certificate) -> bool:
    return _same_name(cert.subject, cert.issuer)


def chain_to_send(host: Host, leaf: x509.Certificate) -> list[x509.Certificate]:
    """The certificates Schannel would send for ``leaf`` given the host's stores (root excluded)."""
    # The rehearsal G5 CN is longer than RFC 5280's 64; cryptography warns on every access to it.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Attribute's length must be", category=UserWarning)
        return _chain_to_send(host, leaf)


def _chain_to_send(host: Host, leaf: x509.Certificate) -> list[x509.Certificate]:
    disallowed = {e.thumbprint for e in stores.certificates(host, "Disallowed")}
    anchors = [
        e.cert
        for phys in _TRUST_STORES
        for e in stores.certificates(host, phys)
        if e.thumbprint not in disallowed and _valid_for_server_auth(e)
    ]
    intermediates = [e.cert for e in stores.certificates(host, "CA") if e.thumbprint not in disallowed]
    chain = [leaf]
    current = leaf
    for _ in range(8):
        if _self_signed(current):
            break
        if any(_issues(a, current) for a in anchors):
            break  # ends at a trusted root: the root is not sent
        nxt = next((c for c in intermediates if _issues(c, current) and c not in chain), None)
        if nxt is None:
            break  # incomplete: send what there is
        chain.append(nxt)
        current = nxt
    return chain


def _desired(host: Host) -> dict[str, Served | None]:
    """Binding ("IP:port") → what a started site serves there."""
    out: dict[str, Served | None] = {}
    with host.lock:
        sites: list[Site] = [s for _, s in sorted(host.sites.items())]
        for site in sites:
            for binding in site.secure_bindings:
                key = ":".join(binding.split(":")[:2])
                out.setdefault(key, None)
                if site.state != STARTED or out[key] is not None:
                    continue
                out[key] = _served(host, site)
    return out


def _served(host: Host, site: Site) -> Served:
    from .programs.sslinherit import effective_cert  # the served certificate may be /LM/W3SVC's

    thumb, store, _ = effective_cert(site, host)
    store = store or "MY"
    entry = None
    with contextlib.suppress(KeyError):
        entry = stores.find_certificate(host, store, thumb) if thumb else None
    if entry is None:
        return Served(site.id, thumb, b"", b"")
    pair = stores.key_for(host, entry)
    chain = chain_to_send(host, entry.cert)
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    return Served(site.id, thumb, pem, pair.pkcs8_pem.encode("ascii") if pair else b"")


@dataclass(frozen=True)
class Plan:
    """What one IIS 7+ HTTP.sys IP:port endpoint does right now."""

    sni: tuple[tuple[str, Served], ...]  # (host name lower-cased, binding's certificate)
    fallback: Served | None  # the IP:port (or 0.0.0.0:port) binding
    routes: tuple[tuple[str, str], ...]  # (Host header lower-cased or "", site name) of started sites


def _served_binding(host: Host, site_id: int, binding: iis7.SslBinding) -> Served:
    entry = None
    with contextlib.suppress(KeyError):
        entry = stores.find_certificate(host, binding.store or "MY", binding.thumbprint)
    if entry is None:
        return Served(site_id, binding.thumbprint, b"", b"")
    pair = stores.key_for(host, entry)
    chain = chain_to_send(host, entry.cert)
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    return Served(site_id, binding.thumbprint, pem, pair.pkcs8_pem.encode("ascii") if pair else b"")


def _desired_iis7(host: Host) -> dict[str, Plan | None]:
    """HTTP.sys endpoint ("IP:port") → its plan while a started site listens there."""
    out: dict[str, Plan | None] = {}
    with host.lock:
        sites = [s for _, s in sorted(host.web_sites.items())]
        sni_ok = iis7.supports_sni(host)
        for site in sites:
            for b in site.bindings:
                if b.protocol.lower() == "https":
                    out.setdefault(iis7.ipport_of(b.binding_information), None)
        for endpoint in list(out):
            port = endpoint.rsplit(":", 1)[1]
            routes = tuple(
                (iis7.split_binding(b.binding_information)[2].lower(), s.name)
                for s in sites
                if s.state == iis7.STARTED
                for b in s.bindings
                if b.protocol.lower() == "https" and iis7.ipport_of(b.binding_information) == endpoint
            )
            if not routes:
                continue
            sni: list[tuple[str, Served]] = []
            for binding in iis7.ssl_bindings(host) if sni_ok else []:
                name, _, bport = binding.endpoint.rpartition(":")
                if binding.kind == "hostnameport" and bport == port:
                    sni.append((name.lower(), _served_binding(host, 0, binding)))
            ip = iis7.ssl_binding(host, "ipport", endpoint) or iis7.ssl_binding(
                host, "ipport", f"0.0.0.0:{port}"
            )
            fallback = _served_binding(host, 0, ip) if ip else None
            out[endpoint] = Plan(tuple(sni), fallback, routes)
    return out


def _context(folder: Path, port: int, served: Served | None) -> ssl.SSLContext | None:
    """A server context for one certificate, None when it cannot complete a handshake (no key)."""
    if served is None or not served.chain_pem or not served.key_pem:
        return None
    tag = f"{port}_{served.thumbprint}"
    cert_file = folder / f"{tag}.chain.pem"
    key_file = folder / f"{tag}.key.pem"
    cert_file.write_bytes(served.chain_pem)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(served.key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file, key_file)
    finally:
        key_file.unlink()
    return context


def _sni_context(folder: Path, port: int, plan: Plan) -> ssl.SSLContext:
    """The listening context: picks the binding's context from the ClientHello's server name."""
    by_name = {name: _context(folder, port, served) for name, served in plan.sni}
    fallback = _context(folder, port, plan.fallback)
    base = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    base.minimum_version = ssl.TLSVersion.TLSv1_2

    def choose(sock: ssl.SSLObject | ssl.SSLSocket, name: str | None, _ctx: ssl.SSLContext) -> int | None:
        wanted = by_name.get(name.lower()) if name and name.lower() in by_name else fallback
        if name and name.lower() in by_name and wanted is None:
            return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE  # the SNI binding's certificate is unusable
        if wanted is None:
            return ssl.ALERT_DESCRIPTION_HANDSHAKE_FAILURE  # neither an SNI nor an IP:port binding
        sock.context = wanted
        return None

    base.sni_callback = choose
    return base


def _route(plan: Plan, request: bytes) -> str | None:
    """The started site IIS hands the request to, by Host header (then the host-less binding)."""
    host_header = ""
    for line in request.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"host":
            host_header = value.strip().decode("ascii", "replace").rsplit(":", 1)[0].lower()
    names = dict(reversed(plan.routes))
    return names.get(host_header) or names.get("")


class _Listener:
    def __init__(self, binding: str, folder: Path, address: str = "127.0.0.1") -> None:
        self.binding = binding
        self.address = address
        self.folder = folder
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.served: Served | Plan | None = None
        self.context: ssl.SSLContext | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"tlsserve {binding}", daemon=True)
        self._thread.start()

    def update(self, served: Served | Plan | None) -> None:
        if served == self.served:
            return
        context = None
        if isinstance(served, Plan):
            context = _sni_context(self.folder, self.port, served)
        elif served is not None and served.chain_pem and served.key_pem:
            tag = f"{self.port}_{served.thumbprint}"
            cert_file = self.folder / f"{tag}.chain.pem"
            key_file = self.folder / f"{tag}.key.pem"
            cert_file.write_bytes(served.chain_pem)
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(served.key_pem)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(cert_file, key_file)
            key_file.unlink()
        self.context = context
        self.served = served

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        context = self.context
        served = self.served
        with contextlib.closing(conn):
            if context is None or served is None:
                return  # no started site with a usable key on this binding: no TLS
            conn.settimeout(5)
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    with contextlib.suppress(OSError):
                        request = tls.recv(4096)
                        status = b"200 OK"
                        if isinstance(served, Plan):
                            site = _route(served, request)
                            status = b"200 OK" if site else b"404 Not Found"
                            body = f"rehearsal IIS site {site or '(none)'}\r\n".encode("ascii", "replace")
                        else:
                            body = f"rehearsal IIS 6 site W3SVC/{served.site_id}\r\n".encode("ascii")
                        tls.sendall(
                            b"HTTP/1.1 "
                            + status
                            + b"\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                            + f"Content-Length: {len(body)}\r\n\r\n".encode("ascii")
                            + body
                        )
            except (OSError, ssl.SSLError):
                return

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() at once (Linux), not after its timeout
        with contextlib.suppress(OSError):
            self.sock.close()
        self._thread.join(timeout=2)


class TlsEndpoints:
    """The TLS listeners of one host; refreshed on every ``host.on_change``."""

    def __init__(self, host: Host) -> None:
        self.host = host
        # A rehearsal fleet gives each host its own loopback address (host.extra["listen_address"]).
        self.address = str(host.extra.get("listen_address", "127.0.0.1"))
        self.folder = Path(tempfile.mkdtemp(prefix="opslib-tlsserve-"))
        os.chmod(self.folder, 0o700)
        self.listeners: dict[str, _Listener] = {}
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def ports(self) -> dict[str, int]:
        return {b: lst.port for b, lst in self.listeners.items()}

    def refresh(self, host: Host | None = None) -> None:
        with self._lock:
            if self._stopped:
                return
            desired: dict[str, Served | Plan | None] = (
                dict(_desired_iis7(self.host)) if self.host.web_sites else dict(_desired(self.host))
            )
            for binding, served in desired.items():
                listener = self.listeners.get(binding)
                if listener is None:
                    if served is None:
                        continue
                    listener = self.listeners[binding] = _Listener(binding, self.folder, self.address)
                listener.update(served)
            for binding, listener in self.listeners.items():
                if binding not in desired:
                    listener.update(None)
            self._publish()

    def _publish(self) -> None:
        extra: dict[str, Any] = self.host.extra
        if self.host.web_sites:
            self._publish_iis7(extra)
            return
        extra["tls_ports"] = {b + ":": lst.port for b, lst in sorted(self.listeners.items())}
        production = str(extra.get("production_site", ""))
        site = next((s for s in self.host.sites.values() if s.comment == production), None)
        for binding in site.secure_bindings if site else []:
            key = ":".join(binding.split(":")[:2])
            if key in self.listeners:
                extra["verify_endpoint"] = f"{self.address}:{self.listeners[key].port}"
                break

    def _publish_iis7(self, extra: dict[str, Any]) -> None:
        extra["tls_ports"] = {b: lst.port for b, lst in sorted(self.listeners.items())}
        site = iis7.find_site(self.host, str(extra.get("production_site", "")))
        for binding in site.bindings if site else []:
            endpoint = iis7.ipport_of(binding.binding_information)
            if binding.protocol.lower() == "https" and endpoint in self.listeners:
                extra["verify_endpoint"] = f"{self.address}:{self.listeners[endpoint].port}"
                break

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            if self.refresh in self.host.on_change:
                self.host.on_change.remove(self.refresh)
            for listener in self.listeners.values():
                listener.close()
            shutil.rmtree(self.folder, ignore_errors=True)


def attach(host: Host) -> TlsEndpoints:
    """Serve the host's started sites now and follow its changes; ``.stop()`` ends it."""
    endpoints = TlsEndpoints(host)
    endpoints.refresh()
    host.on_change.append(endpoints.refresh)
    return endpoints


# opslib.rehearsal.start() looks for ``start(host)``.
start = attach
