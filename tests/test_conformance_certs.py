"""The conformance corpus's real certificates (``tests/conformance/certs/``): ``opslib inspect`` on the real
G5 bundle of issue 24 item 6 — an intermediate issued under the G5 key, the G5 root, the G5 cross
certificate and the v1 Class 3 PCA root — gives both paths and flags the forbidden root; the runbook's
expected chain and the rehearsal host's own chain engine agree with it."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import corpus
import pytest

from opslib import certs
from opslib.cli import main
from opslib.rehearsal import chainbuild, scenarios
from opslib.rehearsal.programs import stores

ENTRIES = {e.id: e for e in corpus.load("certs")}
G4, G5, CROSS, PCA = (
    "FF67367C5CD4DE4AE18BCCE1D70FDABD7C866135",
    certs.G5_THUMBPRINT,
    "32F30882622B87CF8856C63DB873DF0853B4DD27",
    "A1DB6393916F17E4185509400415C70240B0AE6B",
)
WHEN_VALID = datetime(2020, 6, 1, tzinfo=UTC)  # the G4 (to 2023-10-30) and the cross (to 2021-11-07) valid


def _certificates(entry_id: str) -> list[certs.Certificate]:
    return list(certs.load_certificates(ENTRIES[entry_id].output.encode(), source=entry_id).certificates)


def _bundle() -> list[certs.Certificate]:
    return [*_certificates("symantec-g4-intermediate"), *_certificates("verisign-g5-root-cross-pca")]


@pytest.mark.parametrize("entry_id", sorted(ENTRIES))
def test_each_entry_holds_the_certificates_it_names(entry_id: str) -> None:
    entry = ENTRIES[entry_id]
    assert [certs.thumbprint(c) for c in _certificates(entry_id)] == entry.extra["sha1"]
    assert entry.command == "opslib inspect bundle.pem" and entry.kind == "excerpt"


def test_the_real_g5_certificates_are_the_catalogues() -> None:
    catalogue = {e.sha1 for e in certs.KNOWN.entries}
    assert {G5, CROSS, PCA} <= catalogue
    real = {certs.thumbprint(c): c for c in _bundle()}
    # The G4 intermediate is really signed with the G5 key; the cross certificate carries that key.
    assert certs.key_matches(real[G5], real[CROSS])
    assert [ch.path[-1] for ch in certs.build_chains(real[G4], [real[G5]])] == [real[G5]]


def test_inspect_on_the_real_bundle_gives_both_paths_and_flags_the_forbidden_root(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pem = tmp_path / "bundle.pem"
    pem.write_text(ENTRIES["symantec-g4-intermediate"].output + ENTRIES["verisign-g5-root-cross-pca"].output)
    assert main(["inspect", str(pem), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    chains = {tuple(c["path"]): c for c in report["chains"]}
    assert set(chains) == {(G4, G5), (G4, CROSS, PCA)}
    assert chains[(G4, CROSS, PCA)]["complete"] and chains[(G4, CROSS, PCA)]["anchor"] == PCA
    assert not chains[(G4, CROSS, PCA)]["forbidden_root"]
    assert chains[(G4, G5)]["complete"] and chains[(G4, G5)]["forbidden_root"]
    flagged = [w for w in report["warnings"] if w["code"] == "forbidden_root_in_chain"]
    assert [w["certificate"] for w in flagged] == [G5]
    assert flagged[0]["message"].startswith("the chain of Symantec Class 3 Secure Server CA - G4 ends at")
    assert main(["inspect", str(pem)]) == 0
    text = capsys.readouterr().out
    assert (
        "  complete, anchor Class 3 Public Primary Certification Authority: Symantec Class 3 Secure Server CA"
        " - G4 → VeriSign Class 3 Public Primary Certification Authority - G5 → Class 3 Public Primary "
        "Certification Authority\n"
    ) in text
    assert "(FORBIDDEN ROOT): Symantec Class 3 Secure Server CA - G4 → VeriSign" in text


def test_the_runbook_and_the_rehearsal_engine_take_the_path_through_the_real_cross(tmp_path: Path) -> None:
    real = {certs.thumbprint(c): c for c in _bundle()}
    expected = certs.expect_chain(
        real[G4],
        supplied=[real[CROSS]],
        stores=[certs.Source(real[PCA], "ROOT"), certs.Source(real[G5], "AuthRoot")],
        now_utc=WHEN_VALID,
    )
    assert expected.ok, expected.message()
    assert expected.thumbprints == (G4, CROSS, PCA) and expected.needs_cross
    inspected = certs.build_chains(real[G4], list(real.values()))
    assert {c.thumbprints for c in inspected} == {
        tuple(certs.thumbprint(x) for x in p) for p in expected.tried
    }
    # The rehearsal host's engine, with the same stores and G5 disabled as step 0 leaves it.
    host = scenarios.build_host("modern-chain", workdir=tmp_path, now_utc=WHEN_VALID)
    stores.add_certificate(host, "ROOT", real[PCA])
    stores.add_certificate(host, "ROOT", real[G5], physical="AuthRoot", eku_disabled=True)
    path = chainbuild.build_path(host, real[G4], extra=[real[CROSS]], now_utc=WHEN_VALID)
    assert path.ok and tuple(certs.thumbprint(c) for c in path.certs) == expected.thumbprints
    # Today the real cross certificate has expired: the runbook refuses, naming it.
    today = certs.expect_chain(
        real[G4],
        supplied=[real[CROSS]],
        stores=[certs.Source(real[PCA], "ROOT"), certs.Source(real[G5], "AuthRoot")],
        now_utc=datetime(2026, 11, 20, tzinfo=UTC),
    )
    assert not today.ok and "expired_cross" in {p.code for p in today.problems}


def test_public_files_of_the_real_g5_certificates_are_pinned_and_name_only_its_certificates() -> None:
    """Where a public file holds the same certificate (checked by SHA-1 over the DER when it was added): a
    GitHub file at a fixed commit; "" says none was found (the cross certificate)."""
    entry = ENTRIES["verisign-g5-root-cross-pca"]
    files = entry.extra["public_files"]
    assert set(files) == set(entry.extra["sha1"])
    pinned = re.compile(r"^https://github\.com/[\w.-]+/[\w.-]+/blob/[0-9a-f]{40}/\S+$")
    assert all(pinned.match(url) for url in files.values() if url)
    assert files[CROSS] == "" and files[G5] and files[PCA]
