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
    if a.rehearse_command == "issue":
        return issue(a)
    from ..rehearsal import demo

    if a.rehearse_command == "faults":
        print(f"named fault points of a clean renewal on the {a.scenario} host, with their positions:")
        for name, position in demo.fault_points(scenario=a.scenario):
            print(f"  {name:<22} {position}")
        print(
            "use: --fault before|after:NAME[#N]:drop|timeout|fail|fault500 — an operation (roots, install, swap, "
            "export, preflight) names all its commands, NAME#N the N-th of them; PROGRAM#N counts as before"
        )
        return 0
    return demo.run_demo(evidence_root=a.evidence_root, backup_dir=a.backup_dir)


def issue(a: argparse.Namespace) -> int:
    """``opslib rehearse issue CSR --out MAIL``: the rehearsal CA answers a request with its mail."""
    from pathlib import Path

    from ..errors import UsageError
    from ..rehearsal import ca

    source = Path(a.csr)
    if not source.is_file():
        raise UsageError(f"{source}: no such file", hint="give the request.csr of an opslib request run")
    workdir = Path(a.workdir) if a.workdir else None
    chain = a.chain or (ca.chain_of(workdir) if workdir else "default")
    issued = ca.issue(source.read_bytes(), source=str(source), chain=chain, lang=a.lang, workdir=workdir)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(issued.mail)
    print(f"opslib: the rehearsal CA issued {issued.certificate.subject.rfc4514_string()} and wrote {out}")
    if not issued.authority.trusted_by_host:
        print(
            "opslib: this CA is not the rehearsal host's (another chain, or no --workdir): the host does not "
            "trust it, as with a CA whose chain changed"
        )
    return 0
