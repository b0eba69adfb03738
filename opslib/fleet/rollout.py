"""``opslib fleet run``: many hosts renewed in bounded parallel batches, the first batch the canary.

Batches (``--serial``, Ansible's semantics): a list of host counts or percentages of the hosts to renew
(``1,10%,100%``); a percentage is of all of them, rounded down and at least 1; the last value repeats
until every host has a batch. At most ``--forks`` hosts of a batch run at once. When a batch's failed
hosts exceed ``--max-fail-percentage`` of that batch (strictly greater than, as Ansible; default 0: any
failure stops) the rollout stops after that batch and the hosts after it are recorded "not started".

Each host is an ordinary ``python -m opslib run PARAMS --yes`` in its own subprocess: its own run
folder, server lock, report and environment (``os.environ`` plus that host's own secrets, which this
process never puts into its own environment, prints or writes). The parameters file (references only)
is written into the fleet folder; the child writes its run folder's path to a file of its own
(``--run-dir-file``), so nothing here parses the child's console text to find it. The child's console
output goes to ``logs/<host>.log`` in the fleet folder (secrets redacted by the child, and the host's
secret values masked again here).

Ctrl-C (SIGINT to this process): the children run in sessions of their own, so a terminal's Ctrl-C does
not reach them. The first Ctrl-C starts no further host and waits for the running ones to finish their
whole run — a renewal interrupted between its steps is safe but leaves a run to resume, a finished one
leaves nothing to do. A second Ctrl-C forwards SIGINT to the running children: each runner then stops at
its next safe point (it holds a signal back while a step changes the server, :mod:`opslib.runbook.signals`)
and records a run that ``opslib resume`` continues. Either way the fleet record is written, the summary
printed and the exit code is 130.

Exit codes: 0 every host renewed (or already renewed), 1 a host failed or the rollout stopped, 130
interrupted; a bad ``--serial`` or inventory is a usage error (2) before any host is contacted.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..credentials import redact
from ..errors import UsageError
from ..evidence.manifest import safe_name
from ..runbook.record import operator
from ..text import escape_text
from . import continuing
from .inventory import FleetHost
from .record import (
    ALREADY,
    DRY_RUN,
    FAILED,
    FAILURES,
    INTERRUPTED,
    NOT_STARTED,
    RENEWED,
    HostOutcome,
    latest_fleet,
    new_fleet_dir,
    outcome_from_run,
    write_fleet_record,
)

PREFIX = "opslib: fleet: "
_STEP_LINE = re.compile(r"^opslib: \[\d+/\d+\] ")
_SERIAL_ITEM = re.compile(r"^(\d+)(%?)$")
DEFAULT_SERIAL = "1,10%,100%"
DEFAULT_FORKS = 5


WriteParams = Callable[[FleetHost, Path], Path]  # inventory.write_host_params


@dataclass(frozen=True)
class Settings:
    """How the rollout goes (the command's options)."""

    serial: tuple[int | str, ...] = (1, "10%", "100%")
    forks: int = DEFAULT_FORKS
    max_fail_percentage: float = 0.0
    dry_run: bool = False
    verbose: bool = False
    limit: str = ""

    def row(self) -> dict[str, Any]:
        return {
            "serial": ",".join(str(s) for s in self.serial),
            "forks": self.forks,
            "max_fail_percentage": self.max_fail_percentage,
            "dry_run": self.dry_run,
            "limit": self.limit,
        }


def parse_serial(text: str) -> tuple[int | str, ...]:
    """``1,10%,100%`` → ``(1, "10%", "100%")``; a usage error naming ``--serial`` and the bad item."""
    items: list[int | str] = []
    for part in (p.strip() for p in str(text).split(",")):
        m = _SERIAL_ITEM.match(part)
        value = int(m.group(1)) if m else 0
        if not m or value < 1 or (m.group(2) and value > 100):
            raise UsageError(
                f"--serial {text!r}: {part!r} is not a host count (1, 2, …) or a percentage (1%–100%)",
                hint="e.g. --serial 1,10%,100% (the first batch is the canary; the last value repeats)",
            )
        items.append(f"{value}%" if m.group(2) else value)
    return tuple(items)


def plan_batches(names: Sequence[str], serial: Sequence[int | str]) -> list[list[str]]:
    """Ansible's ``serial``: each value a count or a percentage of all hosts (rounded down, at least 1);
    the last one repeats."""
    total, out, i, k = len(names), [], 0, 0
    while i < total:
        item = serial[min(k, len(serial) - 1)]
        size = max(1, total * int(item[:-1]) // 100) if isinstance(item, str) else int(item)
        out.append(list(names[i : i + size]))
        i, k = i + size, k + 1
    return out


def exceeds(failed: int, size: int, percentage: float) -> bool:
    """Ansible's ``max_fail_percentage``: stop when the failed share is strictly greater."""
    return size > 0 and failed * 100 > percentage * size


@dataclass
class _Job:
    host: FleetHost
    params_file: Path
    log_rel: str
    batch: int = 0
    outcome: HostOutcome | None = None
    proc: subprocess.Popen[bytes] | None = None


@dataclass
class FleetResult:
    fleet_dir: Path
    outcomes: list[HostOutcome]
    result: str
    exit_code: int
    lines: list[str] = field(default_factory=list)


class _Interrupts:
    """SIGINT while the rollout runs: first stop starting hosts, then ask running children to stop."""

    def __init__(self, out: IO[str], running: Callable[[], list[subprocess.Popen[bytes]]]) -> None:
        self.count = 0
        self.stop = threading.Event()
        self._out = out
        self._running = running
        self._old: Any = None

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)

    def _handle(self, signum: int, frame: Any) -> None:
        self.count += 1
        self.stop.set()
        procs = self._running()
        if self.count == 1:
            print(
                f"{PREFIX}Ctrl-C: starting no further host; waiting for the {len(procs)} running to finish "
                "their runs (Ctrl-C again: ask them to stop at their next safe point)",
                file=self._out,
                flush=True,
            )
            return
        print(
            f"{PREFIX}Ctrl-C again: asking {len(procs)} running hosts to stop safely",
            file=self._out,
            flush=True,
        )
        for proc in procs:
            try:
                os.kill(proc.pid, signal.SIGINT)
            except ProcessLookupError:
                pass


def run_fleet(
    hosts: Sequence[FleetHost],
    *,
    evidence_root: str | os.PathLike[str],
    name: str,
    settings: Settings,
    write_params: WriteParams,
    inventory: str = "",
    out: IO[str] | None = None,
) -> FleetResult:
    """The rollout (module docstring); returns where its record is and the exit code."""
    out = out or sys.stderr
    root = Path(evidence_root).resolve()
    started = dt.datetime.now(dt.UTC)
    if not hosts:
        raise UsageError("the inventory selects no host", hint="check the inventory and --limit")
    key = _hmac_key(hosts)  # before any host: a key that cannot be read stops here, not after the rollout
    previous = latest_fleet(root, name)
    fleet_dir = new_fleet_dir(root, name, now_utc=started)
    (fleet_dir / "params").mkdir()
    (fleet_dir / "logs").mkdir()
    jobs, stems = [], set()
    for host in hosts:
        stem = base = safe_name(host.name)
        for n in range(2, len(hosts) + 2):  # two names that read alike as a file name: web_01, web-01
            if stem not in stems:
                break
            stem = f"{base}-{n}"
        stems.add(stem)
        params_file = write_params(host, fleet_dir / "params" / f"{stem}.yaml")
        jobs.append(_Job(host, Path(params_file), f"logs/{stem}.log"))
    say = _Say(out, total=len(jobs))
    say.line(
        f"{len(jobs)} hosts, fleet folder {fleet_dir}"
        + (" (dry run: nothing is changed)" if settings.dry_run else "")
    )
    if previous is not None:
        say.line(f"continues {previous.name}: reading the hosts an earlier run renewed")
    renewed, notes = continuing.already_renewed(
        [continuing.Check(j.host.name, j.params_file, j.host.env) for j in jobs], root, forks=settings.forks
    )
    for j in jobs:
        if j.host.name in notes:
            say.line(f"{j.host.name}: {notes[j.host.name]}")
        if j.host.name in renewed:
            done = renewed[j.host.name]
            j.outcome = outcome_from_run(j.host.name, done.run_dir, root=root, groups=j.host.groups)
            j.outcome.status, j.outcome.renewed_by, j.outcome.exit_code = ALREADY, j.outcome.run_id, None
            say.host(j.outcome, "already serves its new certificate")
    todo = [j for j in jobs if j.outcome is None]
    batches = plan_batches([j.host.name for j in todo], settings.serial)
    by_name = {j.host.name: j for j in todo}
    result, reason = "completed", ""
    running: dict[str, subprocess.Popen[bytes]] = {}
    lock = threading.Lock()

    def live() -> list[subprocess.Popen[bytes]]:
        with lock:
            return list(running.values())

    with tempfile.TemporaryDirectory(prefix="opslib-fleet-") as work, _Interrupts(out, live) as interrupts:
        for number, names in enumerate(batches, 1):
            if interrupts.stop.is_set():
                break
            batch = [by_name[n] for n in names]
            kind = "canary batch" if number == 1 and len(batches) > 1 else "batch"
            say.line(f"{kind} {number}/{len(batches)}: {', '.join(names)}")
            _run_batch(batch, number, root, fleet_dir, Path(work), settings, interrupts, running, lock, say)
            failed = sum(1 for j in batch if j.outcome and j.outcome.status in FAILURES)
            if interrupts.stop.is_set():
                break
            if exceeds(failed, len(batch), settings.max_fail_percentage):
                result = "stopped"
                reason = (
                    f"batch {number}: {failed} of {len(batch)} hosts failed "
                    f"({failed * 100 / len(batch):.0f}% > --max-fail-percentage {settings.max_fail_percentage:g}%)"
                )
                say.line(f"stopping: {reason}")
                break
        if interrupts.stop.is_set():
            result, reason = "interrupted", "Ctrl-C: no further host was started"
    for j in jobs:
        if j.outcome is None:
            j.outcome = HostOutcome(j.host.name, NOT_STARTED, groups=tuple(j.host.groups))
    outcomes = [j.outcome for j in jobs if j.outcome is not None]
    write_fleet_record(
        root,
        name,
        outcomes,
        previous=previous,
        fleet_dir=fleet_dir,
        started_utc=started,
        settings=settings.row(),
        result=result,
        stop_reason=reason,
        batches=batches,
        inventory=inventory,
        operator=operator(),
        hmac_key=key,
    )
    code = (
        130
        if result == "interrupted"
        else 0
        if all(o.status in (RENEWED, DRY_RUN, ALREADY) for o in outcomes)
        else 1
    )
    lines = summary_lines(outcomes, result=result, reason=reason, fleet_dir=fleet_dir)
    for line in lines:
        print(escape_text(line), file=out, flush=True)
    return FleetResult(fleet_dir, outcomes, result, code, lines)


def _hmac_key(hosts: Sequence[FleetHost]) -> bytes | None:
    """The fleet record's HMAC key: the hosts' ``evidence.hmac_key`` reference (the first that names one),
    resolved in that host's environment."""
    from ..credentials import resolve

    for host in hosts:
        ref = str((host.params.get("evidence") or {}).get("hmac_key") or "")
        if ref:
            return resolve(ref, purpose="HMAC key", env=host.env).encode("utf-8")
    return None


class _Say:
    """The fleet's console lines: one per host event and a progress line (standard error)."""

    def __init__(self, out: IO[str], *, total: int) -> None:
        self.out, self.total, self.done, self.failed = out, total, 0, 0
        self._lock = threading.Lock()

    def line(self, text: str) -> None:
        with self._lock:
            print(escape_text(f"{PREFIX}{text}"), file=self.out, flush=True)

    def host(self, o: HostOutcome, note: str = "") -> None:
        with self._lock:
            self.done += 1
            self.failed += o.status in FAILURES
            certs = f"{o.old_thumbprint or '?'} → {o.new_thumbprint or '?'} (expires {o.new_not_after_utc or '?'})"
            what = {
                RENEWED: f"renewed {certs}",
                DRY_RUN: f"dry run ok (would put on {o.new_thumbprint or '?'})",
                ALREADY: f"already renewed by run {o.renewed_by}: serves {o.new_thumbprint}",
                FAILED: f"FAILED (exit {o.exit_code}){' at ' + o.failed_step if o.failed_step else ''}"
                f"{'; serves ' + o.old_thumbprint if o.old_thumbprint else ''}",
                INTERRUPTED: f"INTERRUPTED (exit {o.exit_code}): resume its run",
            }.get(o.status, o.status)
            run = f" — run {o.run_id}" if o.run_id and o.status != ALREADY else ""
            log = f", log {o.log}" if o.log and o.status in FAILURES else ""
            print(
                escape_text(
                    f"{PREFIX}{o.name}: {what}{run}{log}{(' ' + note) if note and o.status != ALREADY else ''}"
                ),
                file=self.out,
            )
            bar_len = 20
            filled = bar_len * self.done // max(1, self.total)
            print(
                f"{PREFIX}[{'#' * filled}{'.' * (bar_len - filled)}] {self.done}/{self.total} hosts done, "
                f"{self.failed} failed",
                file=self.out,
                flush=True,
            )


def _run_batch(
    batch: list[_Job],
    number: int,
    root: Path,
    fleet_dir: Path,
    work: Path,
    settings: Settings,
    interrupts: _Interrupts,
    running: dict[str, subprocess.Popen[bytes]],
    lock: threading.Lock,
    say: _Say,
) -> None:
    """At most ``forks`` hosts of the batch at once; a host not started after Ctrl-C stays "not started".
    The main thread waits in short slices, so Ctrl-C is handled at once."""
    for j in batch:
        j.batch = number
    with ThreadPoolExecutor(max_workers=max(1, settings.forks), thread_name_prefix="fleet-host") as pool:
        futures: list[Future[None]] = [
            pool.submit(_run_host, j, root, fleet_dir, work, settings, interrupts, running, lock, say)
            for j in batch
        ]
        pending = set(futures)
        while pending:
            _, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
        for f in futures:
            f.result()


def _run_host(
    job: _Job,
    root: Path,
    fleet_dir: Path,
    work: Path,
    settings: Settings,
    interrupts: _Interrupts,
    running: dict[str, subprocess.Popen[bytes]],
    lock: threading.Lock,
    say: _Say,
) -> None:
    name = job.host.name
    with lock:
        if interrupts.stop.is_set():
            return  # stays "not started"
        marker = work / f"{safe_name(name)}-{job.batch}.rundir"
        argv = [sys.executable, "-m", "opslib", "run", str(job.params_file), "--evidence-root", str(root)]
        argv += ["--run-dir-file", str(marker), "--dry-run" if settings.dry_run else "--yes"]
        env = {**os.environ, **job.host.env}
        log_path = fleet_dir / job.log_rel
        # The child writes its console straight into its log file, never into a pipe of this process:
        # if the fleet process dies, a running renewal goes on to its end undisturbed.
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # a terminal's Ctrl-C reaches the fleet only (module docstring)
            )
        running[name] = proc
    say.line(f"{name}: started (batch {job.batch})")
    started = time.monotonic()

    def relay(line: str) -> None:  # --verbose: the host's step lines, named
        if settings.verbose and _STEP_LINE.match(line):
            say.line(f"{name}: {line.removeprefix('opslib: ')}")

    code = _follow(proc, log_path, relay)
    _mask(log_path, [v for v in job.host.env.values() if v and len(v) >= 4])
    with lock:
        running.pop(name, None)
    run_dir = marker.read_text(encoding="utf-8").strip() if marker.is_file() else ""
    if run_dir and (Path(run_dir) / "run.json").is_file():
        outcome = outcome_from_run(
            name, run_dir, root=root, exit_code=code, groups=job.host.groups, batch=job.batch
        )
        if code not in (0, 130) and outcome.status in (RENEWED, DRY_RUN):
            outcome.status = FAILED  # the run said succeeded, its process did not: not a success
    else:  # stopped before it made a run folder (a usage error, the server's lock held …)
        outcome = HostOutcome(
            name,
            INTERRUPTED if code == 130 else FAILED,
            groups=tuple(job.host.groups),
            batch=job.batch,
            exit_code=code,
            error=_last_error(fleet_dir / job.log_rel),
        )
    outcome.log = job.log_rel
    outcome.extra["duration_s"] = round(time.monotonic() - started, 1)
    job.outcome = outcome
    say.host(outcome)


def _follow(proc: subprocess.Popen[bytes], log_path: Path, each_line: Callable[[str], None]) -> int:
    """Read the child's log as it grows (its step lines for --verbose) until it exits; its exit code."""
    pending = b""
    with log_path.open("rb") as reader:
        while True:
            chunk = reader.read()
            if chunk:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    each_line(raw.decode("utf-8", "replace").rstrip("\r"))
            elif proc.poll() is not None:
                break
            else:
                time.sleep(0.1)
    if pending:
        each_line(pending.decode("utf-8", "replace"))
    return proc.wait()


def _mask(log_path: Path, secrets: Sequence[str]) -> None:
    """The child redacts what it resolved; this host's own secret values are masked here once more."""
    text = log_path.read_text(encoding="utf-8", errors="replace")
    masked = text
    for value in secrets:
        masked = masked.replace(value, "[REDACTED]")
    masked = redact(masked)
    if masked != text:
        log_path.write_text(masked, encoding="utf-8")


def _last_error(log: Path) -> str:
    """The child's ``opslib: error:`` line (the kit's own words, already redacted), for the record."""
    try:
        lines = log.read_text(encoding="utf-8").splitlines()
    except OSError:
        return ""
    errors = [line for line in lines if line.startswith("opslib: error:")]
    return (errors[-1] if errors else (lines[-1] if lines else ""))[:500]


def summary_lines(outcomes: Sequence[HostOutcome], *, result: str, reason: str, fleet_dir: Path) -> list[str]:
    """The recap: counts by status, every host that needs attention and the next command."""
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    lines = [
        f"{PREFIX}{result}"
        + (f" — {reason}" if reason else "")
        + ": "
        + ", ".join(f"{n} {s}" for s, n in counts.items())
    ]
    for o in outcomes:
        if o.status in FAILURES:
            lines.append(
                f"{PREFIX}  {o.name}: {o.status}"
                + (f", run {o.run_id}" if o.run_id else "")
                + (f": {o.error}" if o.error else "")
            )
    if counts.get(NOT_STARTED) or counts.get(FAILED) or counts.get(INTERRUPTED):
        lines.append(
            f"{PREFIX}fix what failed (each run's folder says what and how: opslib resume RUN, or correct and "
            "run again), then give the same `opslib fleet run` again: hosts already serving their new "
            "certificate are skipped"
        )
    lines.append(f"{PREFIX}record {fleet_dir / 'fleet.json'} (report {fleet_dir / 'fleet_report.html'})")
    return lines
