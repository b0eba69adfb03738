"""The fleet record: ``<evidence root>/fleets/<UTC yyyymmddThhmmssZ>_<name>/fleet.json``.

One record per fleet rollout (``opslib fleet run``) or per set of run folders (``opslib fleet record``,
what the Ansible playbook calls at its end). It holds, per host: the run id and folder, the mode, the
status (:data:`STATUSES`), the certificate before and after with their expiry, and the SHA-256 of the
host's ``run.json`` as it was when the record was written; then ``hosts_sha256``, one SHA-256 over the
canonical host list, and the SHA-256 of every other file of the fleet folder (parameters files with
secret *references* only, console logs, the fleet report).

Chained like runs: ``previous_fleet`` names the newest fleet record of the root before this one with the
SHA-256 of its ``fleet.json``, and ``<root>/fleets/.heads/`` is the same append-only head record the runs
have (:mod:`opslib.evidence.heads`; concurrent writers get one linear log without a lock). A record that
continues an earlier attempt of the same fleet links it in ``continues``. With an HMAC key (the
parameters' ``evidence.hmac_key``, or ``--hmac-key``) ``hmac`` covers the canonical ``fleet.json``.

:func:`verify_fleet` / :func:`verify_fleets` check all of it and name the host whose ``run.json``
changed after the record was written; ``opslib evidence verify FLEET_DIR`` and ``--root`` call them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac as hmac_
import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import EvidenceError
from ..evidence import heads
from ..evidence.index import run_mode
from ..evidence.manifest import canonical_json, hash_files, iso_utc, redacted_doc, safe_name, sign_hmac
from ..evidence.verify import Problem, VerifyReport
from ..version import __version__
from .report import write_fleet_report

FLEETS_DIR = "fleets"
FLEET_JSON = "fleet.json"
SCHEMA = 1
KIND = "opslib-fleet"

# A host's status in the record, and its words in Japanese and English (the report, the console).
RENEWED, DRY_RUN, FAILED, INTERRUPTED, ALREADY, NOT_STARTED = (
    "renewed",
    "dry run",
    "failed",
    "interrupted",
    "already renewed",
    "not started",
)
STATUSES = (RENEWED, DRY_RUN, FAILED, INTERRUPTED, ALREADY, NOT_STARTED)
FAILURES = (FAILED, INTERRUPTED)  # what counts against --max-fail-percentage
DONE = (RENEWED, DRY_RUN, ALREADY)  # a host that needs nothing more

_HOST_FACTS = ("old_thumbprint", "old_not_after_utc", "new_thumbprint", "new_not_after_utc")


@dataclass
class HostOutcome:
    """One host of a fleet: what happened to it and where its evidence is."""

    name: str
    status: str
    groups: tuple[str, ...] = ()
    batch: int | None = None  # 1 = the canary batch; None: not in a batch (already renewed)
    run_id: str = ""
    run_dir: str = ""  # relative to the evidence root
    mode: str = ""
    exit_code: int | None = None
    failed_step: str = ""
    error: str = ""
    old_thumbprint: str = ""
    old_not_after_utc: str = ""
    new_thumbprint: str = ""
    new_not_after_utc: str = ""
    run_json_sha256: str = ""
    renewed_by: str = ""  # "already renewed": the run that put the certificate on
    started_utc: str = ""
    finished_utc: str = ""
    log: str = ""  # the console log, relative to the fleet folder
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        out = asdict(self)
        out["groups"] = list(self.groups)
        return out


def outcome_from_run(
    name: str,
    run_dir: str | os.PathLike[str],
    *,
    root: str | os.PathLike[str],
    exit_code: int | None = None,
    groups: Sequence[str] = (),
    batch: int | None = None,
) -> HostOutcome:
    """A host's outcome read from its run folder (run.json only): status, certificates, hash."""
    path = Path(run_dir)
    raw = (path / "run.json").read_bytes()
    doc = json.loads(raw)
    facts = doc.get("facts") if isinstance(doc.get("facts"), dict) else {}
    assert isinstance(facts, dict)
    finished = doc.get("status") in ("succeeded", "failed") and bool(doc.get("finished_utc"))
    mode = run_mode(doc)
    if not finished or exit_code == 130:
        status = INTERRUPTED
    elif doc.get("status") != "succeeded":
        status = FAILED
    else:
        status = DRY_RUN if doc.get("dry_run") else RENEWED
    values = {k: str(facts.get(k) or "") for k in _HOST_FACTS}
    # Before the swap recorded old_*, step 00 recorded what production served: the same certificate.
    values["old_thumbprint"] = values["old_thumbprint"] or str(
        facts.get("production_thumbprint_before") or ""
    )
    values["old_not_after_utc"] = values["old_not_after_utc"] or str(
        facts.get("production_not_after_utc_before") or ""
    )
    if status in (RENEWED, DRY_RUN):  # what it put on (a dry run: would put on)
        values["new_thumbprint"] = values["new_thumbprint"] or str(facts.get("expected_thumbprint") or "")
    else:  # a failed or interrupted run put nothing on for certain: its report says what it did
        values["new_thumbprint"] = values["new_not_after_utc"] = ""
    try:
        rel = os.path.relpath(path.resolve(), Path(root).resolve())
    except ValueError:
        rel = str(path.resolve())
    return HostOutcome(
        name=name,
        status=status,
        groups=tuple(groups),
        batch=batch,
        run_id=str(doc.get("run_id") or path.name),
        run_dir=Path(rel).as_posix(),
        mode=mode,
        exit_code=exit_code,
        failed_step=str(doc.get("failed_step") or ""),
        error=str(doc.get("error") or "")[:500],
        run_json_sha256=hashlib.sha256(raw).hexdigest(),
        started_utc=str(doc.get("started_utc") or ""),
        finished_utc=str(doc.get("finished_utc") or ""),
        old_thumbprint=values["old_thumbprint"],
        old_not_after_utc=values["old_not_after_utc"],
        new_thumbprint=values["new_thumbprint"],
        new_not_after_utc=values["new_not_after_utc"],
    )


# --- writing ------------------------------------------------------------------------------------------------


def fleets_root(evidence_root: str | os.PathLike[str]) -> Path:
    return Path(evidence_root) / FLEETS_DIR


def new_fleet_dir(evidence_root: str | os.PathLike[str], name: str, *, now_utc: dt.datetime) -> Path:
    """Create ``<root>/fleets/<UTC>_<name>/`` (``-2``, ``-3`` … when taken; mkdir is atomic)."""
    base = f"{now_utc.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}_{safe_name(name)}"
    parent = fleets_root(evidence_root)
    parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        folder = parent / (base if n == 1 else f"{base}-{n}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise EvidenceError(str(parent / base), "999 fleet folders already use this name and second")


def fleet_link(fleet_dir: str | os.PathLike[str]) -> dict[str, str]:
    """``{"fleet_id", "fleet_json_sha256"}`` of a written fleet record (a chain or continue link)."""
    raw = (Path(fleet_dir) / FLEET_JSON).read_bytes()
    return {
        "fleet_id": str(json.loads(raw).get("fleet_id")),
        "fleet_json_sha256": hashlib.sha256(raw).hexdigest(),
    }


def write_fleet_record(
    evidence_root: str | os.PathLike[str],
    name: str,
    outcomes: Iterable[HostOutcome],
    *,
    previous: str | os.PathLike[str] | None = None,
    fleet_dir: str | os.PathLike[str] | None = None,
    started_utc: dt.datetime | None = None,
    settings: Mapping[str, Any] | None = None,
    result: str = "completed",
    stop_reason: str = "",
    batches: Sequence[Sequence[str]] = (),
    inventory: str = "",
    operator: str = "",
    hmac_key: bytes | None = None,
    now_utc: dt.datetime | None = None,
) -> Path:
    """Write ``fleet.json`` (and the fleet report) into ``fleet_dir`` (created when not given) and add it to
    the fleets' head record. ``previous``: the earlier attempt this one continues (its fleet folder).
    Returns the fleet folder."""
    finished = now_utc or dt.datetime.now(dt.UTC)
    folder = Path(fleet_dir) if fleet_dir else new_fleet_dir(evidence_root, name, now_utc=finished)
    hosts = [o.row() for o in outcomes]
    counts = {s: sum(1 for h in hosts if h["status"] == s) for s in STATUSES}
    newest = heads.read_heads(fleets_root(evidence_root), newest_only=True)
    chained: dict[str, str] | None = None
    if newest and newest[-1].doc:
        earlier = fleets_root(evidence_root) / newest[-1].run_id
        if (earlier / FLEET_JSON).is_file():
            chained = fleet_link(earlier)
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "kind": KIND,
        "fleet_id": folder.name,
        "name": name,
        "kit_version": __version__,
        "operator": operator,
        "inventory": inventory,
        "started_utc": iso_utc(started_utc or finished),
        "finished_utc": iso_utc(finished),
        "result": result,
        "stop_reason": stop_reason,
        "settings": dict(settings or {}),
        "batches": [list(b) for b in batches],
        "counts": counts,
        "hosts": hosts,
        "hosts_sha256": hosts_digest(hosts),
        "previous_fleet": chained,
        "continues": fleet_link(previous) if previous else None,
    }
    write_fleet_report(folder, doc)
    doc["files"] = {k: v for k, v in hash_files(folder).items() if k != FLEET_JSON}
    doc = redacted_doc(doc)
    if hmac_key:
        doc["hmac"] = sign_hmac(doc, hmac_key)
    _write_json(folder / FLEET_JSON, doc)
    heads.append_head(
        fleets_root(evidence_root), folder, hmac_key=hmac_key, manifest=FLEET_JSON, id_key="fleet_id"
    )
    return folder


def hosts_digest(hosts: Sequence[Mapping[str, Any]]) -> str:
    """The one SHA-256 over every host's entry (canonical JSON of the list)."""
    return hashlib.sha256(canonical_json({"hosts": list(hosts)})).hexdigest()


def _write_json(path: Path, doc: Mapping[str, Any]) -> None:
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=".fleet.json.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- reading ------------------------------------------------------------------------------------------------


def is_fleet_dir(path: str | os.PathLike[str]) -> bool:
    return (Path(path) / FLEET_JSON).is_file()


def read_fleet(fleet_dir: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(fleet_dir) / FLEET_JSON
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise EvidenceError(str(path), "missing: this is not a fleet folder (no fleet.json)") from None
    except (OSError, ValueError) as exc:
        raise EvidenceError(
            str(path), f"unreadable ({type(exc).__name__})", hint="restore it from your backup copy"
        ) from None
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        raise EvidenceError(str(path), "not a fleet record", hint="restore it from your backup copy")
    return doc


def fleet_dirs(evidence_root: str | os.PathLike[str]) -> list[Path]:
    """Every fleet folder of the root, oldest first (by name: the UTC start)."""
    parent = fleets_root(evidence_root)
    if not parent.is_dir():
        return []
    found = [p for p in parent.iterdir() if p.is_dir() and not p.name.startswith(".") and is_fleet_dir(p)]
    # The name starts with the UTC second; within one second, the order the records were written.
    return sorted(found, key=lambda p: (p.name.split("_", 1)[0], (p / FLEET_JSON).stat().st_mtime_ns, p.name))


def latest_fleet(evidence_root: str | os.PathLike[str], name: str, *, exclude: str = "") -> Path | None:
    """The newest fleet record of ``name`` in the root (the attempt a new rollout continues)."""
    found = None
    for folder in fleet_dirs(evidence_root):
        if folder.name == exclude:
            continue
        try:
            if read_fleet(folder).get("name") == name:
                found = folder
        except EvidenceError:
            continue
    return found


def fleet_rows(evidence_root: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """One row per fleet record (``opslib evidence list``): id, name, result, counts, times."""
    rows: list[dict[str, Any]] = []
    for folder in fleet_dirs(evidence_root):
        try:
            doc = read_fleet(folder)
        except EvidenceError as exc:
            rows.append(
                {"fleet_id": folder.name, "result": "unreadable", "error": str(exc), "path": str(folder)}
            )
            continue
        counts = doc.get("counts") if isinstance(doc.get("counts"), dict) else {}
        rows.append(
            {
                "fleet_id": doc.get("fleet_id"),
                "name": doc.get("name"),
                "result": doc.get("result"),
                "hosts": len(doc.get("hosts") or []),
                "counts": counts,
                "started_utc": doc.get("started_utc"),
                "finished_utc": doc.get("finished_utc"),
                "continues": (doc.get("continues") or {}).get("fleet_id") if doc.get("continues") else None,
                "path": str(folder),
            }
        )
    return rows


# --- verifying ----------------------------------------------------------------------------------------------


def verify_fleet(fleet_dir: str | os.PathLike[str], *, hmac_key: bytes | None = None) -> VerifyReport:
    """Every check of one fleet record: its files, the host list's hash, each host's run.json against the
    SHA-256 recorded (a changed one named by host), the link to the previous fleet record, its head entry
    and, with a key, its HMAC."""
    folder = Path(fleet_dir)
    root = folder.resolve().parent.parent
    record = folder / FLEET_JSON
    try:
        doc = read_fleet(folder)
        raw = record.read_bytes()
    except EvidenceError as exc:
        return VerifyReport(folder.name, str(folder), (Problem("unreadable", str(record), exc.problem),))
    problems: list[Problem] = []
    recorded = doc.get("files") if isinstance(doc.get("files"), dict) else {}
    assert isinstance(recorded, dict)
    actual = {k: v for k, v in hash_files(folder).items() if k != FLEET_JSON}
    for rel in sorted(set(recorded) | set(actual)):
        where = str(folder / rel)
        if rel not in actual:
            problems.append(
                Problem("missing", where, "recorded in fleet.json, no longer in the fleet folder")
            )
        elif rel not in recorded:
            problems.append(Problem("added", where, "not recorded in fleet.json (added afterwards)"))
        elif recorded[rel] != actual[rel]:
            problems.append(
                Problem("edited", where, "SHA-256 differs from fleet.json: changed after the record")
            )
    hosts = doc.get("hosts") if isinstance(doc.get("hosts"), list) else []
    assert isinstance(hosts, list)
    if hosts_digest(hosts) != doc.get("hosts_sha256"):
        problems.append(Problem("edited", str(record), "the host list no longer matches hosts_sha256"))
    for host in hosts:
        problems += _host_problems(host, root)
    problems += _link_problems(doc, root)
    hmac_checked = False
    if hmac_key:
        signed = doc.get("hmac")
        if not signed:
            problems.append(Problem("hmac", str(record), "fleet.json not signed with the HMAC key"))
        elif not hmac_.compare_digest(str(signed), sign_hmac(doc, hmac_key)):
            problems.append(
                Problem("hmac", str(record), "HMAC mismatch: fleet.json changed, or the key is wrong")
            )
        else:
            hmac_checked = True
    problems += _fleet_head_problems(folder, raw, hmac_key=hmac_key)
    return VerifyReport(
        str(doc.get("fleet_id") or folder.name), str(folder), tuple(problems), len(actual), hmac_checked
    )


def _host_problems(host: Any, root: Path) -> list[Problem]:
    if not isinstance(host, dict) or not host.get("run_id") or not host.get("run_json_sha256"):
        return []
    name, run_id = host.get("name"), host.get("run_id")
    run_json = root / str(host.get("run_dir") or run_id) / "run.json"
    try:
        now = hashlib.sha256(run_json.read_bytes()).hexdigest()
    except OSError:
        return [
            Problem(
                "removed", str(run_json.parent), f"host {name}: run {run_id} is gone from the evidence root"
            )
        ]
    if now != host["run_json_sha256"]:
        return [
            Problem(
                "altered",
                str(run_json),
                f"host {name}: run {run_id}'s run.json changed after the fleet record was written "
                f"(SHA-256 {now[:12]}… differs from the {str(host['run_json_sha256'])[:12]}… recorded)",
            )
        ]
    return []


def _link_problems(doc: Mapping[str, Any], root: Path) -> list[Problem]:
    problems = []
    for key in ("previous_fleet", "continues"):
        link = doc.get(key)
        if not isinstance(link, dict):
            continue
        target = fleets_root(root) / str(link.get("fleet_id"))
        try:
            digest = hashlib.sha256((target / FLEET_JSON).read_bytes()).hexdigest()
        except OSError:
            problems.append(
                Problem("chain", str(target), f"{key}: fleet record {link.get('fleet_id')} is gone")
            )
            continue
        if digest != link.get("fleet_json_sha256"):
            problems.append(
                Problem(
                    "chain",
                    str(target / FLEET_JSON),
                    f"{key}: changed after the later fleet record linked it",
                )
            )
    return problems


def _fleet_head_problems(folder: Path, raw: bytes, *, hmac_key: bytes | None) -> list[Problem]:
    entries = heads.read_heads(folder.parent)
    listed = heads.finalized_entries(entries)
    entry = listed.get(folder.name)
    problems = [
        Problem(f.kind, f.path, f.detail)
        for f in heads.check_heads(entries, hmac_key=hmac_key)
        if entry is None or f.kind != "hmac" or f.path == entry.path
    ]
    if entry is None:
        problems.append(Problem("head", str(folder / FLEET_JSON), "not in the fleets' head record"))
    elif entry.doc and entry.doc.get("run_json_sha256") != hashlib.sha256(raw).hexdigest():
        problems.append(
            Problem(
                "altered",
                str(folder / FLEET_JSON),
                f"fleet.json changed after the head record (entry {entry.seq}) recorded it",
            )
        )
    return problems


def verify_fleets(
    evidence_root: str | os.PathLike[str], *, hmac_key: bytes | None = None
) -> list[VerifyReport]:
    """:func:`verify_fleet` for every fleet record of the root, plus records the head log lists that are gone."""
    folders = fleet_dirs(evidence_root)
    reports = [verify_fleet(f, hmac_key=hmac_key) for f in folders]
    names = {f.name for f in folders}
    for run_id in sorted(set(heads.finalized_entries(heads.read_heads(fleets_root(evidence_root)))) - names):
        where = str(fleets_root(evidence_root) / run_id)
        reports.append(
            VerifyReport(
                run_id,
                where,
                (
                    Problem(
                        "removed",
                        where,
                        "the fleets' head record lists this fleet record; its folder is gone",
                    ),
                ),
            )
        )
    return reports
