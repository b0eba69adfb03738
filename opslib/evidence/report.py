"""An auditor's report of one run: one self-contained HTML file, in Japanese and English.

:func:`write_report` reads a run folder — ``run.json`` and the executed step notebooks — and writes
one HTML file with inline CSS, no script and no external resource: a summary first (host, site,
operator, time in UTC and JST, result, old → new certificate, what changed, what was checked,
the backup and the integrity status from :func:`.verify.verify_run`), then one section per step with
the notebook's prose and its output tables. No code cell, no parameters cell, no traceback (a
failure reads as the step's ``where: problem — hint``), no value cut short: the recorded facts are
rendered from their JSON (``application/vnd.opslib.facts+json``), and a notebook table that pandas
shortened ("...") is replaced by a note pointing at them.

The runner writes ``report.html`` into the run folder just before it finalizes the evidence (so
the report is hashed with the rest); ``opslib evidence report RUN`` writes a fresh one elsewhere.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from typing import Any

from .. import credentials
from ..errors import EvidenceError, UsageError
from .manifest import FACTS_MIME, RUN_JSON, is_finalized, parse_utc
from .verify import INTACT, UNPROVEN, UNPROVEN_TEXT, verdict, verify_run

REPORT_FILE = "report.html"  # in the run folder, beside html/
LANGS = ("ja+en", "en+ja", "ja", "en")
JST = timezone(timedelta(hours=9), "JST")  # Japan has no daylight saving time
_SKIP_TAGS = {"parameters", "injected-parameters", "papermill-error-cell-tag"}
_CHANGE_KEYS = {"target", "field", "before", "after"}

_LABELS: dict[str, tuple[str, str]] = {
    "title": ("作業報告書", "Run report"),
    "summary": ("概要", "Summary"),
    "run": ("実行", "Run"),
    "host": ("ホスト", "Host"),
    "site": ("サイト", "Site"),
    "operator": ("作業者", "Operator"),
    "mode": ("種別", "Mode"),
    "started": ("開始", "Started"),
    "finished": ("終了", "Finished"),
    "result": ("結果", "Result"),
    "error": ("エラー", "Error"),
    "certificate": ("証明書", "Certificate"),
    "old": ("旧証明書", "Old certificate"),
    "new": ("新証明書", "New certificate"),
    "replaced": ("戻す前の証明書", "Certificate taken out"),
    "restored": ("戻した証明書", "Certificate put back"),
    "thumbprint": ("拇印", "Thumbprint"),
    "expires": ("有効期限", "Expires"),
    "changes": ("変更内容 (変更前 → 変更後)", "What changed (before → after)"),
    "planned": (
        "変更予定 (ドライラン: 何も変更していません)",
        "Planned changes (dry run: nothing was changed)",
    ),
    "no_change": ("変更はありません", "Nothing was changed"),
    "target": ("対象", "Target"),
    "field": ("項目", "Field"),
    "before": ("変更前", "Before"),
    "after": ("変更後", "After"),
    "step": ("手順", "Step"),
    "checks": ("確認内容と結果", "What was checked"),
    "check": ("確認", "Check"),
    "outcome": ("結果", "Outcome"),
    "detail": ("詳細", "Detail"),
    "backup": ("バックアップ", "Backup"),
    "location": ("保存先", "Location"),
    "sha256": ("SHA-256", "SHA-256"),
    "no_backup": ("この実行ではバックアップを取得していません", "This run made no backup"),
    "integrity": ("証跡の完全性", "Evidence integrity"),
    "size_only": ("ファイル転送の検証 (サイズのみ)", "A file transfer checked by size only"),
    "steps": ("手順ごとの記録", "The steps"),
    "facts": ("記録された事実", "Recorded facts"),
    "cut": (
        "この表は notebook 内で省略表示されたため載せていません。全値は「記録された事実」を参照してください。",
        "This table was shortened by pandas in the notebook and is left out; "
        "the full values are in the recorded facts.",
    ),
    "failed_here": ("この手順はここで失敗しました", "This step failed here"),
    "rest_not_run": ("以降の処理は実行されていません。", "The rest of this step did not run."),
    "not_run_step": ("この手順は実行されていません。", "This step did not run."),
    "duration": ("所要時間", "Duration"),
    "generated": ("作成", "Generated"),
}
_WORDS: dict[str, tuple[str, str]] = {
    "succeeded": ("成功", "succeeded"),
    "failed": ("失敗", "failed"),
    "running": ("実行中", "running"),
    "not run": ("未実行", "not run"),
    "passed": ("合格", "passed"),
    "not recorded": ("記録なし", "not recorded"),
    "planned only": ("確認のみ", "checked only"),
    "renew": ("更新", "renewal"),
    "dry run": ("ドライラン", "dry run"),
    "rollback": ("ロールバック", "rollback"),
    "resume": ("再開", "resume"),
    "ok": ("問題なし", "intact"),
    UNPROVEN: (UNPROVEN_TEXT["ja"], UNPROVEN_TEXT["en"]),
    "pending": ("確定前に作成", "written before finalizing"),
    "size only": ("サイズのみ", "size only"),
}
# What each step checks (its "Check:" cells); the outcome is the step's status plus the facts below.
_STEP_CHECKS: dict[str, tuple[str, str]] = {
    "00_precheck_root_store": ("有効な禁止ルートが残っていない", "No forbidden root is left enabled"),
    "01_install_certificate": (
        "新証明書が鍵・中間証明書と共に導入された",
        "The new certificate is installed with its key and chain",
    ),
    "02_swap_certificate": (
        "本番サイトが新証明書に切替わった (読み戻し)",
        "The production site uses it (read back)",
    ),
    "03_backup_keypair": (
        "PFX バックアップが開き、証明書と鍵を含む",
        "The PFX backup opens and holds the key pair",
    ),
    "04_verify_endpoint": (
        "期待した証明書と中間証明書を提供 (SNI あり/なし)",
        "The site serves the expected chain (SNI and no SNI)",
    ),
    "05_rollback_certificate": (
        "本番サイトが元の証明書に戻った (読み戻し)",
        "The previous certificate is back (read back)",
    ),
}


def run_mode(doc: Mapping[str, Any]) -> str:
    """renew | dry run | rollback | resume, from a run.json (or a runs-table row): ``resumes`` (the run a
    resume continues) or ``mode: resume`` first, then ``mode``/``parameters.mode``, then ``dry_run``."""
    params = doc.get("parameters")
    mode = doc.get("mode") or (params.get("mode") if isinstance(params, Mapping) else None) or "renew"
    if doc.get("resumes") or mode == "resume":
        return "resume"
    if mode == "rollback":
        return "rollback"
    return "dry run" if doc.get("dry_run") is True else "renew"


class _Lang:
    def __init__(self, lang: str) -> None:
        if lang not in LANGS:
            raise UsageError(f"--lang {lang!r}: expected one of {', '.join(LANGS)}")
        self.order = lang.split("+")

    def pair(self, ja: str, en: str) -> str:
        parts = {"ja": ja, "en": en}
        spans = [f'<span lang="{k}">{html.escape(parts[k])}</span>' for k in self.order]
        return ' <span class="sep">/</span> '.join(spans)

    def __call__(self, key: str) -> str:
        return self.pair(*_LABELS[key])

    def word(self, value: str) -> str:
        return self.pair(*_WORDS[value]) if value in _WORDS else html.escape(value)

    def split(self, title: str) -> str:
        """A step title of the form "日本語 / English"."""
        ja, _, en = title.partition(" / ")
        return self.pair(ja, en) if en else html.escape(title)


# --- reading the run ------------------------------------------------------------------------------


def _read_run(run_dir: Path) -> dict[str, Any]:
    try:
        doc = json.loads((run_dir / RUN_JSON).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EvidenceError(
            str(run_dir), "no run.json here", hint="give a folder made by `opslib run`"
        ) from None
    except (OSError, ValueError) as exc:
        raise EvidenceError(str(run_dir / RUN_JSON), f"unreadable ({type(exc).__name__})") from None
    if not isinstance(doc, dict):
        raise EvidenceError(str(run_dir / RUN_JSON), "not a run manifest")
    return doc


def _times(value: Any) -> str:
    moment = parse_utc(value)
    if moment is None:
        return ""
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%d %H:%M:%S} UTC ({utc.astimezone(JST):%Y-%m-%d %H:%M:%S} JST)"


def _unchanged(before: Any, after: Any) -> bool:
    """True for a plan row that changes nothing: the same value, or the kit's own wording of a no-op
    ("present" → "present (already installed)", "disabled (…)" → "unchanged: already disabled")."""

    def norm(value: Any) -> str:
        text = re.sub(r"\s*\(.*\)$", "", str(value or "")).strip().lower()
        return text.removeprefix("unchanged:").strip().removeprefix("already ").strip()

    return norm(before) == norm(after) or str(after or "").lower().startswith("unchanged")


def changes(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every change row (``target``/``field``/``before``/``after``) the steps recorded where before and
    after differ (:func:`_unchanged`: "disabled → disabled" is not a change)."""
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str, str, str]] = set()
    for step in doc.get("steps") or []:
        for value in (step.get("facts") or {}).values():
            if not (isinstance(value, list) and value and all(isinstance(v, dict) for v in value)):
                continue
            if not all(_CHANGE_KEYS <= set(v) for v in value):
                continue
            for v in value:
                before, after = v.get("before"), v.get("after")
                key = (str(v["target"]), str(v["field"]), str(before), str(after))
                if _unchanged(before, after) or key in seen:
                    continue
                seen.add(key)
                rows.append({"step": str(step.get("name")), **{k: v.get(k) for k in _CHANGE_KEYS}})
    return rows


def checks(doc: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """(step, description key, outcome, detail) for each step of the run, from its status and facts."""
    facts = doc.get("facts") or {}
    recorded = {str(s.get("name")): s for s in doc.get("steps") or []}
    names = list(recorded) + [n for n in doc.get("selected_steps") or [] if n not in recorded]
    out: list[tuple[str, str, str, str]] = []
    for name in names:
        status = str((recorded.get(name) or {}).get("status") or "not run")
        outcome = {"succeeded": "passed", "failed": "failed", "running": "failed"}.get(status, "not run")
        if outcome == "passed" and doc.get("dry_run") and name != "04_verify_endpoint":
            outcome = "planned only"
        out.append((name, name, outcome, _check_detail(name, facts) if outcome != "not run" else ""))
    return out


def _check_detail(name: str, f: Mapping[str, Any]) -> str:
    new = f.get("new_thumbprint")

    def which(thumbprint: Any) -> str:
        return "the new certificate" if thumbprint and thumbprint == new else str(thumbprint)

    if name == "00_precheck_root_store":
        found = f.get("forbidden_roots_found") or []
        return f"forbidden roots found: {len(found)}; changes: {len(f.get('forbidden_roots_disabled') or [])}"
    if name == "01_install_certificate" and new:
        return str(f.get("chain") or new)
    if name == "02_swap_certificate" and f.get("expected_thumbprint"):
        return f"SSLCertHash = {which(f.get('expected_thumbprint'))}"
    if name == "03_backup_keypair" and f.get("pfx_thumbprint"):
        same = f.get("pfx_thumbprint") == f.get("backup_thumbprint")
        held = (
            which(f.get("pfx_thumbprint"))
            if same
            else f"{f.get('pfx_thumbprint')} (≠ {f.get('backup_thumbprint')})"
        )
        return f"PFX holds {held}; server copy deleted: {f.get('server_copy_deleted')}"
    if name == "04_verify_endpoint" and "served_leaf_sni" in f:
        want = f.get("expected_thumbprint")
        served = {f.get("served_leaf_sni"), f.get("served_leaf_no_sni")}
        leaf = f"serves {which(want)}" if served == {want} else "served: " + ", ".join(map(str, served))
        problems = "; ".join(map(str, f.get("verify_problems") or [])) or "none"
        warnings = "; ".join(map(str, f.get("verify_warnings") or [])) or "none"
        return f"{leaf} (SNI and no SNI); chain ok: {f.get('chain_ok')}; problems: {problems}; warnings: {warnings}"
    if name == "05_rollback_certificate" and f.get("restored_thumbprint"):
        return f"serves {f.get('restored_thumbprint')} again"
    return ""


def integrity(
    run_dir: Path, doc: Mapping[str, Any], *, before_finalizing: bool = False, hmac_key: bytes | None = None
) -> tuple[str, str]:
    """(outcome word, detail): :func:`verify_run` and :func:`.verify.verdict` — ``ok`` (intact) only when
    the HMAC was checked with ``hmac_key``; for the runner's own report, the way to check it."""
    if before_finalizing:
        return (
            "pending",
            f"this report is part of the evidence; check it with: opslib evidence verify {run_dir}",
        )
    report = verify_run(run_dir, hmac_key=hmac_key)
    if not is_finalized(doc) and all(p.kind == "unfinalized" for p in report.problems):
        return (
            "pending",
            f"the run was never finalized (interrupted, or still running): opslib resume {run_dir}",
        )
    word = verdict(report)
    if word == INTACT:
        return "ok", (
            f"{report.files_checked} files match their SHA-256 in run.json; the chain link and the head record "
            "hold; the HMAC of run.json checks with the operator's key"
        )
    if word == UNPROVEN:
        return UNPROVEN, (
            f"{report.files_checked} files match their SHA-256 in run.json and the chain link and the head "
            "record hold, but whoever can write the folder can recompute those: check it with "
            f"opslib evidence verify {run_dir} --hmac-key REF"
        )
    return "failed", "; ".join(p.line() for p in report.problems)


# --- HTML pieces ------------------------------------------------------------------------------------


def value_html(value: Any) -> str:
    """One value as (escaped) HTML: nested lists of mappings become tables, nothing is shortened."""
    if isinstance(value, Mapping):
        rows = "".join(f"<tr><th>{html.escape(str(k))}</th>{_td(v)}</tr>" for k, v in value.items())
        return f'<table class="kv inner"><tbody>{rows}</tbody></table>'
    if isinstance(value, list):
        if value and all(isinstance(v, Mapping) for v in value):
            columns = list(dict.fromkeys(k for v in value for k in v))
            return _table(columns, [[v.get(c) for c in columns] for v in value], inner=True)
        return "<br>".join(value_html(v) for v in value)
    if value is None:
        return ""
    return html.escape(str(value))


def _td(value: Any) -> str:
    text = value if isinstance(value, str) else ""
    mono = (text and " " not in text and len(text) >= 16) or "\\" in text  # thumbprints, keys, paths
    return f'<td class="mono">{value_html(value)}</td>' if mono else f"<td>{value_html(value)}</td>"


def _table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], *, inner: bool = False, raw_headers: bool = False
) -> str:
    head = "".join(f"<th>{h if raw_headers else html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_td(v) for v in row) + "</tr>" for row in rows)
    opening = '<table class="inner">' if inner else "<table>"
    return f"{opening}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _kv(rows: Iterable[tuple[str, str]]) -> str:
    """A two-column table whose values are HTML already."""
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="kv"><tbody>{body}</tbody></table>'


_OUTCOME_CLASS = {
    "passed": "ok",
    "ok": "ok",
    "failed": "ng",
    "not run": "skip",
    "planned only": "warn",
    "pending": "warn",
    "size only": "warn",
    UNPROVEN: "warn",
}


def _badge(t: _Lang, outcome: str) -> str:
    return f'<span class="badge {_OUTCOME_CLASS.get(outcome, "")}">{t.word(outcome)}</span>'


def _certificate_rows(t: _Lang, doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    f = doc.get("facts") or {}
    params = doc.get("parameters") or {}
    if run_mode(doc) == "rollback" or f.get("restored_thumbprint"):
        pairs = [
            ("replaced", f.get("replaced_thumbprint"), None),
            (
                "restored",
                f.get("restored_thumbprint") or (params.get("rollback") or {}).get("old_thumbprint"),
                None,
            ),
        ]
    else:
        old_thumb = f.get("old_thumbprint") or f.get("production_thumbprint_before")
        old_after = f.get("old_not_after_utc") or f.get("production_not_after_utc_before")
        pairs = [("old", old_thumb, old_after), ("new", f.get("new_thumbprint"), f.get("new_not_after_utc"))]
    rows = []
    for key, thumb, not_after in pairs:
        value = f'<span class="mono">{html.escape(str(thumb or "–"))}</span>'
        if not_after:
            value += f"<br>{t('expires')}: {html.escape(_times(not_after))}"
        rows.append((t(key), value))
    return rows


def summary_html(
    t: _Lang,
    run_dir: Path,
    doc: Mapping[str, Any],
    *,
    before_finalizing: bool = False,
    hmac_key: bytes | None = None,
) -> str:
    """The summary section (everything an auditor needs at a glance)."""
    params = doc.get("parameters") or {}
    status = str(doc.get("status") or "running")
    result = _badge(t, "passed" if status == "succeeded" else "failed" if status == "failed" else status)
    if doc.get("failed_step"):
        result += f" ({html.escape(str(doc['failed_step']))})"
    run_rows = [
        (t("run"), f'<span class="mono">{html.escape(str(doc.get("run_id", run_dir.name)))}</span>'),
        (t("host"), html.escape(str(doc.get("host", "")))),
        (t("site"), html.escape(str(doc.get("site") or params.get("production_site") or ""))),
        (t("operator"), html.escape(str(doc.get("operator", "")))),
        (t("mode"), t.word(run_mode(doc))),
        (t("started"), html.escape(_times(doc.get("started_utc")))),
        (t("finished"), html.escape(_times(doc.get("finished_utc")))),
        (t("result"), result),
    ]
    failure = (
        f'<div class="failure summary-error"><strong>{t("error")}:</strong> {html.escape(str(doc["error"]))}</div>'
        if doc.get("error")
        else ""
    )
    run_rows += _certificate_rows(t, doc)
    check_rows = [
        [t.pair(*_STEP_CHECKS.get(key, (name, name))), _badge(t, outcome), html.escape(detail)]
        for name, key, outcome, detail in checks(doc)
    ]
    word, detail = integrity(run_dir, doc, before_finalizing=before_finalizing, hmac_key=hmac_key)
    check_rows.append([t("integrity"), _badge(t, word), html.escape(detail)])
    # No silent downgrade (W-CERTUTIL-HASHFILE): every transfer the run checked by size only, and why.
    check_rows += [
        [t("size_only"), _badge(t, "size only"), html.escape(str(line))]
        for line in doc.get("size_only_checks") or []
    ]
    facts = doc.get("facts") or {}
    if facts.get("backup_file"):
        backup = _kv(
            [
                (t("location"), f'<span class="mono">{html.escape(str(facts["backup_file"]))}</span>'),
                (
                    t("sha256"),
                    f'<span class="mono">{html.escape(str(facts.get("backup_sha256", "")))}</span>',
                ),
            ]
        )
    else:
        backup = f'<p class="note">{t("no_backup")}</p>'
    rows = changes(doc)
    heading = t("planned") if doc.get("dry_run") else t("changes")
    if rows:
        headers = [t(k) for k in ("step", "target", "field", "before", "after")]
        change_table = _table(
            headers,
            [[r["step"].split("_")[0], r["target"], r["field"], r["before"], r["after"]] for r in rows],
            raw_headers=True,
        )
    else:
        change_table = f'<p class="note">{t("no_change")}</p>'
    check_table = (
        '<table class="checks"><colgroup><col style="width:47%"><col style="width:15%"><col></colgroup>'
        f"<thead><tr><th>{t('check')}</th><th>{t('outcome')}</th><th>{t('detail')}</th></tr></thead><tbody>"
        + "".join(f"<tr><td>{a}</td><td>{b}</td><td>{c}</td></tr>" for a, b, c in check_rows)
        + "</tbody></table>"
    )
    return (
        f'<section id="summary"><h1>{t("title")} — {html.escape(str(doc.get("site", "")))}</h1>{failure}'
        f'<div class="grid"><div><h3>{t("summary")}</h3>{_kv(run_rows)}'
        f"<h3>{t('backup')}</h3>{backup}<h3>{t('checks')}</h3>{check_table}</div>"
        f"<div><h3>{heading}</h3>{change_table}</div></div></section>"
    )


# --- the step sections --------------------------------------------------------------------------------


class _Tables(HTMLParser):
    """The tables of a ``text/html`` output as rows of (is header, text); everything else is dropped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[list[list[tuple[bool, str]]]] = []
        self._cell: list[str] | None = None
        self._header = False
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script"):
            self._skip += 1
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th") and self.tables and self.tables[-1]:
            self._cell, self._header = [], tag == "th"

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script"):
            self._skip = max(0, self._skip - 1)
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append((self._header, " ".join("".join(self._cell).split())))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None and not self._skip:
            self._cell.append(data)


def _is_cut(text: str) -> bool:
    return text.endswith("...") or "…" in text


def _output_table(markup: str, t: _Lang) -> str:
    """A notebook's ``text/html`` output re-rendered from its cell text (no markup of its own is kept)."""
    parser = _Tables()
    parser.feed(markup)
    out = []
    for rows in parser.tables:
        rows = [r for r in rows if r]
        if not rows:
            continue
        if any(_is_cut(text) for row in rows for _, text in row):
            out.append(f'<p class="note">{t("cut")}</p>')
            continue
        head, body = rows[0], rows[1:]
        index = not head[0][1] and all(r and r[0][0] for r in body)  # pandas' row index: drop it
        cut = 1 if index else 0
        out.append(_table([text for _, text in head[cut:]], [[text for _, text in r[cut:]] for r in body]))
    return "".join(out)


def _markdown(source: str) -> str:
    import mistune

    render = mistune.create_markdown(escape=True, plugins=["table", "strikethrough"])
    return f'<div class="prose">{render(source)}</div>'


def _facts_table(value: Any) -> str:
    data = json.loads(value) if isinstance(value, str) else value
    if not isinstance(data, Mapping):
        return ""
    return _kv((html.escape(str(k)), value_html(v)) for k, v in data.items())


def _title(nb: Any, step: Mapping[str, Any]) -> tuple[str, int]:
    """The step's title — the run's record of it, else its notebook's first heading without "Step N —"
    — and the index of the markdown cell that heading came from (-1: none)."""
    for index, cell in enumerate(nb.cells if nb is not None else []):
        if set(cell.get("metadata", {}).get("tags", [])) & _SKIP_TAGS:
            continue
        if cell.cell_type == "markdown":
            first = cell.source.lstrip().splitlines()[0] if cell.source.strip() else ""
            if first.startswith("# "):
                heading = re.sub(r"^Step \w+ — ", "", first[2:].strip())
                return str(step.get("title") or heading), index
            break
    return str(step.get("title") or step.get("name")), -1


def step_html(t: _Lang, run_dir: Path, step: Mapping[str, Any]) -> str:
    """One step: its prose and tables in cell order; a failure as its message; no code, no traceback."""
    import nbformat

    name = str(step.get("name"))
    status = str(step.get("status") or "not run")
    took = step.get("duration_s")
    path = run_dir / str(step.get("notebook") or f"{name}.ipynb")
    nb = nbformat.read(str(path), as_version=4) if path.exists() else None
    title, heading_cell = _title(nb, step)
    head = (
        f'<section class="step" id="step-{html.escape(name)}"><h2>{html.escape(name.split("_")[0])} — {t.split(title)}</h2>'
        f"<p>{t('result')}: {_badge(t, {'succeeded': 'passed'}.get(status, status))}"
        + (f" · {t('duration')}: {took:.1f} s" if isinstance(took, int | float) else "")
        + "</p>"
    )
    if nb is None:
        return head + f'<p class="note">{t("not_run_step")}</p></section>'
    parts: list[str] = []
    for index, cell in enumerate(nb.cells):
        tags = set(cell.get("metadata", {}).get("tags", []))
        if tags & _SKIP_TAGS:
            continue
        if cell.cell_type == "markdown":  # the heading is the section's title already
            source = cell.source.lstrip().partition("\n")[2] if index == heading_cell else cell.source
            parts.append(_markdown(source))
            continue
        if cell.cell_type != "code":
            continue
        outputs = cell.get("outputs", [])
        if any(o.get("output_type") == "error" for o in outputs):
            message = step.get("error") or "the cell raised an error"
            parts.append(
                f'<div class="failure"><strong>{t("failed_here")}</strong><br>{html.escape(str(message))}'
                f"<br>{t('rest_not_run')}</div>"
            )
            break
        has_facts = any(FACTS_MIME in (o.get("data") or {}) for o in outputs)
        for o in outputs:
            data = o.get("data") or {}
            if FACTS_MIME in data:
                parts.append(f"<h3>{t('facts')}</h3>{_facts_table(data[FACTS_MIME])}")
            elif "text/html" in data and not has_facts:
                parts.append(_output_table(str(data["text/html"]), t))
            elif "image/png" in data:
                png = base64.b64decode(str(data["image/png"]))  # re-encoded: only base64 reaches the page
                parts.append(f'<img alt="" src="data:image/png;base64,{base64.b64encode(png).decode()}">')
            elif o.get("output_type") == "stream" and o.get("name") == "stdout":
                parts.append(f'<pre class="out">{html.escape(str(o.get("text", "")))}</pre>')
    else:
        if status == "failed":  # failed outside a cell (the kernel died, a timeout)
            parts.append(
                f'<div class="failure"><strong>{t("failed_here")}</strong><br>{html.escape(str(step.get("error") or ""))}</div>'
            )
    return head + "".join(parts) + "</section>"


# --- the verb -------------------------------------------------------------------------------------


def render_report(
    run_dir: str | os.PathLike[str],
    *,
    lang: str = "ja+en",
    now_utc: datetime | None = None,
    before_finalizing: bool = False,
    hmac_key: bytes | None = None,
) -> str:
    """The report of the run in ``run_dir`` as one HTML document (secrets masked)."""
    t = _Lang(lang)
    folder = Path(run_dir)
    doc = _read_run(folder)
    recorded = {str(s.get("name")) for s in doc.get("steps") or []}
    steps = list(doc.get("steps") or []) + [
        {"name": n, "status": "not run"} for n in doc.get("selected_steps") or [] if n not in recorded
    ]
    body = summary_html(t, folder, doc, before_finalizing=before_finalizing, hmac_key=hmac_key)
    body += f"<h2>{t('steps')}</h2>"
    body += "".join(step_html(t, folder, s) for s in steps)
    if now_utc is not None:
        body += f'<p class="note">{t("generated")}: {html.escape(_times(now_utc.isoformat()))}</p>'
    template = string.Template(
        resources.files(__package__).joinpath("report_template.html").read_text("utf-8")
    )
    page = template.substitute(
        lang=t.order[0],
        title=html.escape(
            f"{_LABELS['title'][0]} / {_LABELS['title'][1]} — {doc.get('run_id', folder.name)}"
        ),
        body=body,
    )
    return credentials.redact(page)


def write_report(
    run_dir: str | os.PathLike[str],
    *,
    lang: str = "ja+en",
    out: str | os.PathLike[str] | None = None,
    before_finalizing: bool = False,
    hmac_key: bytes | None = None,
) -> Path:
    """Write the report of ``run_dir`` to ``out`` (default: ``report.html`` in the run folder).

    ``before_finalizing``: the runner writes it just before :func:`.folder.finalize_run`, so that
    the file is hashed with the rest; its integrity line then says how to check the evidence.
    ``hmac_key``: the operator's key (from the caller, never a parameter of its own); without it the
    integrity line says "integrity not provable without the HMAC key" where it would say "intact"."""
    target = Path(out) if out is not None else Path(run_dir) / REPORT_FILE
    page = render_report(
        run_dir, lang=lang, now_utc=datetime.now(UTC), before_finalizing=before_finalizing, hmac_key=hmac_key
    )
    target.write_text(page, encoding="utf-8")
    return target
