"""Loaders: bytes in, a :class:`Bundle` out.

PEM (one or many; CRLF, BOM, junk around it; UTF-16 text), DER, PKCS#7 (PEM/DER ``.p7b``), PKCS#12
(``.pfx``), CSRs (PEM/DER, also certreq's ``NEW CERTIFICATE REQUEST``), and the CA's notification
mail — pasted text or a saved ``.eml`` in ISO-2022-JP, Shift_JIS or UTF-8, with MIME parts.
Errors are :class:`~opslib.errors.CertificateError` naming the source.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import re
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12

from ..errors import CertificateError
from .der import first_tlv, is_der, is_pkcs12
from .facts import CSR, Certificate, is_ca_certificate, key_matches, unique
from .summary import summarize

# --- loading -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bundle:
    """What one source held."""

    source: str
    certificates: tuple[Certificate, ...] = ()
    private_key: Any = None  # a cryptography private key object, or None
    csrs: tuple[CSR, ...] = ()
    formats: tuple[
        str, ...
    ] = ()  # how it was read: "pem", "der", "pkcs7", "pkcs12", "csr", "mail", "eml", "utf-16"

    @cached_property
    def leaf(self) -> Certificate | None:
        """The end-entity certificate: the one matching the private key, else the first non-CA
        certificate that issued none of the others; None when the bundle holds only CA certificates."""
        if self.private_key is not None:
            for c in self.certificates:
                if key_matches(c, self.private_key):
                    return c
        for c in self.certificates:
            if not is_ca_certificate(c) and not any(
                o is not c and o.issuer == c.subject for o in self.certificates
            ):
                return c
        return None

    @property
    def others(self) -> tuple[Certificate, ...]:
        """Every certificate but the leaf (intermediates, cross certificates, roots)."""
        leaf = self.leaf
        return tuple(c for c in self.certificates if c is not leaf)

    def rows(self, *, now_utc: datetime | None = None) -> list[dict[str, Any]]:
        """One row per certificate for a table, ``role`` leaf or CA first."""
        leaf = self.leaf
        return [
            {"role": "leaf" if c is leaf else "CA", **summarize(c, now_utc=now_utc).row()}
            for c in self.certificates
        ]

    def require_leaf(self) -> Certificate:
        """The leaf; :class:`CertificateError` when the source holds only CA certificates."""
        if self.leaf is None:
            raise CertificateError(
                self.source,
                "holds no server certificate (only CA certificates)",
                hint="give the mail or file with the サーバID",
            )
        return self.leaf


# A BEGIN marker counts only when base64 or a line end follows it: mails quote the markers in prose
# ("(-----BEGIN CERTIFICATE-----) から (-----END CERTIFICATE-----) までをコピー").
_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 #]+?)-----(?=[ \t]*(?:\r?\n|[A-Za-z0-9+/]))(.*?)(?:-----END \1-----|(?=-----BEGIN )|\Z)",
    re.S,
)
_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/=]")
_HEADER_LINE = re.compile(rb"^[A-Za-z][A-Za-z0-9-]*:[ \t]")


def _looks_utf16(data: bytes) -> str | None:
    if data.startswith(b"\xff\xfe"):
        return "utf-16-le"
    if data.startswith(b"\xfe\xff"):
        return "utf-16-be"
    head = data[:200]
    if len(head) >= 8 and head[1::2].count(0) > len(head) // 4 and head[0::2].count(0) == 0:
        return "utf-16-le"
    if len(head) >= 8 and head[0::2].count(0) > len(head) // 4 and head[1::2].count(0) == 0:
        return "utf-16-be"
    return None


class Collector:
    def __init__(self, source: str) -> None:
        self.source = source
        self.certs: list[Certificate] = []
        self.csrs: list[CSR] = []
        self.key: Any = None
        self.formats: list[str] = []

    def fmt(self, name: str) -> None:
        if name not in self.formats:
            self.formats.append(name)

    def fail(self, problem: str, hint: str = "") -> CertificateError:
        return CertificateError(self.source, problem, hint=hint)


def _load_der(col: Collector, der: bytes, *, password: bytes | None, what: str = "") -> bool:
    """Try every DER structure; True when something was found."""
    if is_pkcs12(der):
        load_pfx_into(col, der, password)
        return True
    try:
        col.certs.append(x509.load_der_x509_certificate(der))
        col.fmt("der")
        return True
    except ValueError:
        pass
    try:
        certs = pkcs7.load_der_pkcs7_certificates(der)
    except ValueError as exc:
        if "no certificate" in str(exc):
            raise col.fail(f"the PKCS#7 {what or 'data'} holds no certificates") from None
        certs = None
    except UnsupportedAlgorithm:
        certs = None
    if certs is not None:
        if not certs:
            raise col.fail(f"the PKCS#7 {what or 'data'} holds no certificates")
        col.certs.extend(certs)
        col.fmt("pkcs7")
        return True
    try:
        col.csrs.append(x509.load_der_x509_csr(der))
        col.fmt("csr")
        return True
    except ValueError:
        pass
    return False


def load_pfx_into(col: Collector, data: bytes, password: bytes | None) -> None:
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(data, password)
    except ValueError:
        if password is None:
            raise col.fail(
                "PKCS#12 (PFX) file is password-protected",
                hint="pass the name of an environment variable holding the password (--password-env VAR)",
            ) from None
        raise col.fail(
            "could not open the PKCS#12 (PFX) file: wrong password or damaged file",
            hint="check the password the environment variable holds",
        ) from None
    except UnsupportedAlgorithm as exc:
        raise col.fail(f"PKCS#12 (PFX) uses an unsupported algorithm: {exc}") from None
    if cert is not None:
        col.certs.append(cert)
    col.certs.extend(extra)
    if key is not None:
        col.key = key
    col.fmt("pkcs12")


def _load_pem_blocks(col: Collector, text: bytes, *, password: bytes | None) -> int:
    found = 0
    for m in _PEM_BLOCK.finditer(text):
        label = m.group(1).decode("ascii")
        whole = m.group(0)
        if not whole.rstrip().endswith(f"-----END {label}-----".encode()):
            line = text[: m.start()].count(b"\n") + 1
            raise col.fail(
                f"the PEM block '{label}' starting on line {line} has no END line (truncated?)",
                hint="copy the whole block, from -----BEGIN to -----END",
            )
        body = m.group(2)
        # Drop RFC 1421 headers (Proc-Type, DEK-Info) and any quoting/indentation around base64 lines.
        lines = [ln for ln in body.splitlines() if not _HEADER_LINE.match(ln.strip())]
        b64 = _B64_JUNK.sub(b"", b"".join(lines))
        try:
            der = base64.b64decode(b64 + b"=" * (-len(b64) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise col.fail(f"the PEM block '{label}' is damaged (not base64)") from None
        if not der:
            continue
        found += 1
        try:
            if label in ("CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE"):
                col.certs.append(
                    x509.load_der_x509_certificate(der if label != "TRUSTED CERTIFICATE" else first_tlv(der))
                )
                col.fmt("pem")
            elif label in ("PKCS7", "PKCS #7 SIGNED DATA", "CMS"):
                try:
                    certs = pkcs7.load_der_pkcs7_certificates(der)
                except ValueError as exc:
                    if "no certificate" not in str(exc):
                        raise
                    certs = []
                if not certs:
                    raise col.fail("the PKCS#7 block holds no certificates")
                col.certs.extend(certs)
                col.fmt("pkcs7")
            elif label in ("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"):
                col.csrs.append(x509.load_der_x509_csr(der))
                col.fmt("csr")
            elif label.endswith("PRIVATE KEY"):
                if b"Proc-Type:" in body:  # traditional OpenSSL encryption (RFC 1421 headers)
                    col.key = serialization.load_pem_private_key(whole.strip(), password)
                else:
                    col.key = serialization.load_der_private_key(der, password)
                col.fmt("key")
            else:
                found -= 1  # public keys, CRLs, … are not our business
        except CertificateError:
            raise
        except TypeError:
            raise col.fail(
                f"the PEM block '{label}' is encrypted", hint="pass its password with --password-env VAR"
            ) from None
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise col.fail(f"the PEM block '{label}' is damaged: {_short(exc)}") from None
    return found


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


def _looks_like_mail(data: bytes) -> bool:
    head = data.lstrip()[:4096]
    lines = head.split(b"\n", 40)
    headers = 0
    for ln in lines:
        ln = ln.rstrip(b"\r")
        if not ln:
            break
        if _HEADER_LINE.match(ln) or (headers and ln[:1] in (b" ", b"\t")):
            headers += 1
        else:
            return False
    names = {ln.split(b":", 1)[0].lower() for ln in lines if b":" in ln}
    return headers >= 2 and bool(names & {b"mime-version", b"content-type", b"from", b"subject", b"received"})


def _load_mail(col: Collector, data: bytes, *, password: bytes | None) -> int:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    found = 0
    for part in msg.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes) or not payload:
            continue
        if part.get_content_maintype() == "text":
            charset = part.get_content_charset() or "us-ascii"
            try:
                text = payload.decode(charset, errors="replace")
            except LookupError:
                text = payload.decode("latin-1")
            found += _load_pem_blocks(col, text.encode("utf-8"), password=password)
        elif _PEM_BLOCK.search(payload):
            found += _load_pem_blocks(col, payload, password=password)
        elif is_der(payload) and _load_der(
            col, payload, password=password, what=f"attachment {part.get_filename() or ''}".strip()
        ):
            found += 1
    col.fmt("eml")
    return found


def load_certificates(data: bytes, *, source: str, password: bytes | None = None) -> Bundle:
    """Read every certificate, key and CSR in ``data``; ``source`` names it in errors and reports.

    Formats are detected, not guessed from a file name: PEM anywhere in the text (the CA's mail as
    pasted), an RFC 5322 message (``.eml``: MIME parts, transfer and charset encodings), UTF-16 text,
    DER certificate / PKCS#7 / CSR, PKCS#12 (``password`` as bytes; None tries an empty password).
    """
    col = Collector(source)
    if not data or not data.strip():
        raise col.fail(
            "the file is empty", hint="give a certificate file (PEM, DER, .p7b, .pfx, CSR) or the CA's mail"
        )
    enc = _looks_utf16(data)
    if enc is not None:
        try:
            text = data.decode(enc).lstrip("\ufeff")
        except UnicodeDecodeError:
            raise col.fail("looks like UTF-16 text but does not decode") from None
        if "-----BEGIN " not in text:
            raise col.fail("UTF-16 text without a PEM block (-----BEGIN …-----)")
        data = text.encode("utf-8")
        col.fmt("utf-16")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    found = 0
    if is_der(data) or is_pkcs12(data):
        if not _load_der(col, data, password=password):
            raise col.fail("DER data that is neither a certificate, PKCS#7, PKCS#12 nor a CSR")
        found = 1
    elif _looks_like_mail(data):
        found = _load_mail(col, data, password=password)
    else:
        found = _load_pem_blocks(col, data, password=password)
        if found and (
            b"\xe3\x81" in data or b"\x1b$B" in data or re.search(rb"[\x81-\x9f][\x40-\xfc]", data)
        ):
            col.fmt("mail")
    if not found:
        if data[:1] == b"\x30":
            raise col.fail("damaged or truncated DER data (the length does not match the file size)")
        raise col.fail(
            "no certificate found: neither a PEM block (-----BEGIN CERTIFICATE-----) nor DER/PKCS#7/PKCS#12 data",
            hint="give a certificate file (PEM, DER, .p7b, .pfx, CSR) or the CA's notification mail",
        )
    return Bundle(
        source=source,
        certificates=tuple(unique(col.certs)),
        private_key=col.key,
        csrs=tuple(col.csrs),
        formats=tuple(col.formats),
    )
