"""Certificate shapes for the path builder's tests and benchmark (``benchmarks/path_building.py``).

* :func:`g5_shape` — the shape of the real VeriSign G5 case (issue 24 item 6), with its own keys: a root
  and a cross certificate sharing subject and key, the cross issued by an older **version-1** root (no
  extensions, as the real "Class 3 Public Primary Certification Authority" is), an intermediate under the
  shared key, a leaf.
* :func:`branching` — a crafted CA file of branching cross certificates: ``n`` CAs, each cross-certified
  by every other (``n·(n-1)`` certificates), ``roots`` of them also self-signed, and a leaf under CA 0.
* :func:`vendor_bundle` — a leaf, its intermediate and root, and ``extra`` unrelated roots (EC keys, so
  hundreds are made in a second), some expired, as a vendor's "all our CA certificates" file.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from opslib.rehearsal.pki import rsa_key

DAY = timedelta(days=1)
_SHA256_RSA = bytes.fromhex("300d06092a864886f70d01010b0500")  # AlgorithmIdentifier sha256WithRSAEncryption


def _name(cn: str, org: str = "Path Test (generated)") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def _unwrap(der: bytes) -> tuple[bytes, bytes]:
    """(content, rest) of the DER element at the start of ``der``."""
    first = der[1]
    if first < 0x80:
        start, n = 2, first
    else:
        count = first & 0x7F
        start, n = 2 + count, int.from_bytes(der[2 : 2 + count], "big")
    return der[start : start + n], der[start + n :]


def v1_root(cn: str, key: rsa.RSAPrivateKey, now: datetime, *, years: int = 30) -> x509.Certificate:
    """A version-1 self-signed certificate (no version field, no extensions), like the real Class 3 PCA."""
    v3 = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, "Path Test Legacy (generated)"))
        .issuer_name(_name(cn, "Path Test Legacy (generated)"))
        .public_key(key.public_key())
        .serial_number(0x3C9131CB)
        .not_valid_before(now - 3650 * DAY)
        .not_valid_after(now + 365 * years * DAY)
        .sign(key, hashes.SHA256())
    )
    body, _ = _unwrap(v3.tbs_certificate_bytes)
    assert body.startswith(bytes.fromhex("a003020102"))  # [0] EXPLICIT INTEGER 2 = v3
    tbs = _der(0x30, body[5:])  # without it: v1
    signature = key.sign(tbs, padding.PKCS1v15(), hashes.SHA256())
    cert = x509.load_der_x509_certificate(_der(0x30, tbs + _SHA256_RSA + _der(0x03, b"\x00" + signature)))
    assert cert.version == x509.Version.v1
    return cert


def _cert(
    subject: x509.Name,
    issuer: x509.Name,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    issuer_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    now: datetime,
    *,
    serial: int,
    ca: bool = True,
    days: int = 3650,
    sans: tuple[str, ...] = (),
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - 30 * DAY)
        .not_valid_after(now + days * DAY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass(frozen=True)
class G5Shape:
    old_root: x509.Certificate  # version 1, self-signed: issued the cross certificate
    root: x509.Certificate  # the G5-like root (self-signed)
    cross: x509.Certificate  # the root's subject and key, issued by old_root
    intermediate: x509.Certificate  # issued under the shared key
    leaf: x509.Certificate


def g5_shape(now: datetime) -> G5Shape:
    old_key, root_key, int_key, leaf_key = (rsa_key(f"paths-{n}") for n in ("old", "g5", "int", "leaf"))
    old = v1_root("Path Test Class 3 Public Primary Certification Authority", old_key, now)
    g5 = _name("Path Test Primary Certification Authority - G5")
    root = _cert(g5, g5, root_key, root_key, now, serial=5)
    cross = _cert(g5, old.subject, root_key, old_key, now, serial=6, days=1000)
    intermediate = _cert(_name("Path Test Secure Server CA - G4"), g5, int_key, root_key, now, serial=7)
    leaf = _cert(
        _name("www.path-test.example"),
        intermediate.subject,
        leaf_key,
        int_key,
        now,
        serial=8,
        ca=False,
        days=300,
        sans=("www.path-test.example",),
    )
    return G5Shape(old, root, cross, intermediate, leaf)


def branching(
    n: int,
    roots: int,
    now: datetime,
    *,
    base: tuple[x509.Name, rsa.RSAPrivateKey] | None = None,
) -> tuple[x509.Certificate, list[x509.Certificate]]:
    """(leaf, CA file): ``n`` CAs all cross-certifying each other, the first ``roots`` self-signed too.

    ``base``: CA 0's name and key (e.g. the rehearsal intermediate's, so the mesh hangs under a real
    renewal's leaf); the leaf returned is then issued under it as well."""
    keys = [rsa_key(f"paths-mesh-{i}") for i in range(n)]
    names = [_name(f"Mesh CA {i}", "Path Test Mesh (generated)") for i in range(n)]
    if base is not None:
        names[0], keys[0] = base
    cas: list[x509.Certificate] = []
    serial = 100
    for i in range(n):
        for j in range(n):
            if i != j or i < roots:
                serial += 1
                cas.append(_cert(names[i], names[j], keys[i], keys[j], now, serial=serial))
    leaf = _cert(
        _name("mesh.path-test.example"),
        names[0],
        rsa_key("paths-leaf"),
        keys[0],
        now,
        serial=99,
        ca=False,
        days=300,
        sans=("mesh.path-test.example",),
    )
    return leaf, cas


def vendor_bundle(extra: int, now: datetime, *, expired_every: int = 10) -> list[x509.Certificate]:
    """[leaf, intermediate, root, extra unrelated roots…]; every ``expired_every``-th extra root expired."""
    shape = g5_shape(now)
    out = [shape.leaf, shape.intermediate, shape.root]
    for i in range(extra):
        key = ec.generate_private_key(ec.SECP256R1())
        name = _name(f"Vendor Root {i:03d}", "Path Test Vendor (generated)")
        days = -5 if expired_every and i % expired_every == 0 else 3650
        out.append(_cert(name, name, key, key, now, serial=1000 + i, days=days))
    return out
