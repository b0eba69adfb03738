"""opslib.certs: loaders, summaries, chains (cross certificates), key and host-name match, warnings,
the shipped catalogue of real VeriSign certificates, and the PFX check of the backup step."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from opslib import certs
from opslib.errors import CertificateError
from opslib.rehearsal.pki import Pki, make_pki

NOW = datetime(2026, 11, 26, 19, 45, tzinfo=UTC)
FIXTURES = Path(__file__).parent / "fixtures"
G5_SHA1 = "4EB6D578499B1CCF5F581EAD56BE3D9B6744A5E5"
CROSS_SHA1 = "32F30882622B87CF8856C63DB873DF0853B4DD27"


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki(now_utc=NOW)


def codes(findings: list[certs.Finding]) -> list[str]:
    return [f.code for f in findings]


def load(data: bytes, name: str = "src", **kw: object) -> certs.Bundle:
    return certs.load_certificates(data, source=name, **kw)  # type: ignore[arg-type]


# --- loaders -------------------------------------------------------------------------------------


def test_load_pem_single(pki: Pki) -> None:
    b = load(pki.pem(pki.new_leaf))
    assert b.certificates == (pki.new_leaf,)
    assert b.leaf == pki.new_leaf
    assert b.formats == ("pem",)


def test_load_pem_many_with_crlf_bom_and_junk(pki: Pki) -> None:
    text = pki.pem(pki.new_leaf, pki.intermediate).replace(b"\n", b"\r\n")
    data = b"\xef\xbb\xbfSubject: your certificate\r\n\r\n" + text + b"\r\n-- \r\nregards\r\n"
    b = load(data)
    assert [certs.thumbprint(c) for c in b.certificates] == [
        certs.thumbprint(pki.new_leaf),
        certs.thumbprint(pki.intermediate),
    ]
    assert b.leaf == pki.new_leaf and b.others == (pki.intermediate,)


def test_load_pem_indented_as_quoted_in_a_reply(pki: Pki) -> None:
    quoted = b"".join(b"> " + line + b"\n" for line in pki.pem(pki.new_leaf).splitlines())
    assert load(quoted).leaf == pki.new_leaf


def test_load_der_certificate(pki: Pki) -> None:
    b = load(pki.der(pki.new_leaf), "leaf.cer")
    assert b.leaf == pki.new_leaf and b.formats == ("der",)


@pytest.mark.parametrize("encoding", ["PEM", "DER"])
def test_load_pkcs7_bundle(pki: Pki, encoding: str) -> None:
    b = load(pki.pkcs7_bundle(encoding=encoding), "cert.p7b")
    assert set(b.certificates) == {pki.new_leaf, pki.intermediate}
    assert b.leaf == pki.new_leaf
    assert b.formats == ("pkcs7",)


@pytest.mark.parametrize("charset", ["iso-2022-jp", "shift_jis", "utf-8"])
def test_load_notification_mail_pasted_text(pki: Pki, charset: str) -> None:
    data = pki.notification_mail(charset=charset)
    assert "発行".encode({"shift_jis": "shift_jis", "utf-8": "utf-8"}.get(charset, "iso2022_jp")) in data or (
        charset == "iso-2022-jp"
    )
    b = load(data, "2026cert.txt")
    assert b.leaf == pki.new_leaf
    assert set(b.certificates) == {pki.new_leaf, pki.intermediate}  # PEM + PKCS#7, de-duplicated
    assert "mail" in b.formats


@pytest.mark.parametrize("charset", ["iso-2022-jp", "shift_jis", "utf-8"])
def test_load_notification_mail_eml(pki: Pki, charset: str) -> None:
    data = pki.notification_mail(charset=charset, as_eml=True)
    if charset == "utf-8":
        assert b"-----BEGIN CERTIFICATE-----" not in data  # base64 body: only MIME decoding finds it
    b = load(data, "mail.eml")
    assert b.leaf == pki.new_leaf
    assert set(b.certificates) == {pki.new_leaf, pki.intermediate}
    assert "eml" in b.formats


def test_load_utf16_text_holding_pem(pki: Pki) -> None:
    data = (
        pki.pem(pki.new_leaf).decode("ascii").replace("\n", "\r\n").encode("utf-16")
    )  # as Notepad saves "Unicode"
    b = load(data, "unicode.txt")
    assert b.leaf == pki.new_leaf and "utf-16" in b.formats


def test_load_csr_pem_and_der_and_certreq_label(pki: Pki) -> None:
    csr = pki.csr()
    pem = csr.public_bytes(serialization.Encoding.PEM)
    assert load(pem).csrs == (csr,)
    assert load(csr.public_bytes(serialization.Encoding.DER)).csrs == (csr,)
    certreq = pem.replace(b"CERTIFICATE REQUEST", b"NEW CERTIFICATE REQUEST")  # what certreq -new writes
    assert load(certreq).csrs[0].public_key().public_numbers() == csr.public_key().public_numbers()


def test_load_pkcs12_with_password(pki: Pki) -> None:
    b = load(pki.pkcs12_bundle(b"Backup-Pa55"), "backup.pfx", password=b"Backup-Pa55")
    assert b.leaf == pki.new_leaf
    assert certs.key_matches(b.leaf, b.private_key)
    assert set(b.others) == {pki.intermediate, pki.cross}
    assert b.formats == ("pkcs12",)


def test_load_pkcs12_wrong_password(pki: Pki) -> None:
    with pytest.raises(
        CertificateError, match=r"^backup.pfx: could not open the PKCS#12 \(PFX\) file: wrong password"
    ):
        load(pki.pkcs12_bundle(b"Backup-Pa55"), "backup.pfx", password=b"nope")


def test_load_pkcs12_without_password_asks_for_password_env(pki: Pki) -> None:
    with pytest.raises(CertificateError, match=r"password-protected — pass .*--password-env VAR"):
        load(pki.pkcs12_bundle(b"Backup-Pa55"), "backup.pfx")


def test_load_private_key_pem_next_to_certificate(pki: Pki) -> None:
    b = load(pki.pem(pki.new_leaf) + pki.key_pem(pki.new_key))
    assert b.private_key is not None and certs.key_matches(b.private_key, pki.new_leaf)


def test_load_real_g5_root_and_cross_fixture() -> None:
    b = load((FIXTURES / "real_g5_root_and_cross.pem").read_bytes(), "real.pem")
    assert [certs.thumbprint(c) for c in b.certificates] == [G5_SHA1, CROSS_SHA1]
    assert b.leaf is None  # only CA certificates


@pytest.mark.parametrize(
    ("fixture", "message"),
    [
        ("empty.pem", r"empty.pem: the file is empty"),
        ("garbage.bin", r"garbage.bin: no certificate found: neither a PEM block"),
        ("truncated.pem", r"truncated.pem: the PEM block 'CERTIFICATE' starting on line 1 has no END line"),
        ("utf16_no_pem.txt", r"utf16_no_pem.txt: UTF-16 text without a PEM block"),
        ("pkcs7_no_certificates.p7b", r"pkcs7_no_certificates.p7b: the PKCS#7 block holds no certificates"),
    ],
)
def test_load_bad_input_names_source_and_problem(fixture: str, message: str) -> None:
    with pytest.raises(CertificateError, match="^" + message):
        load((FIXTURES / fixture).read_bytes(), fixture)


def test_load_damaged_base64_in_pem(pki: Pki) -> None:
    pem = pki.pem(pki.new_leaf)
    damaged = pem[:200] + b"!!!!" + pem[260:]
    with pytest.raises(CertificateError, match=r"^x.pem: the PEM block 'CERTIFICATE' is damaged"):
        load(damaged, "x.pem")


def test_load_truncated_der(pki: Pki) -> None:
    with pytest.raises(CertificateError, match=r"^cut.cer: damaged or truncated DER data"):
        load(pki.der(pki.new_leaf)[:-40], "cut.cer")


def test_load_prose_quoting_the_pem_markers_is_not_a_block(pki: Pki) -> None:
    prose = "(-----BEGIN CERTIFICATE-----) から (-----END CERTIFICATE-----) までをコピー\n".encode()
    assert load(prose + pki.pem(pki.new_leaf)).certificates == (pki.new_leaf,)


# --- summary -------------------------------------------------------------------------------------


def test_summary_facts(pki: Pki) -> None:
    s = certs.summarize(pki.new_leaf, now_utc=NOW)
    assert s.common_name == "www1.example.jp"
    assert s.thumbprint == pki.new_leaf.fingerprint(hashes.SHA1()).hex().upper()
    assert len(s.thumbprint) == 40 and s.thumbprint.isupper()
    assert len(s.sha256) == 64
    assert s.serial == f"{pki.new_leaf.serial_number:X}"
    assert s.not_after_utc.tzinfo is not None and s.days_left == 365
    assert s.dns_names == ("www1.example.jp",)
    assert (s.key_type, s.key_size) == ("RSA", 2048)
    assert s.signature_algorithm == "sha256WithRSAEncryption"
    assert s.key_usage == ("digital_signature", "key_encipherment")
    assert s.extended_key_usage == ("serverAuth",)
    assert not s.is_ca and not s.self_signed
    assert s.authority_key_id == certs.summarize(pki.intermediate, now_utc=NOW).subject_key_id
    row = s.row()
    assert row["thumbprint"] == s.thumbprint and row["days_left"] == 365


def test_summary_of_root_is_self_signed_ca(pki: Pki) -> None:
    s = certs.summarize(pki.g5_root, now_utc=NOW)
    assert s.is_ca and s.self_signed


# --- catalogue -----------------------------------------------------------------------------------


def test_catalogue_holds_real_g5_root_and_cross() -> None:
    by_sha1 = {e.sha1: e for e in certs.KNOWN.entries}
    g5 = by_sha1[G5_SHA1]
    cross = by_sha1[CROSS_SHA1]
    assert certs.thumbprint(g5.certificate) == G5_SHA1
    assert f"{g5.certificate.serial_number:032x}" == "18dad19e267de8bb4a2158cdcc6b3b4a"
    assert g5.certificate.subject == cross.certificate.subject
    assert certs.key_matches(g5.certificate, cross.certificate)
    assert cross.certificate.issuer != cross.certificate.subject
    assert g5.provenance and cross.provenance
    # The cross certificate is really signed by the old Class 3 root of the catalogue.
    chains = certs.build_chains(cross.certificate, certs.KNOWN.certificates)
    assert (
        chains[0].complete
        and certs.thumbprint(chains[0].path[-1]) == "A1DB6393916F17E4185509400415C70240B0AE6B"
    )


def test_forbidden_root_recognised_by_thumbprint_and_by_subject_and_key(pki: Pki) -> None:
    g5 = certs.KNOWN.by_role("forbidden_root")[0].certificate
    cross = certs.KNOWN.by_role("cross")[0].certificate
    assert certs.is_forbidden_root(g5)
    assert not certs.is_forbidden_root(cross)  # the cross certificate must be sent, not disabled
    assert certs.is_cross_certificate(cross)
    # A re-issued G5 (same subject and key, new serial): recognised by subject + key.
    assert not certs.is_forbidden_root(pki.g5_root)
    assert certs.is_forbidden_root(pki.g5_root, extra_thumbprints=[certs.thumbprint(pki.g5_root).lower()])
    assert certs.summarize(g5).known_as.startswith(
        "VeriSign Class 3 Public Primary Certification Authority - G5"
    )


# --- chains --------------------------------------------------------------------------------------


def test_chains_include_path_through_cross_certificate(pki: Pki) -> None:
    chains = certs.build_chains(pki.new_leaf, [pki.intermediate, pki.cross, pki.g5_root, pki.old_root])
    paths = [c.path for c in chains]
    assert (pki.new_leaf, pki.intermediate, pki.g5_root) in paths
    assert (pki.new_leaf, pki.intermediate, pki.cross, pki.old_root) in paths
    assert all(c.complete for c in chains)
    assert {c.anchor for c in chains} == {pki.g5_root, pki.old_root}


def test_chain_incomplete_names_missing_issuer(pki: Pki) -> None:
    (chain,) = certs.build_chains(pki.new_leaf, [pki.intermediate])
    assert not chain.complete and chain.anchor is None
    assert (
        "issuer not found: CN=VeriSign Class 3 Public Primary Certification Authority - G5" in chain.missing
    )
    assert chain.to_json()["path"] == [certs.thumbprint(pki.new_leaf), certs.thumbprint(pki.intermediate)]


def test_chain_anchor_given_as_trusted(pki: Pki) -> None:
    chains = certs.build_chains(pki.new_leaf, [pki.intermediate], anchors=[pki.g5_root])
    assert chains[0].complete and chains[0].trusted and chains[0].anchor == pki.g5_root


def test_chain_of_sha1_signed_leaf_still_builds(pki: Pki) -> None:
    chains = certs.build_chains(pki.sha1_signed, [pki.intermediate, pki.g5_root])
    assert chains[0].complete


# --- key match -----------------------------------------------------------------------------------


def test_key_match_certificate_private_key(pki: Pki) -> None:
    assert certs.key_matches(pki.new_leaf, pki.new_key)
    assert not certs.key_matches(pki.current_leaf, pki.new_key)


def test_key_match_certificate_csr(pki: Pki) -> None:
    assert certs.key_matches(pki.new_leaf, pki.csr())
    assert not certs.key_matches(pki.current_leaf, pki.csr())


def test_key_match_request_placeholder_certificate(pki: Pki) -> None:
    placeholder = pki.request_placeholder()
    assert certs.is_self_signed(placeholder)
    assert certs.key_matches(pki.new_leaf, placeholder)
    assert not certs.key_matches(pki.wrong_host, placeholder)


# --- host names ----------------------------------------------------------------------------------


def _cert_with(pki: Pki, *, dns: list[str] = [], ips: list[str] = [], cn: str = "x") -> x509.Certificate:  # noqa: B006
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    b = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(pki.intermediate.subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=90))
    )
    if names:
        b = b.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return b.sign(pki.intermediate_key, hashes.SHA256())


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("www1.example.jp", True),
        ("WWW1.Example.JP.", True),
        ("shop.example.jp", True),  # *.example.jp
        ("a.b.example.jp", False),  # a wildcard covers one label only
        ("example.jp", False),
        ("xn--r8jz45g.example.jp", True),  # 例え.example.jp via the wildcard
        ("例え.example.jp", True),  # IDN given as Unicode → A-label
        ("192.0.2.10", True),  # IP SAN
        ("192.0.2.11", False),
        ("other.example.com", False),
    ],
)
def test_hostname_match_san_wildcard_idn_ip(pki: Pki, name: str, expected: bool) -> None:
    cert = _cert_with(pki, dns=["www1.example.jp", "*.example.jp"], ips=["192.0.2.10"], cn="www1.example.jp")
    assert certs.hostname_matches(cert, name) is expected


def test_hostname_wildcard_on_registry_domain_never_matches(pki: Pki) -> None:
    cert = _cert_with(pki, dns=["*.co.jp", "*.com", "w*.example.jp"])
    assert not certs.hostname_matches(cert, "example.co.jp")
    assert not certs.hostname_matches(cert, "example.com")
    assert not certs.hostname_matches(cert, "www.example.jp")  # partial-label wildcards are refused


def test_hostname_cn_only_as_fallback(pki: Pki) -> None:
    m = certs.hostname_match(pki.no_san, "www1.example.jp")
    assert m.matched and m.via == "cn"
    with_san = _cert_with(pki, dns=["a.example.jp"], cn="www1.example.jp")
    assert not certs.hostname_matches(with_san, "www1.example.jp")  # SAN present → CN ignored


# --- warnings (one test per code) ----------------------------------------------------------------


def _warn(pki: Pki, cert: x509.Certificate, **kw: object) -> list[certs.Finding]:
    pool = [pki.intermediate, pki.cross, pki.old_root]
    chains = certs.build_chains(cert, pool, anchors=[pki.g5_root])
    return certs.check_warnings(cert, now_utc=NOW, chains=chains, supplied=pool, **kw)  # type: ignore[arg-type]


def test_warning_none_for_the_new_leaf(pki: Pki) -> None:
    assert _warn(pki, pki.new_leaf, hostnames=["www1.example.jp"]) == []


def test_warning_expired(pki: Pki) -> None:
    (f,) = _warn(pki, pki.expired)
    assert f.code == "expired" and f.message.startswith("www1.example.jp expired on ")
    assert f.certificate == certs.thumbprint(pki.expired)


def test_warning_not_yet_valid(pki: Pki) -> None:
    assert codes(_warn(pki, pki.not_yet_valid)) == ["not_yet_valid"]


def test_warning_expires_soon_threshold_is_a_parameter(pki: Pki) -> None:
    (f,) = _warn(pki, pki.current_leaf)
    assert f.code == "expires_soon" and "expires in 10 days" in f.message
    assert _warn(pki, pki.current_leaf, warn_days=7) == []


def test_warning_sha1_signature(pki: Pki) -> None:
    (f,) = _warn(pki, pki.sha1_signed)
    assert f.code == "sha1_signature" and f.message.endswith("is signed with SHA-1")


def test_warning_weak_key(pki: Pki) -> None:
    (f,) = _warn(pki, pki.weak_key)
    assert f.code == "weak_key" and "RSA 1024-bit key" in f.message


def test_warning_no_san(pki: Pki) -> None:
    assert codes(_warn(pki, pki.no_san)) == ["no_san"]
    assert codes(_warn(pki, pki.no_san, hostnames=["www1.example.jp"])) == ["no_san", "hostname_cn_only"]


def test_warning_hostname_mismatch(pki: Pki) -> None:
    (f,) = _warn(pki, pki.wrong_host, hostnames=["www1.example.jp"])
    assert f.code == "hostname_mismatch"
    assert f.message == "other.example.com does not cover www1.example.jp (it covers: other.example.com)"


def test_warning_chain_incomplete(pki: Pki) -> None:
    findings = certs.check_warnings(
        pki.new_leaf, now_utc=NOW, chains=certs.build_chains(pki.new_leaf, [pki.intermediate])
    )
    (f,) = findings
    assert f.code == "chain_incomplete" and "issuer not found" in f.message


def test_warning_forbidden_root_in_chain(pki: Pki) -> None:
    pool = [pki.intermediate, pki.g5_root]
    chains = certs.build_chains(pki.new_leaf, pool)
    assert certs.check_warnings(pki.new_leaf, now_utc=NOW, chains=chains) == []  # not forbidden unless listed
    (f,) = certs.check_warnings(
        pki.new_leaf, now_utc=NOW, chains=chains, forbidden_roots=pki.forbidden_thumbprints
    )
    assert f.code == "forbidden_root_in_chain" and f.certificate == certs.thumbprint(pki.g5_root)
    assert "disable it in the server's Trusted Root store" in f.message


def test_warning_self_signed_leaf(pki: Pki) -> None:
    assert codes(_warn(pki, pki.self_signed_leaf)) == ["self_signed_leaf"]


def test_every_warning_code_is_documented() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "inspect-json.md").read_text(encoding="utf-8")
    for code in certs.WARNING_CODES:
        assert f"`{code}`" in doc


# --- PFX check (backup step) ---------------------------------------------------------------------


def test_pfx_check_ok_legacy_3des(pki: Pki) -> None:
    check = certs.check_pfx(
        pki.pkcs12_bundle(b"Backup-Pa55", legacy=True),
        "Backup-Pa55",
        source="backup.pfx",
        expected_thumbprint=certs.thumbprint(pki.new_leaf),
        anchors=[pki.g5_root],
    )
    assert check.ok, check.problems
    assert check.key_matches and check.has_intermediate and check.has_cross
    assert check.encryption == ("pbeWithSHAAnd3-KeyTripleDES-CBC",)
    assert check.row()["leaf"] == certs.thumbprint(pki.new_leaf)


def test_pfx_check_reports_the_missing_part_of_the_expected_chain_and_a_wrong_thumbprint(pki: Pki) -> None:
    expected = [certs.thumbprint(c) for c in (pki.new_leaf, pki.intermediate, pki.cross, pki.old_root)]
    data = pki.pkcs12_bundle(b"Backup-Pa55", cas=[pki.intermediate])
    check = certs.check_pfx(
        data,
        b"Backup-Pa55",
        source="backup.pfx",
        expected_thumbprint=certs.thumbprint(pki.current_leaf),
        anchors=[pki.g5_root],
        expected_chain=expected,
    )
    assert not check.ok
    assert f"the expected chain is not inside: missing {certs.thumbprint(pki.cross)}" in "; ".join(
        check.problems
    )
    assert any(p.startswith("the certificate inside is ") for p in check.problems)


def test_pfx_check_needs_a_cross_certificate_only_when_the_path_does(pki: Pki) -> None:
    data = pki.pkcs12_bundle(b"Backup-Pa55", cas=[pki.intermediate])
    # G5 allowed (a modern-like chain: intermediate → trusted root): no cross certificate needed.
    ok = certs.check_pfx(data, b"Backup-Pa55", source="backup.pfx", anchors=[pki.g5_root])
    assert ok.ok and not ok.has_cross, ok.problems
    # Only the old root is trusted: the intermediate alone leads nowhere — the cross certificate is missing.
    bad = certs.check_pfx(data, b"Backup-Pa55", source="backup.pfx", anchors=[pki.old_root])
    assert not bad.ok
    assert "no chain to a trusted, allowed root inside" in bad.problems[0]
    assert "VeriSign Class 3 Public Primary Certification Authority - G5" in bad.problems[0]


def test_pfx_check_wrong_password_raises(pki: Pki) -> None:
    with pytest.raises(CertificateError, match="backup.pfx: could not open the PKCS#12"):
        certs.check_pfx(pki.pkcs12_bundle(b"Backup-Pa55"), "wrong", source="backup.pfx")


# --- the PKI factory itself ----------------------------------------------------------------------


def test_pki_factory_shape(pki: Pki) -> None:
    assert pki.cross.subject == pki.g5_root.subject and pki.cross.issuer == pki.old_root.subject
    assert certs.key_matches(pki.cross, pki.g5_root)
    assert certs.is_self_signed(pki.g5_root) and certs.is_self_signed(pki.old_root)
    assert certs.is_self_signed(pki.self_signed_leaf)
    assert pki.current_leaf.not_valid_after_utc == NOW.replace(microsecond=0) + timedelta(days=10)
    assert make_pki(now_utc=NOW) is pki  # cached
    other = make_pki(now_utc=NOW, hostnames=["a.example.jp", "b.example.jp"])
    assert certs.key_matches(other.new_leaf, pki.new_leaf)  # keys are cached per label
    assert certs.summarize(other.new_leaf).dns_names == ("a.example.jp", "b.example.jp")


def test_pki_mail_eml_headers_are_rfc5322(pki: Pki) -> None:
    import email
    import email.policy

    msg = email.message_from_bytes(pki.notification_mail(as_eml=True), policy=email.policy.default)
    assert "サーバID" in str(msg["Subject"])
    assert msg.get_content_charset() == "iso-2022-jp"
    body = msg.get_content()
    assert "-----BEGIN PKCS7-----" in body and "サーバIDを発行いたしました" in body
    utf8 = email.message_from_bytes(
        pki.notification_mail(charset="utf-8", as_eml=True), policy=email.policy.default
    )
    text = next(p for p in utf8.walk() if p.get_content_type() == "text/plain")
    assert text["Content-Transfer-Encoding"] == "base64"
    assert base64.b64decode(text.get_payload()).decode("utf-8").startswith("株式会社サンプル")


# --- the one DER reader ---------------------------------------------------------------------------


def test_der_reader_lists_the_eku_oids_cryptography_wrote(pki: Pki) -> None:
    from opslib.certs import der

    eku = pki.new_leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert der.sequence_of_oids(eku.value.public_bytes()) == tuple(o.dotted_string for o in eku.value)
    assert der.sequence_of_oids(b"\x30\x00") == ()


@pytest.mark.parametrize(
    "value",
    [b"", b"\x04\x00", b"\x30\x03\x02\x01\x01", b"\x30\x05\x06\x08\x2b\x06\x01", b"\x30\x80"],
    ids=["empty", "not-a-sequence", "integer-element", "truncated-oid", "indefinite-length"],
)
def test_der_reader_refuses_what_is_not_a_sequence_of_oids(value: bytes) -> None:
    from opslib.certs import der

    with pytest.raises(ValueError):
        der.sequence_of_oids(value)


def test_facade_keeps_every_name_the_kit_uses() -> None:
    for name in [
        "thumbprint",
        "normalize_thumbprint",
        "Certificate",
        "CSR",
        "KNOWN",
        "G5_THUMBPRINT",
        "INSTALL_BLOCKING",
        "raise_for_blocking",
        "certificate_warnings",
        "key_description",
        "subject_alt_names",
        "hostname_match",
        "encode_pem",
        "Chain",
        "CertSummary",
        "PfxCheck",
    ]:
        assert hasattr(certs, name), name
    assert certs.normalize_thumbprint("4e:b6 d5") == "4EB6D5"


# --- the expected chain (certs.expect) -------------------------------------------------------------------


def _stores(shape: Any, *, g5_enabled: bool = False) -> list[certs.Source]:
    out = [certs.Source(r, "ROOT") for r in shape.server_roots]
    out += [certs.Source(r, "ROOT", g5_enabled) for r in shape.roots_to_disable]
    return out + [certs.Source(c, "CA") for c in shape.server_cas]


@pytest.mark.parametrize(
    ("chain", "path", "needs_cross"),
    [
        ("g5", ("new_leaf", "intermediate", "cross", "old_root"), True),
        ("modern", ("new_leaf", "intermediate", "root"), False),
        ("cross-to-older-root", ("new_leaf", "intermediate", "cross", "root"), False),
    ],
)
def test_expected_chain_of_each_shape(chain: str, path: tuple[str, ...], needs_cross: bool) -> None:
    now = datetime(2026, 11, 26, 19, 45, tzinfo=UTC)
    p = make_pki(now_utc=now, chain=chain)
    shape = p.chain
    named = {
        "new_leaf": p.new_leaf,
        "intermediate": p.intermediate,
        "cross": shape.cross,
        "old_root": p.old_root,
        "root": shape.server_roots[0],
    }
    expected = certs.expect_chain(
        p.new_leaf,
        supplied=shape.mailed,
        stores=_stores(shape),
        forbidden_roots=p.forbidden_thumbprints,
        now_utc=now,
    )
    assert expected.ok, expected.message()
    assert expected.thumbprints == tuple(certs.thumbprint(named[n]) for n in path)
    assert expected.needs_cross is needs_cross
    assert [r["role"] for r in expected.rows()][0] == "leaf" and expected.rows()[-1]["sent"] is False
    assert len(expected.to_send) == len(path) - 1


def test_expected_chain_refuses_an_expired_cross_certificate_and_names_it() -> None:
    now = datetime(2026, 11, 26, 19, 45, tzinfo=UTC)
    p = make_pki(now_utc=now, chain="expired-cross")
    cross = p.chain.cross
    assert cross is not None
    expected = certs.expect_chain(
        p.new_leaf,
        supplied=p.chain.mailed,
        stores=_stores(p.chain),
        forbidden_roots=p.forbidden_thumbprints,
        now_utc=now,
    )
    assert not expected.ok and expected.anchor is None
    codes = [x.code for x in expected.problems]
    assert codes[0] == "expired_cross" and "forbidden_root" in codes
    # The path shown is the one through the expired cross certificate; each message says which G5 it is.
    assert expected.thumbprints[2] == certs.thumbprint(cross)
    message = expected.message()
    assert (
        'cross certificate "VeriSign Class 3 Public Primary Certification Authority - G5" issued by '
        f'"Class 3 Public Primary Certification Authority (Rehearsal)" ({certs.thumbprint(cross)[:8]}…) '
        "on the path expired on"
    ) in message
    assert (
        'forbidden root "VeriSign Class 3 Public Primary Certification Authority - G5" (self-signed'
        in message
    )
    assert "ask the CA for its current chain" in expected.hint()


def test_expected_chain_untrusted_disabled_and_incomplete() -> None:
    now = datetime(2026, 11, 26, 19, 45, tzinfo=UTC)
    p = make_pki(now_utc=now, chain="modern")
    root = p.chain.server_roots[0]
    disabled = certs.expect_chain(
        p.new_leaf, supplied=p.chain.mailed, stores=[certs.Source(root, "ROOT", False)], now_utc=now
    )
    assert [x.code for x in disabled.problems] == ["untrusted_root"]
    assert "is disabled in the server's Trusted Root store" in disabled.message()
    absent = certs.expect_chain(p.new_leaf, supplied=[p.intermediate, root], now_utc=now)
    assert "is not in the server's Trusted Root stores" in absent.message()
    incomplete = certs.expect_chain(p.new_leaf, stores=[certs.Source(root, "ROOT")], now_utc=now)
    assert [x.code for x in incomplete.problems] == ["incomplete"]
    assert 'needed: "Rehearsal Global G2 TLS RSA SHA256 2025 CA2"' in incomplete.message()
    assert "add the missing CA certificate" in incomplete.hint()
    # Forbidden by thumbprint: the same path, refused.
    forbidden = certs.expect_chain(
        p.new_leaf,
        supplied=p.chain.mailed,
        stores=[certs.Source(root, "ROOT")],
        forbidden_roots=[certs.thumbprint(root)],
        now_utc=now,
    )
    assert [x.code for x in forbidden.problems] == ["forbidden_root"]


def test_expected_chain_lists_the_ca_certificates_on_no_path_as_ignored() -> None:
    now = datetime(2026, 11, 26, 19, 45, tzinfo=UTC)
    p = make_pki(now_utc=now)
    other = make_pki(now_utc=now, chain="modern")
    unrelated = other.intermediate
    expected = certs.expect_chain(
        p.new_leaf,
        supplied=[p.intermediate, unrelated],
        stores=_stores(p.chain),
        forbidden_roots=p.forbidden_thumbprints,
        now_utc=now,
    )
    assert expected.ok
    assert [certs.thumbprint(c) for c in expected.ignored] == [certs.thumbprint(unrelated)]
    assert {certs.thumbprint(c) for c in expected.on_path} == {
        certs.thumbprint(p.intermediate),
        certs.thumbprint(p.cross),
    }
