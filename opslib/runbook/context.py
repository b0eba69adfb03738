"""One run, step by step: :class:`RunContext` (what :func:`.run.launch` builds for a new run folder).

For each step it works out the notebook's parameters (:meth:`RunContext.notebook_inputs`), asks for a
confirmation when the step needs one, writes ``rollback.yaml`` around the step that swaps, holds
SIGINT/SIGHUP/SIGTERM while a step changes the server (:mod:`.signals`), and hands the step to an
engine (:mod:`.engines`: ``kernel``, ``inprocess``, or ``runner`` for the runner's own steps); the
record (:mod:`.record`) and the console line follow, whichever engine ran it. The run is wrapped in
the server's renewal lock and the end-of-run removal of its temp folder (:mod:`.chores`). The first
failure stops the run; the evidence is closed in every case.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import credentials
from .. import params as params_
from ..errors import OpsError, StepFailed
from ..ops import swap
from ..server import open_server
from ..text import escape_text
from ..winrm import Connection
from . import chores, console, signals
from . import failure as failure_
from .engines import DEFAULT_ENGINE, RunnerEngine, StepEngine, engine_for
from .record import DISK_ERRNOS, RunFailed, RunRecorder, operator, printable, summarize, write_failure
from .rollback import write_rollback
from .steps import Step, consumed_facts, notebook_parameters


@dataclass
class RunContext:
    """A run folder's run: its parameters, the facts so far, the steps done, the record."""

    run_dir: Path
    params: params_.Parameters
    notebooks: dict[
        str, tuple[Path, dict[str, dict[str, Any]]]
    ]  # step name → (notebook, declared parameters)
    dry_run: bool
    yes: bool
    env: dict[str, str]  # prompted secrets: {key path: environment variable}
    facts: dict[str, Any] = field(default_factory=dict)
    ask: Callable[[str], str] = input
    hmac_key: bytes | None = field(default=None, repr=False)  # evidence.hmac_key, resolved
    verbose: bool = False  # papermill's cell progress on the console
    mode: str = params_.RENEW  # run.json's mode: renew | rollback | resume
    carried: list[tuple[Step, dict[str, Any]]] = field(default_factory=list)  # steps a resumed run did
    in_process: dict[str, Callable[[RunContext], dict[str, Any]]] = field(default_factory=dict)
    done: list[tuple[Step, dict[str, Any]]] = field(default_factory=list)  # this run's succeeded steps
    root_backups: list[Path] = field(default_factory=list)  # rollback --roots: the .reg files it imports
    serving: console.Serving | None = None  # after a failure: what production serves now
    engine: str = DEFAULT_ENGINE  # the engine of the notebook steps (kernel | inprocess)
    server_lock: contextlib.AbstractContextManager[Any] = field(default_factory=contextlib.nullcontext)
    record: RunRecorder = field(init=False)
    _steps: list[Step] = field(default_factory=list)  # this run's steps, and the one running now (1-based)
    _index: int = 0
    _rollback_announced: bool = False  # "wrote rollback.yaml" is said once per run

    def __post_init__(self) -> None:
        self.record = RunRecorder(self.run_dir, hmac_key=self.hmac_key)

    def execute(self, steps: list[Step]) -> int:
        self.record.write(selected_steps=[s.name for s in steps] or None)
        failure: OpsError | None = None
        self._steps = list(steps)
        runner: StepEngine = RunnerEngine()
        try:
            with (
                _environment(self.env),
                chores.finish_run_folder(self.connector(), self.run_dir),
                self.server_lock,
                contextlib.ExitStack() as engines,
            ):
                notebooks = engine_for(self.engine)
                if isinstance(notebooks, contextlib.AbstractContextManager):
                    engines.enter_context(notebooks)  # the kernel engine stops a kernel started ahead
                for n, step in enumerate(steps):
                    self._index = n + 1
                    passed = self.notebook_inputs(step)  # before asking: a contradiction stops the run here
                    if step.needs_confirmation and not self.dry_run and not self.yes:
                        self._confirm(step)
                    if step.in_process:
                        self._run(step, runner, passed)
                        continue
                    if step.writes_rollback_before and not self.dry_run:
                        self.write_rollback_file(
                            step
                        )  # before the swap starts: the undo exists whatever happens
                    guard = signals.guard_for(step, dry_run=self.dry_run)
                    try:
                        with guard:  # SIGINT/SIGHUP/SIGTERM wait until the step's notebook has ended
                            self._run(step, notebooks, passed)
                    finally:
                        # Also after a failed swap: its check names this file as the undo.
                        if step.writes_rollback and not self.dry_run:
                            self.write_rollback_file(step)
                    guard.check(where=f"after step {step.name}", hint=signals.next_command(self.run_dir))
        except OpsError as exc:
            failure = exc
        except OSError as exc:  # the evidence folder (a notebook, a render) could not be written
            failure = self.record.write_failed or (
                write_failure(self.run_dir, exc) if exc.errno in DISK_ERRNOS else None
            )
            if failure is None:  # another OSError (a socket …): as below
                lines = self.close(
                    status="failed", error=f"{type(exc).__name__}: {credentials.redact(str(exc))}"
                )
                print("\n".join(lines), file=sys.stderr, flush=True)
                raise
        except KeyboardInterrupt:  # outside a guarded step (e.g. at the confirmation question)
            failure = signals.Interrupted(2, hint=signals.next_command(self.run_dir))
        except BaseException as exc:  # a dead kernel …: still close the evidence
            lines = self.close(status="failed", error=f"{type(exc).__name__}: {credentials.redact(str(exc))}")
            print("\n".join(lines), file=sys.stderr, flush=True)
            raise
        if failure is not None:
            failed_step = failure.step if isinstance(failure, StepFailed) else None
            if isinstance(failure, signals.Interrupted):  # run.json says so; status stays one of STATUSES
                self.record.write(interrupted={"signal": signals.signal_name(failure.signum)})
            if isinstance(failure, StepFailed):
                failure = failure_.advise(failure, self.situation())
            lines = self.close(
                status="failed", error=credentials.redact(str(failure)), failed_step=failed_step
            )
            if isinstance(failure, StepFailed):
                raise RunFailed(failure, lines) from None
            print("\n".join(lines), file=sys.stderr, flush=True)  # the error itself follows
            raise failure
        self.close(status="succeeded", error=None)
        return 0

    def _run(self, step: Step, engine: StepEngine, passed: dict[str, Any]) -> None:
        """One step on ``engine``: its record, the engine's outcome, the console line; raises its failure."""
        if step.changes_server and not self.dry_run:  # another run may have broken this run's lock
            chores.check_lock(self.connector(), host=self.params.host, run_dir=self.run_dir)
        record = self.record.open_step(step, engine=engine.name)
        t0 = time.monotonic()
        outcome = engine.execute(step, self, passed)
        record.update(outcome.record)
        if outcome.render is not None:
            self.record.renders.append(outcome.render)
        self.record.end_step(record, duration_s=outcome.ended - t0)
        error, facts = outcome.error, outcome.facts
        status = "failed" if error is not None else "succeeded"
        print(
            console.step_line(
                step,
                index=self._index,
                total=len(self._steps),
                status=status,
                duration_s=record["duration_s"],
            ),
            file=sys.stderr,
            flush=True,
        )
        ignored = list(facts.get("ca_certificates_ignored") or ())  # step 1: not on the new leaf's path
        if ignored:  # one line, however long the CA's file (a vendor bundle): the list is in run.json
            shown = "; ".join(
                # certificate text: control characters escaped before they reach the terminal
                f"{escape_text(i.get('certificate', ''), limit=300)} [{escape_text(str(i.get('thumbprint', ''))[:8])}…]"
                for i in ignored[:3]
            )
            more = f"; and {len(ignored) - 3} more" if len(ignored) > 3 else ""
            print(
                f"opslib: warning: {len(ignored)} CA certificate(s) of the file not installed (not on the new "
                f"certificate's chain; listed in run.json, facts.ca_certificates_ignored): {shown}{more}",
                file=sys.stderr,
                flush=True,
            )
        for line in [*(facts.get("verify_expected_warnings") or ()), *(facts.get("verify_expiring") or ())]:
            # step 4: what is wrong but expected (the cross certificate after --roots), expiring soon
            print(f"opslib: warning: {escape_text(str(line), limit=400)}", file=sys.stderr, flush=True)
        if error is not None:
            self.record.step_failed(record, error, step=step.name)
            raise error
        self.facts.update(facts)
        self.done.append((step, facts))
        self.record.step_succeeded(record, facts, all_facts=self.facts)

    def next_step(self) -> Step | None:
        """The step after the one running now (None for the last): a kernel for it boots meanwhile."""
        return self._steps[self._index] if self._index < len(self._steps) else None

    # --- the server ---

    def connector(self) -> Callable[[], Connection]:
        """Opens one more connection of this run (the runner's own: lock, temp folder, read-backs)."""
        return chores.connector(self.operator_values()["winrm"], host=self.params.host, run_dir=self.run_dir)

    def hold_server_lock(
        self, *, break_lock: bool, resumes: str = ""
    ) -> contextlib.AbstractContextManager[Any]:
        """The server's renewal lock (:mod:`opslib.server.renewal_lock`) for this run; none in a dry run."""
        if self.dry_run:
            return contextlib.nullcontext()
        return chores.hold_server_lock(
            self.connector(),
            host=self.params.host,
            run_dir=self.run_dir,
            operator=operator(),
            break_lock=break_lock,
            resumes=resumes,
            hmac_key=self.hmac_key,
        )

    def production_now(self) -> str:
        """What production serves now (after a dead step-2 kernel: the server finished the swap itself)."""
        try:
            values = self.operator_values()
            with open_server(values["winrm"], host=self.params.host, run_dir=str(self.run_dir)) as server:
                return swap.served_now(
                    server,
                    production_site=str(values.get("production_site") or self.params.site),
                    new_thumbprint=str(self.facts.get("new_thumbprint") or ""),
                    wait_s=300,
                )
        except OpsError as exc:
            return f"could not read the production site back ({credentials.redact(str(exc))})"

    # --- what the notebooks receive ---

    def operator_values(self) -> dict[str, Any]:
        """The operator's parameters as notebooks receive them (plus the runner's ``run_dir``, ``dry_run``)."""
        values = {
            **self.params.notebook_values(),
            "run_dir": str(self.run_dir.resolve()),
            "dry_run": self.dry_run,
        }
        values.update(self.env_references())
        return values

    def notebook_inputs(self, step: Step) -> dict[str, Any]:
        """What ``step``'s notebook receives: its declared parameters, from the operator's values and
        the facts the step consumes (:func:`.steps.notebook_parameters`; a contradiction is refused)."""
        declared = self.notebooks[step.name][1] if step.name in self.notebooks else {}
        return notebook_parameters(
            step, list(declared), self.operator_values(), self.facts, source=self.params.source
        )

    def env_references(self) -> dict[str, Any]:
        """Notebook values that replace ``prompt`` references (asked once, passed via the environment)."""
        out: dict[str, Any] = {}
        for key, var in self.env.items():
            if key == "winrm.password":
                out["winrm"] = {**self.params.data["winrm"], "password": f"env:{var}"}
            elif key == "backup.pfx_password":
                out["backup_pfx_password"] = f"env:{var}"
        return out

    def _confirm(self, step: Step) -> None:
        site = self.params.site
        known = {**self.operator_values(), **consumed_facts(step, self.facts)}
        if step.serves:
            what = (
                f"site {site} on {self.params.host} will serve certificate {known.get(step.serves) or '?'}."
            )
        else:
            what = f"{step.title_en} on {self.params.host}."
        question = f"Step {step.name}: {step.title}\n  {what}\nType yes to go on: "
        answer = self.ask(question).strip().lower()
        if answer not in ("yes", "y", "はい"):
            raise StepFailed(
                step.name,
                str(self.run_dir / step.notebook),
                "not started: the operator did not confirm",
                hint="nothing was changed by this step",
            )

    # --- the end ---

    def write_rollback_file(self, step: Step) -> None:
        """``rollback.yaml`` from ``step``'s declarations and the facts so far (:mod:`.rollback`)."""
        path = write_rollback(self.run_dir, self.params, step, self.facts)
        if path is not None and not self._rollback_announced:  # rewritten after later steps, said once
            self._rollback_announced = True
            print(
                f"opslib: wrote {path} (opslib rollback {self.run_dir} puts the previous certificate back)",
                file=sys.stderr,
            )

    def situation(self) -> failure_.Situation:
        return failure_.Situation(
            run_dir=self.run_dir,
            params=self.params,
            facts=self.facts,
            done=[*self.carried, *self.done],
            rollback=self.params.mode == params_.ROLLBACK or bool(self.in_process),
            dry_run=self.dry_run,
            yes=self.yes,
            root_backups=list(self.root_backups),
            refused_before_change=any(
                r.get("status") == "failed" and r.get("server_changed") is False for r in self.record.steps
            ),
        )

    def close(self, *, status: str, error: str | None, failed_step: str | None = None) -> list[str]:
        """Close the evidence (:meth:`.record.RunRecorder.close`), print the summary; after a failure
        returns the operator's last lines (what production serves now, the next command)."""
        self.record.wait_for_renders()
        self.record.stop_running(error)
        failed = failed_step or self.record.failed_step()
        lines: list[str] = []
        extra: dict[str, Any] = {}
        if status == "failed":
            situation = self.situation()
            lines, self.serving = failure_.recovery_lines(situation, failed)
            lines = [printable(line) for line in lines]  # server and certificate text, escaped
            extra["production_now"] = self.serving.facts()
            extra["next_commands"] = failure_.next_commands(situation, failed)  # for the report
            if failure_.changed_nothing(situation, failed):
                extra["changed_nothing"] = True  # resume then accepts any corrected key
        self.record.close(
            status=status,
            error=error,
            failed_step=failed,
            facts=self.facts,
            hmac_key=self.hmac_key,
            extra=extra,
        )
        print(summarize(self.run_dir), flush=True)
        if self.dry_run and status == "succeeded":
            print("\n".join(console.plan_lines([*self.carried, *self.done], self.facts)), flush=True)
        return lines


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    """Keep prompted secrets in the environment for the kernels, and drop them afterwards."""
    try:
        yield
    finally:
        for var in env.values():
            os.environ.pop(var, None)
