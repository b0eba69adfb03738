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
