"""``opslib fleet host-params``: one inventory host's variables → its parameters file, for the Ansible role.

The role (``ansible/roles/opslib_renew``) renews each host by running the kit on the control node. For each
host it pipes the host's variables as JSON into this command, which applies the ONE inventory mapping
(:func:`opslib.fleet.inventory.host_from_vars`, the same as ``opslib fleet run`` uses), validates the
result and writes the parameters file (references only) with :func:`~opslib.fleet.inventory.write_host_params`.

No secret comes this way. A variable Ansible holds vault-encrypted (``ansible_password``, a vaulted
``opslib_backup_pfx_password`` …) is left out of the JSON and named with ``--vaulted VARIABLE``: the file
then refers to it as ``env:NAME``, and the command prints (JSON on standard output) which environment
variable each vaulted variable must reach ``opslib run`` in — the role hands it over there, to that one
process only. A secret-looking value in the JSON is refused, naming host and variable, without echoing it.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from pathlib import Path
from typing import Any

from ..errors import UsageError

VAULT_MARK = {"__ansible_vault": "(vault-encrypted; held by Ansible)"}
# Variables whose value is a secret: never on standard input (the role sends their names with --vaulted).
SECRET_SUFFIXES = ("_password", "_pass", "_hmac_key")


def read_hostvars(name: str, text: str) -> dict[str, Any]:
    """The JSON object on standard input; refuses anything else, and any secret it holds, naming the host."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"not JSON ({exc.msg}, line {exc.lineno})",
            where=f"host {name}: standard input",
            hint="pipe the host's variables as one JSON object, as the role opslib_renew does",
        ) from None
    if not isinstance(data, dict):
        raise UsageError(
            f"expected a JSON object of variables, got {type(data).__name__}",
            where=f"host {name}: standard input",
        )
    for variable, value in data.items():
        if str(variable).endswith(SECRET_SUFFIXES) and not _reference(value):
            raise UsageError(
                "a secret's value came on standard input; the kit takes it only vault-encrypted, handed to the "
                "run's environment",
                where=f"host {name}: {variable}",
                hint=f"leave {variable} out of the JSON and pass --vaulted {variable}, or write a reference (env:NAME)",
            )
    return data


def _reference(value: Any) -> bool:
    from ..credentials import is_reference

    return is_reference(value)


def host_params(a: argparse.Namespace) -> int:
    """Write HOST's parameters file; print ``{"params_file": …, "secret_env": {variable: env name}}``."""
    from ..fleet.inventory import host_from_vars, write_host_params

    hostvars = read_hostvars(a.name, sys.stdin.read())
    placeholders = {variable: secrets.token_hex(12) for variable in a.vaulted}
    for variable in a.vaulted:
        if variable in hostvars:
            raise UsageError(
                "is both on standard input and named by --vaulted", where=f"host {a.name}: {variable}"
            )
        hostvars[variable] = dict(VAULT_MARK)
    host = host_from_vars(
        a.name,
        hostvars,
        base_dir=Path(a.base_dir).resolve(),
        base_params=Path(a.base_params).resolve() if a.base_params else None,
        secret_env=placeholders,
    )
    # Which environment variable each vaulted variable reaches the run in (the placeholders tell them apart).
    env_of = {v: name for name, value in host.env.items() for v, p in placeholders.items() if p == value}
    unused = sorted(set(a.vaulted) - set(env_of))
    if unused:
        raise UsageError(
            "is vault-encrypted but the kit does not take it from there",
            where=f"host {a.name}: {unused[0]}",
            hint="only the WinRM password, the PFX password and the evidence HMAC key may be vaulted",
        )
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    written = write_host_params(host, out)
    print(json.dumps({"host": host.name, "params_file": str(Path(written).resolve()), "secret_env": env_of}))
    return 0
