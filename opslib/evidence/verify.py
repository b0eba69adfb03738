"""Integrity: :func:`verify_run`, :func:`verify_root` → :class:`VerifyReport` listing :class:`Problem` s.

Recomputes the SHA-256 of every file, checks the HMAC where a key is given, follows the chain of
``previous_run`` links across the runs of a root (an edited, added or removed file or run shows up),
the recovery links (``resumes``, ``rolls_back``: the run continued or undone, by its run.json hash)
and the root's head record (:mod:`.heads`: a finalized run removed, rewritten or set back to running).

These are the one verification every reader uses — ``opslib evidence verify`` and ``show``, the
report's integrity line, the review notebook's table — and :func:`verdict` / :func:`verdict_text` the
one wording: ``intact`` only when the HMAC was checked; without a key, "integrity not provable without
the HMAC key" (anyone who can write the folder can recompute every SHA-256). :func:`verify_for_resume`
is what ``opslib resume`` calls before it continues a run.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import hmac as hmac_
import itertools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import EvidenceError
from .heads import HEADS_DIR, HeadEntry, HeadFinding, check_heads, finalized_entries, read_heads
from .index import ScanEntry, scan
from .manifest import (
    PROGRESS_HMAC,
    RUN_JSON,
    UNREADABLE,
    hash_files,
    is_finalized,
    parse_utc,
    plain,
    read_run_json,
    redacted_doc,
    sign_hmac,
    sign_progress,
    unsealed_files,
)

if TYPE_CHECKING:
    pass


# --- integrity ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the evidence. ``path`` names the file (or run folder) concerned."""

    kind: str  # edited | added | missing | hmac | chain | unfinalized | unreadable | renamed | altered | removed | head
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
    unsealed: tuple[str, ...] = ()  # files of the regenerated/ subfolder: not part of the sealed record

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
            "not_sealed": list(self.unsealed),
        }


def _short(digest: str) -> str:
    return f"{digest[:12]}…"


def _check_entry(
    entry: ScanEntry, *, hmac_key: bytes | None, in_head: bool = False
) -> tuple[list[Problem], int, bool]:
    """Files and HMAC of one run; returns (problems, files checked, hmac checked). ``in_head``: the head
    record lists the run as finalized (then a run.json saying "running" is reported by :func:`_head_problems`)."""
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
    if not is_finalized(doc):
        leftovers = finalize_leftovers(doc)
        if leftovers:
            problems.append(
                Problem(
                    "altered",
                    run_json,
                    f"status {doc.get('status')!r} but run.json carries what only finalizing writes "
                    f"({', '.join(leftovers)}): the run was finalized and then set back — do not resume it; "
                    "restore the folder from your backup copy",
                )
            )
        signed = doc.get(PROGRESS_HMAC)
        if hmac_key and signed and not hmac_.compare_digest(str(signed), sign_progress(doc, hmac_key)):
            problems.append(
                Problem(
                    "hmac",
                    run_json,
                    "HMAC mismatch: the unfinished run.json was rewritten by someone other than the runner "
                    "(or the key is wrong) — do not resume it",
                )
            )
        if not leftovers and not in_head:
            problems.append(
                Problem(
                    "unfinalized",
                    run_json,
                    f"status {doc.get('status')!r} and no file hashes: the run was never finalized (still in "
                    f"progress, or interrupted); resume it with `opslib resume {entry.path}` before relying on it",
                )
            )
        return problems, 0, False
    files = doc.get("files")
    recorded: dict[str, Any] = files if isinstance(files, dict) else {}
    actual = hash_files(Path(entry.path))
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
        elif not hmac_.compare_digest(str(signed), sign_hmac(doc, hmac_key)):
            problems.append(
                Problem(
                    "hmac",
                    run_json,
                    "HMAC mismatch: run.json changed after it was signed, or the key is wrong",
                )
            )
    return problems, len(actual), hmac_checked


def _check_link(entry: ScanEntry, by_id: Mapping[str, ScanEntry], root: str) -> list[Problem]:
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


# Links from a recovery run to the run it continues or undoes, besides ``previous_run`` (docs/evidence.md).
RECOVERY_LINKS = {"resumes": "resumes", "rolls_back": "rolls back"}


def _check_recovery_links(
    entry: ScanEntry, by_id: Mapping[str, ScanEntry], root: str, *, only: str | None = None
) -> list[Problem]:
    """``resumes`` / ``rolls_back``: the run named is still there and its run.json is the one recorded
    (``only``: just the links to that run)."""
    problems: list[Problem] = []
    for key, verb in RECOVERY_LINKS.items():
        link = entry.doc.get(key) if entry.doc else None
        if not isinstance(link, dict) or not link.get("run_id") or only not in (None, link["run_id"]):
            continue
        other_id = str(link["run_id"])
        recorded = link.get("run_json_sha256")
        other = by_id.get(other_id)
        if other is None:
            if recorded:
                problems.append(
                    Problem(
                        "chain",
                        os.path.join(root, other_id),
                        f"run {entry.run_id} {verb} this run, which no longer exists in {root or '.'}",
                    )
                )
            continue
        actual = hashlib.sha256(other.raw).hexdigest()
        if recorded and actual != recorded:
            problems.append(
                Problem(
                    "chain",
                    os.path.join(other.path, RUN_JSON),
                    f"SHA-256 {_short(actual)} differs from the {_short(str(recorded))} that run "
                    f"{entry.run_id} recorded when it {verb} this run: this run.json changed since",
                )
            )
    return problems


def _unsealed(entry: ScanEntry) -> tuple[str, ...]:
    """The run's regenerated files, named as the run folder was named (listed apart, never hashed)."""
    return tuple(os.path.join(entry.path, *rel.split("/")) for rel in unsealed_files(Path(entry.path)))


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
        ScanEntry(e.name, os.path.join(root, e.name), e.raw, e.doc, e.problem) for e in scan(real.parent)
    ]
    entry = next((e for e in entries if e.name == real.name), None)
    if entry is None:  # the folder vanished between the checks above and the scan
        raise EvidenceError(str(run_dir), "the run folder disappeared while it was being verified")
    heads = HeadView.read(real.parent, hmac_key=hmac_key)
    problems, files_checked, hmac_checked = _check_entry(
        entry, hmac_key=hmac_key, in_head=entry.run_id in heads.listed
    )
    by_id = {e.run_id: e for e in entries}  # unreadable ones too, by folder name
    problems += _head_problems(heads, by_id, root, only=entry.run_id)
    problems += _root_problems(heads, by_id, root)
    problems += _check_link(entry, by_id, root)
    problems += _check_recovery_links(entry, by_id, root)
    for later in entries:
        link = later.doc.get("previous_run") if later.doc else None
        if isinstance(link, dict) and link.get("run_id") == entry.run_id and later.name != entry.name:
            problems += _check_link(later, {entry.run_id: entry}, root)
        if later.name != entry.name:
            problems += _check_recovery_links(later, by_id, root, only=entry.run_id)
    return VerifyReport(
        entry.run_id, entry.path, tuple(problems), files_checked, hmac_checked, _unsealed(entry)
    )


def verify_root(root: str | os.PathLike[str], *, hmac_key: bytes | None = None) -> list[VerifyReport]:
    """:func:`verify_run` for every run of ``root`` plus every break in the chain: a previous run that
    no longer exists (a removed run), a previous run.json that changed, and a run that starts a new
    chain although an earlier run had been finalized before it."""
    root_s = os.fspath(root)
    entries = scan(root)
    by_id = {e.run_id: e for e in entries}  # unreadable ones too, by folder name
    # For the cut-chain check: finalized runs by start time, with the earliest finish among those so far.
    finalized = sorted(
        (started, finished, e.run_id)
        for e in entries
        if e.doc is not None and is_finalized(e.doc)
        for started, finished in [(parse_utc(e.doc.get("started_utc")), parse_utc(e.doc.get("finished_utc")))]
        if started is not None and finished is not None
    )
    starts = [f[0] for f in finalized]
    first_finished: list[tuple[dt.datetime, str]] = list(
        itertools.accumulate(((f[1], f[2]) for f in finalized), min)
    )
    heads = HeadView.read(root, hmac_key=hmac_key)
    reports: list[VerifyReport] = []
    for entry in entries:
        problems, files_checked, hmac_checked = _check_entry(
            entry, hmac_key=hmac_key, in_head=entry.run_id in heads.listed
        )
        problems += _head_problems(heads, by_id, root_s, only=entry.run_id)
        problems += _check_link(entry, by_id, root_s)
        problems += _check_recovery_links(entry, by_id, root_s)
        doc = entry.doc
        if doc is not None and is_finalized(doc) and doc.get("previous_run") is None:
            started, finished = parse_utc(doc.get("started_utc")), parse_utc(doc.get("finished_utc"))
            before = bisect.bisect_left(starts, started) if started is not None else 0
            if before and _listed_before(heads, by_id, entry.run_id, started) is not None:
                earlier = _listed_before(heads, by_id, entry.run_id, started)
                problems.append(
                    Problem(
                        "chain",
                        os.path.join(entry.path, RUN_JSON),
                        f"previous_run is empty although run {earlier} started and was finalized before it "
                        "(the chain was cut here)",
                    )
                )
            elif (
                before
                and entry.run_id not in heads.listed
                and finished is not None
                and first_finished[before - 1][0] <= finished
            ):
                problems.append(
                    Problem(
                        "chain",
                        os.path.join(entry.path, RUN_JSON),
                        f"previous_run is empty although run {first_finished[before - 1][1]} started and was "
                        "finalized before it (the chain was cut here)",
                    )
                )
        reports.append(
            VerifyReport(
                entry.run_id, entry.path, tuple(problems), files_checked, hmac_checked, _unsealed(entry)
            )
        )
    # Runs the head record names that are gone, and breaks in the head record itself.
    for run_id in sorted(set(heads.listed) - set(by_id)):
        problems = _head_problems(heads, by_id, root_s, only=run_id)
        reports.append(VerifyReport(run_id, os.path.join(root_s, run_id), tuple(problems)))
    record = _record_problems(heads)
    if record:
        reports.append(VerifyReport(HEAD_RECORD, os.path.join(root_s, HEADS_DIR), tuple(record)))
    return reports


def _listed_before(
    heads: HeadView, by_id: Mapping[str, ScanEntry], run_id: str, started: dt.datetime | None
) -> str | None:
    """A run that started before ``run_id`` and whose head entry comes before ``run_id``'s (so it was
    finalized when ``run_id`` chose its previous run); None when there is none or ``run_id`` is not listed
    (runs that ran at the same time finalize in any order: the head record tells which came first)."""
    mine = heads.listed.get(run_id)
    if mine is None or started is None:
        return None
    found: tuple[int, str] | None = None
    for other_id, other in heads.listed.items():
        other_doc = by_id[other_id].doc if other_id in by_id else None
        other_start = parse_utc(other_doc.get("started_utc")) if other_doc else None
        if other.seq < mine.seq and other_start is not None and other_start < started:
            found = min(found or (other.seq, other_id), (other.seq, other_id))  # the first finalized
    return found[1] if found else None


HEAD_RECORD = "(head record)"  # the run_id of the report about the head record itself


@dataclass(frozen=True)
class HeadView:
    """A root's head record read once: the newest entry of each run it lists, and every finding of
    :func:`.heads.check_heads` (HMAC mismatches also by entry path)."""

    listed: Mapping[str, HeadEntry]
    findings: tuple[HeadFinding, ...]
    hmac_by_path: Mapping[str, tuple[HeadFinding, ...]]

    @classmethod
    def read(cls, root: str | os.PathLike[str], *, hmac_key: bytes | None) -> HeadView:
        heads = read_heads(root)
        findings = tuple(check_heads(heads, hmac_key=hmac_key))
        by_path: dict[str, tuple[HeadFinding, ...]] = {}
        for f in findings:
            if f.kind == "hmac":
                by_path[f.path] = (*by_path.get(f.path, ()), f)
        return cls(finalized_entries(heads), findings, by_path)

    def hmac_findings(self, path: str) -> list[Problem]:
        return [Problem(f.kind, f.path, f.detail) for f in self.hmac_by_path.get(path, ())]


def _record_problems(heads: HeadView) -> list[Problem]:
    """Breaks in the head record itself (a gap, an edited entry, an unreadable one); an entry's HMAC
    mismatch is reported with its run (:func:`_head_problems`)."""
    listed = {e.path for e in heads.listed.values()}
    return [
        Problem(f.kind, f.path, f.detail)
        for f in heads.findings
        if not (f.kind == "hmac" and f.path in listed)
    ]


def _root_problems(heads: HeadView, by_id: Mapping[str, ScanEntry], root: str) -> list[Problem]:
    """For one run's report: what is wrong with the root it belongs to — a run the head record lists
    that was removed (the newest run, which no later run points back at) and breaks in the record."""
    problems: list[Problem] = []
    for run_id in sorted(set(heads.listed) - set(by_id)):
        problems += [p for p in _head_problems(heads, by_id, root, only=run_id) if p.kind == "removed"]
    return problems + _record_problems(heads)


def _head_problems(heads: HeadView, by_id: Mapping[str, ScanEntry], root: str, *, only: str) -> list[Problem]:
    """What the head record says about run ``only``: removed, or its run.json changed (or set back to
    running) after it was finalized; with a key, its head entry's HMAC."""
    entry = heads.listed.get(only)
    if entry is None or entry.doc is None:
        return []
    problems = heads.hmac_findings(entry.path)
    seq, recorded = entry.seq, str(entry.doc.get("run_json_sha256"))
    scanned = by_id.get(only)
    if scanned is None:
        problems.append(
            Problem(
                "removed",
                os.path.join(root, only),
                f"the head record (entry {seq}) lists this run as finalized, but its folder is gone: the run "
                "was removed — restore it from your backup copy",
            )
        )
        return problems
    actual = hashlib.sha256(scanned.raw).hexdigest()
    if actual == recorded:
        return problems
    run_json = os.path.join(scanned.path, RUN_JSON)
    doc = scanned.doc or {}
    if not is_finalized(doc):
        detail = (
            f"the head record (entry {seq}) shows this run was finalized, but its run.json now says status "
            f"{doc.get('status')!r} and its SHA-256 {_short(actual)} differs from the {_short(recorded)} "
            "recorded then: it was altered after finalizing — do not resume it; restore it from your backup copy"
        )
    else:
        detail = (
            f"SHA-256 {_short(actual)} differs from the {_short(recorded)} the head record (entry {seq}) "
            "recorded when the run was finalized: run.json was altered after finalizing"
        )
    problems.append(Problem("altered", run_json, detail))
    return problems


FINALIZE_FIELDS = ("finished_utc", "files", "previous_run", "commands", "hmac")


def finalize_leftovers(doc: Mapping[str, Any]) -> list[str]:
    """The fields of an unfinalized run.json that only :func:`.folder.finalize_run` writes."""
    return [k for k in FINALIZE_FIELDS if doc.get(k)]


# --- one wording for every reader -------------------------------------------------------------------

INTACT, UNPROVEN, DAMAGED = "intact", "unproven", "problems"
UNPROVEN_TEXT = {
    "en": "integrity not provable without the HMAC key",
    "ja": "HMAC 鍵がないため完全性を証明できません",
}


def verdict(report: VerifyReport) -> str:
    """``intact`` (every check passed, HMAC included), ``unproven`` (every check passed without a key:
    hashes can be recomputed by whoever edits the folder) or ``problems``."""
    if not report.ok:
        return DAMAGED
    return INTACT if report.hmac_checked else UNPROVEN


def verdict_text(report: VerifyReport, lang: str = "en") -> str:
    """The verdict in words (``en`` or ``ja``): what every reader prints."""
    word = verdict(report)
    if word == UNPROVEN:
        return UNPROVEN_TEXT[lang]
    if word == INTACT:
        return "問題なし" if lang == "ja" else "intact"
    kinds: dict[str, int] = {}
    for p in report.problems:
        kinds[p.kind] = kinds.get(p.kind, 0) + 1
    return ", ".join(f"{n} {k}" for k, n in kinds.items())


# --- before a resume --------------------------------------------------------------------------------


def verify_for_resume(run_dir: str | os.PathLike[str], *, hmac_key: bytes | None) -> list[Problem]:
    """What forbids continuing ``run_dir``: empty when ``opslib resume`` may go on.

    An unfinalized run is accepted only when the head record does not list it as finalized, run.json
    carries nothing that only finalizing writes, every finished step's facts in run.json are the facts
    its notebook recorded (and the run's merged facts agree with them), and — with ``hmac_key`` — its
    ``progress_hmac`` checks (the runner signs every write with the key: :func:`.folder.update_run`), so
    a finalized run set back to running by someone without the key is refused even when its head entry
    was removed too. A finalized run must
    verify (hashes, chain, head record, and the HMAC where a key is set)."""
    report = verify_run(run_dir, hmac_key=hmac_key)
    path = Path(run_dir)
    doc = read_run_json(path)
    if is_finalized(doc):
        return list(report.problems)
    problems = [p for p in report.problems if p.kind != "unfinalized"]
    if hmac_key and not doc.get(PROGRESS_HMAC):
        problems.append(
            Problem(
                "hmac",
                str(path / RUN_JSON),
                "the unfinished run.json is not signed with the HMAC key (the run was started without it, or "
                "its signature was removed — as when a finalized run is set back to running): a resume "
                "cannot trust it; roll it back or start a new run",
            )
        )
    problems += _step_consistency(path, doc)
    return problems


def _step_consistency(run_dir: Path, doc: Mapping[str, Any]) -> list[Problem]:
    """Each finished step's facts against its executed notebook, the merged facts against the steps, no
    step notebook that run.json does not name, and no report (written only when finalizing)."""
    from .folder import read_facts

    problems: list[Problem] = []
    run_json = os.path.join(run_dir, RUN_JSON)
    merged: Mapping[str, Any] = doc["facts"] if isinstance(doc.get("facts"), dict) else {}
    latest: dict[str, Any] = {}
    for step in doc.get("steps") or []:
        if not isinstance(step, dict) or step.get("status") != "succeeded":
            continue
        facts: dict[str, Any] = step["facts"] if isinstance(step.get("facts"), dict) else {}
        latest.update(facts)
        notebook = step.get("notebook")
        if not notebook:
            continue  # a step the runner ran itself
        nb_path = run_dir / str(notebook)
        try:
            recorded = redacted_doc(plain(read_facts(nb_path), "facts"))
        except EvidenceError as exc:
            problems.append(
                Problem(
                    "missing",
                    str(nb_path),
                    f"step {step.get('name')} succeeded but its notebook: {exc.problem}",
                )
            )
            continue
        changed = sorted(k for k in recorded.keys() | facts.keys() if recorded.get(k) != facts.get(k))
        if changed:
            problems.append(
                Problem(
                    "altered",
                    run_json,
                    f"step {step.get('name')}'s facts in run.json differ from those its notebook recorded "
                    f"({', '.join(changed)}): run.json was edited",
                )
            )
    named = {str(step.get("notebook")) for step in doc.get("steps") or [] if isinstance(step, dict)}
    for nb_path in sorted(run_dir.glob("*.ipynb")):
        if nb_path.name not in named:
            problems.append(
                Problem(
                    "added",
                    str(nb_path),
                    "a step notebook that run.json does not name (the runner names a step before it runs it): "
                    "run.json is older than the folder, or the notebook was added",
                )
            )
    if (run_dir / "report.html").exists():
        problems.append(
            Problem(
                "altered",
                str(run_dir / "report.html"),
                "the runner writes the report only when it finalizes a run: this run was finished and then "
                "set back to unfinished",
            )
        )
    changed = sorted(k for k in latest if merged.get(k) != latest[k])
    if changed:
        problems.append(
            Problem(
                "altered",
                run_json,
                f"the run's facts differ from those its steps recorded ({', '.join(changed)}): run.json was edited",
            )
        )
    return problems
