"""HTTP authentication and WinRM message encryption of the rehearsal endpoint (the handler's half).

What real WinRM does, and the sources, are in the comments; ``ntlm.py`` holds the pyspnego side.
"""

from __future__ import annotations

import base64
import logging
from typing import TYPE_CHECKING, Any

from .ntlm import SPNEGO_ENCRYPTED, Acceptor, AuthFailed, b64

log = logging.getLogger(__name__)


class AuthHandler:
    """Mixed into the WS-Management request handler (one instance per TCP connection)."""

    server: Any
    headers: Any
    client_address: Any
    _acceptor: Acceptor | None = None  # this connection's NTLM/Negotiate context, once a token arrived
    _negotiated = False  # the connection completed NTLM/Negotiate: later requests need no Authorization
    _encrypt_reply = False
    _reply_headers: dict[str, str] = {}

    if TYPE_CHECKING:  # provided by BaseHTTPRequestHandler and the WS-Management handler

        def send_response(self, code: int, message: str | None = None) -> None: ...
        def send_header(self, keyword: str, value: str) -> None: ...
        def end_headers(self) -> None: ...
        def _plain(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None: ...

    def _challenge(self, token: bytes | None = None) -> None:
        """401 with one ``WWW-Authenticate`` per enabled scheme (or the Negotiate continuation token)."""
        self.send_response(401)
        if token:
            self.send_header("WWW-Authenticate", f"Negotiate {b64(token)}")
        else:
            for value in self.server.challenges():
                self.send_header("WWW-Authenticate", value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _authenticate(self) -> bool:
        """Check the request's credentials; on False a 401 has been sent."""
        srv = self.server
        scheme, _, token = (self.headers.get("Authorization") or "").strip().partition(" ")
        scheme = scheme.lower()
        self._reply_headers = {}
        if scheme in ("negotiate", "ntlm") and srv.negotiate and srv.user_file is not None:
            if self._acceptor is None:
                self._acceptor = Acceptor(srv.user_file, channel_bindings=srv.channel_bindings)
            self._negotiated = False
            try:
                out = self._acceptor.step(base64.b64decode(token.strip(), validate=True))
            except (AuthFailed, ValueError):
                self._acceptor = None
                self._challenge()
                return False
            if not self._acceptor.complete:
                self._challenge(out)
                return False
            self._negotiated = True
            if out:  # SPNEGO's final NegTokenResp (mechListMIC) rides on the successful response
                self._reply_headers["WWW-Authenticate"] = f"Negotiate {b64(out)}"
            return True
        if scheme == "basic" and srv.basic_offered:
            if srv.check_auth(self.headers.get("Authorization")):
                self._negotiated = False
                return True
        elif not scheme and self._negotiated:
            return True  # NTLM authenticates the connection, not each request
        self._challenge()
        return False

    def _unwrap_body(self, body: bytes) -> bytes | None:
        """The SOAP bytes of the request, or None after an HTTP error was sent (415 / 500 / 400)."""
        srv = self.server
        ctype = (self.headers.get("Content-Type") or "").lower()
        self._encrypt_reply = False
        if ctype.startswith("multipart/encrypted"):
            # WinRM 1.1 has no message encryption (MS-WSMV 2.2.9.1 applies to 2.0+) [assumed: its status]
            if (
                not self._negotiated
                or self._acceptor is None
                or srv.winrm_version == "1.1"
                or SPNEGO_ENCRYPTED.lower() not in ctype
            ):
                self._plain(415, b"")
                return None
            try:
                plain = self._acceptor.unwrap(body)
            except ValueError:
                log.info("encrypted request from %s does not verify", self.client_address[0])
                self._plain(400, b"")  # [assumed]
                return None
            self._encrypt_reply = True
            return plain
        if not ctype.startswith("application/soap+xml"):
            # WinRM answers a body that is neither SOAP nor an encrypted SOAP message with an empty
            # 415 Unsupported Media Type (seen by winrm4j when it sent a wrong Content-Type:
            # https://github.com/cloudsoft/winrm4j/issues/72; RFC 9110 §15.5.16) [documented by a user report]
            self._plain(415, b"")
            return None
        if (
            self._negotiated
            and srv.ssl_context is None
            and not srv.allow_unencrypted
            and srv.winrm_version != "1.1"
        ):
            # AllowUnencrypted=false: a plain SOAP body over HTTP is refused with HTTP 500
            # (https://github.com/diyan/pywinrm/issues/129: "error 500 … server receive unencrypted message").
            self._plain(500, b"")
            return None
        return body

    def _send_xml(self, status: int, xml: str) -> None:
        data = xml.encode("utf-8")
        headers = dict(self._reply_headers)
        if self._encrypt_reply and self._acceptor is not None:
            ctype, data = self._acceptor.wrap(data)
            headers["Content-Type"] = ctype
        else:
            headers["Content-Type"] = "application/soap+xml;charset=UTF-8"
        self._plain(status, data, headers)
