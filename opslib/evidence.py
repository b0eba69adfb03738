"""Evidence: the run folder, its manifest (``run.json``), hashes, facts recorded in notebooks, and
reading runs back for review.

One renewal run leaves one folder ``<root>/<UTC yyyymmddThhmmssZ>_<host>_<site>/`` (DESIGN.md §7).
Its ``run.json`` says who ran what, when, with which parameters (secrets only as references), how
every step ended, the facts the steps recorded, the SHA-256 of every other file in the folder, and
the SHA-256 of the previous run's ``run.json`` in the same root: a chain across runs, so that an
edited, added or removed file — or a removed run — shows up in :func:`verify_root`.
An optional HMAC-SHA256 over the canonical ``run.json`` also protects the newest run of a chain.

Writing (called by :mod:`opslib.runbook`): :func:`new_run`, :func:`update_run`, :func:`finalize_run`;
in a notebook's last cell :func:`record`, read back with :func:`read_facts`.
Reading: :func:`load_runs` (one row per run, from ``run.json`` files only), :func:`load_run`.
Integrity: :func:`verify_run`, :func:`verify_root`. The command line's ``opslib evidence
list|show|verify`` are :func:`cli_list`, :func:`cli_show`, :func:`cli_verify`; the review notebook's
helpers are :func:`select_runs`, :func:`style_runs`, :func:`problems_table`, :func:`pick_run`, :func:`pick_comparison`,
:func:`summary_table`, :func:`expiry_table`, :func:`plot_expiry`, :func:`compare_runs`.

pandas and matplotlib are imported inside the functions that need them: the runbook and every step
kernel import this module, and writing evidence must stay cheap. Field reference: docs/evidence.md.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import hmac as hmac_
import itertools
import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .errors import EvidenceError, UsageError
from .secrets import MASK, is_reference, redact

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure
    from pandas.io.formats.style import Styler

SCHEMA = 1
RUN_JSON = "run.json"
TRANSCRIPT = "transcript.jsonl"
FACTS_MIME = "application/vnd.opslib.facts+json"
STATUSES = ("running", "succeeded", "failed")
UNREADABLE = "unreadable"  # status shown by load_runs for a run.json that cannot be read

RUN_COLUMNS = (
    "run_id",
    "host",
    "site",
    "operator",
    "started_utc",
    "finished_utc",
    "status",
    "failed_step",
    "dry_run",
    "old_thumbprint",
    "old_not_after_utc",
    "new_thumbprint",
    "new_not_after_utc",
    "backup_sha256",
    "kit_version",
    "path",
)
_DATETIME_COLUMNS = ("started_utc", "finished_utc", "old_not_after_utc", "new_not_after_utc")
_FACT_COLUMNS = (
    "old_thumbprint",
    "old_not_after_utc",
    "new_thumbprint",
    "new_not_after_utc",
    "backup_sha256",
)
_PROTECTED = frozenset({"schema", "run_id", "files", "previous_run", "hmac"})  # set by new_run/finalize_run
_SECRET_KEY = re.compile(r"password|passphrase|secret|hmac_key", re.IGNORECASE)
_TMP_PREFIX = ".run.json."
_STATUS_COLOURS = {
    "succeeded": "#d8f0d8",
    "failed": "#f8d0d0",
    "running": "#fff0c0",
    UNREADABLE: "#e0e0e0",
}


# --- small helpers ------------------------------------------------------------------------------


def _require_utc(value: dt.datetime, name: str) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise EvidenceError(
            name, f"expected a timezone-aware datetime, got {value!r}", hint="pass datetime.now(UTC)"
        )
    return value.astimezone(dt.UTC)


def iso_utc(value: dt.datetime) -> str:
    """``2026-11-26T19:45:00Z``: the one way a datetime is written into evidence."""
    return _require_utc(value, "datetime").isoformat().replace("+00:00", "Z")


def _parse_utc(value: object) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(dt.UTC) if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _plain(value: Any, where: str = "value") -> Any:
    """``value`` as plain JSON data: datetimes become ISO ``Z`` strings, NaN/NaT become null."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if type(value).__name__ in ("NaTType", "NAType"):  # pandas' missing values
        return None
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise EvidenceError(
                where,
                f"naive datetime {value.isoformat()} cannot be recorded",
                hint="use a tz-aware UTC datetime",
            )
        return iso_utc(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, os.PathLike):
        return Path(value).as_posix()
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        return sorted(_plain(v, where) for v in value)
    if hasattr(value, "row") and callable(value.row):  # the kit's frozen facts (StoreEntry, Site, …)
        return _plain(value.row(), where)
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        return _plain(value.item(), where)
    raise EvidenceError(
        where,
        f"{type(value).__name__} is not JSON-serializable",
        hint="record strings, numbers, booleans, lists, dicts or tz-aware datetimes",
    )


def _mask_literal_secrets(value: Any) -> Any:
    """Parameters keep secrets only as references; a literal under a password-like key is masked."""
    if isinstance(value, dict):
        return {
            k: (
                MASK
                if _SECRET_KEY.search(k) and isinstance(v, str) and v and not is_reference(v)
                else _mask_literal_secrets(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_mask_literal_secrets(v) for v in value]
    return value


def _safe_name(value: str) -> str:
    """A host or site name as a file-name part: letters, digits, ``.`` and ``-`` (``_`` separates)."""
    text = re.sub(r"[^A-Za-z0-9.-]+", "-", value).strip(".-")
    return re.sub(r"-{2,}", "-", text)[:64] or "unnamed"


def _sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _hash_files(run_dir: Path) -> dict[str, str]:
    """SHA-256 of every file below ``run_dir`` except its ``run.json`` (relative POSIX paths, sorted)."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(run_dir):
        dirnames.sort()
        rel_dir = Path(dirpath).relative_to(run_dir)
        for name in filenames:
            rel = (rel_dir / name).as_posix()
            if rel == RUN_JSON:
                continue
            out[rel] = _sha256_file(os.path.join(dirpath, name))
    return dict(sorted(out.items()))


def _canonical(doc: Mapping[str, Any]) -> bytes:
    """The bytes the HMAC covers: run.json without ``hmac``, keys sorted, compact, UTF-8."""
    body = {k: v for k, v in doc.items() if k != "hmac"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _hmac(doc: Mapping[str, Any], key: bytes) -> str:
    return hmac_.new(key, _canonical(doc), hashlib.sha256).hexdigest()


def _redacted(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with every registered secret replaced by ``[REDACTED]`` (:func:`opslib.secrets.redact`)."""
    return json.loads(redact(json.dumps(doc, ensure_ascii=False)))


def _write_run_json(run_dir: Path, doc: dict[str, Any]) -> None:
    """Atomic rewrite: a temporary file in the same folder, fsync, rename over run.json."""
    text = json.dumps(_redacted(doc), indent=2, ensure_ascii=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=".tmp", dir=run_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, run_dir / RUN_JSON)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_run_json(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(run_dir) / RUN_JSON
    if not Path(run_dir).is_dir():
        raise EvidenceError(str(run_dir), "no such run folder", hint="give a folder made by `opslib run`")
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise EvidenceError(str(path), "missing: this is not a run folder (no run.json)") from None
    except (OSError, ValueError) as exc:
        raise EvidenceError(
            str(path), f"unreadable ({type(exc).__name__}: {exc})", hint="restore it from your backup copy"
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("run_id"), str):
        raise EvidenceError(
            str(path), "not a run manifest (no run_id)", hint="restore it from your backup copy"
        )
    return doc


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
) -> Path:
    """Create ``<root>/<UTC yyyymmddThhmmssZ>_<host>_<site>/`` (``-2``, ``-3`` … if taken) and its first
    ``run.json`` with status ``running``. Returns the folder."""
    started = _require_utc(now_utc, "now_utc")
    root_path = Path(root)
    root_path.mkdir(parents=True, exist_ok=True)
    base = f"{started:%Y%m%dT%H%M%SZ}_{_safe_name(host)}_{_safe_name(site)}"
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
        "parameters": _mask_literal_secrets(_plain(parameters, "parameters")),
        "steps": [],
        "facts": {},
        "tls_validation": tls_validation,
        "files": {},
        "previous_run": None,
    }
    _write_run_json(run_dir, doc)
    return run_dir


def update_run(run_dir: str | os.PathLike[str], **fields: Any) -> dict[str, Any]:
    """Rewrite ``run.json`` atomically with ``fields``; returns the new manifest.

    ``steps`` (a list of step dicts, or one) is merged by ``name`` — a known step is updated, its
    ``facts`` merged; a new one is appended. ``facts`` is merged into the run's facts. Any other
    field replaces the old value. ``schema``, ``run_id``, ``files``, ``previous_run`` and ``hmac``
    belong to :func:`new_run` / :func:`finalize_run`.
    """
    path = Path(run_dir)
    protected = sorted(_PROTECTED & fields.keys())
    if protected:
        raise EvidenceError(str(path / RUN_JSON), f"{', '.join(protected)} cannot be set by update_run")
    status = fields.get("status")
    if status is not None and status not in STATUSES:
        raise EvidenceError(str(path / RUN_JSON), f"status {status!r} is not one of {', '.join(STATUSES)}")
    doc = _read_run_json(path)
    for key, value in fields.items():
        if key == "steps":
            steps = [value] if isinstance(value, Mapping) else list(value)
            merged: list[dict[str, Any]] = list(doc.get("steps") or [])
            for step in steps:
                step = _plain(step, "steps")
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
            doc["facts"] = {**(doc.get("facts") or {}), **_plain(value, "facts")}
        elif key == "parameters":
            doc["parameters"] = _mask_literal_secrets(_plain(value, "parameters"))
        else:
            doc[key] = _plain(value, key)
    _write_run_json(path, doc)
    return doc


def finalize_run(
    run_dir: str | os.PathLike[str], *, now_utc: dt.datetime, hmac_key: bytes | None = None
) -> dict[str, Any]:
    """Close the run: ``finished_utc``, ``files`` (SHA-256 of every other file), ``previous_run`` (the
    newest other finalized run of the same root that started earlier) and, with a key, ``hmac``.

    Call it after the last file is written and ``status`` is ``succeeded`` or ``failed``; anything
    written to the folder later shows up in :func:`verify_run`. Returns the new manifest.
    """
    path = Path(run_dir)
    doc = _read_run_json(path)
    if doc.get("status") not in ("succeeded", "failed"):
        raise EvidenceError(
            str(path / RUN_JSON),
            f"cannot finalize a run whose status is {doc.get('status')!r}",
            hint="set status to succeeded or failed with update_run first",
        )
    doc["finished_utc"] = iso_utc(now_utc)
    doc["files"] = _hash_files(path)
    doc["previous_run"] = _previous_run(path, doc)
    doc.pop("hmac", None)
    doc = _redacted(doc)  # sign exactly what is written
    if hmac_key:
        doc["hmac"] = _hmac(doc, hmac_key)
    _write_run_json(path, doc)
    return doc


def _previous_run(run_dir: Path, doc: Mapping[str, Any]) -> dict[str, str] | None:
    """The chain link: the newest other finalized run of the same root that started before ``doc``."""
    started = _parse_utc(doc.get("started_utc"))
    candidates: list[tuple[dt.datetime, str, _Entry]] = []
    for entry in _scan(run_dir.parent):
        if entry.doc is None or entry.run_id == doc["run_id"] or not _is_finalized(entry.doc):
            continue
        other = _parse_utc(entry.doc.get("started_utc"))
        if started is not None and other is not None and other < started:
            candidates.append((other, entry.run_id, entry))
    if not candidates:
        return None
    best = max(candidates, key=lambda c: (c[0], c[1]))[2]
    return {"run_id": best.run_id, "run_json_sha256": hashlib.sha256(best.raw).hexdigest()}


def _is_finalized(doc: Mapping[str, Any]) -> bool:
    return doc.get("status") in ("succeeded", "failed") and bool(doc.get("finished_utc"))


def record(facts: Mapping[str, Any]) -> None:
    """A notebook's last cell: show ``facts`` as a table and store them as an output of MIME type
    ``application/vnd.opslib.facts+json`` for :func:`read_facts` (the runner) and reviewers."""
    import pandas as pd
    from IPython.display import display

    plain = _plain(facts, "facts")
    if not isinstance(plain, dict):
        raise EvidenceError(
            "facts", f"expected a mapping of fact names to values, got {type(facts).__name__}"
        )
    plain = _redacted(plain)
    table = pd.DataFrame(
        {"fact": list(plain), "value": [_cell_text(v) for v in plain.values()]},
        columns=["fact", "value"],
    )
    display(table)
    display({FACTS_MIME: plain}, raw=True)


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


def _cell_text(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else str(value)


# --- reading ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    """One folder of a root as scanned: its name, path, raw run.json bytes and parsed manifest."""

    name: str
    path: str
    raw: bytes = b""
    doc: dict[str, Any] | None = None
    problem: str = ""

    @property
    def run_id(self) -> str:
        return str(self.doc.get("run_id")) if self.doc else self.name


def _scan(root: str | os.PathLike[str]) -> list[_Entry]:
    """Every run folder of ``root`` (folders holding a run.json), sorted by name. Fast: scandir + json."""
    entries: list[_Entry] = []
    try:
        it = os.scandir(root)
    except FileNotFoundError:
        raise EvidenceError(
            str(root),
            "no such evidence root",
            hint="pass --root DIR (runs are written to ./evidence by default)",
        ) from None
    except NotADirectoryError:
        raise EvidenceError(str(root), "not a folder", hint="pass the evidence root folder") from None
    with it:
        for item in it:
            if item.name.startswith(".") or not item.is_dir():
                continue
            try:
                with open(os.path.join(item.path, RUN_JSON), "rb") as fh:
                    raw = fh.read()
            except (FileNotFoundError, NotADirectoryError):
                continue  # not a run folder
            except OSError as exc:
                entries.append(_Entry(item.name, item.path, problem=f"run.json unreadable ({exc.strerror})"))
                continue
            try:
                doc = json.loads(raw)
            except ValueError as exc:
                entries.append(
                    _Entry(item.name, item.path, raw, problem=f"run.json is not valid JSON ({exc})")
                )
                continue
            if not isinstance(doc, dict) or not isinstance(doc.get("run_id"), str):
                entries.append(_Entry(item.name, item.path, raw, problem="run.json is not a run manifest"))
                continue
            entries.append(_Entry(item.name, item.path, raw, doc))
    entries.sort(key=lambda e: e.name)
    return entries


def _row(entry: _Entry) -> dict[str, Any]:
    doc = entry.doc
    if doc is None:
        row: dict[str, Any] = dict.fromkeys(RUN_COLUMNS)
        row.update(run_id=entry.name, status=UNREADABLE, path=entry.path)
        return row
    raw_facts = doc.get("facts")
    facts: dict[str, Any] = raw_facts if isinstance(raw_facts, dict) else {}
    return {
        "run_id": doc.get("run_id"),
        "host": doc.get("host"),
        "site": doc.get("site"),
        "operator": doc.get("operator"),
        "started_utc": doc.get("started_utc"),
        "finished_utc": doc.get("finished_utc"),
        "status": doc.get("status"),
        "failed_step": doc.get("failed_step"),
        "dry_run": bool(doc.get("dry_run")),
        **{name: facts.get(name) for name in _FACT_COLUMNS},
        "kit_version": doc.get("kit_version"),
        "path": entry.path,
    }


def load_runs(root: str | os.PathLike[str]) -> pd.DataFrame:
    """One row per run of ``root`` (columns :data:`RUN_COLUMNS`), oldest first, read from run.json
    files only; datetimes are tz-aware UTC. A run.json that cannot be read gives a row with status
    ``unreadable`` rather than disappearing."""
    import pandas as pd

    df = pd.DataFrame([_row(e) for e in _scan(root)], columns=list(RUN_COLUMNS))
    for column in _DATETIME_COLUMNS:
        df[column] = pd.to_datetime(df[column], utc=True, format="ISO8601", errors="coerce")
    df["dry_run"] = df["dry_run"].fillna(False).astype(bool)
    return df.sort_values(["started_utc", "run_id"], na_position="first", kind="stable").reset_index(
        drop=True
    )


@dataclass(frozen=True, eq=False)
class RunRecord:
    """One run read back: its manifest, a per-step table and the transcript of remote commands."""

    path: Path
    run: dict[str, Any]
    steps: pd.DataFrame  # name, notebook, status, started_utc, finished_utc, duration_s, facts, error
    transcript: pd.DataFrame  # what, command, exit_code, duration_s (empty without transcript.jsonl)
    transcript_problems: tuple[str, ...] = field(default=())

    @property
    def run_id(self) -> str:
        return str(self.run.get("run_id"))

    @property
    def facts(self) -> dict[str, Any]:
        facts = self.run.get("facts")
        return dict(facts) if isinstance(facts, dict) else {}

    @property
    def renders(self) -> list[Path]:
        """The nbconvert HTML renders for reviewers."""
        return sorted(self.path.rglob("*.html"))

    def transcript_summary(self) -> dict[str, Any]:
        """Commands run, how many exited non-zero, and the total time they took."""
        t = self.transcript
        return {
            "commands": len(t),
            "nonzero_exits": int((t["exit_code"].dropna() != 0).sum()),
            "total_duration_s": round(float(t["duration_s"].fillna(0).sum()), 3),
            "unreadable_lines": len(self.transcript_problems),
        }


_STEP_COLUMNS = ("name", "notebook", "status", "started_utc", "finished_utc", "duration_s", "facts", "error")
_TRANSCRIPT_COLUMNS = ("what", "command", "exit_code", "duration_s")


def load_run(path: str | os.PathLike[str]) -> RunRecord:
    """One run folder read back (manifest, steps, transcript)."""
    import pandas as pd

    run_dir = Path(path)
    doc = _read_run_json(run_dir)
    steps = pd.DataFrame(
        [{c: s.get(c) for c in _STEP_COLUMNS} for s in doc.get("steps") or []], columns=list(_STEP_COLUMNS)
    )
    for column in ("started_utc", "finished_utc"):
        steps[column] = pd.to_datetime(steps[column], utc=True, format="ISO8601", errors="coerce")
    steps["duration_s"] = pd.to_numeric(steps["duration_s"], errors="coerce")
    rows, problems = _read_transcript(run_dir / TRANSCRIPT)
    transcript = pd.DataFrame(rows, columns=list(_TRANSCRIPT_COLUMNS))
    transcript["exit_code"] = pd.to_numeric(transcript["exit_code"], errors="coerce").astype("Int64")
    transcript["duration_s"] = pd.to_numeric(transcript["duration_s"], errors="coerce")
    return RunRecord(run_dir, doc, steps, transcript, tuple(problems))


def _read_transcript(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """transcript.jsonl: one JSON object per remote command (written by the transport)."""
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return rows, problems
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            problems.append(f"{path.name} line {number}: not JSON")
            continue
        if not isinstance(item, dict):
            problems.append(f"{path.name} line {number}: not an object")
            continue
        command = item.get("command_line") or item.get("command")
        if not command and isinstance(item.get("argv"), list):
            command = " ".join(str(a) for a in item["argv"])
        rows.append(
            {
                "what": item.get("what") or item.get("kind") or "",
                "command": redact(str(command or "")),
                "exit_code": item.get("exit_code"),
                "duration_s": item.get("duration_s"),
            }
        )
    return rows, problems


# --- integrity ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the evidence. ``path`` names the file (or run folder) concerned."""

    kind: str  # edited | added | missing | hmac | chain | unfinalized | unreadable | renamed
    path: str
    detail: str

    def line(self) -> str:
        return f"{self.path}: {self.kind}: {self.detail}"

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "path": self.path, "detail": self.detail}


@dataclass(frozen=True)
class VerifyReport:
    """The integrity result of one run folder: empty ``problems`` means every check passed."""

    run_id: str
    run_dir: str
    problems: tuple[Problem, ...]
    files_checked: int = 0
    hmac_checked: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "run_dir": self.run_dir,
            "ok": self.ok,
            "files_checked": self.files_checked,
            "hmac_checked": self.hmac_checked,
            "problems": [p.as_dict() for p in self.problems],
        }


def _short(digest: str) -> str:
    return f"{digest[:12]}…"


def _check_entry(entry: _Entry, *, hmac_key: bytes | None) -> tuple[list[Problem], int, bool]:
    """Files and HMAC of one run; returns (problems, files checked, hmac checked)."""
    run_json = os.path.join(entry.path, RUN_JSON)
    if entry.doc is None:
        return [Problem(UNREADABLE, run_json, f"{entry.problem}; restore it from your backup copy")], 0, False
    doc = entry.doc
    problems: list[Problem] = []
    if doc.get("run_id") != entry.name:
        problems.append(
            Problem(
                "renamed",
                entry.path,
                f"run.json belongs to run {doc.get('run_id')}, the folder is {entry.name}",
            )
        )
    if not _is_finalized(doc):
        problems.append(
            Problem(
                "unfinalized",
                run_json,
                f"status {doc.get('status')!r} and no file hashes: the run is still in progress or was "
                "interrupted; finish it with `opslib resume` before relying on it",
            )
        )
        return problems, 0, False
    files = doc.get("files")
    recorded: dict[str, Any] = files if isinstance(files, dict) else {}
    actual = _hash_files(Path(entry.path))
    for rel in sorted(recorded.keys() | actual.keys()):
        where = os.path.join(entry.path, *rel.split("/"))
        if rel not in actual:
            problems.append(Problem("missing", where, "listed in run.json but no longer in the folder"))
        elif rel not in recorded:
            problems.append(Problem("added", where, "in the folder but not listed in run.json"))
        elif recorded[rel] != actual[rel]:
            problems.append(
                Problem(
                    "edited",
                    where,
                    f"SHA-256 {_short(actual[rel])} differs from the {_short(str(recorded[rel]))} in run.json",
                )
            )
    hmac_checked = False
    if hmac_key:
        hmac_checked = True
        signed = doc.get("hmac")
        if not signed:
            problems.append(
                Problem("hmac", run_json, "no hmac in run.json (the run was finalized without a key)")
            )
        elif not hmac_.compare_digest(str(signed), _hmac(doc, hmac_key)):
            problems.append(
                Problem(
                    "hmac",
                    run_json,
                    "HMAC mismatch: run.json changed after it was signed, or the key is wrong",
                )
            )
    return problems, len(actual), hmac_checked


def _check_link(entry: _Entry, by_id: Mapping[str, _Entry], root: str) -> list[Problem]:
    """The chain link from ``entry`` back to its previous run."""
    link = entry.doc.get("previous_run") if entry.doc else None
    if not isinstance(link, dict):
        return []
    prev_id = str(link.get("run_id"))
    prev = by_id.get(prev_id)
    if prev is None:
        return [
            Problem(
                "chain",
                os.path.join(root, prev_id),
                f"run {entry.run_id} points back at this run, which no longer exists in {root or '.'} "
                "(a run was removed from the chain)",
            )
        ]
    actual = hashlib.sha256(prev.raw).hexdigest()
    recorded = str(link.get("run_json_sha256"))
    if actual != recorded:
        return [
            Problem(
                "chain",
                os.path.join(prev.path, RUN_JSON),
                f"SHA-256 {_short(actual)} differs from the {_short(recorded)} that the next run "
                f"{entry.run_id} recorded: this run.json changed after that run was finalized",
            )
        ]
    return []


def verify_run(run_dir: str | os.PathLike[str], *, hmac_key: bytes | None = None) -> VerifyReport:
    """Recompute one run's hashes: every edited, added or missing file, an HMAC mismatch (with a key),
    and the chain links into and out of this run (its previous run; later runs pointing at it)."""
    path = Path(run_dir)
    if not path.is_dir():
        raise EvidenceError(str(run_dir), "no such run folder", hint="give a folder made by `opslib run`")
    if not (path / RUN_JSON).exists():
        raise EvidenceError(str(path / RUN_JSON), "missing: this is not a run folder (no run.json)")
    real = path.resolve()
    given = os.path.normpath(os.fspath(run_dir))
    # Name files as the user named the folder; "." (inside a run folder) falls back to absolute paths.
    root = os.path.dirname(given) if os.path.basename(given) == real.name else os.fspath(real.parent)
    entries = [
        _Entry(e.name, os.path.join(root, e.name), e.raw, e.doc, e.problem) for e in _scan(real.parent)
    ]
    entry = next((e for e in entries if e.name == real.name), None)
    if entry is None:  # the folder vanished between the checks above and the scan
        raise EvidenceError(str(run_dir), "the run folder disappeared while it was being verified")
    problems, files_checked, hmac_checked = _check_entry(entry, hmac_key=hmac_key)
    by_id = {e.run_id: e for e in entries}  # unreadable ones too, by folder name
    problems += _check_link(entry, by_id, root)
    for later in entries:
        link = later.doc.get("previous_run") if later.doc else None
        if isinstance(link, dict) and link.get("run_id") == entry.run_id and later.name != entry.name:
            problems += _check_link(later, {entry.run_id: entry}, root)
    return VerifyReport(entry.run_id, entry.path, tuple(problems), files_checked, hmac_checked)


def verify_root(root: str | os.PathLike[str], *, hmac_key: bytes | None = None) -> list[VerifyReport]:
    """:func:`verify_run` for every run of ``root`` plus every break in the chain: a previous run that
    no longer exists (a removed run), a previous run.json that changed, and a run that starts a new
    chain although an earlier run had been finalized before it."""
    root_s = os.fspath(root)
    entries = _scan(root)
    by_id = {e.run_id: e for e in entries}  # unreadable ones too, by folder name
    # For the cut-chain check: finalized runs by start time, with the earliest finish among those so far.
    finalized = sorted(
        (started, finished, e.run_id)
        for e in entries
        if e.doc is not None and _is_finalized(e.doc)
        for started, finished in [
            (_parse_utc(e.doc.get("started_utc")), _parse_utc(e.doc.get("finished_utc")))
        ]
        if started is not None and finished is not None
    )
    starts = [f[0] for f in finalized]
    first_finished: list[tuple[dt.datetime, str]] = list(
        itertools.accumulate(((f[1], f[2]) for f in finalized), min)
    )
    reports: list[VerifyReport] = []
    for entry in entries:
        problems, files_checked, hmac_checked = _check_entry(entry, hmac_key=hmac_key)
        problems += _check_link(entry, by_id, root_s)
        doc = entry.doc
        if doc is not None and _is_finalized(doc) and doc.get("previous_run") is None:
            started, finished = _parse_utc(doc.get("started_utc")), _parse_utc(doc.get("finished_utc"))
            before = bisect.bisect_left(starts, started) if started is not None else 0
            if before and finished is not None and first_finished[before - 1][0] <= finished:
                problems.append(
                    Problem(
                        "chain",
                        os.path.join(entry.path, RUN_JSON),
                        f"previous_run is empty although run {first_finished[before - 1][1]} started and was "
                        "finalized before it (the chain was cut here)",
                    )
                )
        reports.append(VerifyReport(entry.run_id, entry.path, tuple(problems), files_checked, hmac_checked))
    return reports


# --- command line -------------------------------------------------------------------------------


def select_runs(
    df: pd.DataFrame,
    *,
    host: str | None = "",
    site: str | None = "",
    since: str | None = "",
    status: str | None = "",
) -> pd.DataFrame:
    """Rows of :func:`load_runs` matching every given filter (host and site case-insensitive, ``since``
    a UTC date ``YYYY-MM-DD`` or ISO datetime, ``status`` one of running/succeeded/failed/unreadable)."""
    import pandas as pd

    mask = pd.Series(True, index=df.index)
    if host:
        mask &= df["host"].fillna("").str.lower() == host.lower()
    if site:
        mask &= df["site"].fillna("").str.lower() == site.lower()
    if since:
        since_utc = _parse_since(since)
        mask &= df["started_utc"] >= pd.Timestamp(since_utc)
    if status:
        if status not in (*STATUSES, UNREADABLE):
            raise UsageError(f"--status {status!r}: expected one of {', '.join((*STATUSES, UNREADABLE))}")
        mask &= df["status"] == status
    return df[mask].reset_index(drop=True)


def _parse_since(since: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(since.strip())
    except ValueError:
        raise UsageError(f"--since {since!r}: expected a date such as 2026-11-01 (UTC)") from None
    return parsed.astimezone(dt.UTC) if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _fmt_time(value: Any, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if value is None or value != value:  # None, NaN, NaT
        return ""
    return f"{value:{fmt}}"


def _text_or_blank(value: Any) -> str:
    return "" if value is None or value != value else str(value)  # None and NaN read as blank


def _thumb(value: Any) -> str:
    return str(value)[:8] if isinstance(value, str) and value else "–"


def _status_text(row: Mapping[str, Any]) -> str:
    status = str(row.get("status") or "")
    if status == "failed" and isinstance(row.get("failed_step"), str):
        status = f"failed at {row['failed_step']}"
    return f"{status} (dry run)" if row.get("dry_run") else status


def _json_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _plain(v) for k, v in row.items()}


def _table(headers: list[str], rows: Iterable[list[str]]) -> str:
    rows = list(rows)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def cli_list(
    root: str,
    *,
    host: str | None,
    site: str | None,
    since: str | None,
    status: str | None,
    as_json: bool,
) -> int:
    """``opslib evidence list``: one line per run (oldest first), or a JSON list of objects."""
    df = select_runs(load_runs(root), host=host, site=site, since=since, status=status)
    records = df.to_dict("records")
    if as_json:
        print(json.dumps([_json_row(r) for r in records], indent=2, ensure_ascii=False))
        return 0
    if not records:
        filters = ", ".join(
            f"{k}={v}" for k, v in (("host", host), ("site", site), ("since", since), ("status", status)) if v
        )
        print(f"no runs in {root}" + (f" matching {filters}" if filters else ""))
        return 0
    rows = [
        [
            str(r["run_id"]),
            _text_or_blank(r["host"]),
            _text_or_blank(r["site"]),
            _status_text(r),
            _fmt_time(r["started_utc"]),
            f"{_thumb(r['old_thumbprint'])} → {_thumb(r['new_thumbprint'])}",
            _fmt_time(r["new_not_after_utc"], "%Y-%m-%d"),
        ]
        for r in records
    ]
    print(
        _table(
            ["RUN", "HOST", "SITE", "STATUS", "STARTED (UTC)", "CERTIFICATE OLD → NEW", "NEW EXPIRY"], rows
        )
    )
    return 0


def run_summary(record: RunRecord) -> dict[str, Any]:
    """The facts a reviewer reads first about one run (used by ``show`` and the review notebook)."""
    run = record.run
    facts = record.facts
    started, finished = _parse_utc(run.get("started_utc")), _parse_utc(run.get("finished_utc"))
    previous = run.get("previous_run")
    link: dict[str, Any] = previous if isinstance(previous, dict) else {}
    return {
        "run_id": record.run_id,
        "path": os.fspath(record.path),
        "host": run.get("host"),
        "site": run.get("site"),
        "operator": run.get("operator"),
        "status": run.get("status"),
        "failed_step": run.get("failed_step"),
        "error": run.get("error"),
        "dry_run": bool(run.get("dry_run")),
        "started_utc": run.get("started_utc"),
        "finished_utc": run.get("finished_utc"),
        "duration_s": round((finished - started).total_seconds(), 3) if started and finished else None,
        "kit_version": run.get("kit_version"),
        "tls_validation": run.get("tls_validation"),
        "old_thumbprint": facts.get("old_thumbprint"),
        "old_not_after_utc": facts.get("old_not_after_utc"),
        "new_thumbprint": facts.get("new_thumbprint"),
        "new_not_after_utc": facts.get("new_not_after_utc"),
        "backup_file": facts.get("backup_file"),
        "backup_sha256": facts.get("backup_sha256"),
        "previous_run": link.get("run_id"),
        "signed": bool(run.get("hmac")),
        "files": len(run.get("files") or {}),
        "transcript": record.transcript_summary(),
        "renders": [p.relative_to(record.path).as_posix() for p in record.renders],
    }


def _facts_text(facts: Any, limit: int = 100) -> str:
    if not isinstance(facts, dict) or not facts:
        return ""
    text = ", ".join(f"{k}={_cell_text(v)}" for k, v in facts.items())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cli_show(run_dir: str, *, as_json: bool) -> int:
    """``opslib evidence show``: summary, per-step status/duration/facts, where the renders are."""
    record = load_run(run_dir)
    summary = run_summary(record)
    if as_json:
        out = {**summary, "steps": [_plain(s) for s in record.run.get("steps") or []], "facts": record.facts}
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    status = summary["status"]
    if summary["failed_step"]:
        status = f"{status} at {summary['failed_step']}: {summary['error'] or ''}".rstrip(": ")
    duration = f" ({summary['duration_s']:g} s)" if summary["duration_s"] is not None else ""
    lines = [
        f"run       {summary['run_id']}",
        f"folder    {summary['path']}",
        f"host      {summary['host']}    site {summary['site']}",
        f"operator  {summary['operator']}",
        f"status    {status}{'  (dry run: nothing was changed)' if summary['dry_run'] else ''}",
        f"time      {summary['started_utc']} → {summary['finished_utc'] or '(not finished)'}{duration}",
        f"kit       {summary['kit_version']}    TLS validation: {summary['tls_validation']}",
        f"old cert  {summary['old_thumbprint'] or '–'}  expires {summary['old_not_after_utc'] or '–'}",
        f"new cert  {summary['new_thumbprint'] or '–'}  expires {summary['new_not_after_utc'] or '–'}",
        f"backup    {summary['backup_file'] or '–'}  sha256 {summary['backup_sha256'] or '–'}",
        f"chain     previous run {summary['previous_run'] or '(none)'}; "
        f"{summary['files']} files hashed{'; signed (HMAC)' if summary['signed'] else ''}",
    ]
    t = summary["transcript"]
    lines.append(
        f"commands  {t['commands']} remote commands, {t['nonzero_exits']} non-zero exits, "
        f"{t['total_duration_s']:g} s"
        + (f" ({t['unreadable_lines']} unreadable lines)" if t["unreadable_lines"] else "")
    )
    print("\n".join(lines))
    print("\nsteps")
    steps = record.steps
    if steps.empty:
        print("  (none recorded)")
    else:
        rows = [
            [
                str(s["name"]),
                str(s["status"] or ""),
                "" if s["duration_s"] != s["duration_s"] else f"{s['duration_s']:.1f} s",
                _facts_text(s["facts"]) or (str(s["error"]) if isinstance(s["error"], str) else ""),
            ]
            for s in steps.to_dict("records")
        ]
        print(_indent(_table(["STEP", "STATUS", "DURATION", "FACTS / ERROR"], rows)))
    print("\nrenders (HTML for reviewers)")
    print("\n".join(f"  {os.path.join(summary['path'], r)}" for r in summary["renders"]) or "  (none)")
    return 0


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


def cli_verify(run_dir: str | None, *, root: str | None, hmac_key: str | None, as_json: bool) -> int:
    """``opslib evidence verify RUN_DIR | --root DIR [--hmac-key REF]``: one line per problem, exit 1
    when anything is wrong, 0 and ``ok`` otherwise."""
    if bool(run_dir) == bool(root):
        raise UsageError(
            "give either RUN_DIR or --root DIR",
            hint="`opslib evidence verify evidence/<run>` checks one run, `--root evidence` every run and the chain",
        )
    key: bytes | None = None
    if hmac_key:
        from .secrets import resolve

        key = resolve(hmac_key, purpose="HMAC key").encode("utf-8")
    reports = [verify_run(run_dir, hmac_key=key)] if run_dir else verify_root(str(root), hmac_key=key)
    problems = [p for r in reports for p in r.problems]
    if as_json:
        print(
            json.dumps(
                {"ok": not problems, "runs": [r.as_dict() for r in reports]}, indent=2, ensure_ascii=False
            )
        )
        return 1 if problems else 0
    checks = "file hashes, chain" + (", HMAC" if key else "")
    if not problems:
        what = reports[0].run_dir if run_dir else f"{len(reports)} runs in {root}"
        print(f"ok: {what} ({checks})")
        return 0
    for problem in problems:
        print(problem.line())
    bad = sum(1 for r in reports if not r.ok)
    print(
        f"verify: {len(problems)} problem{'s' if len(problems) != 1 else ''} in {bad} of {len(reports)} "
        f"run{'s' if len(reports) != 1 else ''} ({checks}) — the evidence changed after it was finalized: "
        "find out who changed what, and restore it from your backup copy before relying on it"
    )
    return 1


# --- review notebook helpers --------------------------------------------------------------------


def integrity_by_run(reports: Iterable[VerifyReport]) -> dict[str, str]:
    """``run_id`` → ``ok`` or a short list of the problems, for the runs table."""
    out: dict[str, str] = {}
    for report in reports:
        if report.ok:
            out[report.run_id] = "ok"
        else:
            kinds: dict[str, int] = {}
            for p in report.problems:
                kinds[p.kind] = kinds.get(p.kind, 0) + 1
            out[report.run_id] = ", ".join(f"{n} {k}" for k, n in kinds.items())
    return out


def problems_table(reports: Iterable[VerifyReport]) -> pd.DataFrame:
    """Every integrity problem of ``reports``, one row each (empty when the evidence is intact); ``file``
    is relative to the evidence root."""
    import pandas as pd

    rows = [
        {
            "run_id": r.run_id,
            "file": Path(os.path.relpath(p.path, os.path.dirname(r.run_dir))).as_posix(),
            "kind": p.kind,
            "detail": p.detail,
        }
        for r in reports
        for p in r.problems
    ]
    return pd.DataFrame(rows, columns=["run_id", "file", "kind", "detail"])


def style_runs(
    df: pd.DataFrame, reports: Iterable[VerifyReport] | None = None, *, limit: int = 200
) -> Styler:
    """The runs table for reviewers (newest ``limit`` runs first), status and integrity coloured."""
    integrity = integrity_by_run(reports or [])
    shown = df.iloc[::-1].head(limit).copy()
    table = shown.assign(
        status=[_status_text(r) for r in shown.to_dict("records")],
        old=shown["old_thumbprint"].map(_thumb),
        new=shown["new_thumbprint"].map(_thumb),
        integrity=shown["run_id"].map(lambda r: integrity.get(r, "not checked")),
    )[
        [
            "run_id",
            "host",
            "site",
            "operator",
            "status",
            "started_utc",
            "old",
            "new",
            "new_not_after_utc",
            "integrity",
        ]
    ]
    caption = f"{len(table)} of {len(df)} runs, newest first"

    def status_colour(value: str) -> str:
        colour = next((c for s, c in _STATUS_COLOURS.items() if value.startswith(s)), "")
        return f"background-color: {colour}" if colour else ""

    def integrity_colour(value: str) -> str:
        if value == "ok":
            return "color: #176317"
        return "" if value == "not checked" else "background-color: #f8d0d0; font-weight: bold"

    return (
        table.style.map(status_colour, subset=["status"])
        .map(integrity_colour, subset=["integrity"])
        .format(
            {"started_utc": _fmt_time, "new_not_after_utc": lambda v: _fmt_time(v, "%Y-%m-%d")}, na_rep=""
        )
        .set_caption(caption)
        .hide(axis="index")
    )


def pick_run(df: pd.DataFrame, run_id: str = "") -> Path:
    """The folder of run ``run_id`` (default: the newest run of ``df``)."""
    if df.empty:
        raise EvidenceError("evidence", "no runs to review", hint="check evidence_root, host and since")
    if not run_id:
        return Path(df.iloc[-1]["path"])
    match = df[df["run_id"] == run_id]
    if match.empty:
        near = [r for r in df["run_id"] if run_id in r][:5]
        raise EvidenceError(
            run_id,
            "no such run",
            hint=f"did you mean {', '.join(near)}" if near else "see `opslib evidence list`",
        )
    return Path(match.iloc[0]["path"])


def pick_comparison(df: pd.DataFrame, run: RunRecord, compare_with: str = "") -> RunRecord | None:
    """The run to compare ``run`` with: ``compare_with``, or the previous run of the same host and site."""
    if compare_with:
        return load_run(pick_run(df, compare_with))
    same = df[
        (df["host"] == run.run.get("host"))
        & (df["site"] == run.run.get("site"))
        & (df["run_id"] != run.run_id)
    ]
    started = _parse_utc(run.run.get("started_utc"))
    if started is not None:
        import pandas as pd

        same = same[same["started_utc"] < pd.Timestamp(started)]
    return load_run(same.iloc[-1]["path"]) if not same.empty else None


def summary_table(record: RunRecord) -> pd.DataFrame:
    """:func:`run_summary` as a two-column table."""
    import pandas as pd

    summary = run_summary(record)
    return pd.DataFrame({"field": list(summary), "value": [_cell_text(v) for v in summary.values()]})


def expiry_table(df: pd.DataFrame, *, now_utc: dt.datetime, warn_days: int = 30) -> pd.DataFrame:
    """The certificate in service per host and site, soonest expiry first: what must be renewed next.

    From each host/site's newest run: the new certificate when that run succeeded for real, otherwise
    the old one it found (a dry run or a failed run leaves the old certificate in service — the safe
    reading when a run failed after the swap, since the old certificate expires first)."""
    import pandas as pd

    now = pd.Timestamp(_require_utc(now_utc, "now_utc"))
    columns = ["host", "site", "thumbprint", "not_after_utc", "days_left", "state", "source_run"]
    known = df[df["status"] != UNREADABLE]
    rows = []
    for (host, site), group in known.groupby(["host", "site"], sort=True):
        last = group.sort_values("started_utc").iloc[-1]
        renewed = (
            last["status"] == "succeeded" and not last["dry_run"] and pd.notna(last["new_not_after_utc"])
        )
        thumbprint = last["new_thumbprint"] if renewed else last["old_thumbprint"]
        not_after = last["new_not_after_utc"] if renewed else last["old_not_after_utc"]
        days = None if pd.isna(not_after) else (not_after - now).total_seconds() / 86400
        state = (
            "unknown"
            if days is None
            else "expired"
            if days < 0
            else "renew now"
            if days <= warn_days
            else "ok"
        )
        rows.append(
            [
                host,
                site,
                thumbprint,
                not_after,
                None if days is None else int(days // 1),
                state,
                last["run_id"],
            ]
        )
    table = pd.DataFrame(rows, columns=columns)
    table["not_after_utc"] = pd.to_datetime(table["not_after_utc"], utc=True)
    table["days_left"] = table["days_left"].astype("Int64")
    return table.sort_values("not_after_utc", na_position="first", kind="stable").reset_index(drop=True)


def plot_expiry(table: pd.DataFrame, *, now_utc: dt.datetime, warn_days: int = 30) -> Figure:
    """A chart of :func:`expiry_table`: one bar per host/site up to its expiry date, today and the
    warning window marked, soonest at the top."""
    import matplotlib.pyplot as plt
    import pandas as pd
    from matplotlib.patches import Patch

    now = pd.Timestamp(_require_utc(now_utc, "now_utc")).tz_localize(None)
    data = table.dropna(subset=["not_after_utc"]).iloc[::-1]
    fig, ax = plt.subplots(figsize=(9, max(2.0, 0.45 * len(data) + 1.2)))
    colours = {"expired": "#c0392b", "renew now": "#e67e22", "ok": "#2e8b57"}
    labels = [f"{h} / {s}" for h, s in zip(data["host"], data["site"], strict=True)]
    ends = data["not_after_utc"].dt.tz_localize(None)
    ax.barh(
        labels,
        [(end - now).total_seconds() / 86400 for end in ends],
        left=[now] * len(data),
        color=[colours.get(s, "#888888") for s in data["state"]],
    )
    ax.axvline(now, color="black", linewidth=1)
    ax.axvspan(now, now + pd.Timedelta(days=warn_days), color="#e67e22", alpha=0.12)
    for label, end in zip(labels, ends, strict=True):
        ax.annotate(f" {end:%Y-%m-%d}", (end, label), va="center", fontsize=8)
    ax.margins(x=0.12)
    ax.set_title("Certificate in service per host / site — expiry (UTC)")
    ax.set_xlabel("date (black line: today)")
    handles = [Patch(color=c, label=s) for s, c in colours.items()]
    handles.append(Patch(color="#e67e22", alpha=0.12, label=f"next {warn_days} days"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


_COMPARE_FIRST = (
    "old_thumbprint",
    "old_not_after_utc",
    "new_thumbprint",
    "new_not_after_utc",
    "bindings",
    "secure_bindings",
    "chain",
    "backup_sha256",
)


def compare_runs(a: RunRecord, b: RunRecord | None) -> pd.DataFrame:
    """Run ``a`` beside run ``b`` (the older, usually): status, every fact (thumbprints, bindings,
    chain, …) and every step's status and duration, with a ``changed`` column."""
    import pandas as pd

    def side(record: RunRecord | None) -> dict[str, Any]:
        if record is None:
            return {}
        run = record.run
        out: dict[str, Any] = {
            "run_id": record.run_id,
            "started_utc": run.get("started_utc"),
            "status": _status_text(
                {
                    "status": run.get("status"),
                    "failed_step": run.get("failed_step"),
                    "dry_run": run.get("dry_run"),
                }
            ),
            "operator": run.get("operator"),
            "kit_version": run.get("kit_version"),
        }
        facts = record.facts
        for key in [k for k in _COMPARE_FIRST if k in facts] + sorted(
            k for k in facts if k not in _COMPARE_FIRST
        ):
            out[f"fact: {key}"] = facts[key]
        for step in run.get("steps") or []:
            out[f"step {step.get('name')}: status"] = step.get("status")
            out[f"step {step.get('name')}: duration_s"] = step.get("duration_s")
        summary = record.transcript_summary()
        out["remote commands"] = summary["commands"]
        out["remote time_s"] = summary["total_duration_s"]
        return out

    left, right = side(a), side(b)
    keys = list(left) + [k for k in right if k not in left]
    if b is None:
        right["run_id"] = "(no earlier run of this site)"
    rows = []
    for key in keys:
        va, vb = _cell_text(left.get(key)), _cell_text(right.get(key))
        rows.append([key, va, vb, b is not None and key not in ("run_id", "started_utc") and va != vb])
    return pd.DataFrame(rows, columns=["field", "this run", "other run", "changed"])
