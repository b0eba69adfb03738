"""NTLM/Negotiate for the rehearsal endpoint: pyspnego is the acceptor; this module adds WinRM's framing.

* Authentication: ``Authorization: Negotiate <base64>`` carries either a raw NTLMSSP token (requests_ntlm,
  i.e. pywinrm ``transport="ntlm"``) or a SPNEGO token wrapping NTLM (pypsrp ``auth="negotiate"``); Windows
  accepts both under the Negotiate scheme (MS-SPNG, https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-spng/;
  raw NTLM under "Negotiate" is what requests_ntlm sends and Windows answers). pyspnego's ``NegotiateProxy``
  acceptor does the same.
* pyspnego's NTLM acceptor reads the account database from the file named by the environment variable
  ``NTLM_USER_FILE`` (Heimdal format ``DOMAIN:USER:PASSWORD``), at context creation *and* when the
  AUTHENTICATE message arrives (spnego/_ntlm.py ``_NTLMCredential``). The variable is process-wide, so every
  call into the context that may read it runs under one lock with the variable pointing at this server's
  file (in the server's private temporary folder, mode 0600), then restored.
* Message encryption (MS-WSMV 2.2.9.1.1 "Negotiate", https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-wsmv/):
  ``multipart/encrypted;protocol="application/HTTP-SPNEGO-session-encrypted";boundary="Encrypted Boundary"``,
  two MIME parts per message: the headers part (``OriginalContent: type=application/soap+xml;
  charset=UTF-8;Length=N``) and ``application/octet-stream`` = ``<int32 LE signature length><signature>
  <sealed data>``. The client side of the same format is pywinrm ``winrm/encryption.py`` and pypsrp
  ``pypsrp/encryption.py``; this is its mirror.
"""

from __future__ import annotations

import base64
import os
import re
import struct
import threading
from pathlib import Path
from typing import Any

import spnego
import spnego.exceptions

from ..errors import UsageError

SPNEGO_ENCRYPTED = "application/HTTP-SPNEGO-session-encrypted"
BOUNDARY = "Encrypted Boundary"
_ENV = "NTLM_USER_FILE"
_ENV_LOCK = threading.Lock()  # NTLM_USER_FILE is process-wide; every server's contexts share this lock


class AuthFailed(Exception):
    """The initiator's token was refused (wrong password, unknown user, malformed token)."""


def write_user_file(folder: Path, *, user: str, password: str, hostname: str) -> Path:
    """The acceptor's account database: one local account, reachable as ``USER``, ``HOST\\USER`` or ``.\\USER``.

    A local account on Windows is addressed with an empty domain, the computer name, or ``.``
    (https://learn.microsoft.com/en-us/windows/win32/secauthn/user-name-formats, assumed to hold for NTLM
    over WinRM as it does for logon).
    """
    if any(c in password for c in ":\r\n") or any(c in user for c in ":\r\n\\"):
        raise UsageError(
            "the rehearsal host's NTLM account cannot hold this user name or password",
            hint="choose a password without ':' or line breaks (pyspnego's credential file splits on ':')",
        )
    path = folder / "ntlm-users"
    path.touch(mode=0o600)
    lines = [f"{domain}:{user}:{password}" for domain in ("", hostname.upper(), ".")]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _call_with_user_file(user_file: Path, fn: Any, *args: Any) -> Any:
    with _ENV_LOCK:
        old = os.environ.get(_ENV)
        os.environ[_ENV] = str(user_file)
        try:
            return fn(*args)
        finally:
            if old is None:
                os.environ.pop(_ENV, None)
            else:
                os.environ[_ENV] = old


class Acceptor:
    """One connection's security context (NTLM is connection-oriented: a new TCP connection re-authenticates)."""

    def __init__(self, user_file: Path, *, channel_bindings: Any = None) -> None:
        self._user_file = user_file
        self._bindings = channel_bindings
        self._ctx: Any = None

    @property
    def complete(self) -> bool:
        return self._ctx is not None and bool(self._ctx.complete)

    def step(self, token: bytes) -> bytes | None:
        """Feed one initiator token; returns the token to send back (None: nothing to send)."""
        first = token.startswith(b"NTLMSSP\x00\x01\x00\x00\x00") or token[:1] == b"\x60"
        if self._ctx is None or first:  # a NEGOTIATE / NegTokenInit starts a new context
            self._ctx = _call_with_user_file(self._user_file, lambda: spnego.server(protocol="negotiate"))
        try:
            try:
                out: bytes | None = _call_with_user_file(
                    self._user_file, lambda: self._ctx.step(token, channel_bindings=self._bindings)
                )
            except spnego.exceptions.BadBindingsError as exc:
                if "not present" not in str(exc):
                    raise
                # Relaxed: a client that sends no bindings at all is accepted (the AUTHENTICATE message
                # was not consumed: pyspnego checks bindings before it completes the context).
                out = _call_with_user_file(self._user_file, lambda: self._ctx.step(token))
        except (spnego.exceptions.SpnegoError, ValueError, struct.error) as exc:
            self._ctx = None
            raise AuthFailed(str(exc)) from None
        return out

    # --- message encryption ---
    def unwrap(self, body: bytes) -> bytes:
        """``multipart/encrypted`` request body → the SOAP bytes (ValueError if it does not verify)."""
        parts = [p for p in re.split(rb"--\s*" + re.escape(BOUNDARY.encode()) + rb"(?:--)?\r\n", body) if p]
        message = b""
        for i in range(0, len(parts) - 1, 2):
            header, payload = parts[i], parts[i + 1]
            if SPNEGO_ENCRYPTED.encode() not in header:
                raise ValueError("not an HTTP-SPNEGO-session-encrypted part")
            m = re.search(rb"Length=(\d+)", header)
            if not m:
                raise ValueError("OriginalContent has no Length")
            payload = payload.replace(b"\tContent-Type: application/octet-stream\r\n", b"", 1)
            (sig_len,) = struct.unpack("<i", payload[:4])
            signature, sealed = payload[4 : 4 + sig_len], payload[4 + sig_len :]
            try:
                plain = self._ctx.unwrap_winrm(signature, sealed)
            except spnego.exceptions.SpnegoError as exc:
                raise ValueError(f"the message signature does not verify: {exc}") from None
            if len(plain) != int(m.group(1)):
                raise ValueError("decrypted length differs from OriginalContent Length")
            message += plain
        if not parts:
            raise ValueError("no encrypted parts")
        return message

    def wrap(self, message: bytes) -> tuple[str, bytes]:
        """SOAP bytes → (Content-Type, ``multipart/encrypted`` body)."""
        result = self._ctx.wrap_winrm(message)
        sealed = struct.pack("<i", len(result.header)) + result.header + result.data
        body = (
            f"--{BOUNDARY}\r\n\tContent-Type: {SPNEGO_ENCRYPTED}\r\n"
            f"\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length={len(message) + result.padding_length}\r\n"
            f"--{BOUNDARY}\r\n\tContent-Type: application/octet-stream\r\n"
        ).encode() + sealed
        body += f"--{BOUNDARY}--\r\n".encode()
        return f'multipart/encrypted;protocol="{SPNEGO_ENCRYPTED}";boundary="{BOUNDARY}"', body


def channel_bindings_for(cert_pem: bytes) -> Any:
    """``tls-server-end-point`` channel bindings of the HTTPS listener's certificate (RFC 5929 §4.1).

    WinRM's default CbtHardeningLevel is Relaxed
    (https://learn.microsoft.com/en-us/windows/win32/winrm/installation-and-configuration-for-windows-remote-management):
    a wrong token is refused, an all-zero one (client without bindings) is accepted. pyspnego's acceptor
    checks the token; when the client's AUTHENTICATE has no MsvAvChannelBindings pair the step is
    repeated without bindings (``Acceptor.step``).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from spnego.channel_bindings import GssChannelBindings

    cert = x509.load_pem_x509_certificate(cert_pem)
    algorithm = cert.signature_hash_algorithm
    if algorithm is None or isinstance(algorithm, hashes.MD5 | hashes.SHA1):
        algorithm = hashes.SHA256()  # RFC 5929 §4.1: MD5 and SHA-1 are replaced by SHA-256
    digest = hashes.Hash(algorithm)
    digest.update(cert.public_bytes(serialization.Encoding.DER))
    return GssChannelBindings(application_data=b"tls-server-end-point:" + digest.finalize())


def b64(token: bytes | None) -> str:
    return base64.b64encode(token or b"").decode()
