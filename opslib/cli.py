"""Command line: argument parsing and all console printing; every command calls one verb of the library.

Exit codes: 0 success, 1 the operation failed (message says what and where), 2 bad usage/parameters.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from . import __version__, evidence
from .credentials import redact, resolve
from .errors import OpsError, UsageError


def _parser() -> argparse.ArgumentParser:
    from .rehearsal import scenarios  # the scenario names for `rehearse serve --scenario`

    p = argparse.ArgumentParser(
        prog="opslib",
        description="Renew SSL server certificates on Microsoft IIS over WinRM, with evidence.",
    )
    p.add_argument("--version", action="version", version=f"opslib {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run a renewal from a parameters file")
    run.add_argument("params", help="parameters file (YAML)")
    run.add_argument("--evidence-root", default=None, help="where run folders go (default: ./evidence)")
    run.add_argument(
        "--dry-run", action="store_true", help="read-only checks; record the plan, change nothing"
    )
    run.add_argument("--yes", action="store_true", help="do not ask before the production swap (step 2)")
    run.add_argument("--steps", default=None, help=argparse.SUPPRESS)
    run.add_argument("--verbose", action="store_true", help="show papermill's cell progress too")
    run.add_argument(
        "--break-lock",
        action="store_true",
        help="break the server's renewal lock another run holds (recorded)",
    )

    res = sub.add_parser(
        "resume", help="continue a failed run from its failed step, in a new run folder chained to it"
    )
    res.add_argument("run_dir")
    res.add_argument("--yes", action="store_true", help="do not ask before the production swap (step 2)")
    res.add_argument(
        "--params",
        metavar="FILE",
        help="corrected values (verify.*, backup.*, winrm.*, forbidden_roots, warn_days); others are refused",
    )
    res.add_argument("--verbose", action="store_true", help="show papermill's cell progress too")
    res.add_argument(
        "--break-lock",
        action="store_true",
        help="break the server's renewal lock another run holds (recorded)",
    )

    rb = sub.add_parser(
        "rollback",
        help="put the previous certificate back (a new run chained to RUN); --roots: the roots too",
    )
    rb.add_argument("run_dir", metavar="RUN")
    rb.add_argument(
        "--roots",
        action="store_true",
        help="also re-enable the roots RUN's step 0 disabled (from its .reg backups)",
    )
    rb.add_argument("--yes", action="store_true", help="do not ask before changing the production site")
    rb.add_argument("--verbose", action="store_true", help="show papermill's cell progress too")

    ins = sub.add_parser("inspect", help="inspect certificates: files, mails, PFX, CSR, or host:port")
    ins.add_argument("sources", nargs="+", metavar="SOURCE")
    ins.add_argument("--json", action="store_true", help="machine-readable output (schema in the README)")
    ins.add_argument("--password-env", metavar="VAR", help="environment variable holding the PFX password")
    ins.add_argument("--servername", metavar="NAME", help="SNI name to send to host:port sources")
    ins.add_argument("--hostname", metavar="NAME", action="append", help="host name the leaf must cover")
    ins.add_argument("--warn-days", type=int, default=30, metavar="N", help="expires_soon threshold (30)")
    ins.add_argument(
        "--forbidden-root", action="append", metavar="SHA1", help="extra forbidden root thumbprint"
    )

    ev = sub.add_parser("evidence", help="list, show and verify renewal evidence")
    evsub = ev.add_subparsers(dest="evidence_command", required=True, metavar="ACTION")
    evl = evsub.add_parser("list", help="one line per run")
    evl.add_argument("--root", default="evidence")
    evl.add_argument("--host")
    evl.add_argument("--site")
    evl.add_argument("--since", help="YYYY-MM-DD (UTC)")
    evl.add_argument("--status")
    evl.add_argument("--json", action="store_true")
    evs = evsub.add_parser("show", help="one run: summary, steps, facts, renders")
    evs.add_argument("run_dir")
    evs.add_argument("--json", action="store_true")
    evv = evsub.add_parser("verify", help="recompute hashes and the chain across runs")
    evv.add_argument("run_dir", nargs="?")
    evv.add_argument("--root")
    evv.add_argument("--hmac-key", metavar="REF", help="secret reference of the HMAC key (env:NAME …)")
    evv.add_argument("--json", action="store_true")
    evr = evsub.add_parser("report", help="an auditor's report of one run: one self-contained HTML file")
    evr.add_argument("run_dir")
    evr.add_argument(
        "--lang", default="ja+en", choices=["ja", "en", "ja+en", "en+ja"], help="ja, en or both (ja+en)"
    )
    evr.add_argument("--out", metavar="FILE", help="where to write it (default: ./<run id>.report.html)")

    reh = sub.add_parser("rehearse", help="the rehearsal host: an emulated Windows/IIS server")
    rehsub = reh.add_subparsers(dest="rehearse_command", required=True, metavar="ACTION")
    srv = rehsub.add_parser("serve", help="serve an emulated host over WS-Management until interrupted")
    srv.add_argument("--host", default="127.0.0.1", help="listen address (loopback only)")
    srv.add_argument("--port", type=int, default=0, help="port (0: pick a free one)")
    srv.add_argument(
        "--latency-ms",
        type=int,
        default=0,
        metavar="N",
        help="delay every WS-Management request by N ms, as a slow link would (0)",
    )
    srv.add_argument("--https", action="store_true", help="HTTPS with a generated certificate")
    srv.add_argument("--user", default="Administrator", help="Basic-auth user name (Administrator)")
    srv.add_argument(
        "--password-env",
        default="OPSLIB_REHEARSAL_PASSWORD",
        metavar="VAR",
        help="environment variable holding the password (unset: a random one, written to a 0600 file)",
    )
    srv.add_argument("--locale", choices=["en", "ja"], default=None, help="language of tool messages")
    srv.add_argument(
        "--codepage", type=int, choices=[437, 932, 65001], default=None, help="console code page (ja: 932)"
    )
    srv.add_argument(
        "--scenario",
        default="default",
        choices=sorted(scenarios.SCENARIOS),
        metavar="NAME",
        help="one of: " + ", ".join(sorted(scenarios.SCENARIOS)) + " (README: the rehearsal host)",
    )
    srv.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="before|after:PROGRAM[#N]:drop|timeout|fault500|fail (PROGRAM: certutil, certreq, reg, cscript, * …)",
    )
    srv.add_argument(
        "--state-file", metavar="F", help="JSON picture of the host, rewritten after every command"
    )
    srv.add_argument("--params-out", metavar="F", help="write a parameters file for this host")
    srv.add_argument("--workdir", metavar="DIR", help="where the CA file and mailed certificate are written")
    srv.add_argument(
        "--auth",
        choices=["basic", "ntlm", "negotiate"],
        default="basic",
        help="basic (historical rehearsal default) | ntlm/negotiate (WinRM as shipped: NTLM, encrypted HTTP)",
    )
    srv.add_argument(
        "--allow-basic", action="store_true", default=None, help="with --auth ntlm: also accept Basic"
    )
    srv.add_argument(
        "--allow-unencrypted",
        action="store_true",
        default=None,
        help="with --auth ntlm: accept unencrypted SOAP over HTTP (WinRM AllowUnencrypted=true)",
    )
    srv.add_argument(
        "--tls",
        choices=["modern", "tls1.0", "tls1.0-no-aes"],
        default="modern",
        help="HTTPS as Server 2003 serves it: tls1.0 (with KB948963 AES), tls1.0-no-aes (RC4/3DES only)",
    )
    demo = rehsub.add_parser("demo", help="a full renewal against a fresh rehearsal host")
    demo.add_argument("--evidence-root", default="evidence")
    demo.add_argument("--backup-dir", default="backups", help="where the PFX backup goes (0700)")
    _lab_parser(sub)
    return p


def _cmd_run(a: argparse.Namespace) -> int:
    from . import runbook

    return runbook.run(
        a.params,
        evidence_root=a.evidence_root,
        dry_run=a.dry_run,
        yes=a.yes,
        steps=a.steps,
        verbose=a.verbose,
        break_lock=a.break_lock,
    )


def _cmd_resume(a: argparse.Namespace) -> int:
    from . import runbook

    return runbook.resume(
        a.run_dir, yes=a.yes, params_file=a.params, verbose=a.verbose, break_lock=a.break_lock
    )


def _cmd_rollback(a: argparse.Namespace) -> int:
    from . import runbook

    return runbook.rollback(a.run_dir, roots=a.roots, yes=a.yes, verbose=a.verbose)


def _cmd_inspect(a: argparse.Namespace) -> int:
    from . import inspection as inspect_

    report = inspect_.inspect_sources(
        a.sources,
        password_env=a.password_env,
        servername=a.servername,
        hostnames=a.hostname or [],
        warn_days=a.warn_days,
        forbidden_roots=a.forbidden_root or [],
    )
    print(inspect_.render_json(report) if a.json else inspect_.render_text(report))
    return 0


def _cmd_evidence(a: argparse.Namespace) -> int:
    if a.evidence_command == "list":
        return evidence_list(a.root, host=a.host, site=a.site, since=a.since, status=a.status, as_json=a.json)
    if a.evidence_command == "show":
        return evidence_show(a.run_dir, as_json=a.json)
    if a.evidence_command == "report":
        return evidence_report(a.run_dir, lang=a.lang, out=a.out)
    return evidence_verify(a.run_dir, root=a.root, hmac_key=a.hmac_key, as_json=a.json)


# --- opslib evidence list|show|verify: the console text ---------------------------------------------


def _text_or_blank(value: Any) -> str:
    return "" if value is None or value != value else str(value)  # None and NaN read as blank


def _json_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: evidence.plain(v) for k, v in row.items()}


def _table(headers: list[str], rows: Iterable[list[str]]) -> str:
    rows = list(rows)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def evidence_report(run_dir: str, *, lang: str, out: str | None) -> int:
    """``opslib evidence report``: write the report outside the run folder (its files are hashed)."""
    from pathlib import Path

    from .evidence.report import write_report

    folder = Path(run_dir).resolve()
    target = Path(out) if out else Path(f"{folder.name}.report.html")
    if target.resolve().parent == folder or folder in target.resolve().parents:
        raise UsageError(
            f"--out {target}: inside the run folder, whose files are hashed in run.json",
            hint="write the report elsewhere (the run's own report.html is already there)",
        )
    print(write_report(folder, lang=lang, out=target).resolve())
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
        _table(
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
    return 0


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


def evidence_show(run_dir: str, *, as_json: bool) -> int:
    """``opslib evidence show``: summary, per-step status/duration/facts, where the renders are."""
    record = evidence.load_run(run_dir)
    summary = evidence.run_summary(record)
    if as_json:
        out = {
            **summary,
            "steps": [evidence.plain(s) for s in record.run.get("steps") or []],
            "facts": record.facts,
        }
        print(json.dumps(out, indent=2, ensure_ascii=False))
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
        f"old cert  {summary['old_thumbprint'] or '–'}  expires {summary['old_not_after_utc'] or '–'}",
        f"new cert  {summary['new_thumbprint'] or '–'}  expires {summary['new_not_after_utc'] or '–'}",
        f"backup    {summary['backup_file'] or '–'}  sha256 {summary['backup_sha256'] or '–'}",
        f"chain     previous run {summary['previous_run'] or '(none)'}; "
        f"{summary['files']} files hashed{'; signed (HMAC)' if summary['signed'] else ''}",
    ]
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
    print("\n".join(lines))
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
        print(_indent(_table(["STEP", "STATUS", "DURATION", "ERROR"], rows)))
        print("\nfacts recorded, by step (in full)")
        for s in records:
            facts = s["facts"] if isinstance(s["facts"], dict) else {}
            print(f"  {s['name']}" + ("" if facts else ": (none)"))
            for key, value in facts.items():
                print("\n".join(f"    {line}" for line in _fact_lines(str(key), value)))
    print("\nrenders (HTML for reviewers)")
    print("\n".join(f"  {os.path.join(summary['path'], r)}" for r in summary["renders"]) or "  (none)")
    return 0


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
    key: bytes | None = None
    if hmac_key:
        key = resolve(hmac_key, purpose="HMAC key").encode("utf-8")
    reports = (
        [evidence.verify_run(run_dir, hmac_key=key)]
        if run_dir
        else evidence.verify_root(str(root), hmac_key=key)
    )
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


def _cmd_rehearse(a: argparse.Namespace) -> int:
    from . import rehearsal

    if a.rehearse_command == "serve":
        return rehearsal.serve_forever(
            listen=a.host,
            port=a.port,
            https=a.https,
            user=a.user,
            password_env=a.password_env,
            locale=a.locale,
            codepage=a.codepage,
            scenario=a.scenario,
            faults=a.fault,
            state_file=a.state_file,
            params_out=a.params_out,
            workdir=a.workdir,
            auth=a.auth,
            allow_basic=a.allow_basic,
            allow_unencrypted=a.allow_unencrypted,
            tls=a.tls,
            latency_ms=a.latency_ms,
        )
    from .rehearsal import demo

    return demo.run_demo(evidence_root=a.evidence_root, backup_dir=a.backup_dir)


# --- opslib lab capture|compare (issue 15) -------------------------------------------------------------


def _lab_parser(sub: Any) -> None:
    lab = sub.add_parser("lab", help="lab check: capture how a server answers the kit's commands; compare")
    labsub = lab.add_subparsers(dest="lab_command", required=True, metavar="ACTION")
    cap = labsub.add_parser("capture", help="run the probe set against the host of a parameters file")
    cap.add_argument("params", help="parameters file (YAML); only its host and winrm sections are used")
    cap.add_argument("--out", required=True, metavar="DIR", help="new folder for the bundle")
    cap.add_argument(
        "--reversible",
        action="store_true",
        help="also add, disable, re-enable, export and delete a throw-away certificate in MY (asks first)",
    )
    cap.add_argument("--yes", action="store_true", help="with --reversible: do not ask")
    cmp_ = labsub.add_parser("compare", help="run the same probes on a matching rehearsal host; diff")
    cmp_.add_argument("bundle", metavar="DIR", help="a folder written by `opslib lab capture`")
    cmp_.add_argument("--scenario", help="rehearsal scenario (default: chosen from the captured host)")
    cmp_.add_argument("--json", action="store_true", help="machine-readable output")


def _confirm_reversible(yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(
            "--reversible changes the server's MY store (a throw-away certificate, undone) and needs a yes",
            hint="run it on a terminal, or add --yes",
        )
    answer = input(
        "The reversible tier adds a throw-away certificate to the server's MY store, disables and re-enables "
        "it, exports it and deletes it. No existing certificate or site is touched. Type yes to go on: "
    )
    if answer.strip().lower() != "yes":
        raise UsageError("not confirmed; nothing was changed")


def _cmd_lab(a: argparse.Namespace) -> int:
    from . import lab

    if a.lab_command == "capture":
        if a.reversible:
            _confirm_reversible(a.yes)
        manifest = lab.capture(a.params, a.out, tier="reversible" if a.reversible else "read-only")
        failed = [p["id"] for p in manifest["probes"] if p.get("error")]
        host = manifest["host"]
        print(f"captured {len(manifest['probes'])} probes from {manifest['host_label']} into {a.out}")
        print(
            f"  Windows {host['windows_version'] or '?'}, IIS {host['iis_major']}.{host['iis_minor']}, "
            f"code page {host['codepage']}, language {host['language']}, WinRM {host['winrm_stack'] or '?'}"
        )
        if failed:
            print(f"  probes that could not finish (recorded): {', '.join(failed)}")
        print(f"next: opslib lab compare {a.out}")
        return 0
    result = lab.compare(a.bundle, scenario=a.scenario)
    if a.json:
        print(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
        return result.exit_code
    print(f"bundle {a.bundle} ({result.source}, {result.tier}) vs rehearsal scenario {result.scenario}")
    rows = [
        [
            v.id,
            "same" if v.agrees else "DIFFERS",
            "; ".join(f"{d['key']}: {d['captured']!r} vs {d['rehearsal']!r}" for d in v.decision_diffs),
            " ".join(v.rows),
        ]
        for v in result.verdicts
    ]
    print(_table(["probe", "decision", "differences (captured vs rehearsal)", "rows"], rows))
    red = [r for r in result.verdict_rows() if r["verdict"] == "red"]
    if red:
        print("what each difference means for a renewal on this host:")
        for r in red:
            print(f"  {r['probe']}: {r['for a renewal']}")
    cosmetic = [(v.id, c) for v in result.verdicts for c in v.cosmetic]
    if cosmetic:
        print(f"cosmetic differences ({len(cosmetic)}; not decided on):")
        for pid, text in cosmetic:
            print(f"  {pid}: {text}")
    n = result.decision_differences
    print(
        f"{n} decision-relevant difference(s): the kit's beliefs do not hold on this host as on the rehearsal host"
        if n
        else "no decision-relevant difference"
    )
    return result.exit_code


_COMMANDS = {
    "run": _cmd_run,
    "resume": _cmd_resume,
    "rollback": _cmd_rollback,
    "inspect": _cmd_inspect,
    "evidence": _cmd_evidence,
    "rehearse": _cmd_rehearse,
    "lab": _cmd_lab,
}


def _show_cell_detail() -> None:
    """``--verbose``: papermill's cell-by-cell log (its progress bar is switched on by the runner)."""
    import logging

    logger = logging.getLogger("papermill")
    if not any(getattr(h, "_opslib", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("papermill: %(message)s"))
        handler._opslib = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if getattr(args, "verbose", False):
        _show_cell_detail()
    try:
        return _COMMANDS[args.command](args)
    except OpsError as exc:
        print(f"opslib: error: {redact(str(exc))}", file=sys.stderr)
        # After a failed run: what production serves now, what changed, the exact next command.
        for line in getattr(exc, "recovery", ()):
            print(redact(line), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("opslib: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
