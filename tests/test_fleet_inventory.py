"""The fleet's inventory read by ansible-core itself (``ansible-inventory --list``): YAML and INI, group_vars/,
host_vars/, --limit, a vault-encrypted password that reaches only the host's environment, a plaintext one
refused, every error naming the inventory, the host and the variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from opslib.fleet.inventory import (
    FleetHost,
    FleetInventoryError,
    ansible_program,
    load_inventory,
    write_host_params,
)

SECRET = "Vaulted-Pa55word!x7"


def _write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A vault password file and ``ansible_password: !vault |…`` made by the real ansible-vault."""
    folder = tmp_path_factory.mktemp("vault")
    password_file = folder / "vault-pass"
    password_file.write_text("fleet-vault-key\n", encoding="utf-8")
    password_file.chmod(0o600)
    done = subprocess.run(
        [
            str(ansible_program("ansible-vault")),
            "encrypt_string",
            "--vault-password-file",
            str(password_file),
            "--name",
            "ansible_password",
            SECRET,
        ],
        capture_output=True,
        check=True,
        env={**os.environ, "LC_ALL": "C.UTF-8", "PYTHONUTF8": "1"},
    )
    return password_file, done.stdout.decode("utf-8")


BASE = """\
warn_days: 21
work_site: renew.www1.example.jp
backup:
  directory: backups
  pfx_password: env:OPSLIB_PFX_PASSWORD
"""
ALL = """\
ansible_user: EXAMPLE\\svc-certrenew
ansible_winrm_transport: ntlm
opslib_base_params: base/params.yaml
opslib_production_site: www1.example.jp
opslib_certificate_file: mail/2026cert.txt
opslib_expected_hostnames: [www1.example.jp]
opslib_verify_endpoint: www1.example.jp:443
opslib_winrm_password: env:OPSLIB_WINRM_PASSWORD
"""


@pytest.fixture()
def yaml_inventory(tmp_path: Path) -> Path:
    _write(
        tmp_path,
        {
            "mail/2026cert.txt": "(the CA's mail)\n",
            "base/params.yaml": BASE,
            "group_vars/all.yml": ALL,
            "group_vars/iis6.yml": "ansible_port: 5985\nopslib_winrm_codepage: 932\n",
            "host_vars/web02.example.jp.yml": "opslib_host: web02\nopslib_ssl_port: 8443\n",
            "inventory.yml": yaml.safe_dump(
                {
                    "all": {
                        "children": {
                            "iis6": {"hosts": {"web01.example.jp": {"ansible_host": "192.0.2.10"}}},
                            "iis10": {
                                "hosts": {"web02.example.jp": {"ansible_host": "192.0.2.11"}},
                                "vars": {"ansible_winrm_server_cert_validation": "ignore"},
                            },
                        }
                    }
                }
            ),
        },
    )
    return tmp_path / "inventory.yml"


def test_a_yaml_inventory_with_group_and_host_vars_becomes_each_hosts_parameters(
    yaml_inventory: Path,
) -> None:
    hosts = load_inventory(yaml_inventory)
    assert [h.name for h in hosts] == ["web01.example.jp", "web02.example.jp"]
    web01, web02 = hosts
    folder = yaml_inventory.parent.resolve()
    # Ansible's WinRM variables → winrm.*; port 5985 means http (Ansible's rule), else https on 5986.
    assert web01.params["winrm"]["url"] == "http://192.0.2.10:5985/wsman"
    assert web02.params["winrm"]["url"] == "https://192.0.2.11:5986/wsman"
    assert web01.params["winrm"]["username"] == "EXAMPLE\\svc-certrenew"
    assert web02.params["winrm"]["server_cert_validation"] == "ignore"
    assert web01.params["winrm"]["codepage"] == 932 and web02.params["winrm"]["codepage"] == "auto"
    # opslib_* over the base parameters file; paths absolute (relative to the file that named them).
    assert (
        web01.params["warn_days"] == 21
        and web02.params["ssl_port"] == 8443
        and web01.params["ssl_port"] == 443
    )
    assert web01.params["certificate_file"] == str(folder / "mail" / "2026cert.txt")
    assert web01.params["backup"]["directory"] == str(folder / "base" / "backups")
    # The evidence name: opslib_host, else inventory_hostname.
    assert (web01.label, web02.label) == ("web01.example.jp", "web02")
    assert web01.groups == ("iis6",) and web02.groups == ("iis10",)
    assert web01.env == {} and web01.private_pki is None
    # --limit is ansible-core's own pattern language.
    assert [h.name for h in load_inventory(yaml_inventory, limit="iis10")] == ["web02.example.jp"]
    with pytest.raises(FleetInventoryError, match="no host matches --limit 'nosuch'"):
        load_inventory(yaml_inventory, limit="nosuch")


def test_an_ini_inventory_gives_the_same_parameters(yaml_inventory: Path) -> None:
    folder = yaml_inventory.parent
    (folder / "host_vars" / "web02.example.jp.yml").unlink()
    ini = folder / "hosts.ini"
    ini.write_text(
        "[iis6]\n"
        "web01.example.jp ansible_host=192.0.2.10\n"
        "[iis10]\n"
        "web02.example.jp ansible_host=192.0.2.11 opslib_host=web02\n"
        "[iis10:vars]\n"
        "ansible_winrm_server_cert_validation=ignore\n"
        "opslib_ssl_port=8443\n"
        "opslib_winrm_allow_cleartext_secrets=false\n"
        "opslib_private_pki=true\n",
        encoding="utf-8",
    )
    from_ini = {h.name: h for h in load_inventory(ini)}
    web02 = from_ini["web02.example.jp"]
    # [group:vars] values arrive as strings from an INI file: the kit gives them the key's type.
    assert web02.params["ssl_port"] == 8443 and web02.params["winrm"]["allow_cleartext_secrets"] is False
    assert web02.private_pki is True
    assert web02.params["winrm"]["url"] == "https://192.0.2.11:5986/wsman"
    assert from_ini["web01.example.jp"].params["winrm"]["url"] == "http://192.0.2.10:5985/wsman"


def test_a_vaulted_password_reaches_only_the_hosts_environment(
    yaml_inventory: Path, vault: tuple[Path, str], tmp_path: Path
) -> None:
    password_file, vaulted = vault
    folder = yaml_inventory.parent
    all_vars = (folder / "group_vars" / "all.yml").read_text(encoding="utf-8")
    (folder / "group_vars" / "all.yml").write_text(
        all_vars.replace("opslib_winrm_password: env:OPSLIB_WINRM_PASSWORD\n", ""), encoding="utf-8"
    )
    (folder / "group_vars" / "iis10.yml").write_text(vaulted, encoding="utf-8")
    with pytest.raises(
        FleetInventoryError, match="web02.example.jp: ansible_password: is vault-encrypted and no vault"
    ):
        load_inventory(yaml_inventory, limit="iis10")
    [web02] = load_inventory(yaml_inventory, limit="iis10", vault_password_file=password_file)
    assert web02.params["winrm"]["password"] == "env:OPSLIB_FLEET_WINRM_PASSWORD"
    assert dict(web02.env) == {"OPSLIB_FLEET_WINRM_PASSWORD": SECRET}
    assert SECRET not in repr(web02) and SECRET not in str(web02.params)
    written = write_host_params(web02, tmp_path / "fleet" / "web02.yaml")
    text = written.read_text(encoding="utf-8")
    assert SECRET not in text and "password: env:OPSLIB_FLEET_WINRM_PASSWORD" in text
    # The written file is an ordinary parameters file that the kit validates as it is.
    from opslib import params

    assert params.load(written).data == web02.params
    # ANSIBLE_VAULT_PASSWORD_FILE works as for ansible itself; a wrong vault password names host and variable.
    os.environ["ANSIBLE_VAULT_PASSWORD_FILE"] = str(password_file)
    try:
        assert dict(load_inventory(yaml_inventory, limit="iis10")[0].env) == dict(web02.env)
    finally:
        del os.environ["ANSIBLE_VAULT_PASSWORD_FILE"]
    wrong = tmp_path / "wrong-pass"
    wrong.write_text("not-the-key\n", encoding="utf-8")
    with pytest.raises(
        FleetInventoryError, match="host web02.example.jp: ansible_password: ansible-vault could not"
    ):
        load_inventory(yaml_inventory, limit="iis10", vault_password_file=wrong)


def test_a_plaintext_ansible_password_is_refused_naming_host_and_variable(yaml_inventory: Path) -> None:
    plain = "Plain-Pa55word!q1"
    (yaml_inventory.parent / "host_vars" / "web01.example.jp.yml").write_text(
        f"ansible_password: {plain}\n", encoding="utf-8"
    )
    all_vars = yaml_inventory.parent / "group_vars" / "all.yml"
    all_vars.write_text(
        all_vars.read_text(encoding="utf-8").replace("opslib_winrm_password", "# "), encoding="utf-8"
    )
    with pytest.raises(FleetInventoryError) as caught:
        load_inventory(yaml_inventory)
    message = str(caught.value)
    assert "inventory.yml: host web01.example.jp: ansible_password: holds a plaintext password" in message
    assert "ansible-vault encrypt_string" in message and plain not in message


@pytest.mark.parametrize(
    ("host_vars", "expected"),
    [
        ("opslib_ssl_port: 70000\n", r"host web02.example.jp: opslib_ssl_port \(ssl_port\): .*65535"),
        (
            "opslib_ssl_prot: 443\n",
            r"host web02.example.jp: opslib_ssl_prot: unknown opslib_ variable .*opslib_ssl_port",
        ),
        (
            "opslib_winrm:\n  codepage: 932\n",
            r"host web02.example.jp: opslib_winrm: the kit's sections are flat",
        ),
        ("ansible_port: http\n", r"host web02.example.jp: ansible_port: expected a port"),
        (
            "opslib_winrm_transport: smoke\n",
            r"host web02.example.jp: opslib_winrm_transport \(winrm.transport\)",
        ),
        (
            'opslib_work_site: "{{ site }}"\n',
            r"host web02.example.jp: opslib_work_site: is a Jinja2 template",
        ),
        (
            "opslib_backup_pfx_password: Secret-Literal-1\n",
            r"opslib_backup_pfx_password \(backup.pfx_password\): is a literal",
        ),
        ("opslib_host: web01.example.jp\n", r"host web02.example.jp: opslib_host: uses the evidence name"),
    ],
)
def test_a_wrong_value_names_the_inventory_the_host_and_the_variable(
    yaml_inventory: Path, host_vars: str, expected: str
) -> None:
    (yaml_inventory.parent / "host_vars" / "web02.example.jp.yml").write_text(host_vars, encoding="utf-8")
    with pytest.raises(FleetInventoryError, match=expected) as caught:
        load_inventory(yaml_inventory)
    assert str(yaml_inventory) in str(caught.value)
    assert caught.value.exit_code == 2
    assert "Secret-Literal-1" not in str(caught.value)


def test_a_missing_key_names_the_variable_to_set(yaml_inventory: Path) -> None:
    base = yaml_inventory.parent / "base" / "params.yaml"
    base.write_text(BASE.replace("work_site: renew.www1.example.jp\n", ""), encoding="utf-8")
    with pytest.raises(
        FleetInventoryError, match=r"host web01.example.jp: opslib_work_site \(work_site\): missing"
    ):
        load_inventory(yaml_inventory)


def test_an_inventory_that_does_not_parse_is_an_error_not_an_empty_fleet(tmp_path: Path) -> None:
    broken = tmp_path / "inventory.yml"
    broken.write_text("all:\n  hosts: [unclosed\n", encoding="utf-8")
    with pytest.raises(FleetInventoryError, match="inventory.yml: ansible-inventory failed"):
        load_inventory(broken)
    with pytest.raises(FleetInventoryError, match="inventory not found"):
        load_inventory(tmp_path / "nosuch.yml")


def test_without_ansible_core_the_error_says_to_install_the_fleet_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FleetInventoryError, match=r"ansible-inventory not found.*opslib\[fleet\]"):
        load_inventory(tmp_path)


def test_fleet_host_keeps_the_interface_fields() -> None:
    fields = [f for f in FleetHost.__dataclass_fields__]
    assert fields == ["name", "params", "env", "groups", "private_pki"]


HOSTVARS = {
    "ansible_host": "192.0.2.20",
    "ansible_user": "Administrator",
    "opslib_production_site": "www1.example.jp",
    "opslib_work_site": "renew.www1.example.jp",
    "opslib_certificate_file": "mail/2026cert.txt",
    "opslib_expected_hostnames": "www1.example.jp",
    "opslib_backup_directory": "backups",
    "opslib_backup_pfx_password": "env:OPSLIB_PFX_PASSWORD",
    "opslib_verify_endpoint": "www1.example.jp:443",
}


def test_host_from_vars_maps_vaulted_secrets_aliases_and_the_playbooks_own_variables(tmp_path: Path) -> None:
    from opslib.fleet.inventory import host_from_vars

    (tmp_path / "mail").mkdir()
    (tmp_path / "mail" / "2026cert.txt").write_text("(mail)\n", encoding="utf-8")
    vaulted = {"__ansible_vault": "$ANSIBLE_VAULT;1.1;AES256\n3132\n"}
    hostvars = {
        **HOSTVARS,
        "ansible_winrm_password": vaulted,
        "opslib_backup_pfx_password": vaulted,
        "ansible_winrm_port": "5985",
        "opslib_evidence_root": "/srv/evidence",  # the playbook's setting, not a parameter
        "opslib_renew_result": {"rc": 0},  # the role's fact
        "app_url": "https://{{ inventory_hostname }}",  # the operator's own variable: not looked at
        "db_password": vaulted,
    }
    host = host_from_vars(
        "web09",
        hostvars,
        base_dir=tmp_path,
        base_params=None,
        secret_env={
            "ansible_winrm_password": "Winrm-Secret-9x",
            "opslib_backup_pfx_password": "Pfx-Secret-9xy",
        },
    )
    assert host.params["winrm"]["url"] == "http://192.0.2.20:5985/wsman"
    assert host.params["winrm"]["password"] == "env:OPSLIB_FLEET_WINRM_PASSWORD"
    assert host.params["backup"]["pfx_password"] == "env:OPSLIB_FLEET_PFX_PASSWORD"
    assert dict(host.env) == {
        "OPSLIB_FLEET_WINRM_PASSWORD": "Winrm-Secret-9x",
        "OPSLIB_FLEET_PFX_PASSWORD": "Pfx-Secret-9xy",
    }
    assert "Secret-9x" not in repr(host)
    assert host.params["expected_hostnames"] == ["www1.example.jp"]
    assert host.params["backup"]["directory"] == str(tmp_path.resolve() / "backups")
    # The Ansible role holds the password itself: "" gives the reference and no value.
    held = host_from_vars(
        "web09",
        {**HOSTVARS, "ansible_password": vaulted},
        base_dir=tmp_path,
        base_params=None,
        secret_env={"ansible_password": ""},
    )
    assert held.params["winrm"]["password"] == "env:OPSLIB_FLEET_WINRM_PASSWORD" and dict(held.env) == {}
    with pytest.raises(
        FleetInventoryError, match="host web09: ansible_winrm_port: differs from ansible_port"
    ):
        host_from_vars(
            "web09",
            {**HOSTVARS, "ansible_port": 5986, "ansible_winrm_port": 5985},
            base_dir=tmp_path,
            base_params=None,
            secret_env={},
        )
    with pytest.raises(
        FleetInventoryError, match="host web09: opslib_winrm_codepage: is vault-encrypted but"
    ):
        host_from_vars(
            "web09",
            {**HOSTVARS, "opslib_winrm_codepage": vaulted},
            base_dir=tmp_path,
            base_params=None,
            secret_env={},
        )
