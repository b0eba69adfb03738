"""``opslib evidence list|show|verify|report``: the console text of the evidence commands."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import Any

from .. import evidence
from ..credentials import resolve
from ..errors import UsageError
from ..text import escape_json, escape_text
from .text import escaped_errors, table


def command(a: argparse.Namespace) -> int:
    """``opslib evidence list|show|verify|report``; error lines escaped (:func:`escaped_errors`)."""
    with escaped_errors():
        return _command(a)


def _command(a: argparse.Namespace) -> int:
    if a.evidence_command == "list":
        return evidence_list(a.root, host=a.host, site=a.site, since=a.since, status=a.status, as_json=a.json)
    if a.evidence_command == "show":
        return evidence_show(a.run_dir, as_json=a.json, hmac_key=a.hmac_key)
    if a.evidence_command == "report":
        return evidence_report(a.run_dir, lang=a.lang, out=a.out, hmac_key=a.hmac_key)
    return evidence_verify(a.run_dir, root=a.root, hmac_key=a.hmac_key, as_json=a.json)


def _key(reference: str | None) -> bytes | None:
    """The HMAC key from its secret reference (``--hmac-key env:NAME``); never printed."""
    return resolve(reference, purpose="HMAC key").encode("utf-8") if reference else None


def _text_or_blank(value: Any) -> str:
    return "" if value is None or value != value else str(value)  # None and NaN read as blank


def _json_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: evidence.plain(v) for k, v in row.items()}


def evidence_report(run_dir: str, *, lang: str, out: str | None, hmac_key: str | None = None) -> int:
    """``opslib evidence report``: a fresh report (integrity verified now), by default into the run
    folder's ``regenerated/`` subfolder — never hashed, so the sealed record stays as it was and
    ``evidence verify`` lists it apart — or to ``--out FILE`` anywhere but among the sealed files."""
    import datetime as dt
    from pathlib import Path

    from ..evidence.manifest import RUN_JSON, UNSEALED_DIR
    from ..evidence.report import write_report

    folder = Path(run_dir).resolve()
    if not (folder / RUN_JSON).is_file():
        raise UsageError(
            f"{run_dir}: not a run folder (no run.json)", hint="give a folder made by `opslib run`"
        )
    regenerated = folder / UNSEALED_DIR
    if out:
        target = Path(out)
        where = target.resolve()
        if folder in where.parents and regenerated not in where.parents:
            raise UsageError(
                f"--out {target}: among the run folder's sealed files, whose SHA-256 run.json records",
                hint=f"leave out --out (the report goes to {regenerated}), or write it outside the run folder",
            )
    else:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        target = regenerated / f"report-{stamp}-{lang}.html"
    if folder in target.resolve().parents:
        if regenerated.is_symlink() or (regenerated.exists() and not regenerated.is_dir()):
            raise UsageError(f"{regenerated}: not a folder", hint="remove it, or give --out FILE")
        regenerated.mkdir(exist_ok=True)
    print(escape_text(write_report(folder, lang=lang, out=target, hmac_key=_key(hmac_key)).resolve()))
    return 0


def evidence_list(
    root: str,
    *,
    host: str | None,
    site: str | None,
    since: str | None,
    status: str | None,
    as_json: bool,
) -> int:
    """``opslib evidence list``: one line per run (oldest first), or a JSON list of objects."""
    df = evidence.select_runs(evidence.load_runs(root), host=host, site=site, since=since, status=status)
    records = df.to_dict("records")
    fleets = _fleet_rows(root)
    if as_json:
        print(escape_json([_json_row(r) for r in records] + [{"fleet": True, **f} for f in fleets]))
        return 0
    _print_runs(records, root=root, host=host, site=site, since=since, status=status)
    if fleets:
        print("\nfleets")
        print(
            _indent(
                table(
                    ["FLEET", "NAME", "RESULT", "HOSTS", "FINISHED (UTC)", "CONTINUES"],
                    [
                        [
                            str(f["fleet_id"]),
                            _text_or_blank(f.get("name")),
                            _text_or_blank(f.get("result")),
                            _fleet_counts(f),
                            _text_or_blank(f.get("finished_utc")),
                            _text_or_blank(f.get("continues")),
                        ]
                        for f in fleets
                    ],
                )
            )
        )
    return 0


def _fleet_rows(root: str) -> list[dict[str, Any]]:
    from ..fleet.record import fleet_rows

    return fleet_rows(root)


def _fleet_counts(row: Mapping[str, Any]) -> str:
    counts = row.get("counts") if isinstance(row.get("counts"), Mapping) else {}
    assert isinstance(counts, Mapping)
    parts = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    return f"{row.get('hosts', 0)}" + (f" ({parts})" if parts else "")


def _print_runs(
    records: list[dict[Any, Any]],
    *,
    root: str,
    host: str | None,
    site: str | None,
    since: str | None,
    status: str | None,
) -> None:
    if not records:
        filters = ", ".join(
            f"{k}={v}" for k, v in (("host", host), ("site", site), ("since", since), ("status", status)) if v
        )
        print(escape_text(f"no runs in {root}" + (f" matching {filters}" if filters else "")))
        return
    rows = [
        [
            str(r["run_id"]),
            _text_or_blank(r["host"]),
            _text_or_blank(r["site"]),
            _text_or_blank(r.get("mode")),
            evidence.status_text(r),
            evidence.format_time(r["started_utc"]),
            f"{evidence.short_thumbprint(r['old_thumbprint'])} → {evidence.short_thumbprint(r['new_thumbprint'])}",
            evidence.format_time(r["new_not_after_utc"], "%Y-%m-%d"),
            _exits_text(r.get("nonzero_exits"), r.get("probe_nonzero_exits")),
        ]
        for r in records
    ]
    print(
        table(
            [
                "RUN",
                "HOST",
                "SITE",
                "MODE",
                "STATUS",
                "STARTED (UTC)",
                "CERTIFICATE OLD → NEW",
                "NEW EXPIRY",
                "NON-ZERO EXITS",
            ],
            rows,
        )
    )


def _certificate_lines(summary: Mapping[str, Any]) -> list[str]:
    """``old cert`` / ``new cert`` (a rollback: the certificate it took off / put back), from
    :func:`opslib.evidence.index.certificates`: a failed run's old certificate is step 0's record."""
    rollback = summary["mode"] == "rollback"
    names = ("taken off", "put back") if rollback else ("old cert", "new cert")
    return [
        f"{name:<9} {summary[f'{key}_thumbprint'] or '–'}  expires {summary[f'{key}_not_after_utc'] or '–'}"
        for name, key in zip(names, ("old", "new"), strict=True)
    ]


def _exits_text(failed: Any, probes: Any) -> str:
    """``2 (+18 probes)``: non-zero exits, and those that were capability probes answering no."""
    if failed is None or failed != failed:  # an older run.json (no counts), or NaN
        return ""
    return f"{int(failed)}" + (f" (+{int(probes)} probes)" if probes == probes and probes else "")


def _fact_lines(name: str, value: Any) -> list[str]:
    """One fact in full (nothing cut): a list of change rows one row a line, other values as JSON."""
    rows = value if isinstance(value, list) else None
    if rows and all(isinstance(r, dict) and {"target", "field"} <= r.keys() for r in rows):
        return [f"{name}:"] + [
            f"    {r['target']}: {r['field']} {r.get('before') or '(none)'} → {r.get('after') or '(none)'}"
            for r in rows
        ]
    if rows and all(isinstance(r, dict) for r in rows):
        return [f"{name}:"] + [f"    {evidence.cell_text(r)}" for r in rows]
    return [f"{name} = {evidence.cell_text(value)}"]


def evidence_show(run_dir: str, *, as_json: bool, hmac_key: str | None = None) -> int:
    """``opslib evidence show``: summary, integrity (:func:`opslib.evidence.verify_run`, the HMAC with
    ``--hmac-key``), per-step status/duration/facts, where the renders are. Every line is escaped."""
    record = evidence.load_run(run_dir)
    summary = evidence.run_summary(record)
    report = evidence.verify_run(run_dir, hmac_key=_key(hmac_key))
    if as_json:
        out = {
            **summary,
            "integrity": {"verdict": evidence.verdict(report), **report.as_dict()},
            "steps": [evidence.plain(s) for s in record.run.get("steps") or []],
            "facts": record.facts,
        }
        print(escape_json(out))
        return 0
    status = summary["status"]
    if summary["failed_step"]:
        status = f"{status} at {summary['failed_step']}: {summary['error'] or ''}".rstrip(": ")
    duration = f" ({summary['duration_s']:g} s)" if summary["duration_s"] is not None else ""
    lines = [
        f"run       {summary['run_id']}",
        f"folder    {summary['path']}",
        f"mode      {summary['mode']}{_links_text(summary)}",
        f"host      {summary['host']}    site {summary['site']}",
        f"operator  {summary['operator']}",
        f"status    {status}{'  (dry run: nothing was changed)' if summary['dry_run'] else ''}",
        f"time      {summary['started_utc']} → {summary['finished_utc'] or '(not finished)'}{duration}",
        f"kit       {summary['kit_version']}    TLS validation: {summary['tls_validation']}",
        *_certificate_lines(summary),
        f"backup    {summary['backup_file'] or '–'}  sha256 {summary['backup_sha256'] or '–'}",
        f"chain     previous run {summary['previous_run'] or '(none)'}; "
        f"{summary['files']} files hashed{'; carries an HMAC (checked only with --hmac-key)' if summary['signed'] else ''}",
        f"integrity {_integrity_text(report)}",
    ]
    lines += [f"          {p.line()}" for p in report.problems]
    for change in summary["parameter_changes"]:
        lines.append(f"corrected {change.get('key')}: {change.get('old')!r} → {change.get('new')!r}")
    now = summary["production_now"]
    if isinstance(now, dict):
        state = f" ({now.get('state')})" if now.get("state") else ""
        lines.append(
            f"served    after the failure: {now.get('site')}{state} served {now.get('thumbprint') or '?'}"
            f" (expires {now.get('not_after_utc') or '?'}) — {now.get('source')}"
        )
    t = summary["transcript"]
    lines.append(
        f"commands  {t['commands']} remote commands, {t['nonzero_exits']} non-zero exits, "
        f"{t['total_duration_s']:g} s"
        + (f" ({t['unreadable_lines']} unreadable lines)" if t["unreadable_lines"] else "")
        + (
            f"; {t['probe_nonzero_exits']} more non-zero exits were capability probes answering no (expected)"
            if t["probe_nonzero_exits"]
            else ""
        )
    )
    print("\n".join(escape_text(line) for line in lines))
    print("\nsteps")
    steps = record.steps
    if steps.empty:
        print("  (none recorded)")
    else:
        records = steps.to_dict("records")
        rows = [
            [
                str(s["name"]),
                str(s["status"] or ""),
                "" if s["duration_s"] != s["duration_s"] else f"{s['duration_s']:.1f} s",
                str(s["error"]) if isinstance(s["error"], str) else "",
            ]
            for s in records
        ]
        print(_indent(table(["STEP", "STATUS", "DURATION", "ERROR"], rows)))
        print("\nfacts recorded, by step (in full)")
        for s in records:
            facts = s["facts"] if isinstance(s["facts"], dict) else {}
            print(escape_text(f"  {s['name']}" + ("" if facts else ": (none)")))
            for key, value in facts.items():
                print("\n".join(f"    {escape_text(line)}" for line in _fact_lines(str(key), value)))
    print("\nrenders (HTML for reviewers)")
    renders = [f"  {escape_text(os.path.join(summary['path'], r))}" for r in summary["renders"]]
    print("\n".join(renders) or "  (none)")
    return 0


def _integrity_text(report: evidence.VerifyReport) -> str:
    """The show command's integrity line, in the words every reader uses (:func:`evidence.verdict_text`)."""
    checked = f"{report.files_checked} files, chain, head record" + (", HMAC" if report.hmac_checked else "")
    if report.ok:
        return f"{evidence.verdict_text(report)} ({checked})"
    if all(p.kind == "unfinalized" for p in report.problems):
        return f"never finalized (interrupted, or still running): resume it with `opslib resume {report.run_dir}`"
    return (
        f"PROBLEMS: {evidence.verdict_text(report)} — `opslib evidence verify {report.run_dir}` for details"
    )


def _links_text(summary: Mapping[str, Any]) -> str:
    if summary.get("resumes"):
        return f"    resumes run {summary['resumes']}"
    if summary.get("rolls_back"):
        return f"    rolls back run {summary['rolls_back']}"
    return ""


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


def evidence_verify(run_dir: str | None, *, root: str | None, hmac_key: str | None, as_json: bool) -> int:
    """``opslib evidence verify RUN_DIR | --root DIR [--hmac-key REF]``: one line per problem, exit 1
    when anything is wrong, 0 and ``ok`` otherwise."""
    if bool(run_dir) == bool(root):
        raise UsageError(
            "give either RUN_DIR or --root DIR",
            hint="`opslib evidence verify evidence/<run>` checks one run, `--root evidence` every run and the chain",
        )
    from ..fleet.record import is_fleet_dir, verify_fleet, verify_fleets

    key = _key(hmac_key)
    if run_dir and is_fleet_dir(run_dir):  # a fleet folder: its record, and every host's run.json hash
        reports = [verify_fleet(run_dir, hmac_key=key)]
    elif run_dir:
        reports = [evidence.verify_run(run_dir, hmac_key=key)]
    else:
        reports = evidence.verify_root(str(root), hmac_key=key) + verify_fleets(str(root), hmac_key=key)
    problems = [p for r in reports for p in r.problems]
    head = evidence.head_digest(str(root)) if root else None
    if as_json:
        out: dict[str, Any] = {"ok": not problems, "runs": [r.as_dict() for r in reports]}
        out["hmac_checked"] = bool(key)
        if head:
            out["head"] = {"entry": head[0], "sha256": head[1]}
        print(escape_json(out))
        return 1 if problems else 0
    checks = "file hashes, chain" + (", HMAC" if key else "")
    # The newest head entry: kept elsewhere (a ticket), it shows a later removal of the newest run with it.
    head_line = f"head record: entry {head[0]}, SHA-256 {head[1]}" if head else ""
    unsealed = [
        f"{path}: not part of the sealed record (made from the run later, never hashed)"
        for r in reports
        for path in r.unsealed
    ]
    if not problems:
        fleets = sum(1 for r in reports if "/fleets/" in r.run_dir.replace(os.sep, "/"))
        what = (
            reports[0].run_dir
            if run_dir
            else f"{len(reports) - fleets} runs"
            + (f" and {fleets} fleet records" if fleets else "")
            + f" in {root}"
        )
        unproven = "" if key else f" — {evidence.UNPROVEN_TEXT['en']}"
        print(escape_text(f"ok: {what} ({checks}){unproven}"))
        for line in unsealed:
            print(escape_text(line))
        if head_line:
            print(head_line)
        return 0
    for problem in problems:
        print(escape_text(problem.line()))
    for line in unsealed:
        print(escape_text(line))
    if head_line:
        print(head_line)
    bad = sum(1 for r in reports if not r.ok)
    print(
        f"verify: {len(problems)} problem{'s' if len(problems) != 1 else ''} in {bad} of {len(reports)} "
        f"run{'s' if len(reports) != 1 else ''} ({checks}) — {_what_to_do(problems)}"
    )
    return 1


_TAMPERED = {
    "edited",
    "added",
    "missing",
    "hmac",
    "chain",
    "renamed",
    "altered",
    "removed",
    "head",
    "unreadable",
}


def _what_to_do(problems: list[evidence.Problem]) -> str:
    """What the problems mean: an interrupted run is not a changed one; a run the head record shows
    finalized and that now differs was altered."""
    kinds = {p.kind for p in problems}
    parts = []
    if kinds & {"altered", "removed"}:
        parts.append(
            "the head record shows runs that were finalized and then altered or removed: do not resume them; "
            "find out who changed what, and restore them from your backup copy"
        )
    elif kinds & _TAMPERED:
        parts.append(
            "the evidence changed after it was finalized: find out who changed what, and restore it from "
            "your backup copy before relying on it"
        )
    if "unfinalized" in kinds:
        parts.append(
            "a run that was never finalized (interrupted, or still running) is not damaged: "
            "finish it with `opslib resume RUN_DIR`"
        )
    return "; ".join(parts)
