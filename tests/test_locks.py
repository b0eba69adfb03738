"""One holder, always (issue 25): the server's renewal lock against the rehearsal host.

* two resumes of one run cannot both take its lock over (``mkdir takeover-<run id>`` inside the lock);
* ``--break-lock`` refuses a holder alive on this machine (pid and start), breaks a dead one;
* a lock without a holder file, or with a time without a zone, in the future, or garbage, never crashes
  the kit: a clear message, and ``--break-lock`` works on it;
* a lock without a holder file ages from its folder's creation time (W-FSO-DATECREATED): younger than the
  stale age it is refused naming its age, older it is broken by itself (run.json) and the run proceeds;
* a run whose lock another run broke stops before its next server change, naming who broke it;
* a run the lock refuses creates no run folder, and its message names the run to resume.
"""

from __future__ import annotations

import json
import os
import secrets as random
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from opslib import cli, rehearsal
from opslib.errors import PreconditionFailed, RunLocked
from opslib.server import renewal_lock
from opslib.winrm import Connection, Raw, connect_params
from opslib.winrm.transcript import CREATE_TEMP

WINRM_ENV, PFX_ENV = "OPSLIB_LOCKS_WINRM", "OPSLIB_LOCKS_PFX"


@pytest.fixture
def reh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[rehearsal.Rehearsal]:
    password = f"W{random.token_urlsafe(15)}"
    monkeypatch.setenv(WINRM_ENV, password)
    monkeypatch.setenv(PFX_ENV, f"P{random.token_urlsafe(15)}")
    r = rehearsal.start(scenario="iis6-ja", password=password, workdir=tmp_path / "host")
    try:
        yield r
    finally:
        r.stop()


def _params(reh: rehearsal.Rehearsal, tmp_path: Path) -> dict[str, Any]:
    return reh.params(password_env=WINRM_ENV, pfx_password_env=PFX_ENV, backup_dir=str(tmp_path / "backups"))


def _connect(reh: rehearsal.Rehearsal, tmp_path: Path) -> Connection:
    return connect_params(_params(reh, tmp_path)["winrm"], host="web01")


def _holder(run_id: str, **more: Any) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "operator": "ops",
        "control_machine": "elsewhere",
        "evidence": f"/srv/evidence/{run_id}",
        "started_utc": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        **more,
    }


def _plant(conn: Connection, lock: renewal_lock.ServerLock, content: bytes | None) -> None:
    """A lock as another run (or a dead one) left it: the folder, and the holder file's bytes (None: none)."""
    conn.run(["mkdir", lock.folder])
    if content is not None:
        conn.upload(content, lock.folder + "\\holder.json")


def test_two_resumes_of_one_run_cannot_both_take_its_lock_over(
    reh: rehearsal.Rehearsal, tmp_path: Path
) -> None:
    with _connect(reh, tmp_path) as conn:
        lock = renewal_lock.ServerLock(conn, host="web01")
        _plant(conn, lock, json.dumps(_holder("A")).encode())
        first = lock.acquire(_holder("C1"), resumes="A")
        assert first is not None and first["taken_over_by"] == "resume C1"
        # A second resume of A, after C1: refused, naming C1 and what to do.
        with pytest.raises(
            RunLocked, match=r"run C1 by ops on elsewhere .*resume it \(opslib resume /srv/evidence/C1\)"
        ):
            renewal_lock.ServerLock(conn, host="web01").acquire(_holder("C2"), resumes="A")
        # The race: C2 read A's holder file before C1 rewrote it. Its takeover folder exists: refused.
        held_by_c1 = conn.download(lock.folder + "\\holder.json")
        conn.upload(json.dumps(_holder("A")).encode(), lock.folder + "\\holder.json")
        with pytest.raises(RunLocked, match=r"another resume of run A took the lock over first"):
            renewal_lock.ServerLock(conn, host="web01").acquire(_holder("C2"), resumes="A")
        conn.upload(held_by_c1, lock.folder + "\\holder.json")
        assert lock.holder()["run_id"] == "C1"  # one holder
        # The run whose lock was taken over stops before its next change, naming who holds it.
        with pytest.raises(RunLocked, match=r"this run's lock was broken: it now belongs to run C1 by ops"):
            lock.check_held("A")
        assert lock.release("C1") == "removed (read back)"
        there = conn.run(["if", "exist", lock.folder, Raw("(exit /b 1)")], check=False)
        assert there.exit_code == 0, "the lock folder (and its takeover folder) is gone"


def test_break_lock_refuses_a_holder_alive_here_and_breaks_a_dead_one(
    reh: rehearsal.Rehearsal, tmp_path: Path
) -> None:
    here = socket.gethostname()
    alive = _holder(
        "L", control_machine=here, pid=os.getpid(), process_started=renewal_lock.process_started()
    )
    dead_pid = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead = _holder("D", control_machine=here, pid=int(dead_pid.stdout), process_started="x:1")
    with _connect(reh, tmp_path) as conn:
        lock = renewal_lock.ServerLock(conn, host="web01")
        _plant(conn, lock, json.dumps(alive).encode())
        with pytest.raises(
            RunLocked, match=r"run L by ops on .*pid \d+.*still running on this machine"
        ) as refused:
            lock.acquire(_holder("N"), break_lock=True)
        assert "--break-lock does not break the lock of a live run" in str(refused.value)
        assert lock.holder()["run_id"] == "L"
        conn.upload(json.dumps(dead).encode(), lock.folder + "\\holder.json")
        broken = lock.acquire(_holder("N"), break_lock=True)
        assert broken is not None and broken["run_id"] == "D" and broken["broken_because"] == "--break-lock"
        assert lock.holder()["run_id"] == "N"
        lock.release("N")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            None,
            r"an unknown run \(the lock holds no readable holder.json\); the lock is 0\.0 h old by its "
            r"folder's creation time",
        ),
        (b"\x00garbage\x1b[2J", r"an unknown run .*0\.0 h old by its folder's creation time"),
        (
            json.dumps(_holder("Z", started_utc="2026-01-01T00:00:00")).encode(),
            r"run Z .*of unknown age \(the holder file's start time 2026-01-01T00:00:00 has no time zone\)",
        ),
        (
            json.dumps(
                _holder("F", started_utc=(datetime.now(UTC) + timedelta(days=400)).isoformat())
            ).encode(),
            r"run F .*of unknown age \(the holder file's start time .* is in the future\)",
        ),
        (
            json.dumps(_holder("\x1b]0;owned\x07", operator=["x"], started_utc=7)).encode(),
            r"run \\x1b\]0;owned\\x07 by \['x'\] .*of unknown age \(the holder file gives no start time\)",
        ),
    ],
    ids=["no-holder", "garbage", "no-zone", "future", "control-chars"],
)
def test_a_malformed_lock_never_crashes_and_break_lock_works_on_it(
    reh: rehearsal.Rehearsal, tmp_path: Path, content: bytes | None, message: str
) -> None:
    with _connect(reh, tmp_path) as conn:
        lock = renewal_lock.ServerLock(conn, host="web01")
        _plant(conn, lock, content)
        with pytest.raises(RunLocked, match=message) as refused:
            lock.acquire(_holder("N"))
        assert "\x1b" not in str(refused.value) and "\x07" not in str(refused.value)
        broken = lock.acquire(_holder("N"), break_lock=True)
        assert broken is not None and broken["broken_because"] == "--break-lock"
        assert lock.holder()["run_id"] == "N"


def _age_folder(reh: rehearsal.Rehearsal, folder: str, hours: float) -> None:
    """The lock folder as if mkdir had made it ``hours`` ago (what FSO DateCreated then answers)."""
    key = reh.host.norm(folder)
    assert key in reh.host.dir_created
    reh.host.dir_created[key] -= int(hours * 3600 * 1000)


def test_a_holder_less_lock_younger_than_the_stale_age_is_refused_naming_its_age(
    reh: rehearsal.Rehearsal, tmp_path: Path
) -> None:
    with _connect(reh, tmp_path) as conn:
        lock = renewal_lock.ServerLock(conn, host="web01")
        _plant(conn, lock, None)  # killed between mkdir and the holder write
        _age_folder(reh, lock.folder, 2.5)
        with pytest.raises(RunLocked, match=r"the lock is 2\.5 h old by its folder's creation time"):
            lock.acquire(_holder("N"))
        with pytest.raises(RunLocked, match=r"2\.5 h old"):
            lock.check_free(break_lock=False)
        assert reh.host.is_dir(lock.folder) and lock.holder() == {}  # nothing was changed
        history = " ".join(str(h.get("command", h)) for h in reh.host.history)
        assert "folderage.js" in history  # read through the packaged script, not dir's localized dates


@pytest.mark.timeout(600)
def test_a_holder_less_lock_older_than_the_stale_age_is_broken_and_the_run_proceeds(
    reh: rehearsal.Rehearsal,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPSLIB_STEP_ENGINE", "inprocess")
    params = tmp_path / "web01.yaml"
    params.write_text(yaml.safe_dump(_params(reh, tmp_path), sort_keys=False), encoding="utf-8")
    root = tmp_path / "evidence"
    with _connect(reh, tmp_path) as conn:
        lock = renewal_lock.ServerLock(conn, host="web01")
        _plant(conn, lock, None)
        folder = lock.folder
    _age_folder(reh, folder, renewal_lock.STALE_AFTER_H + 1)
    assert cli.main(["run", str(params), "--evidence-root", str(root), "--yes"]) == 0
    out = capsys.readouterr().out
    assert "broke the server's renewal lock held by an unknown run" in out
    (run,) = [p for p in root.iterdir() if (p / "run.json").is_file()]
    doc = json.loads((run / "run.json").read_text(encoding="utf-8"))
    broken = doc["server_lock"]["broken"]
    assert broken["broken_because"] == f"older than {renewal_lock.STALE_AFTER_H:g} h"
    assert broken["age_h"] == pytest.approx(renewal_lock.STALE_AFTER_H + 1, abs=0.1)
    assert doc["server_lock"]["released"] == "removed (read back)"
    assert not reh.host.is_dir(folder)


@pytest.mark.timeout(600)
def test_breaking_a_lock_whose_evidence_is_elsewhere_removes_the_kit_temp_folders_and_names_what_stays(
    reh: rehearsal.Rehearsal,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPSLIB_STEP_ENGINE", "inprocess")
    params = tmp_path / "web01.yaml"
    params.write_text(yaml.safe_dump(_params(reh, tmp_path), sort_keys=False), encoding="utf-8")
    root = tmp_path / "evidence"
    with _connect(reh, tmp_path) as conn:
        temp = conn.run(["echo", Raw("%TEMP%")]).stdout_text.strip()
        gone, stays = temp + "\\opslib-0123456789ab", temp + "\\opslib-ba9876543210"
        for folder in (gone, stays):
            conn.run(["mkdir", folder])
            conn.upload(b"PFX", folder + "\\export.pfx")
        conn.run(["mkdir", temp + "\\opslib-notakitfolder"])  # not the kit's naming: left alone
        lock = renewal_lock.ServerLock(conn, host="web01")
        # Another control machine's run: its evidence is not on this machine.
        _plant(conn, lock, json.dumps(_holder("FAR", evidence="/elsewhere/FAR")).encode())
    reh.host.locked_files.add(reh.host.norm(stays) + "\\export.pfx")  # an antivirus holds it open
    assert cli.main(["run", str(params), "--evidence-root", str(root), "--yes", "--break-lock"]) == 0
    capsys.readouterr()
    assert not reh.host.is_dir(gone) and reh.host.read_file(gone + "\\export.pfx") is None
    assert reh.host.read_file(stays + "\\export.pfx") is not None
    assert reh.host.is_dir(temp + "\\opslib-notakitfolder")
    (run,) = [p for p in root.iterdir() if (p / "run.json").is_file()]
    doc = json.loads((run / "run.json").read_text(encoding="utf-8"))
    assert doc["server_lock"]["broken"]["run_id"] == "FAR"
    assert "opslib-ba9876543210" in json.dumps(doc["left_on_server"]).lower()  # what stays is named
    assert "opslib-0123456789ab" not in json.dumps(doc["left_on_server"]).lower()
    transcript = (run / "transcript.jsonl").read_text(encoding="utf-8")
    assert "list the kit's temp folders" in transcript and "opslib-0123456789ab" in transcript


def test_a_run_refused_by_the_lock_leaves_no_run_folder_and_names_the_holder(
    reh: rehearsal.Rehearsal, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = tmp_path / "web01.yaml"
    params.write_text(yaml.safe_dump(_params(reh, tmp_path), sort_keys=False), encoding="utf-8")
    root = tmp_path / "evidence"
    with _connect(reh, tmp_path) as conn:
        _plant(conn, renewal_lock.ServerLock(conn, host="web01"), json.dumps(_holder("R7")).encode())
    assert cli.main(["run", str(params), "--evidence-root", str(root), "--yes"]) == 1
    err = capsys.readouterr().err
    assert "another run holds" in err and "run R7 by ops on elsewhere" in err
    assert "resume it (opslib resume /srv/evidence/R7)" in err and "nothing was changed" in err
    assert not root.exists() or not [p for p in root.iterdir() if (p / "run.json").is_file()]
    state = reh.host.state()
    assert all(s["ssl_cert_hash"] != reh.host.extra["new_thumbprint"] for s in state["sites"].values())


@pytest.mark.timeout(600)
def test_breaking_a_dead_runs_lock_removes_what_it_left_on_the_server(
    reh: rehearsal.Rehearsal,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run died in step 3 (its temp folder holds the exported PFX and its base64 copy) and its lock
    stays; the operator breaks the lock: the new run reads the dead run's transcript, removes that
    folder (read back) and records whom it broke."""
    monkeypatch.setenv("OPSLIB_STEP_ENGINE", "inprocess")
    params = tmp_path / "web01.yaml"
    params.write_text(yaml.safe_dump(_params(reh, tmp_path), sort_keys=False), encoding="utf-8")
    root = tmp_path / "evidence"
    dead = tmp_path / "elsewhere" / "20260101T000000Z_web01_www1.example.jp"
    dead.mkdir(parents=True)
    with _connect(reh, tmp_path) as conn:
        temp = conn.run(["echo", Raw("%TEMP%")]).stdout_text.strip() + "\\opslib-0123456789ab"
        conn.run(["mkdir", temp])
        conn.upload(b"PFX", temp + "\\export.pfx")
        conn.upload(b"UEZY", temp + "\\export.b64")
        entry = {"what": CREATE_TEMP, "argv": ["mkdir", temp], "exit_code": 0}
        (dead / "transcript.jsonl").write_text(json.dumps(entry) + "\n", encoding="utf-8")
        lock = renewal_lock.ServerLock(conn, host="web01")
        _plant(conn, lock, json.dumps(_holder(dead.name, evidence=str(dead))).encode())
    assert cli.main(["run", str(params), "--evidence-root", str(root), "--yes", "--break-lock"]) == 0
    out = capsys.readouterr().out
    assert f"broke the server's renewal lock held by run {dead.name}" in out
    state = reh.host.state()
    assert not [f for f in state["files"] if "opslib-0123456789ab" in f.lower()], "the PFX copies are gone"
    assert not [d for d in state["dirs"] if "opslib-" in d.lower()], "nothing of the kit's is left"
    (run,) = [p for p in root.iterdir() if (p / "run.json").is_file()]
    doc = json.loads((run / "run.json").read_text(encoding="utf-8"))
    assert doc["server_lock"]["broken"]["run_id"] == dead.name
    assert doc["left_on_server"] == []
    transcript = (run / "transcript.jsonl").read_text(encoding="utf-8")
    assert "opslib-0123456789ab" in transcript  # the removal and its read-back are in this run's evidence


@pytest.mark.timeout(600)
def test_a_run_whose_lock_was_broken_stops_before_its_next_change(
    reh: rehearsal.Rehearsal,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPSLIB_STEP_ENGINE", "inprocess")
    params = tmp_path / "web01.yaml"
    params.write_text(yaml.safe_dump(_params(reh, tmp_path), sort_keys=False), encoding="utf-8")
    root = tmp_path / "evidence"
    import opslib.ops.roots as roots

    real_verify = roots.verify

    def verify_then_broken(*args: Any, **kwargs: Any) -> Any:  # during step 0, another run breaks the lock
        result = real_verify(*args, **kwargs)
        with _connect(reh, tmp_path) as conn:
            lock = renewal_lock.ServerLock(conn, host="web01")
            conn.upload(
                json.dumps(_holder("BREAKER", operator="eve")).encode(), lock.folder + "\\holder.json"
            )
        return result

    monkeypatch.setattr(roots, "verify", verify_then_broken)
    assert cli.main(["run", str(params), "--evidence-root", str(root), "--yes"]) == 1
    err = capsys.readouterr().err
    assert "this run's lock was broken: it now belongs to run BREAKER by eve on elsewhere" in err
    (run,) = [p for p in root.iterdir() if (p / "run.json").is_file()]
    doc = json.loads((run / "run.json").read_text(encoding="utf-8"))
    assert [s["name"] for s in doc["steps"]] == ["00_precheck_root_store"], "step 01 never started"
    assert doc["server_lock"]["released"].startswith("left in place: it now belongs to run BREAKER")
    state = reh.host.state()
    assert all(s["ssl_cert_hash"] != reh.host.extra["new_thumbprint"] for s in state["sites"].values())
    assert not any(reh.host.extra["new_thumbprint"] in k for k in state["registry"]), "nothing installed"


def test_a_holder_file_that_cannot_be_read_is_not_taken_for_a_broken_lock(
    reh: rehearsal.Rehearsal, tmp_path: Path
) -> None:
    """Before a change the run reads its lock back; a read that fails (here: a fault on the read's command)
    stops the run saying the lock could not be read — not that another run broke it."""
    with _connect(reh, tmp_path) as conn:
        lock = renewal_lock.ServerLock(conn, host="web01")
        _plant(conn, lock, json.dumps(_holder("run-a")).encode())
        lock.check_held("run-a")  # readable and ours: nothing to say
        reh.set_faults(["before:type:fail"])
        try:
            with pytest.raises(Exception, match=r"could not read this run's lock .*resume the run") as info:
                lock.check_held("run-a")
        finally:
            reh.set_faults([])
        assert not isinstance(info.value, RunLocked)
        assert "broken" not in str(info.value)
        lock.check_held("run-a")  # the lock itself is unchanged


def test_the_windows_folder_is_read_once_per_run_and_a_wrong_one_stops_before_a_change(
    reh: rehearsal.Rehearsal, tmp_path: Path
) -> None:
    """%SystemRoot% is read once per run and kept in connection.json for the run's later connections
    (W-ECHO-SYSTEMROOT). Were the kept one not the server's, the lock check would find no holder file
    there: the run stops before its next change saying the lock could not be read, and the lock stays."""
    winrm, run_dir = _params(reh, tmp_path)["winrm"], tmp_path / "run"
    run_dir.mkdir()
    with connect_params(winrm, host="web01", run_dir=str(run_dir)) as conn:
        lock = renewal_lock.ServerLock(conn, host="web01")
        _plant(conn, lock, json.dumps(_holder("run-a")).encode())
        lock.check_held("run-a")
    with connect_params(winrm, host="web01", run_dir=str(run_dir)) as conn:
        renewal_lock.ServerLock(conn, host="web01").check_held("run-a")  # a later connection of the run
    assert [h["command"] for h in reh.host.history].count("echo %SystemRoot%") == 1
    state_file = run_dir / "connection.json"
    state = json.loads(state_file.read_text(encoding="utf-8"))
    assert state["system_root"] == "C:\\WINDOWS"
    state_file.write_text(json.dumps({**state, "system_root": "D:\\WINNT"}), encoding="utf-8")
    with connect_params(winrm, host="web01", run_dir=str(run_dir)) as conn:
        with pytest.raises(
            PreconditionFailed,
            match=r"could not read this run's lock D:\\WINNT\\Temp\\opslib-renewal\.lock\\holder\.json .*resume",
        ):
            renewal_lock.ServerLock(conn, host="web01").check_held("run-a")
    with _connect(reh, tmp_path) as conn:
        assert renewal_lock.ServerLock(conn, host="web01").holder()["run_id"] == "run-a"  # the lock stays
