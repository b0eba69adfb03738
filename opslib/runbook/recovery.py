"""Recovery: ``resume`` a failed run and ``rollback`` a run, each as a NEW chained run folder.

Why a new folder: once a later run has chained a run's ``run.json`` (its ``previous_run`` SHA-256),
rewriting that file breaks ``opslib evidence verify --root`` — a false tamper alarm caused by the
kit's own recovery. So a finalized run folder is never written again:

* ``resume(RUN)`` starts a run with ``mode: resume`` and ``resumes: {run_id, run_json_sha256,
  steps}``: it runs the steps RUN did not finish, with the facts RUN's succeeded steps recorded
  (read from its ``run.json``; the notebooks stay in RUN's folder, nothing is copied).
  ``--params FILE`` corrects keys that cannot change what was already done (:data:`CORRECTABLE`);
  the run records ``parameter_changes`` (key, old, new).
* ``rollback(RUN)`` runs RUN's ``rollback.yaml`` (step R and step 4) with ``rolls_back: {run_id,
  run_json_sha256}``; ``roots=True`` then re-enables exactly the roots RUN's step 0 disabled, from
  its ``root-backup_*.reg`` files (their SHA-256 checked against RUN's evidence first), read back.

A run that never closed its evidence (the process died) is closed as failed before it is resumed:
no later run can have chained it, since only finalized runs are chained.
"""

from __future__ import annotations

import copy
import hashlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import evidence
from .. import params as params_
from ..errors import EvidenceError, ParameterError, UsageError
from ..evidence.manifest import is_finalized
from ..ops import roots as roots_
from ..server import Server
from ..text import escape_text
from ..winrm import connect_params
from . import forward
from .context import RunContext
from .record import iso_utc, now_utc, read_manifest
from .run import Launch, launch
from .steps import ALL_STEPS, PRECHECK, RESTORE_ROOTS, ROLLBACK, VERIFY, Step, steps_for

# Keys a resume may correct: they cannot change what the steps already done did (the checks of step 4,
# the PFX backup of step 3, the connection, the warnings). Everything else needs a rollback and a new run.
CORRECTABLE = ("verify.", "backup.", "winrm.", "forbidden_roots", "warn_days")


def correctable(key: str) -> bool:
    return any(key == c or (c.endswith(".") and key.startswith(c)) for c in CORRECTABLE)


# --- resume -------------------------------------------------------------------------------------


def resume(
    run_dir: str | os.PathLike[str],
    *,
    yes: bool = False,
    params_file: str | os.PathLike[str] | None = None,
    verbose: bool = False,
    break_lock: bool = False,
    engine: str | None = None,
    force_older: bool = False,
) -> int:
    """Continue the failed run ``run_dir`` from its failed step, in a new run folder chained like any run.

    The server's renewal lock is taken over when the run being resumed still holds it (it died, or was
    interrupted); ``break_lock`` breaks one another run holds (recorded). ``engine`` as for
    :func:`.run.run`. Before anything changes, production must still serve what the run recorded
    (:mod:`.forward`) unless ``force_older``; the run must verify (:func:`opslib.evidence.verify_for_resume`)."""
    folder = Path(run_dir).resolve()  # absolute: papermill changes the working directory
    earlier = read_manifest(folder)
    if earlier.get("status") == "succeeded":
        raise UsageError(f"{folder}: this run succeeded; there is nothing to resume")
    root = folder.parent
    if earlier.get("mode") == params_.ROLLBACK:
        undone = (earlier.get("rolls_back") or {}).get("run_id") or "RUN"
        raise UsageError(
            f"{folder.name} is a rollback; a rollback is not resumed",
            hint="check what production serves (opslib inspect HOST:PORT) and put it right by hand, or "
            f"start a new rollback of the run it undoes: opslib rollback {root / undone}",
        )
    _refuse_resumed_twice(root, earlier)
    old = run_parameters(earlier, folder)
    params, changes = (
        (old, [])
        if params_file is None
        else corrected_parameters(
            # nothing on the server used the old values: the run changed nothing (run.json changed_nothing)
            old,
            params_file,
            any_key=bool(earlier.get("changed_nothing")) or bool(earlier.get("dry_run")),
            instead=_instead_of_resume(folder, earlier, params_file),
        )
    )
    done = done_steps(earlier)
    if any(not correctable(str(c["key"])) for c in changes):
        done = []  # a key the steps done used: they run again with the corrected value (nothing changed)
    remaining = [s for s in steps_for(params.mode) if s.name not in done]
    wanted = earlier.get("selected_steps")
    if wanted:
        remaining = [s for s in remaining if s.name in wanted]
    if not remaining:
        raise UsageError(f"{folder}: every step already succeeded; there is nothing to resume")
    carried = _carried(earlier, folder, done)

    def prepare(hmac_key: bytes | None) -> dict[str, Any]:
        refuse_unverified(folder, hmac_key)  # before the kit signs or continues anything of it
        if not is_finalized(read_manifest(folder)):
            _close_interrupted(folder, hmac_key)
        raw = (folder / "run.json").read_bytes()
        return {"resumes": {**_digest(earlier["run_id"], raw), "steps": list(done)}}

    print(f"opslib: resuming run {folder.name} at step {remaining[0].name}", file=sys.stderr, flush=True)
    fields: dict[str, Any] = {
        "mode": "resume",
        "parameters_file": str(Path(params_file).resolve())
        if params_file
        else earlier.get("parameters_file"),
        "parameter_changes": changes,
    }
    return launch(
        Launch(
            params,
            root,
            remaining,
            dry_run=bool(earlier.get("dry_run")),
            yes=yes,
            verbose=verbose,
            fields=fields,
            facts=dict(earlier.get("facts") or {}),
            carried=carried,
            prepare=prepare,
            break_lock=break_lock,
            # The probe is reused unless the connection changed (another account may have other rights).
            probe_from=None if any(str(c.get("key", "")) in _CONNECTION_KEYS for c in changes) else folder,
            resumed=folder,
            engine=engine,
            expected=forward.for_resume(earlier, done, force_older=force_older),
            force_older=force_older,
        )
    )


def refuse_unverified(folder: Path, hmac_key: bytes | None) -> None:
    """A run is resumed only when its evidence verifies (file hashes, the head record, the HMAC where a
    key is set): otherwise the resume would continue — and finally sign — content the kit did not write."""
    problems = evidence.verify_for_resume(folder, hmac_key=hmac_key)
    if problems:
        shown = "; ".join(escape_text(p.line(), limit=300) for p in problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise EvidenceError(
            str(folder),
            f"this run's evidence does not verify, so it cannot be resumed: {shown}{more}",
            hint=f"nothing was changed; see opslib evidence verify {folder}; restore the folder from your "
            "backup copy, or roll it back (opslib rollback) / start a new run",
        )


# A change of one of these may connect as another account (other rights) or to another endpoint.
_CONNECTION_KEYS = frozenset({"winrm.url", "winrm.username", "winrm.password", "winrm.transport"})


def done_steps(manifest: Mapping[str, Any]) -> list[str]:
    """The steps a run has done: those it carried from the run it resumed, then those that succeeded."""
    resumed = manifest.get("resumes")
    carried = list(resumed.get("steps") or []) if isinstance(resumed, Mapping) else []
    own = [s.get("name") for s in manifest.get("steps") or [] if s.get("status") == "succeeded"]
    return [*carried, *(str(n) for n in own if n not in carried)]


def run_parameters(manifest: Mapping[str, Any], folder: Path) -> params_.Parameters:
    """The parameters a run used (from its run.json; relative paths against its parameters file's folder)."""
    params_file = manifest.get("parameters_file") or str(folder / "run.json")
    return params_.validate(
        manifest.get("parameters") or {}, source=str(folder / "run.json"), base_dir=Path(params_file).parent
    )


def _instead_of_resume(folder: Path, earlier: Mapping[str, Any], params_file: str | os.PathLike[str]) -> str:
    """What to do when a resume refuses a corrected key: a rollback only when it has something to undo
    (the run wrote rollback.yaml, or its step 0 disabled roots) — never a command that refuses too."""
    fresh = f"start a new run with the corrected file: opslib run {params_file}"
    facts = earlier.get("facts")
    disabled = isinstance(facts, Mapping) and bool(facts.get("forbidden_roots_disabled"))
    if earlier.get("dry_run") or not ((folder / "rollback.yaml").is_file() or disabled):
        return fresh
    return f"undo the run first (opslib rollback {folder}{' --roots' if disabled else ''}), then {fresh}"


def corrected_parameters(
    old: params_.Parameters,
    path: str | os.PathLike[str],
    *,
    any_key: bool = False,
    instead: str = "",
) -> tuple[params_.Parameters, list[dict[str, Any]]]:
    """``old`` with the values of ``path`` (a whole parameters file or only the keys to correct).

    Returns the new parameters and the changes (``key``, ``old``, ``new``). A changed key outside
    :data:`CORRECTABLE` is refused (:class:`ParameterError`, exit 2) naming every such key, unless
    ``any_key`` (the run changed nothing on the server, run.json ``changed_nothing``: no step used the old value).
    """
    given = params_.read_yaml(path)
    base = Path(path).resolve().parent
    merged = _absolute_paths(old.data, old.base_dir)
    for key, value in _absolute_paths(given, base).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    new = params_.validate(merged, source=str(path), base_dir=base)
    before, after = _flat(_absolute_paths(old.data, old.base_dir)), _flat(new.data)
    changes = [
        {"key": k, "old": before.get(k), "new": after.get(k)}
        for k in sorted(before.keys() | after.keys())
        if before.get(k) != after.get(k)
    ]
    refused = [] if any_key else [c for c in changes if not correctable(str(c["key"]))]
    if refused:
        shown = "; ".join(f"{c['key']}: {c['old']!r} → {c['new']!r}" for c in refused)
        raise ParameterError(
            ", ".join(str(c["key"]) for c in refused),
            f"cannot be changed on resume ({shown}): the steps already done used the old value",
            source=str(path),
            hint="a resume may correct only verify.*, backup.*, winrm.*, forbidden_roots and warn_days; "
            f"for anything else {instead or 'start a new run with the corrected file'}; nothing was changed",
        )
    return new, changes


def _absolute_paths(data: Mapping[str, Any], base: Path) -> dict[str, Any]:
    out = copy.deepcopy(dict(data))
    for key in params_.PATH_KEYS:
        section, _, leaf = key.rpartition(".")
        node = out.get(section) if section else out
        if isinstance(node, dict) and isinstance(node.get(leaf), str) and node[leaf]:
            node[leaf] = str((base / os.path.expanduser(node[leaf])).resolve())
    return out


def _flat(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _refuse_resumed_twice(root: Path, earlier: Mapping[str, Any]) -> None:
    run_id = earlier.get("run_id")
    for entry in evidence.scan(root):
        link = entry.doc.get("resumes") if entry.doc else None
        if isinstance(link, dict) and link.get("run_id") == run_id:
            status = entry.doc.get("status") if entry.doc else "?"
            nxt = (
                "it succeeded: there is nothing left to resume"
                if status == "succeeded"
                else f"continue from there: opslib resume {Path(entry.path).resolve()}"
            )
            raise UsageError(f"run {run_id} was already resumed by run {entry.run_id} ({status}); {nxt}")


def _carried(earlier: Mapping[str, Any], folder: Path, done: list[str]) -> list[tuple[Step, dict[str, Any]]]:
    """The steps done before, with the facts each recorded (from the runs that executed them)."""
    by_name = {s.name: s for s in (*ALL_STEPS, RESTORE_ROOTS)}
    facts_of: dict[str, dict[str, Any]] = {}
    for manifest in _lineage(earlier, folder.parent):
        for record in manifest.get("steps") or []:
            if record.get("status") == "succeeded" and record.get("name") not in facts_of:
                facts_of[str(record["name"])] = dict(record.get("facts") or {})
    return [(by_name[name], facts_of.get(name, {})) for name in done if name in by_name]


def _lineage(manifest: Mapping[str, Any], root: Path) -> list[Mapping[str, Any]]:
    """A run's manifest, then the one it resumes, and so on (as far as they are still in ``root``)."""
    out = [manifest]
    seen = {manifest.get("run_id")}
    while isinstance(out[-1].get("resumes"), Mapping):
        run_id = out[-1]["resumes"].get("run_id")
        path = root / str(run_id) / "run.json"
        if run_id in seen or not path.is_file():
            break
        seen.add(run_id)
        out.append(read_manifest(path.parent))
    return out


def _close_interrupted(folder: Path, hmac_key: bytes | None) -> None:
    """Close the evidence of a run whose process died (status still running) as failed."""
    doc = read_manifest(folder)
    steps = list(doc.get("steps") or [])
    running = [s for s in steps if s.get("status") == "running"]
    error = "interrupted: the run stopped without closing its evidence"
    for record in running:
        record.update(status="failed", error=error)
    evidence.update_run(
        folder,
        hmac_key=hmac_key,
        status="failed",
        error=error,
        failed_step=running[-1]["name"] if running else doc.get("failed_step"),
        finished_utc=iso_utc(now_utc()),
        steps=steps,
    )
    evidence.finalize_run(folder, now_utc=now_utc(), hmac_key=hmac_key)


def _digest(run_id: str, raw: bytes) -> dict[str, Any]:
    return {"run_id": run_id, "run_json_sha256": hashlib.sha256(raw).hexdigest()}


# --- rollback -------------------------------------------------------------------------------------


def rollback(
    run_dir: str | os.PathLike[str],
    *,
    roots: bool = False,
    yes: bool = False,
    verbose: bool = False,
    engine: str | None = None,
    force_older: bool = False,
    force_expired: bool = False,
) -> int:
    """Undo run ``run_dir`` in a new chained run: its ``rollback.yaml`` (step R, then step 4); with
    ``roots`` also re-enable the roots its step 0 disabled, from its ``.reg`` backups, read back."""
    folder = Path(run_dir).resolve()
    target = read_manifest(folder)
    if (
        target.get("mode") == params_.ROLLBACK
        or (target.get("parameters") or {}).get("mode") == params_.ROLLBACK
    ):
        raise UsageError(
            f"{folder.name} is a rollback run; a rollback is not undone by another rollback",
            hint="to put the new certificate back, resume or re-run the renewal (opslib run PARAMS.yaml --steps 2)",
        )
    if target.get("dry_run"):
        raise UsageError(f"{folder.name} is a dry run: it changed nothing, so there is nothing to undo")
    if not is_finalized(target):
        raise UsageError(
            f"{folder.name} is still running (or was interrupted): resume it or wait for it first"
        )
    rollback_file = folder / "rollback.yaml"
    steps: list[Step] = []
    if rollback_file.is_file():
        params = params_.load(rollback_file)
        steps.append(ROLLBACK)
    else:
        params = run_parameters(target, folder)
    backups: list[Path] = []
    if roots:
        backups = root_backups(target, folder)
        if not backups:
            raise UsageError(
                f"{folder.name}: step 00 of this run disabled no root; there is nothing to re-enable",
                hint="leave out --roots",
            )
        steps.append(RESTORE_ROOTS)
    if steps:
        steps.append(VERIFY)  # the endpoint is checked after the last server change, whatever the mode
    if not steps:
        disabled = bool(target.get("facts", {}).get("forbidden_roots_disabled"))
        raise UsageError(
            f"{folder.name} did not change the production site's certificate (its step 02 did not run); "
            "there is no certificate to put back",
            hint=f"re-enable the roots its step 00 disabled with: opslib rollback {folder} --roots"
            if disabled
            else "nothing to undo",
        )

    def restore(ctx: RunContext) -> dict[str, Any]:
        return _restore_roots(ctx, backups)

    fields = {
        "mode": params_.ROLLBACK,
        "parameters_file": str(rollback_file) if rollback_file.is_file() else target.get("parameters_file"),
        "rolls_back": _digest(str(target["run_id"]), (folder / "run.json").read_bytes()),
    }
    return launch(
        Launch(
            params,
            folder.parent,
            steps,
            yes=yes,
            verbose=verbose,
            fields=fields,
            in_process={RESTORE_ROOTS.name: restore} if roots else {},
            root_backups=backups,
            engine=engine,
            force_older=force_older,
            force_expired=force_expired,
        )
    )


def root_backups(manifest: Mapping[str, Any], folder: Path) -> list[Path]:
    """The ``.reg`` backups of the roots a run's step 0 disabled (in the folder of the run that ran
    step 0: the run itself, or the run it resumes), each checked against that run's recorded SHA-256."""
    for doc in _lineage(manifest, folder.parent):
        record = next(
            (
                s
                for s in doc.get("steps") or []
                if s.get("name") == PRECHECK.name and s.get("status") == "succeeded"
            ),
            None,
        )
        if record is None:
            continue
        here = folder.parent / str(doc["run_id"])
        files = doc.get("files") or {}
        names = list((record.get("facts") or {}).get("root_backups") or [])
        out: list[Path] = []
        for name in names:
            path = here / name
            if not path.is_file() or evidence.sha256_file(path) != files.get(name):
                raise EvidenceError(
                    str(path),
                    "missing, or changed after the run was finalized (its SHA-256 differs from run.json)",
                    hint="restore the file from your backup copy of the evidence; nothing was changed",
                )
            out.append(path)
        return out
    return []


def _restore_roots(ctx: RunContext, backups: list[Path]) -> dict[str, Any]:
    """The in-process step ``06_restore_roots``: ``reg import`` each backup on the server, read back."""
    winrm = {**ctx.params.data["winrm"], **ctx.env_references().get("winrm", {})}
    with Server(connect_params(winrm, host=ctx.params.host, run_dir=str(ctx.run_dir))) as server:
        changes = roots_.restore_roots(server, backups)
    return {
        "roots_restored": [c.row() for c in changes],
        "root_backups_used": [
            {"file": p.name, "run_id": p.parent.name, "sha256": evidence.sha256_file(p)} for p in backups
        ],
    }


__all__ = [
    "CORRECTABLE",
    "correctable",
    "corrected_parameters",
    "done_steps",
    "resume",
    "rollback",
    "root_backups",
    "run_parameters",
]
