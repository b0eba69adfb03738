"""Helpers of ``notebooks/review_evidence.ipynb``: pandas tables, styling and charts.

pandas and matplotlib are imported inside the functions that need them: writing evidence must stay cheap.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..credentials import redact, resolve
from ..errors import EvidenceError
from ..winrm.quoting import codec
from .folder import cell_text
from .index import RunRecord, load_run, run_summary
from .manifest import RUN_JSON, TRANSCRIPT, UNREADABLE, parse_utc, require_utc
from .report import run_mode
from .report_parts import value_html
from .verify import INTACT, UNPROVEN_TEXT, VerifyReport, verdict_text, verify_root

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure
    from pandas.io.formats.style import Styler


_STATUS_COLOURS = {
    "succeeded": "#d8f0d8",
    "failed": "#f8d0d0",
    "running": "#fff0c0",
    UNREADABLE: "#e0e0e0",
}


# --- review notebook helpers --------------------------------------------------------------------


def check_root(evidence_root: str | os.PathLike[str]) -> Path:
    """The review notebook's first check: ``evidence_root`` is a folder; if not, what to set, in the
    notebook's words (its parameters cell), not the command line's."""
    root = Path(evidence_root)
    if not root.is_dir():
        raise EvidenceError(
            str(evidence_root),
            f"no evidence folder here (looked in {root.resolve()})",
            hint="set evidence_root in this notebook's parameters cell to the folder of run folders: after "
            "`make demo`, from notebooks/ that is ../evidence (the default); with papermill add "
            "-p evidence_root DIR; no run yet: `make demo` makes one",
        )
    return root


def format_time(value: Any, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if value is None or value != value:  # None, NaN, NaT
        return ""
    return f"{value:{fmt}}"


def short_thumbprint(value: Any) -> str:
    return str(value)[:8] if isinstance(value, str) and value else "–"


def status_text(row: Mapping[str, Any]) -> str:
    status = str(row.get("status") or "")
    if status == "failed" and isinstance(row.get("failed_step"), str):
        status = f"failed at {row['failed_step']}"
    return f"{status} (dry run)" if row.get("dry_run") else status


def run_modes(df: pd.DataFrame) -> list[str]:
    """renew | dry run | rollback | resume per row of :func:`.index.load_runs` (:func:`.report.run_mode`):
    from a ``mode`` column when the table has one, else from each row's run.json."""
    out = []
    for row in df.to_dict("records"):
        doc: Any = row
        if "mode" not in row or "resumes" not in row:
            try:
                doc = {**row, **json.loads((Path(str(row["path"])) / RUN_JSON).read_text(encoding="utf-8"))}
            except (OSError, ValueError, TypeError):
                doc = row
        out.append(run_mode(doc) if isinstance(doc, Mapping) else "renew")
    return out


def integrity_reports(evidence_root: str | os.PathLike[str], hmac_key: str = "") -> list[VerifyReport]:
    """:func:`.verify.verify_root` for the review notebook. ``hmac_key`` is a secret *reference*
    (``env:NAME`` or ``keyring:service/user``), never the key: the notebook and its output hold only the
    reference; without one, no run reads as intact (:data:`.verify.UNPROVEN_TEXT`)."""
    key: bytes | None = None
    if hmac_key:
        if hmac_key.strip().startswith("prompt"):
            raise EvidenceError(
                "hmac_key",
                "a notebook cannot prompt for the HMAC key",
                hint="pass a reference such as env:OPSLIB_EVIDENCE_HMAC_KEY",
            )
        key = resolve(hmac_key, purpose="HMAC key").encode("utf-8")
    return verify_root(evidence_root, hmac_key=key)


def integrity_summary(reports: Iterable[VerifyReport]) -> str:
    """The notebook's first line about integrity: how many runs have problems, and what "no problem" proves."""
    reports = list(reports)
    bad = sum(not r.ok for r in reports)
    keyed = any(r.hmac_checked for r in reports)
    proof = "HMAC checked with the operator's key" if keyed else UNPROVEN_TEXT["en"]
    return f"{bad} of {len(reports)} runs have integrity problems ({proof})"


def integrity_by_run(reports: Iterable[VerifyReport]) -> dict[str, str]:
    """``run_id`` → :func:`.verify.verdict_text` (intact / not provable without the key / the problems)."""
    return {report.run_id: verdict_text(report) for report in reports}


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
        status=[status_text({**r, "dry_run": False}) for r in shown.to_dict("records")],
        mode=run_modes(shown),
        old=shown["old_thumbprint"].map(short_thumbprint),
        new=shown["new_thumbprint"].map(short_thumbprint),
        integrity=shown["run_id"].map(lambda r: integrity.get(r, "not checked")),
    )[
        [
            "run_id",
            "host",
            "site",
            "operator",
            "mode",
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
        if value == INTACT:
            return "color: #176317"
        if value == UNPROVEN_TEXT["en"]:
            return "color: #8a6d00"
        return "" if value == "not checked" else "background-color: #f8d0d0; font-weight: bold"

    return (
        table.style.map(status_colour, subset=["status"])
        .map(integrity_colour, subset=["integrity"])
        .format(
            {"started_utc": format_time, "new_not_after_utc": lambda v: format_time(v, "%Y-%m-%d")}, na_rep=""
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
    """The run to compare ``run`` with: ``compare_with``, or the previous successful renewal of the same
    host and site (a real renewal or a resumed one: not a dry run, not a rollback, not a failed run)."""
    if compare_with:
        return load_run(pick_run(df, compare_with))
    same = df[
        (df["host"] == run.run.get("host"))
        & (df["site"] == run.run.get("site"))
        & (df["run_id"] != run.run_id)
        & (df["status"] == "succeeded")
    ]
    started = parse_utc(run.run.get("started_utc"))
    if started is not None:
        import pandas as pd

        same = same[same["started_utc"] < pd.Timestamp(started)]
    if not same.empty:
        same = same[[m in ("renew", "resume") for m in run_modes(same)]]
    return load_run(same.iloc[-1]["path"]) if not same.empty else None


def steps_table(record: RunRecord) -> pd.DataFrame:
    """The run's steps: status, times, duration, error, and how many facts each recorded
    (the facts themselves: :func:`facts_table`)."""
    steps = record.steps.copy()
    steps["facts"] = [len(f) if isinstance(f, dict) else 0 for f in steps["facts"]]
    return steps.rename(columns={"facts": "facts recorded"})


def facts_table(record: RunRecord, step: str = "") -> Styler:
    """The facts of a run (or of one ``step``) as a table; lists of records are nested tables, not JSON text."""
    import pandas as pd

    if step:
        found = [s for s in record.run.get("steps") or [] if s.get("name") == step]
        facts: Mapping[str, Any] = (found[0].get("facts") or {}) if found else {}
    else:
        facts = record.facts
    # value_html escapes every value; the Styler shows the nested tables it builds as they are.
    df = pd.DataFrame({"fact": list(facts), "value": [value_html(v) for v in facts.values()]})
    return (
        df.style.hide(axis="index")
        .set_caption(f"{len(df)} facts of {step or record.run_id}")
        .set_properties(**{"text-align": "left", "vertical-align": "top", "overflow-wrap": "anywhere"})
    )


def _decode(raw: Any, codepage: int) -> str:
    """Base64 of a command's raw output bytes → text in the console's code page (CRLF → LF)."""
    if not raw:
        return ""
    try:
        data = base64.b64decode(str(raw), validate=True)
    except ValueError:
        return "(not base64)"
    try:
        return redact(data.decode(codec(codepage), "replace").replace("\r\n", "\n").strip())
    except LookupError:
        return f"(no codec for code page {codepage})"


def transcript_table(record: RunRecord, *, limit: int = 500) -> pd.DataFrame:
    """The remote commands with their output decoded: the transcript holds the raw bytes (base64);
    each is decoded with the line's ``codepage``, else the code page the run recorded (step 0's
    ``codepage`` fact), else 437 — never as UTF-8 guesses."""
    import pandas as pd

    default = record.facts.get("codepage")
    rows = []
    path = record.path / TRANSCRIPT
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines() if path.is_file() else []
    for line in lines[:limit]:
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if not isinstance(item, dict):
            continue
        page = item.get("codepage") or default or 437
        page = int(page) if str(page).isdigit() else 437

        rows.append(
            {
                "what": item.get("what") or item.get("kind") or "",
                "command": redact(
                    str(item.get("command_line") or " ".join(map(str, item.get("argv") or [])))
                ),
                "exit_code": item.get("exit_code"),
                "duration_s": item.get("duration_s"),
                "codepage": page,
                "stdout": _decode(item.get("stdout_b64"), page),
                "stderr": _decode(item.get("stderr_b64"), page),
            }
        )
    columns = ["what", "command", "exit_code", "duration_s", "codepage", "stdout", "stderr"]
    table = pd.DataFrame(rows, columns=columns)
    table["exit_code"] = pd.to_numeric(table["exit_code"], errors="coerce").astype("Int64")
    return table


def summary_table(record: RunRecord) -> pd.DataFrame:
    """:func:`run_summary` as a two-column table."""
    import pandas as pd

    summary = run_summary(record)
    return pd.DataFrame({"field": list(summary), "value": [cell_text(v) for v in summary.values()]})


def expiry_table(df: pd.DataFrame, *, now_utc: dt.datetime, warn_days: int = 30) -> pd.DataFrame:
    """The certificate in service per host and site, soonest expiry first: what must be renewed next.

    From each host/site's newest run, whatever its mode (renew, resume, rollback, dry run): what
    production serves after it (:func:`opslib.evidence.index.certificates`, ``serving_*``) — the
    certificate a renewal or a rollback put in service when it succeeded, what a failed run found
    production serving after its failure, the old certificate after a dry run."""
    import pandas as pd

    now = pd.Timestamp(require_utc(now_utc, "now_utc"))
    columns = ["host", "site", "thumbprint", "not_after_utc", "days_left", "state", "source_run"]
    known = df[df["status"] != UNREADABLE]
    rows = []
    for (host, site), group in known.groupby(["host", "site"], sort=True):
        last = group.sort_values("started_utc").iloc[-1]
        thumbprint = last["serving_thumbprint"]
        not_after = last["serving_not_after_utc"]
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

    now = pd.Timestamp(require_utc(now_utc, "now_utc")).tz_localize(None)
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
            "status": status_text(
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
        va, vb = cell_text(left.get(key)), cell_text(right.get(key))
        rows.append([key, va, vb, b is not None and key not in ("run_id", "started_utc") and va != vb])
    return pd.DataFrame(rows, columns=["field", "this run", "other run", "changed"])
