"""``opslib rehearse fleet``: N emulated servers in their own process tree, each on its own loopback address
with its own certificates and expiry, and an Ansible inventory that ``load_inventory`` reads back; and
``opslib fleet plan`` over it: every host's read-only pre-flight in parallel, nothing changed."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import ssl
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from secretscan import assert_no_secrets

from opslib.cli import main
from opslib.fleet.inventory import FleetHost, load_inventory
from opslib.rehearsal.fleet import DEFAULT_SCENARIOS, RehearsalFleet, start_fleet
from opslib.winrm import connect_params

# Six mixed hosts the kit renews, and a seventh that lost its pending request (the kit must refuse it).
SCENARIOS = (*DEFAULT_SCENARIOS, "iis6-ja", "iis10", "no-pending-request")
GOOD = "all:!web07"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RehearsalFleet]:
    with start_fleet(len(SCENARIOS), SCENARIOS, workdir=tmp_path_factory.mktemp("fleet")) as running:
        saved = {k: os.environ.get(k) for k in running.env}
        os.environ.update(running.env)  # as the operator exports them before a run
        try:
            yield running
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@pytest.fixture(scope="module")
def hosts(fleet: RehearsalFleet) -> list[FleetHost]:
    return load_inventory(fleet.inventory_path)


def test_the_fleet_runs_in_its_own_process_tree_with_a_mix_of_scenarios_and_expiries(
    fleet: RehearsalFleet, tmp_path: Path
) -> None:
    assert fleet.pid != os.getpid() and os.getsid(fleet.pid) == fleet.pid
    assert [h.scenario for h in fleet.hosts] == list(SCENARIOS)
    assert len({h.address for h in fleet.hosts}) == 7
    assert all(
        h.address.startswith("127.0.") and h.url.startswith(f"http://{h.address}:") for h in fleet.hosts
    )
    assert len({h.current_not_after_utc[:10] for h in fleet.hosts}) == 7  # the calendar needs different days
    # The inventory is what operators keep: the YAML file, group_vars/ and host_vars/, secrets as references.
    folder = fleet.inventory_path.parent
    assert (folder / "group_vars" / "all.yml").is_file() and len(
        list((folder / "host_vars").glob("*.yml"))
    ) == 7
    # What the fleet wrote for operators (not the emulated servers' own state, which holds their keys).
    import shutil

    written = tmp_path / "written"
    for file in [
        *folder.glob("*.y*ml"),
        *folder.glob("*_vars/*.yml"),
        folder / "fleet.json",
        folder / "fleet.log",
    ]:
        target = written / file.relative_to(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(file, target)
    assert_no_secrets(written, list(fleet.env.values()))


def test_the_inventory_it_writes_is_read_back_host_by_host(
    fleet: RehearsalFleet, hosts: list[FleetHost]
) -> None:
    assert [h.name for h in hosts] == [m.name for m in fleet.hosts]
    for host, member in zip(hosts, fleet.hosts, strict=True):
        assert host.params["winrm"]["url"] == member.url
        assert host.params["winrm"]["password"] == "env:OPSLIB_REHEARSAL_PASSWORD"
        assert (
            host.params["backup"]["pfx_password"] == "env:OPSLIB_PFX_PASSWORD"
        )  # from the base parameters file
        assert host.params["verify"]["endpoint"].startswith(member.address + ":")
        assert Path(host.params["certificate_file"]).is_relative_to(member.workdir)
        assert host.private_pki is True and host.env == {}
        assert f"scenario_{member.scenario.replace('-', '_')}" in host.groups
    by_iis = {h.name: h.params["winrm"]["transport"] for h in hosts}
    assert by_iis["web01"] == "basic" and by_iis["web03"] == "ntlm"  # each Windows's WinRM as shipped


def _hostname(host: FleetHost) -> str:
    with connect_params(host.params["winrm"], host=host.label) as conn:
        return conn.run(["hostname"], what="host name").stdout_text.strip()


def _served_thumbprint(endpoint: str, servername: str) -> str:
    address, port = endpoint.rsplit(":", 1)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((address, int(port)), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=servername) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha1(der).hexdigest().upper()  # noqa: S324 - the certificate's thumbprint, not a security hash


def test_every_host_answers_over_winrm_and_serves_its_own_certificate(
    fleet: RehearsalFleet, hosts: list[FleetHost]
) -> None:
    with ThreadPoolExecutor(max_workers=7) as pool:
        names = list(pool.map(_hostname, hosts))
    assert names == [h.name.upper() for h in hosts]
    for host, member in zip(hosts, fleet.hosts, strict=True):
        served = _served_thumbprint(host.params["verify"]["endpoint"], host.params["verify"]["servername"])
        assert served == member.current_thumbprint
    assert len({m.current_thumbprint for m in fleet.hosts}) == 7
    assert (
        len({m.new_thumbprint for m in fleet.hosts}) == 7
    )  # each host is renewed to a certificate of its own
    counts = fleet.request_counts()
    assert all(counts[m.name] > 0 for m in fleet.hosts)


def test_a_bad_fleet_request_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(
        ["rehearse", "fleet", "--hosts", "2", "--scenarios", "iis10,nosuch", "--workdir", str(tmp_path)]
    )
    assert code == 2
    assert "unknown scenario nosuch" in capsys.readouterr().err
    assert not (tmp_path / "inventory.yml").exists()


def _states(fleet: RehearsalFleet) -> dict[str, dict[str, object]]:
    """What each emulated server holds (registry, files, sites, keys, …); ``extra`` is the emulator's own
    bookkeeping (e.g. which files a hashfile holds), not the server's."""
    out = {}
    for m in fleet.hosts:
        state = json.loads(Path(m.state_file).read_text(encoding="utf-8"))
        state.pop("extra")
        out[m.name] = state
    return out


def test_fleet_plan_checks_six_mixed_hosts_and_changes_nothing(
    fleet: RehearsalFleet, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _states(fleet)
    assert main(["fleet", "plan", str(fleet.inventory_path), "--limit", GOOD, "--json"]) == 0
    found = {h["name"]: h for h in json.loads(capsys.readouterr().out)["hosts"]}
    assert sorted(found) == [f"web0{i}" for i in range(1, 7)]
    for member in fleet.hosts[:6]:
        row = found[member.name]
        assert row["verdict"] == "ready", row["why"]
        assert row["serves_thumbprint"] == member.current_thumbprint
        assert row["serves_until_utc"] == member.current_not_after_utc  # what it serves now, and until when
        assert row["new_thumbprint"] == member.new_thumbprint
        assert row["predicted_chain"].startswith("www1.example.jp → ") and row["site"] == "www1.example.jp"
    assert {found[m.name]["iis"] for m in fleet.hosts[:6]} == {"6.0", "7.5", "10.0"}
    assert _states(fleet) == before  # read-only: every emulated server holds exactly what it held


def test_fleet_plan_names_the_host_that_would_refuse_and_exits_1(
    fleet: RehearsalFleet, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _states(fleet)
    assert main(["fleet", "plan", str(fleet.inventory_path), "--limit", "web06:web07"]) == 1
    out = capsys.readouterr().out
    assert "2 hosts: 1 ready, 0 already renewed, 1 would refuse (web07); nothing was changed" in out
    refusal = next(line for line in out.splitlines() if line.startswith("web07: refuse — "))
    assert "pending request" in refusal.lower() or "REQUEST" in refusal
    assert _states(fleet) == before


def test_an_inventory_error_names_host_and_key_before_any_host_is_contacted(
    fleet: RehearsalFleet, capsys: pytest.CaptureFixture[str]
) -> None:
    host_vars = fleet.inventory_path.parent / "host_vars" / "web03.yml"
    kept = host_vars.read_text(encoding="utf-8")
    counts, states = fleet.request_counts(), _states(fleet)
    host_vars.write_text(kept + "opslib_verify_endpoint: no-port-here\n", encoding="utf-8")
    try:
        assert main(["fleet", "plan", str(fleet.inventory_path)]) == 2
    finally:
        host_vars.write_text(kept, encoding="utf-8")
    err = capsys.readouterr().err
    assert f"{fleet.inventory_path}: host web03: opslib_verify_endpoint (verify.endpoint):" in err
    assert fleet.request_counts() == counts and _states(fleet) == states  # no host was contacted


def test_fleet_plan_connects_with_a_vaulted_password_that_only_that_hosts_connection_sees(
    fleet: RehearsalFleet,
    hosts: list[FleetHost],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import subprocess

    import yaml

    from opslib.fleet.inventory import ansible_program
    from opslib.rehearsal.fleet import inventory_vars

    vault_pass = tmp_path / "vault-pass"
    vault_pass.write_text("fleet-vault-key\n", encoding="utf-8")
    encrypted = subprocess.run(
        [
            str(ansible_program("ansible-vault")),
            "encrypt_string",
            "--vault-password-file",
            str(vault_pass),
            "--name",
            "ansible_password",
            fleet.password,
        ],
        capture_output=True,
        check=True,
        env={**os.environ, "LC_ALL": "C.UTF-8"},
    ).stdout.decode("utf-8")
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "group_vars" / "all.yml").write_text(encrypted, encoding="utf-8")
    chosen = {h.name: h for h in hosts if h.name in ("web01", "web03")}  # IIS 6 (Basic), IIS 10 (NTLM)
    inventory = {"all": {"hosts": {}}}
    for name, host in chosen.items():
        params = {k: v for k, v in host.params.items() if k not in ("host", "mode", "evidence")}
        values = inventory_vars(params, address=fleet.host(name).address, folder=tmp_path)
        values.pop("opslib_winrm_password")
        inventory["all"]["hosts"][name] = values
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory), encoding="utf-8")
    monkeypatch.delenv("OPSLIB_REHEARSAL_PASSWORD")  # only the vault holds the password now
    code = main(
        ["fleet", "plan", str(tmp_path / "inventory.yml"), "--vault-password-file", str(vault_pass), "--json"]
    )
    found = json.loads(capsys.readouterr().out)["hosts"]
    assert code == 0 and [(h["name"], h["verdict"]) for h in found] == [
        ("web01", "ready"),
        ("web03", "ready"),
    ]
    assert not [k for k in os.environ if k.startswith("OPSLIB_FLEET_")]  # only the host's own env held it
    assert fleet.password not in json.dumps(found)


def test_fleet_plan_refuses_a_prompt_and_a_pfx_password_outside_the_rule_before_connecting(
    fleet: RehearsalFleet, tmp_path: Path
) -> None:
    from opslib.fleet.inventory import host_from_vars
    from opslib.fleet.plan import plan_host

    vaulted = {"__ansible_vault": "$ANSIBLE_VAULT;1.1;AES256\n3132\n"}
    hostvars = {  # 192.0.2.0/24 is TEST-NET-1: a verdict without a probe proves no connection was needed
        "ansible_host": "192.0.2.20",
        "ansible_user": "Administrator",
        "opslib_winrm_password": "env:OPSLIB_WINRM_PASSWORD",
        "opslib_production_site": "www1.example.jp",
        "opslib_work_site": "renew.www1.example.jp",
        "opslib_certificate_file": str(Path(fleet.host("web01").workdir) / "2026cert.txt"),
        "opslib_expected_hostnames": "www1.example.jp",
        "opslib_backup_directory": "backups",
        "opslib_verify_endpoint": "www1.example.jp:443",
    }
    prompting = host_from_vars(
        "web09",
        {**hostvars, "opslib_backup_pfx_password": "prompt"},
        base_dir=tmp_path,
        base_params=None,
        secret_env={},
    )
    verdict = plan_host(prompting)
    assert (
        verdict.verdict == "refuse" and "backup.pfx_password is prompt: a fleet cannot prompt" in verdict.why
    )
    short = host_from_vars(
        "web09",
        {**hostvars, "opslib_backup_pfx_password": vaulted},
        base_dir=tmp_path,
        base_params=None,
        secret_env={"opslib_backup_pfx_password": "short"},  # decrypted: 5 characters
    )
    verdict = plan_host(short)
    assert verdict.verdict == "refuse" and verdict.iis == "", verdict.why  # never probed
    assert (
        "backup.pfx_password: the password env:OPSLIB_FLEET_PFX_PASSWORD gives cannot be used" in verdict.why
    )
