"""TLS of the rehearsal WinRM listener, per emulated Windows.

* ``modern``: TLS 1.2+ (Server 2008 R2 and later with current updates).
* ``tls1.0``: Server 2003 SP2 Schannel with the AES update KB948963: TLS 1.0 at most
  (https://learn.microsoft.com/en-us/windows/win32/secauthn/protocols-in-tls-ssl--schannel-ssp-), cipher suites
  TLS_RSA_WITH_AES_128_CBC_SHA and TLS_RSA_WITH_AES_256_CBC_SHA added by KB948963
  (https://support.microsoft.com/kb/948963), besides 3DES and RC4
  (https://learn.microsoft.com/en-us/windows/win32/secauthn/cipher-suites-in-schannel). This OpenSSL build
  serves only the AES pair of these (3DES and RC4 are not available even at ``@SECLEVEL=0``); a client
  that offers AES connects. The listener certificate is RSA 2048 signed with SHA-1, as a 2003 CA or
  ``selfssl`` issued them (SHA-2 support in 2003 came only with KB938397/KB968730: assumed typical).
* ``tls1.0-no-aes``: Server 2003 without KB948963: only RC4 and 3DES suites. OpenSSL here cannot serve
  either, and no current client offers them by default, so the listener reads the ClientHello and answers
  the fatal alert ``handshake_failure`` (40), which is what a TLS server sends when it shares no cipher
  suite with the client (RFC 2246 §7.2.2, https://www.rfc-editor.org/rfc/rfc2246#section-7.2.2). The client
  sees ``SSLV3_ALERT_HANDSHAKE_FAILURE``. [assumed: Schannel's exact reaction; it may reset instead]
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..errors import UsageError

TLS_MODES = ("modern", "tls1.0", "tls1.0-no-aes")
# OpenSSL names of the suites Server 2003 + KB948963 offers, strongest first. Only the AES ones load here.
CIPHERS_2003_AES = "AES128-SHA:AES256-SHA:DES-CBC3-SHA:RC4-SHA:RC4-MD5:@SECLEVEL=0"
CIPHERS_2003_NO_AES = "DES-CBC3-SHA:RC4-SHA:RC4-MD5:@SECLEVEL=0"
ALERT_HANDSHAKE_FAILURE = bytes([0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x28])  # TLS 1.0 record, fatal, 40


def check_mode(tls: str) -> str:
    if tls not in TLS_MODES:
        raise UsageError(f"unknown TLS mode {tls!r}", hint="use one of " + ", ".join(TLS_MODES))
    return tls


def make_2003_tls_files(directory: str | Path, *, now_utc: datetime | None = None) -> tuple[Path, Path, Path]:
    """A self-signed RSA 2048 / SHA-1 listener certificate for 127.0.0.1 and localhost.

    Returns (ca_file, cert_file, key_file); the certificate is its own trust anchor (a 2003 listener is
    commonly self-signed with ``selfssl``); the key is written 0600.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = now_utc or datetime.now(UTC)
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    der = _resign_sha1(cert.public_bytes(serialization.Encoding.DER), key)
    cert_file = folder / "winrm-2003.pem"
    key_file = folder / "winrm-2003.key"
    cert_file.write_bytes(x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM))
    key_file.touch(mode=0o600)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return cert_file, cert_file, key_file


_OID_SHA256_RSA = bytes.fromhex("06092a864886f70d01010b")  # sha256WithRSAEncryption
_OID_SHA1_RSA = bytes.fromhex("06092a864886f70d010105")  # sha1WithRSAEncryption


def _resign_sha1(der: bytes, key: Any) -> bytes:
    """The same certificate signed sha1WithRSAEncryption.

    ``cryptography`` no longer signs certificates with SHA-1, but the RSA primitive still signs a SHA-1
    digest: swap the two AlgorithmIdentifiers (same length) and sign the new TBSCertificate.
    """
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    if der.count(_OID_SHA256_RSA) != 2:
        raise ValueError("unexpected certificate layout")
    der = der.replace(_OID_SHA256_RSA, _OID_SHA1_RSA)

    def tlv_end(buf: bytes, at: int) -> int:
        length = buf[at + 1]
        if length < 0x80:
            return at + 2 + length
        n = length & 0x7F
        return at + 2 + n + int.from_bytes(buf[at + 2 : at + 2 + n], "big")

    outer_len_bytes = der[1] & 0x7F if der[1] & 0x80 else 0
    tbs_at = 2 + outer_len_bytes
    tbs = der[tbs_at : tlv_end(der, tbs_at)]
    signature = key.sign(tbs, padding.PKCS1v15(), hashes.SHA1())
    if len(signature) != key.key_size // 8:
        raise ValueError("unexpected signature size")
    return der[: len(der) - len(signature)] + signature


def server_context(tls: str, cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """The listener's context for ``tls`` (``tls1.0-no-aes`` gets the TLS 1.0 context: see ``refuse_hello``)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if tls == "modern":
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    else:
        with warnings.catch_warnings():  # deprecated in Python's ssl: the point of this mode
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1
        ctx.set_ciphers(CIPHERS_2003_AES)  # OpenSSL silently drops the names it cannot serve (3DES, RC4)
    ctx.load_cert_chain(str(cert_file), str(key_file))
    return ctx


def refuse_hello(sock: socket.socket, *, timeout_s: float = 5.0) -> None:
    """``tls1.0-no-aes``: read the ClientHello record, answer the fatal alert handshake_failure, close."""
    sock.settimeout(timeout_s)
    try:
        head = sock.recv(5)
        if len(head) == 5 and head[0] == 0x16:  # handshake record: drain it
            remaining = int.from_bytes(head[3:5], "big")
            while remaining > 0:
                chunk = sock.recv(min(remaining, 16384))
                if not chunk:
                    break
                remaining -= len(chunk)
        sock.sendall(ALERT_HANDSHAKE_FAILURE)
    except OSError:
        pass
    finally:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()


# --- TLS material ---------------------------------------------------------------------------------


def make_tls_files(
    directory: str | Path, *, names: tuple[str, ...] = ("localhost",), now_utc: datetime | None = None
) -> tuple[Path, Path, Path]:
    """Write a rehearsal CA (``winrm-ca.pem``) and a server certificate + key for 127.0.0.1/localhost.

    Part of the rehearsal's PKI factory (it must *make* certificates, so it uses ``cryptography``
    directly). Returns (ca_file, cert_file, key_file); the key file is written 0600.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = now_utc or datetime.now(UTC)
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "opslib rehearsal WinRM CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alt: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    alt += [x509.DNSName(n) for n in names]
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "localhost")])
        )
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = folder / "winrm-ca.pem"
    cert_file = folder / "winrm-server.pem"
    key_file = folder / "winrm-server.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    )
    key_file.touch(mode=0o600)
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return ca_file, cert_file, key_file


def server_ssl_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert_file), str(key_file))
    return ctx
