"""A rehearsal fleet: N emulated servers, each on its own loopback address, and the Ansible inventory for them.

``opslib rehearse fleet --hosts N`` (:func:`serve_fleet`) starts N rehearsal hosts in one process, host
``i`` listening on its own address ``127.0.x.y`` (WS-Management and the TLS endpoints of its started
sites), with a mix of scenarios (IIS 6 Japanese, IIS 7.5 Japanese, IIS 10, IIS 10 SNI by default) and
its own certificates: the certificate each production site serves expires on its own day
(:func:`days_left_of`), so a calendar over the fleet has something to show. It writes an Ansible YAML
inventory with ``group_vars/`` and ``host_vars/`` beside it, as operators keep them, whose secrets are
references (``env:NAME``), then a manifest ``fleet.json`` in the work folder, and serves until
interrupted.

:func:`start_fleet` (tests, benchmarks) runs the same command in its own process tree (a subprocess in
a new session) and returns a :class:`RehearsalFleet` once the inventory is written.
"""

from __future__ import annotations

import json
import os
import secrets as _random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from ..errors import UsageError
from . import stop_on_signals

DEFAULT_SCENARIOS = ("iis6-ja", "iis75-ja", "iis10", "iis10-sni")
MANIFEST = "fleet.json"  # in the work folder: the hosts, written before the inventory
REQUESTS = "requests.json"  # in the work folder: WS-Management requests served per host, kept current
MARK = "# written by `opslib rehearse fleet`"
MAX_HOSTS = 1000
POLL_S = 0.25  # serve loop: how often the request counts are written and a stop is noticed
GROUP_OF_IIS = {6: "iis6", 7: "iis7", 8: "iis8", 10: "iis10"}


@dataclass(frozen=True)
class FleetMember:
    """One emulated server of a rehearsal fleet (``fleet.json``)."""

    name: str  # inventory_hostname
    scenario: str
    address: str  # its own loopback address
    url: str  # WS-Management endpoint
    workdir: str  # the CA's mail, the trust anchors, the state file
    state_file: str  # JSON picture of the host, rewritten after every command
    current_thumbprint: str
    current_not_after_utc: str
    new_thumbprint: str


def address_of(index: int) -> str:
    """Host ``index``'s loopback address: 127.0.0.2, 127.0.0.3, … (then 127.0.1.2, …)."""
    return f"127.0.{index // 250}.{index % 250 + 2}"


def days_left_of(index: int) -> int:
    """Days until host ``index``'s current certificate expires: spread over 7–90, all different for 12."""
    return 7 + (index * 29) % 84


def name_of(index: int, count: int) -> str:
    return f"web{index + 1:0{max(2, len(str(count)))}d}"


def check_request(hosts: int, scenarios: Sequence[str]) -> None:
    """A bad fleet request is a usage error before anything starts."""
    from .scenarios import SCENARIOS

    if not 1 <= hosts <= MAX_HOSTS:
        raise UsageError(f"--hosts {hosts}: a rehearsal fleet has 1 to {MAX_HOSTS} hosts")
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown or not scenarios:
        raise UsageError(
            f"--scenarios: unknown scenario {', '.join(unknown) or '(none given)'}; known: {', '.join(SCENARIOS)}"
        )


# --- the serving side (the subprocess) -----------------------------------------------------------------


def _launch(
    hosts: int, scenarios: Sequence[str], *, workdir: Path, user: str, password: str, latency_ms: int
) -> list[tuple[FleetMember, Any]]:
    from .. import rehearsal
    from .scenarios import build_host, shipped_auth

    started: list[tuple[FleetMember, Any]] = []
    try:
        for i in range(hosts):
            name, scenario, address = name_of(i, hosts), scenarios[i % len(scenarios)], address_of(i)
            folder = workdir / "hosts" / name
            folder.mkdir(parents=True, exist_ok=True)
            state = folder / "state.json"
            host = build_host(
                scenario,
                workdir=folder,
                state_file=state,
                current_days_left=days_left_of(i),
                leaf_tag=f"|{name}",  # certificates of its own: the new one differs host by host too
            )
            host.hostname = name.upper()
            host.extra["host_label"] = name
            host.extra["listen_address"] = address  # opslib.rehearsal.tlsserve listens there too
            member = FleetMember(
                name=name,
                scenario=scenario,
                address=address,
                url="",
                workdir=str(folder),
                state_file=str(state),
                current_thumbprint=str(host.extra["current_thumbprint"]),
                current_not_after_utc=_current_not_after(host),
                new_thumbprint=str(host.extra["new_thumbprint"]),
            )
            r = rehearsal.start(
                host,
                user=user,
                password=password,
                workdir=folder,
                listen=address,
                auth=shipped_auth(scenario),
                latency_ms=latency_ms,
            )
            started.append((replace(member, url=r.url), r))
    except BaseException:
        for _, running in started:
            running.stop()
        raise
    return started


def _current_not_after(host: Any) -> str:
    from .programs import stores

    entry = stores.find_certificate(host, "MY", str(host.extra["current_thumbprint"]))
    return entry.cert.not_valid_after_utc.isoformat() if entry is not None else ""


def _relative(path: str, folder: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(folder.resolve()))
    except ValueError:
        return str(Path(path).resolve())


def inventory_vars(params: Mapping[str, Any], *, address: str, folder: Path) -> dict[str, Any]:
    """A rehearsal host's parameters (``Rehearsal.params()``) as Ansible inventory variables.

    The WinRM connection in Ansible's own variables, the kit's keys as ``opslib_<key>`` /
    ``opslib_<section>_<key>`` (docs/fleet.md); paths relative to the inventory's folder.
    """
    from urllib.parse import urlsplit

    winrm = dict(params["winrm"])
    url = urlsplit(str(winrm.pop("url")))
    out: dict[str, Any] = {
        "ansible_host": address,
        "ansible_port": url.port,
        "ansible_winrm_scheme": url.scheme,
        "ansible_winrm_path": url.path,
        "ansible_user": winrm.pop("username"),
        "ansible_winrm_transport": winrm.pop("transport"),
        "ansible_winrm_server_cert_validation": winrm.pop("server_cert_validation"),
    }
    ca_trust = winrm.pop("ca_trust_path", "")
    if ca_trust:
        out["ansible_winrm_ca_trust_path"] = _relative(ca_trust, folder)
    for key, value in winrm.items():
        out[f"opslib_winrm_{key}"] = value
    for key, value in params.items():
        if key in ("winrm", "host"):
            continue
        if isinstance(value, dict):
            for sub, inner in value.items():
                path_like = f"{key}.{sub}" in ("verify.ca_file", "backup.directory")
                out[f"opslib_{key}_{sub}"] = _relative(inner, folder) if path_like and inner else inner
        else:
            out[f"opslib_{key}"] = _relative(value, folder) if key == "certificate_file" and value else value
    return out


def _split_vars(
    members: Sequence[tuple[str, str, dict[str, Any]]],
) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """(all, by group, by host): a value every host shares goes to group_vars/all.yml, one every host of
    a group shares to group_vars/<group>.yml, the rest to host_vars/<host>.yml."""

    def common(rows: list[dict[str, Any]]) -> dict[str, Any]:
        first = rows[0]
        return {k: v for k, v in first.items() if all(k in r and r[k] == v for r in rows[1:])}

    everyone = common([v for _, _, v in members])
    by_group: dict[str, dict[str, Any]] = {}
    for group in sorted({g for _, g, _ in members}):
        rows = [{k: x for k, x in v.items() if k not in everyone} for _, g, v in members if g == group]
        by_group[group] = common(rows) if len(rows) > 1 else {}
    by_host = {
        name: {k: x for k, x in v.items() if k not in everyone and k not in by_group[g]}
        for name, g, v in members
    }
    return everyone, by_group, by_host


def _write_owned(path: Path, text: str) -> None:
    """Write a file the fleet owns; refuse to overwrite one it did not write."""
    if path.exists() and not path.read_text(encoding="utf-8", errors="replace").startswith(MARK):
        raise UsageError(
            f"{path}: exists and was not written by `opslib rehearse fleet`; choose another folder"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _yaml(data: Any, comment: str) -> str:
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
    return f"{MARK} — {comment}\n" + body


def write_inventory(
    started: Sequence[tuple[FleetMember, Any]],
    *,
    inventory: Path,
    password_env: str,
    pfx_password_env: str,
    backup_dir: Path,
) -> Path:
    """The Ansible YAML inventory + group_vars/ + host_vars/ for the started hosts; secrets as references."""
    folder = inventory.parent
    base = folder / "base.yaml"
    members: list[tuple[str, str, dict[str, Any]]] = []
    scenario_groups: dict[str, list[str]] = {}
    for member, r in started:
        params = r.params(password_env=password_env, pfx_password_env=pfx_password_env)
        params.pop("backup")  # the base parameters file holds the backup section and warn_days
        params.pop("warn_days")
        group = GROUP_OF_IIS.get(int(r.host.iis_major), f"iis{r.host.iis_major}")
        values = inventory_vars(params, address=member.address, folder=folder)
        # Rehearsal PKI: the calendar of issue 28 separates private from public certificates.
        values["opslib_private_pki"] = True
        members.append((member.name, group, values))
        scenario_groups.setdefault("scenario_" + member.scenario.replace("-", "_"), []).append(member.name)
    everyone, by_group, by_host = _split_vars(members)
    everyone = {"ansible_connection": "winrm", "opslib_base_params": "base.yaml", **everyone}
    groups: dict[str, Any] = {}
    for group in by_group:
        groups[group] = {"hosts": {name: None for name, g, _ in members if g == group}}
    for group, names in sorted(scenario_groups.items()):
        groups[group] = {"hosts": {name: None for name in names}}
    _write_owned(
        base,
        _yaml(
            {
                "warn_days": 30,
                "backup": {"directory": str(backup_dir), "pfx_password": f"env:{pfx_password_env}"},
            },
            "base parameters of every host (opslib_base_params)",
        ),
    )
    _write_owned(folder / "group_vars" / "all.yml", _yaml(everyone, "every host"))
    for group, values in by_group.items():
        _write_owned(folder / "group_vars" / f"{group}.yml", _yaml(values, f"the hosts of group {group}"))
    for name, values in by_host.items():
        _write_owned(folder / "host_vars" / f"{name}.yml", _yaml(values, f"host {name}"))
    _write_owned(inventory, _yaml({"all": {"children": groups}}, "the rehearsal fleet's hosts"))
    return inventory


def _write_requests(folder: Path, started: Sequence[tuple[FleetMember, Any]]) -> None:
    counts = {m.name: r.request_count for m, r in started}
    tmp = folder / (REQUESTS + ".tmp")
    tmp.write_text(
        json.dumps({"written_utc": datetime.now(UTC).isoformat(), "requests": counts}), encoding="utf-8"
    )
    tmp.replace(folder / REQUESTS)


def serve_fleet(
    *,
    hosts: int,
    scenarios: Sequence[str] = DEFAULT_SCENARIOS,
    inventory_out: str | None = None,
    workdir: str | None = None,
    latency_ms: int = 0,
    user: str = "Administrator",
    password_env: str = "OPSLIB_REHEARSAL_PASSWORD",
    pfx_password_env: str = "OPSLIB_PFX_PASSWORD",
) -> int:
    """``opslib rehearse fleet``: serve until SIGINT/SIGTERM. Prints where things are, never a password."""
    import tempfile

    scenarios = tuple(scenarios) or DEFAULT_SCENARIOS
    check_request(hosts, scenarios)
    if latency_ms < 0:
        raise UsageError(f"--latency-ms {latency_ms}: must be 0 or more")
    folder = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="opslib-rehearsal-fleet-"))
    folder.mkdir(parents=True, exist_ok=True)
    inventory = Path(inventory_out) if inventory_out else folder / "inventory.yml"
    (folder / MANIFEST).unlink(missing_ok=True)
    password = os.environ.get(password_env, "")
    generated = not password
    if generated:
        password = _random.token_urlsafe(18)
    from ..credentials import register

    register(password)
    started_at = time.monotonic()
    try:
        started = _launch(
            hosts, scenarios, workdir=folder, user=user, password=password, latency_ms=latency_ms
        )
    except OSError as exc:
        raise UsageError(f"cannot start the rehearsal fleet: {exc.strerror or exc}") from None
    try:
        write_inventory(
            started,
            inventory=inventory,
            password_env=password_env,
            pfx_password_env=pfx_password_env,
            backup_dir=folder / "backups",
        )
        _write_requests(folder, started)
        manifest = {
            "inventory": str(inventory.resolve()),
            "password_env": password_env,
            "pfx_password_env": pfx_password_env,
            "pid": os.getpid(),
            "started_in_s": round(time.monotonic() - started_at, 3),
            "hosts": [asdict(m) for m, _ in started],
        }
        tmp = folder / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        tmp.replace(folder / MANIFEST)
        print(f"rehearsal fleet: {hosts} hosts ({', '.join(scenarios)}) in {manifest['started_in_s']} s")
        for m, _ in started:
            print(f"  {m.name:<8} {m.scenario:<12} {m.url}  serves until {m.current_not_after_utc[:10]}")
        print(f"  inventory:   {inventory}")
        print(f"  user:        {user}")
        if generated:
            secret_file = folder / "password"
            secret_file.touch(mode=0o600)
            secret_file.write_text(password + "\n", encoding="utf-8")
            print(
                f"  password:    {password_env} was not set; a random password is in {secret_file} (mode 0600)."
            )
            print(f'               Set it before a run: export {password_env}="$(cat {secret_file})"')
        else:
            print(f"  password:    from the environment variable {password_env}")
        print(f"  PFX password: the runs read it from {pfx_password_env}")
        print("Press Ctrl+C to stop.")
        sys.stdout.flush()
        stop = threading.Event()
        with stop_on_signals(stop):
            while not stop.wait(POLL_S):
                _write_requests(folder, started)
    finally:
        for _, r in started:
            r.stop()
    print("rehearsal fleet stopped")
    return 0


# --- the controlling side (tests, benchmarks) ----------------------------------------------------------


class RehearsalFleet:
    """A rehearsal fleet running in its own process tree (``start_fleet``)."""

    def __init__(
        self, process: subprocess.Popen[bytes], *, workdir: Path, password: str, env: dict[str, str]
    ):
        self.process = process
        self.workdir = workdir
        self.password = password  # in-process only; never printed or written
        self.env = env  # {password env: password, PFX password env: password} for the runs' processes
        manifest = json.loads((workdir / MANIFEST).read_text(encoding="utf-8"))
        self.inventory_path = Path(manifest["inventory"])
        self.hosts = [FleetMember(**h) for h in manifest["hosts"]]
        self.started_in_s = float(manifest["started_in_s"])
        self._stopped = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def host(self, name: str) -> FleetMember:
        return next(h for h in self.hosts if h.name == name)

    def state(self, name: str) -> dict[str, Any]:
        """Host ``name``'s state file now (what the emulated server holds)."""
        data: dict[str, Any] = json.loads(Path(self.host(name).state_file).read_text(encoding="utf-8"))
        return data

    def request_counts(self) -> dict[str, int]:
        """WS-Management requests each host has served, as written after this call (waits ≤ 2 s)."""
        since = datetime.now(UTC)
        deadline = time.monotonic() + 2 + POLL_S
        while True:
            data = json.loads((self.workdir / REQUESTS).read_text(encoding="utf-8"))
            if datetime.fromisoformat(data["written_utc"]) > since or time.monotonic() > deadline:
                return {k: int(v) for k, v in data["requests"].items()}
            time.sleep(POLL_S / 2)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)

    def __enter__(self) -> RehearsalFleet:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_fleet(
    hosts: int = 6,
    scenarios: Sequence[str] = DEFAULT_SCENARIOS,
    *,
    workdir: str | os.PathLike[str],
    inventory_out: str | os.PathLike[str] | None = None,
    latency_ms: int = 0,
    password: str | None = None,
    password_env: str = "OPSLIB_REHEARSAL_PASSWORD",
    pfx_password_env: str = "OPSLIB_PFX_PASSWORD",
    timeout_s: float = 180,
) -> RehearsalFleet:
    """Start ``opslib rehearse fleet`` in its own process tree; return once its inventory is written."""
    check_request(hosts, scenarios)
    folder = Path(workdir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST).unlink(missing_ok=True)
    secret = password or _random.token_urlsafe(18)
    from ..credentials import register

    register(secret)
    env = {
        password_env: secret,
        pfx_password_env: os.environ.get(pfx_password_env) or _random.token_urlsafe(18),
    }
    argv = [sys.executable, "-m", "opslib", "rehearse", "fleet", "--hosts", str(hosts)]
    argv += ["--scenarios", ",".join(scenarios), "--workdir", str(folder), "--latency-ms", str(latency_ms)]
    argv += ["--password-env", password_env, "--pfx-password-env", pfx_password_env]
    if inventory_out is not None:
        argv += ["--inventory-out", str(inventory_out)]
    log = (folder / "fleet.log").open("wb")
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **env},
        start_new_session=True,  # its own process tree: a benchmark measures it apart
    )
    log.close()
    deadline = time.monotonic() + timeout_s
    while not (folder / MANIFEST).exists():
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
            tail = (folder / "fleet.log").read_text(encoding="utf-8", errors="replace")[-2000:]
            raise UsageError(f"the rehearsal fleet did not start (exit {process.returncode}): {tail.strip()}")
        time.sleep(0.1)
    return RehearsalFleet(process, workdir=folder, password=secret, env=env)
