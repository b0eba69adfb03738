"""Interruption-safe renewals (issue 12 items 1, 2, 8): the runner is a real subprocess
(``opslib run``), the server the rehearsal host in this process, and the interruption real — a
signal to the runner, SIGKILL to the step-2 kernel, a dropped connection after the swap command.

The window is widened on purpose: ``host.extra["swap_start_delay_s"]`` makes the emulated ``Start()``
of the swapped site slow, so the interruption lands while production is stopped with the new
certificate set (the moment issue 12 found production left stopped). Every case must end with
production started and fully bound (old or new certificate, with its key) without operator action,
and the evidence saying which.

Also: one renewal per server (the lock on the server): two runs from two evidence roots, a stale
lock broken with ``--break-lock`` and recorded.
"""

from __future__ import annotations

import json
import os
import re
import secrets as random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import conftest
import psutil
import pytest
import yaml
from secretscan import assert_no_secrets

from opslib import cli, rehearsal
from opslib.rehearsal import cmd
from opslib.rehearsal.host import STARTED
from opslib.rehearsal.programs import stores

# Signals to the runner and a killed step kernel: real kernels (marked kernel). The lock cases are about the
# server's lock, not kernels: the in-process step engine (the tier's default; a spawned runner inherits it).

OPSLIB = Path(sys.executable).parent / "opslib"
JOURNAL = r"C:\WINDOWS\Temp\opslib-swap-1.json"
LOCK = r"C:\WINDOWS\Temp\opslib-renewal.lock"
DELAY_S = 8.0  # the emulated Start() of the swapped site: the window the interruptions aim at
WAITING = "waiting for the production swap to finish on the server; it restores itself if it fails"
COUNTS = conftest.summary_counts("interruption cases", "", ())  # in the terminal summary (tests/conftest.py)


@dataclass
class Setup:
    reh: rehearsal.Rehearsal
    params_file: Path
    evidence_root: Path
    secrets: list[str]

    @property
    def host(self) -> Any:
        return self.reh.host

    def run_dirs(self, root: Path | None = None) -> list[Path]:
        folder = root or self.evidence_root
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if (p / "run.json").is_file())

    def manifest(self, run_dir: Path) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        return data


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    names = ("OPSLIB_INT_WINRM", "OPSLIB_INT_PFX")
    values = [f"W{random.token_urlsafe(15)}", f"P{random.token_urlsafe(15)}"]
    saved = {k: os.environ.get(k) for k in names}
    os.environ.update(zip(names, values, strict=True))
    reh = rehearsal.start(
        scenario="default", password=values[0], workdir=tmp_path / "host", state_file=tmp_path / "state.json"
    )
    try:
        data = reh.params(
            password_env=names[0], pfx_password_env=names[1], backup_dir=str(tmp_path / "backups")
        )
        path = tmp_path / "params" / "web01.yaml"
        path.parent.mkdir()
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        yield Setup(reh, path, tmp_path / "evidence", values)
    finally:
        reh.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _spawn(setup: Setup, *args: str, root: Path | None = None, log: Path) -> subprocess.Popen[bytes]:
    argv = [str(OPSLIB), "run", str(setup.params_file), "--evidence-root", str(root or setup.evidence_root)]
    with log.open("wb") as out:
        return subprocess.Popen([*argv, *args], stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))


def _wait_for(what: str, probe: Any, *, timeout_s: float = 240) -> Any:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _journal(setup: Setup) -> dict[str, Any] | None:
    data = setup.host.read_file(JOURNAL)
    return json.loads(data) if data else None


def _mid_swap(setup: Setup) -> bool:
    """The swap is between its Stop() and its slow Start(): production stopped with the new certificate."""
    site = setup.host.sites[1]
    return bool(site.state != STARTED and site.ssl_cert_hash == setup.host.extra["new_thumbprint"])


def _served(setup: Setup) -> str:
    """Production started and fully bound: the certificate it serves, which is in MY with its key."""
    site = setup.host.sites[1]
    assert site.state == STARTED, f"production is {site.state}, not started"
    assert site.secure_bindings == [":443:"] and site.ssl_store_name.upper() == "MY"
    entry = stores.find_certificate(setup.host, "MY", site.ssl_cert_hash)
    assert entry is not None and stores.key_for(setup.host, entry) is not None, "bound without its key"
    return site.ssl_cert_hash.upper()


def _count(kind: str) -> None:
    COUNTS[kind] = COUNTS.get(kind, 0) + 1


# --- signals to the runner ------------------------------------------------------------------------


@pytest.mark.kernel
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP, signal.SIGTERM], ids=lambda s: s.name)
def test_a_signal_during_the_swap_waits_for_the_server_then_stops_cleanly(
    setup: Setup, tmp_path: Path, signum: signal.Signals
) -> None:
    setup.host.extra["swap_start_delay_s"] = DELAY_S
    proc = _spawn(setup, "--yes", log=tmp_path / "run.log")
    try:
        _wait_for("the swap to be in progress on the server", lambda: _mid_swap(setup))
        proc.send_signal(signum)
        time.sleep(0.3)
        proc.send_signal(signum)  # a second one is deferred too
        code = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = (tmp_path / "run.log").read_text(encoding="utf-8", errors="replace")
    _count(f"signal {signum.name}")
    assert code == 128 + signum, out
    assert out.count(WAITING) == 1, out
    (run_dir,) = setup.run_dirs()
    assert f"opslib resume {run_dir}" in out and f"opslib run {run_dir / 'rollback.yaml'}" in out
    assert "Traceback" not in out
    # The server finished the transaction: the new certificate, started, with its key.
    assert _served(setup) == setup.host.extra["new_thumbprint"]
    m = setup.manifest(run_dir)
    assert m["status"] == "failed" and m["interrupted"] == {"signal": signum.name}
    assert m["error"].startswith(f"after step 02_swap_certificate: interrupted by {signum.name}")
    assert [s["status"] for s in m["steps"]] == ["succeeded"] * 3, "step 2 ended; nothing started after it"
    assert m["facts"]["expected_thumbprint"] == setup.host.extra["new_thumbprint"]
    assert (
        m["facts"]["swap_journal"]["phase"] == "done" and m["facts"]["swap_journal"]["state_after"] == STARTED
    )
    assert m["files"], "the interrupted run is finalized"
    # The lock on the server was released, the removal read back.
    assert not setup.host.is_dir(LOCK)
    assert m["server_lock"]["released"] == "removed (read back)"
    assert _journal(setup)["phase"] == "done"  # type: ignore[index]
    if signum == signal.SIGINT:  # the next command works: resume finishes the renewal in a new chained run
        assert cli.main(["resume", str(run_dir), "--yes"]) == 0
        first, resumed = setup.run_dirs()
        m = setup.manifest(resumed)
        assert first == run_dir and m["resumes"]["run_id"] == run_dir.name
        assert (m["status"], [s["status"] for s in m["steps"]]) == ("succeeded", ["succeeded"] * 2)
        assert m["server_lock"]["holder"]["run_id"] == resumed.name
        assert not setup.host.is_dir(LOCK)
    assert_no_secrets(run_dir, setup.secrets)


@pytest.mark.kernel
def test_a_signal_while_the_swap_restores_itself(setup: Setup, tmp_path: Path) -> None:
    """The new certificate does not come up: the server puts the old one back, the signal waits for it."""
    setup.host.extra["swap_start_delay_s"] = DELAY_S
    setup.host.extra["fail_start_thumbprints"] = [setup.host.extra["new_thumbprint"]]
    proc = _spawn(setup, "--yes", log=tmp_path / "run.log")
    try:
        _wait_for("the swap to be in progress on the server", lambda: _mid_swap(setup))
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = (tmp_path / "run.log").read_text(encoding="utf-8", errors="replace")
    _count("signal SIGINT (restoring)")
    assert code == 1, out
    assert out.count(WAITING) == 1
    assert re.search(r"rolled back to the previous certificate \w+ and the site is started again", out), out
    assert _served(setup) == setup.host.extra["current_thumbprint"]
    (run_dir,) = setup.run_dirs()
    m = setup.manifest(run_dir)
    assert (m["status"], m["failed_step"]) == ("failed", "02_swap_certificate")
    assert _journal(setup)["phase"] == "restored"  # type: ignore[index]
    assert not setup.host.is_dir(LOCK)


# --- the step-2 kernel killed ---------------------------------------------------------------------


def _step2_kernel(runner: int) -> psutil.Process:
    kernels = [
        p
        for p in psutil.Process(runner).children(recursive=True)
        if any("ipykernel" in part for part in p.cmdline())
    ]
    return min(kernels, key=lambda p: p.create_time())  # the next step's kernel was started later


@pytest.mark.kernel
def test_a_killed_step2_kernel_leaves_production_serving_and_says_what(setup: Setup, tmp_path: Path) -> None:
    setup.host.extra["swap_start_delay_s"] = DELAY_S
    proc = _spawn(setup, "--yes", log=tmp_path / "run.log")
    try:
        _wait_for("the swap to be in progress on the server", lambda: _mid_swap(setup))
        _step2_kernel(proc.pid).send_signal(signal.SIGKILL)
        code = proc.wait(timeout=400)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = (tmp_path / "run.log").read_text(encoding="utf-8", errors="replace")
    _count("SIGKILL step-2 kernel")
    assert code == 1, out
    (run_dir,) = setup.run_dirs()
    notebook = run_dir / "02_swap_certificate.ipynb"
    assert notebook.is_file(), "the notebook the message names exists (parameters, no outputs)"
    assert f"(notebook: {notebook})" in out, out
    new = setup.host.extra["new_thumbprint"]
    assert re.search(
        rf"read back now: W3SVC/1 \S+ is started with certificate {new} \(the new one\); "
        r"the server-side swap ended: done",
        out,
    ), out
    assert _served(setup) == new
    m = setup.manifest(run_dir)
    assert (m["status"], m["failed_step"]) == ("failed", "02_swap_certificate")
    rollback = yaml.safe_load((run_dir / "rollback.yaml").read_text(encoding="utf-8"))
    assert rollback["rollback"]["old_thumbprint"] == setup.host.extra["current_thumbprint"]
    assert not setup.host.is_dir(LOCK)
    # resume (a new chained run) reads the server: step 2 finds the swap done and records it.
    assert cli.main(["resume", str(run_dir), "--yes"]) == 0
    m = setup.manifest(setup.run_dirs()[-1])
    assert m["status"] == "succeeded"
    assert m["facts"]["old_thumbprint"] == setup.host.extra["current_thumbprint"]
    # ... and records what the server's journal says the interrupted attempt did.
    journal = m["facts"]["swap_journal"]
    assert (journal["phase"], journal["new_thumbprint"], journal["thumbprint_before"]) == (
        "done",
        new,
        setup.host.extra["current_thumbprint"],
    )


# --- the connection dropped after the swap command ------------------------------------------------


@pytest.mark.kernel
def test_a_connection_dropped_after_the_swap_command_is_read_back_from_the_journal(
    setup: Setup, tmp_path: Path
) -> None:
    # The 10th cscript command of a run is step 2's swap verb (the probe, then steps 0–1's site lists and
    # the work-site binding, then step 2's lists) — the same count tests/test_notebooks.py uses.
    setup.reh.set_faults(["after:swap:drop"])
    proc = _spawn(setup, "--yes", log=tmp_path / "run.log")
    try:
        code = proc.wait(timeout=400)
    finally:
        if proc.poll() is None:
            proc.kill()
    (run_dir,) = setup.run_dirs()
    out = (tmp_path / "run.log").read_text(encoding="utf-8", errors="replace")
    _count("connection dropped after the swap command")
    commands = [str(h["command"]) for h in setup.host.history]
    swaps = [i for i, c in enumerate(commands) if re.search(r'iis6\.js" swap ', c)]
    assert len(swaps) == 1, out + "\n".join(commands[-12:])
    assert any('iis6.js" journal 1' in c for c in commands[swaps[0] :]), "the client read the journal back"
    assert code == 0, out
    assert _served(setup) == setup.host.extra["new_thumbprint"]
    m = setup.manifest(run_dir)
    assert (
        m["status"] == "succeeded" and m["facts"]["expected_thumbprint"] == setup.host.extra["new_thumbprint"]
    )


# --- one renewal per server ------------------------------------------------------------------------


def test_two_runs_on_one_server_from_two_evidence_roots(
    setup: Setup, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup.host.extra["swap_start_delay_s"] = DELAY_S
    first = _spawn(setup, "--yes", log=tmp_path / "first.log")
    try:
        _wait_for("the first run's lock on the server", lambda: setup.host.is_dir(LOCK) and _mid_swap(setup))
        (first_dir,) = setup.run_dirs()
        other_root = tmp_path / "elsewhere"
        assert cli.main(["run", str(setup.params_file), "--evidence-root", str(other_root), "--yes"]) == 1
        err = capsys.readouterr().err
        assert re.search(rf"another run holds web\S*:{re.escape(LOCK)} \(run {first_dir.name} by ", err), err
        assert "--break-lock" in err
        assert f"opslib resume {first_dir}" in err, "it names the run to resume: the one holding the lock"
        assert not other_root.exists() or not [
            p for p in other_root.iterdir() if (p / "run.json").is_file()
        ], "a run the lock refuses leaves no run folder (that would suggest resuming itself)"
        assert first.wait(timeout=400) == 0
    finally:
        if first.poll() is None:
            first.kill()
    _count("two runs, one server")
    assert _served(setup) == setup.host.extra["new_thumbprint"]
    m = setup.manifest(first_dir)
    assert m["status"] == "succeeded" and m["server_lock"]["released"] == "removed (read back)"
    assert not setup.host.is_dir(LOCK)


def _plant_lock(setup: Setup, *, age_h: float) -> dict[str, Any]:
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - age_h * 3600))
    holder = {
        "run_id": "20261201T000000Z-dead",
        "operator": "someone",
        "control_machine": "laptop-7",
        "evidence": "/home/someone/evidence/20261201T000000Z-dead",
        "started_utc": started,
    }
    cmd.make_dirs(setup.host, LOCK)
    setup.host.write_file(LOCK + r"\holder.json", json.dumps(holder).encode("ascii"))
    return holder


def test_a_young_lock_refuses_and_break_lock_breaks_it_on_the_record(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    holder = _plant_lock(setup, age_h=1)
    assert (
        cli.main(["run", str(setup.params_file), "--evidence-root", str(setup.evidence_root), "--steps", "0"])
        == 1
    )
    err = capsys.readouterr().err
    assert "run 20261201T000000Z-dead by someone on laptop-7 since" in err and "1.0 h old" in err, err
    assert setup.host.is_dir(LOCK)
    code = cli.main(
        [
            "run",
            str(setup.params_file),
            "--evidence-root",
            str(setup.evidence_root),
            "--steps",
            "0",
            "--break-lock",
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "broke the server's renewal lock held by run 20261201T000000Z-dead" in out.out
    run_dir = setup.run_dirs()[-1]
    lock = setup.manifest(run_dir)["server_lock"]
    assert lock["broken"]["run_id"] == holder["run_id"] and lock["broken"]["broken_because"] == "--break-lock"
    assert lock["released"] == "removed (read back)" and not setup.host.is_dir(LOCK)
    _count("lock: young refused, --break-lock")


def test_a_stale_lock_is_broken_and_recorded(setup: Setup) -> None:
    _plant_lock(setup, age_h=7)
    assert (
        cli.main(["run", str(setup.params_file), "--evidence-root", str(setup.evidence_root), "--steps", "0"])
        == 0
    )
    lock = setup.manifest(setup.run_dirs()[-1])["server_lock"]
    assert lock["broken"]["broken_because"] == "older than 6 h" and lock["broken"]["age_h"] > 6
    assert not setup.host.is_dir(LOCK)
    _count("lock: stale broken")


def test_resume_takes_over_only_its_own_lock(setup: Setup) -> None:
    from opslib.errors import RunLocked
    from opslib.server.renewal_lock import ServerLock
    from opslib.winrm import connect

    holder = _plant_lock(setup, age_h=1)  # e.g. its runner was killed (SIGKILL) and never removed it
    mine = {**holder, "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with connect(
        setup.reh.url,
        transport="basic",
        username=setup.reh.user,
        password=setup.secrets[0],
        host_label="web01",
        allow_unencrypted_basic=True,
        allow_cleartext_secrets=True,  # a Basic/HTTP lab host: accepted explicitly
    ) as conn:
        lock = ServerLock(conn, host="web01")
        resume = {**mine, "run_id": "20261201T020000Z-resume"}
        with pytest.raises(RunLocked, match="run 20261201T000000Z-dead by someone"):  # resumes another run
            lock.acquire(resume, resumes="20261201T010000Z-other")
        taken = lock.acquire(resume, resumes=holder["run_id"])  # the run it continues holds the lock
        assert taken is not None and taken["taken_over_by"] == "resume 20261201T020000Z-resume"
        assert lock.holder()["run_id"] == "20261201T020000Z-resume"
        assert lock.release(holder["run_id"]).startswith(
            "left in place: it now belongs to run 20261201T020000Z"
        )
        assert setup.host.is_dir(LOCK)
        assert lock.release("20261201T020000Z-resume") == "removed (read back)"
    assert not setup.host.is_dir(LOCK)
    _count("lock: resume takes over its own")
