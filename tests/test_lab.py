"""The lab check (issue 15): capture, compare, the committed bundles, the generated behaviour section.

Everything runs the real stack: pywinrm over HTTP against the rehearsal host, the CLI's ``main``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from secretscan import assert_no_secrets

from opslib import credentials as opslib_secrets
from opslib import lab, rehearsal
from opslib.cli import main
from opslib.errors import UsageError
from opslib.lab import behaviour
from opslib.lab.compare import SLOW_COMMAND_FAULTS
from opslib.winrm import connect

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "tests" / "captures"
BUNDLES = sorted(p.parent for p in CAPTURES.glob("*/capture.json"))


def _decisions(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["id"]: p["decision"] for p in manifest["probes"]}


def _params_file(r: rehearsal.Rehearsal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPSLIB_REHEARSAL_PASSWORD", r.password)
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(r.params()), encoding="utf-8")
    return path


# --- the committed bundles ---------------------------------------------------------------------------


def test_the_committed_bundles_cover_both_languages_and_tiers() -> None:
    facts = {(lab.load(b)["host"]["codepage"], lab.load(b)["tier"]) for b in BUNDLES}
    assert {437, 932} <= {cp for cp, _ in facts}
    assert {"read-only", "reversible"} <= {tier for _, tier in facts}
    for bundle in BUNDLES:
        manifest = lab.load(bundle)
        assert manifest["source"] == "rehearsal host"
        assert bundle.name in (CAPTURES / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: p.name)
def test_compare_finds_no_decision_relevant_difference_in_a_committed_bundle(
    bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["lab", "compare", str(bundle), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, [p for p in report["probes"] if not p["agrees"]]
    assert report["decision_differences"] == 0
    host = lab.load(bundle)["host"]
    expected = {8: "iis85"}.get(int(host.get("iis_major") or 0))  # IIS 8.x: the 2012 R2 scenario
    assert report["scenario"] == (expected or ("iis6-ja" if host["codepage"] == 932 else "default"))
    assert len(report["probes"]) == len(lab.probes_for(lab.load(bundle)["tier"]))


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: p.name)
def test_no_secret_or_private_key_in_a_committed_bundle(bundle: Path) -> None:
    assert_no_secrets(bundle, [])
    assert not list(bundle.rglob("*.pfx"))


def test_a_changed_bundle_is_refused(tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "bundle"
    shutil.copytree(BUNDLES[0], copy)
    target = next(copy.glob("probes/cmd.ver/*.stdout"))
    target.write_bytes(target.read_bytes() + b"x")
    with pytest.raises(UsageError, match=r"cmd\.ver.*changed since the capture"):
        lab.load(copy)
    assert main(["lab", "compare", str(copy)]) == 2


def test_the_behaviour_section_is_generated_from_the_bundles() -> None:
    doc = ROOT / "docs" / "windows-behaviour.md"
    text = doc.read_text(encoding="utf-8")
    assert behaviour.update_doc(doc, CAPTURES) == text, "run: python -m opslib.lab.behaviour"
    section = text.split(behaviour.BEGIN, 1)[1].split(behaviour.END, 1)[0]
    assert (
        "| `W-VER` | `cmd.ver` | `rehearsal-default-en437` (rehearsal host only — not a real server)"
        in section
    )
    assert (
        "| `W-CERTUTIL-REPAIRSTORE-INF` | `store.throwaway` | `rehearsal-iis6-ja932` (rehearsal host only"
        in section
    )
    # No row claims "verified" from a rehearsal bundle: the counts line is untouched.
    assert "verified 0," in text
    assert not any(line.startswith("| W-") for line in section.splitlines())


# --- fresh captures -----------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", ["default", "iis6-ja"])
def test_the_reversible_tier_leaves_the_host_byte_identical_and_round_trips(
    scenario: str, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    with rehearsal.start(scenario=scenario, faults=list(SLOW_COMMAND_FAULTS), state_file=state) as r:
        before = state.read_bytes()
        mine_before = json.dumps(r.host.state(), sort_keys=True)
        with connect(
            r.url,
            transport="basic",
            username=r.user,
            password=r.password,
            host_label="web01",
            allow_unencrypted_basic=True,
            allow_cleartext_secrets=True,  # the throw-away PFX's one-time password over Basic/HTTP: a lab
        ) as conn:
            manifest = lab.capture_connection(
                conn, tmp_path / "bundle", tier="reversible", source="rehearsal host"
            )
        assert json.dumps(r.host.state(), sort_keys=True) == mine_before
        assert state.read_bytes() == before
        secrets = [r.password]
    decision = _decisions(manifest)["store.throwaway"]
    assert decision["present_after_add"] and decision["disabled_read_back"] and decision["restored_read_back"]
    assert decision["absent_after_delete"] and decision["pfx_gone_after_del"]
    assert_no_secrets(tmp_path / "bundle", [*secrets, *opslib_secrets.registered()])
    assert not list((tmp_path / "bundle").rglob("*.pfx"))
    result = lab.compare(tmp_path / "bundle")
    assert result.exit_code == 0, [v.row() for v in result.verdicts if not v.agrees]


@pytest.mark.parametrize("scenario", ["iis10", "iis75-ja"])
def test_an_iis7_plus_capture_round_trips_with_the_appcmd_site_list(scenario: str, tmp_path: Path) -> None:
    manifest = lab.capture_rehearsal(tmp_path / "bundle", scenario=scenario)
    assert _decisions(manifest)["iis.sites"] == {"backend": "appcmd", "exit_code": 0, "xml": True}
    assert lab.scenario_for(manifest["host"]) == scenario
    result = lab.compare(tmp_path / "bundle")
    assert (result.scenario, result.exit_code) == (scenario, 0)


def test_cli_capture_through_a_parameters_file_then_compare(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with rehearsal.start(scenario="iis6-ja", faults=list(SLOW_COMMAND_FAULTS)) as r:
        params = _params_file(r, tmp_path, monkeypatch)
        out = tmp_path / "bundle"
        assert main(["lab", "capture", str(params), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "code page 932, language ja" in printed and f"opslib lab compare {out}" in printed
    manifest = lab.load(out)
    assert manifest["source"] == "operator capture" and manifest["tier"] == "read-only"
    assert manifest["host"]["windows_version"] == "5.2.3790" and manifest["host"]["iis_major"] == 6
    assert manifest["host"]["winrm_stack"] == "1.1"
    assert_no_secrets(out, [r.password])
    assert main(["lab", "compare", str(out)]) == 0
    assert "no decision-relevant difference" in capsys.readouterr().out


def test_reversible_refuses_without_a_terminal_and_without_yes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with rehearsal.start() as r:
        params = _params_file(r, tmp_path, monkeypatch)
        monkeypatch.setattr("sys.stdin", io.StringIO(""))
        out = tmp_path / "bundle"
        assert main(["lab", "capture", str(params), "--out", str(out), "--reversible"]) == 2
        assert "needs a yes" in capsys.readouterr().err
        assert not out.exists()

        class Tty(io.StringIO):
            def isatty(self) -> bool:
                return True

        monkeypatch.setattr("sys.stdin", Tty(""))
        monkeypatch.setattr("builtins.input", lambda prompt="": "no")
        assert main(["lab", "capture", str(params), "--out", str(out), "--reversible"]) == 2
        assert "not confirmed; nothing was changed" in capsys.readouterr().err
        assert not out.exists()


def test_capture_refuses_a_folder_that_is_not_empty_before_connecting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPSLIB_LAB_TEST_PASSWORD", "not-used-x1")
    params = tmp_path / "lab.yaml"
    # Nothing listens on port 9 of loopback: reaching the connection would fail differently (exit 1).
    params.write_text(
        yaml.safe_dump(
            {
                "host": "web01",
                "winrm": {
                    "url": "http://127.0.0.1:9/wsman",
                    "username": "u",
                    "password": "env:OPSLIB_LAB_TEST_PASSWORD",
                },
            }
        ),
        encoding="utf-8",
    )
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x", encoding="utf-8")
    assert main(["lab", "capture", str(params), "--out", str(tmp_path / "out")]) == 2
    assert "is not an empty folder" in capsys.readouterr().err
    (tmp_path / "out" / "keep.txt").unlink()  # the same file with an empty folder reaches the connection
    assert main(["lab", "capture", str(params), "--out", str(tmp_path / "out")]) == 1


# --- a host that behaves differently is reported -----------------------------------------------------


def _capture_then_compare(tmp_path: Path, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    out = tmp_path / "bundle"
    lab.capture_rehearsal(out, **kwargs)
    result = lab.compare(out)  # the scenario is chosen from the captured host: default / iis6-ja
    return result.exit_code, {v.id: v for v in result.verdicts}


def test_a_certutil_whose_probe_denies_export_pfx_is_a_difference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bundle"
    lab.capture_rehearsal(out, scenario="exportpfx-probe-denies")
    assert main(["lab", "compare", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "certutil.help.exportPFX" in printed and "DIFFERS" in printed
    assert "1 decision-relevant difference(s)" in printed
    line = next(x for x in printed.splitlines() if x.startswith("certutil.help.exportPFX"))
    assert "exit_code: -2147024809 vs 0" in line and "W-CERTUTIL-PROBE-EXPORTPFX" in line


def test_a_del_that_silently_fails_is_a_difference(tmp_path: Path) -> None:
    code, verdicts = _capture_then_compare(tmp_path, scenario="pfx-locked", tier="reversible")
    assert code == 1
    diffs = verdicts["store.throwaway"].decision_diffs
    assert diffs == [{"key": "pfx_gone_after_del", "captured": False, "rehearsal": True}]
    assert all(v.agrees for k, v in verdicts.items() if k != "store.throwaway")


def test_a_different_timeout_fault_is_a_difference(tmp_path: Path) -> None:
    code, verdicts = _capture_then_compare(tmp_path, faults=["before:ping:fault500"])
    assert code == 1
    assert verdicts["winrm.receive-timeout"].decision_diffs == [
        {"key": "at", "captured": "Command", "rehearsal": "Receive"},
        {"key": "fault_code", "captured": 2150859120, "rehearsal": 2150858793},
    ]
    assert [k for k, v in verdicts.items() if not v.agrees] == ["winrm.receive-timeout"]


def test_a_different_language_is_cosmetic_only(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    lab.capture_rehearsal(out, scenario="default", locale="ja")
    result = lab.compare(out, scenario="default")
    assert result.exit_code == 0
    assert any("bytes differ" in c for v in result.verdicts for c in v.cosmetic)


# --- the operator's notebook -----------------------------------------------------------------------


@pytest.mark.kernel
def test_the_lab_check_notebook_runs_under_papermill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import papermill as pm

    with rehearsal.start(scenario="exportpfx-probe-denies", faults=list(SLOW_COMMAND_FAULTS)) as r:
        params = _params_file(r, tmp_path, monkeypatch)
        out = tmp_path / "lab_check.ipynb"
        pm.execute_notebook(
            str(ROOT / "notebooks" / "lab_check.ipynb"),
            str(out),
            parameters={"params_file": str(params), "out_dir": str(tmp_path / "bundle")},
            kernel_name="python3",
            cwd=str(tmp_path),
            progress_bar=False,
        )
    nb = json.loads(out.read_text(encoding="utf-8"))
    text = json.dumps(nb["cells"], ensure_ascii=False)
    # The captured host's certutil denies -exportPFX in its -? probe: that belief is red, with its meaning.
    assert "1 belief(s) do not hold on this host: do not renew until they are fixed" in text
    assert "certutil.help.exportPFX" in text and "step 3 may pick the wrong export route" in text
    assert "#fde2e1" in text and "#d8f3dc" in text  # red and green rows
    assert_no_secrets(tmp_path / "bundle", [r.password])
    assert_no_secrets(out.parent, [r.password])
