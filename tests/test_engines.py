"""The step engines are interchangeable: a clean renewal run by the kernel engine and by the in-process
engine leaves the same executed notebooks and sends the same remote command lines.

Two runs in all (module-scoped): steps 00–04 against a fresh rehearsal host each, once with
``engine="kernel"`` (a Jupyter kernel per step) and once through ``opslib run`` with
``OPSLIB_STEP_ENGINE=inprocess`` (the cells in one IPython shell of this process). The notebooks are
compared output for output — the number of outputs of each cell, their types, the MIME types of rich
outputs, and their text once the values that differ between two runs are replaced by numbered
placeholders (thumbprints and other hex values, times, durations, temp names, ports, the run folders).
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import conftest
import nbformat
import pytest
import yaml
from secretscan import assert_no_secrets
from wirelines import history_lines, normalize

from opslib import cli, evidence, rehearsal, runbook
from opslib.errors import UsageError
from opslib.rehearsal import scenarios

STEPS = [s.name for s in runbook.RENEW_STEPS]
ENV = ("OPSLIB_EN_WINRM", "OPSLIB_EN_PFX")


@dataclass
class Renewal:
    engine: str
    base: Path
    run_dir: Path
    manifest: dict[str, Any]
    history: list[str]  # the remote command lines, as the host ran them (with exit codes)
    port: str  # the rehearsal endpoint's port (differs between the two hosts)

    def notebook(self, step: str) -> Any:
        return nbformat.read(self.run_dir / f"{step}.ipynb", as_version=4)


def _renewal(base: Path, engine: str, secrets_: list[str], clock: datetime) -> Renewal:
    """A clean renewal (steps 00–04, --yes) on a fresh Japanese IIS 6 rehearsal host."""
    # The same clock for both hosts: the same test PKI (keys and serials are derived from it), so the
    # two runs see the same certificates and thumbprints.
    host = scenarios.build_host("iis6-ja", workdir=str(base / "host"), now_utc=clock)
    reh = rehearsal.start(host, password=secrets_[0], workdir=base / "host")
    try:
        data = reh.params(password_env=ENV[0], pfx_password_env=ENV[1], backup_dir=str(base / "backups"))
        path = base / "params" / "web01.yaml"
        path.parent.mkdir(parents=True)
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        root = base / "evidence"
        if engine == "kernel":  # named in the call: it wins over the environment
            code = runbook.run(path, evidence_root=root, yes=True, engine="kernel")
        else:  # chosen the way the test suite switches runs started through the CLI
            saved = os.environ.get(runbook.ENGINE_ENV)
            os.environ[runbook.ENGINE_ENV] = engine
            try:
                code = cli.main(["run", str(path), "--evidence-root", str(root), "--yes"])
            finally:
                os.environ.pop(runbook.ENGINE_ENV)
                if saved is not None:
                    os.environ[runbook.ENGINE_ENV] = saved
        assert code == 0
        (run_dir,) = [p for p in root.iterdir() if (p / "run.json").is_file()]
        manifest = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        port = str(re.search(r":(\d+)/", str(data["winrm"]["url"])).group(1))  # type: ignore[union-attr]
        return Renewal(engine, base, run_dir, manifest, history_lines(reh.host.history), port)
    finally:
        reh.stop()


@pytest.fixture(scope="module")
def _secrets() -> Iterator[list[str]]:
    with conftest.random_secrets(*ENV) as values:
        yield values


@pytest.fixture(scope="module")
def _clock() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def kernel_run(tmp_path_factory: pytest.TempPathFactory, _secrets: list[str], _clock: datetime) -> Renewal:
    return _renewal(tmp_path_factory.mktemp("kernel"), "kernel", _secrets, _clock)


@pytest.fixture(scope="module")
def inprocess_run(tmp_path_factory: pytest.TempPathFactory, _secrets: list[str], _clock: datetime) -> Renewal:
    return _renewal(tmp_path_factory.mktemp("inproc"), "inprocess", _secrets, _clock)


def test_the_engine_of_a_run_is_the_one_named_then_the_environment_then_kernel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(runbook.ENGINE_ENV, raising=False)
    assert runbook.engine_name() == "kernel"
    monkeypatch.setenv(runbook.ENGINE_ENV, "inprocess")
    assert runbook.engine_name() == "inprocess"
    assert runbook.engine_name("kernel") == "kernel"
    monkeypatch.setenv(runbook.ENGINE_ENV, "runner")  # runs the runner's own steps, never notebooks
    with pytest.raises(UsageError, match=r"OPSLIB_STEP_ENGINE: no notebook engine 'runner' — the notebook"):
        runbook.engine_name()
    with pytest.raises(UsageError, match=r"engine: no notebook engine 'nbclient'") as refused:
        runbook.engine_name("nbclient")
    assert refused.value.exit_code == 2
    assert {name: runbook.engine_for(name).name for name in runbook.ENGINES} == {
        "kernel": "kernel",
        "inprocess": "inprocess",
        "runner": "runner",
    }
    with pytest.raises(UsageError, match=r"no step engine 'remote'"):
        runbook.engine_for("remote")


def test_the_in_process_papermill_engine_writes_what_a_kernel_sends(tmp_path: Path) -> None:
    """Each output type a kernel sends, from a notebook of one cell per kind, through papermill."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    cells = [
        "value = 1  # parameters",
        "print('a'); print('b'); import sys; print('c', file=sys.stderr)",
        "import pandas as pd\nopslib_facts = __import__('opslib').evidence.record({'n': value})",
        "pd.DataFrame([{'x': value}])",
        "input('?')",
        "print('never')",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    source, output = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(nb, source)
    with pytest.raises(PapermillExecutionError) as failed:
        papermill.execute_notebook(
            str(source),
            str(output),
            parameters={"value": 7},
            engine_name=runbook.inprocess.register(),
            progress_bar=False,
        )
    assert (failed.value.exec_count, failed.value.ename) == (6, "StdinNotImplementedError")
    done = nbformat.read(output, as_version=4)
    code = [c for c in done.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == [1, 2, 3, 4, 5, 6, None]  # the injected parameters: 2
    streams = [(o.output_type, o.name, o.text) for o in code[2].outputs]
    assert streams == [("stream", "stdout", "a\nb\n"), ("stream", "stderr", "c\n")]
    table, facts = code[3].outputs
    assert (table.output_type, sorted(table.data)) == ("display_data", ["text/html", "text/plain"])
    assert (facts.output_type, facts.data) == ("display_data", {evidence.FACTS_MIME: {"n": 7}})
    (result,) = code[4].outputs
    assert (result.output_type, result.execution_count, sorted(result.data)) == (
        "execute_result",
        5,
        ["text/html", "text/plain"],
    )
    (error,) = code[5].outputs
    assert (error.output_type, error.ename) == ("error", "StdinNotImplementedError")
    assert "does not support input requests" in error.evalue and error.traceback
    assert code[5].metadata.papermill["status"] == "failed" and code[6].outputs == []
    assert evidence.read_facts(output) == {"n": 7}


# --- what differs between two runs --------------------------------------------------------------


class Normalizer:
    """Replaces what differs between two runs by placeholders numbered in order of first appearance
    (so that "the same value again" stays visible): apply it to one run's outputs in cell order."""

    def __init__(self, run: Renewal) -> None:
        self.run = run
        self.seen: dict[str, dict[str, str]] = {}

    def _number(self, kind: str, value: str) -> str:
        table = self.seen.setdefault(kind, {})
        return table.setdefault(value, f"<{kind}{len(table) + 1}>")

    def text(self, text: str) -> str:
        run = self.run
        for folder in sorted({str(run.base), str(run.base.resolve())}, key=len, reverse=True):
            text = text.replace(folder, "<base>")
        text = text.replace(run.run_dir.name, "<run>")
        text = re.sub(rf"(?<=[:=\s]){run.port}\b", "<port>", text)  # the WinRM endpoint
        text = re.sub(r"(?<=127\.0\.0\.1:)\d{2,5}\b", "<port>", text)  # the sites' TLS endpoints
        text = re.sub(r"\b(opslib|t\d{4})-[0-9a-f]{8,12}\b", lambda m: f"{m.group(1)[:1]}-<id>", text)
        # times: ISO 8601 (with or without zone, T or space), and run-folder style stamps
        text = re.sub(
            r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?",
            lambda m: self._number("TIME", m.group(0)),
            text,
        )
        text = re.sub(r"(?<!\d)\d{8}T\d{6}Z(?!\d)", lambda m: self._number("STAMP", m.group(0)), text)
        # thumbprints, serial numbers, key ids, hashes, random passwords (upper or lower case hex)
        text = re.sub(
            r"(?<![0-9A-Za-z])(?=[0-9A-Fa-f]*\d)(?=[0-9A-Fa-f]*[A-Fa-f])[0-9A-Fa-f]{8,}(?![0-9A-Za-z])",
            lambda m: self._number("HEX", m.group(0).upper()),
            text,
        )
        # durations (seconds, milliseconds)
        return re.sub(r"\b\d+\.\d+(?= ?(s|ms|秒)\b)", "<dur>", text)

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, float):
            return "<float>"  # durations and sizes measured during the run
        return value


def _outputs(run: Renewal, step: str) -> list[list[dict[str, Any]]]:
    """Each code cell's outputs, normalized: type, stream name, MIME types, and text."""
    norm = Normalizer(run)
    cells: list[list[dict[str, Any]]] = []
    for cell in run.notebook(step).cells:
        if cell.cell_type != "code":
            continue
        outs: list[dict[str, Any]] = []
        for out in cell.outputs:
            item: dict[str, Any] = {"output_type": out.output_type}
            if out.output_type == "stream":
                item.update(name=out.name, text=norm.text(out.text))
            elif out.output_type in ("display_data", "execute_result"):
                item["mime"] = sorted(out.data)
                item["data"] = {mime: norm.value(out.data[mime]) for mime in sorted(out.data)}
                if out.output_type == "execute_result":
                    item["execution_count"] = out.execution_count
            elif out.output_type == "error":
                item.update(ename=out.ename, evalue=norm.text(out.evalue))
            outs.append(item)
        cells.append(outs)
    return cells


# --- the tests -----------------------------------------------------------------------------------


def test_both_runs_succeed_and_run_json_names_the_engine_of_each_step(
    kernel_run: Renewal, inprocess_run: Renewal
) -> None:
    for run in (kernel_run, inprocess_run):
        m = run.manifest
        assert (m["status"], m["failed_step"], m["error"]) == ("succeeded", None, None)
        assert [s["name"] for s in m["steps"]] == STEPS
        assert [s["engine"] for s in m["steps"]] == [run.engine] * len(STEPS)
        assert set(m["files"]) >= {f"{name}.ipynb" for name in STEPS} | {
            f"html/{name}.html" for name in STEPS
        }
        assert_no_secrets(run.run_dir, [os.environ[k] for k in ENV])
    assert kernel_run.manifest["facts"].keys() == inprocess_run.manifest["facts"].keys()


def test_the_executed_notebooks_match_output_for_output(kernel_run: Renewal, inprocess_run: Renewal) -> None:
    for step in STEPS:
        kernel_nb, inprocess_nb = kernel_run.notebook(step), inprocess_run.notebook(step)
        # papermill's own part is the same: the injected parameters cell, the cells, the counts
        assert [c.cell_type for c in kernel_nb.cells] == [c.cell_type for c in inprocess_nb.cells], step
        assert [c.get("execution_count") for c in kernel_nb.cells] == [
            c.get("execution_count") for c in inprocess_nb.cells
        ], step
        assert [c.metadata.get("tags", []) for c in kernel_nb.cells] == [
            c.metadata.get("tags", []) for c in inprocess_nb.cells
        ], step
        assert [c.metadata.papermill["status"] for c in kernel_nb.cells] == [
            c.metadata.papermill["status"] for c in inprocess_nb.cells
        ], step
        assert kernel_nb.metadata.language_info == inprocess_nb.metadata.language_info
        kernel_cells, inprocess_cells = _outputs(kernel_run, step), _outputs(inprocess_run, step)
        assert len(kernel_cells) == len(inprocess_cells), step
        for n, (expected, got) in enumerate(zip(kernel_cells, inprocess_cells, strict=True), 1):
            where = f"{step}, code cell {n}"
            assert [o["output_type"] for o in got] == [o["output_type"] for o in expected], where
            assert [o.get("mime") for o in got] == [o.get("mime") for o in expected], where
            if got != expected:  # show where the two runs' normalized texts part
                a, b = json.dumps(expected, indent=1).splitlines(), json.dumps(got, indent=1).splitlines()
                diff = "\n".join(
                    list(difflib.unified_diff(a, b, "kernel", "inprocess", lineterm="", n=1))[:40]
                )
                pytest.fail(f"{where}: the outputs differ:\n{diff}")
        # the facts the runner read from each notebook: the same names, the same values once normalized
        facts = [evidence.read_facts(run.run_dir / f"{step}.ipynb") for run in (kernel_run, inprocess_run)]
        assert facts[0].keys() == facts[1].keys(), step


def test_every_step_recorded_facts_in_both_runs(kernel_run: Renewal, inprocess_run: Renewal) -> None:
    for run in (kernel_run, inprocess_run):
        for step, record in zip(runbook.RENEW_STEPS, run.manifest["steps"], strict=True):
            assert set(step.records) <= set(record["facts"]), (run.engine, step.name)
            mimes = [
                set(o.data)
                for c in run.notebook(step.name).cells
                if c.cell_type == "code"
                for o in c.outputs
                if o.output_type == "display_data"
            ]
            assert {evidence.FACTS_MIME} in mimes, (run.engine, step.name)
            assert any({"text/html", "text/plain"} <= m for m in mimes), (run.engine, step.name)


def test_both_runs_send_the_same_command_lines(kernel_run: Renewal, inprocess_run: Renewal) -> None:
    kernel_lines, inprocess_lines = normalize(kernel_run.history), normalize(inprocess_run.history)
    assert len(kernel_lines) > 40
    assert inprocess_lines == kernel_lines


# --- a failed step: what a dying kernel does, in process ------------------------------------------

GOLDEN = Path(__file__).resolve().parent / "golden" / "wire"


@pytest.mark.parametrize("scenario", ["no-pending-request", "expired-cross", "key-not-exportable"])
def test_a_failed_in_process_run_sends_the_command_lines_of_the_kernel_run(
    scenario: str, tmp_path: Path, _secrets: list[str]
) -> None:
    """The failing cell's error is papermill's (the cell named, the error cell at the top); the
    connection the notebook left open is closed as the failed kernel's ``atexit`` closes it: the command
    lines are those of the recorded kernel run (``tests/golden/wire``), exit code included."""
    golden = (GOLDEN / f"{scenario}.txt").read_text(encoding="utf-8").splitlines()
    assert golden[0] == "# exit 1"
    reh = rehearsal.start(scenario=scenario, password=_secrets[0], workdir=tmp_path / "host")
    try:
        data = reh.params(password_env=ENV[0], pfx_password_env=ENV[1], backup_dir=str(tmp_path / "backups"))
        path = tmp_path / "params.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        with pytest.raises(runbook.RunFailed) as failed:
            runbook.run(path, evidence_root=tmp_path / "ev", yes=True, engine="inprocess")
        assert normalize(history_lines(reh.host.history)) == golden[1:]
        # and every shell the run opened is deleted: the one the failed notebook left open too
        assert not reh._server.shells
    finally:
        reh.stop()
    error = failed.value
    assert isinstance(error.cell, int) and error.cell > 1
    (run_dir,) = [p for p in (tmp_path / "ev").iterdir() if (p / "run.json").is_file()]
    m = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    assert (m["status"], m["failed_step"]) == ("failed", error.step)
    assert m["steps"][-1]["engine"] == "inprocess" and m["steps"][-1]["status"] == "failed"
    nb = nbformat.read(run_dir / f"{error.step}.ipynb", as_version=4)
    assert "papermill-error-cell-tag" in nb.cells[0].metadata.get("tags", [])
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and c.execution_count == error.cell]
    (out,) = [o for o in cell.outputs if o.output_type == "error"]
    assert f"{out.ename}: " in error.cause and out.traceback
    assert cell.metadata.papermill["status"] == "failed"
