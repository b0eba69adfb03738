"""One table of the Windows error codes the kit decides on, each with a short meaning.

A remote program's exit code is read as an HRESULT when it is one (``certutil`` and ``certreq`` exit
with the HRESULT of their failure: commonly observed, unverified [U]); cmd.exe's own codes (9009) and
Win32 codes are small numbers. Sources: winerror.h as published in the Windows SDK
(https://learn.microsoft.com/en-us/windows/win32/debug/system-error-codes ,
https://learn.microsoft.com/en-us/windows/win32/seccrypto/certificate-and-trust-return-values ,
https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-erref/705fb797-2175-4a90-b5a3-3918024b10b8),
the IIS 6 metabase errors (https://learn.microsoft.com/en-us/previous-versions/iis/6.0-sdk/ms525308(v=vs.90)).
Nothing here reads localized text: only numbers.
"""

from __future__ import annotations

# Win32 / cmd.exe
ERROR_ACCESS_DENIED = 5  # cmd could not start a program
ERROR_CANCELLED = 1223  # the operation was cancelled by the user (a prompt was refused)
NOT_RECOGNIZED = 9009  # cmd.exe: "'x' is not recognized as an internal or external command"

# CryptoAPI / certificates (HRESULTs)
NTE_BAD_KEY_STATE = 0x8009000B  # key not valid for use in the specified state (created non-exportable)
NTE_BAD_KEYSET = 0x80090016  # keyset does not exist (the private key is missing)
NTE_BAD_ALGID = 0x80090008  # invalid algorithm specified (certutil -hashfile SHA256 on Server 2003)
CRYPT_E_NOT_FOUND = 0x80092004  # object or property not found
CERT_E_EXPIRED = 0x800B0101  # a certificate of the chain is outside its validity period
CERT_E_UNTRUSTEDROOT = 0x800B0109  # chain ends in a root the trust provider does not trust
CERT_E_CHAINING = 0x800B010A  # a chain could not be built to a trusted root
HRESULT_ERROR_CANCELLED = 0x800704C7  # HRESULT_FROM_WIN32(ERROR_CANCELLED)

# IIS 6 metabase (ADSI)
MD_ERROR_DATA_NOT_FOUND = 0x800CC801  # the metabase property does not exist (no certificate bound)

CODES: dict[int, tuple[str, str]] = {
    ERROR_ACCESS_DENIED: ("ERROR_ACCESS_DENIED", "access is denied (cmd could not start the program)"),
    ERROR_CANCELLED: ("ERROR_CANCELLED", "the operation was cancelled (a prompt was refused)"),
    NOT_RECOGNIZED: ("9009", "cmd.exe does not know the command (program not installed or not on PATH)"),
    NTE_BAD_KEY_STATE: ("NTE_BAD_KEY_STATE", "the private key was created non-exportable"),
    NTE_BAD_KEYSET: ("NTE_BAD_KEYSET", "the private key (keyset) does not exist"),
    NTE_BAD_ALGID: ("NTE_BAD_ALGID", "the algorithm is not supported here (no SHA-256 on Server 2003)"),
    CRYPT_E_NOT_FOUND: ("CRYPT_E_NOT_FOUND", "the certificate, request or property was not found"),
    CERT_E_EXPIRED: ("CERT_E_EXPIRED", "a certificate of the chain has expired or is not yet valid"),
    CERT_E_UNTRUSTEDROOT: ("CERT_E_UNTRUSTEDROOT", "the chain ends in a root that is not trusted"),
    CERT_E_CHAINING: ("CERT_E_CHAINING", "no chain could be built to a trusted root"),
    HRESULT_ERROR_CANCELLED: ("HRESULT_FROM_WIN32(ERROR_CANCELLED)", "the operation was cancelled"),
    MD_ERROR_DATA_NOT_FOUND: ("MD_ERROR_DATA_NOT_FOUND", "the metabase property does not exist"),
}


def hresult(exit_code: int) -> int:
    """``exit_code`` as an unsigned 32-bit value (a negative exit code is an HRESULT with the high bit)."""
    return exit_code & 0xFFFFFFFF


def name(code: int) -> str:
    """The symbolic name of ``code`` ("" when the kit does not know it)."""
    return CODES.get(hresult(code), ("", ""))[0]


def describe(code: int) -> str:
    """``code`` for a message: ``"NTE_BAD_KEY_STATE 0x8009000B (the private key was created
    non-exportable)"``; a code the kit does not know is shown as a number only."""
    value = hresult(code)
    shown = f"0x{value:08X}" if value > 0xFFFF else str(value)
    known = CODES.get(value)
    if known is None:
        return shown
    symbol, meaning = known
    return f"{symbol} {shown} ({meaning})" if symbol != shown else f"{shown} ({meaning})"
