"""The Ansible way to renew a fleet (issue 27 item 5): ``ansible/renew.yml`` run by ansible-core's own
``ansible-playbook`` against a rehearsal fleet, the kit running on the control node.

What an operator sees: the play's exit code and recap, each host's run folder (a dry run in check mode,
a renewal otherwise), what each site serves afterwards (a TLS handshake), one fleet record that
``opslib evidence verify`` accepts, a plaintext password refused naming host and variable before any host
is contacted, and no secret in anything the play wrote or printed (``-vvvv`` included).

Ansible's own files stay in the test's folder (ANSIBLE_HOME, ANSIBLE_LOCAL_TEMP, ANSIBLE_REMOTE_TEMP);
it runs under a UTF-8 locale. The hosts' steps run on the in-process engine (OPSLIB_STEP_ENGINE=inprocess,
inherited by every ``opslib run`` the play starts).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from opslib import tls
from opslib.rehearsal.fleet import RehearsalFleet, start_fleet
from tests.secretscan import assert_no_secrets

ROOT = Path(__file__).resolve().parents[1]
PLAYBOOK = ROOT / "ansible" / "renew.yml"
BIN = Path(sys.executable).parent
HOSTS = 3


@dataclass
class Shared:
    fleet: RehearsalFleet
    base: Path
    vault_file: Path
    vault_inventory: (
        Path  # the fleet's inventory with the WinRM and PFX passwords vault-encrypted in group_vars
    )
    vaulted_pfx: str  # the YAML line of the vault-encrypted PFX password
    secrets: list[str]  # every secret of the setting (scanned for in everything the play wrote)


def ansible_env(out: Path, fleet: RehearsalFleet) -> dict[str, str]:
    """What ansible-playbook runs with: a UTF-8 locale, Ansible's own files in ``out``, this checkout's kit."""
    env = {
        **os.environ,
        **fleet.env,
        "LC_ALL": "C.UTF-8",
        "LANG": "C.UTF-8",
        "PYTHONUTF8": "1",
        "PYTHONPATH": str(ROOT),
        "OPSLIB_STEP_ENGINE": "inprocess",
        "ANSIBLE_HOME": str(out / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(out / "ansible-local"),
        "ANSIBLE_REMOTE_TEMP": str(out / "ansible-remote"),
        "ANSIBLE_RETRY_FILES_ENABLED": "false",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_CONFIG": str(out / "ansible.cfg"),  # none there: Ansible's defaults, not a stray ansible.cfg
        "HOME": str(out / "home"),  # where ~/.ansible would be: the test checks that nothing went there
    }
    # The passwords are Ansible's to hand over (vaulted): none is in the play's environment.
    for name in fleet.env:
        env.pop(name)
    return env


def run_playbook(
    shared: Shared, name: str, *args: str, inventory: Path | None = None
) -> tuple[int, str, Path]:
    """``ansible-playbook`` as an operator runs it: (exit code, what it printed, its output folder)."""
    out = shared.base / name
    out.mkdir()
    argv = [
        str(BIN / "ansible-playbook"),
        "-i",
        str(inventory or shared.vault_inventory),
        str(PLAYBOOK),
        "--vault-password-file",
        str(shared.vault_file),
        "--forks",
        str(HOSTS),
        "-e",
        f"opslib_evidence_root={out / 'evidence'}",
        "-e",
        f"opslib_work_root={out / 'work'}",
        *args,
    ]
    (out / "home").mkdir()
    done = subprocess.run(
        argv, cwd=out, env=ansible_env(out, shared.fleet), capture_output=True, text=True, timeout=600
    )
    printed = done.stdout + done.stderr
    (out / "ansible-output.txt").write_text(printed, encoding="utf-8")
    assert not (out / "home" / ".ansible").exists(), "Ansible wrote into ~/.ansible"
    return done.returncode, printed, out


def encrypt_string(base: Path, vault_file: Path, value: str, *, name: str) -> str:
    """``ansible-vault encrypt_string --name NAME`` of ``value``: a YAML line with a !vault value."""
    done = subprocess.run(
        [
            str(BIN / "ansible-vault"),
            "encrypt_string",
            "--vault-password-file",
            str(vault_file),
            "--stdin-name",
            name,
        ],
        input=value,
        capture_output=True,
        text=True,
        check=True,
        cwd=base,
        env={
            **os.environ,
            "LC_ALL": "C.UTF-8",
            "HOME": str(base),
            "ANSIBLE_HOME": str(base / "ansible-home"),
            "ANSIBLE_LOCAL_TEMP": str(base / "ansible-local"),
        },
    )
    return done.stdout.strip() + "\n"


def copy_inventory(source: Path, target: Path, *, drop: str = "", add: str = "") -> Path:
    """The fleet's inventory folder copied; group_vars/all.yml without the variable ``drop``, plus ``add``."""
    shutil.copytree(source.parent, target)
    group_all = target / "group_vars" / "all.yml"
    lines = group_all.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if not (drop and line.startswith(drop + ":"))]
    assert len(kept) == len(lines) - (1 if drop else 0), f"{drop} is not in {group_all}"
    group_all.write_text("\n".join(kept) + "\n" + add, encoding="utf-8")
    return target / source.name


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    base = tmp_path_factory.mktemp("ansible")
    scenarios = ("iis6-ja", "iis75-ja", "iis10-sni")
    with start_fleet(
        HOSTS, scenarios, workdir=base / "fleet", inventory_out=base / "inventory" / "fleet.yml"
    ) as fleet:
        vault_file = base / "vault-password"
        vault_password = "V" + os.urandom(12).hex()
        vault_file.write_text(vault_password + "\n", encoding="utf-8")
        vault_file.chmod(0o600)
        # As operators keep them: the WinRM password vault-encrypted in group_vars, no reference to it,
        # and the PFX password too (over the base parameters file's env: reference).
        (pfx,) = [v for k, v in fleet.env.items() if "PFX" in k]
        vaulted_pfx = encrypt_string(base, vault_file, pfx, name="opslib_backup_pfx_password")
        inventory = copy_inventory(
            fleet.inventory_path,
            base / "vaulted",
            drop="opslib_winrm_password",
            add=encrypt_string(base, vault_file, fleet.password, name="ansible_password") + vaulted_pfx,
        )
        secrets = [fleet.password, vault_password, *fleet.env.values()]
        yield Shared(fleet, base, vault_file, inventory, vaulted_pfx, secrets)


def run_jsons(evidence: Path) -> dict[str, dict[str, Any]]:
    """Each run's run.json by host."""
    runs = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(evidence.glob("*/run.json"))]
    return {str(r["host"]): r for r in runs}


def fleet_records(evidence: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(evidence.glob("fleets/*/fleet.json"))]


def opslib(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opslib", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )


def served_thumbprint(params_file: Path) -> str:
    """What the host's site serves now: a TLS handshake with its verify.endpoint (SNI as configured)."""
    verify = yaml.safe_load(params_file.read_text(encoding="utf-8"))["verify"]
    host, port = tls.parse_endpoint(verify["endpoint"])
    return tls.fetch_chain(host, port, servername=verify.get("servername") or None, timeout_s=10).thumbprints[
        0
    ]


def params_files(out: Path) -> dict[str, Path]:
    return {p.stem: p for p in (out / "work").glob("*/params/*.yaml")}


def test_a_plaintext_password_is_refused_naming_host_and_variable_before_any_host_is_contacted(
    shared: Shared,
) -> None:
    victim = shared.fleet.hosts[1].name
    inventory = copy_inventory(shared.vault_inventory, shared.base / "plaintext-inventory")
    host_vars = inventory.parent / "host_vars" / f"{victim}.yml"
    host_vars.write_text(
        host_vars.read_text(encoding="utf-8") + f"ansible_password: {shared.fleet.password}\n",
        encoding="utf-8",
    )
    before = shared.fleet.request_counts()
    code, printed, out = run_playbook(shared, "plaintext", inventory=inventory)
    assert code != 0
    assert f"{victim}: variable ansible_password is not vault-encrypted" in printed
    assert not (out / "evidence").exists() or not list((out / "evidence").rglob("run.json"))
    assert shared.fleet.request_counts() == before, "a host was contacted"
    assert shared.fleet.password not in printed


def test_check_mode_makes_a_dry_run_of_every_host_and_changes_nothing(shared: Shared) -> None:
    served_before: dict[str, str] = {}
    code, printed, out = run_playbook(shared, "check", "--check", "-vvvv")
    assert code == 0, printed[-3000:]
    runs = run_jsons(out / "evidence")
    assert sorted(runs) == sorted(h.name for h in shared.fleet.hosts)
    assert all(r["dry_run"] is True and r["status"] == "succeeded" for r in runs.values()), runs
    for name, params in params_files(out).items():
        served_before[name] = served_thumbprint(params)
        assert served_before[name] == runs[name]["facts"].get("old_thumbprint"), name
    (record,) = fleet_records(out / "evidence")
    assert len(record["hosts"]) == HOSTS
    verified = opslib("evidence", "verify", "--root", str(out / "evidence"))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert_no_secrets(out, shared.secrets)


def test_the_playbook_renews_every_host_and_writes_a_fleet_record_that_verifies(shared: Shared) -> None:
    code, printed, out = run_playbook(shared, "renew", "-e", '{"opslib_serial": [1, "100%"]}', "-vvvv")
    assert code == 0, printed[-3000:]
    runs = run_jsons(out / "evidence")
    assert sorted(runs) == sorted(h.name for h in shared.fleet.hosts)
    for name, params in params_files(out).items():
        run = runs[name]
        assert run["status"] == "succeeded" and run["dry_run"] is False, (name, run.get("error"))
        new = run["facts"]["new_thumbprint"]
        assert new and new != run["facts"]["old_thumbprint"]
        assert served_thumbprint(params) == new, f"{name} does not serve its new certificate"
        # The parameters file holds references only: the passwords came from Ansible, vault-decrypted.
        written = yaml.safe_load(params.read_text(encoding="utf-8"))
        assert written["winrm"]["password"] == "env:OPSLIB_FLEET_WINRM_PASSWORD"
        assert written["backup"]["pfx_password"] == "env:OPSLIB_FLEET_PFX_PASSWORD"
    (record,) = fleet_records(out / "evidence")
    assert len(record["hosts"]) == HOSTS
    verified = opslib("evidence", "verify", "--root", str(out / "evidence"))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    for name in runs:  # each host's recap: its renewal changed the server, nothing failed
        assert re.search(
            rf"^{re.escape(name)}\s+: ok=\d+\s+changed=[1-9]\d*\s+unreachable=0\s+failed=0", printed, re.M
        )
    assert_no_secrets(out, shared.secrets)


def test_a_failing_canary_stops_the_rollout_and_the_printed_command_records_it(shared: Shared) -> None:
    # Every host's vaulted password is wrong: the canary (the first batch, one host) fails at its first
    # request, before anything changes; Ansible stops the rollout (max_fail_percentage 0) and the others
    # are never contacted.
    inventory = copy_inventory(
        shared.fleet.inventory_path,
        shared.base / "wrong-password-inventory",
        drop="opslib_winrm_password",
        add=encrypt_string(shared.base, shared.vault_file, "W" + os.urandom(9).hex(), name="ansible_password")
        + shared.vaulted_pfx,
    )
    before = shared.fleet.request_counts()
    code, printed, out = run_playbook(shared, "canary", inventory=inventory)
    assert code != 0
    runs = run_jsons(out / "evidence")
    (canary,) = runs
    assert runs[canary]["status"] == "failed"
    after = shared.fleet.request_counts()
    assert [h for h in after if after[h] != before.get(h)] == [canary], "only the canary was contacted"
    assert "PLAY [Write the fleet record]" not in printed
    assert not fleet_records(out / "evidence")
    # The check play said how to record what was done: that command writes a record that verifies.
    command = re.search(r"write the fleet record with: (.+?\*\.txt\))", printed.replace("\n", " "))
    assert command, printed[-2000:]
    done = subprocess.run(
        ["/bin/sh", "-c", command.group(1)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (record,) = fleet_records(out / "evidence")
    assert [h["name"] for h in record["hosts"]] == [canary]
    assert opslib("evidence", "verify", "--root", str(out / "evidence")).returncode == 0
