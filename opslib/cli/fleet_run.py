"""``opslib fleet run`` and ``opslib fleet record``: the rollout and the fleet record (docs/fleet.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UsageError
from ..text import escape_text
from .text import escaped_errors


def command(a: argparse.Namespace) -> int:
    with escaped_errors():
        if a.fleet_command == "record":
            return record(a)
        return run(a)


def run(a: argparse.Namespace) -> int:
    from ..fleet import rollout
    from ..fleet.inventory import load_inventory, write_host_params

    if not a.yes and not a.dry_run:
        raise UsageError(
            "fleet run changes production on every host of the inventory without asking each time",
            hint="give --yes (or --dry-run to check every host first, changing nothing)",
        )
    if a.forks < 1:
        raise UsageError(f"--forks {a.forks}: give 1 or more", hint="e.g. --forks 5")
    if not 0 <= a.max_fail_percentage <= 100:
        raise UsageError(f"--max-fail-percentage {a.max_fail_percentage:g}: give 0–100")
    serial = rollout.parse_serial(a.serial)
    inventory = Path(a.inventory)
    hosts = load_inventory(
        inventory,
        limit=a.limit,
        base_params=Path(a.base_params) if a.base_params else None,
        vault_password_file=Path(a.vault_password_file) if a.vault_password_file else None,
    )
    settings = rollout.Settings(
        serial=serial,
        forks=a.forks,
        max_fail_percentage=a.max_fail_percentage,
        dry_run=a.dry_run,
        verbose=a.verbose,
        limit=a.limit or "",
    )
    result = rollout.run_fleet(
        hosts,
        evidence_root=a.evidence_root,
        name=a.name or inventory.stem,
        settings=settings,
        write_params=write_host_params,
        inventory=str(inventory.resolve()),
    )
    return result.exit_code


def record(a: argparse.Namespace) -> int:
    """``opslib fleet record --evidence-root DIR --name NAME RUN_DIR…``: the same record from run folders."""
    from ..fleet.assemble import record_from_runs

    folder = record_from_runs(
        a.evidence_root,
        a.name,
        [Path(p) for p in a.run_dirs],
        inventory=Path(a.inventory) if a.inventory else None,
        limit=a.limit,
        hmac_key_ref=a.hmac_key,
    )
    print(escape_text(folder / "fleet.json"))
    return 0
