"""How a step is executed: one seam, in papermill's shape (``papermill/engines.py``: a registry of
named engines and one method each implements).

Every engine implements :meth:`StepEngine.execute` ``(step, ctx, passed) -> StepOutcome``; the run
context (:class:`.context.RunContext`) keeps the record, the console line and ``rollback.yaml``
around it, whichever engine ran the step. ``run.json`` names the engine of each step (``engine``).

=============  =================================================================================
``kernel``     what operators run: papermill with a fresh Jupyter kernel per step, the next one
               booting meanwhile (:mod:`.kernels`); a failed step's kernel is stopped gracefully,
               so the ``atexit`` close of a connection the notebook left open runs in it
``inprocess``  for tests and benchmarks that do not test the kernel boundary: still papermill
               (parameter injection, the executed ``.ipynb``, ``PapermillExecutionError`` naming
               the failing cell, papermill's error cells), with a papermill engine that runs the
               cells in one IPython shell in this process (:mod:`.inprocess`)
``runner``     the runner's own steps without a notebook (``Step.in_process``, e.g. ``rollback
               --roots``): the function the launch gives for the step
=============  =================================================================================

The notebook engine of a run is :attr:`.run.Launch.engine` (``run(..., engine=)``), else the
environment variable :data:`ENGINE_ENV` (``OPSLIB_STEP_ENGINE``, meant for the test suite and the
benchmarks), else ``kernel``; the runner's own steps always run on ``runner``.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from .. import credentials, evidence
from ..errors import OpsError, StepFailed, UsageError, raised_before_any_change
from . import render
from .inprocess import register as register_inprocess
from .kernels import KERNEL, Kernels
from .steps import Step

CELL_TIMEOUT_S = 900  # one cell; the transport has its own, shorter, per-command deadlines
ENGINE_ENV = "OPSLIB_STEP_ENGINE"  # the notebook engine of runs that do not name one (tests, benchmarks)
DEFAULT_ENGINE = "kernel"


@dataclass
class StepOutcome:
    """What executing one step gave: its facts (when it succeeded) or the failure, and when it ended."""

    facts: dict[str, Any] = field(default_factory=dict)
    error: StepFailed | None = None
    ended: float = field(default_factory=time.monotonic)  # time.monotonic() when the step's work ended
    record: dict[str, Any] = field(default_factory=dict)  # more fields of the step's run.json record
    render: Future[None] | None = None  # the background HTML render of the executed notebook


class RunContext(Protocol):
    """What an engine reads of the run it executes a step for (:class:`.context.RunContext` is one);
    declared here so that the engines need not import the context that calls them."""

    run_dir: Path
    notebooks: dict[str, tuple[Path, dict[str, dict[str, Any]]]]
    verbose: bool
    dry_run: bool

    @property
    def params(self) -> Any: ...

    @property
    def in_process(self) -> Mapping[str, Callable[[Any], dict[str, Any]]]: ...

    def next_step(self) -> Step | None: ...

    def production_now(self) -> str: ...


class StepEngine(Protocol):
    """Runs one step. ``passed`` are the notebook's parameters (:meth:`RunContext.notebook_inputs`)."""

    name: str

    def execute(self, step: Step, ctx: RunContext, passed: dict[str, Any]) -> StepOutcome: ...


# --- the notebook engines ---------------------------------------------------------------------------


def run_notebook(step: Step, ctx: RunContext, passed: dict[str, Any], **engine_kwargs: Any) -> StepOutcome:
    """Execute ``step``'s notebook into the run folder with papermill; mask secrets in it, render it in
    the background, read its facts. ``engine_kwargs`` choose papermill's engine (``km=`` a started
    kernel, or ``engine_name=``)."""
    import papermill  # papermill loads slowly: only when a notebook runs
    from papermill.exceptions import PapermillExecutionError

    source = ctx.notebooks[step.name][0]
    output = ctx.run_dir / step.notebook
    error: StepFailed | None = None
    try:
        papermill.execute_notebook(
            str(source),
            str(output),
            parameters=passed,
            kernel_name=KERNEL,
            progress_bar=ctx.verbose,  # the operator sees one line per step (console.step_line)
            log_output=ctx.verbose,
            cwd=str(ctx.params.base_dir),
            execution_timeout=CELL_TIMEOUT_S,
            # The notebook is written at the start, at the end and on a failure; not after every
            # cell (that write + validation cost ~0.1 s a cell). A cell running longer than 30 s
            # is still saved meanwhile (papermill's autosave_cell_every).
            request_save_on_cell_execute=False,
            **engine_kwargs,
        )
    except PapermillExecutionError as exc:
        cause = credentials.redact(f"{exc.ename}: {exc.evalue}")
        error = StepFailed(
            step.name,
            str(output),
            cause,
            cell=exc.exec_count,
            hint=f"read the notebook or html/{step.name}.html",
            # the error's class, from the kernel's error output: a refusal raised before any change
            server_changed=False if raised_before_any_change(exc.ename) else None,
        )
    except OpsError:
        raise
    except Exception as exc:  # the kernel could not start, died, or papermill itself failed
        cause = credentials.redact(f"{type(exc).__name__}: {exc}")
        if not output.exists():  # papermill saves only at the end: keep the named notebook real
            write_unexecuted(source, output, passed)
        if step.writes_rollback_before and not ctx.dry_run:
            cause += f" — read back now: {ctx.production_now()}"
        error = StepFailed(step.name, str(output), cause)
    redacted = render.redact_notebook(output)
    # Rendered in the background while the next kernel starts (waited for before finalizing).
    later = render.render_later(output, ctx.run_dir / "html" / f"{step.name}.html")
    facts = evidence.read_facts(output) if error is None and output.exists() else {}
    return StepOutcome(facts, error, time.monotonic(), {"redacted": redacted}, later)


def write_unexecuted(source: Path, output: Path, passed: dict[str, Any]) -> None:
    """The step's notebook with its parameters and no outputs (its kernel died before papermill saved)."""
    from papermill.iorw import load_notebook_node, write_ipynb
    from papermill.parameterize import parameterize_notebook

    with contextlib.suppress(Exception):
        write_ipynb(parameterize_notebook(load_notebook_node(str(source)), passed), str(output))


class KernelEngine:
    """papermill with a fresh Jupyter kernel per step (the next one started while this step runs).

    A context manager: leaving it stops the kernel started ahead for a step that did not come."""

    name = "kernel"

    def __init__(self) -> None:
        self.kernels: Kernels | None = None

    def __enter__(self) -> KernelEngine:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.kernels is not None:
            self.kernels.__exit__(exc_type, exc, tb)

    def execute(self, step: Step, ctx: RunContext, passed: dict[str, Any]) -> StepOutcome:
        if self.kernels is None:
            self.kernels = Kernels(ctx.params.base_dir)
        kernel = self.kernels.take()
        following = ctx.next_step()
        if following is not None and not following.in_process:
            self.kernels.prestart()  # boots while this step runs
        failed = True
        try:
            outcome = run_notebook(step, ctx, passed, km=kernel)
            failed = outcome.error is not None
            return outcome
        finally:
            # After a failure the kernel exits gracefully: its open connection's atexit close
            # removes the remote temp folder (a successful step closed it already).
            self.kernels.stop(kernel, graceful=failed)


class InProcessEngine:
    """papermill with :mod:`.inprocess`'s engine: the cells run in one IPython shell of this process."""

    name = "inprocess"

    def execute(self, step: Step, ctx: RunContext, passed: dict[str, Any]) -> StepOutcome:
        return run_notebook(step, ctx, passed, engine_name=register_inprocess())


class RunnerEngine:
    """A step the runner runs itself (no notebook): its facts go into run.json as a notebook's would."""

    name = "runner"

    def execute(self, step: Step, ctx: RunContext, passed: dict[str, Any]) -> StepOutcome:
        try:
            return StepOutcome(ctx.in_process[step.name](ctx))
        except OpsError as exc:
            cause = f"{type(exc).__name__}: {exc}"
            changed = False if exc.before_any_change else None
            return StepOutcome(
                error=StepFailed(step.name, str(ctx.run_dir / "run.json"), cause, server_changed=changed)
            )


# --- the registry -----------------------------------------------------------------------------------

ENGINES: dict[str, type[StepEngine]] = {
    KernelEngine.name: KernelEngine,
    InProcessEngine.name: InProcessEngine,
    RunnerEngine.name: RunnerEngine,
}
NOTEBOOK_ENGINES = (KernelEngine.name, InProcessEngine.name)  # what may run a run's notebooks


def engine_name(given: str | None = None) -> str:
    """The notebook engine of a run: ``given``, else ``$OPSLIB_STEP_ENGINE``, else ``kernel``;
    :class:`UsageError` for a name that runs no notebook."""
    name = (given or os.environ.get(ENGINE_ENV) or DEFAULT_ENGINE).strip()
    if name not in NOTEBOOK_ENGINES:
        source = "engine" if given else ENGINE_ENV
        raise UsageError(
            f"{source}: no notebook engine {name!r}",
            hint=f"the notebook engines are {', '.join(NOTEBOOK_ENGINES)}",
        )
    return name


def engine_for(name: str) -> StepEngine:
    """A new engine of the registry (:data:`ENGINES`) by name."""
    try:
        return ENGINES[name]()
    except KeyError:
        raise UsageError(f"no step engine {name!r}", hint=f"the engines are {', '.join(ENGINES)}") from None
