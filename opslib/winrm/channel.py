"""The channel a connection runs over: TLS per connection, what was negotiated, and whether it is private.

* ``winrm.tls: legacy-tls1.0`` builds a dedicated :class:`ssl.SSLContext` for one connection only
  (TLS 1.0, the AES suites Server 2003 offers with KB948963, ``@SECLEVEL=0``), mounted on that
  connection's requests session through :class:`ChannelAdapter`; the process's defaults are untouched.
  Certificate validation stays on unless ``server_cert_validation: ignore``.
* :class:`ChannelAdapter` reads the TLS version and cipher actually negotiated from the socket of the
  connection that carried each response (``SSLSocket.version()``/``cipher()``), no extra handshake.
* :func:`tls_failure` turns a handshake failure into a message that says what to change, deciding by
  the OpenSSL reason code of the :class:`ssl.SSLError` (never by its message text).

Sources: Server 2003 Schannel speaks TLS 1.0 at most
(https://learn.microsoft.com/en-us/windows/win32/secauthn/protocols-in-tls-ssl--schannel-ssp-), its
AES suites come with KB948963 (https://support.microsoft.com/kb/948963), otherwise it offers RC4 and
3DES only (https://learn.microsoft.com/en-us/windows/win32/secauthn/cipher-suites-in-schannel);
rows W-WINRM-TLS10, W-WINRM-NOAES in docs/windows-behaviour.md.
"""

from __future__ import annotations

import ssl
import urllib.parse
import warnings
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from requests.adapters import HTTPAdapter

from ..errors import ConnectionFailed, ParameterError

TLS_SETTINGS = ("default", "legacy-tls1.0")
MESSAGE_ENCRYPTION = ("auto", "always", "never")
# OpenSSL names of TLS_RSA_WITH_AES_128_CBC_SHA / _256_ (RFC 3268), the suites KB948963 adds to Server
# 2003. 3DES and RC4 are not offered: this OpenSSL cannot select them (the server's only other suites).
LEGACY_CIPHERS = "AES128-SHA:AES256-SHA:@SECLEVEL=0"

# OpenSSL reason codes (ssl.SSLError.reason) of a handshake the protocol version ended …
PROTOCOL_REASONS = frozenset(
    {"TLSV1_ALERT_PROTOCOL_VERSION", "UNSUPPORTED_PROTOCOL", "WRONG_SSL_VERSION", "NO_PROTOCOLS_AVAILABLE"}
)
# … and of one that found no cipher suite both sides accept (the server's alert handshake_failure, 40:
# RFC 2246 §7.2.2, https://www.rfc-editor.org/rfc/rfc2246#section-7.2.2).
CIPHER_REASONS = frozenset({"SSLV3_ALERT_HANDSHAKE_FAILURE", "NO_SHARED_CIPHER", "NO_CIPHERS_AVAILABLE"})
CERTIFICATE_REASONS = frozenset({"CERTIFICATE_VERIFY_FAILED"})
CHANNEL = "the channel"  # the transcript line of Connection.channel, written once the shell is open
CLEARTEXT_ACCEPTED = "accept secrets in clear text"  # the transcript line of an accepted require_confidential


def check_setting(tls: str, *, url: str) -> str:
    if tls not in TLS_SETTINGS:
        raise ParameterError("winrm.tls", f"must be one of {', '.join(TLS_SETTINGS)}; got {tls!r}")
    if tls == "legacy-tls1.0" and not url.lower().startswith("https://"):
        raise ParameterError(
            "winrm.tls",
            "legacy-tls1.0 applies to an https:// URL only",
            hint="use the server's HTTPS listener (https://HOST:443/wsman on Server 2003), or remove winrm.tls",
        )
    return tls


def legacy_context(*, ca_trust_path: str | None, validate: bool) -> ssl.SSLContext:
    """A client context for one Server 2003 listener: TLS 1.0 only, AES suites, ``@SECLEVEL=0``.

    Security level 0: a 2003 listener certificate is typically signed with SHA-1 by its CA
    (W-WINRM-LISTENER-CERT), and OpenSSL 3 refuses SHA-1 certificate signatures from level 1 up ("CA
    signature digest algorithm too weak", tried with this machine's OpenSSL 3.0); the level applies to
    this context only. The suites are RSA key exchange (no handshake signature). Validation: the
    system's CAs or ``ca_trust_path``, the host name checked, unless ``validate`` is False.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    with warnings.catch_warnings():  # Python deprecates TLS 1.0: the point of this setting
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1
    ctx.set_ciphers(LEGACY_CIPHERS)
    if validate:
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
        if ca_trust_path:
            ctx.load_verify_locations(ca_trust_path)
        else:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class ChannelAdapter(HTTPAdapter):
    """requests' adapter with this connection's own TLS context (or urllib3's default when None).

    Records the TLS protocol and cipher negotiated, read from the socket of the connection that
    carried each response (``resp.connection.sock``), in :attr:`negotiated`.
    """

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl_context = ssl_context
        self.negotiated: dict[str, Any] = {}
        super().__init__()

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        if self._ssl_context is not None:
            pool_kwargs["ssl_context"] = self._ssl_context
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        if self._ssl_context is not None:
            proxy_kwargs.setdefault("ssl_context", self._ssl_context)
        return super().proxy_manager_for(proxy, **proxy_kwargs)

    def build_response(self, req: Any, resp: Any) -> Any:
        sock = getattr(getattr(resp, "connection", None), "sock", None)
        version = getattr(sock, "version", None)
        cipher = getattr(sock, "cipher", None)
        if callable(version) and callable(cipher):
            suite = cipher()
            self.negotiated = {"tls_version": version(), "cipher": suite[0] if suite else None}
        return super().build_response(req, resp)


def mount(session: Any, *, tls: str, ca_trust_path: str | None, validate: bool) -> ChannelAdapter:
    """Mount this connection's adapter on its requests session (``https://`` only; HTTP has no TLS)."""
    ctx = legacy_context(ca_trust_path=ca_trust_path, validate=validate) if tls == "legacy-tls1.0" else None
    adapter = ChannelAdapter(ctx)
    session.mount("https://", adapter)
    return adapter


def ssl_cause(exc: BaseException) -> ssl.SSLError | None:
    """The :class:`ssl.SSLError` inside a requests/urllib3 error (wrapped in args, ``reason``, causes)."""
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        item = stack.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, ssl.SSLError):
            return item
        stack.extend([*item.args, getattr(item, "reason", None), item.__cause__, item.__context__])
    return None


def tls_failure(exc: BaseException, *, url: str, tls: str) -> ConnectionFailed:
    """The kit's message for a TLS handshake that failed, by the OpenSSL reason code."""
    cause = ssl_cause(exc)
    reason = str(getattr(cause, "reason", "") or "")
    if reason in CERTIFICATE_REASONS:
        detail = str(getattr(cause, "verify_message", "") or "")
        return ConnectionFailed(
            url,
            "the server's TLS certificate could not be validated" + (f" ({detail})" if detail else ""),
            hint="set winrm.ca_trust_path to the CA bundle (or the listener's own certificate) that signs it",
        )
    if reason in PROTOCOL_REASONS and tls == "legacy-tls1.0":
        return ConnectionFailed(
            url,
            f"the server refused TLS 1.0 ({reason})",
            hint="winrm.tls: legacy-tls1.0 is for a Windows Server 2003 listener only; remove it for this server",
        )
    if reason in PROTOCOL_REASONS:
        return ConnectionFailed(
            url,
            f"this server offers only TLS 1.0, which this control machine refuses by default ({reason})",
            hint="set winrm.tls: legacy-tls1.0 (Windows Server 2003); it applies to this connection only",
        )
    if reason in CIPHER_REASONS:
        first = (
            ""
            if tls == "legacy-tls1.0"
            else "if this is Windows Server 2003, set winrm.tls: legacy-tls1.0 first; if this message stays, "
        )
        return ConnectionFailed(
            url,
            f"the TLS handshake found no cipher suite both sides accept ({reason}): this server offers "
            "only RC4/3DES cipher suites, which this control machine's OpenSSL cannot use",
            hint=first + "install the AES cipher suites for Server 2003 (KB948963) on the server, "
            "or reach it through a TLS proxy that speaks AES to this machine",
        )
    return ConnectionFailed(
        url,
        f"the TLS handshake failed ({reason or type(cause or exc).__name__})",
        hint="check that the URL names the server's HTTPS listener; on Server 2003 set winrm.tls: legacy-tls1.0",
    )


class Channels:
    """The channel half of :class:`~opslib.winrm.shell.Connection` (which provides the members below)."""

    url: str
    host: str
    _tls: str
    _allow_cleartext: bool
    _adapter: ChannelAdapter | None
    _protocol: Any

    if TYPE_CHECKING:

        def _mapped(self, doing: str) -> AbstractContextManager[None]: ...

        def _record(self, entry: dict[str, Any]) -> None: ...

    def _mount_channel(self, *, ca_trust_path: str | None, validate: bool) -> None:
        """Give this connection's requests session its own adapter (and TLS context), before any request.

        pywinrm builds the session on first use and, for NTLM/Kerberos/CredSSP over HTTP, sends its
        first (empty) request while building it (``Transport.setup_encryption``). The session is built
        here with message encryption held back, the adapter mounted, then encryption set up as pywinrm
        would have: "auto" seals over HTTP, "always" everywhere.
        """
        transport = self._protocol.transport
        wanted = transport.message_encryption
        transport.message_encryption = "never"
        try:
            session = transport.build_session()
        finally:
            transport.message_encryption = wanted
        self._adapter = mount(session, tls=self._tls, ca_trust_path=ca_trust_path, validate=validate)
        https = self.url.lower().startswith("https://")
        available = (
            hasattr(session.auth, "session_security")
            or transport.auth_method == "credssp"
            or bool(getattr(session.auth, "winrm_encryption_available", False))
        )
        if wanted == "always" and not available:
            raise ParameterError(
                "winrm.message_encryption",
                f"always needs a transport that can encrypt messages (ntlm, kerberos, credssp), not {transport.auth_method}",
            )
        if wanted == "always" or (wanted == "auto" and not https and available):
            with self._mapped("set up message encryption"):
                transport.setup_encryption(session)

    @property
    def channel(self) -> dict[str, Any]:
        """What this connection runs over: scheme, TLS setting, version and cipher negotiated, auth, sealing.

        e.g. ``{"scheme": "https", "tls": "legacy-tls1.0", "tls_version": "TLSv1", "cipher": "AES128-SHA",
        "auth": "ntlm", "message_encryption": False, "confidential": True}``.
        """
        transport = self._protocol.transport
        negotiated = self._adapter.negotiated if self._adapter is not None else {}
        return {
            "scheme": urllib.parse.urlsplit(self.url).scheme,
            "tls": self._tls,
            "tls_version": negotiated.get("tls_version"),
            "cipher": negotiated.get("cipher"),
            "auth": transport.auth_method,
            "message_encryption": transport.encryption is not None,
            "confidential": self.channel_confidential,
        }

    @property
    def channel_confidential(self) -> bool:
        """True over HTTPS, or over HTTP with WinRM message encryption (NTLM/Kerberos/CredSSP sealing)."""
        return self.url.lower().startswith("https://") or self._protocol.transport.encryption is not None

    def _cleartext_reason(self) -> str:
        auth = self._protocol.transport.auth_method
        if auth in ("basic", "plaintext"):
            return "Basic authentication over plain HTTP"
        return (
            f"{auth} over plain HTTP without WinRM message encryption (WinRM 1.1 on Server 2003 cannot "
            "encrypt HTTP; on 2008 R2 and later check winrm.message_encryption)"
        )

    def require_confidential(self, what: str) -> None:
        """Refuse to go on when key material or a password would cross an unencrypted channel.

        Unencrypted: Basic over HTTP, WinRM 1.1 HTTP (W-WINRM-2003-HTTP-CLEAR), sealing turned off.

        Allowed only with ``winrm.allow_cleartext_secrets: true``; the transcript then says so in
        plain words (one line per call).
        """
        if self.channel_confidential:
            return
        reason = self._cleartext_reason()
        if self._allow_cleartext:
            self._record(
                {
                    **self._entry(CLEARTEXT_ACCEPTED),
                    "for": what,
                    "cleartext_secrets_accepted": (
                        f"The operator accepted (winrm.allow_cleartext_secrets: true) that '{what}' crosses "
                        f"the network to {self.url} in clear text ({reason}): anyone on the network path "
                        "could read the key or password."
                    ),
                }
            )
            return
        raise ParameterError(
            "winrm.allow_cleartext_secrets",
            f"refused to {what} over {self.url}: the connection is not encrypted ({reason}), so the private "
            "key or password would cross the network in clear text",
            hint="connect over HTTPS (on Server 2003: https://HOST:443/wsman with winrm.tls: legacy-tls1.0) or "
            "NTLM with message encryption; for a lab host only, set winrm.allow_cleartext_secrets: true",
        )

    def _entry(self, what: str) -> dict[str, Any]:
        return {"time_utc": datetime.now(UTC).isoformat(), "host": self.host, "url": self.url, "what": what}
