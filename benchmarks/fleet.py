"""A fleet renewal's cost on the control machine: wall time, CPU time and peak memory, per host against
one renewal (issue 27 item 8).

For each link latency and each ``--forks``: a fresh rehearsal fleet of ``--hosts`` emulated servers
(``opslib.rehearsal.fleet.start_fleet``: its own process tree, measured apart), then the whole fleet
renewed by ``opslib fleet run INVENTORY --yes --forks N`` (``--way embedded``) or by
``ansible-playbook ansible/renew.yml --forks N`` (``--way ansible``), each host's steps on real kernels as
operators run them. Before that, once per latency, one ordinary ``opslib run`` of one host of a fresh
one-host fleet: the single renewal every host is compared with.

Measured, control side (the fleet or playbook process and every process under it): wall time; CPU time
(user + system, ``RUSAGE_CHILDREN`` across the command — every descendant is waited for by its parent);
peak memory (the sum of the resident sizes of the whole process tree, sampled every 0.2 s with psutil).
The rehearsal fleet (the emulated servers) the same way, apart. Where the time goes: each host's run.json
step durations, summed per step, and how many renewals ran at once on average (the sum of the hosts' run
times over the wall time).

Targets (issue 27): 50 hosts ≤ 5 min at 50 ms with the best ``--forks``; control-side peak memory ≤ 4 GiB;
control-side CPU per host ≤ 1.3 × one renewal's. Run by hand; never a timed test. The whole matrix (50
hosts × 2 latencies × 4 forks, each a fresh fleet) takes long on 2 cores: pick with the options.

    .venv/bin/python benchmarks/fleet.py [--hosts 50] [--latency-ms 0 50] [--forks 1 4 8 16]
        [--way embedded|ansible] [--serial 1,10%,100%] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from opslib.rehearsal.fleet import RehearsalFleet, start_fleet

ROOT = Path(__file__).resolve().parents[1]
TARGET_WALL_S = 300.0  # 50 hosts at 50 ms, the best --forks
TARGET_PEAK_BYTES = 4 * 2**30
TARGET_CPU_RATIO = 1.3
GiB = 2**30


@dataclass
class Usage:
    """One measured command (and its process tree), or the rehearsal fleet's process tree."""

    wall_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss_bytes: int = 0
    exit_code: int | None = None


@dataclass
class Case:
    way: str
    hosts: int
    latency_ms: int
    forks: int
    control: Usage
    fleet: Usage
    succeeded: int = 0
    failed: int = 0
    run_wall_s: list[float] = field(default_factory=list)  # each host's run, started → finished
    steps_s: dict[str, float] = field(default_factory=dict)  # summed over the hosts, per step

    @property
    def concurrency(self) -> float:
        return sum(self.run_wall_s) / self.control.wall_s if self.control.wall_s else 0.0


class TreeSampler:
    """Peak of the summed RSS of a process and its descendants, sampled on a thread."""

    def __init__(self, pid: int, *, every_s: float = 0.2) -> None:
        self.pid, self.every_s, self.peak = pid, every_s, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> int:
        try:
            top = psutil.Process(self.pid)
            procs = [top, *top.children(recursive=True)]
        except psutil.Error:
            return 0
        total = 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                continue
        return total

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self.every_s)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def tree_cpu_s(pid: int) -> float:
    """CPU time of a live process, of its live descendants and of the descendants it has waited for."""
    try:
        top = psutil.Process(pid)
        procs = [top, *top.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + (t.children_user + t.children_system if p is top else 0.0)
    return total


def measure(argv: Sequence[str], *, env: dict[str, str], cwd: Path, log: Path) -> Usage:
    """Run one command to its end: wall time, CPU time of it and everything under it, peak tree RSS."""
    before = children_cpu_s()
    t0 = time.perf_counter()
    with log.open("wb") as out:
        process = subprocess.Popen(list(argv), env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        with TreeSampler(process.pid) as sampler:
            code = process.wait()
    wall = time.perf_counter() - t0
    return Usage(wall_s=wall, cpu_s=children_cpu_s() - before, peak_rss_bytes=sampler.peak, exit_code=code)


def base_env(fleet: RehearsalFleet) -> dict[str, str]:
    env = {**os.environ, **fleet.env, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "PYTHONUTF8": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.pop("OPSLIB_STEP_ENGINE", None)  # real kernels, as operators run them
    return env


def single_renewal(base: Path, *, latency_ms: int, scenario: str) -> tuple[Usage, dict[str, float]]:
    """One ordinary ``opslib run`` of the one host of a fresh one-host fleet."""
    from opslib.fleet.inventory import load_inventory, write_host_params

    base.mkdir(parents=True)
    with start_fleet(1, (scenario,), workdir=base / "fleet", latency_ms=latency_ms) as fleet:
        env = base_env(fleet)
        (host,) = load_inventory(fleet.inventory_path)
        params = write_host_params(host, base / "host.yaml")
        argv = [
            sys.executable,
            "-m",
            "opslib",
            "run",
            str(params),
            "--yes",
            "--evidence-root",
            str(base / "ev"),
        ]
        usage = measure(argv, env={**env, **host.env}, cwd=base, log=base / "run.log")
    _, _, steps = read_runs(base / "ev")
    return usage, steps


def read_runs(evidence: Path) -> tuple[list[float], dict[str, int], dict[str, float]]:
    """Each run's wall time, the runs by status, and the step durations summed per step."""
    from datetime import datetime

    walls: list[float] = []
    status: dict[str, int] = defaultdict(int)
    steps: dict[str, float] = defaultdict(float)
    for run_json in sorted(evidence.glob("*/run.json")):
        run = json.loads(run_json.read_text(encoding="utf-8"))
        status[str(run.get("status"))] += 1
        if run.get("started_utc") and run.get("finished_utc"):
            started = datetime.fromisoformat(str(run["started_utc"]).replace("Z", "+00:00"))
            finished = datetime.fromisoformat(str(run["finished_utc"]).replace("Z", "+00:00"))
            walls.append((finished - started).total_seconds())
        for step in run.get("steps") or []:
            steps[str(step.get("name"))] += float(step.get("duration_s") or 0.0)
    return walls, dict(status), dict(steps)


def control_argv(way: str, fleet: RehearsalFleet, *, forks: int, serial: str, base: Path) -> list[str]:
    evidence = base / "evidence"
    if way == "embedded":
        return [
            sys.executable, "-m", "opslib", "fleet", "run", str(fleet.inventory_path), "--yes",
            "--evidence-root", str(evidence), "--forks", str(forks), "--serial", serial,
        ]  # fmt: skip
    serial_list = json.dumps({"opslib_serial": [int(s) if s.isdigit() else s for s in serial.split(",")]})
    return [
        str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(fleet.inventory_path),
        str(ROOT / "ansible" / "renew.yml"), "--forks", str(forks),
        "-e", f"opslib_evidence_root={evidence}", "-e", f"opslib_work_root={base / 'work'}",
        "-e", serial_list,
    ]  # fmt: skip


def fleet_case(base: Path, *, way: str, hosts: int, latency_ms: int, forks: int, serial: str) -> Case:
    base.mkdir(parents=True)
    fleet_usage = Usage()
    with start_fleet(hosts, workdir=base / "fleet", latency_ms=latency_ms) as fleet:
        env = base_env(fleet)
        if way == "ansible":
            env.update(
                ANSIBLE_HOME=str(base / "ansible-home"),
                ANSIBLE_LOCAL_TEMP=str(base / "ansible-local"),
                ANSIBLE_REMOTE_TEMP=str(base / "ansible-remote"),
                ANSIBLE_RETRY_FILES_ENABLED="false",
            )
        argv = control_argv(way, fleet, forks=forks, serial=serial, base=base)
        cpu_before = tree_cpu_s(fleet.pid)
        with TreeSampler(fleet.pid) as fleet_sampler:
            control = measure(argv, env=env, cwd=base, log=base / "control.log")
        fleet_usage.cpu_s = tree_cpu_s(fleet.pid) - cpu_before
        fleet_usage.peak_rss_bytes = fleet_sampler.peak
        fleet_usage.wall_s = control.wall_s
    walls, status, steps = read_runs(base / "evidence")
    return Case(
        way=way,
        hosts=hosts,
        latency_ms=latency_ms,
        forks=forks,
        control=control,
        fleet=fleet_usage,
        succeeded=status.get("succeeded", 0),
        failed=sum(v for k, v in status.items() if k != "succeeded"),
        run_wall_s=walls,
        steps_s=steps,
    )


def report(cases: list[Case], singles: dict[int, tuple[Usage, dict[str, float]]]) -> bool:
    ok = True
    for latency, (single, steps) in sorted(singles.items()):
        print(
            f"single renewal at {latency} ms: wall {single.wall_s:.1f} s, CPU {single.cpu_s:.1f} s, "
            f"peak {single.peak_rss_bytes / 2**20:.0f} MiB (exit {single.exit_code})"
        )
        print("  steps: " + ", ".join(f"{k} {v:.1f} s" for k, v in steps.items()))
    print()
    print(
        f"{'way':9} {'hosts':>5} {'ms':>4} {'forks':>5} {'ok':>4} {'wall s':>8} {'ctl CPU s':>10} "
        f"{'CPU/host':>9} {'×single':>8} {'ctl peak':>9} {'srv CPU s':>10} {'srv peak':>9} {'at once':>8}"
    )
    for c in cases:
        per_host = c.control.cpu_s / c.hosts
        single = singles.get(c.latency_ms, (Usage(), {}))[0]
        ratio = per_host / single.cpu_s if single.cpu_s else float("nan")
        print(
            f"{c.way:9} {c.hosts:5d} {c.latency_ms:4d} {c.forks:5d} {c.succeeded:4d} {c.control.wall_s:8.1f} "
            f"{c.control.cpu_s:10.1f} {per_host:9.2f} {ratio:8.2f} {c.control.peak_rss_bytes / GiB:8.2f}G "
            f"{c.fleet.cpu_s:10.1f} {c.fleet.peak_rss_bytes / GiB:8.2f}G {c.concurrency:8.1f}"
        )
        total = sum(c.steps_s.values()) or 1.0
        print(
            "          where the hosts' run time went: "
            + ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in c.steps_s.items())
            + (f"; mean run {statistics.mean(c.run_wall_s):.1f} s" if c.run_wall_s else "")
        )
        ok &= c.control.exit_code == 0 and c.succeeded == c.hosts
        ok &= c.control.peak_rss_bytes <= TARGET_PEAK_BYTES
        ok &= not (ratio > TARGET_CPU_RATIO)
    at_50 = [c for c in cases if c.latency_ms == 50 and c.hosts >= 50]
    if at_50:
        best = min(at_50, key=lambda c: c.control.wall_s)
        print(
            f"\n50 hosts at 50 ms, best --forks {best.forks}: {best.control.wall_s:.0f} s (target ≤ {TARGET_WALL_S:.0f} s)"
        )
        ok &= best.control.wall_s <= TARGET_WALL_S
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", type=int, default=50)
    ap.add_argument("--latency-ms", type=int, nargs="+", default=[0, 50])
    ap.add_argument("--forks", type=int, nargs="+", default=[1, 4, 8, 16])
    ap.add_argument("--way", choices=("embedded", "ansible"), default="embedded")
    ap.add_argument("--serial", default="1,10%,100%", help="the batches (the first is the canary)")
    ap.add_argument("--single-scenario", default="iis6-ja", help="the one host of the single renewal")
    ap.add_argument("--keep", action="store_true", help="keep the work folders (printed)")
    ap.add_argument("--json", action="store_true", help="print the measurements as JSON too")
    args = ap.parse_args()
    load = os.getloadavg()
    print(f"load average before: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores")
    tmp = tempfile.mkdtemp(prefix="opslib-bench-fleet-")
    cases: list[Case] = []
    singles: dict[int, tuple[Usage, dict[str, float]]] = {}
    for latency in args.latency_ms:
        singles[latency] = single_renewal(
            Path(tmp) / f"single-{latency}", latency_ms=latency, scenario=args.single_scenario
        )
        for forks in args.forks:
            cases.append(
                fleet_case(
                    Path(tmp) / f"{args.way}-{latency}ms-{forks}forks",
                    way=args.way,
                    hosts=args.hosts,
                    latency_ms=latency,
                    forks=forks,
                    serial=args.serial,
                )
            )
    ok = report(cases, singles)
    load = os.getloadavg()
    print(f"load average after: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    if args.json:
        print(
            json.dumps(
                {
                    "singles": {k: asdict(v[0]) for k, v in singles.items()},
                    "cases": [asdict(c) for c in cases],
                }
            )
        )
    if args.keep:
        print(f"work folders kept in {tmp}")
    else:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    print("OK" if ok else "MISSED a target (above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
