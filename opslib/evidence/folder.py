"""The run folder: :func:`new_run`, :func:`update_run`, :func:`finalize_run` (called by the runbook);
in a notebook's last cell :func:`record`, read back by the runner with :func:`read_facts`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import EvidenceError
from ..version import __version__
from .glossary import heading
from .heads import append_head
from .index import command_counts, previous_run
from .manifest import (
    FACTS_MIME,
    PROGRESS_HMAC,
    PROTECTED_FIELDS,
    RUN_JSON,
    SCHEMA,
    STATUSES,
    TRANSCRIPT,
    UNSEALED_DIR,
    hash_files,
    iso_utc,
    mask_literal_secrets,
    plain,
    read_run_json,
    redacted_doc,
    require_utc,
    safe_name,
    sign_hmac,
    signed_progress,
    write_run_json,
)
from .tables import table_html, table_text

if TYPE_CHECKING:
    pass


# --- writing ------------------------------------------------------------------------------------


def new_run(
    root: str | os.PathLike[str],
    *,
    host: str,
    site: str,
    parameters: Mapping[str, Any],
    operator: str,
    dry_run: bool,
    now_utc: dt.datetime,
    tls_validation: str = "validate",
    hmac_key: bytes | None = None,
) -> Path:
    """Create ``<root>/<UTC yyyymmddThhmmssZ>_<host>_<site>/`` (``-2``, ``-3`` … if taken) and its first
    ``run.json`` with status ``running``. Returns the folder. ``hmac_key``: sign the unfinished run.json
    (``progress_hmac``); pass it to every :func:`update_run` of the run too (:func:`.verify.verify_for_resume`
    with a key refuses an unfinished run.json that is not signed)."""
    started = require_utc(now_utc, "now_utc")
    root_path = Path(root)
    root_path.mkdir(parents=True, exist_ok=True)
    base = f"{started:%Y%m%dT%H%M%SZ}_{safe_name(host)}_{safe_name(site)}"
    for n in range(1, 1000):
        run_id = base if n == 1 else f"{base}-{n}"
        try:
            (root_path / run_id).mkdir()  # atomic: two runners never share a folder
        except FileExistsError:
            continue
        break
    else:
        raise EvidenceError(str(root_path / base), "999 run folders already use this name and second")
    run_dir = root_path / run_id
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "run_id": run_id,
        "kit_version": __version__,
        "host": host,
        "site": site,
        "operator": operator,
        "started_utc": iso_utc(started),
        "finished_utc": None,
        "status": "running",
        "dry_run": bool(dry_run),
        "failed_step": None,
        "error": None,
        "parameters": mask_literal_secrets(plain(parameters, "parameters")),
        "steps": [],
        "facts": {},
        "tls_validation": tls_validation,
        "files": {},
        "previous_run": None,
    }
    write_run_json(run_dir, signed_progress(doc, hmac_key))
    return run_dir


def update_run(
    run_dir: str | os.PathLike[str], *, hmac_key: bytes | None = None, **fields: Any
) -> dict[str, Any]:
    """Rewrite ``run.json`` atomically with ``fields``; returns the new manifest. With ``hmac_key`` the
    manifest is signed again (``progress_hmac``); without one any earlier progress signature is dropped.

    ``steps`` (a list of step dicts, or one) is merged by ``name`` — a known step is updated, its
    ``facts`` merged; a new one is appended. ``facts`` is merged into the run's facts. Any other
    field replaces the old value. ``schema``, ``run_id``, ``files``, ``previous_run`` and ``hmac``
    belong to :func:`new_run` / :func:`finalize_run`.
    """
    path = Path(run_dir)
    protected = sorted(PROTECTED_FIELDS & fields.keys())
    if protected:
        raise EvidenceError(str(path / RUN_JSON), f"{', '.join(protected)} cannot be set by update_run")
    status = fields.get("status")
    if status is not None and status not in STATUSES:
        raise EvidenceError(str(path / RUN_JSON), f"status {status!r} is not one of {', '.join(STATUSES)}")
    doc = read_run_json(path)
    for key, value in fields.items():
        if key == "steps":
            steps = [value] if isinstance(value, Mapping) else list(value)
            merged: list[dict[str, Any]] = list(doc.get("steps") or [])
            for step in steps:
                step = plain(step, "steps")
                if not isinstance(step, dict) or not step.get("name"):
                    raise EvidenceError(str(path / RUN_JSON), f"a step needs a name: {step!r}")
                known = next((s for s in merged if s.get("name") == step["name"]), None)
                if known is None:
                    merged.append(step)
                else:
                    facts = {**(known.get("facts") or {}), **(step.get("facts") or {})}
                    known.update(step)
                    known["facts"] = facts
            doc["steps"] = merged
        elif key == "facts":
            doc["facts"] = {**(doc.get("facts") or {}), **plain(value, "facts")}
        elif key == "parameters":
            doc["parameters"] = mask_literal_secrets(plain(value, "parameters"))
        else:
            doc[key] = plain(value, key)
    doc = signed_progress(doc, hmac_key)
    write_run_json(path, doc)
    return doc


def finalize_run(
    run_dir: str | os.PathLike[str], *, now_utc: dt.datetime, hmac_key: bytes | None = None
) -> dict[str, Any]:
    """Close the run: ``finished_utc``, ``commands`` (remote commands, failures and probe answers in
    ``transcript.jsonl``), ``files`` (SHA-256 of every other file), ``previous_run`` (the
    newest other finalized run of the same root that started earlier) and, with a key, ``hmac``.

    Call it after the last file is written and ``status`` is ``succeeded`` or ``failed``; anything
    written to the folder later shows up in :func:`verify_run`. Returns the new manifest.
    """
    path = Path(run_dir)
    doc = read_run_json(path)
    if doc.get("status") not in ("succeeded", "failed"):
        raise EvidenceError(
            str(path / RUN_JSON),
            f"cannot finalize a run whose status is {doc.get('status')!r}",
            hint="set status to succeeded or failed with update_run first",
        )
    doc["finished_utc"] = iso_utc(now_utc)
    doc["commands"] = command_counts(path / TRANSCRIPT)
    doc["files"] = hash_files(path)
    doc["not_sealed"] = f"{UNSEALED_DIR}/"  # made from the run later: never hashed (verify lists it apart)
    doc["previous_run"] = previous_run(path, doc)
    doc.pop("hmac", None)
    doc.pop(PROGRESS_HMAC, None)
    doc = redacted_doc(doc)  # sign exactly what is written
    if hmac_key:
        doc["hmac"] = sign_hmac(doc, hmac_key)
    write_run_json(path, doc)
    append_head(path.parent, path, hmac_key=hmac_key, now_utc=now_utc)
    return doc


def record(facts: Mapping[str, Any]) -> None:
    """A notebook's last cell: show ``facts`` as a table (every value whole, the names as labels in
    Japanese and English) and store them as an output of MIME type ``application/vnd.opslib.facts+json``
    for :func:`read_facts` (the runner), the report and reviewers."""
    from IPython.display import display

    value = plain(facts, "facts")
    if not isinstance(value, dict):
        raise EvidenceError(
            "facts", f"expected a mapping of fact names to values, got {type(facts).__name__}"
        )
    shown = redacted_doc(value)
    table = {"columns": ["fact", "value"], "rows": [[heading(k), v] for k, v in shown.items()]}
    display({"text/html": table_html(table), "text/plain": table_text(table)}, raw=True)
    display({FACTS_MIME: shown}, raw=True)


def read_facts(notebook_path: str | os.PathLike[str]) -> dict[str, Any]:
    """The facts an executed notebook recorded with :func:`record`, merged in cell order."""
    import nbformat

    try:
        nb = nbformat.read(os.fspath(notebook_path), as_version=4)
    except FileNotFoundError:
        raise EvidenceError(str(notebook_path), "no such notebook") from None
    except Exception as exc:  # nbformat raises several kinds of errors on a damaged file
        raise EvidenceError(str(notebook_path), f"unreadable notebook ({type(exc).__name__})") from None
    facts: dict[str, Any] = {}
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        for output in cell.get("outputs", []):
            data = output.get("data") or {}
            if FACTS_MIME in data:
                value = data[FACTS_MIME]
                facts.update(json.loads(value) if isinstance(value, str) else dict(value))
    return facts


def cell_text(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else str(value)
