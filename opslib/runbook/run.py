"""Run a renewal (or a rollback): check everything that can be checked, then the steps in a new run folder.

``run(params_path)`` validates the parameters file, checks that every secret reference resolves,
takes the evidence folder's lock for the host and site (:mod:`.evidence_lock`), creates the run
folder (:func:`opslib.evidence.new_run`) and runs the steps of :mod:`.steps` in it
(:class:`.context.RunContext`), each on an engine (:mod:`.engines`: one kernel each by default).

Each notebook gets only the parameters its ``parameters`` cell declares (papermill's
``inspect_notebook``) — secrets only as references — plus the facts its step declares it consumes
(:func:`.steps.notebook_parameters`; a fact never silently replaces an operator parameter). After
each step the runner updates ``run.json`` (:mod:`.record`), renders ``html/<step>.html``
(:mod:`.render`), and after the step that ``writes_rollback`` (also a failed one) writes
``rollback.yaml`` (:mod:`.rollback`): ``opslib run rollback.yaml`` (``mode: rollback``) runs only the
rollback steps.

The first failure stops the run (:class:`.record.RunFailed`, a :class:`opslib.errors.StepFailed`: the
step, the failing cell, the notebook, and the operator's last lines — what production serves now,
what changed so far, the exact next command); the evidence is finalized in every case. A finalized
``run.json`` is never written again: ``resume`` and ``rollback`` (:mod:`.recovery`) start new,
chained run folders through :func:`launch`. The console shows one line per step
(:mod:`.console`); ``verbose`` adds papermill's cell progress.
``benchmarks/run_overhead.py`` measures what the runner costs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import backup, credentials, evidence, preflight
from .. import params as params_
from ..errors import OpsError, ParameterError, UsageError
from . import chores, forward, lineage
from .context import RunContext
from .engines import engine_name
from .evidence_lock import locked
from .record import link, now_utc, operator
from .steps import BACKUP, Step, steps_for

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
    engine: str | None = None,
    run_dir_file: str | os.PathLike[str] | None = None,
) -> int:
    """Run a renewal (or, for ``mode: rollback``, a rollback) from a parameters file.

    Returns 0 on success. Raises :class:`UsageError`/:class:`ParameterError` (exit 2) before
    anything is contacted, :class:`RunLocked` when another run holds the host and site, and
    :class:`StepFailed` (exit 1) after the evidence of a failed run has been finalized. ``engine``
    runs the notebooks (:mod:`.engines`; default ``$OPSLIB_STEP_ENGINE``, else ``kernel``).
    ``run_dir_file``: write the new run folder's absolute path (one line, UTF-8) to this file as soon as
    the folder exists — how ``opslib fleet run`` and the Ansible role find a run without reading its
    console text (``opslib run --run-dir-file FILE``).
    """
    params = params_.load(params_path)
    selected = select_steps(steps_for(params.mode), steps)
    root = choose_evidence_root(evidence_root, params)
    fields: dict[str, Any] = {"parameters_file": str(Path(params_path).resolve()), "mode": params.mode}
    if params.mode == params_.ROLLBACK:
        fields["rolls_back"] = link(root, str(params.get("rollback.run_id")))
    else:  # the request run whose key the CA's certificate carries (opslib request), when there is one
        key = lineage.key_sha256_of(params.path("certificate_file"))
        found = lineage.request_run_for(root, key) if key else None
        if found:
            fields["request_run"] = found
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
            engine=engine,
            run_dir_file=Path(run_dir_file) if run_dir_file else None,
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
    in_process: dict[str, Callable[[RunContext], dict[str, Any]]] = field(default_factory=dict)
    root_backups: list[Path] = field(default_factory=list)  # rollback --roots: the .reg files it imports
    # Called under the lock before the new folder exists (the hmac key given); returns more fields.
    prepare: Callable[[bytes | None], dict[str, Any]] | None = None
    # A resume: the run folder whose probe (capabilities.json) the new run reuses instead of probing again.
    probe_from: Path | None = None
    # A resume: the run it continues, whose temp folders left on the server this run removes.
    resumed: Path | None = None
    # The engine of the notebook steps (:mod:`.engines`); None: $OPSLIB_STEP_ENGINE, else kernel.
    engine: str | None = None
    # A resume: what production must serve before anything changes (:mod:`.forward`; a rollback's is
    # taken from its parameters). --force-older / --force-expired: go on anyway, recorded.
    expected: forward.Expected | None = None
    force_older: bool = False
    force_expired: bool = False
    # Where to write the new run folder's path as soon as it exists (``opslib run --run-dir-file``).
    run_dir_file: Path | None = None


def launch(spec: Launch) -> int:
    """Check everything that can be checked before contacting the server, take the lock, create a new
    chained run folder and run ``spec.steps`` in it."""
    params, selected = spec.params, list(spec.steps)
    _refuse_unconfirmable(selected, dry_run=spec.dry_run, yes=spec.yes)
    engine = engine_name(spec.engine)
    env = resolve_secrets(params, steps=[s.name for s in selected])
    hmac_key = _hmac_key(params, env)
    _check_backup_directory(params, spec.root, selected)
    notebooks = _check_notebooks([s for s in selected if not s.in_process])
    expected, checked = spec.expected, {}
    if params.mode == params_.ROLLBACK:  # the target's expiry: before any run folder exists
        if expected is None:
            expected = forward.for_rollback(params, force_older=spec.force_older)
        checked = forward.check_rollback_target(params, force_expired=spec.force_expired)
    forced = {**({"older": True} if spec.force_older else {}), **checked.pop("forced", {})}
    with locked(spec.root, params.host, params.site):
        preflight.check_inputs(params, steps=[s.name for s in selected], prompted=env)
        fields = {**spec.fields, **(spec.prepare(hmac_key) if spec.prepare else {})}
        resumes = fields.get("resumes") if isinstance(fields.get("resumes"), dict) else {}
        if not spec.dry_run:  # a run the server's lock refuses leaves no run folder
            chores.refuse_if_locked(
                forward.winrm_values(params, env),
                host=params.host,
                break_lock=spec.break_lock,
                resumes=str((resumes or {}).get("run_id") or ""),
            )
        if expected is not None:  # before any run folder or change: production has not moved on
            checked["production_check"] = forward.read_production(params, env, expected, root=spec.root)
        fields = {**fields, **checked, **({"forced": forced} if forced else {})}
        run_dir = evidence.new_run(
            spec.root,
            host=params.host,
            site=params.site,
            parameters=params.data,
            operator=operator(),
            dry_run=spec.dry_run,
            now_utc=now_utc(),
            tls_validation=str(params.get("winrm.server_cert_validation")),
            hmac_key=hmac_key,  # the unfinished run.json is signed at every write (progress_hmac)
        )
        print(f"opslib: run folder {run_dir}", file=sys.stderr)
        if spec.run_dir_file is not None:
            spec.run_dir_file.write_text(f"{Path(run_dir).resolve()}\n", encoding="utf-8")
        if spec.probe_from is not None:
            fields = {**fields, **chores.reuse_probe(spec.probe_from, run_dir)}
        if spec.resumed is not None:
            chores.inherit_leftovers(spec.resumed, run_dir, url=str(params.get("winrm.url") or ""))
        evidence.update_run(run_dir, hmac_key=hmac_key, **fields)
        ctx = RunContext(
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
            engine=engine,
        )
        if spec.facts:
            ctx.facts = dict(spec.facts)
            ctx.record.write(facts=ctx.facts)
        for step, _ in spec.carried:  # the resumed run swapped already: its undo belongs here too
            if step.writes_rollback and not spec.dry_run:
                ctx.write_rollback_file(step)
        ctx.server_lock = ctx.hold_server_lock(
            break_lock=spec.break_lock, resumes=str((resumes or {}).get("run_id") or "")
        )
        return ctx.execute(selected)


# --- checks before anything is contacted --------------------------------------------------------


def select_steps(all_steps: tuple[Step, ...], wanted: str | Sequence[str] | None) -> tuple[Step, ...]:
    """The steps ``--steps`` names (numbers or names, comma-separated), in table order; all when none."""
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


def resolve_secrets(params: params_.Parameters, *, steps: list[str] | None = None) -> dict[str, str]:
    """Resolve every secret reference once (never printed); ``prompt`` answers go to the environment.

    ``steps``: the steps this run will run; the PFX password is resolved (asked) only when the key-pair
    backup is among them (a request, a rollback or a resume past step 3 never needs it).

    Returns ``{key path: environment variable}`` for prompted secrets: the kernels inherit the
    environment and receive ``env:VAR`` instead of ``prompt`` (a kernel has no terminal).
    """
    env: dict[str, str] = {}
    for key, ref in params.secret_references().items():
        if key == "backup.pfx_password" and steps is not None and BACKUP.name not in steps:
            continue
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


def choose_evidence_root(given: str | os.PathLike[str] | None, params: params_.Parameters) -> Path:
    """Where the run folder goes: ``given``, next to the run a ``rollback.yaml`` undoes, or ./evidence."""
    # Absolute from here on: papermill's cwd= changes this process's working directory while a step
    # runs, and renders are written from a thread meanwhile, so a relative path would point elsewhere.
    if given is not None:
        return Path(given).resolve()
    if params.mode == params_.ROLLBACK and (params.base_dir / "run.json").is_file():
        return params.base_dir.parent.resolve()  # rollback.yaml in a run folder: keep the evidence together
    return Path("evidence").resolve()
