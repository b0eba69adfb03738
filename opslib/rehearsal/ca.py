"""The rehearsal CA: ``opslib rehearse issue CSR --out MAIL`` issues a certificate for a request.

A rehearsal host writes its CA (the issuing intermediate's certificate and key, the CA certificates the
mail carries, the chain shape) into its working folder as ``rehearsal-ca.json`` (:func:`write_ca`), so that
a later ``opslib rehearse issue --workdir DIR`` — another process — signs with the very CA the host's
stores trust. Asked for another chain shape than the host's (``--chain``), or without a working folder,
it makes a fresh rehearsal PKI of that shape: the host does not trust it, which rehearses a CA whose
chain changed (the kit then refuses at step 1, before anything changes).

The certificate: the request's subject and public key; the request's DNS names, or its common name when
it carries none (a 2003 request has no subjectAltName; public CAs add the name — CA/Browser Forum Baseline
Requirements 7.1.2.7.12, the subjectAltName is required); issued by the CA's intermediate with SHA-256,
for 200 days (SC-081, from 15 March 2026). The mail: as the CA sends it, Japanese by default (the body
as an operator saves it, Shift_JIS — like the scenarios' ``2026cert.txt``), or English.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..errors import UsageError
from .pki import Pki, make_pki, notification_body, serial_number

CA_FILE = "rehearsal-ca.json"
CHOICES = {"default": "g5", "modern-chain": "modern", "cross-to-older-root": "cross-to-older-root"}
LIFETIME_DAYS = 200


@dataclass(frozen=True)
class Authority:
    kind: str
    issuer: x509.Certificate
    issuer_key: rsa.RSAPrivateKey
    mailed: tuple[x509.Certificate, ...]
    trusted_by_host: bool


def write_ca(workdir: Path, pki: Pki) -> Path:
    """``rehearsal-ca.json`` in ``workdir``: the host's issuing CA (rehearsal keys only)."""
    key = pki.intermediate_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    data = {
        "chain": pki.chain.kind,
        "issuer": pki.pem(pki.intermediate).decode("ascii"),
        "issuer_key": key.decode("ascii"),
        "mailed": [pki.pem(c).decode("ascii") for c in pki.chain.mailed],
    }
    path = workdir / CA_FILE
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    path.chmod(0o600)
    return path


def authority(*, chain: str = "default", workdir: Path | None = None) -> Authority:
    """The CA that signs: the host's from ``workdir`` when it has that chain shape, else a fresh one."""
    kind = CHOICES.get(chain)
    if kind is None:
        raise UsageError(f"--chain: unknown chain {chain!r}", hint="one of " + ", ".join(CHOICES))
    path = workdir / CA_FILE if workdir else None
    if path is not None and path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("chain") == kind:
            key = serialization.load_pem_private_key(data["issuer_key"].encode("ascii"), password=None)
            assert isinstance(key, rsa.RSAPrivateKey)
            return Authority(
                kind,
                x509.load_pem_x509_certificate(data["issuer"].encode("ascii")),
                key,
                tuple(x509.load_pem_x509_certificate(p.encode("ascii")) for p in data["mailed"]),
                trusted_by_host=True,
            )
    pki = make_pki(now_utc=datetime.now(UTC).replace(microsecond=0), chain=kind)
    return Authority(kind, pki.intermediate, pki.intermediate_key, pki.chain.mailed, trusted_by_host=False)


def chain_of(workdir: Path) -> str:
    """The ``--chain`` name of the host's CA in ``workdir`` ("default" when it has none)."""
    path = workdir / CA_FILE
    kind = json.loads(path.read_text(encoding="utf-8")).get("chain") if path.is_file() else "g5"
    return next((name for name, k in CHOICES.items() if k == kind), "default")


def read_csr(data: bytes, *, source: str) -> x509.CertificateSigningRequest:
    try:
        csr = x509.load_pem_x509_csr(data) if b"-----BEGIN" in data else x509.load_der_x509_csr(data)
    except ValueError as exc:
        raise UsageError(f"{source}: not a certificate request (PKCS #10): {exc}") from None
    algorithm, key = csr.signature_hash_algorithm, csr.public_key()
    try:  # cryptography's own check refuses SHA-1, which a 2003 request carries
        assert algorithm is not None and isinstance(key, rsa.RSAPublicKey)
        key.verify(csr.signature, csr.tbs_certrequest_bytes, padding.PKCS1v15(), algorithm)
    except (AssertionError, InvalidSignature):
        raise UsageError(f"{source}: the request's signature does not verify; the CA refuses it") from None
    return csr


def names_of(csr: x509.CertificateSigningRequest) -> list[str]:
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    if names:
        return list(names)
    return [str(a.value) for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]


def issue_certificate(
    csr: x509.CertificateSigningRequest, ca: Authority, *, now_utc: datetime
) -> x509.Certificate:
    names = names_of(csr)
    if not names:
        raise UsageError("the request names no host (no common name, no DNS name); the CA refuses it")
    public = csr.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(ca.issuer.subject)
        .public_key(public)
        .serial_number(serial_number("issued|" + names[0] + csr.signature.hex()[:16], now_utc))
        .not_valid_before(now_utc - timedelta(minutes=5))
        .not_valid_after(now_utc + timedelta(days=LIFETIME_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)  # type: ignore[arg-type]
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.issuer_key.public_key()), critical=False
        )
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    )
    return builder.sign(ca.issuer_key, hashes.SHA256())


def mail(leaf: x509.Certificate, ca: Authority, *, lang: str = "ja") -> bytes:
    """The CA's notification mail for ``leaf`` as an operator saves it (ja: Shift_JIS, CRLF)."""
    p7 = pkcs7.serialize_certificates([leaf, *ca.mailed], serialization.Encoding.PEM).decode("ascii")
    cn = names_of_cert(leaf)
    if lang == "ja":
        return notification_body(leaf, p7, cn).replace("\n", "\r\n").encode("shift_jis")
    if lang != "en":
        raise UsageError(f"--lang: unknown language {lang!r}", hint="ja or en")
    pem = leaf.public_bytes(serialization.Encoding.PEM).decode("ascii").strip()
    text = (
        "Dear customer,\n\nYour server certificate has been issued.\n\n"
        f"Common name: {cn}\n"
        f"Valid: {leaf.not_valid_before_utc:%Y-%m-%d} to {leaf.not_valid_after_utc:%Y-%m-%d}\n"
        f"Serial number: {leaf.serial_number:x}\n\n"
        "[Server certificate]\n"
        f"{pem}\n\n"
        "[Server certificate and intermediate CA certificates (PKCS#7)]\n"
        f"{p7.strip()}\n\n--\nRehearsal CA issuance centre\nsupport@ca.rehearsal.example\n"
    )
    return text.replace("\n", "\r\n").encode("ascii")


def names_of_cert(cert: x509.Certificate) -> str:
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else ""


@dataclass(frozen=True)
class Issued:
    certificate: x509.Certificate
    mail: bytes
    authority: Authority


def issue(
    csr_data: bytes,
    *,
    source: str = "CSR",
    chain: str = "default",
    lang: str = "ja",
    workdir: Path | None = None,
    now_utc: datetime | None = None,
) -> Issued:
    """Issue a certificate for the request in ``csr_data`` and write nothing: the caller saves ``.mail``."""
    csr = read_csr(csr_data, source=source)
    ca = authority(chain=chain, workdir=workdir)
    cert = issue_certificate(csr, ca, now_utc=(now_utc or datetime.now(UTC)).replace(microsecond=0))
    return Issued(cert, mail(cert, ca, lang=lang), ca)
