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

The first failure stops the run (:class:`opslib.errors.StepFailed`: the step, the failing cell,
the notebook); the evidence is finalized in every case. ``resume(run_dir)`` continues from the
failed step in the same folder (a failed attempt's notebook and render move to ``attempts/``).
``benchmarks/run_overhead.py`` measures what the runner costs.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import shutil
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
from . import render
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
) -> int:
    """Run a renewal (or, for ``mode: rollback``, a rollback) from a parameters file.

    Returns 0 on success. Raises :class:`UsageError`/:class:`ParameterError` (exit 2) before
    anything is contacted, :class:`RunLocked` when another run holds the host and site, and
    :class:`StepFailed` (exit 1) after the evidence of a failed run has been finalized.
    """
    params = params_.load(params_path)
    selected = _select(steps_for(params.mode), steps)
    root = _evidence_root(evidence_root, params)
    _refuse_unconfirmable(selected, dry_run=dry_run, yes=yes)
    env = _resolve_secrets(params)
    hmac_key = _hmac_key(params, env)
    _check_backup_directory(params, root, selected)
    notebooks = _check_notebooks(selected)
    with locked(root, params.host, params.site):
        preflight.check_inputs(params, steps=[s.name for s in selected], prompted=env)
        run_dir = evidence.new_run(
            root,
            host=params.host,
            site=params.site,
            parameters=params.data,
            operator=_operator(),
            dry_run=dry_run,
            now_utc=_now(),
            tls_validation=str(params.get("winrm.server_cert_validation")),
        )
        print(f"opslib: run folder {run_dir}", file=sys.stderr)
        evidence.update_run(run_dir, parameters_file=str(Path(params_path).resolve()), mode=params.mode)
        ctx = _Context(run_dir, params, notebooks, dry_run=dry_run, yes=yes, env=env, hmac_key=hmac_key)
        return ctx.execute(list(selected))


def resume(run_dir: str | os.PathLike[str], *, yes: bool = False) -> int:
    """Continue a failed run from its failed step, in the same run folder."""
    folder = Path(run_dir).resolve()  # absolute: see _evidence_root
    manifest = _read_manifest(folder)
    if manifest.get("status") == "succeeded":
        raise UsageError(f"{folder}: this run succeeded; there is nothing to resume")
    params_file = manifest.get("parameters_file") or str(folder / "run.json")
    params = params_.validate(
        manifest.get("parameters") or {},
        source=str(folder / "run.json"),
        base_dir=Path(params_file).parent,
    )
    dry_run = bool(manifest.get("dry_run"))
    done = {s["name"] for s in manifest.get("steps", []) if s.get("status") == "succeeded"}
    remaining = [s for s in steps_for(params.mode) if s.name not in done]
    wanted = manifest.get("selected_steps")
    if wanted:
        remaining = [s for s in remaining if s.name in wanted]
    if not remaining:
        raise UsageError(f"{folder}: every step already succeeded; there is nothing to resume")
    _refuse_unconfirmable(remaining, dry_run=dry_run, yes=yes)
    env = _resolve_secrets(params)
    hmac_key = _hmac_key(params, env)
    root = folder.resolve().parent
    _check_backup_directory(params, root, remaining)
    notebooks = _check_notebooks(remaining)
    with locked(root, params.host, params.site):
        preflight.check_inputs(params, steps=[s.name for s in remaining], prompted=env)
        _archive_failed_attempts(folder, manifest)
        print(f"opslib: resuming {folder} at {remaining[0].name}", file=sys.stderr)
        evidence.update_run(folder, status="running", failed_step=None, error=None, finished_utc=None)
        ctx = _Context(folder, params, notebooks, dry_run=dry_run, yes=yes, env=env, hmac_key=hmac_key)
        ctx.facts = dict(manifest.get("facts") or {})
        ctx.records = list(_read_manifest(folder).get("steps", []))
        return ctx.execute(remaining)


def summarize(run_dir: str | os.PathLike[str]) -> str:
    """A short text summary of a run: steps with status and duration, the key facts."""
    m = _read_manifest(Path(run_dir))
    facts = m.get("facts") or {}
    lines = [
        f"run {m.get('run_id', Path(run_dir).name)}: {m.get('status')}{' (dry run)' if m.get('dry_run') else ''}"
    ]
    for s in m.get("steps", []):
        duration = s.get("duration_s")
        took = f"{duration:6.1f} s" if isinstance(duration, int | float) else "      -"
        lines.append(f"  {s.get('name', '?'):<26} {s.get('status', '?'):<10} {took}")
    if facts.get("old_thumbprint") or facts.get("new_thumbprint"):
        lines.append(
            f"  certificate: {facts.get('old_thumbprint', '?')} (until {facts.get('old_not_after_utc', '?')})"
            f"\n            → {facts.get('new_thumbprint', '?')} (until {facts.get('new_not_after_utc', '?')})"
        )
    if facts.get("backup_file"):
        lines.append(f"  backup: {facts['backup_file']} (sha256 {facts.get('backup_sha256', '?')})")
    lines += [f"  STILL ON THE SERVER: {advice}" for advice in _left_on_server(Path(run_dir), facts)]
    if m.get("error"):
        lines.append(f"  error: {m['error']}")
    lines.append(f"  evidence: {Path(run_dir).resolve()}")
    return "\n".join(lines)


def _left_on_server(run_dir: Path, facts: dict[str, Any]) -> list[str]:
    """What the run could not prove removed from the server (issue 13): the facts' ``remote_left`` and
    the temp folders the transcript shows created and never read back as gone; with what to do."""
    from ..winrm.transcript import stale_temp_dirs
    from ..winrm.transfer import leftover_advice

    left = [str(p) for p in facts.get("remote_left") or [] if isinstance(p, str)]
    left += stale_temp_dirs(run_dir / "transcript.jsonl")
    return [leftover_advice(p) for p in dict.fromkeys(left)]


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

    def execute(self, steps: list[Step]) -> int:
        evidence.update_run(self.run_dir, selected_steps=[s.name for s in steps] or None)
        failure: OpsError | None = None
        try:
            with _environment(self.env), Kernels(self.params.base_dir) as kernels:
                for n, step in enumerate(steps):
                    passed = self.notebook_inputs(step)  # before asking: a contradiction stops the run here
                    if step.needs_confirmation and not self.dry_run and not self.yes:
                        self._confirm(step)
                    kernel = kernels.take()
                    if n + 1 < len(steps):
                        kernels.prestart()  # boots while this step runs
                    ok = False
                    try:
                        self._run_step(step, kernel, passed)
                        ok = True
                    finally:
                        # After a failure the kernel exits gracefully: its open connection's atexit
                        # close removes the remote temp folder (a successful step closed it already).
                        kernels.stop(kernel, graceful=not ok)
                        # Also after a failed swap: its check names this file as the undo.
                        if step.writes_rollback and not self.dry_run:
                            self._write_rollback(step)
        except OpsError as exc:
            failure = exc
        except BaseException as exc:  # KeyboardInterrupt, a dead kernel …: still close the evidence
            self._close(status="failed", error=f"{type(exc).__name__}: {credentials.redact(str(exc))}")
            raise
        if failure is not None:
            failed_step = failure.step if isinstance(failure, StepFailed) else None
            self._close(status="failed", error=credentials.redact(str(failure)), failed_step=failed_step)
            raise failure
        self._close(status="succeeded", error=None)
        return 0

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
        new = known.get(step.serves) or "?"
        question = (
            f"Step {step.name}: {step.title}\n"
            f"  site {site} on {self.params.host} will serve certificate {new}.\n"
            "Type yes to go on: "
        )
        answer = self.ask(question).strip().lower()
        if answer not in ("yes", "y", "はい"):
            raise StepFailed(
                step.name,
                str(self.run_dir / step.notebook),
                "not started: the operator did not confirm",
                hint=f"nothing was changed by this step; continue with: opslib resume {self.run_dir}",
            )

    def _run_step(self, step: Step, kernel: Any, passed: dict[str, Any]) -> None:
        import papermill
        from papermill.exceptions import PapermillExecutionError

        source = self.notebooks[step.name][0]
        output = self.run_dir / step.notebook
        started = _now()
        fresh: dict[str, Any] = {
            "name": step.name,
            "notebook": step.notebook,
            "status": "running",
            "started_utc": _iso(started),
            "finished_utc": None,
            "duration_s": None,
            "facts": {},
            "error": None,
        }
        record = next((r for r in self.records if r.get("name") == step.name), None)
        if record is None:
            record = fresh
            self.records.append(record)
        else:  # a resumed step: keep what the failed attempt left, then start afresh
            earlier = {k: record.get(k) for k in ("notebook", "status", "started_utc", "duration_s", "error")}
            record.update(fresh, attempts=[*record.get("attempts", []), earlier])
        evidence.update_run(self.run_dir, steps=self.records)
        print(
            f"opslib: step {step.name} — {step.title}{' (dry run)' if self.dry_run else ''}", file=sys.stderr
        )
        t0 = time.monotonic()
        error: StepFailed | None = None
        try:
            papermill.execute_notebook(
                str(source),
                str(output),
                parameters=passed,
                kernel_name=KERNEL,
                progress_bar=True,
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
                hint=f"read the notebook or html/{step.name}.html; fix the cause, then: opslib resume {self.run_dir}",
            )
        except OpsError:
            raise
        except Exception as exc:  # the kernel could not start, died, or papermill itself failed
            cause = credentials.redact(f"{type(exc).__name__}: {exc}")
            error = StepFailed(
                step.name, str(output), cause, hint=f"fix the cause, then: opslib resume {self.run_dir}"
            )
        finished = _now()
        record["redacted"] = render.redact_notebook(output)
        # Rendered in the background while the next kernel starts (waited for before finalizing).
        self.renders.append(render.render_later(output, self.run_dir / "html" / f"{step.name}.html"))
        record.update(finished_utc=_iso(finished), duration_s=round(time.monotonic() - t0, 3))
        if error is not None:
            record.update(status="failed", error=str(error))
            evidence.update_run(self.run_dir, steps=self.records, failed_step=step.name)
            raise error
        facts = evidence.read_facts(output) if output.exists() else {}
        record.update(status="succeeded", facts=facts)
        self.facts.update(facts)
        evidence.update_run(self.run_dir, steps=self.records, facts=self.facts)

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
                f"opslib: wrote {path} (opslib run {path} puts the previous certificate back)",
                file=sys.stderr,
            )

    def _close(self, *, status: str, error: str | None, failed_step: str | None = None) -> None:
        for future in self.renders:
            future.result()
        for record in self.records:
            if record.get("status") == "running":
                record.update(status="failed", error=error)
        failed = failed_step or next(
            (r["name"] for r in reversed(self.records) if r.get("status") == "failed"), None
        )
        evidence.update_run(
            self.run_dir,
            status=status,
            error=error,
            failed_step=failed if status == "failed" else None,
            finished_utc=_iso(_now()),
            steps=self.records,
            facts=self.facts,
            left_on_server=_left_on_server(self.run_dir, self.facts),  # issue 13: read back, or named here
        )
        evidence.finalize_run(self.run_dir, now_utc=_now(), hmac_key=self.hmac_key)
        print(summarize(self.run_dir), flush=True)


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


def _archive_failed_attempts(folder: Path, manifest: dict[str, Any]) -> None:
    """Keep a failed step's notebook and render: move them to ``attempts/`` before re-running it."""
    steps = manifest.get("steps", [])
    changed = False
    for record in steps:
        if record.get("status") == "succeeded" or str(record.get("notebook", "")).startswith("attempts/"):
            continue
        name = str(record.get("name"))
        attempt = len(record.get("attempts", [])) + 1
        attempts = folder / "attempts"
        attempts.mkdir(exist_ok=True)
        for src, suffix in (
            (folder / f"{name}.ipynb", ".ipynb"),
            (folder / "html" / f"{name}.html", ".html"),
        ):
            if src.exists():
                shutil.move(str(src), str(attempts / f"{name}.attempt{attempt}{suffix}"))
        record["notebook"] = f"attempts/{name}.attempt{attempt}.ipynb"
        changed = True
    if changed:
        evidence.update_run(folder, steps=steps)


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
