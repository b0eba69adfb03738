"""The kit's one path builder (``opslib/certs/paths.py``) as a user meets it: ``opslib inspect`` on the G5
shape (issue 24 item 6), on a crafted branching CA file and on a vendor bundle (item 7); the runbook's
expected chain agreeing with inspect; and the rehearsal host's own engine agreeing with the kit on every
chain scenario. Certificates: ``tests/chain_shapes.py`` (own keys; the real ones are in the conformance
corpus, ``tests/test_conformance_certs.py``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from chain_shapes import G5Shape, branching, g5_shape, vendor_bundle

from opslib import certs
from opslib.cli import main
from opslib.rehearsal import chainbuild, scenarios
from opslib.rehearsal.pki import make_pki
from opslib.rehearsal.programs import stores

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def shape() -> G5Shape:
    return g5_shape(NOW)


def inspect(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, *items: Any, json_out: bool = True, **kw: str
) -> Any:
    pem = tmp_path / "bundle.pem"
    pem.write_bytes(certs.encode_pem(*items))
    extra = [a for k, v in kw.items() for a in (f"--{k.replace('_', '-')}", v)]
    code = main(["inspect", str(pem), *extra, *(["--json"] if json_out else [])])
    out, _ = capsys.readouterr()
    assert code == 0
    return json.loads(out) if json_out else out


def tp(*items: certs.Certificate) -> list[str]:
    return [certs.thumbprint(c) for c in items]


# --- item 6: the G5 shape -----------------------------------------------------------------------------


def test_inspect_goes_through_the_cross_certificate_to_the_v1_root_and_flags_the_forbidden_root(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, shape: G5Shape
) -> None:
    forbidden = certs.thumbprint(shape.root)
    report = inspect(
        capsys,
        tmp_path,
        shape.intermediate,
        shape.root,
        shape.cross,
        shape.old_root,
        forbidden_root=forbidden,
    )
    chains = {tuple(c["path"]): c for c in report["chains"]}
    via_root = chains[tuple(tp(shape.intermediate, shape.root))]
    via_cross = chains[tuple(tp(shape.intermediate, shape.cross, shape.old_root))]
    assert len(chains) == 2
    # The path through the cross certificate does not stop at it: it ends at the v1 root that issued it.
    assert via_cross["complete"] and via_cross["anchor"] == certs.thumbprint(shape.old_root)
    assert via_cross["forbidden_root"] is False
    assert via_root["complete"] and via_root["forbidden_root"] is True
    found = {(w["code"], w["certificate"]) for w in report["warnings"]}
    assert ("forbidden_root_in_chain", forbidden) in found
    text = inspect(
        capsys,
        tmp_path,
        shape.intermediate,
        shape.root,
        shape.cross,
        shape.old_root,
        json_out=False,
        forbidden_root=forbidden,
    )
    assert (
        "(FORBIDDEN ROOT): Path Test Secure Server CA - G4 → Path Test Primary Certification Authority - G5\n"
        in text
    )
    assert (
        "Path Test Secure Server CA - G4 → Path Test Primary Certification Authority - G5 → "
        "Path Test Class 3 Public Primary Certification Authority\n"
    ) in text


def test_inspect_and_the_runbook_build_the_same_paths(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, shape: G5Shape
) -> None:
    forbidden = certs.thumbprint(shape.root)
    cas = (shape.intermediate, shape.cross, shape.root, shape.old_root)
    report = inspect(capsys, tmp_path, shape.leaf, *cas, forbidden_root=forbidden)
    expected = certs.expect_chain(
        shape.leaf,
        supplied=cas,
        stores=[certs.Source(shape.old_root, "ROOT"), certs.Source(shape.root, "AuthRoot")],
        forbidden_roots=[forbidden],
        now_utc=NOW,
    )
    assert expected.ok, expected.message()
    assert list(expected.thumbprints) == tp(shape.leaf, shape.intermediate, shape.cross, shape.old_root)
    assert expected.needs_cross
    leaf = certs.thumbprint(shape.leaf)
    assert {tuple(c["path"]) for c in report["chains"] if c["leaf"] == leaf} == {
        tuple(tp(*p)) for p in expected.tried
    }
    # The path the runbook refuses (its forbidden root) is the one inspect flags.
    (flagged,) = [c for c in report["chains"] if c["forbidden_root"]]
    assert flagged["path"] == tp(shape.leaf, shape.intermediate, shape.root)
    refused = certs.expect_chain(
        shape.leaf,
        supplied=cas,
        stores=[certs.Source(shape.root, "ROOT")],
        forbidden_roots=[forbidden],
        now_utc=NOW,
    )
    assert "forbidden_root" in [p.code for p in refused.problems]


def test_a_path_ends_only_at_a_self_signed_certificate(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, shape: G5Shape
) -> None:
    report = inspect(capsys, tmp_path, shape.leaf, shape.intermediate, shape.cross)
    (chain,) = report["chains"]
    assert chain["path"] == tp(shape.leaf, shape.intermediate, shape.cross)
    assert not chain["complete"] and chain["anchor"] is None
    assert "issuer not found: CN=Path Test Class 3 Public Primary Certification Authority" in chain["missing"]
    assert "chain_incomplete" in {w["code"] for w in report["warnings"]}
    # Given as an anchor, the cross certificate still does not end a path: it is not self-signed.
    (built,) = certs.build_chains(shape.leaf, [shape.intermediate], anchors=[shape.cross])
    assert not built.complete and built.path[-1] == shape.cross


# --- item 7: bounded ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mesh() -> tuple[certs.Certificate, list[certs.Certificate]]:
    return branching(6, 4, NOW)  # 30 cross certificates + 4 roots + the leaf = 35 certificates


def test_a_branching_ca_file_gives_the_shortest_paths_and_one_too_many_paths_warning(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    mesh: tuple[certs.Certificate, list[certs.Certificate]],
) -> None:
    leaf, cas = mesh
    assert len(cas) + 1 == 35
    report = inspect(capsys, tmp_path, leaf, *cas)
    (warning,) = [w for w in report["warnings"] if w["code"] == "too_many_paths"]
    assert warning["certificate"] == certs.thumbprint(leaf)
    assert warning["message"].startswith("too many paths from mesh.path-test.example: more than ")
    chains = report["chains"]
    assert 0 < len(chains) <= certs.MAX_PATHS
    root0 = next(c for c in cas if certs.is_self_signed(c) and c.subject == leaf.issuer)
    assert chains[0]["path"] == tp(leaf, root0) and chains[0]["complete"]  # the shortest path is kept
    text = inspect(capsys, tmp_path, leaf, *cas, json_out=False)
    assert text.count("! too_many_paths:") == 1


def test_the_runbook_refuses_a_branching_file_saying_too_many_paths(
    mesh: tuple[certs.Certificate, list[certs.Certificate]],
) -> None:
    leaf, cas = mesh
    expected = certs.expect_chain(leaf, supplied=cas, now_utc=NOW)  # no root of the mesh is trusted
    assert not expected.ok
    assert expected.problems[0].code == "too_many_paths"
    assert "too many paths from mesh.path-test.example" in expected.message()
    assert "only the new certificate and the CA certificates of its chain" in expected.hint()
    # Trusted: the shortest usable path is still found.
    roots = [certs.Source(c, "ROOT") for c in cas if certs.is_self_signed(c)]
    usable = certs.expect_chain(leaf, supplied=cas, stores=roots, now_utc=NOW)
    assert usable.ok and len(usable.path) == 2


def test_signatures_are_checked_once_per_builder(
    mesh: tuple[certs.Certificate, list[certs.Certificate]],
) -> None:
    leaf, cas = mesh
    builder = certs.PathBuilder(cas)
    first = builder.search(leaf)
    checks = builder.signature_checks
    assert first.truncated and checks <= (len(cas) + 1) ** 2
    again = builder.search(leaf)
    assert builder.signature_checks == checks  # memoized: the second search verifies nothing
    assert [p.certs for p in again.paths] == [p.certs for p in first.paths]


def test_a_vendor_bundle_groups_the_certificates_left_out_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bundle = vendor_bundle(60, NOW)
    report = inspect(capsys, tmp_path, *bundle)
    left = report["left_out"]
    assert len(left) == 60 and {e["sha1"] for e in left} == set(tp(*bundle[3:]))
    assert sum("expired" in e["warnings"] for e in left) == 6
    (grouped,) = [w for w in report["warnings"] if w["code"] == "certificates_left_out"]
    assert grouped["message"].startswith("60 certificate(s) of the sources are on no chain of the leaf")
    assert not [w for w in report["warnings"] if w["certificate"] in {e["sha1"] for e in left}]
    assert [c["path"] for c in report["chains"]] == [tp(*bundle[:3])]
    text = inspect(capsys, tmp_path, *bundle, json_out=False)
    assert text.count("! certificates_left_out:") == 1 and "! expired:" not in text


# --- the rehearsal host's own engine agrees -----------------------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "chain"),
    [
        ("default", "g5"),
        ("no-g5", "g5"),
        ("modern-chain", "modern"),
        ("cross-to-older-root", "cross-to-older-root"),
        ("expired-cross", "expired-cross"),
    ],
)
def test_the_rehearsal_engine_and_the_kit_agree_once_step_0_disabled_the_forbidden_roots(
    tmp_path: Path, scenario: str, chain: str
) -> None:
    clock = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    host = scenarios.build_host(scenario, workdir=tmp_path, now_utc=clock)
    pki = make_pki(now_utc=clock, hostnames=scenarios.HOSTNAMES, chain=chain)
    for phys in stores.ROOT_PHYSICAL:  # what step 0 does: every forbidden root disabled for all purposes
        for entry in stores.certificates(host, phys):
            if certs.is_forbidden_root(entry.cert, pki.forbidden_thumbprints):
                assert stores.set_eku(host, phys, entry.thumbprint, [], physical=phys)
    sources = [
        certs.Source(e.cert, phys, not e.disabled)
        for phys in ("CA", *stores.ROOT_PHYSICAL)
        for e in stores.certificates(host, phys)
    ]
    kit = certs.expect_chain(
        pki.new_leaf,
        supplied=pki.chain.mailed,
        stores=sources,
        forbidden_roots=pki.forbidden_thumbprints,
        now_utc=clock,
    )
    emulated = chainbuild.build_path(host, pki.new_leaf, extra=pki.chain.mailed, now_utc=clock)
    assert kit.ok is emulated.ok, (kit.message(), emulated.error)
    if kit.ok:
        assert list(kit.thumbprints) == tp(*emulated.certs)


def test_two_self_signed_leaves_in_one_file_each_get_their_chain(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pki = make_pki(now_utc=NOW)
    other = make_pki(now_utc=NOW, hostnames=("other.example.jp",))
    report = inspect(capsys, tmp_path, pki.self_signed_leaf, other.self_signed_leaf, pki.intermediate)
    leaves = {c["leaf"] for c in report["chains"]}
    assert {certs.thumbprint(pki.self_signed_leaf), certs.thumbprint(other.self_signed_leaf)} <= leaves
    assert [e["sha1"] for e in report["left_out"]] == [certs.thumbprint(pki.intermediate)]
