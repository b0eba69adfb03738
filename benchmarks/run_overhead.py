"""What the runbook costs on top of the work itself.

Three wall times, each against a fresh rehearsal host (scenario ``iis6-ja``):

* run — ``opslib.runbook.run`` of the five step notebooks (papermill, one kernel per step, html
  renders, run.json updates, finalize);
* (a) — the same notebooks' code cells executed in this one Python process, in order, with the same
  parameters and facts passed along (the opslib calls without papermill, kernels or evidence);
* (b) — five empty notebooks under papermill (the kernel start-up floor).

Target: run ≤ 1.3 × (a + b). Run by hand or with ``make bench``; prints the numbers, exit 1 when the
target is missed.

    .venv/bin/python benchmarks/run_overhead.py [--repeat N]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import nbformat
import papermill
import yaml
from jupyter_client.manager import AsyncKernelManager

import opslib.evidence
from opslib import rehearsal, runbook

TARGET = 1.3


class _IPC(AsyncKernelManager):  # type: ignore[misc]
    """A fresh kernel per notebook, reached the way the runbook reaches its kernels."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{**runbook.kernel_manager_options(), **kwargs})


def _fresh(base: Path) -> tuple[rehearsal.Rehearsal, Path]:
    base.mkdir(parents=True)
    reh = rehearsal.start(
        scenario="iis6-ja", password=os.environ["OPSLIB_BENCH_WINRM"], workdir=base / "host"
    )
    data = reh.params(
        password_env="OPSLIB_BENCH_WINRM",
        pfx_password_env="OPSLIB_BENCH_PFX",
        backup_dir=str(base / "backups"),
    )
    path = base / "bench.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return reh, path


def time_run(base: Path) -> float:
    reh, params_file = _fresh(base)
    with reh, contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        t0 = time.perf_counter()
        code = runbook.run(params_file, evidence_root=base / "evidence", yes=True)
        elapsed = time.perf_counter() - t0
    assert code == 0
    return elapsed


def time_in_process(base: Path) -> float:
    """(a): every step's code cells, exec'd here, facts collected by a stand-in for evidence.record."""
    reh, params_file = _fresh(base)
    p = opslib.params.load(params_file)
    run_dir = base / "evidence" / "run"  # its parent is the evidence root; the backups sit beside it
    run_dir.mkdir(parents=True)
    values = {**p.notebook_values(), "run_dir": str(run_dir), "dry_run": False}
    facts: dict[str, Any] = {}
    recorded: list[dict[str, Any]] = []
    real_record = opslib.evidence.record
    opslib.evidence.record = lambda f: recorded.append(dict(f))  # type: ignore[assignment]
    cwd = os.getcwd()
    try:
        with reh, contextlib.redirect_stdout(io.StringIO()):
            os.chdir(p.base_dir)
            t0 = time.perf_counter()
            for step in runbook.RENEW_STEPS:
                source = runbook.notebooks_dir() / step.notebook
                declared = runbook.declared_parameters(source)
                namespace: dict[str, Any] = dict(
                    runbook.notebook_parameters(step, list(declared), values, facts)
                )
                nb = nbformat.read(source, as_version=4)
                for cell in nb.cells:
                    if cell.cell_type == "code" and "parameters" not in cell.metadata.get("tags", []):
                        exec(compile(cell.source, f"{step.name}", "exec"), namespace)  # noqa: S102
                facts.update(opslib.evidence._plain(recorded[-1]))
            elapsed = time.perf_counter() - t0
    finally:
        os.chdir(cwd)
        opslib.evidence.record = real_record  # type: ignore[assignment]
    assert facts.get("chain_ok") is True, "the in-process run did not reach a good end"
    return elapsed


def time_empty_notebooks(base: Path) -> float:
    """(b): five one-cell notebooks under papermill — the kernel start-up floor."""
    base.mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    cell = nbformat.v4.new_code_cell("x: int = 0  # nothing")
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell]
    empty = base / "empty.ipynb"
    nbformat.write(nb, empty)
    with contextlib.redirect_stderr(io.StringIO()):
        t0 = time.perf_counter()
        for n in range(5):
            papermill.execute_notebook(
                str(empty),
                str(base / f"out{n}.ipynb"),
                parameters={"x": n},
                kernel_name="python3",
                progress_bar=False,
            )
        return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=1, help="measure N times and report the medians")
    args = ap.parse_args()
    os.environ.setdefault("OPSLIB_BENCH_WINRM", "B" + secrets.token_urlsafe(15))
    os.environ.setdefault("OPSLIB_BENCH_PFX", "B" + secrets.token_urlsafe(15))
    runs: list[float] = []
    in_process: list[float] = []
    empty: list[float] = []
    with tempfile.TemporaryDirectory(prefix="opslib-bench-") as tmp:
        for i in range(args.repeat):
            base = Path(tmp) / str(i)
            in_process.append(time_in_process(base / "a"))
            empty.append(time_empty_notebooks(base / "b"))
            runs.append(time_run(base / "run"))
    for n, (r, x, y) in enumerate(zip(runs, in_process, empty, strict=True)):
        print(f"  sample {n + 1}: run {r:.2f} s, (a) {x:.2f} s, (b) {y:.2f} s")
    run, a, b = (statistics.median(x) for x in (runs, in_process, empty))
    budget = TARGET * (a + b)
    print(f"full rehearsal run (5 notebooks, papermill):  {run:6.2f} s")
    print(f"(a) same opslib calls in one process:          {a:6.2f} s")
    print(f"(b) five empty notebooks under papermill:      {b:6.2f} s")
    print(f"ratio run / (a + b):                           {run / (a + b):6.2f}  (target ≤ {TARGET})")
    print(f"runner overhead beyond a + b:                  {run - a - b:6.2f} s")
    ok = run <= budget
    print("OK" if ok else f"MISSED: the run took {run:.2f} s, the budget is {budget:.2f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
