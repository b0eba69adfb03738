"""IIS 6 SSLCertHash inheritance (docs/windows-behaviour.md W-IIS6-SSLCERTHASH-INHERIT) on the rehearsal host.

Scenario ``iis6-inherited``: the production site has no SSLCertHash of its own and serves the
certificate set on ``/LM/W3SVC``. A renewal must end with production holding its OWN new SSLCertHash
(never left inheriting), read back as own, and the run says own/inherited before and after the swap.
"""

from __future__ import annotations

import json
import os
import secrets as random
from pathlib import Path
from typing import Any

import pytest
import yaml

from opslib import cli, rehearsal
from opslib.iis.base import check_swap
from opslib.iis.iis6_helper import site_from
from opslib.rehearsal.programs.cscript import describe


def _manifest(evidence_root: Path) -> dict[str, Any]:
    runs = sorted(p for p in evidence_root.iterdir() if (p / "run.json").is_file())
    return json.loads((runs[-1] / "run.json").read_text(encoding="utf-8"))


def _step_facts(manifest: dict[str, Any], key: str) -> Any:
    for step in manifest.get("steps", []):
        if key in (step.get("facts") or {}):
            return step["facts"][key]
    return manifest.get("facts", {}).get(key)


def test_a_renewal_on_iis6_inherited_leaves_production_with_its_own_new_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSLIB_INH_WINRM", f"W{random.token_urlsafe(15)}")
    monkeypatch.setenv("OPSLIB_INH_PFX", f"P{random.token_urlsafe(15)}")
    with rehearsal.start(
        scenario="iis6-inherited", password=os.environ["OPSLIB_INH_WINRM"], workdir=tmp_path / "host"
    ) as reh:
        host = reh.host
        production = host.sites[1]
        current = host.extra["current_thumbprint"]
        # before: no own value, the service-level certificate is the effective one, said inherited
        assert (production.ssl_cert_hash, host.extra["w3svc_ssl_cert_hash"]) == ("", current)
        before = describe(production, host)
        assert (before["cert_hash"], before["cert_hash_inherited"]) == (current, True)

        data = reh.params(
            password_env="OPSLIB_INH_WINRM", pfx_password_env="OPSLIB_INH_PFX", backup_dir=str(tmp_path / "b")
        )
        params_file = tmp_path / "params.yaml"
        params_file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        code = cli.main(["run", str(params_file), "--evidence-root", str(tmp_path / "evidence"), "--yes"])
        assert code == 0

        new = production.ssl_cert_hash
        assert new and new != current  # production holds its OWN value now: the new certificate
        after = describe(production, host)
        assert (after["cert_hash"], after["cert_hash_inherited"], after["store_name"]) == (new, False, "MY")
        assert host.extra["w3svc_ssl_cert_hash"] == current  # the service level is not touched

    manifest = _manifest(tmp_path / "evidence")
    assert _step_facts(manifest, "old_cert_source") == "inherited"
    assert _step_facts(manifest, "cert_source_after") == "own"
    assert _step_facts(manifest, "old_thumbprint") == current


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
