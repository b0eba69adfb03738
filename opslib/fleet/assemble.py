"""``opslib fleet record``: the fleet record built from run folders another tool produced (the Ansible
playbook's last task), the same ``fleet.json`` as ``opslib fleet run`` writes (:mod:`.record`).

Each run folder gives one host (its run.json's ``host``); the newest run of a host given twice counts.
With ``--inventory`` the hosts of the inventory (``--limit``) that have no run folder are recorded
"not started", and a run folder whose host is not in the inventory is refused (naming it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from ..credentials import resolve
from ..errors import UsageError
from ..evidence.verify import verify_run
from .record import NOT_STARTED, HostOutcome, latest_fleet, outcome_from_run, write_fleet_record


def _run_host(run_dir: Path) -> tuple[str, str, dict[str, object]]:
    try:
        doc = json.loads((run_dir / "run.json").read_bytes())
    except (OSError, ValueError):
        raise UsageError(
            f"{run_dir}: not a run folder (no readable run.json)", hint="give folders made by `opslib run`"
        ) from None
    if not isinstance(doc, dict) or not doc.get("host"):
        raise UsageError(f"{run_dir}: run.json names no host", hint="give folders made by `opslib run`")
    return str(doc["host"]), str(doc.get("started_utc") or ""), doc


def record_from_runs(
    evidence_root: str | os.PathLike[str],
    name: str,
    run_dirs: Sequence[Path],
    *,
    inventory: Path | None = None,
    limit: str | None = None,
    hmac_key_ref: str | None = None,
) -> Path:
    root = Path(evidence_root).resolve()
    if not run_dirs and inventory is None:
        raise UsageError(
            "no run folders given", hint="opslib fleet record --evidence-root DIR --name NAME RUN_DIR…"
        )
    docs = [(run_dir, *_run_host(run_dir)) for run_dir in run_dirs]
    ref = hmac_key_ref or _hmac_reference([d for _, _, _, d in docs])
    key = resolve(ref, purpose="HMAC key").encode("utf-8") if ref else None
    for run_dir, _, _, doc in docs:  # a run signed by its own key is checked with it; an unsigned one without
        _refuse_unless_intact(run_dir, root, key if "hmac" in doc else None)
    newest: dict[str, tuple[str, Path, dict[str, object]]] = {}
    for run_dir, host, started, doc in docs:
        if host not in newest or started >= newest[host][0]:
            newest[host] = (started, run_dir, doc)
    order = sorted(newest)
    groups: dict[str, tuple[str, ...]] = {}
    names: dict[str, str] = {}  # the evidence's host name → the inventory's (as `fleet run` records it)
    if inventory is not None:
        from .inventory import load_inventory

        hosts = load_inventory(inventory, limit=limit)
        by_label = {str(h.params.get("host") or h.name): h for h in hosts}
        unknown = sorted(set(newest) - set(by_label))
        if unknown:
            raise UsageError(
                f"run folders of hosts not in {inventory}: {', '.join(unknown)}",
                hint="give the inventory (and --limit) the runs were made from",
            )
        order = list(by_label)
        groups = {label: tuple(h.groups) for label, h in by_label.items()}
        names = {label: h.name for label, h in by_label.items()}
    outcomes = []
    for label in order:
        if label not in newest:
            outcomes.append(HostOutcome(names.get(label, label), NOT_STARTED, groups=groups.get(label, ())))
            continue
        outcomes.append(
            outcome_from_run(
                names.get(label, label), newest[label][1], root=root, groups=groups.get(label, ())
            )
        )
    return write_fleet_record(
        root,
        name,
        outcomes,
        previous=latest_fleet(root, name),
        result="recorded",
        inventory=str(inventory.resolve()) if inventory else "",
        settings={"from": "run folders"},
        hmac_key=key,
    )


def _refuse_unless_intact(run_dir: Path, root: Path, key: bytes | None) -> None:
    """A run folder is recorded only from this evidence root and only as it was sealed: the kit does not
    put its fleet hash (and HMAC) over a run.json someone edited, or over a folder from elsewhere."""
    if Path(run_dir).resolve().parent != root:
        raise UsageError(
            f"{run_dir}: not a run folder of the evidence root {root}",
            hint="record the runs where `opslib run --evidence-root` wrote them",
        )
    report = verify_run(run_dir, hmac_key=key)
    own = [p for p in report.problems if Path(run_dir).name in p.path or p.path == report.run_id]
    if own:
        raise UsageError(
            f"{run_dir}: the run's evidence does not verify ({own[0].line()}"
            + (f"; and {len(own) - 1} more" if len(own) > 1 else "")
            + ") — nothing was recorded",
            hint=f"see opslib evidence verify {run_dir}; record only runs that verify",
        )


def _hmac_reference(docs: Sequence[dict[str, object]]) -> str:
    """The runs' own ``evidence.hmac_key`` reference (the first that names one)."""
    for doc in docs:
        params = doc.get("parameters")
        section = params.get("evidence") if isinstance(params, dict) else None
        ref = section.get("hmac_key") if isinstance(section, dict) else None
        if ref:
            return str(ref)
    return ""
