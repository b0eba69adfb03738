"""The rehearsal host builds the certificate chain on ``certreq -accept``; the chain-shape scenarios.

Everything runs through the emulated cmd.exe (:func:`opslib.rehearsal.cmd.execute`) on hosts made by
:func:`opslib.rehearsal.scenarios.build_host`; assertions are on exit codes, messages and store contents.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509

from opslib import certs
from opslib.rehearsal import chainbuild, cmd, scenarios
from opslib.rehearsal.host import Host
from opslib.rehearsal.pki import Pki, make_pki
from opslib.rehearsal.programs import stores
from opslib.rehearsal.programs.certutil import load_certificates

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
CHAIN_SCENARIOS = ("modern-chain", "cross-to-older-root", "expired-cross")

UNTRUSTED_ROOT = 0x800B0109
CHAINING = 0x800B010A
NOT_FOUND = 0x80092004
NEW_CER = r"C:\new.cer"
CA_CER = r"C:\ca.cer"


def build(name: str, tmp_path: Path, **kw: object) -> tuple[Host, Pki]:
    host = scenarios.build_host(name, workdir=tmp_path, now_utc=NOW, **kw)  # type: ignore[arg-type]
    shape = {
        "modern-chain": "modern",
        "cross-to-older-root": "cross-to-older-root",
        "expired-cross": "expired-cross",
    }
    return host, make_pki(now_utc=NOW, hostnames=scenarios.HOSTNAMES, chain=shape.get(name, "g5"))


def run(host: Host, line: str) -> tuple[int, str, str]:
    result = cmd.execute(host, line, codepage=437)
    return result.exit_code & 0xFFFFFFFF, result.stdout.decode("cp437"), result.stderr.decode("cp437")


def upload(host: Host, path: str, *items: x509.Certificate) -> str:
    if len(items) == 1:
        host.write_file(path, Pki.der(items[0]))
    else:
        host.write_file(path, Pki.pem(*items))
    return path


def thumbs(host: Host, store: str) -> set[str]:
    return {e.thumbprint for e in stores.certificates(host, store)}


def root_thumbs(host: Host) -> set[str]:
    return {e.thumbprint for e in stores.logical_certificates(host, "ROOT")}


def disable(host: Host, cert: x509.Certificate) -> None:
    # What step 0 does: certutil -repairstore Root <thumbprint> <INF setting property 9 to an empty EKU>.
    host.write_file(
        r"C:\disable.inf",
        b'[Version]\r\nSignature = "$Windows NT$"\r\n\r\n[Properties]\r\n9 = "{hex}30 00"\r\n',
    )
    code, _, err = run(host, rf"certutil -repairstore Root {certs.thumbprint(cert)} C:\disable.inf")
    assert code == 0, err
    entry = stores.find_certificate(host, "ROOT", certs.thumbprint(cert))
    assert entry is not None and entry.disabled


def accepted(host: Host, pki: Pki) -> bool:
    return certs.thumbprint(pki.new_leaf) in thumbs(host, "MY")


# --- success ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["default", "no-g5", *CHAIN_SCENARIOS])
def test_accept_succeeds_when_the_chain_reaches_an_enabled_root(tmp_path: Path, name: str) -> None:
    host, pki = build(name, tmp_path)
    # The vendor order: the CA certificates the CA supplies into Intermediate CA, then the bare leaf.
    for i, ca in enumerate(pki.chain.supplied):
        code, _, err = run(host, "certutil -addstore CA " + upload(host, rf"C:\ca{i}.cer", ca))
        assert code == 0, err
    leaf = upload(host, NEW_CER, pki.new_leaf)
    code, out, err = run(host, f"certreq -accept {leaf}")
    assert code == 0, err
    assert "Installed Certificate:" in out
    assert accepted(host, pki)
    assert thumbs(host, "REQUEST") == set()  # the pending request's placeholder is gone


def test_modern_chain_bare_leaf_first_fails_chaining(tmp_path: Path) -> None:
    # What the kit's step 1 did before issue 11: complete the request with the bare leaf, then install
    # the CA certificates. The renewal's new intermediate is not on the server yet.
    host, pki = build("modern-chain", tmp_path)
    before = host.state()["registry"]
    code, out, err = run(host, "certreq -accept " + upload(host, NEW_CER, pki.new_leaf))
    assert code == CHAINING
    assert err.startswith("Certificate Request Processor: A certificate chain could not be built")
    assert out == "" and host.state()["registry"] == before


def test_the_path_goes_through_the_cross_certificate_once_g5_is_disabled(tmp_path: Path) -> None:
    host, pki = build("default", tmp_path)
    enabled = chainbuild.build_path(host, pki.new_leaf)
    assert enabled.ok and enabled.certs == (pki.new_leaf, pki.intermediate, pki.g5_root)
    disable(host, pki.g5_root)
    path = chainbuild.build_path(host, pki.new_leaf)
    assert path.ok
    assert path.certs == (pki.new_leaf, pki.intermediate, pki.cross, pki.old_root)
    assert path.anchor is not None and path.anchor.thumbprint == certs.thumbprint(pki.old_root)
    assert path.to_send == [pki.new_leaf, pki.intermediate, pki.cross]
    code, _, err = run(host, "certreq -accept " + upload(host, NEW_CER, pki.new_leaf))
    assert code == 0, err


def test_cross_to_older_root_path_ends_at_the_older_root(tmp_path: Path) -> None:
    host, pki = build("cross-to-older-root", tmp_path)
    path = chainbuild.build_path(host, pki.new_leaf)
    older, newer = pki.chain.server_roots[0], pki.chain.absent_roots[0]
    assert path.ok
    assert path.certs == (pki.new_leaf, pki.intermediate, pki.chain.cross, older)
    assert certs.thumbprint(newer) not in {certs.thumbprint(c) for c in path.certs}


# --- failures -----------------------------------------------------------------------------------


def test_accept_fails_untrusted_root_when_the_root_is_disabled_and_no_cross_path_exists(
    tmp_path: Path,
) -> None:
    host, pki = build("default", tmp_path)
    code, _, err = run(host, f"certutil -delstore CA {certs.thumbprint(pki.cross)}")
    assert code == 0, err
    disable(host, pki.g5_root)
    before = host.state()["registry"]
    code, out, err = run(host, "certreq -accept " + upload(host, NEW_CER, pki.new_leaf))
    assert code == UNTRUSTED_ROOT
    assert "Certificate Request Processor:" in err and "0x800b0109" in err and "CERT_E_UNTRUSTEDROOT" in err
    assert out == ""
    assert host.state()["registry"] == before  # nothing installed, the pending request kept
    assert not accepted(host, pki)


def test_expired_cross_gives_no_path_once_g5_is_disabled(tmp_path: Path) -> None:
    host, pki = build("expired-cross", tmp_path)
    disable(host, pki.g5_root)
    path = chainbuild.build_path(host, pki.new_leaf)
    assert path.error & 0xFFFFFFFF == UNTRUSTED_ROOT
    code, _, err = run(host, "certreq -accept " + upload(host, NEW_CER, pki.new_leaf))
    assert code == UNTRUSTED_ROOT, err
    assert not accepted(host, pki)
    # Offering the expired cross certificate inside the accepted file does not help either.
    bundle = upload(host, r"C:\bundle.pem", pki.new_leaf, pki.intermediate, pki.cross)
    code, _, _ = run(host, f"certreq -accept {bundle}")
    assert code == UNTRUSTED_ROOT
    assert not accepted(host, pki)


@pytest.mark.parametrize(
    ("name", "missing"),
    [
        ("modern-chain", "intermediate"),
        ("cross-to-older-root", "cross"),
        ("cross-to-older-root", "intermediate"),
    ],
)
def test_accept_fails_chaining_without_the_intermediate_then_succeeds_after_addstore(
    tmp_path: Path, name: str, missing: str
) -> None:
    host, pki = build(name, tmp_path)
    cert = pki.intermediate if missing == "intermediate" else pki.chain.cross
    assert cert is not None
    if certs.thumbprint(cert) in thumbs(host, "CA"):
        code, _, err = run(host, f"certutil -delstore CA {certs.thumbprint(cert)}")
        assert code == 0, err
    assert certs.thumbprint(cert) not in thumbs(host, "CA")
    leaf = upload(host, r"C:\new.cer", pki.new_leaf)
    code, out, err = run(host, f"certreq -accept {leaf}")
    assert code == CHAINING
    assert "0x800b010a" in err and "CERT_E_CHAINING" in err
    assert not accepted(host, pki)
    assert len(thumbs(host, "REQUEST")) == 1
    # The vendor order: the CA certificate into Intermediate CA first, then complete the request.
    code, _, err = run(host, "certutil -addstore CA " + upload(host, CA_CER, cert))
    assert code == 0, err
    code, _, err = run(host, f"certreq -accept {leaf}")
    assert code == 0, err
    assert accepted(host, pki)


def test_accept_uses_the_certificates_of_the_accepted_file(tmp_path: Path) -> None:
    host, pki = build("modern-chain", tmp_path)
    assert certs.thumbprint(pki.intermediate) not in thumbs(host, "CA")
    host.write_file(r"C:\new.p7b", pki.pkcs7_bundle(encoding="DER"))  # leaf + intermediate, as mailed
    code, _, err = run(host, r"certreq -accept C:\new.p7b")
    assert code == 0, err
    assert accepted(host, pki)
    assert certs.thumbprint(pki.intermediate) in thumbs(host, "CA")


def test_accept_without_a_pending_request_is_not_found(tmp_path: Path) -> None:
    host, pki = build("no-pending-request", tmp_path)
    code, _, err = run(host, "certreq -accept " + upload(host, NEW_CER, pki.new_leaf))
    assert code == NOT_FOUND
    assert "0x80092004" in err
    assert not accepted(host, pki)


def test_a_host_whose_certreq_skips_the_chain_check_accepts(tmp_path: Path) -> None:
    host, pki = build("expired-cross", tmp_path)
    disable(host, pki.g5_root)
    host.extra["certreq_accept_checks_chain"] = False  # the [U] 2003 alternative
    code, _, err = run(host, "certreq -accept " + upload(host, NEW_CER, pki.new_leaf))
    assert code == 0, err


def test_a_disallowed_certificate_is_never_used(tmp_path: Path) -> None:
    host, pki = build("modern-chain", tmp_path)
    stores.add_certificate(host, "CA", pki.intermediate)
    assert chainbuild.build_path(host, pki.new_leaf).ok
    stores.add_certificate(host, "Disallowed", pki.intermediate)
    code, _, _ = run(host, "certreq -accept " + upload(host, NEW_CER, pki.new_leaf))
    assert code == CHAINING


# --- the scenarios --------------------------------------------------------------------------------


def test_chain_scenarios_are_listed() -> None:
    assert set(CHAIN_SCENARIOS) <= set(scenarios.SCENARIOS)
    assert all(scenarios.SCENARIOS[name] for name in CHAIN_SCENARIOS)


def test_modern_chain_stores(tmp_path: Path) -> None:
    host, pki = build("modern-chain", tmp_path)
    root = pki.chain.server_roots[0]
    assert pki.chain.cross is None and pki.chain.supplied == (pki.intermediate,)
    assert root_thumbs(host) == {certs.thumbprint(root)}  # no G5, rehearsal or real, anywhere
    previous = pki.chain.previous_intermediate
    assert previous is not None and previous.issuer == root.subject
    # The server holds the intermediate of its current certificate; the renewal's comes from the CA.
    assert thumbs(host, "CA") == {certs.thumbprint(previous)}
    assert pki.current_leaf.issuer == previous.subject
    assert pki.intermediate.issuer == root.subject and pki.new_leaf.issuer == pki.intermediate.subject
    current = chainbuild.build_path(host, pki.current_leaf)
    assert current.ok and current.certs == (pki.current_leaf, previous, root)
    assert "G5" not in " ".join(
        e.cert.subject.rfc4514_string() for e in stores.logical_certificates(host, "CA")
    )
    assert host.extra["current_thumbprint"] in thumbs(host, "MY")
    assert len(thumbs(host, "REQUEST")) == 1


def test_cross_to_older_root_stores(tmp_path: Path) -> None:
    host, pki = build("cross-to-older-root", tmp_path)
    older, newer, cross = pki.chain.server_roots[0], pki.chain.absent_roots[0], pki.chain.cross
    assert cross is not None
    assert cross.subject == newer.subject and cross.issuer == older.subject
    assert cross.public_key().public_numbers() == newer.public_key().public_numbers()  # type: ignore[union-attr]
    assert root_thumbs(host) == {certs.thumbprint(older)}  # the newer root is absent
    assert thumbs(host, "CA") == {certs.thumbprint(pki.intermediate), certs.thumbprint(cross)}
    assert pki.chain.mailed == (pki.intermediate, cross)


def test_expired_cross_stores_and_the_cross_is_expired(tmp_path: Path) -> None:
    host, pki = build("expired-cross", tmp_path)
    cross = pki.chain.cross
    assert cross is not None and cross is pki.cross
    assert cross.not_valid_after_utc < NOW
    assert chainbuild.host_now(host) == NOW
    assert cross.subject == pki.g5_root.subject and cross.issuer == pki.old_root.subject
    assert thumbs(host, "CA") == {certs.thumbprint(pki.intermediate), certs.thumbprint(cross)}
    g5 = stores.find_certificate(host, "ROOT", certs.thumbprint(pki.g5_root))
    assert g5 is not None and not g5.disabled  # enabled, as in the default scenario: step 0 must disable it
    assert certs.thumbprint(pki.old_root) in root_thumbs(host)
    assert pki.cross not in pki.chain.supplied  # the CA has no valid cross certificate to hand over


@pytest.mark.parametrize("name", CHAIN_SCENARIOS)
def test_chain_scenarios_write_the_cas_files(tmp_path: Path, name: str) -> None:
    host, pki = build(name, tmp_path)
    mail = certs.load_certificates(Path(str(host.extra["certificate_file"])).read_bytes(), source="mail")
    expected = {certs.thumbprint(c) for c in (pki.new_leaf, *pki.chain.mailed)}
    assert {certs.thumbprint(c) for c in mail.certificates} == expected
    p7b, was_pkcs7 = load_certificates(Path(str(host.extra["pkcs7_file"])).read_bytes())
    assert was_pkcs7 and {certs.thumbprint(c) for c in p7b} == expected  # a SET OF: DER sorts it
    anchors = x509.load_pem_x509_certificates(Path(str(host.extra["verify_ca_file"])).read_bytes())
    assert {certs.thumbprint(c) for c in anchors} == {certs.thumbprint(c) for c in pki.chain.client_roots}


def test_the_default_scenario_is_unchanged(tmp_path: Path) -> None:
    host, pki = build("default", tmp_path)
    assert thumbs(host, "CA") == {certs.thumbprint(pki.intermediate), certs.thumbprint(pki.cross)}
    assert pki.cross.not_valid_after_utc > NOW
    assert {certs.thumbprint(pki.old_root), certs.thumbprint(pki.g5_root)} <= root_thumbs(host)
    assert pki.pkcs7_bundle() == make_pki(now_utc=NOW, hostnames=scenarios.HOSTNAMES).pkcs7_bundle()
