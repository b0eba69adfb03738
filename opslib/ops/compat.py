"""Can the target server use this certificate at all? Key algorithm and size against its Windows version.

Checked before anything changes (:func:`opslib.preflight.check_server` calls :func:`refuse_unusable`),
so that an EC key on Windows Server 2003 is named as such rather than failing later as
"no pending request" or a site that will not start.

What each Windows accepts for an SSL server certificate's key (Schannel through CryptoAPI/CNG):

* Windows Server 2003 (NT 5.2) and older: **RSA only**. Its Schannel cipher suites are RSA and
  DHE-DSS ones, no ECC at all —
  https://learn.microsoft.com/en-us/windows/win32/secauthn/tls-cipher-suites-in-windows-server-2003 ;
  ECC (ECDHE/ECDSA) suites arrive with Windows Vista / Server 2008 (NT 6.0) and CNG —
  https://learn.microsoft.com/en-us/windows/win32/secauthn/tls-cipher-suites-in-windows-vista .
  A DSA server certificate (DHE-DSS) is not something IIS's certificate wizard requests; refused
  as unsupported by the kit [assumed].
* RSA modulus: CryptoAPI's RSA providers take 384–16384 bits (CryptGenKey, "RSA key length",
  https://learn.microsoft.com/en-us/windows/win32/api/wincrypt/nf-wincrypt-cryptgenkey ; the .NET
  RSACryptoServiceProvider.KeySize page repeats it: "384 to 16384 bits ... prior to Windows 8.1,
  512 to 16384 bits for Windows 8.1",
  https://learn.microsoft.com/en-us/dotnet/api/system.security.cryptography.rsacryptoserviceprovider.keysize).
* ECDSA on NT 6.0+: the NIST curves P-256, P-384, P-521 (the Vista suite list names them); other
  curves (Brainpool, secp256k1) are refused [assumed: Brainpool appears only in later Windows 10 builds].
* Ed25519/Ed448 server certificates: Schannel has no EdDSA server authentication [assumed].
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import certs
from ..errors import PreconditionFailed
from ..text import escape_text

if TYPE_CHECKING:
    from ..server.probe import Capabilities

__all__ = ["RSA_MAX_BITS", "RSA_MIN_BITS", "key_problem", "refuse_unusable"]

RSA_MIN_BITS = 384  # CryptGenKey (512 from Windows 8.1 on)
RSA_MIN_BITS_NT63 = 512
RSA_MAX_BITS = 16384
_EC_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}


def _nt(windows_version: str) -> tuple[int, int]:
    parts = [p for p in windows_version.split(".")[:2] if p.isdigit()]
    return (int(parts[0]), int(parts[1]) if len(parts) > 1 else 0) if parts else (0, 0)


def _os_name(nt: tuple[int, int]) -> str:
    names = {(5, 0): "Windows 2000", (5, 2): "Windows Server 2003", (6, 0): "Windows Server 2008"}
    return names.get(nt, f"Windows NT {nt[0]}.{nt[1]}")


def key_problem(cert: certs.Certificate, *, windows_version: str) -> str:
    """Why a server with ``windows_version`` (``ver``'s "5.2.3790") cannot use ``cert``'s key; "" if it can.

    An unreadable version ("") is judged as the oldest the kit supports (Server 2003).
    """
    nt = _nt(windows_version) if windows_version else (5, 2)
    nt = nt if nt != (0, 0) else (5, 2)
    os_name = _os_name(nt)
    kind, size = certs.key_description(cert.public_key())  # only opslib.certs reads keys (CONTRIBUTING)
    if kind == "RSA" and size is not None:
        low = RSA_MIN_BITS_NT63 if nt >= (6, 3) else RSA_MIN_BITS
        if not low <= size <= RSA_MAX_BITS:
            return (
                f"an RSA key of {size} bits, outside what {os_name}'s CryptoAPI takes "
                f"({low}–{RSA_MAX_BITS} bits, CryptGenKey)"
            )
        return ""
    if kind.startswith("EC "):
        name = kind[3:]
        curve = _EC_CURVES.get(name)
        if nt < (6, 0):
            return (
                f"an elliptic-curve (ECDSA {curve or escape_text(name)}) key: {os_name} has no ECC in "
                "Schannel (its TLS cipher suites are RSA and DSS only; ECDSA needs Windows Vista / Server 2008 "
                "or later) — IIS 6 cannot use this certificate"
            )
        if curve is None:
            return f"an elliptic-curve key on the curve {escape_text(name)}, which {os_name} does not offer"
        return ""
    if kind == "DSA":
        return (
            f"a DSA key ({size} bits): the kit renews RSA (or, on 2008 and later, ECDSA) server certificates"
        )
    if kind in ("Ed25519", "Ed448"):
        return f"an EdDSA key: {os_name}'s Schannel cannot authenticate a server with it"
    return (
        f"a key of type {escape_text(kind)}, which {os_name}'s Schannel does not use for server certificates"
    )


def refuse_unusable(cert: certs.Certificate, capabilities: Capabilities, *, source: str, host: str) -> None:
    """Raise :class:`PreconditionFailed` (nothing changed yet) when the server cannot use ``cert``'s key."""
    problem = key_problem(cert, windows_version=capabilities.windows_version)
    if problem:
        raise PreconditionFailed(
            host,
            f"{escape_text(source)}: the new certificate has {problem} — nothing was changed",
            hint="have the certificate re-issued for a new request made on this server (IIS wizard: RSA 2048 bits)",
        )
