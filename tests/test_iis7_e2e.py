"""``opslib run`` end to end on IIS 7.5 and IIS 10 rehearsal hosts: the same runbook and notebooks as
on IIS 6, through the IIS 7–10 backend (appcmd, HTTP.sys bindings via netsh http, reg export).

What a user would see is asserted: exit codes, the run's facts, and what the emulated server holds
afterwards — the production binding in the emulated registry (SslBindingInfo / SslSniBindingInfo),
the sites' states, and what its TLS endpoint serves per host name, with SNI and without.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import conftest
import pytest
import yaml
from secretscan import assert_no_secrets

from opslib import certs, cli, rehearsal, tls
from opslib.rehearsal.host import Host

PARAMETERS = r"HKLM\SYSTEM\CurrentControlSet\Services\HTTP\Parameters"
IPPORT_443 = PARAMETERS + r"\SslBindingInfo\0.0.0.0:443"
SNI_WWW1 = PARAMETERS + r"\SslSniBindingInfo\www1.example.jp:443"
SNI_WWW2 = PARAMETERS + r"\SslSniBindingInfo\www2.example.jp:443"


@pytest.fixture(scope="module")
def secrets_() -> Iterator[list[str]]:
    names = ("OPSLIB_IIS7_WINRM", "OPSLIB_IIS7_PFX")
    with conftest.random_secrets(*names) as values:
        yield values


@dataclass
class Setup:
    reh: rehearsal.Rehearsal
    params_file: Path
    evidence_root: Path

    @property
    def host(self) -> Host:
        return self.reh.host

    def run(self, *extra: str) -> int:
        return cli.main(["run", str(self.params_file), "--evidence-root", str(self.evidence_root), *extra])

    def run_dir(self) -> Path:
        return sorted(p for p in self.evidence_root.iterdir() if (p / "run.json").is_file())[0]

    def manifest(self) -> dict[str, Any]:
        return json.loads((self.run_dir() / "run.json").read_text(encoding="utf-8"))


def start(base: Path, secrets: list[str], scenario: str, *, faults: list[str] | None = None) -> Setup:
    reh = rehearsal.start(
        scenario=scenario,
        password=secrets[0],
        workdir=base / "host",
        state_file=base / "state.json",
        faults=faults or [],
    )
    data = reh.params(
        password_env="OPSLIB_IIS7_WINRM", pfx_password_env="OPSLIB_IIS7_PFX", backup_dir=str(base / "backups")
    )
    if scenario == "iis75-ja":
        # IIS 7.5 has no SNI and one certificate per IP:port: the work site gets a port of its own.
        data["ssl_port"] = 8443
    path = base / "params" / "web01.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return Setup(reh, path, base / "evidence")


def cert_hash(host: Host, key: str) -> str:
    value = host.reg_get(key, "SslCertHash")
    return bytes(value[2]).hex().upper() if value else ""


def served(host: Host, servername: str | None) -> str:
    port = host.extra["tls_ports"]["0.0.0.0:443"]
    return tls.fetch_chain("127.0.0.1", port, servername=servername, timeout_s=5).thumbprints[0]


def http_keys(host: Host) -> dict[str, Any]:
    return {k: v for k, v in host.state()["registry"].items() if k.upper().startswith(PARAMETERS.upper())}


@pytest.mark.parametrize(
    "scenario",
    # iis10 on real kernels: the IIS 7+ family's full renewal through papermill (tests/conftest.py)
    ["iis75-ja", pytest.param("iis10", marks=pytest.mark.kernel), "iis10-sni"],
)
def test_a_full_run_renews_the_production_binding(tmp_path: Path, secrets_: list[str], scenario: str) -> None:
    setup = start(tmp_path, secrets_, scenario)
    host = setup.host
    old, new = host.extra["current_thumbprint"], host.extra["new_thumbprint"]
    production_key = SNI_WWW1 if scenario == "iis10-sni" else IPPORT_443
    try:
        assert setup.run("--yes") == 0
        m = setup.manifest()
        assert (m["status"], m["failed_step"]) == ("succeeded", None)
        facts = m["facts"]
        assert (facts["old_thumbprint"], facts["new_thumbprint"]) == (old, new)
        assert facts["pfx_export_route"] == "certutil -exportPFX"
        assert facts["iis_backend"] == "IIS 7-10 (appcmd, HTTP.sys bindings via netsh http)"
        assert facts["server"]["iis"] == ("7.5" if scenario == "iis75-ja" else "10.0")
        # The production binding in the emulated registry, the sites' states.
        assert cert_hash(host, production_key) == new
        assert [host.web_sites[i].state for i in (1, 2)] == ["Started", "Stopped"]
        # Served per host name: www1 with SNI the new one; without SNI what the IP:port binding says.
        assert facts["served_leaf_sni"] == served(host, "www1.example.jp") == new
        if scenario == "iis10-sni":
            others = host.extra["other_thumbprints"]
            assert cert_hash(host, SNI_WWW2) == served(host, "www2.example.jp") == others["www2.example.jp"]
            assert cert_hash(host, IPPORT_443) == served(host, None) == others["legacy.example.jp"]
            assert facts["served_leaf_no_sni"] == others["legacy.example.jp"]
            assert "a client without SNI gets" in facts["no_sni_fallback"]
            assert facts["old_secure_bindings"] == [":443:www1.example.jp"]
            # The undo, as a user runs it: the old certificate back on www1 only.
            assert cli.main(["run", str(setup.run_dir() / "rollback.yaml"), "--yes"]) == 0
            assert cert_hash(host, SNI_WWW1) == served(host, "www1.example.jp") == old
            assert cert_hash(host, SNI_WWW2) == others["www2.example.jp"]
            assert cert_hash(host, IPPORT_443) == others["legacy.example.jp"]
            assert host.web_sites[1].state == "Started"
        else:
            assert facts["served_leaf_no_sni"] == served(host, None) == new
            assert facts["old_secure_bindings"] == [":443:"]
        assert_no_secrets(setup.evidence_root, secrets_)
    finally:
        setup.reh.stop()


def test_a_dry_run_changes_nothing_on_iis10(tmp_path: Path, secrets_: list[str]) -> None:
    setup = start(tmp_path, secrets_, "iis10")
    try:
        before = setup.host.state()
        assert setup.run("--dry-run") == 0
        after = setup.host.state()
        m = setup.manifest()
        assert (m["status"], m["dry_run"]) == ("succeeded", True)
        plan = m["facts"]["swap_plan"]
        assert plan[0]["target"] == "HTTP.sys (netsh http)" and plan[0]["after"].startswith(
            "netsh http update"
        )
        assert {"field": "SslCertHash", "target": "HTTP.sys ipport=0.0.0.0:443"}.items() <= plan[1].items()
    finally:
        setup.reh.stop()
    assert http_keys_of(after) == http_keys_of(before)
    assert (after["web_sites"], after["keys"]) == (before["web_sites"], before["keys"])


def http_keys_of(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in state["registry"].items() if k.upper().startswith(PARAMETERS.upper())}


@pytest.mark.parametrize(
    ("scenario", "fault", "binding"),
    [
        # IP:port bindings (SslBindingInfo): the one-line swap runs to its end, then the answer is lost.
        ("iis10", "after:swap:drop", IPPORT_443),
        # SNI bindings (SslSniBindingInfo): the swap's netsh command fails on the server.
        ("iis10-sni", "before:swap.update:fail", SNI_WWW1),
    ],
)
def test_a_swap_failed_by_name_keeps_a_valid_certificate_and_resumes_on_iis10(
    scenario: str,
    fault: str,
    binding: str,
    tmp_path: Path,
    secrets_: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """One test per HTTP.sys binding family: the swap failed by its named fault point (``opslib rehearse
    faults --scenario …`` lists it; no counting), production still serves a valid certificate, and the
    printed resume finishes the renewal."""
    setup = start(tmp_path, secrets_, scenario, faults=[fault])
    host = setup.host
    old, new = host.extra["current_thumbprint"], host.extra["new_thumbprint"]
    try:
        no_sni_before = served(host, None)
        assert setup.run("--yes") == 1
        err = capsys.readouterr().err
        run_dir = setup.run_dir()
        assert re.search(r"step 02_swap_certificate failed, cell \d+: \w+: ", err), err[-2000:]
        assert f"opslib resume {run_dir}" in err
        m = setup.manifest()
        assert (m["status"], m["failed_step"]) == ("failed", "02_swap_certificate")
        assert (run_dir / "rollback.yaml").is_file()
        # Whatever the kit saw, production is consistent: bound to one of the two certificates, the site
        # started, and a TLS handshake gets that certificate, within its validity; no other site changed.
        bound = cert_hash(host, binding)
        assert bound in (old, new) and host.web_sites[1].state == "Started"
        chain = tls.fetch_chain(
            "127.0.0.1", host.extra["tls_ports"]["0.0.0.0:443"], servername="www1.example.jp"
        )
        assert chain.thumbprints[0] == bound
        leaf = certs.summarize(chain.leaf)
        assert leaf.not_before_utc <= datetime.now(UTC) < leaf.not_after_utc
        sni_only = scenario == "iis10-sni"  # there the non-SNI site holds 0.0.0.0:443, untouched
        assert served(host, None) == (no_sni_before if sni_only else bound)
        setup.reh.set_faults([])
        assert cli.main(["resume", str(run_dir), "--yes"]) == 0
        runs = sorted(p for p in setup.evidence_root.iterdir() if (p / "run.json").is_file())
        assert len(runs) == 2 and runs[0] == run_dir  # the resume is a new run chained to the failed one
        m = json.loads((runs[1] / "run.json").read_text(encoding="utf-8"))
        assert (m["status"], m["failed_step"], m["mode"]) == ("succeeded", None, "resume")
        assert m["resumes"]["run_id"] == run_dir.name
        assert cert_hash(host, binding) == served(host, "www1.example.jp") == new
        assert served(host, None) == (no_sni_before if sni_only else new)
        assert_no_secrets(run_dir, secrets_)
        assert_no_secrets(runs[1], secrets_)
    finally:
        setup.reh.stop()
