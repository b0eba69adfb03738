"""The review notebook, run by papermill in a real kernel over synthetic evidence, read as a reviewer
reads it: the runs table with integrity, one run in detail, the expiry chart, the comparison."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import nbformat
import papermill as pm
import pytest
from test_evidence import STEPS, T0, make_run

from opslib import evidence

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "review_evidence.ipynb"


def _outputs(nb: nbformat.NotebookNode, source_start: str) -> list[dict]:
    cell = next(c for c in nb.cells if c.cell_type == "code" and c.source.startswith(source_start))
    return list(cell.outputs)


def _text(outputs: list[dict]) -> str:
    parts = []
    for o in outputs:
        parts.append(o.get("text", ""))
        data = o.get("data", {})
        parts.append(data.get("text/html", "") or data.get("text/plain", ""))
    return "\n".join(parts)


def test_committed_clean_and_thin() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert nb.cells[0].cell_type == "markdown"
    assert "更新作業の証跡確認 / Review renewal evidence" in nb.cells[0].source
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), (
        "commit the notebook without outputs"
    )
    assert not any(
        line.lstrip().startswith(("def ", "class ")) for c in code for line in c.source.splitlines()
    )
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    params = pm.inspect_notebook(str(NOTEBOOK))
    assert list(params) == ["evidence_root", "host", "since", "run_id", "compare_with", "hmac_key"]
    assert params["hmac_key"]["default"] == '""' and "REFERENCE" in params["hmac_key"]["help"]
    assert params["run_id"]["help"] == "one run in detail (default: the newest)"


@pytest.fixture
def two_runs(tmp_path: Path) -> list[Path]:
    root = tmp_path / "evidence"
    return [
        make_run(root, started_utc=T0, old="11" * 20, new="22" * 20, new_not_after="2027-06-30T00:00:00Z"),
        make_run(root, started_utc=T0 + dt.timedelta(days=1), old="22" * 20, new="33" * 20),
    ]


def _execute(tmp_path: Path, root: Path, **parameters: str) -> nbformat.NotebookNode:
    out = tmp_path / "review.ipynb"
    pm.execute_notebook(
        str(NOTEBOOK),
        str(out),
        parameters={"evidence_root": str(root), **parameters},
        kernel_name="python3",
        cwd=str(tmp_path),
        progress_bar=False,
    )
    return nbformat.read(out, as_version=4)


def test_the_default_evidence_root_is_the_demos_and_none_there_says_what_to_set(tmp_path: Path) -> None:
    """From notebooks/ (make lab, papermill there), ../evidence is where make demo writes; a folder without
    it gets the notebook's words (its parameters cell), not the command line's ("--root")."""
    default = pm.inspect_notebook(str(NOTEBOOK))["evidence_root"]["default"].strip("\"'")
    assert (NOTEBOOK.parent / default).resolve() == NOTEBOOK.parent.parent / "evidence"
    work = tmp_path / "notebooks"
    work.mkdir()
    with pytest.raises(pm.PapermillExecutionError) as failed:
        pm.execute_notebook(str(NOTEBOOK), str(tmp_path / "out.ipynb"), cwd=str(work), progress_bar=False)
    message = failed.value.evalue
    assert f"no evidence folder here (looked in {tmp_path / 'evidence'})" in message
    assert "set evidence_root in this notebook's parameters cell" in message and "--root" not in message


def test_review_two_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "evidence"
    key = "review-hmac-key-1"
    monkeypatch.setenv(
        "OPSLIB_TEST_REVIEW_HMAC", key
    )  # the kernel inherits it; the notebook holds the reference
    first, second = (
        make_run(root, started_utc=T0, old="11" * 20, new="22" * 20, hmac_key=key.encode()),
        make_run(
            root, started_utc=T0 + dt.timedelta(days=1), old="22" * 20, new="33" * 20, hmac_key=key.encode()
        ),
    )
    nb = _execute(tmp_path, first.parent, hmac_key="env:OPSLIB_TEST_REVIEW_HMAC")

    assert (
        "2 of 2 runs selected; 0 of 2 runs have integrity problems (HMAC checked with the operator's key)"
        in _text(_outputs(nb, "import datetime as dt"))
    )
    runs_html = _text(_outputs(nb, "opslib.evidence.style_runs"))
    assert first.name in runs_html and second.name in runs_html
    assert runs_html.index(second.name) < runs_html.index(first.name), "newest first"
    assert "background-color: #d8f0d8" in runs_html and ">intact<" in runs_html
    assert key not in (tmp_path / "review.ipynb").read_text(encoding="utf-8")

    detail = _text(_outputs(nb, "run = opslib.evidence.load_run"))
    assert second.name in detail and "33" * 20 in detail, "the newest run by default"
    steps = _text(_outputs(nb, "opslib.evidence.review.steps_table"))
    assert all(step in steps for step in STEPS)

    expiry = _text(_outputs(nb, "expiry = "))
    assert "3333333333" in expiry and "2027-12-31" in expiry
    chart = _outputs(nb, "fig = opslib.evidence.plot_expiry")
    assert any("image/png" in o.get("data", {}) for o in chart)

    comparison = _text(_outputs(nb, "other = opslib.evidence.pick_comparison"))
    assert first.name in comparison and second.name in comparison
    assert "fact: new_thumbprint" in comparison and "22" * 20 in comparison and "33" * 20 in comparison
    assert f"step {STEPS[2]}: duration_s" in comparison

    # the executed notebook keeps the parameters it was run with (papermill's evidence practice)
    assert nb.metadata.papermill.parameters["evidence_root"] == str(first.parent)


def test_review_shows_tampering_and_a_chosen_run(two_runs: list[Path], tmp_path: Path) -> None:
    first, second = two_runs
    nb_file = second / f"{STEPS[1]}.ipynb"
    nb_file.write_text(nb_file.read_text(encoding="utf-8") + " ", encoding="utf-8")
    doc = json.loads((first / "run.json").read_text(encoding="utf-8"))
    nb = _execute(tmp_path, first.parent, run_id=first.name)

    assert "1 of 2 runs have integrity problems (integrity not provable without the HMAC key)" in _text(
        _outputs(nb, "import datetime as dt")
    )
    runs_html = _text(_outputs(nb, "opslib.evidence.style_runs"))
    assert "1 edited" in runs_html and ">integrity not provable without the HMAC key<" in runs_html
    assert ">intact<" not in runs_html, "no key: no run reads as intact"
    problems = _text(_outputs(nb, "opslib.evidence.problems_table"))
    assert f"{STEPS[1]}.ipynb" in problems and "edited" in problems
    detail = _text(_outputs(nb, "run = opslib.evidence.load_run"))
    assert first.name in detail and doc["facts"]["new_thumbprint"] in detail
    comparison = _text(_outputs(nb, "other = opslib.evidence.pick_comparison"))
    assert "no earlier run of this site" in comparison


def _adjust(run_dir: Path, *, transcript: list[dict[str, Any]] | None = None, **fields: Any) -> Path:
    """Change a just-made run the way the runner would have written it, and finalize it again (it is
    still the newest run of its root, so no later run has chained its run.json yet)."""
    evidence.update_run(run_dir, **fields)
    if transcript is not None:
        lines = [json.dumps(t) for t in transcript]
        (run_dir / "transcript.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    doc = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    evidence.finalize_run(run_dir, now_utc=evidence.parse_utc(doc["finished_utc"]))
    return run_dir


def _b64(text: str, encoding: str) -> str:
    return base64.b64encode(text.encode(encoding)).decode("ascii")


def test_modes_default_comparison_fact_tables_and_decoded_transcript(tmp_path: Path) -> None:
    root = tmp_path / "evidence"
    day = dt.timedelta(days=1)
    renewal = make_run(root, started_utc=T0, old="11" * 20, new="22" * 20)
    dry = make_run(root, started_utc=T0 + day, old="22" * 20, new="44" * 20, dry_run=True)
    failed = make_run(root, started_utc=T0 + 2 * day, old="22" * 20, new="55" * 20, status="failed")
    rollback = _adjust(
        make_run(root, started_utc=T0 + 3 * day, old="22" * 20, new="66" * 20),
        mode="rollback",
        parameters={"mode": "rollback"},
    )
    # The console of a Japanese server: code page 932 (recorded by step 0), output as raw bytes.
    chcp = "現在のコード ページ: 932\r\n"
    denied = "アクセスが拒否されました。\r\n"
    latest = _adjust(
        make_run(root, started_utc=T0 + 4 * day, old="22" * 20, new="33" * 20),
        facts={
            "codepage": 932,
            "swap_plan": [
                {"target": "W3SVC/1", "field": "SSLCertHash", "before": "22" * 20, "after": "33" * 20},
            ],
        },
        transcript=[
            {
                "what": "detect the console code page",
                "command_line": "chcp",
                "exit_code": 0,
                "duration_s": 0.01,
                "stdout_b64": _b64(chcp, "cp932"),
                "stderr_b64": "",
            },
            {
                "what": "a probe",
                "command_line": "powershell -Command exit",
                "exit_code": 9009,
                "duration_s": 0.02,
                "stdout_b64": "",
                "stderr_b64": _b64(denied, "cp932"),
            },
        ],
    )
    resumed = _adjust(
        make_run(root, started_utc=T0 + 5 * day, old="33" * 20, new="77" * 20), resumes=failed.name
    )

    nb = _execute(tmp_path, root, run_id=latest.name)

    runs_html = _text(_outputs(nb, "opslib.evidence.style_runs"))
    modes = {
        name: runs_html[runs_html.index(name) :].split("</tr>")[0]
        for name in (renewal.name, dry.name, failed.name, rollback.name, latest.name, resumed.name)
    }
    assert ">dry run<" in modes[dry.name] and ">rollback<" in modes[rollback.name]
    assert (
        ">resume<" in modes[resumed.name]
        and ">renew<" in modes[renewal.name]
        and ">renew<" in modes[failed.name]
    )
    assert "0 of 6 runs have integrity problems" in _text(_outputs(nb, "import datetime as dt"))

    # The comparison skips the rollback, the failed run and the dry run: the previous successful renewal.
    comparison = _text(_outputs(nb, "other = opslib.evidence.pick_comparison"))
    assert latest.name in comparison and renewal.name in comparison
    assert rollback.name not in comparison and failed.name not in comparison and dry.name not in comparison

    # Facts as tables: a list of records is a nested table, a list of names one per line — not JSON text.
    facts = _text(_outputs(nb, "opslib.evidence.review.facts_table"))
    assert facts.count("<table") >= 2 and "<th>SSLCertHash</th>" not in facts
    assert "<td>SSLCertHash</td>" in facts and "Intermediate CA<br>Root" in facts
    assert '[{"' not in facts and '["Intermediate CA"' not in facts

    transcript = _text(_outputs(nb, "opslib.evidence.review.transcript_table"))
    assert "現在のコード ページ: 932" in transcript and "アクセスが拒否されました。" in transcript
    assert "9009" in transcript
