"""``opslib fleet host-params``: what the Ansible role pipes in (one host's variables as JSON, never a secret)
and what comes out — the parameters file of the one inventory mapping, references only, and which
environment variable each vault-encrypted variable must reach the run in. Errors name host and variable
and never echo a secret. (The role itself, under ansible-playbook: tests/test_fleet_ansible.py.)"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from opslib.cli import main

SECRET = "Plain-Pa55word!q9"

BASE = """\
warn_days: 21
work_site: renew.www1.example.jp
backup:
  directory: backups
  pfx_password: env:OPSLIB_PFX_PASSWORD
"""


def hostvars(**more: Any) -> dict[str, Any]:
    """A Windows host's variables as the role sends them (no password)."""
    return {
        "ansible_host": "192.0.2.10",
        "ansible_port": 5986,
        "ansible_user": "EXAMPLE\\svc-certrenew",
        "ansible_winrm_transport": "ntlm",
        "ansible_connection": "winrm",
        "opslib_base_params": "base.yaml",
        "opslib_production_site": "www1.example.jp",
        "opslib_certificate_file": "mail/2026cert.txt",
        "opslib_expected_hostnames": ["www1.example.jp"],
        "opslib_verify_endpoint": "www1.example.jp:443",
        **more,
    }


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    (tmp_path / "base.yaml").write_text(BASE, encoding="utf-8")
    (tmp_path / "mail").mkdir()
    (tmp_path / "mail" / "2026cert.txt").write_text("the CA's mail\n", encoding="utf-8")
    return tmp_path


def host_params(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], folder: Path, data: Any, *args: str
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(data if isinstance(data, str) else json.dumps(data)))
    code = main(
        [
            "fleet",
            "host-params",
            "web01",
            "--base-dir",
            str(folder),
            "--out",
            str(folder / "web01.yaml"),
            *args,
        ]
    )
    out, err = capsys.readouterr()
    return code, out, err


def test_a_vaulted_password_becomes_a_reference_and_its_environment_variable_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], folder: Path
) -> None:
    code, out, err = host_params(monkeypatch, capsys, folder, hostvars(), "--vaulted", "ansible_password")
    assert code == 0, err
    said = json.loads(out)
    assert said["secret_env"] == {"ansible_password": "OPSLIB_FLEET_WINRM_PASSWORD"}
    written = yaml.safe_load(Path(said["params_file"]).read_text(encoding="utf-8"))
    assert written["host"] == "web01"
    assert written["winrm"]["url"] == "https://192.0.2.10:5986/wsman"
    assert written["winrm"]["password"] == "env:OPSLIB_FLEET_WINRM_PASSWORD"
    assert written["backup"]["pfx_password"] == "env:OPSLIB_PFX_PASSWORD"  # from the base file
    assert written["certificate_file"] == str(folder / "mail" / "2026cert.txt")


def test_every_vaulted_secret_gets_its_own_environment_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], folder: Path
) -> None:
    vaulted = ("ansible_password", "opslib_backup_pfx_password", "opslib_evidence_hmac_key")
    args = [a for v in vaulted for a in ("--vaulted", v)]
    code, out, err = host_params(monkeypatch, capsys, folder, hostvars(), *args)
    assert code == 0, err
    assert json.loads(out)["secret_env"] == {
        "ansible_password": "OPSLIB_FLEET_WINRM_PASSWORD",
        "opslib_backup_pfx_password": "OPSLIB_FLEET_PFX_PASSWORD",
        "opslib_evidence_hmac_key": "OPSLIB_FLEET_HMAC_KEY",
    }
    written = yaml.safe_load((folder / "web01.yaml").read_text(encoding="utf-8"))
    assert written["backup"]["pfx_password"] == "env:OPSLIB_FLEET_PFX_PASSWORD"
    assert written["evidence"]["hmac_key"] == "env:OPSLIB_FLEET_HMAC_KEY"


def test_a_secret_on_standard_input_is_refused_naming_host_and_variable_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], folder: Path
) -> None:
    code, out, err = host_params(monkeypatch, capsys, folder, hostvars(ansible_password=SECRET))
    assert code == 2
    assert "host web01: ansible_password" in err and "--vaulted ansible_password" in err
    assert SECRET not in out + err
    assert not (folder / "web01.yaml").exists()


def test_a_reference_is_no_secret_and_passes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], folder: Path
) -> None:
    code, out, err = host_params(monkeypatch, capsys, folder, hostvars(opslib_winrm_password="env:MY_WINRM"))
    assert code == 0, err
    assert json.loads(out)["secret_env"] == {}
    assert (
        yaml.safe_load((folder / "web01.yaml").read_text(encoding="utf-8"))["winrm"]["password"]
        == "env:MY_WINRM"
    )


@pytest.mark.parametrize(
    ("data", "args", "message"),
    [
        ("{not json", (), "host web01: standard input: not JSON"),
        ("[1, 2]", (), "expected a JSON object of variables, got list"),
        (hostvars(opslib_production_sitte="x"), (), "opslib_production_sitte: unknown opslib_ variable"),
        (hostvars(ansible_port="http"), (), "ansible_port: expected a port"),
        (hostvars(), ("--vaulted", "opslib_production_site"), "opslib_production_site"),
    ],
)
def test_bad_input_is_refused_naming_host_and_variable_before_any_file_is_written(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    folder: Path,
    data: Any,
    args: tuple[str, ...],
    message: str,
) -> None:
    code, _, err = host_params(monkeypatch, capsys, folder, data, *args)
    assert code == 2
    assert message in err and "web01" in err
    assert not (folder / "web01.yaml").exists()
