"""One inventory host's variables → the kit's parameters: the ONE mapping (the Ansible role uses it too).

Ansible's WinRM connection variables (docs/fleet.md, with the connection plugin's documentation) become
``winrm.*``; the kit's own keys are flat ``opslib_<key>`` / ``opslib_<section>_<key>`` variables
(``opslib_production_site``, ``opslib_winrm_codepage``, ``opslib_backup_directory``, …) over a base
parameters file (``opslib_base_params``). Flat rather than nested: Ansible replaces a dict-valued variable
of a group with the host's whole dict (``hash_behaviour = replace``), and an INI inventory cannot write one.

Secrets stay references: a vault-encrypted ``ansible_password`` (decrypted by ``ansible-vault`` in
:mod:`opslib.fleet.inventory`) reaches the host only in :attr:`FleetHost.env`, referenced by
``winrm.password: env:OPSLIB_FLEET_WINRM_PASSWORD``; a plaintext one is refused naming host and variable.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import params as params_module
from ..credentials import register
from ..errors import ParameterError, UsageError

VAULT_KEY = "__ansible_vault"  # how `ansible-inventory --list` shows a vaulted value: {"__ansible_vault": "$ANSIBLE_VAULT;…"}

# The environment variable each secret reaches a host's process in, when the inventory vaults it.
SECRET_ENV = {
    "winrm.password": "OPSLIB_FLEET_WINRM_PASSWORD",
    "backup.pfx_password": "OPSLIB_FLEET_PFX_PASSWORD",
    "evidence.hmac_key": "OPSLIB_FLEET_HMAC_KEY",
}
# Ansible's names of the WinRM password (the winrm connection plugin's remote_password variables).
PASSWORD_VARIABLES = ("ansible_password", "ansible_winrm_pass", "ansible_winrm_password")
USER_VARIABLES = ("ansible_user", "ansible_winrm_user")
# Ansible WinRM connection variables → the kit's winrm.* key (the URL ones are composed apart).
WINRM_VARIABLES = {
    "ansible_winrm_transport": "winrm.transport",
    "ansible_winrm_server_cert_validation": "winrm.server_cert_validation",
    "ansible_winrm_ca_trust_path": "winrm.ca_trust_path",
    "ansible_winrm_message_encryption": "winrm.message_encryption",
    "ansible_winrm_operation_timeout_sec": "winrm.operation_timeout_s",
    "ansible_winrm_read_timeout_sec": "winrm.read_timeout_s",
}
URL_VARIABLES = (
    "ansible_host",
    "ansible_winrm_host",
    "ansible_port",
    "ansible_winrm_port",
    "ansible_winrm_scheme",
    "ansible_winrm_path",
)
# Two names of one connection option (the winrm connection plugin's ``vars`` lists): both set must agree.
ALIASES = (
    ("ansible_host", "ansible_winrm_host"),
    ("ansible_port", "ansible_winrm_port"),
    ("ansible_user", "ansible_winrm_user"),
)
CONNECTIONS = ("winrm", "psrp")  # ansible_connection values that describe a Windows host
# opslib_* variables that are not parameters: the fleet's own, and the playbook's settings (ansible/).
FLEET_VARIABLES = ("opslib_base_params", "opslib_host", "opslib_private_pki")
PLAYBOOK_VARIABLES = (  # the role's settings (ansible/roles/opslib_renew), never kit parameters
    "opslib_evidence_root",
    "opslib_fleet_name",
    "opslib_python",
    "opslib_work_root",
    "opslib_throttle",
    "opslib_verbose",
    "opslib_break_lock",
    "opslib_role_settings",
    "opslib_hosts",
    "opslib_serial",
    "opslib_max_fail_percentage",
)
PLAYBOOK_PREFIX = "opslib_renew_"  # the role's own facts
# The parameter keys an inventory may set (mode and the rollback section are the runner's own).
SETTABLE = tuple(k for k in params_module.SCHEMA if k.path != "mode" and not k.path.startswith("rollback."))
VARIABLE_OF_KEY = {k.path: "opslib_" + k.path.replace(".", "_") for k in SETTABLE}
KEY_OF_VARIABLE = {v: k for k, v in VARIABLE_OF_KEY.items()}


class FleetInventoryError(UsageError):
    """An inventory or a host's variables are wrong (exit 2); names the inventory, the host and the variable."""

    def __init__(
        self, problem: str, *, inventory: str = "", host: str = "", variable: str = "", hint: str = ""
    ):
        where = ": ".join(p for p in (inventory, f"host {host}" if host else "", variable) if p)
        super().__init__(problem, hint=hint, where=where)
        self.inventory = inventory
        self.host = host
        self.variable = variable


class SecretEnv(Mapping[str, str]):
    """Environment variables holding decrypted secrets: the values never show in a repr or a str."""

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self._values = dict(values or {})

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"SecretEnv({', '.join(f'{k}=<hidden>' for k in self._values)})"

    __str__ = __repr__


@dataclass(frozen=True)
class FleetHost:
    name: str  # inventory_hostname
    params: dict[
        str, Any
    ]  # effective kit parameters (a parameters file's mapping), secrets only as references
    env: Mapping[str, str]  # environment for THIS host's process only (decrypted secrets); repr hides values
    groups: tuple[str, ...]
    private_pki: bool | None  # opslib_private_pki (None = not said)

    @property
    def label(self) -> str:
        """The host name used in evidence (``opslib_host`` else inventory_hostname)."""
        return str(self.params["host"])


def kit_variable(variable: str) -> bool:
    """A variable the kit reads: ``opslib_*`` (not the playbook's) and Ansible's WinRM connection variables."""
    if variable in PLAYBOOK_VARIABLES or variable.startswith(PLAYBOOK_PREFIX):
        return False
    return variable.startswith("opslib_") or variable in (
        *URL_VARIABLES,
        *USER_VARIABLES,
        *PASSWORD_VARIABLES,
        *WINRM_VARIABLES,
        "ansible_connection",
    )


def secret_variable(variable: str) -> bool:
    """A variable that may hold a vault-encrypted secret the kit takes."""
    return variable in PASSWORD_VARIABLES or KEY_OF_VARIABLE.get(variable, "") in SECRET_ENV


def is_vaulted(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {VAULT_KEY}


def _templated(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _fail(host: str, variable: str, problem: str, *, inventory: str, hint: str = "") -> FleetInventoryError:
    return FleetInventoryError(problem, inventory=inventory, host=host, variable=variable, hint=hint)


def _coerce(key: params_module.Key, value: Any) -> Any:
    """An INI inventory's ``[group:vars]`` values arrive as strings: give them the key's type."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if isinstance(key.default, bool):
        lowered = text.lower()
        if lowered in ("true", "yes", "on", "1"):
            return True
        if lowered in ("false", "no", "off", "0"):
            return False
        return value
    if key.path == "winrm.codepage" or (isinstance(key.default, int) and not isinstance(key.default, bool)):
        return int(text) if text.isdigit() else value
    if key.path in ("expected_hostnames", "forbidden_roots"):
        if text.startswith("["):
            import yaml

            try:
                return yaml.safe_load(text)
            except yaml.YAMLError:
                return value
        return [p.strip() for p in text.split(",") if p.strip()]
    return value


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "false", "no", "off"):
        return value.strip().lower() in ("true", "yes", "on")
    return None


def _absolute(value: Any, folder: Path) -> Any:
    """A path relative to ``folder`` (the inventory's or the base file's), made absolute; "" stays."""
    if not isinstance(value, str) or not value:
        return value
    return str((folder / Path(os.path.expanduser(value))).resolve())


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    section, _, leaf = path.rpartition(".")
    target = data.setdefault(section, {}) if section else data
    if not isinstance(target, dict):
        target = data[section] = {}
    target[leaf] = value


def _base(name: str, file: Path, *, inventory: str) -> dict[str, Any]:
    try:
        data = params_module.read_yaml(file)
    except ParameterError as exc:
        raise _fail(
            name, "opslib_base_params", f"the base parameters file {file}: {exc.problem}", inventory=inventory
        ) from None
    for key in params_module.PATH_KEYS:
        section, _, leaf = key.rpartition(".")
        holder = data.get(section) if section else data
        if isinstance(holder, dict) and leaf in holder:
            holder[leaf] = _absolute(holder[leaf], file.parent)
    return data


def _url(name: str, hostvars: Mapping[str, Any], *, inventory: str) -> str:
    """``winrm.url`` as Ansible's winrm connection composes it: scheme://host:port/path, where the port
    defaults to 5986 and the scheme to http on port 5985, else https (docs/fleet.md)."""
    port_value = hostvars.get("ansible_port", hostvars.get("ansible_winrm_port"))
    port: int | None = None
    if port_value is not None:
        text = str(port_value).strip()
        if not text.isdigit() or not 1 <= int(text) <= 65535:
            raise _fail(
                name, "ansible_port", f"expected a port 1–65535, got {text[:40]!r}", inventory=inventory
            )
        port = int(text)
    scheme = str(hostvars.get("ansible_winrm_scheme") or ("http" if port == 5985 else "https")).lower()
    if scheme not in ("http", "https"):
        raise _fail(name, "ansible_winrm_scheme", "expected http or https", inventory=inventory)
    port = port or (5985 if scheme == "http" else 5986)
    address = str(hostvars.get("ansible_host") or hostvars.get("ansible_winrm_host") or name).strip()
    if ":" in address and not address.startswith("["):
        address = f"[{address}]"  # an IPv6 address
    path = str(hostvars.get("ansible_winrm_path") or "/wsman")
    return f"{scheme}://{address}:{port}{path if path.startswith('/') else '/' + path}"


def host_from_vars(
    name: str,
    hostvars: Mapping[str, Any],
    *,
    base_dir: Path,
    base_params: Path | None,
    secret_env: Mapping[str, str],
    inventory: str = "",
    check_files: bool = True,
) -> FleetHost:
    """The kit's parameters for one host, validated (``opslib.params``); errors name host and variable.

    ``hostvars``: the host's variables as ``ansible-inventory --list`` shows them; ``base_dir``: the
    inventory's folder (relative paths in variables are relative to it); ``base_params``: the base
    parameters file when the host has no ``opslib_base_params``; ``secret_env``: the decrypted value of
    each vault-encrypted secret variable of this host, by variable name — ``""`` when the caller holds the
    value elsewhere (the Ansible role: ``ansible_password: {"__ansible_vault": …}`` with
    ``secret_env={"ansible_password": ""}`` gives the reference ``env:OPSLIB_FLEET_WINRM_PASSWORD`` and no
    value in ``env``).
    """
    where = inventory or str(base_dir)
    for variable, value in hostvars.items():
        if not kit_variable(variable):
            continue  # the operator's own variables (a template, a vaulted database password) are not the kit's
        if _templated(value):
            raise _fail(
                name,
                variable,
                "is a Jinja2 template; `ansible-inventory --list` does not render templates and neither does the kit",
                inventory=where,
                hint="write the value itself",
            )
        if is_vaulted(value) and variable not in secret_env:
            raise _fail(
                name,
                variable,
                "is vault-encrypted but is not a secret the kit takes (only passwords and the HMAC key may be)",
                inventory=where,
                hint="write it in plain, or leave it out",
            )
    for first, second in ALIASES:
        if first in hostvars and second in hostvars and str(hostvars[first]) != str(hostvars[second]):
            raise _fail(name, second, f"differs from {first}; keep one", inventory=where)
    connection = hostvars.get("ansible_connection")
    if connection is not None and str(connection) not in CONNECTIONS:
        raise _fail(
            name,
            "ansible_connection",
            f"is {str(connection)[:20]!r}: not a Windows host (WinRM or PSRP)",
            inventory=where,
            hint="use --limit to pick the Windows hosts",
        )
    base_value = hostvars.get("opslib_base_params")
    base_file = _absolute(str(base_value), base_dir) if base_value else base_params
    data: dict[str, Any] = _base(name, Path(base_file), inventory=where) if base_file else {}
    origin: dict[str, str] = {}  # key path → the variable that set it
    env: dict[str, str] = {}

    def secret(path: str, variable: str) -> None:
        if secret_env[variable]:  # "": the value is held elsewhere (the Ansible role hands it to the run)
            env[SECRET_ENV[path]] = secret_env[variable]
            register(secret_env[variable])
        _set(data, path, f"env:{SECRET_ENV[path]}")
        origin[path] = variable

    if any(v in hostvars for v in URL_VARIABLES) or "url" not in data.get("winrm", {}):
        _set(data, "winrm.url", _url(name, hostvars, inventory=where))
        origin["winrm.url"] = next((v for v in URL_VARIABLES if v in hostvars), "ansible_host")
    users = [v for v in USER_VARIABLES if v in hostvars]
    if users:
        _set(data, "winrm.username", hostvars[users[0]])
        origin["winrm.username"] = users[0]
    passwords = [v for v in (*PASSWORD_VARIABLES, "opslib_winrm_password") if v in hostvars]
    if len(passwords) > 1:
        raise _fail(
            name,
            passwords[1],
            f"sets the WinRM password as {passwords[0]} does too; keep one",
            inventory=where,
        )
    for variable in passwords[:1]:
        if variable in secret_env:
            secret("winrm.password", variable)
        elif variable == "opslib_winrm_password":
            _set(data, "winrm.password", hostvars[variable])  # a reference (validate refuses a literal)
            origin["winrm.password"] = variable
        else:
            raise _fail(
                name,
                variable,
                "holds a plaintext password; the kit takes it only vault-encrypted",
                inventory=where,
                hint="encrypt it with `ansible-vault encrypt_string`, or set opslib_winrm_password: env:NAME",
            )
    for variable, path in WINRM_VARIABLES.items():
        if variable in hostvars:
            value = hostvars[variable]
            if variable == "ansible_winrm_transport" and isinstance(value, list):
                if len(value) != 1:
                    raise _fail(name, variable, "name one transport", inventory=where)
                value = value[0]
            key = next(k for k in SETTABLE if k.path == path)
            value = _coerce(key, value)
            _set(data, path, _absolute(value, base_dir) if path == "winrm.ca_trust_path" else value)
            origin[path] = variable
    private_pki: bool | None = None
    for variable, value in hostvars.items():
        if (
            not variable.startswith("opslib_")
            or variable in PLAYBOOK_VARIABLES
            or variable.startswith(PLAYBOOK_PREFIX)
            or variable in passwords
        ):
            continue
        if variable == "opslib_private_pki":
            private_pki = _as_bool(value)
            if private_pki is None:
                raise _fail(name, variable, "expected true or false", inventory=where)
            continue
        if variable == "opslib_base_params":
            continue
        if variable in ("opslib_winrm", "opslib_backup", "opslib_verify", "opslib_evidence"):
            raise _fail(
                name,
                variable,
                "the kit's sections are flat variables",
                inventory=where,
                hint=f"write {variable}_<key> (e.g. opslib_winrm_codepage); see docs/fleet.md",
            )
        key_path = KEY_OF_VARIABLE.get(variable)
        if key_path is None:
            import difflib

            close = difflib.get_close_matches(
                variable, [*KEY_OF_VARIABLE, *FLEET_VARIABLES], n=1, cutoff=0.75
            )
            raise _fail(
                name,
                variable,
                "unknown opslib_ variable",
                inventory=where,
                hint=f"did you mean {close[0]}?" if close else "see docs/fleet.md for the variables",
            )
        if key_path in SECRET_ENV and variable in secret_env:
            secret(key_path, variable)
            continue
        key = next(k for k in SETTABLE if k.path == key_path)
        value = _coerce(key, value)
        _set(data, key_path, _absolute(value, base_dir) if key_path in params_module.PATH_KEYS else value)
        origin[key_path] = variable
    if "host" not in origin:
        _set(data, "host", name)
        origin["host"] = "inventory_hostname"
    try:
        checked = params_module.validate(data, source=where, base_dir=base_dir, check_files=check_files)
    except ParameterError as exc:
        failed = exc.key
        variable = origin.get(failed) or (
            f"{failed} from the base parameters file {base_file}"
            if base_file and _in(data, failed)
            else VARIABLE_OF_KEY.get(failed, failed)
        )
        raise _fail(name, f"{variable} ({failed})", exc.problem, inventory=where, hint=exc.hint) from None
    groups = tuple(str(g) for g in hostvars.get("group_names", ()) if g not in ("all", "ungrouped"))
    return FleetHost(
        name=name, params=checked.data, env=SecretEnv(env), groups=groups, private_pki=private_pki
    )


def _in(data: Mapping[str, Any], path: str) -> bool:
    section, _, leaf = path.rpartition(".")
    holder = data.get(section) if section else data
    return isinstance(holder, dict) and leaf in holder
