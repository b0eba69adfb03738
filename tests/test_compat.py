"""Certificates the target cannot use are named before any change (issue 12 item 7), and outside text
is escaped in messages (opslib.text.escape_text).

Real certificates (cryptography), a real probe of the rehearsal host over pywinrm for the one
preflight case; nothing is stubbed.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from opslib.ops.compat import key_problem
from opslib.text import escape_text

NOW = datetime(2026, 12, 1, tzinfo=UTC)
_SIGNER = ec.generate_private_key(ec.SECP256R1())


def _cert(public_key: Any, *, cn: str = "www1.example.jp") -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=365))
        .sign(_SIGNER, hashes.SHA256())
    )


def _rsa_public(bits: int) -> rsa.RSAPublicKey:
    """An RSA public key of exactly ``bits`` bits (the modulus need not be a product of primes to be
    a well-formed key in a certificate; generating a real 16384-bit key takes minutes)."""
    return rsa.RSAPublicNumbers(65537, (1 << (bits - 1)) | 1).public_key()


RSA_2048 = _cert(rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key())
EC_P256 = _cert(ec.generate_private_key(ec.SECP256R1()).public_key())
EC_K1 = _cert(ec.generate_private_key(ec.SECP256K1()).public_key())
ED25519 = _cert(ed25519.Ed25519PrivateKey.generate().public_key())


@pytest.mark.parametrize(
    ("cert", "version", "expected"),
    [
        (RSA_2048, "5.2.3790", ""),
        (RSA_2048, "", ""),
        (_cert(_rsa_public(16384)), "5.2.3790", ""),
        (
            _cert(_rsa_public(16392)),
            "5.2.3790",
            r"RSA key of 16392 bits, outside .*Windows Server 2003.*384–16384",
        ),
        (_cert(_rsa_public(504)), "6.3.9600", r"RSA key of 504 bits, outside .*\(512–16384 bits"),
        (_cert(_rsa_public(504)), "5.2.3790", ""),
        (
            EC_P256,
            "5.2.3790",
            r"elliptic-curve \(ECDSA P-256\) key: Windows Server 2003 has no ECC .*IIS 6 cannot",
        ),
        (EC_P256, "", r"Windows Server 2003 has no ECC"),
        (EC_P256, "6.0.6002", ""),
        (EC_P256, "10.0.17763", ""),
        (EC_K1, "10.0.17763", r"curve secp256k1, which Windows NT 10.0 does not offer"),
        (ED25519, "10.0.17763", r"an EdDSA key"),
    ],
)
def test_key_problem_by_windows_version(cert: x509.Certificate, version: str, expected: str) -> None:
    problem = key_problem(cert, windows_version=version)
    if expected:
        assert problem and re.search(expected, problem), problem
    else:
        assert problem == ""


def test_escape_text_escapes_controls_and_bidi_and_keeps_japanese() -> None:
    assert escape_text("www1.example.jp") == "www1.example.jp"
    assert escape_text("更新作業用") == "更新作業用"
    assert escape_text("a\x1b[2Jb\r\nc\x00\x7f\x85") == "a\\x1b[2Jb\\x0d\\x0ac\\x00\\x7f\\x85"
    assert escape_text("evil\u202egpj.exe") == "evil\\u202egpj.exe"
    assert escape_text("C:\\x") == "C:\\\\x"  # a backslash is doubled: the escapes read back unambiguously
    assert escape_text("x" * 50, limit=10) == "x" * 9 + "…"


# --- preflight on a real (rehearsal) Windows Server 2003, before anything changes ---------------------


@pytest.fixture
def server(tmp_path: Path, shared_endpoints: Any) -> Any:
    """The session's default endpoint, put back as it started (tests/conftest.py)."""
    return shared_endpoints.get("default", state_file=tmp_path / "state.json")


def test_preflight_names_an_ec_certificate_iis6_cannot_use(server: Any, tmp_path: Path) -> None:
    from opslib import preflight, winrm
    from opslib.errors import PreconditionFailed
    from opslib.server import Server

    path = tmp_path / "new.pem"
    path.write_bytes(EC_P256.public_bytes(serialization.Encoding.PEM))
    before = Path(server.host.state_file).read_bytes()
    with winrm.connect(
        server.url,
        transport="basic",
        username=server.user,
        password=server.password,
        host_label="web01",
        allow_unencrypted_basic=True,
        allow_cleartext_secrets=True,  # a Basic/HTTP lab host: accepted explicitly
    ) as conn:
        srv = Server(conn)
        with pytest.raises(
            PreconditionFailed,
            match=r"new\.pem: the new certificate has an elliptic-curve \(ECDSA P-256\) key: Windows Server 2003 "
            r"has no ECC in Schannel.*nothing was changed — have the certificate re-issued",
        ):
            preflight.check_server(
                srv,
                production_site="www1.example.jp",
                work_site="renew.www1.example.jp",
                certificate_file=str(path),
                host="web01",
            )
    after = Path(server.host.state_file).read_bytes()
    assert [s for s in before.split(b'"sites"')[1:]] == [s for s in after.split(b'"sites"')[1:]]
