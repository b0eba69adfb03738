"""Evidence folders: writing, listing, showing and verifying them, as an operator or reviewer sees it.

Every run folder here is built with the writing API the runbook uses (new_run, update_run,
finalize_run); the command line is driven through ``opslib.cli.main`` and judged by its exit code
and output.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import nbformat
import papermill as pm
import pytest

from opslib import evidence
from opslib.cli import main
from opslib.credentials import register
from opslib.errors import EvidenceError

T0 = dt.datetime(2026, 11, 26, 19, 45, tzinfo=dt.UTC)
STEPS = ("00_precheck_root_store", "01_install_certificate", "02_swap_certificate", "03_backup_keypair")
PARAMETERS = {
    "host": "web01.example.jp",
    "winrm": {"url": "https://web01.example.jp:5986/wsman", "password": "env:OPSLIB_WINRM_PASSWORD"},
    "production_site": "www1.example.jp",
    "backup": {"directory": "~/ssl-backups", "pfx_password": "env:OPSLIB_PFX_PASSWORD"},
}


def _notebook(step: str, facts: dict[str, object]) -> str:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(f"# {step}"),
        nbformat.v4.new_code_cell(
            "opslib.evidence.record(facts)",
            outputs=[nbformat.v4.new_output("display_data", data={evidence.FACTS_MIME: facts})],
        ),
    ]
    return nbformat.writes(nb)


def make_run(
    root: Path,
    *,
    started_utc: dt.datetime,
    host: str = "web01.example.jp",
    site: str = "www1.example.jp",
    status: str = "succeeded",
    old: str = "AA" * 20,
    new: str = "BB" * 20,
    new_not_after: str = "2027-12-31T23:59:59Z",
    hmac_key: bytes | None = None,
    dry_run: bool = False,
) -> Path:
    """One complete run folder, written the way the runbook writes it."""
    run_dir = evidence.new_run(
        root,
        host=host,
        site=site,
        parameters=PARAMETERS,
        operator="alice",
        dry_run=dry_run,
        now_utc=started_utc,
    )
    (run_dir / "html").mkdir()
    facts_by_step: dict[str, dict[str, object]] = {
        STEPS[0]: {
            "old_thumbprint": old,
            "old_not_after_utc": "2026-12-31T23:59:59Z",
            "g5_root_enabled": False,
        },
        STEPS[1]: {
            "new_thumbprint": new,
            "new_not_after_utc": new_not_after,
            "chain": ["Intermediate CA", "Root"],
        },
        STEPS[2]: {"bindings": [":443:"], "swapped": True},
        STEPS[3]: {"backup_file": "~/ssl-backups/www1.pfx", "backup_sha256": "cd" * 32},
    }
    clock = started_utc
    for i, step in enumerate(STEPS):
        failed = status == "failed" and i == 2
        (run_dir / f"{step}.ipynb").write_text(_notebook(step, facts_by_step[step]), encoding="utf-8")
        (run_dir / "html" / f"{step}.html").write_text(f"<html><body>{step}</body></html>", encoding="utf-8")
        finished = clock + dt.timedelta(seconds=10 + i)
        evidence.update_run(
            run_dir,
            steps=[
                {
                    "name": step,
                    "notebook": f"{step}.ipynb",
                    "status": "failed" if failed else "succeeded",
                    "started_utc": clock,
                    "finished_utc": finished,
                    "duration_s": (finished - clock).total_seconds(),
                    "facts": facts_by_step[step],
                    "error": "site did not start" if failed else None,
                }
            ],
            facts=facts_by_step[step],
        )
        clock = finished
        if failed:
            break
    (run_dir / "transcript.jsonl").write_text(
        "\n".join(
            json.dumps({"what": w, "command_line": c, "exit_code": e, "duration_s": d})
            for w, c, e, d in [("code page", "chcp", 0, 0.12), ("list roots", "reg query HKLM\\x", 0, 0.3)]
        )
        + "\n",
        encoding="utf-8",
    )
    (run_dir / "rollback.yaml").write_text(f"old_thumbprint: {old}\n", encoding="utf-8")
    evidence.update_run(
        run_dir,
        status=status,
        failed_step=STEPS[2] if status == "failed" else None,
        error="step 02_swap_certificate failed: site did not start" if status == "failed" else None,
    )
    evidence.finalize_run(run_dir, now_utc=clock + dt.timedelta(seconds=1), hmac_key=hmac_key)
    return run_dir


@pytest.fixture
def chain(tmp_path: Path) -> list[Path]:
    """Three finalized runs of one site, an hour apart, chained."""
    root = tmp_path / "evidence"
    return [
        make_run(root, started_utc=T0, old="11" * 20, new="22" * 20),
        make_run(root, started_utc=T0 + dt.timedelta(hours=1), status="failed", old="22" * 20, new="33" * 20),
        make_run(root, started_utc=T0 + dt.timedelta(hours=2), old="22" * 20, new="44" * 20),
    ]


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- writing ------------------------------------------------------------------------------------


def test_new_run_names_the_folder_and_writes_a_running_manifest(tmp_path: Path) -> None:
    run_dir = evidence.new_run(
        tmp_path / "ev",
        host="web01.example.jp",
        site="W3SVC/1 (www1)",
        parameters=PARAMETERS,
        operator="alice",
        dry_run=True,
        now_utc=dt.datetime(2026, 11, 27, 4, 45, tzinfo=dt.timezone(dt.timedelta(hours=9))),
    )
    assert run_dir.name == "20261126T194500Z_web01.example.jp_W3SVC-1-www1"
    doc = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    assert doc["status"] == "running"
    assert doc["started_utc"] == "2026-11-26T19:45:00Z"
    assert doc["schema"] == 1 and doc["dry_run"] is True and doc["tls_validation"] == "validate"
    assert doc["parameters"]["winrm"]["password"] == "env:OPSLIB_WINRM_PASSWORD"
    again = evidence.new_run(
        tmp_path / "ev", host="web01.example.jp", site="W3SVC/1 (www1)", parameters={}, operator="a",
        dry_run=False, now_utc=T0,
    )  # fmt: skip
    assert again.name == run_dir.name + "-2"


def test_new_run_refuses_a_naive_clock(tmp_path: Path) -> None:
    with pytest.raises(EvidenceError, match="now_utc: expected a timezone-aware datetime"):
        evidence.new_run(
            tmp_path,
            host="h",
            site="s",
            parameters={},
            operator="a",
            dry_run=False,
            now_utc=dt.datetime(2026, 1, 1),
        )


def test_secrets_never_reach_run_json(tmp_path: Path) -> None:
    register("S3cret-winrm-pass")
    params = {"winrm": {"password": "hunter2-literal"}, "note": "uses S3cret-winrm-pass"}
    run_dir = evidence.new_run(
        tmp_path, host="h", site="s", parameters=params, operator="a", dry_run=False, now_utc=T0
    )
    evidence.update_run(run_dir, error="logon failed for S3cret-winrm-pass")
    text = (run_dir / "run.json").read_text(encoding="utf-8")
    assert "S3cret-winrm-pass" not in text and "hunter2-literal" not in text
    assert text.count("[REDACTED]") == 3


def test_update_run_merges_steps_by_name_and_facts(tmp_path: Path) -> None:
    run_dir = evidence.new_run(
        tmp_path, host="h", site="s", parameters={}, operator="a", dry_run=False, now_utc=T0
    )
    evidence.update_run(
        run_dir, steps=[{"name": "00", "status": "running", "facts": {"a": 1}}], facts={"a": 1}
    )
    evidence.update_run(run_dir, steps={"name": "01", "status": "running"})
    doc = evidence.update_run(
        run_dir, steps=[{"name": "00", "status": "succeeded", "facts": {"b": T0}}], facts={"b": T0}
    )
    assert [(s["name"], s["status"]) for s in doc["steps"]] == [("00", "succeeded"), ("01", "running")]
    assert doc["steps"][0]["facts"] == {"a": 1, "b": "2026-11-26T19:45:00Z"}
    assert doc["facts"] == {"a": 1, "b": "2026-11-26T19:45:00Z"}
    with pytest.raises(EvidenceError, match="files cannot be set by update_run"):
        evidence.update_run(run_dir, files={})
    with pytest.raises(EvidenceError, match="status 'done' is not one of running, succeeded, failed"):
        evidence.update_run(run_dir, status="done")


def test_finalize_refuses_a_running_run(tmp_path: Path) -> None:
    run_dir = evidence.new_run(
        tmp_path, host="h", site="s", parameters={}, operator="a", dry_run=False, now_utc=T0
    )
    with pytest.raises(
        EvidenceError, match="cannot finalize a run whose status is 'running'.*update_run first"
    ):
        evidence.finalize_run(run_dir, now_utc=T0)


def test_finalize_hashes_every_file_and_chains_to_the_previous_run(chain: list[Path]) -> None:
    first, second, third = chain
    doc = json.loads((third / "run.json").read_text(encoding="utf-8"))
    assert sorted(doc["files"]) == sorted(
        [f"{s}.ipynb" for s in STEPS]
        + [f"html/{s}.html" for s in STEPS]
        + ["transcript.jsonl", "rollback.yaml"]
    )
    nb = third / f"{STEPS[1]}.ipynb"
    assert doc["files"][f"{STEPS[1]}.ipynb"] == hashlib.sha256(nb.read_bytes()).hexdigest()
    assert doc["previous_run"] == {
        "run_id": second.name,
        "run_json_sha256": hashlib.sha256((second / "run.json").read_bytes()).hexdigest(),
    }
    assert json.loads((first / "run.json").read_text(encoding="utf-8"))["previous_run"] is None
    assert doc["finished_utc"] == "2026-11-26T21:45:47Z"


@pytest.mark.kernel
def test_record_and_read_facts_through_a_real_kernel(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import datetime as dt\nimport opslib"),
        nbformat.v4.new_code_cell("opslib.evidence.record({'old_thumbprint': 'AB' * 20, 'n': 1})"),
        nbformat.v4.new_code_cell(
            "opslib.evidence.record({'n': 2, 'not_after_utc': dt.datetime(2027, 1, 2, 3, 4, tzinfo=dt.UTC)})"
        ),
    ]
    source, executed = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, source)
    pm.execute_notebook(str(source), str(executed), kernel_name="python3", progress_bar=False)
    assert evidence.read_facts(executed) == {
        "old_thumbprint": "AB" * 20,
        "n": 2,
        "not_after_utc": "2027-01-02T03:04:00Z",
    }
    outputs = nbformat.read(executed, as_version=4).cells[1].outputs
    assert any("text/html" in o.get("data", {}) for o in outputs), "the facts are also shown as a table"


def test_record_refuses_values_that_are_not_json(tmp_path: Path) -> None:
    with pytest.raises(
        EvidenceError, match=r"facts.when: naive datetime 2026-01-01T00:00:00 cannot be recorded"
    ):
        evidence.record({"when": dt.datetime(2026, 1, 1)})
    with pytest.raises(EvidenceError, match="facts.blob: bytes is not JSON-serializable"):
        evidence.record({"blob": b"\x00"})


def test_read_facts_names_a_missing_notebook(tmp_path: Path) -> None:
    with pytest.raises(EvidenceError, match=r"nothing\.ipynb: no such notebook"):
        evidence.read_facts(tmp_path / "nothing.ipynb")


# --- reading ------------------------------------------------------------------------------------


def test_load_runs_one_row_per_run_with_utc_datetimes(chain: list[Path]) -> None:
    df = evidence.load_runs(chain[0].parent)
    assert list(df.columns) == list(evidence.RUN_COLUMNS)
    assert list(df["run_id"]) == [p.name for p in chain]
    assert list(df["status"]) == ["succeeded", "failed", "succeeded"]
    assert str(df["started_utc"].dt.tz) == "UTC"
    assert df.loc[1, "failed_step"] == STEPS[2]
    assert df.loc[2, "new_not_after_utc"].year == 2027
    assert df.loc[0, "backup_sha256"] == "cd" * 32


def test_load_run_reads_steps_and_transcript(chain: list[Path]) -> None:
    record = evidence.load_run(chain[1])
    assert list(record.steps["status"]) == ["succeeded", "succeeded", "failed"]
    assert list(record.steps["duration_s"]) == [10.0, 11.0, 12.0]
    assert record.transcript_summary() == {
        "commands": 2,
        "nonzero_exits": 0,
        "probe_nonzero_exits": 0,
        "total_duration_s": 0.42,
        "unreadable_lines": 0,
    }
    assert [p.name for p in record.renders] == [f"{s}.html" for s in STEPS[:3]]


# --- list / show --------------------------------------------------------------------------------


def test_list_prints_one_line_per_run(chain: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    root = str(chain[0].parent)
    code, out, _ = cli(capsys, "evidence", "list", "--root", root)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:5] == ["RUN", "HOST", "SITE", "MODE", "STATUS"]
    assert [line.split()[3] for line in lines[1:]] == ["renew", "renew", "renew"]
    assert lines[0].endswith("NON-ZERO EXITS") and all(line.endswith(" 0") for line in lines[1:])
    assert len(lines) == 4
    assert chain[1].name in lines[2] and "failed at 02_swap_certificate" in lines[2]
    assert "22222222 → 44444444" in lines[3] and "2027-12-31" in lines[3]


def test_list_filters_and_json(chain: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = chain[0].parent
    make_run(root, started_utc=T0 + dt.timedelta(days=3), host="web02.example.jp")
    code, out, _ = cli(
        capsys, "evidence", "list", "--root", str(root), "--host", "WEB02.example.jp", "--json"
    )
    assert code == 0
    rows = json.loads(out)
    assert [r["host"] for r in rows] == ["web02.example.jp"]
    assert rows[0]["started_utc"] == "2026-11-29T19:45:00Z" and rows[0]["dry_run"] is False
    code, out, _ = cli(capsys, "evidence", "list", "--root", str(root), "--status", "failed", "--json")
    assert [r["run_id"] for r in json.loads(out)] == [chain[1].name]
    code, out, _ = cli(capsys, "evidence", "list", "--root", str(root), "--since", "2026-11-27")
    assert code == 0 and len(out.splitlines()) == 2 and "web02" in out.splitlines()[1]
    code, out, _ = cli(capsys, "evidence", "list", "--root", str(root), "--since", "2030-01-01")
    assert code == 0 and out.strip() == f"no runs in {root} matching since=2030-01-01"


def test_list_bad_usage_and_missing_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ev").mkdir()
    code, _, err = cli(capsys, "evidence", "list", "--root", str(tmp_path / "ev"), "--since", "last week")
    assert code == 2 and "--since 'last week': expected a date such as 2026-11-01" in err
    code, _, err = cli(capsys, "evidence", "list", "--root", str(tmp_path / "ev"), "--status", "ok")
    assert code == 2 and "--status 'ok': expected one of running, succeeded, failed" in err
    code, _, err = cli(capsys, "evidence", "list", "--root", str(tmp_path / "nope"))
    assert code == 1 and "nope: no such evidence root — pass --root DIR" in err


def test_list_shows_an_unreadable_run_json(chain: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    (chain[1] / "run.json").write_text("{truncated", encoding="utf-8")
    code, out, _ = cli(capsys, "evidence", "list", "--root", str(chain[0].parent))
    assert code == 0
    line = next(line for line in out.splitlines() if chain[1].name in line)
    assert "unreadable" in line and "nan" not in line
    code, out, _ = cli(capsys, "evidence", "verify", "--root", str(chain[0].parent))
    assert code == 1 and f"{chain[1] / 'run.json'}: unreadable: run.json is not valid JSON" in out
    assert f"{chain[1] / 'run.json'}: chain: SHA-256" in out, "the next run's link names the damaged run.json"
    assert "no longer exists" not in out


def test_show_summarizes_one_run(chain: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "evidence", "show", str(chain[1]))
    assert code == 0
    assert f"run       {chain[1].name}" in out
    assert (
        "status    failed at 02_swap_certificate: step 02_swap_certificate failed: site did not start" in out
    )
    assert "old cert  " + "22" * 20 in out
    assert f"chain     previous run {chain[0].name}; 8 files hashed" in out
    assert "commands  2 remote commands, 0 non-zero exits, 0.42 s" in out
    step_line = next(line for line in out.splitlines() if line.strip().startswith(STEPS[1]))
    assert "succeeded" in step_line and "11.0 s" in step_line
    facts = out[out.index("facts recorded, by step (in full)") :]
    assert f"  {STEPS[1]}\n    new_thumbprint = {'33' * 20}\n" in facts
    assert '    chain = ["Intermediate CA", "Root"]' in facts and "…" not in facts
    assert str(chain[1] / "html" / f"{STEPS[2]}.html") in out


def test_show_json_and_missing_folder(
    chain: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "evidence", "show", str(chain[2]), "--json")
    data = json.loads(out)
    assert code == 0 and data["run_id"] == chain[2].name and data["new_thumbprint"] == "44" * 20
    assert [s["name"] for s in data["steps"]] == list(STEPS)
    assert data["renders"] == [f"html/{s}.html" for s in STEPS]
    code, _, err = cli(capsys, "evidence", "show", str(tmp_path / "missing"))
    assert code == 1 and "missing: no such run folder — give a folder made by `opslib run`" in err


# --- verify -------------------------------------------------------------------------------------


def test_verify_clean_run_and_root(
    chain: list[Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = cli(capsys, "evidence", "verify", str(chain[1]))
    assert code == 0 and out.startswith(f"ok: {chain[1]}")
    monkeypatch.chdir(chain[1])
    (chain[1] / "rollback.yaml").write_text("changed\n", encoding="utf-8")
    code, out, _ = cli(capsys, "evidence", "verify", ".")
    assert code == 1 and f"{chain[1] / 'rollback.yaml'}: edited" in out
    (chain[1] / "rollback.yaml").write_text(f"old_thumbprint: {'22' * 20}\n", encoding="utf-8")
    monkeypatch.chdir(chain[0].parent)
    code, out, _ = cli(capsys, "evidence", "verify", chain[1].name)
    assert code == 0 and out.startswith(f"ok: {chain[1].name} ")
    code, out, _ = cli(capsys, "evidence", "verify", "--root", str(chain[0].parent))
    ok, head = out.splitlines()
    assert code == 0 and ok == (
        f"ok: 3 runs in {chain[0].parent} (file hashes, chain) — integrity not provable without the HMAC key"
    )
    assert re.fullmatch(r"head record: entry 3, SHA-256 [0-9a-f]{64}", head)


def test_verify_names_a_tampered_notebook(chain: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    nb = chain[1] / f"{STEPS[1]}.ipynb"
    nb.write_text(nb.read_text(encoding="utf-8").replace("33333333", "55555555"), encoding="utf-8")
    code, out, _ = cli(capsys, "evidence", "verify", str(chain[1]))
    assert code == 1
    assert f"{nb}: edited: SHA-256 " in out
    assert "verify: 1 problem in 1 of 1 run" in out
    code, out, _ = cli(capsys, "evidence", "verify", "--root", str(chain[0].parent))
    assert code == 1 and f"{nb}: edited" in out and "1 of 3 runs" in out


def test_verify_names_a_deleted_and_an_added_file(
    chain: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    (chain[2] / "html" / f"{STEPS[3]}.html").unlink()
    (chain[2] / "notes.txt").write_text("added later\n", encoding="utf-8")
    code, out, _ = cli(capsys, "evidence", "verify", str(chain[2]))
    assert code == 1
    assert (
        f"{chain[2] / 'html' / (STEPS[3] + '.html')}: missing: listed in run.json but no longer in the folder"
        in out
    )
    assert f"{chain[2] / 'notes.txt'}: added: in the folder but not listed in run.json" in out


def test_verify_root_names_a_run_removed_from_the_middle(
    chain: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.rmtree(chain[1])
    code, out, _ = cli(capsys, "evidence", "verify", "--root", str(chain[0].parent))
    assert code == 1
    assert f"{chain[1]}: chain: run {chain[2].name} points back at this run, which no longer exists" in out
    code, out, _ = cli(capsys, "evidence", "verify", str(chain[2]))
    assert code == 1 and "no longer exists" in out


def test_verify_finds_an_edited_run_json_through_the_next_run(
    chain: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = chain[0] / "run.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["operator"] = "mallory"
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    code, out, _ = cli(capsys, "evidence", "verify", str(chain[0]))
    assert code == 1
    assert f"{path}: chain: SHA-256" in out and f"the next run {chain[1].name} recorded" in out


def test_verify_root_names_a_cut_chain(chain: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    path = chain[2] / "run.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["previous_run"] = None
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    code, out, _ = cli(capsys, "evidence", "verify", "--root", str(chain[0].parent))
    assert code == 1
    assert (
        f"{path}: chain: previous_run is empty although run {chain[0].name} started and was finalized before it"
        in out
    )


def test_verify_reports_an_unfinalized_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = evidence.new_run(
        tmp_path, host="h", site="s", parameters={}, operator="a", dry_run=False, now_utc=T0
    )
    code, out, _ = cli(capsys, "evidence", "verify", str(run_dir))
    assert code == 1 and "unfinalized: status 'running'" in out and "opslib resume" in out


def test_verify_hmac(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSLIB_TEST_HMAC", "evidence-key-1")
    run_dir = make_run(tmp_path / "ev", started_utc=T0, hmac_key=b"evidence-key-1")
    code, out, _ = cli(capsys, "evidence", "verify", str(run_dir), "--hmac-key", "env:OPSLIB_TEST_HMAC")
    assert code == 0 and out.strip() == f"ok: {run_dir} (file hashes, chain, HMAC)"

    # The newest run has no successor: only the HMAC shows that its run.json was rewritten.
    path = run_dir / "run.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["facts"]["new_thumbprint"] = "EE" * 20
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    code, out, _ = cli(capsys, "evidence", "verify", str(run_dir), "--hmac-key", "env:OPSLIB_TEST_HMAC")
    assert code == 1
    assert f"{path}: hmac: HMAC mismatch: run.json changed after it was signed, or the key is wrong" in out
    assert "evidence-key-1" not in out

    monkeypatch.setenv("OPSLIB_TEST_HMAC", "another-key")
    other = make_run(tmp_path / "ev2", started_utc=T0, hmac_key=b"evidence-key-1")
    code, out, _ = cli(capsys, "evidence", "verify", str(other), "--hmac-key", "env:OPSLIB_TEST_HMAC")
    assert code == 1 and "HMAC mismatch" in out


def test_verify_usage_errors(chain: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "evidence", "verify")
    assert code == 2 and "give either RUN_DIR or --root DIR" in err
    code, _, err = cli(capsys, "evidence", "verify", str(chain[0]), "--hmac-key", "literal-key")
    assert code == 2 and "expected a reference such as env:NAME" in err and "literal-key" not in err


def test_verify_json(chain: list[Path], capsys: pytest.CaptureFixture[str]) -> None:
    (chain[0] / "rollback.yaml").unlink()
    code, out, _ = cli(capsys, "evidence", "verify", "--root", str(chain[0].parent), "--json")
    data = json.loads(out)
    assert code == 1 and data["ok"] is False
    bad = [r for r in data["runs"] if not r["ok"]]
    assert [(r["run_id"], [p["kind"] for p in r["problems"]]) for r in bad] == [(chain[0].name, ["missing"])]


# --- review helpers -----------------------------------------------------------------------------


def test_expiry_table_shows_the_certificate_in_service(chain: list[Path]) -> None:
    root = chain[0].parent
    make_run(root, started_utc=T0 + dt.timedelta(days=1), host="web02.example.jp", status="failed")
    make_run(root, started_utc=T0 + dt.timedelta(days=2), host="web03.example.jp", dry_run=True)
    table = evidence.expiry_table(evidence.load_runs(root), now_utc=dt.datetime(2026, 12, 15, tzinfo=dt.UTC))
    assert [(r.host, r.thumbprint[:4], r.days_left, r.state) for r in table.itertuples()] == [
        ("web02.example.jp", "AAAA", 16, "renew now"),  # failed: the old certificate stays in service
        ("web03.example.jp", "AAAA", 16, "renew now"),  # dry run: nothing changed
        ("web01.example.jp", "4444", 381, "ok"),
    ]
    fig = evidence.plot_expiry(table, now_utc=dt.datetime(2026, 12, 15, tzinfo=dt.UTC))
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[-1] == "web02.example.jp / www1.example.jp", "soonest expiry at the top"
    assert len(labels) == 3
    plt.close(fig)


def test_compare_runs_marks_what_changed(chain: list[Path]) -> None:
    df = evidence.load_runs(chain[0].parent)
    latest = evidence.load_run(evidence.pick_run(df))
    other = evidence.pick_comparison(df, latest)
    assert other is not None and other.run_id == chain[0].name, (
        "the previous successful renewal, not the failed run"
    )
    table = evidence.compare_runs(latest, other).set_index("field")
    assert table.loc["fact: new_thumbprint", "this run"] == "44" * 20
    assert table.loc["fact: new_thumbprint", "other run"] == "22" * 20
    assert bool(table.loc["fact: new_thumbprint", "changed"]) is True
    assert bool(table.loc["fact: old_thumbprint", "changed"]) is True  # 11… then 22…
    failed = evidence.compare_runs(latest, evidence.load_run(chain[1])).set_index("field")
    assert bool(failed.loc["fact: old_thumbprint", "changed"]) is False
    assert failed.loc[f"step {STEPS[3]}: duration_s", "other run"] == ""
    assert evidence.pick_comparison(df, evidence.load_run(chain[0])) is None
    with pytest.raises(EvidenceError, match="nope: no such run — see `opslib evidence list`"):
        evidence.pick_run(df, "nope")


# --- recovery runs: resumes / rolls_back links, the mode column, probe exits ---------------------------


def _recovery_run(root: Path, started_utc: dt.datetime, link: str, target: Path, mode: str) -> Path:
    run_dir = evidence.new_run(
        root,
        host="web01.example.jp",
        site="www1.example.jp",
        parameters=PARAMETERS,
        operator="bob",
        dry_run=False,
        now_utc=started_utc,
    )
    raw = (target / "run.json").read_bytes()
    evidence.update_run(
        run_dir,
        mode=mode,
        status="succeeded",
        **{link: {"run_id": target.name, "run_json_sha256": hashlib.sha256(raw).hexdigest()}},
    )
    evidence.finalize_run(run_dir, now_utc=started_utc + dt.timedelta(seconds=5))
    return run_dir


def test_verify_follows_the_resumes_and_rolls_back_links(
    chain: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root = chain[0].parent
    resumed = _recovery_run(root, T0 + dt.timedelta(hours=3), "resumes", chain[1], "resume")
    undone = _recovery_run(root, T0 + dt.timedelta(hours=4), "rolls_back", resumed, "rollback")
    code, out, _ = cli(capsys, "evidence", "verify", "--root", str(root))
    assert (code, out.splitlines()[0]) == (
        0,
        f"ok: 5 runs in {root} (file hashes, chain) — integrity not provable without the HMAC key",
    )
    code, out, _ = cli(capsys, "evidence", "list", "--root", str(root))
    assert [line.split()[3] for line in out.splitlines()[1:]] == [
        "renew",
        "renew",
        "renew",
        "resume",
        "rollback",
    ]
    code, out, _ = cli(capsys, "evidence", "show", str(undone))
    assert f"mode      rollback    rolls back run {resumed.name}" in out
    # The resumed run's run.json rewritten (what `resume` used to do): the resume run names it.
    doc = json.loads((chain[1] / "run.json").read_text(encoding="utf-8"))
    doc["status"] = "succeeded"
    (chain[1] / "run.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")
    code, out, _ = cli(capsys, "evidence", "verify", "--root", str(root))
    assert code == 1
    assert (
        f"{chain[1] / 'run.json'}: chain: SHA-256 " in out
        and f"that run {resumed.name} recorded when it resumes this run: this run.json changed since" in out
    )
    # verify of the one run names the link from the later run too.
    code, out, _ = cli(capsys, "evidence", "verify", str(chain[1]))
    assert code == 1 and f"run {resumed.name} recorded when it resumes this run" in out


def test_probe_exits_are_counted_apart_from_failures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = make_run(tmp_path / "evidence", started_utc=T0)
    lines = [
        {"what": "does certutil know -exportPFX?", "command_line": "certutil -exportPFX -?", "exit_code": 1},
        {"what": "is PowerShell present?", "command_line": "powershell …", "exit_code": 9009},
        {"what": "read GroupPolicy", "command_line": "reg export HKLM\\x f.reg", "exit_code": 1},
        {
            "what": "read GroupPolicy (does the key exist?)",
            "command_line": "reg query HKLM\\x",
            "exit_code": 1,
        },
        {"what": "upload", "command_line": "certutil -hashfile f SHA256", "exit_code": 5, "probe": True},
        {"what": "set the certificate", "command_line": "cscript iis6.js set-cert", "exit_code": 5},
        {"what": "read ROOT", "command_line": "reg export HKLM\\y f.reg", "exit_code": 1},
        {"what": "read ROOT (does the key exist?)", "command_line": "reg query HKLM\\y", "exit_code": 0},
    ]
    (run_dir / "transcript.jsonl").write_text(
        "\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8"
    )
    summary = evidence.load_run(run_dir).transcript_summary()
    # The failed set-cert and the export of a key that exists are failures; the rest are answers.
    assert (summary["nonzero_exits"], summary["probe_nonzero_exits"]) == (2, 5)
    code, out, _ = cli(capsys, "evidence", "show", str(run_dir))
    assert "8 remote commands, 2 non-zero exits, 0 s; 5 more non-zero exits were capability probes" in out
