"""A test PKI that looks like the one the seed's CA runs, made with `cryptography`.

Used by the tests and by the rehearsal host. Everything is a *rehearsal copy*: the roots carry
"(Rehearsal)" in their names and have their own keys, so nothing here can be mistaken for the real
VeriSign roots that ship in ``opslib/data/`` (the catalogue).

Shape (as the CA's IIS 6 renewal article, DigiCert Japan SO23586, describes it; docs/windows-behaviour.md W-SCHANNEL-CHAIN)::

    old_root (Class 3 PCA, self-signed) ──signs──> cross (subject/key of G5)
    g5_root (G5, self-signed)            ─┐          │ (same subject and key)
                                          └──signs──> intermediate ──signs──> current_leaf, new_leaf, broken leaves

Other chain shapes (``make_pki(chain=...)``, :data:`CHAINS`), the ones operators meet now; the
leaves are always issued by ``Pki.intermediate`` and :attr:`Pki.chain` says what the CA supplies and
what the server's stores hold::

    "g5"                   the shape above (default; unchanged)
    "modern"               modern_root (self-signed, "Global Root G2"-like) ──> intermediate ──> new_leaf (and
                           the broken leaves); no cross certificate, no G5 anywhere. current_leaf comes from
                           the previous intermediate (chain.previous_intermediate), the only one the server holds
    "cross-to-older-root"  newer_root (self-signed; absent from the server)
                           older_root ──signs──> cross (subject/key of newer_root) ; newer_root ──> intermediate ──> leaves;
                           the server trusts only older_root, the path runs through the cross certificate
    "expired-cross"        the G5 shape, but the only cross certificate (old_root → G5) has expired, as the
                           real one did on 2021-11-07 (Pki.cross is that expired certificate)

RSA keys are cached in-process per label (``functools.lru_cache``), so a test suite that calls
:func:`make_pki` many times generates only a dozen keys in all.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.header import Header
from email.utils import format_datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

OLD_ROOT_CN = "Class 3 Public Primary Certification Authority (Rehearsal)"
# The real root's CN (60 characters, within RFC 5280's bound of 64); the O and OU mark it as a rehearsal copy.
G5_CN = "VeriSign Class 3 Public Primary Certification Authority - G5"
INTERMEDIATE_CN = "Rehearsal Secure Server CA - G4"

DAY = timedelta(days=1)

CHAINS = ("g5", "modern", "cross-to-older-root", "expired-cross")
MODERN_ROOT_CN = "Rehearsal Global Root G2"
OLDER_ROOT_CN = "Rehearsal Legacy Certificate Services"
NEWER_ROOT_CN = "Rehearsal Modern Root R2"


@dataclass(frozen=True)
class ChainShape:
    """One CA chain shape: what the CA supplies and what the server holds before the renewal."""

    kind: str  # one of CHAINS
    supplied: tuple[x509.Certificate, ...]  # the CA certificates the CA hands over (issuing CA first)
    mailed: tuple[x509.Certificate, ...]  # the CA certificates inside the mail's PKCS#7
    server_roots: tuple[x509.Certificate, ...]  # enabled in the server's Trusted Root store
    roots_to_disable: tuple[x509.Certificate, ...]  # forbidden roots, enabled in Trusted Root at the start
    server_cas: tuple[x509.Certificate, ...]  # in the server's Intermediate CA store
    client_roots: tuple[x509.Certificate, ...]  # trust anchors of an outside TLS check
    absent_roots: tuple[x509.Certificate, ...] = ()  # roots of the CA's hierarchy the server lacks
    cross: x509.Certificate | None = None  # the cross certificate of the shape, if any
    real_g5_in_authroot: bool = False  # the catalogue's real G5 also sits in AuthRoot
    previous_intermediate: x509.Certificate | None = None  # issued current_leaf, when not Pki.intermediate


@functools.cache
def rsa_key(label: str, key_size: int = 2048) -> rsa.RSAPrivateKey:
    """The RSA key for ``label`` (generated once per process, then reused)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=key_size)


def serial_number(label: str, now_utc: datetime) -> int:
    # Deterministic for a given label and clock; positive, 127 bits (RFC 5280: at most 20 octets).
    digest = hashlib.sha256(f"{label}|{now_utc.isoformat()}".encode()).digest()
    return int.from_bytes(digest[:16], "big") >> 1 or 1


def _name(*pairs: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in pairs])


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _der(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(content)) + content


# AlgorithmIdentifier OIDs (RFC 8017 appendix C): sha256WithRSAEncryption / sha1WithRSAEncryption
_SHA256_RSA_OID = bytes.fromhex("06092a864886f70d01010b")
_SHA1_RSA_OID = bytes.fromhex("06092a864886f70d010105")


def _resign_sha1(cert: x509.Certificate, issuer_key: rsa.RSAPrivateKey) -> x509.Certificate:
    """The same certificate signed with sha1WithRSAEncryption.

    cryptography (≥ 45) refuses to *make* SHA-1 signatures in certificates, so the TBS part is taken
    from a SHA-256 certificate, its signature algorithm OID swapped, and signed with RSA PKCS#1 v1.5 + SHA-1.
    """
    tbs = cert.tbs_certificate_bytes
    if tbs.count(_SHA256_RSA_OID) != 1:
        raise ValueError("unexpected TBS layout")
    tbs = tbs.replace(_SHA256_RSA_OID, _SHA1_RSA_OID)
    signature = issuer_key.sign(tbs, padding.PKCS1v15(), hashes.SHA1())
    alg = _der(0x30, _SHA1_RSA_OID + b"\x05\x00")
    der = _der(0x30, tbs + alg + _der(0x03, b"\x00" + signature))
    return x509.load_der_x509_certificate(der)


def _ski(key: rsa.RSAPrivateKey) -> x509.SubjectKeyIdentifier:
    return x509.SubjectKeyIdentifier.from_public_key(key.public_key())


def _aki(issuer_key: rsa.RSAPrivateKey) -> x509.AuthorityKeyIdentifier:
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(_ski(issuer_key))


def _ca_cert(
    *,
    subject: x509.Name,
    issuer: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer_key: rsa.RSAPrivateKey,
    not_before_utc: datetime,
    not_after_utc: datetime,
    serial: int,
    path_length: int | None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before_utc)
        .not_valid_after(not_after_utc)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(_ski(key), critical=False)
    )
    if issuer_key is not key:
        builder = builder.add_extension(_aki(issuer_key), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _leaf_subject(common_name: str) -> x509.Name:
    return _name(
        (NameOID.COUNTRY_NAME, "JP"),
        (NameOID.STATE_OR_PROVINCE_NAME, "Tokyo"),
        (NameOID.LOCALITY_NAME, "Chiyoda-ku"),
        (NameOID.ORGANIZATION_NAME, "Example K.K."),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "Web Operations"),
        (NameOID.COMMON_NAME, common_name),
    )


def make_leaf(
    *,
    common_name: str,
    sans: Sequence[str] | None,
    key: rsa.RSAPrivateKey,
    issuer: x509.Name | None,
    issuer_key: rsa.RSAPrivateKey | None,
    not_before_utc: datetime,
    not_after_utc: datetime,
    serial: int,
    algorithm: hashes.HashAlgorithm | None = None,
) -> x509.Certificate:
    subject = _leaf_subject(common_name)
    signer = issuer_key or key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer or subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(not_before_utc)
        .not_valid_after(not_after_utc)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(_ski(key), critical=False)
    )
    if issuer_key is not None:
        builder = builder.add_extension(_aki(issuer_key), critical=False)
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), critical=False
        )
    signed = builder.sign(signer, hashes.SHA256())
    return _resign_sha1(signed, signer) if isinstance(algorithm, hashes.SHA1) else signed


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Pki:
    """Every certificate and key of one rehearsal PKI (see the module docstring for its shape)."""

    now_utc: datetime
    hostnames: tuple[str, ...]
    old_root: x509.Certificate
    old_root_key: rsa.RSAPrivateKey
    g5_root: x509.Certificate
    g5_key: rsa.RSAPrivateKey
    cross: x509.Certificate
    intermediate: x509.Certificate
    intermediate_key: rsa.RSAPrivateKey
    current_leaf: x509.Certificate
    current_key: rsa.RSAPrivateKey
    new_leaf: x509.Certificate
    new_key: rsa.RSAPrivateKey
    expired: x509.Certificate
    not_yet_valid: x509.Certificate
    wrong_host: x509.Certificate
    sha1_signed: x509.Certificate
    weak_key: x509.Certificate
    self_signed_leaf: x509.Certificate
    no_san: x509.Certificate
    broken_key: rsa.RSAPrivateKey  # the key of expired / not_yet_valid / wrong_host / sha1_signed / no_san
    weak_private_key: rsa.RSAPrivateKey  # 1024-bit key of ``weak_key``
    self_signed_key: rsa.RSAPrivateKey
    chain: ChainShape

    # --- encodings -------------------------------------------------------------------------------

    @staticmethod
    def pem(*certs: x509.Certificate) -> bytes:
        """PEM of the given certificates, concatenated (LF line ends)."""
        return b"".join(_pem(c) for c in certs)

    @staticmethod
    def der(cert: x509.Certificate) -> bytes:
        return cert.public_bytes(serialization.Encoding.DER)

    @staticmethod
    def key_pem(key: rsa.RSAPrivateKey) -> bytes:
        """Unencrypted PKCS#8 PEM of a private key."""
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    @property
    def roots_pem(self) -> bytes:
        """Both rehearsal roots as a CA file (trust anchors for a TLS check of the rehearsal)."""
        return self.pem(self.g5_root, self.old_root)

    @property
    def forbidden_thumbprints(self) -> tuple[str, ...]:
        """SHA-1 (Windows form) of the rehearsal G5 root: pass it as an extra forbidden root."""
        return (self.g5_root.fingerprint(hashes.SHA1()).hex().upper(),)

    def pkcs7_bundle(self, *certs: x509.Certificate, encoding: str = "PEM") -> bytes:
        """A PKCS#7 (certs-only) bundle; default new_leaf + intermediate, as the CA mails it."""
        chosen = list(certs) or [self.new_leaf, *self.chain.mailed]
        enc = serialization.Encoding.PEM if encoding.upper() == "PEM" else serialization.Encoding.DER
        return pkcs7.serialize_certificates(chosen, enc)

    def pkcs12_bundle(
        self,
        password: bytes | None,
        *,
        key: rsa.RSAPrivateKey | None = None,
        cert: x509.Certificate | None = None,
        cas: Sequence[x509.Certificate] | None = None,
        friendly_name: bytes | None = b"www1.example.jp",
        legacy: bool = False,
    ) -> bytes:
        """A PFX as Windows would export it: key + leaf + chain (default new_key/new_leaf/intermediate+cross).

        ``legacy=True`` uses pbeWithSHAAnd3-KeyTripleDES-CBC (what 2003/2012 certutil writes);
        otherwise AES-256 + PBKDF2 (what Windows Server 2019+ writes with AES256-SHA256).
        """
        chain = list(cas) if cas is not None else list(self.chain.supplied)
        if password is None:
            enc: Any = serialization.NoEncryption()
        elif legacy:
            enc = (
                serialization.PrivateFormat.PKCS12.encryption_builder()
                .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
                .hmac_hash(hashes.SHA1())
                .build(password)
            )
        else:
            enc = serialization.BestAvailableEncryption(password)
        return pkcs12.serialize_key_and_certificates(
            friendly_name, key or self.new_key, cert or self.new_leaf, chain, enc
        )

    # --- what Windows and the CA hand over -------------------------------------------------------

    def request_placeholder(self) -> x509.Certificate:
        """The self-signed dummy certificate Windows keeps in the REQUEST store for the pending request.

        xenroll/CertEnroll create it with the requested subject and the new key pair; accepting the CA's
        response matches it by public key (docs/windows-behaviour.md W-CERTREQ-ACCEPT).
        """
        subject = _leaf_subject(self.hostnames[0])
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.new_key.public_key())
            .serial_number(serial_number("request-placeholder", self.now_utc))
            .not_valid_before(self.now_utc - 3 * DAY)
            .not_valid_after(self.now_utc + 362 * DAY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=False)
            .sign(self.new_key, hashes.SHA256())
        )

    def csr(self) -> x509.CertificateSigningRequest:
        """The certificate signing request sent to the CA (subject + SANs, signed with new_key)."""
        return (
            x509.CertificateSigningRequestBuilder()
            .subject_name(_leaf_subject(self.hostnames[0]))
            .add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in self.hostnames]), critical=False
            )
            .sign(self.new_key, hashes.SHA256())
        )

    def notification_text(self) -> str:
        """The Japanese body of the CA's issuance mail (サーバID発行通知), PEM and PKCS#7 inside."""
        return notification_body(self.new_leaf, self.pkcs7_bundle().decode("ascii"), self.hostnames[0])

    def notification_mail(self, *, charset: str = "iso-2022-jp", as_eml: bool = False) -> bytes:
        """The CA's notification mail.

        ``as_eml=False``: the body as an operator pastes/saves it, encoded in ``charset`` (CRLF lines).
        ``as_eml=True``: a whole RFC 5322 message as a mail client saves it (``.eml``):
        ISO-2022-JP → single text/plain part, 7bit; Shift_JIS → single text/plain part, 8bit;
        UTF-8 → multipart/mixed with a base64 text/plain part and the PKCS#7 (DER) as an attachment.
        """
        cs = charset.lower().replace("_", "-")
        codec = {"iso-2022-jp": "iso2022_jp", "shift-jis": "shift_jis", "utf-8": "utf-8"}.get(cs)
        if codec is None:
            raise ValueError(f"unsupported charset {charset!r} (iso-2022-jp, shift_jis, utf-8)")
        text = self.notification_text()
        body = text.replace("\n", "\r\n").encode(codec)
        if not as_eml:
            return body
        label = {"iso-2022-jp": "ISO-2022-JP", "shift-jis": "Shift_JIS", "utf-8": "UTF-8"}[cs]
        subject = Header(f"【サーバID発行のお知らせ】{self.hostnames[0]}", label).encode()
        sender = Header("リハーサル認証局", label).encode()
        headers = [
            "Return-Path: <support@ca.rehearsal.example>",
            f"From: {sender} <support@ca.rehearsal.example>",
            "To: webmaster@example.jp",
            f"Subject: {subject}",
            f"Date: {format_datetime(self.now_utc)}",
            f"Message-ID: <{serial_number('mail', self.now_utc):x}@ca.rehearsal.example>",
            "MIME-Version: 1.0",
        ]
        if cs == "utf-8":
            import base64

            boundary = f"=_rehearsal_{serial_number('boundary', self.now_utc):x}"
            b64 = base64.encodebytes(body).decode("ascii").replace("\n", "\r\n")
            p7 = base64.encodebytes(self.pkcs7_bundle(encoding="DER")).decode("ascii").replace("\n", "\r\n")
            headers.append(f'Content-Type: multipart/mixed; boundary="{boundary}"')
            parts = [
                "This is a multi-part message in MIME format.",
                f"--{boundary}",
                'Content-Type: text/plain; charset="UTF-8"',
                "Content-Transfer-Encoding: base64",
                "",
                b64,
                f"--{boundary}",
                f'Content-Type: application/pkcs7-mime; name="{self.hostnames[0]}.p7b"',
                "Content-Transfer-Encoding: base64",
                f'Content-Disposition: attachment; filename="{self.hostnames[0]}.p7b"',
                "",
                p7,
                f"--{boundary}--",
                "",
            ]
            return ("\r\n".join(headers) + "\r\n\r\n" + "\r\n".join(parts)).encode("ascii")
        cte = "7bit" if cs == "iso-2022-jp" else "8bit"
        headers += [f'Content-Type: text/plain; charset="{label}"', f"Content-Transfer-Encoding: {cte}"]
        return ("\r\n".join(headers) + "\r\n\r\n").encode("ascii") + body


def notification_body(leaf: x509.Certificate, pkcs7_pem: str, common_name: str) -> str:
    """The Japanese body of a CA's issuance mail (サーバID発行通知) for ``leaf``, PEM and PKCS#7 inside."""
    nb = leaf.not_valid_before_utc.strftime("%Y/%m/%d")
    na = leaf.not_valid_after_utc.strftime("%Y/%m/%d")
    p7 = pkcs7_pem.strip()
    cert = _pem(leaf).decode("ascii").strip()
    return (
        "株式会社サンプル\n"
        "ウェブ運用部 ご担当者様\n"
        "\n"
        "この度はサーバIDをお申し込みいただき、誠にありがとうございます。\n"
        "お申し込みいただいたサーバIDを発行いたしましたので、お知らせいたします。\n"
        "\n"
        "────────────────────────────────\n"
        f"■コモンネーム　　：{common_name}\n"
        f"■有効期間　　　　：{nb} 〜 {na}\n"
        f"■シリアル番号　　：{leaf.serial_number:x}\n"
        "────────────────────────────────\n"
        "\n"
        "【サーバID】\n"
        "以下の (-----BEGIN CERTIFICATE-----) から (-----END CERTIFICATE-----) までを\n"
        "コピーし、テキストエディタに貼り付けて保存してください。\n"
        "\n"
        f"{cert}\n"
        "\n"
        "【サーバIDと中間CA証明書 (PKCS#7形式)】\n"
        "Microsoft IIS をご利用の場合は、以下のPKCS#7形式をインストールすると\n"
        "中間CA証明書も同時にインストールされます。\n"
        "\n"
        f"{p7}\n"
        "\n"
        "ご不明な点は、サポートセンターまでお問い合わせください。\n"
        "\n"
        "--\n"
        "リハーサル認証局 サーバID発行センター\n"
        "support@ca.rehearsal.example\n"
    )


def make_pki(
    *,
    now_utc: datetime,
    hostnames: Sequence[str] = ("www1.example.jp",),
    key_size: int = 2048,
    chain: str = "g5",
    current_days_left: int = 10,
    leaf_tag: str = "",
) -> Pki:
    """Build (or return the cached) rehearsal PKI for this clock, these host names and chain shape.

    ``current_days_left``: the certificate served today expires that many days after the clock (a
    rehearsal fleet gives each host its own expiry); ``leaf_tag`` goes into the server certificates' serial
    numbers, so that each host of a fleet has certificates of its own (same keys, other certificates)."""
    if now_utc.tzinfo is None:
        raise ValueError("now_utc must be timezone-aware (UTC)")
    if not hostnames:
        raise ValueError("at least one host name is needed")
    if chain not in CHAINS:
        raise ValueError(f"unknown chain shape {chain!r}; known: {', '.join(CHAINS)}")
    return _make_pki(now_utc, tuple(hostnames), key_size, chain, current_days_left, leaf_tag)


def _root_name(cn: str, org: str) -> x509.Name:
    return _name(
        (NameOID.COUNTRY_NAME, "US"),
        (NameOID.ORGANIZATION_NAME, f"{org} (Rehearsal copy)"),
        (NameOID.COMMON_NAME, cn),
    )


def _self_signed_root(
    label: str, name: x509.Name, now: datetime, key_size: int, years_back: int
) -> x509.Certificate:
    key = rsa_key(label, key_size)
    return _ca_cert(
        subject=name,
        issuer=name,
        key=key,
        issuer_key=key,
        not_before_utc=now - 365 * years_back * DAY,
        not_after_utc=now + 3650 * DAY,
        serial=serial_number(label, now),
        path_length=None,
    )


@functools.lru_cache(maxsize=64)
def _make_pki(
    now_utc: datetime,
    hostnames: tuple[str, ...],
    key_size: int,
    chain: str = "g5",
    current_days_left: int = 10,
    leaf_tag: str = "",
) -> Pki:
    now = now_utc.replace(microsecond=0)

    def serial(label: str) -> int:
        return serial_number(label, now)

    old_root_key = rsa_key("old_root", key_size)
    g5_key = rsa_key("g5_root", key_size)
    intermediate_key = rsa_key("intermediate", key_size)
    current_key = rsa_key("current", key_size)
    new_key = rsa_key("new", key_size)
    broken_key = rsa_key("broken", key_size)
    self_signed_key = rsa_key("self_signed", key_size)
    weak_private_key = rsa_key("weak", 1024)

    old_root_name = _name(
        (NameOID.COUNTRY_NAME, "US"),
        (NameOID.ORGANIZATION_NAME, "VeriSign, Inc. (Rehearsal copy)"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "Class 3 Public Primary Certification Authority"),
        (NameOID.COMMON_NAME, OLD_ROOT_CN),
    )
    g5_name = _name(
        (NameOID.COUNTRY_NAME, "US"),
        (NameOID.ORGANIZATION_NAME, "VeriSign, Inc. (Rehearsal copy)"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "VeriSign Trust Network"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "(c) 2006 VeriSign, Inc. - For authorized use only (Rehearsal)"),
        (NameOID.COMMON_NAME, G5_CN),
    )
    intermediate_name = _name(
        (NameOID.COUNTRY_NAME, "US"),
        (NameOID.ORGANIZATION_NAME, "Rehearsal Corporation"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "Rehearsal Trust Network"),
        (NameOID.COMMON_NAME, INTERMEDIATE_CN),
    )

    old_root = _ca_cert(
        subject=old_root_name,
        issuer=old_root_name,
        key=old_root_key,
        issuer_key=old_root_key,
        not_before_utc=now - 7300 * DAY,
        not_after_utc=now + 3650 * DAY,
        serial=serial("old_root"),
        path_length=None,
    )
    g5_root = _ca_cert(
        subject=g5_name,
        issuer=g5_name,
        key=g5_key,
        issuer_key=g5_key,
        not_before_utc=now - 3650 * DAY,
        not_after_utc=now + 3650 * DAY,
        serial=serial("g5_root"),
        path_length=None,
    )
    cross = _ca_cert(
        subject=g5_name,
        issuer=old_root_name,
        key=g5_key,
        issuer_key=old_root_key,
        not_before_utc=now - 3650 * DAY,
        not_after_utc=now + 1825 * DAY,
        serial=serial("cross"),
        path_length=None,
    )
    intermediate = _ca_cert(
        subject=intermediate_name,
        issuer=g5_name,
        key=intermediate_key,
        issuer_key=g5_key,
        not_before_utc=now - 1825 * DAY,
        not_after_utc=now + 1825 * DAY,
        serial=serial("intermediate"),
        path_length=0,
    )
    current_issuer: tuple[x509.Name, rsa.RSAPrivateKey] | None = None  # None: Pki.intermediate
    shape = ChainShape(
        kind="g5",
        supplied=(intermediate, cross),
        mailed=(intermediate,),
        server_roots=(old_root,),
        roots_to_disable=(g5_root,),
        server_cas=(intermediate, cross),
        client_roots=(old_root, g5_root),
        cross=cross,
        real_g5_in_authroot=True,
    )
    if chain == "expired-cross":
        # The real G5 cross certificate from the Class 3 PCA expired on 2021-11-07: here it expired
        # 30 days before the clock, and no other cross certificate exists.
        cross = _ca_cert(
            subject=g5_name,
            issuer=old_root_name,
            key=g5_key,
            issuer_key=old_root_key,
            not_before_utc=now - 3650 * DAY,
            not_after_utc=now - 30 * DAY,
            serial=serial("expired-cross"),
            path_length=None,
        )
        shape = ChainShape(
            kind=chain,
            supplied=(intermediate,),  # the CA has no valid cross certificate left to supply
            mailed=(intermediate,),
            server_roots=(old_root,),
            roots_to_disable=(g5_root,),
            server_cas=(intermediate, cross),
            client_roots=(old_root, g5_root),
            cross=cross,
            real_g5_in_authroot=True,
        )
    elif chain == "modern":
        modern_root = _self_signed_root(
            "modern_root", _root_name(MODERN_ROOT_CN, "Rehearsal Global Trust"), now, key_size, 12
        )

        def modern_ca(label: str, cn: str, years_back: int) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
            key = rsa_key(label, key_size)
            cert = _ca_cert(
                subject=_name(
                    (NameOID.COUNTRY_NAME, "US"),
                    (NameOID.ORGANIZATION_NAME, "Rehearsal Global Trust (Rehearsal copy)"),
                    (NameOID.COMMON_NAME, cn),
                ),
                issuer=modern_root.subject,
                key=key,
                issuer_key=rsa_key("modern_root", key_size),
                not_before_utc=now - 365 * years_back * DAY,
                not_after_utc=now + 3650 * DAY,
                serial=serial(label),
                path_length=0,
            )
            return cert, key

        # CAs rotate issuing intermediates: last year's certificate (current_leaf) came from the previous
        # one, which the server holds; the renewal comes from a new one the server has never seen.
        previous, previous_key = modern_ca(
            "modern_previous_ca", "Rehearsal Global G2 TLS RSA SHA256 2020 CA1", 5
        )
        intermediate, intermediate_key = modern_ca(
            "modern_ca", "Rehearsal Global G2 TLS RSA SHA256 2025 CA2", 1
        )
        intermediate_name = intermediate.subject
        current_issuer = (previous.subject, previous_key)
        shape = ChainShape(
            kind=chain,
            supplied=(intermediate,),
            mailed=(intermediate,),
            server_roots=(modern_root,),
            roots_to_disable=(),
            server_cas=(previous,),
            client_roots=(modern_root,),
            previous_intermediate=previous,
        )
    elif chain == "cross-to-older-root":
        older_root = _self_signed_root(
            "older_root", _root_name(OLDER_ROOT_CN, "Rehearsal Legacy Trust"), now, key_size, 20
        )
        newer_key = rsa_key("newer_root", key_size)
        newer_root = _self_signed_root(
            "newer_root", _root_name(NEWER_ROOT_CN, "Rehearsal Modern Trust"), now, key_size, 5
        )
        newer_cross = _ca_cert(
            subject=newer_root.subject,
            issuer=older_root.subject,
            key=newer_key,
            issuer_key=rsa_key("older_root", key_size),
            not_before_utc=now - 1825 * DAY,
            not_after_utc=now + 1825 * DAY,
            serial=serial("newer_cross"),
            path_length=None,
        )
        intermediate_key = rsa_key("newer_intermediate", key_size)
        intermediate_name = _name(
            (NameOID.COUNTRY_NAME, "US"),
            (NameOID.ORGANIZATION_NAME, "Rehearsal Modern Trust (Rehearsal copy)"),
            (NameOID.COMMON_NAME, "Rehearsal Modern RSA Domain Validation CA R3"),
        )
        intermediate = _ca_cert(
            subject=intermediate_name,
            issuer=newer_root.subject,
            key=intermediate_key,
            issuer_key=newer_key,
            not_before_utc=now - 1825 * DAY,
            not_after_utc=now + 1825 * DAY,
            serial=serial("newer_intermediate"),
            path_length=0,
        )
        cross = newer_cross
        shape = ChainShape(
            kind=chain,
            supplied=(intermediate, newer_cross),
            mailed=(intermediate, newer_cross),
            server_roots=(older_root,),
            roots_to_disable=(),
            server_cas=(intermediate, newer_cross),
            client_roots=(older_root,),
            absent_roots=(newer_root,),
            cross=newer_cross,
        )
    current_issuer = current_issuer or (intermediate_name, intermediate_key)
    host = hostnames[0]

    def issued(label: str, **kw: Any) -> x509.Certificate:
        args: dict[str, Any] = {
            "common_name": host,
            "sans": hostnames,
            "key": broken_key,
            "issuer": intermediate_name,
            "issuer_key": intermediate_key,
            "not_before_utc": now - DAY,
            "not_after_utc": now + 364 * DAY,
            "serial": serial(label + leaf_tag),
        }
        args.update(kw)
        return make_leaf(**args)

    return Pki(
        now_utc=now_utc,
        hostnames=hostnames,
        old_root=old_root,
        old_root_key=old_root_key,
        g5_root=g5_root,
        g5_key=g5_key,
        cross=cross,
        intermediate=intermediate,
        intermediate_key=intermediate_key,
        current_leaf=issued(
            "current",
            key=current_key,
            issuer=current_issuer[0],
            issuer_key=current_issuer[1],
            not_before_utc=now - 355 * DAY,
            not_after_utc=now + current_days_left * DAY,
        ),
        current_key=current_key,
        new_leaf=issued("new", key=new_key, not_before_utc=now - DAY, not_after_utc=now + 365 * DAY),
        new_key=new_key,
        expired=issued("expired", not_before_utc=now - 400 * DAY, not_after_utc=now - 35 * DAY),
        not_yet_valid=issued("not_yet_valid", not_before_utc=now + 5 * DAY, not_after_utc=now + 370 * DAY),
        wrong_host=issued("wrong_host", common_name="other.example.com", sans=["other.example.com"]),
        sha1_signed=issued("sha1_signed", algorithm=hashes.SHA1()),
        weak_key=issued("weak_key", key=weak_private_key),
        self_signed_leaf=issued("self_signed", key=self_signed_key, issuer=None, issuer_key=None),
        no_san=issued("no_san", sans=None),
        broken_key=broken_key,
        weak_private_key=weak_private_key,
        self_signed_key=self_signed_key,
        chain=shape,
    )
