"""``opslib lab capture|compare``: the lab check's confirmation and console text (issue 15)."""

from __future__ import annotations

import argparse
import json
import sys

from .. import lab
from ..errors import UsageError
from .text import table


def _confirm_reversible(yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(
            "--reversible changes the server's MY store (a throw-away certificate, undone) and needs a yes",
            hint="run it on a terminal, or add --yes",
        )
    answer = input(
        "The reversible tier adds a throw-away certificate to the server's MY store, disables and re-enables "
        "it, exports it and deletes it. No existing certificate or site is touched. Type yes to go on: "
    )
    if answer.strip().lower() != "yes":
        raise UsageError("not confirmed; nothing was changed")


def command(a: argparse.Namespace) -> int:
    """``opslib lab capture|compare``."""

    if a.lab_command == "capture":
        if a.reversible:
            _confirm_reversible(a.yes)
        manifest = lab.capture(a.params, a.out, tier="reversible" if a.reversible else "read-only")
        failed = [p["id"] for p in manifest["probes"] if p.get("error")]
        host = manifest["host"]
        print(f"captured {len(manifest['probes'])} probes from {manifest['host_label']} into {a.out}")
        print(
            f"  Windows {host['windows_version'] or '?'}, IIS {host['iis_major']}.{host['iis_minor']}, "
            f"code page {host['codepage']}, language {host['language']}, WinRM {host['winrm_stack'] or '?'}"
        )
        if failed:
            print(f"  probes that could not finish (recorded): {', '.join(failed)}")
        print(f"next: opslib lab compare {a.out}")
        return 0
    result = lab.compare(a.bundle, scenario=a.scenario)
    if a.json:
        print(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
        return result.exit_code
    print(f"bundle {a.bundle} ({result.source}, {result.tier}) vs rehearsal scenario {result.scenario}")
    rows = [
        [
            v.id,
            "same" if v.agrees else "DIFFERS",
            "; ".join(f"{d['key']}: {d['captured']!r} vs {d['rehearsal']!r}" for d in v.decision_diffs),
            " ".join(v.rows),
        ]
        for v in result.verdicts
    ]
    print(table(["probe", "decision", "differences (captured vs rehearsal)", "rows"], rows))
    red = [r for r in result.verdict_rows() if r["verdict"] == "red"]
    if red:
        print("what each difference means for a renewal on this host:")
        for r in red:
            print(f"  {r['probe']}: {r['for a renewal']}")
    cosmetic = [(v.id, c) for v in result.verdicts for c in v.cosmetic]
    if cosmetic:
        print(f"cosmetic differences ({len(cosmetic)}; not decided on):")
        for pid, text in cosmetic:
            print(f"  {pid}: {text}")
    n = result.decision_differences
    print(
        f"{n} decision-relevant difference(s): the kit's beliefs do not hold on this host as on the rehearsal host"
        if n
        else "no decision-relevant difference"
    )
    return result.exit_code
