"""``opslib rehearse serve|fleet|demo``: the rehearsal host (an emulated Windows/IIS server), a fleet of them."""

from __future__ import annotations

import argparse

from .. import rehearsal


def command(a: argparse.Namespace) -> int:
    if a.rehearse_command == "fleet":
        from ..rehearsal import fleet

        return fleet.serve_fleet(
            hosts=a.hosts,
            scenarios=[s for s in a.scenarios.split(",") if s] if a.scenarios else fleet.DEFAULT_SCENARIOS,
            inventory_out=a.inventory_out,
            workdir=a.workdir,
            latency_ms=a.latency_ms,
            user=a.user,
            password_env=a.password_env,
            pfx_password_env=a.pfx_password_env,
        )
    if a.rehearse_command == "serve":
        return rehearsal.serve_forever(
            listen=a.host,
            port=a.port,
            https=a.https,
            user=a.user,
            password_env=a.password_env,
            locale=a.locale,
            codepage=a.codepage,
            scenario=a.scenario,
            faults=a.fault,
            state_file=a.state_file,
            params_out=a.params_out,
            workdir=a.workdir,
            auth=a.auth,
            allow_basic=a.allow_basic,
            allow_unencrypted=a.allow_unencrypted,
            tls=a.tls,
            latency_ms=a.latency_ms,
        )
    from ..rehearsal import demo

    if a.rehearse_command == "faults":
        print(
            f"named fault points of a clean renewal on the demo host ({demo.SCENARIO}), with their positions:"
        )
        for name, position in demo.fault_points():
            print(f"  {name:<22} {position}")
        print(
            "use: --fault before|after:NAME[#N]:drop|timeout|fail|fault500 — an operation (roots, install, swap, "
            "export, preflight) names all its commands, NAME#N the N-th of them; PROGRAM#N counts as before"
        )
        return 0
    return demo.run_demo(evidence_root=a.evidence_root, backup_dir=a.backup_dir)
