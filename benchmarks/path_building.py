"""How long the kit's path building takes on the bundles of issue 24 item 7 (target: each ≤ 2 s).

Wall times, each the best of ``--repeat`` runs (certificates are made once, before timing):

* inspect — ``opslib.inspection.inspect_sources`` on one PEM file (what ``opslib inspect FILE`` does);
* expect — ``opslib.certs.expect_chain`` (the runbook's prediction in step 0/1) with the bundle as the
  CA's file and its roots as the server's Trusted Root store;
* pre-flight — ``opslib.preflight.check_server`` against a rehearsal host (scenario ``default``) with
  the scenario's own mail (a normal renewal) and with that mail's leaf + a crafted 35-certificate
  branching CA file hung under its intermediate (what ``opslib run --dry-run`` checks first).

Bundles (``tests/chain_shapes.py``): ``branching-35`` (6 CAs cross-certifying each other, 4 of them
self-signed too, a leaf), ``branching-57`` (8 CAs, no roots: no path is complete), ``vendor-500`` (a leaf,
its intermediate and root, 497 unrelated roots, every tenth expired).

    PYTHONPATH=. .venv/bin/python benchmarks/path_building.py [--repeat N] [--no-preflight]

Run it with another checkout's ``opslib`` first on ``PYTHONPATH`` to compare (the "before" numbers in
``docs/chains.md`` are main's code before the one path builder, measured this way). Exit 1 when a
number is over the target.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from chain_shapes import branching, g5_shape, vendor_bundle  # noqa: E402

from opslib import certs, inspection, preflight, rehearsal  # noqa: E402
from opslib.rehearsal import scenarios  # noqa: E402
from opslib.rehearsal.pki import make_pki  # noqa: E402

TARGET_S = 2.0
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def _best(fn: Callable[[], Any], repeat: int, budget_s: float = 120.0) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        if best > budget_s:
            break
    return best


def _bundles() -> dict[str, tuple[certs.Certificate, list[certs.Certificate]]]:
    leaf35, cas35 = branching(6, 4, NOW)
    leaf57, cas57 = branching(8, 0, NOW)
    vendor = vendor_bundle(497, NOW)
    return {
        "branching-35": (leaf35, cas35),
        "branching-57": (leaf57, cas57),
        "vendor-500": (vendor[0], vendor[1:]),
    }


def _preflight(repeat: int, base: Path) -> dict[str, float]:
    password = secrets.token_urlsafe(12)
    host = scenarios.build_host("default", workdir=base / "host", now_utc=NOW)
    pki = make_pki(now_utc=NOW, hostnames=scenarios.HOSTNAMES)
    _, mesh = branching(6, 4, NOW, base=(pki.intermediate.subject, pki.intermediate_key))
    crafted = base / "crafted.pem"
    crafted.write_bytes(certs.encode_pem(pki.new_leaf, *mesh[:34]))
    mail = str(host.extra["certificate_file"])
    from opslib.server import Server
    from opslib.winrm import connect

    out: dict[str, float] = {}
    with rehearsal.start(host, password=password) as r:
        with connect(
            r.url,
            transport="basic",
            username=r.user,
            password=password,
            host_label="web01",
            allow_unencrypted_basic=True,
            allow_cleartext_secrets=True,
        ) as conn:
            server = Server(conn)
            for label, path in (("normal mail", mail), ("crafted 35", str(crafted))):

                def check(path: str = path, label: str = label) -> None:
                    try:
                        preflight.check_server(
                            server,
                            production_site=scenarios.PRODUCTION_SITE,
                            work_site=scenarios.WORK_SITE,
                            certificate_file=path,
                            forbidden_roots=pki.forbidden_thumbprints,
                            host="web01",
                        )
                    except certs_errors() as exc:  # a refusal is a result too (the crafted file)
                        print(f"    ({label}: refused: {str(exc)[:120]}…)")

                out[f"pre-flight, {label}"] = _best(check, repeat)
    return out


def certs_errors() -> tuple[type[Exception], ...]:
    from opslib.errors import OpsError

    return (OpsError,)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-preflight", action="store_true", help="skip the rehearsal-host pre-flight timing")
    ap.add_argument("--only", default="", help="comma-separated bundle names (default: all)")
    a = ap.parse_args(argv)
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        for name, (leaf, cas) in _bundles().items():
            if a.only and name not in a.only.split(","):
                continue
            pem = base / f"{name}.pem"
            pem.write_bytes(certs.encode_pem(leaf, *cas))
            print(f"{name}: {1 + len(cas)} certificates", flush=True)
            results[f"inspect {name}"] = _best(
                lambda pem=pem: inspection.inspect_sources([str(pem)], now_utc=NOW), a.repeat
            )
            roots = [certs.Source(c, "ROOT") for c in cas if certs.is_self_signed(c)]
            results[f"expect {name}"] = _best(
                lambda leaf=leaf, cas=cas, roots=roots: certs.expect_chain(
                    leaf, supplied=cas, stores=roots, now_utc=NOW
                ),
                a.repeat,
            )
        shape = g5_shape(NOW)
        g5 = base / "g5.pem"
        g5.write_bytes(certs.encode_pem(shape.intermediate, shape.root, shape.cross, shape.old_root))
        results["inspect g5-shaped CA bundle"] = _best(
            lambda: inspection.inspect_sources([str(g5)], now_utc=NOW), a.repeat
        )
        if not a.no_preflight:
            os.environ.setdefault("OPSLIB_STEP_ENGINE", "inprocess")
            results.update(_preflight(a.repeat, base))
    width = max(len(k) for k in results)
    failed = False
    for k, v in results.items():
        over = v > TARGET_S and not k.startswith("pre-flight")  # the pre-flight includes WinRM round trips
        failed |= over
        print(f"{k:<{width}}  {v:8.3f} s{'  OVER TARGET' if over else ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
