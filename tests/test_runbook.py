"""The runner's behaviour before and around the notebooks: refusals (exit 2), the lock, the rollback set.

These tests start no kernel and contact no server: every refusal here happens before anything is
contacted. The end-to-end runs against the rehearsal host are in ``tests/test_notebooks.py``.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from opslib import cli, evidence, params, runbook
from opslib.errors import ParameterError, RunLocked, StepFailed, UsageError

ROOT = Path(__file__).resolve().parent.parent
WINRM_SECRET = "Winrm-Test-Secret-7731"
PFX_SECRET = "Pfx-Test-Secret-9182"


@pytest.fixture
def params_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A valid parameters file (nothing listens at its URL: these tests must stop before connecting)."""
    monkeypatch.setenv("OPSLIB_TEST_WINRM", WINRM_SECRET)
    monkeypatch.setenv("OPSLIB_TEST_PFX", PFX_SECRET)
    (tmp_path / "mail.txt").write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    data = yaml.safe_load((ROOT / "parameters" / "example.yaml").read_text(encoding="utf-8"))
    data["winrm"].update(url="http://127.0.0.1:9/wsman", password="env:OPSLIB_TEST_WINRM", ca_trust_path="")
    data["certificate_file"] = "mail.txt"
    data["backup"] = {"directory": str(tmp_path / "backups"), "pfx_password": "env:OPSLIB_TEST_PFX"}
    path = tmp_path / "web01.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _edit(path: Path, **changes: Any) -> Path:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split("__")
        for p in parents:
            node = node[p]
        node[leaf] = value
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    return code, capsys.readouterr().err


def test_a_bad_key_exits_2_naming_it_and_creates_nothing(
    params_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit(params_file, ssl_port="443")
    code, err = _cli(capsys, "run", str(params_file), "--evidence-root", str(tmp_path / "ev"), "--yes")
    assert code == 2
    assert "web01.yaml: ssl_port: expected an integer, got a string ('443')" in err
    assert not (tmp_path / "ev").exists()


def test_missing_parameters_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _cli(capsys, "run", str(tmp_path / "nope.yaml"), "--yes")
    assert code == 2
    assert "nope.yaml: (file): parameters file not found" in err


def test_missing_site_name_exits_2(params_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = yaml.safe_load(params_file.read_text(encoding="utf-8"))
    del data["work_site"]
    params_file.write_text(yaml.safe_dump(data), encoding="utf-8")
    code, err = _cli(capsys, "run", str(params_file), "--yes")
    assert (code, "work_site: missing (a required key)" in err) == (2, True)


def test_an_unresolvable_secret_exits_2_without_printing_anything_secret(
    params_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OPSLIB_TEST_PFX")
    code, err = _cli(capsys, "run", str(params_file), "--yes")
    assert code == 2
    assert (
        "backup.pfx_password: secret env:OPSLIB_TEST_PFX: environment variable OPSLIB_TEST_PFX is not set"
        in err
    )
    assert WINRM_SECRET not in err


def test_no_terminal_and_no_yes_is_refused_before_anything_starts(
    params_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, err = _cli(capsys, "run", str(params_file), "--evidence-root", str(tmp_path / "ev"))
    assert code == 2
    assert "step 02_swap_certificate changes the production site and needs a confirmation" in err
    assert "pass --yes" in err
    assert not (tmp_path / "ev").exists()


def test_the_backup_folder_must_be_outside_the_evidence_root(
    params_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit(params_file, backup__directory=str(tmp_path / "ev" / "keys"))
    code, err = _cli(capsys, "run", str(params_file), "--evidence-root", str(tmp_path / "ev"), "--yes")
    assert code == 2
    assert "backup.directory:" in err and "is inside the evidence root" in err


def test_the_backup_folder_must_be_writable(
    params_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A folder under a regular file can be created by nobody, root included (CI runs as root).
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    _edit(params_file, backup__directory=str(blocker / "keys"))
    code, err = _cli(capsys, "run", str(params_file), "--evidence-root", str(tmp_path / "ev"), "--yes")
    assert code == 2 and "is not a writable folder" in err


def test_a_held_lock_refuses_a_second_run(
    params_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "ev"
    lock = runbook.lock_path(root, "web01.example.jp", "www1.example.jp")
    lock.parent.mkdir(parents=True)
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "started_utc": "2026-11-26T19:45:00Z"}
    lock.write_text(json.dumps(holder), encoding="utf-8")
    code, err = _cli(capsys, "run", str(params_file), "--evidence-root", str(root), "--yes")
    assert code == 1
    assert f"another run holds {lock} (pid {os.getpid()} on {socket.gethostname()}" in err
    assert "remove the lock file if that run is dead" in err
    assert lock.exists(), "someone else's lock must not be removed"
    assert [p.name for p in root.iterdir()] == [".locks"], "no run folder for a refused run"


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    lock = runbook.lock_path(tmp_path, "web01", "www1")
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()}), encoding="utf-8")
    with runbook.locked(tmp_path, "web01", "www1") as held:
        assert json.loads(held.read_text(encoding="utf-8"))["pid"] == os.getpid()
        with pytest.raises(RunLocked, match=r"another run holds .*web01_www1\.lock \(pid \d+ on "):
            with runbook.locked(tmp_path, "web01", "www1"):
                pass
    assert not lock.exists(), "the lock is released when the run ends"


def test_step_selection(params_file: Path) -> None:
    steps = runbook.select_steps(runbook.RENEW_STEPS, "0,4")
    assert [s.name for s in steps] == ["00_precheck_root_store", "04_verify_endpoint"]
    assert [s.name for s in runbook.select_steps(runbook.RENEW_STEPS, ["02_swap_certificate"])] == [
        "02_swap_certificate"
    ]
    with pytest.raises(UsageError, match=r"--steps: no step '9'; the steps are 00_precheck_root_store, "):
        runbook.select_steps(runbook.RENEW_STEPS, "9")


def test_a_notebook_gets_only_what_it_declares_and_the_facts_its_step_consumes() -> None:
    step = runbook.Step("02_x", "x", consumes=("new_thumbprint",))
    declared = ["host", "new_thumbprint", "backup_sha256", "dry_run"]
    available = {"host": "web01", "winrm": {"password": "env:X"}, "dry_run": True}
    facts = {"new_thumbprint": "B", "backup_sha256": "C", "host": "other"}
    # backup_sha256 is declared but not consumed; the fact "host" is not consumed either: the operator's stays.
    assert runbook.notebook_parameters(step, declared, available, facts) == {
        "host": "web01",
        "new_thumbprint": "B",
        "dry_run": True,
    }
    # The same value on both sides is no contradiction.
    assert (
        runbook.notebook_parameters(step, declared, {**available, "new_thumbprint": "B"}, facts)[
            "new_thumbprint"
        ]
        == "B"
    )


def test_a_consumed_fact_never_silently_beats_an_operator_parameter() -> None:
    table = (
        runbook.Step("00_a", "a", records=("old_thumbprint",)),
        runbook.Step("01_b", "b", consumes=("old_thumbprint",)),
    )
    assert runbook.table_problems(table) == []
    with pytest.raises(
        ParameterError,
        match=r"web01\.yaml: old_thumbprint: the operator parameter old_thumbprint = 'AA' differs from the fact "
        r"old_thumbprint = 'BB' recorded by .*which step 01_b consumes — remove old_thumbprint from the parameters",
    ) as caught:
        runbook.notebook_parameters(
            table[1],
            ["old_thumbprint"],
            {"old_thumbprint": "AA"},
            {"old_thumbprint": "BB"},
            source="web01.yaml",
        )
    assert caught.value.exit_code == 2


def test_a_step_table_is_checked_for_facts_nobody_records() -> None:
    table = (
        runbook.Step("00_a", "a", consumes=("new_thumbprint",)),
        runbook.Step("01_b", "b", records=("new_thumbprint",)),
        runbook.Step("01_b", "b"),
    )
    assert runbook.table_problems(table) == [
        "00_a consumes 'new_thumbprint', which no earlier step records",
        "01_b: listed twice",
    ]
    for mode in ("renew", "rollback"):
        assert runbook.table_problems(runbook.steps_for(mode)) == []


def test_every_consumed_fact_is_a_parameter_of_its_notebook() -> None:
    for step in runbook.ALL_STEPS:
        declared = runbook.declared_parameters(ROOT / "notebooks" / step.notebook)
        missing = [f for f in step.consumes if f not in declared]
        assert not missing, f"{step.notebook} does not declare the facts its step consumes: {missing}"
        if step.serves:
            assert step.serves in declared, step.name


def test_rollback_file_is_a_valid_rollback_parameter_set(params_file: Path, tmp_path: Path) -> None:
    p = params.load(params_file)
    facts = {
        "old_thumbprint": "AB" * 20,
        "old_not_after_utc": "2026-12-01T00:00:00Z",
        "old_secure_bindings": [":443:"],
        "new_thumbprint": "CD" * 20,
    }
    run_dir = tmp_path / "20261126T194500Z_web01.example.jp_www1.example.jp"
    run_dir.mkdir()
    swap = next(s for s in runbook.RENEW_STEPS if s.writes_rollback)
    values = runbook.rollback_values(swap, facts)
    assert values == {
        "old_thumbprint": "AB" * 20,
        "old_not_after_utc": "2026-12-01T00:00:00Z",
        "old_secure_bindings": [":443:"],
        "replaced_thumbprint": "CD" * 20,
        "old_cert_source": None,  # IIS 6 only (W-IIS6-SSLCERTHASH-INHERIT); not in rollback.yaml when unknown
    }
    # A swap that failed before recording: what step 0 saw before anything changed is the undo.
    before = {
        "production_thumbprint_before": "EF" * 20,
        "production_not_after_utc_before": "2026-11-01T00:00:00Z",
        "production_secure_bindings_before": [":8443:"],
        "new_thumbprint": "CD" * 20,
    }
    assert runbook.rollback_values(swap, before) == {
        "old_thumbprint": "EF" * 20,
        "old_not_after_utc": "2026-11-01T00:00:00Z",
        "old_secure_bindings": [":8443:"],
        "replaced_thumbprint": "CD" * 20,
        "old_cert_source": None,
    }
    assert runbook.write_rollback(run_dir, p, swap, {"new_thumbprint": "CD" * 20}) is None, (
        "nothing to put back"
    )
    assert not (run_dir / "rollback.yaml").exists()
    text = runbook.rollback_text(p, values, run_id=run_dir.name)
    assert text.startswith("# Rollback parameters written by opslib for run 20261126T194500Z_")
    assert WINRM_SECRET not in text and PFX_SECRET not in text
    (run_dir / "rollback.yaml").write_text(text, encoding="utf-8")
    (run_dir / "run.json").write_text("{}", encoding="utf-8")
    rb = params.load(run_dir / "rollback.yaml")
    assert rb.mode == "rollback"
    assert rb.get("rollback.old_thumbprint") == "AB" * 20
    assert rb.get("rollback.replaced_thumbprint") == "CD" * 20
    assert rb.get("winrm.password") == "env:OPSLIB_TEST_WINRM"
    assert "backup" not in rb.data and "certificate_file" not in rb.data
    assert [s.name for s in runbook.steps_for(rb.mode)] == ["05_rollback_certificate", "04_verify_endpoint"]
    assert runbook.steps_for(rb.mode) == runbook.ROLLBACK_STEPS
    # The rollback's evidence goes next to the run it rolls back.
    assert runbook.choose_evidence_root(None, rb) == tmp_path
    assert "old_cert_source" not in text and rb.get("rollback.old_cert_source") == ""  # unknown: as before
    # IIS 6: a production site that inherited its certificate from W3SVC says so to the rollback.
    inherited = runbook.rollback_text(p, {**values, "old_cert_source": "inherited"}, run_id=run_dir.name)
    (run_dir / "rollback.yaml").write_text(inherited, encoding="utf-8")
    assert params.load(run_dir / "rollback.yaml").get("rollback.old_cert_source") == "inherited"
    (run_dir / "rollback.yaml").write_text(inherited.replace(": inherited", ": parent"), encoding="utf-8")
    with pytest.raises(ParameterError, match=r"rollback\.old_cert_source.*must be one of"):
        params.load(run_dir / "rollback.yaml")


def test_resume_refuses_a_folder_without_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _cli(capsys, "resume", str(tmp_path))
    assert code == 2
    assert "no run.json here; give the run folder of an earlier run" in err


def test_on_a_terminal_the_swap_waits_for_a_yes(params_file: Path, tmp_path: Path) -> None:
    asked: list[str] = []
    ctx = runbook.RunContext(
        tmp_path,
        params.load(params_file),
        {},
        dry_run=False,
        yes=False,
        env={},
        ask=lambda q: asked.append(q) or "no",
    )
    ctx.facts["new_thumbprint"] = "CD" * 20
    swap = next(s for s in runbook.RENEW_STEPS if s.needs_confirmation)
    with pytest.raises(
        StepFailed, match=r"step 02_swap_certificate failed: not started: the operator did not confirm"
    ):
        ctx._confirm(swap)
    assert "site www1.example.jp on web01.example.jp will serve certificate " + "CD" * 20 in asked[0]
    ctx.ask = lambda q: "yes"
    ctx._confirm(swap)  # goes on


@pytest.mark.kernel
def test_a_prompted_secret_reaches_the_kernels_as_an_environment_reference(
    params_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _edit(params_file, winrm__password="prompt")
    monkeypatch.setattr("getpass.getpass", lambda prompt: "Typed-Secret-4410")
    p = params.load(params_file)
    env = runbook.resolve_secrets(p)
    assert env == {"winrm.password": "OPSLIB_PROMPTED_WINRM_PASSWORD"}
    assert os.environ.pop("OPSLIB_PROMPTED_WINRM_PASSWORD") == "Typed-Secret-4410"
    ctx = runbook.RunContext(Path("."), p, {}, dry_run=False, yes=True, env=env)
    assert ctx.env_references()["winrm"]["password"] == "env:OPSLIB_PROMPTED_WINRM_PASSWORD"
    assert p.data["winrm"]["password"] == "prompt", "run.json keeps the reference as written"


def test_the_runner_stops_before_a_step_whose_consumed_fact_contradicts_a_parameter(
    params_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A hand-made step consumes ``work_site`` (an operator parameter) as a fact an earlier step recorded
    with another value: the run stops before the step starts (no kernel), and run.json says why."""
    p = params.load(params_file)
    run_dir = evidence.new_run(
        tmp_path / "ev",
        host=p.host,
        site=p.site,
        parameters=p.data,
        operator="tester",
        dry_run=False,
        now_utc=datetime(2026, 11, 26, 19, 45, tzinfo=UTC),
    )
    step = runbook.Step("01_b", "b", consumes=("work_site",))
    ctx = runbook.RunContext(run_dir, p, {}, dry_run=False, yes=True, env={})
    ctx.facts["work_site"] = "other.example.jp"
    with pytest.raises(
        ParameterError, match=r"work_site = 'renew\.www1\.example\.jp' differs from the fact"
    ) as caught:
        ctx.execute([step])
    assert caught.value.exit_code == 2
    m = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    assert m["status"] == "failed" and m["steps"] == []
    assert (
        "the fact work_site = 'other.example.jp' recorded by an earlier step, which step 01_b consumes"
        in m["error"]
    )
    ctx.facts["work_site"] = p.notebook_values()["work_site"]  # the same value: no contradiction
    assert ctx.notebook_inputs(step) == {}  # and the notebook (declaring nothing here) receives nothing


# --- recovery: resume and rollback refusals, before anything is contacted -------------------------


def _failed_run(
    params_file: Path, root: Path, *, steps_done: int = 1, facts: dict[str, Any] | None = None
) -> Path:
    """A finalized failed run of ``params_file`` whose first ``steps_done`` renewal steps succeeded."""
    p = params.load(params_file)
    run_dir = evidence.new_run(
        root,
        host=p.host,
        site=p.site,
        parameters=p.data,
        operator="alice",
        dry_run=False,
        now_utc=datetime(2026, 11, 26, 19, 45, tzinfo=UTC),
    )
    records = [
        {"name": s.name, "status": "succeeded" if i < steps_done else "failed", "facts": facts or {}}
        for i, s in enumerate(runbook.RENEW_STEPS[: steps_done + 1])
    ]
    evidence.update_run(
        run_dir,
        steps=records,
        facts=facts or {},
        parameters_file=str(params_file),
        mode="renew",
        status="failed",
        failed_step=records[-1]["name"],
    )
    evidence.finalize_run(run_dir, now_utc=datetime(2026, 11, 26, 19, 50, tzinfo=UTC))
    return run_dir


def test_resume_refuses_a_correction_of_a_key_the_done_steps_used(
    params_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = _failed_run(params_file, tmp_path / "evidence")
    before = (run_dir / "run.json").read_bytes()
    fix = tmp_path / "fix.yaml"
    fix.write_text(
        yaml.safe_dump({"work_site": "other.example.jp", "verify": {"servername": "x.example.jp"}})
    )
    code, err = _cli(capsys, "resume", str(run_dir), "--params", str(fix), "--yes")
    assert code == 2
    assert re.search(
        r"fix\.yaml: work_site: cannot be changed on resume \(work_site: '[^']+' → 'other\.example\.jp'\): "
        r"the steps already done used the old value — a resume may correct only verify\.\*, backup\.\*, "
        r"winrm\.\*, forbidden_roots and warn_days; for anything else start a new run with the corrected file: "
        rf"opslib run {re.escape(str(fix))}; nothing was changed",
        err,
    )
    assert "opslib rollback" not in err, "this run has nothing a rollback could undo: it would refuse"
    assert "verify.servername" not in err.split("cannot be changed")[0], (
        "an allowed key is not named as refused"
    )
    assert (run_dir / "run.json").read_bytes() == before
    assert [p.name for p in (tmp_path / "evidence").iterdir() if not p.name.startswith(".")] == [run_dir.name]


def test_corrected_parameters_records_old_and_new_values(params_file: Path, tmp_path: Path) -> None:
    old = params.load(params_file)
    fix = tmp_path / "sub" / "fix.yaml"
    fix.parent.mkdir()
    (fix.parent / "ca.pem").write_text("x", encoding="utf-8")
    full = yaml.safe_load(params_file.read_text(encoding="utf-8"))
    full["certificate_file"] = str(tmp_path / "mail.txt")  # the same file, written absolute: no change
    full["verify"] = {**full["verify"], "ca_file": "ca.pem"}  # relative to fix.yaml's folder
    full["warn_days"] = 10
    fix.write_text(yaml.safe_dump(full), encoding="utf-8")
    new, changes = runbook.corrected_parameters(old, fix)
    assert changes == [
        {"key": "verify.ca_file", "old": old.get("verify.ca_file"), "new": str(fix.parent / "ca.pem")},
        {"key": "warn_days", "old": old.get("warn_days"), "new": 10},
    ]
    assert new.path("verify.ca_file") == fix.parent / "ca.pem"
    assert all(runbook.recovery.correctable(c["key"]) for c in changes)
    assert not runbook.recovery.correctable("production_site")
    assert not runbook.recovery.correctable("evidence.hmac_key")


def test_rollback_refuses_when_there_is_nothing_to_put_back(
    params_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = _failed_run(
        params_file, tmp_path / "evidence", facts={"forbidden_roots_disabled": [{"target": "ROOT\\AB"}]}
    )
    code, err = _cli(capsys, "rollback", str(run_dir), "--yes")
    assert code == 2
    assert (
        f"{run_dir.name} did not change the production site's certificate (its step 02 did not run); there is "
        f"no certificate to put back — re-enable the roots its step 00 disabled with: opslib rollback "
        f"{run_dir} --roots"
    ) in err
    # --roots: step 0's .reg backups are named by its facts; here it recorded none.
    code, err = _cli(capsys, "rollback", str(run_dir), "--roots", "--yes")
    assert code == 2 and "step 00 of this run disabled no root; there is nothing to re-enable" in err


def test_rollback_refuses_a_backup_that_changed_after_the_run(params_file: Path, tmp_path: Path) -> None:
    root = tmp_path / "evidence"
    p = params.load(params_file)
    run_dir = evidence.new_run(
        root,
        host=p.host,
        site=p.site,
        parameters=p.data,
        operator="a",
        dry_run=False,
        now_utc=datetime.now(UTC),
    )
    reg = run_dir / "root-backup_ROOT_AB.reg"
    reg.write_bytes(b"Windows Registry Editor Version 5.00\r\n")
    evidence.update_run(
        run_dir,
        steps=[
            {"name": "00_precheck_root_store", "status": "succeeded", "facts": {"root_backups": [reg.name]}}
        ],
        status="failed",
    )
    evidence.finalize_run(run_dir, now_utc=datetime.now(UTC))
    assert runbook.root_backups(json.loads((run_dir / "run.json").read_text()), run_dir) == [reg]
    reg.write_bytes(b"Windows Registry Editor Version 5.00\r\n[HKEY_LOCAL_MACHINE\\x]\r\n")
    with pytest.raises(
        Exception, match=r"root-backup_ROOT_AB\.reg: missing, or changed after the run was finalized"
    ):
        runbook.root_backups(json.loads((run_dir / "run.json").read_text()), run_dir)


def test_console_lines_for_the_operator() -> None:
    from opslib.runbook import console

    swap = next(s for s in runbook.RENEW_STEPS if s.writes_rollback)
    line = console.step_line(swap, index=3, total=5, status="succeeded", duration_s=2.04)
    assert line.startswith("opslib: [3/5] 02 サーバIDの入替え / Swap the production certificate ")
    assert line.endswith("succeeded     2.0 s")
    rows = [
        {"target": "W3SVC/1", "field": "SSLCertHash", "before": "AA", "after": "BB"},
        {"target": "ROOT\\X", "field": "purposes", "before": "disabled", "after": "disabled"},
    ]
    plan = console.plan_lines([(swap, {"swap_plan": rows})], {"chain": "leaf → CA"})
    assert plan[1:] == [
        "  02 サーバIDの入替え / Swap the production certificate:",
        "      W3SVC/1: SSLCertHash AA → BB",
        "  predicted chain: leaf → CA",
    ], "a row that changes nothing is no change"
    serving = console.recorded_serving(
        "www1", {"production_thumbprint_before": "AA"}, ["00_precheck_root_store"]
    )
    assert serving.text() == "www1 serves certificate AA — recorded by step 00, before anything changed"
    assert "does NOT answer TLS" in console.Serving("www1", "", "AA", "", "x", unreachable="refused").text()


def test_a_rollback_run_is_not_resumed(
    params_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = _failed_run(params_file, tmp_path / "evidence")
    evidence_dir = run_dir.parent
    rollback = _failed_run(params_file, tmp_path / "other")
    doc = json.loads((rollback / "run.json").read_text(encoding="utf-8"))
    doc.update(mode="rollback", rolls_back={"run_id": run_dir.name, "run_json_sha256": None})
    target = evidence_dir / (rollback.name + "-rb")
    target.mkdir()
    doc["run_id"] = target.name
    (target / "run.json").write_text(json.dumps(doc), encoding="utf-8")
    code, err = _cli(capsys, "resume", str(target), "--yes")
    assert code == 2
    assert f"{target.name} is a rollback; a rollback is not resumed — check what production serves" in err
    assert f"start a new rollback of the run it undoes: opslib rollback {evidence_dir / run_dir.name}" in err


def test_an_interrupted_run_is_closed_as_failed_before_it_is_resumed(
    params_file: Path, tmp_path: Path
) -> None:
    p = params.load(params_file)
    run_dir = evidence.new_run(
        tmp_path,
        host=p.host,
        site=p.site,
        parameters=p.data,
        operator="a",
        dry_run=False,
        now_utc=datetime.now(UTC),
    )
    evidence.update_run(
        run_dir,
        steps=[
            {"name": "00_precheck_root_store", "status": "succeeded", "facts": {"x": 1}},
            {"name": "01_install_certificate", "status": "running"},
        ],
    )
    assert not evidence.verify_run(run_dir).ok  # unfinalized: "finish it with `opslib resume …`"
    runbook.recovery._close_interrupted(run_dir, None)
    doc = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    assert (doc["status"], doc["failed_step"]) == ("failed", "01_install_certificate")
    assert doc["steps"][1]["error"] == "interrupted: the run stopped without closing its evidence"
    assert runbook.done_steps(doc) == ["00_precheck_root_store"]
    assert evidence.verify_run(run_dir).ok
