"""Run, resume and summarize a renewal (or a rollback): the step notebooks in order, with the evidence.

``run(params_path)`` validates the parameters file, checks that every secret reference resolves,
takes a lock for the host and site (:mod:`.lock`), creates the run folder
(:func:`opslib.evidence.new_run`) and runs the steps of :mod:`.steps`, one kernel each (:mod:`.kernels`).

Each notebook gets only the parameters its ``parameters`` cell declares (papermill's
``inspect_notebook``) — secrets only as references — plus the facts its step declares it consumes
(:func:`.steps.notebook_parameters`; a fact never silently replaces an operator parameter). After
each step the runner updates ``run.json``, renders ``html/<step>.html`` (:mod:`.render`), and after
the step that ``writes_rollback`` (also a failed one) writes ``rollback.yaml`` (:mod:`.rollback`):
``opslib run rollback.yaml`` (``mode: rollback``) runs only the rollback steps.

The first failure stops the run (:class:`RunFailed`, a :class:`opslib.errors.StepFailed`: the
step, the failing cell, the notebook, and the operator's last lines — what production serves now,
what changed so far, the exact next command); the evidence is finalized in every case. A finalized
``run.json`` is never written again: ``resume`` and ``rollback`` (:mod:`.recovery`) start new,
chained run folders through :func:`launch`. The console shows one line per step
(:mod:`.console`); ``verbose`` adds papermill's cell progress.
``benchmarks/run_overhead.py`` measures what the runner costs.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import backup, credentials, evidence, preflight
from .. import params as params_
from ..errors import OpsError, ParameterError, StepFailed, UsageError
from . import console, render, signals
from . import failure as failure_
from .kernels import KERNEL, Kernels
from .lock import locked
from .rollback import write_rollback
from .steps import Step, consumed_facts, notebook_parameters, steps_for

CELL_TIMEOUT_S = 900  # one cell; the transport has its own, shorter, per-command deadlines
_NOTEBOOKS_ENV = "OPSLIB_NOTEBOOKS"  # override the notebook folder (an installed kit, a test)


def notebooks_dir() -> Path:
    """Where the step notebooks live (``$OPSLIB_NOTEBOOKS``, else the kit's ``notebooks/``)."""
    override = os.environ.get(_NOTEBOOKS_ENV)
    return Path(override) if override else Path(__file__).resolve().parents[2] / "notebooks"


def declared_parameters(notebook: Path) -> dict[str, dict[str, Any]]:
    """The parameters a notebook's ``parameters`` cell declares (papermill's inspection)."""
    import papermill

    return dict(papermill.inspect_notebook(str(notebook)))


# --- the public verbs ------------------------------------------------------------------------


def run(
    params_path: str | os.PathLike[str],
    *,
    evidence_root: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
    yes: bool = False,
    steps: str | Sequence[str] | None = None,
    verbose: bool = False,
    break_lock: bool = False,
) -> int:
    """Run a renewal (or, for ``mode: rollback``, a rollback) from a parameters file.

    Returns 0 on success. Raises :class:`UsageError`/:class:`ParameterError` (exit 2) before
    anything is contacted, :class:`RunLocked` when another run holds the host and site, and
    :class:`StepFailed` (exit 1) after the evidence of a failed run has been finalized.
    """
    params = params_.load(params_path)
    selected = _select(steps_for(params.mode), steps)
    root = _evidence_root(evidence_root, params)
    fields: dict[str, Any] = {"parameters_file": str(Path(params_path).resolve()), "mode": params.mode}
    if params.mode == params_.ROLLBACK:
        fields["rolls_back"] = _link(root, str(params.get("rollback.run_id")))
    return launch(
        Launch(
            params,
            root,
            selected,
            dry_run=dry_run,
            yes=yes,
            verbose=verbose,
            fields=fields,
            break_lock=break_lock,
        )
    )


@dataclass
class Launch:
    """One new run folder: what :func:`launch` needs (a run, a resume, a rollback)."""

    params: params_.Parameters
    root: Path
    steps: Sequence[Step]
    dry_run: bool = False
    yes: bool = False
    verbose: bool = False
    break_lock: bool = False  # break the server's renewal lock another run holds (recorded)
    fields: dict[str, Any] = field(default_factory=dict)  # more run.json fields (mode, resumes, …)
    facts: dict[str, Any] = field(default_factory=dict)  # carried forward from the run resumed
    carried: list[tuple[Step, dict[str, Any]]] = field(default_factory=list)  # its steps and their facts
    in_process: dict[str, Callable[[_Context], dict[str, Any]]] = field(default_factory=dict)
    root_backups: list[Path] = field(default_factory=list)  # rollback --roots: the .reg files it imports
    # Called under the lock before the new folder exists (the hmac key given); returns more fields.
    prepare: Callable[[bytes | None], dict[str, Any]] | None = None
    # A resume: the run folder whose probe (capabilities.json) the new run reuses instead of probing again.
    probe_from: Path | None = None
    # A resume: the run it continues, whose temp folders left on the server this run removes.
    resumed: Path | None = None


def launch(spec: Launch) -> int:
    """Check everything that can be checked before contacting the server, take the lock, create a new
    chained run folder and run ``spec.steps`` in it."""
    params, selected = spec.params, list(spec.steps)
    _refuse_unconfirmable(selected, dry_run=spec.dry_run, yes=spec.yes)
    env = _resolve_secrets(params)
    hmac_key = _hmac_key(params, env)
    _check_backup_directory(params, spec.root, selected)
    notebooks = _check_notebooks([s for s in selected if not s.in_process])
    with locked(spec.root, params.host, params.site):
        preflight.check_inputs(params, steps=[s.name for s in selected], prompted=env)
        fields = {**spec.fields, **(spec.prepare(hmac_key) if spec.prepare else {})}
        run_dir = evidence.new_run(
            spec.root,
            host=params.host,
            site=params.site,
            parameters=params.data,
            operator=_operator(),
            dry_run=spec.dry_run,
            now_utc=_now(),
            tls_validation=str(params.get("winrm.server_cert_validation")),
        )
        print(f"opslib: run folder {run_dir}", file=sys.stderr)
        if spec.probe_from is not None:
            fields = {**fields, **_reuse_probe(spec.probe_from, run_dir)}
        if spec.resumed is not None:
            _inherit_leftovers(spec.resumed, run_dir, url=str(params.get("winrm.url") or ""))
        evidence.update_run(run_dir, **fields)
        ctx = _Context(
            run_dir,
            params,
            notebooks,
            dry_run=spec.dry_run,
            yes=spec.yes,
            env=env,
            hmac_key=hmac_key,
            verbose=spec.verbose,
            mode=str(fields.get("mode") or params.mode),
            carried=list(spec.carried),
            in_process=dict(spec.in_process),
            root_backups=list(spec.root_backups),
        )
        if spec.facts:
            ctx.facts = dict(spec.facts)
            evidence.update_run(run_dir, facts=ctx.facts)
        for step, _ in spec.carried:  # the resumed run swapped already: its undo belongs here too
            if step.writes_rollback and not spec.dry_run:
                ctx._write_rollback(step)
        resumes = fields.get("resumes") if isinstance(fields.get("resumes"), dict) else {}
        ctx.server_lock = ctx.hold_server_lock(
            break_lock=spec.break_lock, resumes=str((resumes or {}).get("run_id") or "")
        )
        return ctx.execute(selected)


def _inherit_leftovers(earlier: Path, run_dir: Path, *, url: str) -> None:
    """The temp folders the resumed run left on the server (its transcript: created, never read back as
    removed): the new run's first connection removes them (``connection.json`` ``inherited_folders``)."""
    from ..winrm import STATE_FILE
    from ..winrm.transcript import stale_temp_dirs

    folders = stale_temp_dirs(earlier / "transcript.jsonl")
    if folders and url:
        state = {"url": url, "inherited_folders": folders}
        (run_dir / STATE_FILE).write_text(
            json.dumps(state, indent=1, sort_keys=True) + "\n", encoding="utf-8"
        )


def _reuse_probe(earlier: Path, run_dir: Path) -> dict[str, Any]:
    """Copy the capabilities an earlier run of the same server probed (a resume, same connection
    parameters): the steps read them instead of probing again (``Server`` still checks the URL)."""
    from ..server.session import CAPABILITIES_FILE

    source = earlier / CAPABILITIES_FILE
    if not source.is_file():
        return {}
    (run_dir / CAPABILITIES_FILE).write_bytes(source.read_bytes())
    return {"capabilities_from": {"run_id": earlier.name, "sha256": evidence.sha256_file(source)}}


def summarize(run_dir: str | os.PathLike[str]) -> str:
    """A short text summary of a run: steps with status and duration, the key facts."""
    m = _read_manifest(Path(run_dir))
    facts = m.get("facts") or {}
    mode = str(m.get("mode") or "")
    kind = " (dry run)" if m.get("dry_run") else (f" ({mode})" if mode in ("resume", "rollback") else "")
    lines = [f"run {m.get('run_id', Path(run_dir).name)}: {m.get('status')}{kind}"]
    resumed = m.get("resumes") if isinstance(m.get("resumes"), dict) else None
    if resumed:
        carried = ", ".join(resumed.get("steps") or []) or "none"
        lines.append(f"  resumes run {resumed.get('run_id')} (steps done there: {carried})")
    for s in m.get("steps", []):
        duration = s.get("duration_s")
        took = f"{duration:6.1f} s" if isinstance(duration, int | float) else "      -"
        lines.append(f"  {s.get('name', '?'):<26} {s.get('status', '?'):<10} {took}")
    if facts.get("restored_thumbprint"):
        lines.append(
            f"  certificate put back: {facts['restored_thumbprint']} (until {facts.get('restored_not_after_utc') or '?'})"
            f", taken off: {facts.get('replaced_thumbprint') or '?'}"
        )
    if facts.get("roots_restored"):
        lines.append(
            f"  roots re-enabled: {', '.join(str(r.get('target')) for r in facts['roots_restored'])}"
        )
    if facts.get("old_thumbprint") or facts.get("new_thumbprint"):
        old = facts.get("old_thumbprint") or facts.get("production_thumbprint_before") or "?"
        until = facts.get("old_not_after_utc") or facts.get("production_not_after_utc_before") or "?"
        lines.append(
            f"  certificate: {old} (until {until})"
            f"\n            → {facts.get('new_thumbprint', '?')} (until {facts.get('new_not_after_utc', '?')})"
        )
    if facts.get("backup_file"):
        lines.append(f"  backup: {facts['backup_file']} (sha256 {facts.get('backup_sha256', '?')})")
    lines += [f"  STILL ON THE SERVER: {advice}" for advice in _left_on_server(Path(run_dir), facts)]
    if m.get("error"):
        lines.append(f"  error: {m['error']}")
    lines.append(f"  evidence: {Path(run_dir).resolve()}")
    return "\n".join(lines)


class RunFailed(StepFailed):
    """A step failed and the run's evidence is closed; ``recovery`` holds the operator's last lines
    (what production serves now, what changed so far, the exact next command)."""

    def __init__(self, failure: StepFailed, recovery: Sequence[str]) -> None:
        super().__init__(failure.step, failure.notebook, failure.cause, cell=failure.cell, hint=failure.hint)
        self.recovery = tuple(recovery)


def _left_on_server(run_dir: Path, facts: dict[str, Any]) -> list[str]:
    """What the run could not prove removed from the server (issue 13): the facts' ``remote_left`` and
    the temp folders the transcript shows created and never read back as gone; with what to do."""
    from ..winrm.transcript import stale_temp_dirs
    from ..winrm.transfer import leftover_advice

    left = [str(p) for p in facts.get("remote_left") or [] if isinstance(p, str)]
    left += stale_temp_dirs(run_dir / "transcript.jsonl")
    left += _inherited_left(run_dir)
    return [leftover_advice(p) for p in dict.fromkeys(left)]


def _connection_state(run_dir: Path) -> dict[str, Any]:
    """``<run_dir>/connection.json`` (what the run's connections share; {} when absent or unreadable)."""
    from ..winrm import STATE_FILE

    try:
        state = json.loads((run_dir / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _inherited_left(run_dir: Path) -> list[str]:
    """The resumed run's folders this run could not prove removed (``connection.json``)."""
    folders = _connection_state(run_dir).get("inherited_folders")
    return [f for f in folders or [] if isinstance(f, str) and f] if isinstance(folders, list) else []


# --- one run, step by step -------------------------------------------------------------------


@dataclass
class _Context:
    run_dir: Path
    params: params_.Parameters
    notebooks: dict[str, tuple[Path, dict[str, dict[str, Any]]]]
    dry_run: bool
    yes: bool
    env: dict[str, str]
    facts: dict[str, Any] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    renders: list[Future[None]] = field(default_factory=list)
    ask: Callable[[str], str] = input
    hmac_key: bytes | None = field(default=None, repr=False)  # evidence.hmac_key, resolved
    verbose: bool = False  # papermill's cell progress on the console
    mode: str = params_.RENEW  # run.json's mode: renew | rollback | resume
    carried: list[tuple[Step, dict[str, Any]]] = field(default_factory=list)  # steps a resumed run did
    in_process: dict[str, Callable[[_Context], dict[str, Any]]] = field(default_factory=dict)
    done: list[tuple[Step, dict[str, Any]]] = field(default_factory=list)  # this run's succeeded steps
    root_backups: list[Path] = field(default_factory=list)  # rollback --roots: the .reg files it imports
    serving: console.Serving | None = None  # after a failure: what production serves now
    _index: int = 0  # the step running now, 1-based, and how many this run runs (console lines)
    _total: int = 0
    server_lock: contextlib.AbstractContextManager[Any] = field(default_factory=contextlib.nullcontext)

    def execute(self, steps: list[Step]) -> int:
        evidence.update_run(self.run_dir, selected_steps=[s.name for s in steps] or None)
        failure: OpsError | None = None
        self._total = len(steps)
        try:
            with (
                _environment(self.env),
                self._run_folder(),
                self.server_lock,
                Kernels(self.params.base_dir) as kernels,
            ):
                for n, step in enumerate(steps):
                    self._index = n + 1
                    passed = self.notebook_inputs(step)  # before asking: a contradiction stops the run here
                    if step.needs_confirmation and not self.dry_run and not self.yes:
                        self._confirm(step)
                    if step.in_process:
                        self._run_in_process(step)
                        continue
                    if step.writes_rollback_before and not self.dry_run:
                        self._write_rollback(step)  # before the swap starts: the undo exists whatever happens
                    kernel = kernels.take()
                    if n + 1 < len(steps) and not steps[n + 1].in_process:
                        kernels.prestart()  # boots while this step runs
                    ok = False
                    guard = signals.guard_for(step, dry_run=self.dry_run)
                    try:
                        with guard:  # SIGINT/SIGHUP/SIGTERM wait until the step's notebook has ended
                            self._run_step(step, kernel, passed)
                        ok = True
                    finally:
                        # After a failure the kernel exits gracefully: its open connection's atexit
                        # close removes the remote temp folder (a successful step closed it already).
                        kernels.stop(kernel, graceful=not ok)
                        # Also after a failed swap: its check names this file as the undo.
                        if step.writes_rollback and not self.dry_run:
                            self._write_rollback(step)
                    guard.check(where=f"after step {step.name}", hint=signals.next_command(self.run_dir))
        except OpsError as exc:
            failure = exc
        except KeyboardInterrupt:  # outside a guarded step (e.g. at the confirmation question)
            failure = signals.Interrupted(2, hint=signals.next_command(self.run_dir))
        except BaseException as exc:  # a dead kernel …: still close the evidence
            lines = self._close(
                status="failed", error=f"{type(exc).__name__}: {credentials.redact(str(exc))}"
            )
            print("\n".join(lines), file=sys.stderr, flush=True)
            raise
        if failure is not None:
            failed_step = failure.step if isinstance(failure, StepFailed) else None
            if isinstance(failure, signals.Interrupted):  # run.json says so; status stays one of STATUSES
                evidence.update_run(self.run_dir, interrupted={"signal": signals.signal_name(failure.signum)})
            if isinstance(failure, StepFailed):
                failure = failure_.advise(failure, self._situation())
            lines = self._close(
                status="failed", error=credentials.redact(str(failure)), failed_step=failed_step
            )
            if isinstance(failure, StepFailed):
                raise RunFailed(failure, lines) from None
            print("\n".join(lines), file=sys.stderr, flush=True)  # the error itself follows
            raise failure
        self._close(status="succeeded", error=None)
        return 0

    @contextlib.contextmanager
    def _run_folder(self) -> Iterator[None]:
        """At the end of the run, remove the run's temp folder on the server (read back) when a
        connection of the run left one (``connection.json``: a dry run, or a failed lock release); the
        lock release removes it on its own connection otherwise."""
        try:
            yield
        finally:
            from ..winrm import connect_params

            named = _connection_state(self.run_dir).get("work_dir")
            if named:
                try:
                    winrm = self.operator_values()["winrm"]
                    with connect_params(winrm, host=self.params.host, run_dir=str(self.run_dir)) as conn:
                        conn.finish_run()
                except OpsError as exc:  # named in run.json's left_on_server (no read-back in the transcript)
                    print(f"opslib: could not remove the run's temp folder {named} ({exc})", flush=True)

    def hold_server_lock(
        self, *, break_lock: bool, resumes: str = ""
    ) -> contextlib.AbstractContextManager[Any]:
        """The server's renewal lock (:mod:`opslib.server.lock`) for this run; none in a dry run."""
        if self.dry_run:
            return contextlib.nullcontext()
        from ..server import renewal_lock as server_lock
        from ..winrm import connect_params

        winrm, run_dir = self.operator_values()["winrm"], str(self.run_dir)
        return server_lock.hold(
            lambda: connect_params(winrm, host=self.params.host, run_dir=run_dir),
            host=self.params.host,
            run_dir=self.run_dir,
            operator=_operator(),
            break_lock=break_lock,
            resumes=resumes,
            record=lambda **fields: evidence.update_run(self.run_dir, **fields),
        )

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

    def _new_record(self, step: Step) -> dict[str, Any]:
        record: dict[str, Any] = {
            "name": step.name,
            "title": step.title,  # Japanese / English, as the console and the renders show it
            "notebook": "" if step.in_process else step.notebook,
            "status": "running",
            "started_utc": _iso(_now()),
            "finished_utc": None,
            "duration_s": None,
            "facts": {},
            "error": None,
        }
        self.records.append(record)
        evidence.update_run(self.run_dir, steps=self.records)
        return record

    def _finish(
        self, step: Step, record: dict[str, Any], t0: float, error: StepFailed | None, facts: dict[str, Any]
    ) -> None:
        record.update(finished_utc=_iso(_now()), duration_s=round(time.monotonic() - t0, 3))
        status = "failed" if error is not None else "succeeded"
        print(
            console.step_line(
                step, index=self._index, total=self._total, status=status, duration_s=record["duration_s"]
            ),
            file=sys.stderr,
            flush=True,
        )
        for ignored in facts.get("ca_certificates_ignored") or ():  # step 1: not on the new leaf's path
            print(
                f"opslib: warning: not installed (not on the new certificate's chain): "
                f"{ignored.get('certificate', '')} [{str(ignored.get('thumbprint', ''))[:8]}…]",
                file=sys.stderr,
                flush=True,
            )
        if error is not None:
            record.update(status="failed", error=str(error))
            evidence.update_run(self.run_dir, steps=self.records, failed_step=step.name)
            raise error
        record.update(status="succeeded", facts=facts)
        self.facts.update(facts)
        self.done.append((step, facts))
        evidence.update_run(self.run_dir, steps=self.records, facts=self.facts)

    def _run_in_process(self, step: Step) -> None:
        """A step the runner runs itself (no notebook): its facts go into run.json as a notebook's would."""
        record = self._new_record(step)
        t0 = time.monotonic()
        error: StepFailed | None = None
        facts: dict[str, Any] = {}
        try:
            facts = self.in_process[step.name](self)
        except OpsError as exc:
            error = StepFailed(step.name, str(self.run_dir / "run.json"), f"{type(exc).__name__}: {exc}")
        self._finish(step, record, t0, error, facts)

    def _run_step(self, step: Step, kernel: Any, passed: dict[str, Any]) -> None:
        import papermill
        from papermill.exceptions import PapermillExecutionError

        source = self.notebooks[step.name][0]
        output = self.run_dir / step.notebook
        record = self._new_record(step)
        t0 = time.monotonic()
        error: StepFailed | None = None
        try:
            papermill.execute_notebook(
                str(source),
                str(output),
                parameters=passed,
                kernel_name=KERNEL,
                progress_bar=self.verbose,  # the operator sees one line per step (console.step_line)
                log_output=self.verbose,
                cwd=str(self.params.base_dir),
                execution_timeout=CELL_TIMEOUT_S,
                # The notebook is written at the start, at the end and on a failure; not after every
                # cell (that write + validation cost ~0.1 s a cell). A cell running longer than 30 s
                # is still saved meanwhile (papermill's autosave_cell_every).
                request_save_on_cell_execute=False,
                km=kernel,
            )
        except PapermillExecutionError as exc:
            cause = credentials.redact(f"{exc.ename}: {exc.evalue}")
            error = StepFailed(
                step.name,
                str(output),
                cause,
                cell=exc.exec_count,
                hint=f"read the notebook or html/{step.name}.html",
            )
        except OpsError:
            raise
        except Exception as exc:  # the kernel could not start, died, or papermill itself failed
            cause = credentials.redact(f"{type(exc).__name__}: {exc}")
            if not output.exists():  # papermill saves only at the end: keep the named notebook real
                _write_unexecuted(source, output, passed)
            if step.writes_rollback_before and not self.dry_run:
                cause += f" — read back now: {self._production_now()}"
            error = StepFailed(step.name, str(output), cause)
        record["redacted"] = render.redact_notebook(output)
        # Rendered in the background while the next kernel starts (waited for before finalizing).
        self.renders.append(render.render_later(output, self.run_dir / "html" / f"{step.name}.html"))
        facts = evidence.read_facts(output) if error is None and output.exists() else {}
        self._finish(step, record, t0, error, facts)

    def _production_now(self) -> str:
        """What production serves now (after a dead step-2 kernel: the server finished the swap itself)."""
        from .. import open_server
        from ..ops import swap

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

    def env_references(self) -> dict[str, Any]:
        """Notebook values that replace ``prompt`` references (asked once, passed via the environment)."""
        out: dict[str, Any] = {}
        for key, var in self.env.items():
            if key == "winrm.password":
                out["winrm"] = {**self.params.data["winrm"], "password": f"env:{var}"}
            elif key == "backup.pfx_password":
                out["backup_pfx_password"] = f"env:{var}"
        return out

    def _write_rollback(self, step: Step) -> None:
        path = write_rollback(self.run_dir, self.params, step, self.facts)
        if path is not None:
            print(
                f"opslib: wrote {path} (opslib rollback {self.run_dir} puts the previous certificate back)",
                file=sys.stderr,
            )

    def _situation(self) -> failure_.Situation:
        return failure_.Situation(
            run_dir=self.run_dir,
            params=self.params,
            facts=self.facts,
            done=[*self.carried, *self.done],
            rollback=self.params.mode == params_.ROLLBACK or bool(self.in_process),
            dry_run=self.dry_run,
            yes=self.yes,
            root_backups=list(self.root_backups),
        )

    def _close(self, *, status: str, error: str | None, failed_step: str | None = None) -> list[str]:
        for future in self.renders:
            future.result()
        for record in self.records:
            if record.get("status") == "running":
                record.update(status="failed", error=error)
        failed = failed_step or next(
            (r["name"] for r in reversed(self.records) if r.get("status") == "failed"), None
        )
        lines: list[str] = []
        extra: dict[str, Any] = {}
        if status == "failed":
            lines, self.serving = failure_.recovery_lines(self._situation(), failed)
            extra["production_now"] = self.serving.facts()
        from ..winrm.transcript import channels, cleartext_acceptances

        transcript = self.run_dir / "transcript.jsonl"
        extra["channels"] = channels(
            transcript
        )  # what each connection ran over (TLS version, cipher, sealing)
        extra["cleartext_secrets_accepted"] = cleartext_acceptances(transcript)
        evidence.update_run(
            self.run_dir,
            status=status,
            error=error,
            failed_step=failed if status == "failed" else None,
            finished_utc=_iso(_now()),
            steps=self.records,
            facts=self.facts,
            **extra,
            left_on_server=_left_on_server(self.run_dir, self.facts),  # issue 13: read back, or named here
        )
        _write_report(self.run_dir)  # before finalizing: run.json's file hashes cover it
        evidence.finalize_run(self.run_dir, now_utc=_now(), hmac_key=self.hmac_key)
        print(summarize(self.run_dir), flush=True)
        if self.dry_run and status == "succeeded":
            print("\n".join(console.plan_lines([*self.carried, *self.done], self.facts)), flush=True)
        return lines


# --- checks before anything is contacted --------------------------------------------------------


def _select(all_steps: tuple[Step, ...], wanted: str | Sequence[str] | None) -> tuple[Step, ...]:
    if not wanted:
        return all_steps
    items = [w.strip() for w in (wanted.split(",") if isinstance(wanted, str) else wanted) if w.strip()]
    chosen: list[Step] = []
    for item in items:
        match = [
            s for s in all_steps if s.name == item or s.name.split("_")[0].lstrip("0") == item.lstrip("0")
        ]
        if not match:
            names = ", ".join(s.name for s in all_steps)
            raise UsageError(f"--steps: no step {item!r}; the steps are {names}")
        chosen.extend(m for m in match if m not in chosen)
    return tuple(s for s in all_steps if s in chosen)


def _refuse_unconfirmable(steps: Sequence[Step], *, dry_run: bool, yes: bool) -> None:
    if dry_run or yes or not any(s.needs_confirmation for s in steps):
        return
    if not sys.stdin or not sys.stdin.isatty():
        step = next(s for s in steps if s.needs_confirmation)
        raise UsageError(
            f"step {step.name} changes the production site and needs a confirmation, "
            "but standard input is not a terminal",
            hint="pass --yes to confirm in advance (or --dry-run to change nothing)",
        )


def _resolve_secrets(params: params_.Parameters) -> dict[str, str]:
    """Resolve every secret reference once (never printed); ``prompt`` answers go to the environment.

    Returns ``{key path: environment variable}`` for prompted secrets: the kernels inherit the
    environment and receive ``env:VAR`` instead of ``prompt`` (a kernel has no terminal).
    """
    env: dict[str, str] = {}
    for key, ref in params.secret_references().items():
        try:
            value = credentials.resolve(ref, purpose=key)
        except OpsError as exc:
            raise ParameterError(key, str(exc), source=params.source) from None
        if ref.startswith("prompt"):
            var = f"OPSLIB_PROMPTED_{key.replace('.', '_').upper()}"
            os.environ[var] = value
            env[key] = var
    return env


def _hmac_key(params: params_.Parameters, env: dict[str, str]) -> bytes | None:
    """The evidence HMAC key (``evidence.hmac_key``) for :func:`opslib.evidence.finalize_run`.

    Resolved once, held by the runner only: a prompted answer is taken back out of the environment
    (``env``) so that no kernel inherits it; no notebook ever receives it.
    """
    key = "evidence.hmac_key"
    reference = params.secret_references().get(key)
    if not reference:
        return None
    var = env.pop(key, None)
    value = os.environ.pop(var, "") if var else credentials.resolve(reference, purpose=key)
    return value.encode("utf-8")


def _check_backup_directory(params: params_.Parameters, root: Path, steps: Sequence[Step]) -> None:
    if params.mode != params_.RENEW or not any(s.writes_backup for s in steps):
        return
    problem = backup.folder_problem(params.path("backup.directory"), evidence_root=root)
    if problem:
        raise ParameterError("backup.directory", problem[0], source=params.source, hint=problem[1])


def _check_notebooks(steps: Sequence[Step]) -> dict[str, tuple[Path, dict[str, dict[str, Any]]]]:
    folder = notebooks_dir()
    out: dict[str, tuple[Path, dict[str, dict[str, Any]]]] = {}
    for step in steps:
        path = folder / step.notebook
        if not path.is_file():
            raise UsageError(
                f"notebook {path} is missing", hint=f"set {_NOTEBOOKS_ENV} to the kit's notebooks/"
            )
        out[step.name] = (path, declared_parameters(path))
    return out


def _evidence_root(given: str | os.PathLike[str] | None, params: params_.Parameters) -> Path:
    # Absolute from here on: papermill's cwd= changes this process's working directory while a step
    # runs, and renders are written from a thread meanwhile, so a relative path would point elsewhere.
    if given is not None:
        return Path(given).resolve()
    if params.mode == params_.ROLLBACK and (params.base_dir / "run.json").is_file():
        return params.base_dir.parent.resolve()  # rollback.yaml in a run folder: keep the evidence together
    return Path("evidence").resolve()


# --- small helpers -----------------------------------------------------------------------------


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    """Keep prompted secrets in the environment for the kernels, and drop them afterwards."""
    try:
        yield
    finally:
        for var in env.values():
            os.environ.pop(var, None)


def _link(root: Path, run_id: str) -> dict[str, Any]:
    """``{run_id, run_json_sha256}`` of a run of ``root`` as it is now (the hash None when it is missing)."""
    import hashlib

    path = root / run_id / "run.json"
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    return {"run_id": run_id, "run_json_sha256": digest}


def _write_report(run_dir: Path) -> None:
    """The auditor's report (``report.html``, :mod:`opslib.evidence.report`); a failure to write it
    never stops the evidence from being finalized."""
    from ..evidence.report import write_report

    try:
        write_report(run_dir, before_finalizing=True)
    except Exception as exc:  # the report is a reading aid; the notebooks and run.json are the evidence
        print(f"opslib: could not write the report ({type(exc).__name__}: {exc})", file=sys.stderr)


def _write_unexecuted(source: Path, output: Path, passed: dict[str, Any]) -> None:
    """The step's notebook with its parameters and no outputs (its kernel died before papermill saved)."""
    from papermill.iorw import load_notebook_node, write_ipynb
    from papermill.parameterize import parameterize_notebook

    with contextlib.suppress(Exception):
        write_ipynb(parameterize_notebook(load_notebook_node(str(source)), passed), str(output))


def _read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / "run.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{folder}: no run.json here; give the run folder of an earlier run") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot read it ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: not a run manifest")
    return data


def _operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
