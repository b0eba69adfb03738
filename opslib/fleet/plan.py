"""``opslib fleet plan``: the read-only pre-flight of every host of a fleet, in parallel.

For each host, the single-server pre-flight and nothing else (no second pre-flight): the runner's local
checks (:func:`opslib.preflight.check_inputs`: the CA's file as step 1 reads it, the PFX password rule),
then on the server what step 0 checks before anything changes (:func:`opslib.preflight.check_server`: both
sites, the pending request, the predicted chain, IIS 7–10 bindings, step 3's export route proven on the
current certificate in the connection's temp folder), and the server's renewal lock (a run holding it
would make ``opslib run`` refuse). Nothing on the server changes: no root is disabled, nothing is
installed or bound, no lock is taken.

A host whose production site already serves the new certificate is "already renewed" (not a refusal).

Each host's secrets reach only its own connection: its decrypted variables (:attr:`FleetHost.env`) are
handed to ``credentials.resolve`` / ``connect_params`` as that host's environment (``env=``), never put in
this process's environment, never written. A ``prompt`` reference is refused for a fleet (N hosts in
parallel cannot each ask).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import certs, credentials, preflight
from .. import params as params_module
from ..credentials import redact
from ..errors import OpsError, ParameterError, UsageError
from ..runbook.steps import steps_for
from ..server import Server
from ..server.renewal_lock import ServerLock, describe
from ..server.stores import read_stores
from ..winrm.from_params import connect_params
from .hostvars import FleetHost

READY, ALREADY, REFUSE = "ready", "already renewed", "refuse"
DEFAULT_FORKS = 8


@dataclass
class HostPlan:
    """What the pre-flight found on one host (one line of the plan, one object of ``--json``)."""

    name: str  # inventory_hostname
    host: str  # the evidence name
    url: str = ""
    site: str = ""
    iis: str = ""
    windows: str = ""
    serves_thumbprint: str = ""
    serves_until_utc: str = ""
    new_thumbprint: str = ""
    new_until_utc: str = ""
    predicted_chain: str = ""
    export_route: str = ""
    verdict: str = REFUSE
    why: str = ""
    duration_s: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "host": self.host,
            "url": self.url,
            "site": self.site,
            "iis": self.iis,
            "windows": self.windows,
            "serves_thumbprint": self.serves_thumbprint,
            "serves_until_utc": self.serves_until_utc,
            "new_thumbprint": self.new_thumbprint,
            "new_until_utc": self.new_until_utc,
            "predicted_chain": self.predicted_chain,
            "export_route": self.export_route,
            "verdict": self.verdict,
            "why": self.why,
            "duration_s": round(self.duration_s, 3),
        }


def _iso(moment: Any) -> str:
    if isinstance(moment, datetime):
        return moment.astimezone(UTC).isoformat()
    return str(moment or "")


def plan_host(host: FleetHost, *, source: str = "") -> HostPlan:
    """The pre-flight of one host; never raises for what the host or its inputs are (the verdict says)."""
    started = time.monotonic()
    plan = HostPlan(name=host.name, host=host.label, url=str(host.params["winrm"]["url"]))
    plan.site = str(host.params.get("production_site", ""))
    try:
        _check(plan, host.params, host.env, source=source or f"host {host.name}")
    except OpsError as exc:
        plan.verdict, plan.why = REFUSE, redact(str(exc))
    except Exception as exc:  # noqa: BLE001 - a host that cannot be reached is that host's verdict, not the plan's end
        plan.verdict, plan.why = REFUSE, redact(f"{type(exc).__name__}: {exc}")
    plan.duration_s = time.monotonic() - started
    return plan


def _check_pfx_password(checked: params_module.Parameters, env: Mapping[str, str]) -> None:
    """``preflight.check_pfx_password`` on this host's PFX password (resolved with its own env)."""
    ref = str(checked.get("backup.pfx_password"))
    problem = preflight.check_pfx_password(credentials.resolve(ref, purpose="backup.pfx_password", env=env))
    if problem:
        raise ParameterError(
            "backup.pfx_password",
            f"the password {ref} gives cannot be used: {problem}",
            source=checked.source,
            hint=f"{credentials.PFX_PASSWORD_RULE}; nothing was changed",
        )


def _check(plan: HostPlan, data: dict[str, Any], env: Mapping[str, str], *, source: str) -> None:
    checked = params_module.validate(data, source=source, base_dir=Path("/"))
    for key, ref in checked.secret_references().items():
        if ref.startswith("prompt"):
            raise UsageError(
                f"{key} is {ref}: a fleet cannot prompt for each host",
                hint="use env:NAME or a vault-encrypted variable (docs/fleet.md)",
            )
    # Local first, as `opslib run` does before any connection: the CA's file, the PFX password rule.
    steps = [s.name for s in steps_for("renew") if s.name != "03_backup_keypair"]
    preflight.check_inputs(checked, steps=steps)  # the PFX rule below, with this host's own env
    _check_pfx_password(checked, env)
    bundle = certs.load_certificates(
        checked.path("certificate_file").read_bytes(), source=str(data["certificate_file"])
    )
    leaf = bundle.leaf
    if leaf is not None:
        plan.new_thumbprint = certs.thumbprint(leaf)
        plan.new_until_utc = _iso(certs.summarize(leaf).not_after_utc)
    with Server(connect_params(dict(data["winrm"]), host=checked.host, env=env)) as server:
        caps = server.capabilities
        plan.iis, plan.windows = str(caps.row()["iis"]), caps.windows_version
        production = server.iis.find_site(checked.site)
        plan.serves_thumbprint = production.cert_thumbprint
        mine = {e.thumbprint: e for e in read_stores(server.conn, ["MY"]).get("MY", [])}
        if production.cert_thumbprint in mine:
            plan.serves_until_utc = _iso(mine[production.cert_thumbprint].summary.not_after_utc)
        if plan.new_thumbprint and production.cert_thumbprint == plan.new_thumbprint:
            plan.verdict = ALREADY
            plan.why = f"production site {production.label} already serves the new certificate"
            return
        holder = ServerLock(server.conn, host=checked.host).holder()
        if holder:
            plan.verdict = REFUSE
            plan.why = f"another run holds the server's renewal lock: {describe(holder)}"
            return
        ready = preflight.check_server(
            server,
            production_site=checked.site,
            work_site=str(data["work_site"]),
            certificate_file=str(checked.path("certificate_file")),
            forbidden_roots=data.get("forbidden_roots", []),
            host=checked.host,
            ssl_port=int(data.get("ssl_port", 443)) if caps.iis_major >= 7 else None,
        )
        plan.predicted_chain = ready.predicted.describe() if ready.predicted else ""
        plan.export_route = str((ready.export_route or {}).get("export_route", ""))
        plan.details = {k: str(v) for k, v in ready.row().items()}
        plan.verdict = READY
        plan.why = (
            f"pending request {ready.pending_request[:8]}… on {ready.work.label}; predicted chain usable; "
            f"production {ready.production.label} would change from {production.cert_thumbprint[:8]}… "
            f"to {plan.new_thumbprint[:8]}…"
        )


def plan_fleet(
    hosts: Sequence[FleetHost],
    *,
    forks: int = DEFAULT_FORKS,
    source: str = "",
    on_done: Callable[[HostPlan], None] | None = None,
) -> list[HostPlan]:
    """Every host's :func:`plan_host`, at most ``forks`` at once; results in the hosts' order."""

    def one(host: FleetHost) -> HostPlan:
        result = plan_host(host, source=f"{source}: host {host.name}" if source else "")
        if on_done is not None:
            on_done(result)
        return result

    with ThreadPoolExecutor(max_workers=max(1, forks)) as pool:
        return list(pool.map(one, hosts))
