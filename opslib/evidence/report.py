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

import html
import json
import os
import re
import string
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from .. import credentials
from ..errors import EvidenceError
from .glossary import LABELS, LANGS, STEP_CHECKS, Lang, unchanged, warning_words
from .index import certificates
from .manifest import RUN_JSON, is_finalized
from .report_parts import badge, kv, table, times
from .report_steps import step_html
from .verify import INTACT, UNPROVEN, UNPROVEN_TEXT, verdict, verify_run

# What the size-only row says (the transfers and the reason are listed in run.json ``size_only_checks``).
SIZE_ONLY_DETAIL = (
    "SHA-256 で確認できず、サイズで確認 (run.json に一覧)",
    "SHA-256 failed, checked by size (listed in run.json)",
)

NO_SHA256_NOTE = ("SHA-256 なし、転送はサイズで確認", "no SHA-256, transfers by size")

__all__ = ["LANGS", "REPORT_FILE", "changes", "checks", "render_report", "run_mode", "write_report"]

REPORT_FILE = "report.html"  # in the run folder, beside html/
_CHANGE_KEYS = {"target", "field", "before", "after"}


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


def changes(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every change row (``target``/``field``/``before``/``after``) the steps recorded where before and
    after differ (:func:`.glossary.unchanged`: "disabled → disabled" is not a change)."""
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
                if unchanged(before, after) or key in seen:
                    continue
                seen.add(key)
                rows.append({"step": str(step.get("name")), **{k: v.get(k) for k in _CHANGE_KEYS}})
    return rows


Detail = tuple[str, ...]  # (Japanese, English[, a value both share, shown once after them])


def checks(doc: Mapping[str, Any]) -> list[tuple[str, str, str, Detail]]:
    """(step, description key, outcome, detail) for each step of the run, from its status and facts; a
    failed step's detail is its error (``where: problem — hint``) when its facts say nothing."""
    facts = doc.get("facts") or {}
    recorded = {str(s.get("name")): s for s in doc.get("steps") or []}
    names = list(recorded) + [n for n in doc.get("selected_steps") or [] if n not in recorded]
    out: list[tuple[str, str, str, Detail]] = []
    for name in names:
        step = recorded.get(name) or {}
        status = str(step.get("status") or "not run")
        outcome = {"succeeded": "passed", "failed": "failed", "running": "failed"}.get(status, "not run")
        if outcome == "passed" and doc.get("dry_run") and name != "04_verify_endpoint":
            outcome = "planned only"
        detail: Detail = ("", "")
        if outcome == "failed":
            error = str(step.get("error") or doc.get("error") or "")
            detail = (
                ("失敗の内容", "what failed", _problem(error))
                if error
                else ("記録されていません", "not recorded")
            )
        elif outcome != "not run":
            detail = _check_detail(name, facts)
        out.append((name, name, outcome, detail))
    return out


def _check_detail(name: str, f: Mapping[str, Any]) -> Detail:
    new = f.get("new_thumbprint")

    def which(thumbprint: Any) -> Detail:
        if thumbprint and thumbprint == new:
            return "新証明書", "the new certificate"
        return str(thumbprint), str(thumbprint)

    def yes(value: Any) -> Detail:
        return ("はい", "yes") if value else ("いいえ", "no")

    if name == "00_precheck_root_store":
        found = len(f.get("forbidden_roots_found") or [])
        disabled = len(f.get("forbidden_roots_disabled") or [])
        return (
            f"見つかった禁止ルート: {found} 件、無効化: {disabled} 件",
            f"forbidden roots found: {found}; disabled: {disabled}",
        )
    if name == "01_install_certificate" and new:
        return "証明書チェーン", "chain", str(f.get("chain") or new)
    if name == "02_swap_certificate" and f.get("expected_thumbprint"):
        ja, en = which(f.get("expected_thumbprint"))
        return f"本番サイトの証明書: {ja}", f"the production site's certificate: {en}"
    if name == "03_backup_keypair" and f.get("pfx_thumbprint"):
        same = f.get("pfx_thumbprint") == f.get("backup_thumbprint")
        ja, en = which(f.get("pfx_thumbprint"))
        if not same:
            ja = en = f"{f.get('pfx_thumbprint')} (≠ {f.get('backup_thumbprint')})"
        dja, den = yes(f.get("server_copy_deleted"))
        return (
            f"PFX の中身: {ja}; サーバ上のコピーの削除: {dja}",
            f"the PFX holds {en}; server copy deleted: {den}",
        )
    if name == "04_verify_endpoint" and "served_leaf_sni" in f:
        want = f.get("expected_thumbprint")
        served = {f.get("served_leaf_sni"), f.get("served_leaf_no_sni")}
        ja, en = which(want)
        if served == {want}:
            leaf = (f"SNI あり・なしとも{ja}を提供", f"serves {en} (SNI and no SNI)")
        else:
            text = ", ".join(map(str, served))
            leaf = (f"提供された証明書: {text}", f"served: {text}")
        cja, cen = ("合格", "passed") if f.get("chain_ok") else ("不合格", "failed")
        problems = "; ".join(map(str, f.get("verify_problems") or []))
        codes = [str(c) for c in f.get("verify_warnings") or []]
        if f.get("verify_expected_warnings"):  # after rollback --roots: the cross certificate not sent
            codes.append("cross_not_sent_expected")
        wja = "、".join(warning_words(c)[0] for c in codes)
        wen = "; ".join(warning_words(c)[1] for c in codes)
        return (
            f"{leaf[0]}; チェーン: {cja}; 問題: {problems or 'なし'}; 警告: {wja or 'なし'}",
            f"{leaf[1]}; chain: {cen}; problems: {problems or 'none'}; warnings: {wen or 'none'}",
        )
    if name == "05_rollback_certificate" and f.get("restored_thumbprint"):
        thumb = f.get("restored_thumbprint")
        return f"{thumb} を再び提供", f"serves {thumb} again"
    if name == "06_restore_roots" and "roots_restored" in f:
        count = len(f.get("roots_restored") or [])
        return f"再び有効化したルート証明書: {count} 件", f"roots enabled again: {count}"
    return "", ""


def integrity(
    run_dir: Path, doc: Mapping[str, Any], *, before_finalizing: bool = False, hmac_key: bytes | None = None
) -> tuple[str, Detail]:
    """(outcome word, detail): :func:`verify_run` and :func:`.verify.verdict` — ``ok`` (intact) only when
    the HMAC was checked with ``hmac_key``; for the runner's own report, the way to check it."""
    if before_finalizing:
        command = f"opslib evidence verify {run_dir}"
        return "pending", (
            "この報告書は証跡の一部です。確認するには",
            "this report is part of the evidence; check it with",
            command,
        )
    report = verify_run(run_dir, hmac_key=hmac_key)
    if not is_finalized(doc) and all(p.kind == "unfinalized" for p in report.problems):
        command = f"opslib resume {run_dir}"
        return "pending", (
            "この実行は確定していません (中断されたか実行中です)。続けるには",
            "the run was never finalized (interrupted, or still running); continue it with",
            command,
        )
    word = verdict(report)
    n = report.files_checked
    if word == INTACT:
        return "ok", (
            f"{n} 個のファイルが run.json の SHA-256 と一致し、前の実行との連鎖と head 記録も正しく、"
            "run.json の HMAC が運用者の鍵で確認できました",
            f"{n} files match their SHA-256 in run.json; the chain link and the head record "
            "hold; the HMAC of run.json checks with the operator's key",
        )
    if word == UNPROVEN:
        command = f"opslib evidence verify {run_dir} --hmac-key REF"
        return UNPROVEN, (
            f"{n} 個のファイルが run.json の SHA-256 と一致し、連鎖と head 記録も正しいものの、"
            "フォルダに書き込める人なら再計算できます。確認するには",
            f"{n} files match their SHA-256 in run.json and the chain link and the head "
            "record hold, but whoever can write the folder can recompute those: check it with",
            command,
        )
    problems = "; ".join(p.line() for p in report.problems)
    return "failed", ("問題", "problems", problems)


def _certificate_rows(t: Lang, doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    c = certificates(doc)
    rollback = run_mode(doc) == "rollback" or bool((doc.get("facts") or {}).get("restored_thumbprint"))
    pairs = [
        ("replaced" if rollback else "old", c["old_thumbprint"], c["old_not_after_utc"]),
        ("restored" if rollback else "new", c["new_thumbprint"], c["new_not_after_utc"]),
    ]
    rows = []
    for key, thumb, not_after in pairs:
        value = f'<span class="mono">{html.escape(str(thumb or "–"))}</span>'
        if not_after:
            value += f"<br>{t('expires')}: {html.escape(times(not_after))}"
        rows.append((t(key), value))
    return rows


def _problem(error: str) -> str:
    """The problem of a step's error for the summary: without "step … failed, cell N: Error:", without
    the hints after " — " (the step's section has the whole message), command lines named, not shown."""
    text = re.sub(r"^step \S+ failed(?:, cell \d+)?: (?:\w+: )?", "", error.strip())
    text = re.sub(r"^[\w.-]+: check failed: ", "", text)  # the host: the summary names it
    return re.sub(r"`[^`]*`", "a command", text.split(" — ")[0])


def _serving(doc: Mapping[str, Any]) -> tuple[str, str]:
    """What production serves now (run.json's ``production_now``), in both languages."""
    now = doc.get("production_now") or {}
    facts = doc.get("facts") or {}
    site = str(now.get("site") or doc.get("site") or "")
    thumb = str(now.get("thumbprint") or "")
    which_ja, which_en = "", ""
    if thumb and thumb in (facts.get("old_thumbprint"), facts.get("production_thumbprint_before")):
        which_ja, which_en = "旧証明書 ", "the old certificate "
    elif thumb and thumb == facts.get("new_thumbprint"):
        which_ja, which_en = "新証明書 ", "the new certificate "
    until = times(now.get("not_after_utc"))
    cert_ja = (
        f"{which_ja}{thumb}" + (f" (有効期限 {until})" if until else "") if thumb else "記録された証明書なし"
    )
    cert_en = (
        f"{which_en}{thumb}" + (f" (expires {until})" if until else "")
        if thumb
        else "no certificate on record"
    )
    seen = re.search(r"at (\d{4}-\d\d-\d\dT[\d:]+Z)", str(now.get("source") or ""))
    when = times(seen[1]) if seen else ""
    if now.get("unreachable"):
        return (
            f"本番サイト {site} は現在 TLS に応答しません (サイトが停止している可能性があります)。最後の記録: {cert_ja}。",
            f"The production site {site} does not answer TLS now (it may be down); last on record: {cert_en}.",
        )
    if when:
        return (
            f"本番サイト {site} は現在 {cert_ja} を提供しています ({when} に読み取り専用の TLS ハンドシェイクで確認)。",
            f"The production site {site} serves {cert_en} now (read-only TLS handshake at {when}).",
        )
    return (
        f"本番サイト {site} が提供している証明書 (記録による): {cert_ja}。",
        f"The production site {site} serves, by the record, {cert_en}.",
    )


def _what_happened(t: Lang, doc: Mapping[str, Any]) -> str:
    """A failed or interrupted run's opening: what failed, what production serves now, what changed
    so far, what to do next — one plain sentence each, in each language."""
    status = str(doc.get("status") or "running")
    if status not in ("failed", "running") or doc.get("dry_run") and status != "failed":
        return ""
    steps = {str(s.get("name")): s for s in doc.get("steps") or []}
    name = str(doc.get("failed_step") or "")
    number = name.split("_")[0]
    ja_title, _, en_title = str((steps.get(name) or {}).get("title") or name).partition(" / ")
    if status == "failed" and name:
        failed = (
            f"手順 {number} ({ja_title}) が失敗しました (理由は「確認内容と結果」と手順 {number} の記録に)。",
            f"Step {number} ({en_title or ja_title}) failed (why: under What was checked, and in step {number}).",
        )
    elif status == "failed":
        failed = (
            "実行が失敗しました (理由は下の手順の記録に)。",
            "The run failed (why: in the steps below).",
        )
    else:
        failed = (
            "この実行は途中で中断され、確定していません。",
            "This run was interrupted before it finished.",
        )
    changed_steps = sorted({r["step"].split("_")[0] for r in changes(doc)}) if not doc.get("dry_run") else []
    if changed_steps:
        listed = " と ".join(changed_steps)
        listed_en = (
            "steps " + ", ".join(changed_steps[:-1]) + " and " if len(changed_steps) > 1 else "step "
        ) + changed_steps[-1]
        changed = (
            f"それまでに手順 {listed} がサーバを変更しました (右の「変更内容」に全件)。",
            f"Before that, {listed_en} changed the server (every change is listed under What changed).",
        )
    else:
        changed = (
            "それまでにサーバ上で変更したものはありません。",
            "Nothing had been changed on the server before that.",
        )
    commands = [str(c) for c in doc.get("next_commands") or []]
    if not commands and status == "running":
        commands = [f"opslib resume {doc.get('run_id', '')}"]
    sentences = [failed, _serving(doc), changed]
    next_html = ""
    if commands:
        sentences.append(
            ("次にすること (コンソールに表示したとおり):", "What to do next (as the console printed it):")
        )
        next_html = "<ul>" + "".join(f'<li class="mono">{html.escape(c)}</li>' for c in commands) + "</ul>"
    rows = "".join(
        f'<p lang="{k}">' + " ".join(html.escape(pair[0 if k == "ja" else 1]) for pair in sentences) + "</p>"
        for k in t.order
    )
    return (
        f'<div class="plain" id="what-happened"><strong>{t("what_happened")}</strong>{rows}{next_html}</div>'
    )


def _no_sha256(t: Lang, doc: Mapping[str, Any]) -> str:
    """Beside the host, when the server has no SHA-256 for ``certutil -hashfile`` (transfers by size)."""
    if doc.get("server_has_sha256") is not False:
        return ""
    return f" ({t.pair(*NO_SHA256_NOTE)})"


def _detail(t: Lang, detail: Detail) -> str:
    if not detail[1]:
        return ""
    mono = ' class="mono"' if len(detail) > 2 and detail[2].startswith("opslib ") else ""
    shared = f": <span{mono}>{html.escape(detail[2])}</span>" if len(detail) > 2 else ""
    return t.pair(detail[0], detail[1]) + shared


def summary_html(
    t: Lang,
    run_dir: Path,
    doc: Mapping[str, Any],
    *,
    before_finalizing: bool = False,
    hmac_key: bytes | None = None,
) -> str:
    """The summary section (everything an auditor needs at a glance)."""
    params = doc.get("parameters") or {}
    status = str(doc.get("status") or "running")
    result = badge(t, "passed" if status == "succeeded" else "failed" if status == "failed" else status)
    if doc.get("failed_step"):
        number = str(doc["failed_step"]).split("_")[0]
        result += f" ({t.pair(f'手順 {number}', f'step {number}')})"
    run_rows = [
        (t("run"), f'<span class="mono">{html.escape(str(doc.get("run_id", run_dir.name)))}</span>'),
        (t("host"), html.escape(str(doc.get("host", ""))) + _no_sha256(t, doc)),
        (t("site"), html.escape(str(doc.get("site") or params.get("production_site") or ""))),
        (t("operator"), html.escape(str(doc.get("operator", "")))),
        (t("mode"), t.word(run_mode(doc))),
        (t("started"), html.escape(times(doc.get("started_utc")))),
        (t("finished"), html.escape(times(doc.get("finished_utc")))),
        (t("result"), result),
    ]
    failure = _what_happened(t, doc)
    run_rows += _certificate_rows(t, doc)
    check_rows = [
        [t.pair(*STEP_CHECKS.get(key, (name, name))), badge(t, outcome), _detail(t, detail)]
        for name, key, outcome, detail in checks(doc)
    ]
    word, detail = integrity(run_dir, doc, before_finalizing=before_finalizing, hmac_key=hmac_key)
    check_rows.append([t("integrity"), badge(t, word), _detail(t, detail)])
    # No silent downgrade (W-CERTUTIL-HASHFILE): every transfer the run checked by size only, and why.
    # No silent downgrade (W-CERTUTIL-HASHFILE). A server without SHA-256 (Server 2003) is said beside the
    # host; a transfer checked by size only on a server that has it (a file held by another process) is a
    # check row. Each transfer and its reason are listed in run.json's size_only_checks.
    incidents = doc.get("server_has_sha256") is not False and bool(doc.get("size_only_checks"))
    if incidents:
        check_rows.append([t("size_only"), badge(t, "size only"), t.pair(*SIZE_ONLY_DETAIL)])
    facts = doc.get("facts") or {}
    if facts.get("backup_file"):
        backup = kv(
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
        change_table = table(
            headers,
            [[r["step"].split("_")[0], r["target"], r["field"], r["before"], r["after"]] for r in rows],
        )
    else:
        change_table = f'<p class="note">{t("no_change")}</p>'
    check_table = (
        '<table class="checks"><colgroup><col style="width:38%"><col style="width:13%"><col></colgroup>'
        f"<thead><tr><th>{t('check')}</th><th>{t('outcome')}</th><th>{t('detail')}</th></tr></thead><tbody>"
        + "".join(f"<tr><td>{a}</td><td>{b}</td><td>{c}</td></tr>" for a, b, c in check_rows)
        + "</tbody></table>"
    )
    return (
        f'<section id="summary"><h1>{t("title")} — {html.escape(str(doc.get("site", "")))}</h1>'
        f'<div class="grid"><div><h3>{t("summary")}</h3>{kv(run_rows)}'
        f"<h3>{t('backup')}</h3>{backup}<h3>{t('checks')}</h3>{check_table}</div>"
        f"<div>{failure}<h3>{heading}</h3>{change_table}</div></div></section>"
    )


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
    t = Lang(lang, words={UNPROVEN: (UNPROVEN_TEXT["ja"], UNPROVEN_TEXT["en"])})
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
        body += f'<p class="note">{t("generated")}: {html.escape(times(now_utc.isoformat()))}</p>'
    template = string.Template(
        resources.files(__package__).joinpath("report_template.html").read_text("utf-8")
    )
    page = template.substitute(
        lang=t.order[0],
        title=html.escape(f"{LABELS['title'][0]} / {LABELS['title'][1]} — {doc.get('run_id', folder.name)}"),
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
