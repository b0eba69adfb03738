"""IIS 6 SSLCertHash inheritance (docs/windows-behaviour.md W-IIS6-SSLCERTHASH-INHERIT) on the rehearsal host.

Scenario ``iis6-inherited``: the production site has no SSLCertHash of its own and serves the
certificate set on ``/LM/W3SVC``. A renewal must end with production holding its OWN new SSLCertHash
(never left inheriting), read back as own, and the run says own/inherited before and after the swap.
"""

from __future__ import annotations

import json
import os
import secrets as random
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from opslib import cli, rehearsal
from opslib.iis.base import check_swap
from opslib.iis.iis6_helper import site_from
from opslib.rehearsal.programs.cscript import describe


def _step_facts(manifest: dict[str, Any], key: str) -> Any:
    for step in manifest.get("steps", []):
        if key in (step.get("facts") or {}):
            return step["facts"][key]
    return manifest.get("facts", {}).get(key)


@pytest.fixture(scope="module")
def renewal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One renewal on ``iis6-inherited`` (the host kept running for the rollback tests after it)."""
    tmp_path = tmp_path_factory.mktemp("inherit")
    patch = pytest.MonkeyPatch()
    patch.setenv("OPSLIB_STEP_ENGINE", "inprocess")  # the step notebooks' code without kernels (fast)
    patch.setenv("OPSLIB_INH_WINRM", f"W{random.token_urlsafe(15)}")
    patch.setenv("OPSLIB_INH_PFX", f"P{random.token_urlsafe(15)}")
    try:
        with rehearsal.start(
            scenario="iis6-inherited", password=os.environ["OPSLIB_INH_WINRM"], workdir=tmp_path / "host"
        ) as reh:
            host = reh.host
            production = host.sites[1]
            facts: dict[str, Any] = {
                "host": host,
                "tmp": tmp_path,
                "current": host.extra["current_thumbprint"],
                "own_before": production.ssl_cert_hash,
                "w3svc_before": host.extra["w3svc_ssl_cert_hash"],
                "described_before": describe(production, host),
            }
            data = reh.params(
                password_env="OPSLIB_INH_WINRM",
                pfx_password_env="OPSLIB_INH_PFX",
                backup_dir=str(tmp_path / "b"),
            )
            params_file = tmp_path / "params.yaml"
            params_file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
            evidence = tmp_path / "evidence"
            facts["code"] = cli.main(["run", str(params_file), "--evidence-root", str(evidence), "--yes"])
            facts["run_dir"] = sorted(p for p in evidence.iterdir() if (p / "run.json").is_file())[-1]
            facts["new"] = production.ssl_cert_hash
            facts["described_after"] = describe(production, host)
            yield facts
    finally:
        patch.undo()


def test_a_renewal_on_iis6_inherited_leaves_production_with_its_own_new_certificate(
    renewal: dict[str, Any],
) -> None:
    current = renewal["current"]
    # before: no own value, the service-level certificate is the effective one, said inherited
    assert (renewal["own_before"], renewal["w3svc_before"]) == ("", current)
    before = renewal["described_before"]
    assert (before["cert_hash"], before["cert_hash_inherited"]) == (current, True)
    assert renewal["code"] == 0
    new = renewal["new"]
    assert new and new != current  # production holds its OWN value now: the new certificate
    after = renewal["described_after"]
    assert (after["cert_hash"], after["cert_hash_inherited"], after["store_name"]) == (new, False, "MY")
    assert renewal["host"].extra["w3svc_ssl_cert_hash"] == current  # the service level is not touched

    manifest = json.loads((renewal["run_dir"] / "run.json").read_text(encoding="utf-8"))
    assert _step_facts(manifest, "old_cert_source") == "inherited"
    assert _step_facts(manifest, "cert_source_after") == "own"
    assert _step_facts(manifest, "old_thumbprint") == current
    rollback = yaml.safe_load((renewal["run_dir"] / "rollback.yaml").read_text(encoding="utf-8"))
    assert rollback["rollback"]["old_cert_source"] == "inherited"


def _rollback(renewal: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = cli.main(["rollback", str(renewal["run_dir"]), "--yes"])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_a_rollback_stops_before_any_change_when_w3svc_holds_another_certificate_now(
    renewal: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """The service-level value changed after the renewal: clearing the site's own value would serve that
    one, not the old certificate. The rollback stops naming both; production keeps its own new value."""
    host, current, new = renewal["host"], renewal["current"], renewal["new"]
    other = "AB" * 20
    host.extra["w3svc_ssl_cert_hash"] = other
    try:
        code, printed = _rollback(renewal, capsys)
        assert code != 0
        error = next(line for line in printed.splitlines() if line.startswith("opslib: error:"))
        assert "PreconditionFailed" in error and f"inherited certificate {current}" in error
        assert f"W3SVC now holds {other}" in error
        production = host.sites[1]
        assert (production.ssl_cert_hash, production.state) == (new, 2)  # untouched: own new value, started
    finally:
        host.extra["w3svc_ssl_cert_hash"] = current


def test_a_rollback_of_an_inherited_site_restores_inheritance_and_reads_it_back(
    renewal: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    host, current = renewal["host"], renewal["current"]
    code, printed = _rollback(renewal, capsys)
    assert code == 0, printed
    production = host.sites[1]
    assert production.ssl_cert_hash == ""  # no own value again: the site inherits
    described = describe(production, host)
    assert (described["cert_hash"], described["cert_hash_inherited"], described["state"]) == (
        current,
        True,
        2,
    )
    assert host.extra["w3svc_ssl_cert_hash"] == current
    runs = sorted(p for p in (renewal["tmp"] / "evidence").iterdir() if (p / "run.json").is_file())
    manifest = json.loads((runs[-1] / "run.json").read_text(encoding="utf-8"))
    assert _step_facts(manifest, "restored_thumbprint") == current
    assert _step_facts(manifest, "restored_cert_source") == "inherited"
    plan = _step_facts(manifest, "rollback_plan")
    assert any(
        r["field"] == "SSLCertHash" and r["after"] == f"{current} (inherited from W3SVC)" for r in plan
    )
    # Idempotent: a second rollback finds inheritance in place and changes nothing.
    code, printed = _rollback(renewal, capsys)
    assert code == 0, printed
    assert host.sites[1].ssl_cert_hash == ""


def test_the_read_back_fails_on_an_inherited_value_equal_to_the_new_one() -> None:
    """check_swap compares the site's OWN value: an inherited one, even the right thumbprint, fails."""
    thumb = "AB" * 20
    inherited = site_from(
        {
            "id": 1,
            "name": "www1",
            "state": 2,
            "secure_bindings": [":443:"],
            "cert_hash": thumb,
            "cert_hash_inherited": True,
            "store_name": "MY",
        }
    )
    rows = check_swap([inherited], production_site="W3SVC/1", new_thumbprint=thumb, host="h", dry_run=True)
    row = next(r for r in rows if r["check"] == "production certificate")
    assert (row["ok"], row["actual"]) == (False, f"{thumb} (inherited from W3SVC)")
    own = site_from({"id": 1, "name": "www1", "state": 2, "secure_bindings": [":443:"], "cert_hash": thumb})
    rows = check_swap([own], production_site="W3SVC/1", new_thumbprint=thumb, host="h", dry_run=True)
    assert next(r for r in rows if r["check"] == "production certificate")["ok"]
