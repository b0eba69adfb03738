"""PFX for the backup step: :func:`load_pkcs12`, :func:`check_pfx` → :class:`PfxCheck`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import CertificateError
from .chains import is_cross_certificate
from .der import is_pkcs12, oids
from .expect import Source, expect_chain
from .facts import Certificate, key_matches, normalize_thumbprint, signed_by, thumbprint, unique
from .load import Bundle, Collector, load_pfx_into

# --- PFX (backup step) ---------------------------------------------------------------------------


def load_pkcs12(data: bytes, password: bytes | str | None, *, source: str) -> Bundle:
    """Open a PFX with ``password``; the bundle's ``private_key`` and ``leaf`` are set."""
    col = Collector(source)
    if not is_pkcs12(data):
        raise col.fail("not a PKCS#12 (PFX) file")
    pw = password.encode("utf-8") if isinstance(password, str) else password
    load_pfx_into(col, data, pw)
    return Bundle(
        source=source, certificates=tuple(unique(col.certs)), private_key=col.key, formats=("pkcs12",)
    )


_PBE_NAMES = {
    "1.2.840.113549.1.12.1.3": "pbeWithSHAAnd3-KeyTripleDES-CBC",
    "1.2.840.113549.1.12.1.6": "pbeWithSHAAnd40BitRC2-CBC",
    "1.2.840.113549.1.12.1.1": "pbeWithSHAAnd128BitRC4",
    "2.16.840.1.101.3.4.1.42": "AES-256-CBC (PBES2)",
    "2.16.840.1.101.3.4.1.2": "AES-128-CBC (PBES2)",
    "1.2.840.113549.3.7": "DES-EDE3-CBC (PBES2)",
}


@dataclass(frozen=True)
class PfxCheck:
    """The proof a backup PFX is usable: opens, key matches, chain inside."""

    source: str
    opens: bool
    leaf_thumbprint: str
    key_matches: bool
    certificates: tuple[str, ...]  # SHA-1 of every certificate inside
    has_intermediate: bool
    has_cross: bool
    encryption: tuple[str, ...]  # PBE/cipher algorithms seen outside the encrypted parts
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.problems

    def row(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "opens": self.opens,
            "leaf": self.leaf_thumbprint,
            "key_matches": self.key_matches,
            "certificates": len(self.certificates),
            "intermediate": self.has_intermediate,
            "cross": self.has_cross,
            "encryption": ", ".join(self.encryption),
            "problems": "; ".join(self.problems),
        }


def check_pfx(
    data: bytes,
    password: bytes | str,
    *,
    source: str,
    expected_thumbprint: str = "",
    anchors: Iterable[Certificate] = (),
    require_chain: bool = True,
    expected_chain: Sequence[str] = (),
) -> PfxCheck:
    """Open the PFX and check it as a backup: leaf (the expected thumbprint), its private key, the
    intermediate (the leaf's issuer), and the expected chain inside — whatever it is, a cross
    certificate only when the path needs one:

    * ``expected_chain`` (thumbprints, leaf first, root last; step 1's prediction): every certificate
      of it but the root is inside;
    * else, with ``require_chain`` and ``anchors`` (the server's Trusted Root certificates): the PFX's
      certificates lead from the leaf to one of ``anchors`` that is not forbidden (G5), every one valid
      (:func:`opslib.certs.expect_chain`).

    Raises CertificateError when it does not open; otherwise reports ``problems`` (empty = usable)."""
    bundle = load_pkcs12(data, password, source=source)
    leaf = bundle.leaf
    problems: list[str] = []
    if leaf is None:
        raise CertificateError(source, "the PFX holds no end-entity certificate")
    tp = thumbprint(leaf)
    if expected_thumbprint and tp != normalize_thumbprint(expected_thumbprint):
        problems.append(
            f"the certificate inside is {tp}, expected {normalize_thumbprint(expected_thumbprint)}"
        )
    matches = bundle.private_key is not None and key_matches(leaf, bundle.private_key)
    if bundle.private_key is None:
        problems.append("the PFX holds no private key")
    elif not matches:
        problems.append("the private key does not belong to the certificate")
    others = [c for c in bundle.certificates if c is not leaf]
    has_intermediate = any(signed_by(leaf, c) for c in others)
    if not has_intermediate:
        problems.append(f"the intermediate ({leaf.issuer.rfc4514_string()}) is not inside")
    anchor_list = list(anchors)
    pool = [*others, *anchor_list]
    has_cross = any(is_cross_certificate(c, pool) for c in others)
    inside = {thumbprint(c) for c in bundle.certificates}
    want = [normalize_thumbprint(t) for t in expected_chain]
    if want:
        missing = [t for t in want[1:-1] if t not in inside]
        if missing:
            problems.append(
                "the expected chain is not inside: missing "
                + ", ".join(missing)
                + " (export with the whole chain)"
            )
    elif require_chain and anchor_list and has_intermediate:
        expected = expect_chain(leaf, supplied=others, stores=[Source(a, "ROOT") for a in anchor_list])
        if not expected.ok:
            problems.append(
                "no chain to a trusted, allowed root inside: "
                + "; ".join(p.message for p in expected.problems)
                + " (export with the whole chain)"
            )
    algorithms = tuple(dict.fromkeys(_PBE_NAMES[o] for o in oids(data) if o in _PBE_NAMES))
    return PfxCheck(
        source=source,
        opens=True,
        leaf_thumbprint=tp,
        key_matches=matches,
        certificates=tuple(thumbprint(c) for c in bundle.certificates),
        has_intermediate=has_intermediate,
        has_cross=has_cross,
        encryption=algorithms,
        problems=tuple(problems),
    )


# --- re-protecting a PFX for the target Windows (a scheme the Windows it goes back to can import) ---

# PKCS#12 protected with PBES2 (AES-256-CBC, PBKDF2-HMAC-SHA256) and an HMAC-SHA256 MAC is importable
# only from Windows 10 1709 / Windows Server 2019 ("Minimum supported server: Windows Server 2019",
# https://learn.microsoft.com/en-us/windows/win32/api/wincrypt/ns-wincrypt-pkcs12_pbes2_export_params);
# older Windows (Server 2003 … 2016) imports pbeWithSHAAnd3-KeyTripleDES-CBC with a SHA-1 MAC, the
# scheme their own certutil/IIS export writes (RFC 7292 appendix C; docs/windows-behaviour.md W-PFX-IMPORT).
PFX_AES256_SHA256 = "AES-256-CBC + PBKDF2/HMAC-SHA256 (PBES2), MAC SHA-256"
PFX_3DES_SHA1 = "pbeWithSHAAnd3-KeyTripleDES-CBC, MAC SHA-1"
_AES_MIN_BUILD = 16299  # Windows 10 1709; Server 2019 is 10.0.17763
# The OIDs each scheme must show outside the encrypted parts (cipher / PBE and the MAC's digest).
PFX_ENCRYPTION_OIDS: dict[str, frozenset[str]] = {
    PFX_AES256_SHA256: frozenset(
        {"1.2.840.113549.1.5.13", "2.16.840.1.101.3.4.1.42", "1.2.840.113549.2.9", "2.16.840.1.101.3.4.2.1"}
    ),
    PFX_3DES_SHA1: frozenset({"1.2.840.113549.1.12.1.3", "1.3.14.3.2.26"}),
}


def pfx_encryption_for(windows_version: str) -> str:
    """The PKCS#12 protection the server's Windows (``ver``: ``"10.0.17763"``) can import: AES-256/SHA-256
    from Windows 10 1709 / Server 2019 on, 3DES/SHA-1 before (and when the version is unreadable)."""
    parts = [int(p) for p in windows_version.split(".") if p.isdigit()]
    if len(parts) >= 3 and (parts[0], parts[1]) >= (10, 0) and (parts[0] > 10 or parts[2] >= _AES_MIN_BUILD):
        return PFX_AES256_SHA256
    return PFX_3DES_SHA1


def reprotect_pfx(data: bytes, password: str, new_password: str, *, encryption: str, source: str) -> bytes:
    """Open ``data`` with ``password`` (the one-time password of the server-side export) and write the
    same key, certificate and chain (friendly names kept) protected by ``new_password`` with
    ``encryption`` (:data:`PFX_AES256_SHA256` or :data:`PFX_3DES_SHA1`, 2,048 KDF rounds)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import PrivateFormat, pkcs12

    if encryption not in PFX_ENCRYPTION_OIDS:
        raise ValueError(f"unknown PFX encryption {encryption!r}")
    try:
        loaded = pkcs12.load_pkcs12(data, password.encode("utf-8"))
    except ValueError:
        raise CertificateError(source, "the exported PFX does not open with its one-time password") from None
    if loaded.key is None or loaded.cert is None:
        raise CertificateError(source, "the exported PFX holds no private key or no certificate")
    builder = PrivateFormat.PKCS12.encryption_builder().kdf_rounds(2048)
    if encryption == PFX_AES256_SHA256:
        builder = builder.key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC).hmac_hash(hashes.SHA256())
    else:
        builder = builder.key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC).hmac_hash(
            hashes.SHA1()
        )
    return pkcs12.serialize_key_and_certificates(
        loaded.cert.friendly_name,
        loaded.key,  # type: ignore[arg-type]
        loaded.cert.certificate,
        loaded.additional_certs or None,
        builder.build(new_password.encode("utf-8")),
    )


def oid_der(dotted: str) -> bytes:
    """The DER encoding (tag 06, length, value) of an OID (X.690 8.19)."""
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        while arc > 0x7F:
            arc >>= 7
            chunk.insert(0, 0x80 | (arc & 0x7F))
        body += bytes(chunk)
    return bytes([0x06, len(body)]) + bytes(body)


def encryption_problems(data: bytes, encryption: str) -> list[str]:
    """What the PFX lacks of ``encryption``'s algorithm OIDs. The algorithm identifiers of a PKCS#12 sit
    unencrypted but deep (the shrouded key bag's PBES2 parameters are 12 levels down), so their DER
    encodings are looked for in the bytes rather than by a bounded walk."""
    missing = sorted(oid for oid in PFX_ENCRYPTION_OIDS[encryption] if oid_der(oid) not in data)
    return (
        [f"the PFX is not protected with {encryption} (missing OIDs {', '.join(missing)})"] if missing else []
    )
