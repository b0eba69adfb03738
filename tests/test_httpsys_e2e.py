"""Issue 23's "done when": a renewal started from each IIS 7–10 scenario's own parameters file (what
``opslib rehearse serve --params-out`` writes: NTLM with message encryption, the scenario's ssl_port)
succeeds and serves the new certificate on every HTTP.sys endpoint of the production site; the
foreign-AppId variant refuses in the pre-flight, before step 0 changes anything.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import conftest
import pytest
import yaml
from secretscan import assert_no_secrets

from opslib import cli, rehearsal
from opslib.rehearsal import scenarios
from opslib.rehearsal.host import Host

PARAMETERS = r"HKLM\SYSTEM\CurrentControlSet\Services\HTTP\Parameters"
ENDPOINTS = {
    "iis75-ja": [r"SslBindingInfo\0.0.0.0:443"],
    "iis85": [r"SslSniBindingInfo\www1.example.jp:443"],
    "iis10": [r"SslBindingInfo\0.0.0.0:443"],
    "iis10-sni": [r"SslSniBindingInfo\www1.example.jp:443"],
    "iis10-dualstack": [r"SslBindingInfo\0.0.0.0:443", r"SslBindingInfo\[::]:443"],
}


@pytest.fixture(scope="module")
def secrets_() -> Iterator[list[str]]:
    names = ("OPSLIB_HTTPSYS_WINRM", "OPSLIB_HTTPSYS_PFX")
    with conftest.random_secrets(*names) as values:
        yield values


def _start(base: Path, secrets: list[str], scenario: str) -> tuple[rehearsal.Rehearsal, Path]:
    auth = scenarios.shipped_auth(scenario)  # what `opslib rehearse serve` starts without --auth
    reh = rehearsal.start(
        scenario=scenario,
        password=secrets[0],
        workdir=base / "host",
        state_file=base / "state.json",
        auth=auth,
    )
    data = reh.params(
        password_env="OPSLIB_HTTPSYS_WINRM", pfx_password_env="OPSLIB_HTTPSYS_PFX", backup_dir=str(base / "b")
    )
    path = base / "web01.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")  # as --params-out writes it
    return reh, path


def _hash(host: Host, key: str) -> str:
    value = host.reg_get(PARAMETERS + "\\" + key, "SslCertHash")
    return bytes(value[2]).hex().upper() if value else ""


@pytest.mark.parametrize("scenario", list(ENDPOINTS))
def test_each_scenarios_own_parameters_renew_every_endpoint(
    tmp_path: Path, secrets_: list[str], scenario: str
) -> None:
    assert scenarios.shipped_auth(scenario) == "ntlm"
    reh, params = _start(tmp_path, secrets_, scenario)
    try:
        data = yaml.safe_load(params.read_text(encoding="utf-8"))
        assert data["winrm"]["transport"] == "ntlm" and data["ssl_port"] == (
            8443 if scenario == "iis75-ja" else 443
        )
        host = reh.host
        old, new = host.extra["current_thumbprint"], host.extra["new_thumbprint"]
        assert [_hash(host, k) for k in ENDPOINTS[scenario]] == [old] * len(ENDPOINTS[scenario])
        evidence = tmp_path / "evidence"
        assert cli.main(["run", str(params), "--evidence-root", str(evidence), "--yes"]) == 0
        run_dir = next(p for p in evidence.iterdir() if (p / "run.json").is_file())
        manifest = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        assert manifest["status"] == "succeeded"
        assert [_hash(host, k) for k in ENDPOINTS[scenario]] == [new] * len(ENDPOINTS[scenario])
        assert host.web_sites[1].state == "Started"
        assert_no_secrets(evidence, secrets_)
    finally:
        reh.stop()


def test_a_foreign_app_id_endpoint_stops_the_run_before_step_0_changes_anything(
    tmp_path: Path, secrets_: list[str]
) -> None:
    reh, params = _start(tmp_path, secrets_, "iis10-dualstack-foreign")
    try:
        before = json.dumps(reh.host.state()["registry"], sort_keys=True, default=str)
        evidence = tmp_path / "evidence"
        assert cli.main(["run", str(params), "--evidence-root", str(evidence), "--yes"]) != 0
        run_dir = next(p for p in evidence.iterdir() if (p / "run.json").is_file())
        manifest = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        assert manifest["status"] == "failed" and manifest["failed_step"] == "00_precheck_root_store"
        assert "ipport=[::]:443" in manifest["error"] and "another application" in manifest["error"]
        # Nothing changed: not the roots step 0 would disable, not a binding.
        assert json.dumps(reh.host.state()["registry"], sort_keys=True, default=str) == before
    finally:
        reh.stop()


def test_the_dry_run_plan_names_every_endpoint_and_the_netsh_verbs(
    tmp_path: Path, secrets_: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    reh, params = _start(tmp_path, secrets_, "iis10-dualstack")
    try:
        before = json.dumps(reh.host.state()["registry"], sort_keys=True, default=str)
        evidence = tmp_path / "evidence"
        assert cli.main(["run", str(params), "--evidence-root", str(evidence), "--dry-run", "--yes"]) == 0
        run_dir = next(p for p in evidence.iterdir() if (p / "run.json").is_file())
        facts = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))["facts"]
        plan = {(r["target"], r["field"]): r for r in facts["swap_plan"]}
        new = reh.host.extra["new_thumbprint"]
        assert plan[("HTTP.sys ipport=0.0.0.0:443", "SslCertHash")]["after"] == new
        assert plan[("HTTP.sys ipport=[::]:443", "SslCertHash")]["after"] == new
        assert plan[("HTTP.sys (netsh http)", "verbs")]["after"].startswith("netsh http update sslcert;")
        # The console's plan, as the operator (and the change approver) reads it.
        shown = "".join(capsys.readouterr())
        assert (
            f"HTTP.sys ipport=[::]:443: SslCertHash {reh.host.extra['current_thumbprint']} → {new}" in shown
        )
        assert (
            "HTTP.sys (netsh http): verbs (none) → netsh http update sslcert; on failure: delete, add"
            in shown
        )
        assert json.dumps(reh.host.state()["registry"], sort_keys=True, default=str) == before
    finally:
        reh.stop()


def test_a_work_port_step_1_would_refuse_stops_the_run_in_step_0_with_nothing_changed(
    tmp_path: Path, secrets_: list[str]
) -> None:
    # The new-user case: iis75-ja with ssl_port 443 (IIS 7.5 has one certificate per IP:port).
    reh, params = _start(tmp_path, secrets_, "iis75-ja")
    try:
        data = yaml.safe_load(params.read_text(encoding="utf-8"))
        data["ssl_port"] = 443
        params.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        before = json.dumps(reh.host.state()["registry"], sort_keys=True, default=str)
        evidence = tmp_path / "evidence"
        assert cli.main(["run", str(params), "--evidence-root", str(evidence), "--yes"]) != 0
        run_dir = next(p for p in evidence.iterdir() if (p / "run.json").is_file())
        manifest = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        assert manifest["failed_step"] == "00_precheck_root_store"
        assert (
            "would change the certificate of W3SVC/1" in manifest["error"] and "ssl_port" in manifest["error"]
        )
        # The G5 root step 0 would disable is still enabled: the registry is as it was.
        assert json.dumps(reh.host.state()["registry"], sort_keys=True, default=str) == before
    finally:
        reh.stop()
