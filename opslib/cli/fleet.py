"""``opslib fleet plan``: the read-only pre-flight of every host of an Ansible inventory, in parallel.

``opslib fleet run`` / ``fleet record`` live in :mod:`opslib.cli.fleet_run` (dispatched from here).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from ..fleet import plan as fleet_plan
from ..fleet.inventory import load_inventory
from ..text import escape_text
from .text import escaped_errors, table


def command(a: argparse.Namespace) -> int:
    if a.fleet_command == "plan":
        return plan(a)
    # fleet run / fleet record (helper "fleetrun"): their own module.
    return int(importlib.import_module(".fleet_run", __package__).command(a))


def _short(thumbprint: str) -> str:
    return thumbprint[:8] + "…" if thumbprint else "(none)"


def _day(iso: str) -> str:
    return iso[:10] if iso else "?"


def plan(a: argparse.Namespace) -> int:
    """Exit 0 when every host is ready (or already renewed), 1 when any host would refuse, 2 for a wrong
    inventory (before any host is contacted)."""
    if a.forks < 1:
        print("opslib: error: --forks must be 1 or more", file=sys.stderr)
        return 2
    with escaped_errors():
        hosts = load_inventory(
            Path(a.inventory),
            limit=a.limit,
            base_params=Path(a.base_params) if a.base_params else None,
            vault_password_file=Path(a.vault_password_file) if a.vault_password_file else None,
        )
    total = len(hosts)
    done: list[int] = [0]

    def progress(result: fleet_plan.HostPlan) -> None:
        done[0] += 1
        if not a.json:
            print(
                f"[{done[0]}/{total}] {escape_text(result.name)}: {result.verdict}",
                file=sys.stderr,
                flush=True,
            )

    results = fleet_plan.plan_fleet(hosts, forks=a.forks, source=str(a.inventory), on_done=progress)
    refused = [r for r in results if r.verdict == fleet_plan.REFUSE]
    if a.json:
        print(json.dumps({"inventory": str(a.inventory), "hosts": [r.row() for r in results]}, indent=1))
        return 1 if refused else 0
    rows = [
        [
            r.name,
            r.site,
            r.iis or "?",
            f"{_short(r.serves_thumbprint)} until {_day(r.serves_until_utc)}" if r.iis else "?",
            f"{_short(r.new_thumbprint)} until {_day(r.new_until_utc)}",
            r.verdict,
        ]
        for r in results
    ]
    print(table(["host", "site", "IIS", "serves now", "new certificate", "verdict"], rows))
    print()
    for r in results:
        if r.predicted_chain:
            print(f"{escape_text(r.name)}: predicted chain {escape_text(r.predicted_chain)}")
        print(f"{escape_text(r.name)}: {r.verdict} — {escape_text(r.why)}")
    ready = sum(r.verdict == fleet_plan.READY for r in results)
    already = sum(r.verdict == fleet_plan.ALREADY for r in results)
    print(
        f"\n{total} host{'' if total == 1 else 's'}: {ready} ready, {already} already renewed, {len(refused)} would refuse"
        + (f" ({', '.join(r.name for r in refused)})" if refused else "")
        + "; nothing was changed"
    )
    return 1 if refused else 0
