"""The fleet's inventory, as operators keep it: an Ansible inventory read by ansible-core itself.

:func:`load_inventory` runs ``ansible-inventory -i PATH --list [--limit P]`` as a subprocess (YAML or INI,
``group_vars/``, ``host_vars/``, every inventory source ansible-core reads; no parser of our own and no use
of ansible's Python API), under a UTF-8 locale, then maps each host's variables to the kit's parameters
(:func:`opslib.fleet.hostvars.host_from_vars`) and validates EVERY host before returning: a wrong value
anywhere stops the whole fleet before any host is contacted, naming the inventory, the host and the
variable.

A vault-encrypted secret (``ansible-vault encrypt_string``) shows in ``--list`` as
``{"__ansible_vault": "$ANSIBLE_VAULT;1.1;AES256…"}``; only such a value is decrypted, with
``ansible-vault decrypt`` over stdin/stdout (``--vault-password-file`` or ``ANSIBLE_VAULT_PASSWORD_FILE``),
never to disk, and reaches the host's process only as an environment variable.

ansible-core is the optional extra ``opslib[fleet]``; its programs are looked for next to the running
Python, then on PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .. import params as params_module
from .hostvars import (
    FleetHost,
    FleetInventoryError,
    SecretEnv,
    host_from_vars,
    is_vaulted,
    kit_variable,
    secret_variable,
)

__all__ = [
    "FleetHost",
    "FleetInventoryError",
    "SecretEnv",
    "host_from_vars",
    "load_inventory",
    "write_host_params",
    "ansible_program",
]

INVENTORY_TIMEOUT_S = 120
VAULT_TIMEOUT_S = 60
INSTALL_HINT = "install the fleet extra: pip install 'opslib[fleet]' (ansible-core)"


def ansible_program(name: str) -> Path:
    """``ansible-inventory`` / ``ansible-vault``: next to the running Python, else on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which(name)
    if found:
        return Path(found)
    raise FleetInventoryError(f"{name} not found (next to {sys.executable} or on PATH)", hint=INSTALL_HINT)


def _ansible_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "LC_ALL": "C.UTF-8",  # ansible-core refuses a non-UTF-8 locale
            "LANG": "C.UTF-8",
            "PYTHONUTF8": "1",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            # A source that does not parse is an error, not a warning and an empty inventory.
            "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1",
            "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "1",
        }
    )
    env.update(extra or {})
    return env


def _last_lines(text: str, n: int = 4) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " / ".join(lines[-n:])


def list_inventory(path: Path, *, limit: str | None = None) -> dict[str, Any]:
    """``ansible-inventory -i PATH --list [--limit P]`` as JSON (vaulted values stay encrypted)."""
    argv = [str(ansible_program("ansible-inventory")), "-i", str(path), "--list"]
    if limit:
        argv += ["--limit", limit]
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            env=_ansible_env(),
            timeout=INVENTORY_TIMEOUT_S,
            cwd=path.parent,
        )
    except subprocess.TimeoutExpired:
        raise FleetInventoryError(
            f"ansible-inventory did not answer within {INVENTORY_TIMEOUT_S} s", inventory=str(path)
        ) from None
    stderr = done.stderr.decode("utf-8", "replace")
    if done.returncode != 0:
        hint = ""
        if "vault" in stderr.lower():
            hint = (
                "the kit decrypts single vault-encrypted variables (ansible-vault encrypt_string), "
                "not vault-encrypted files"
            )
        raise FleetInventoryError(
            f"ansible-inventory failed (exit {done.returncode}): {_last_lines(stderr)}",
            inventory=str(path),
            hint=hint,
        )
    try:
        data: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise FleetInventoryError(
            "ansible-inventory --list did not print JSON", inventory=str(path)
        ) from None
    return data


def group_membership(listing: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """``{host: (group, …)}`` from the ``--list`` output: every group a host is in, directly or by a child."""
    children = {
        g: list(v.get("children", [])) for g, v in listing.items() if g != "_meta" and isinstance(v, dict)
    }
    direct = {g: list(v.get("hosts", [])) for g, v in listing.items() if g != "_meta" and isinstance(v, dict)}
    out: dict[str, set[str]] = {}

    def walk(group: str, trail: tuple[str, ...]) -> None:
        if group in trail:
            return
        trail = (*trail, group)
        for host in direct.get(group, []):
            out.setdefault(host, set()).update(trail)
        for child in children.get(group, []):
            walk(child, trail)

    walk("all", ())
    for group in direct:  # groups not reachable from "all" (none in practice)
        walk(group, ())
    return {h: tuple(sorted(g for g in gs if g not in ("all", "ungrouped"))) for h, gs in out.items()}


def _vault_password_args(
    vault_password_file: Path | None, *, inventory: str, host: str, variable: str
) -> list[str]:
    if vault_password_file is not None:
        if not Path(vault_password_file).is_file():
            raise FleetInventoryError(
                f"vault password file not found: {vault_password_file}",
                inventory=inventory,
                host=host,
                variable=variable,
            )
        return ["--vault-password-file", str(vault_password_file)]
    if os.environ.get("ANSIBLE_VAULT_PASSWORD_FILE") or os.environ.get("ANSIBLE_VAULT_IDENTITY_LIST"):
        return []  # ansible-vault reads them itself
    raise FleetInventoryError(
        "is vault-encrypted and no vault password was given",
        inventory=inventory,
        host=host,
        variable=variable,
        hint="give --vault-password-file FILE or set ANSIBLE_VAULT_PASSWORD_FILE",
    )


def decrypt(ciphertext: str, *, password_args: list[str], inventory: str, host: str, variable: str) -> str:
    """One vault-encrypted value, decrypted by ``ansible-vault decrypt`` over stdin/stdout (never on disk)."""
    argv = [str(ansible_program("ansible-vault")), "decrypt", *password_args, "--output", "-", "-"]
    try:
        done = subprocess.run(
            argv,
            input=ciphertext.encode("utf-8"),
            capture_output=True,
            env=_ansible_env(),
            timeout=VAULT_TIMEOUT_S,
            start_new_session=True,  # no terminal: ansible-vault cannot prompt
        )
    except subprocess.TimeoutExpired:
        raise FleetInventoryError(
            f"ansible-vault did not answer within {VAULT_TIMEOUT_S} s",
            inventory=inventory,
            host=host,
            variable=variable,
        ) from None
    if done.returncode != 0:
        raise FleetInventoryError(
            f"ansible-vault could not decrypt it (exit {done.returncode}): "
            f"{_last_lines(done.stderr.decode('utf-8', 'replace'), 2)}",
            inventory=inventory,
            host=host,
            variable=variable,
            hint="check the vault password file",
        )
    return done.stdout.decode("utf-8")


def _decrypt_all(
    hostvars: Mapping[str, Mapping[str, Any]], *, vault_password_file: Path | None, inventory: str
) -> dict[str, dict[str, str]]:
    """``{host: {variable: plaintext}}`` for every vault-encrypted secret variable; each distinct
    ciphertext is decrypted once (a group's vaulted password serves all its hosts)."""
    wanted: dict[str, tuple[str, str]] = {}  # ciphertext → (first host, variable) for messages
    for host, variables in hostvars.items():
        for variable, value in variables.items():
            if kit_variable(variable) and secret_variable(variable) and is_vaulted(value):
                wanted.setdefault(str(value["__ansible_vault"]), (host, variable))
    if not wanted:
        return {}
    first_host, first_variable = next(iter(wanted.values()))
    args = _vault_password_args(
        vault_password_file, inventory=inventory, host=first_host, variable=first_variable
    )
    with ThreadPoolExecutor(max_workers=min(4, len(wanted))) as pool:
        futures = {
            text: pool.submit(decrypt, text, password_args=args, inventory=inventory, host=h, variable=v)
            for text, (h, v) in wanted.items()
        }
        plain = {text: f.result() for text, f in futures.items()}
    out: dict[str, dict[str, str]] = {}
    for host, variables in hostvars.items():
        for variable, value in variables.items():
            if kit_variable(variable) and secret_variable(variable) and is_vaulted(value):
                out.setdefault(host, {})[variable] = plain[str(value["__ansible_vault"])]
    return out


def _natural(name: str) -> list[Any]:
    """web2 before web10."""
    import re

    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def load_inventory(
    path: Path,
    *,
    limit: str | None = None,
    base_params: Path | None = None,
    vault_password_file: Path | None = None,
) -> list[FleetHost]:
    """Every host of the inventory (``--limit`` applied), mapped and validated, in inventory order.

    Raises :class:`FleetInventoryError` (exit 2) naming the inventory, the host and the variable for the
    first host whose parameters are wrong — before any host is contacted.
    """
    path = Path(path)
    where = str(path)
    if not path.exists():
        raise FleetInventoryError("inventory not found", inventory=where)
    if base_params is not None and not Path(base_params).is_file():
        raise FleetInventoryError(f"base parameters file not found: {base_params}", inventory=where)
    listing = list_inventory(path.resolve(), limit=limit)
    hostvars: dict[str, dict[str, Any]] = dict(listing.get("_meta", {}).get("hostvars", {}))
    membership = group_membership(listing)
    names = sorted(dict.fromkeys([*membership, *hostvars]), key=_natural)
    if not names:
        raise FleetInventoryError(
            f"no host matches --limit {limit!r}" if limit else "the inventory has no hosts", inventory=where
        )
    secrets = _decrypt_all(
        {n: hostvars.get(n, {}) for n in names}, vault_password_file=vault_password_file, inventory=where
    )
    base_dir = path.resolve().parent if path.is_file() else path.resolve()
    hosts = []
    for name in names:
        variables = {**hostvars.get(name, {}), "group_names": list(membership.get(name, ()))}
        hosts.append(
            host_from_vars(
                name,
                variables,
                base_dir=base_dir,
                base_params=Path(base_params).resolve() if base_params else None,
                secret_env=secrets.get(name, {}),
                inventory=where,
            )
        )
    labels: dict[str, str] = {}
    for host in hosts:
        other = labels.setdefault(host.label, host.name)
        if other != host.name:
            raise FleetInventoryError(
                f"uses the evidence name {host.label!r} that host {other} uses too",
                inventory=where,
                host=host.name,
                variable="opslib_host",
                hint="give each host its own opslib_host",
            )
    return hosts


def write_host_params(host: FleetHost, path: Path) -> Path:
    """The host's parameters file (YAML; secrets only as references; paths absolute)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = params_module.dump(
        host.params,
        header=f"host {host.name} of a fleet: written from the inventory by opslib (secrets are references)",
    )
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
