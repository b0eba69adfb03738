"""The fleet report: one self-contained HTML page in the fleet folder (``fleet_report.html``), Japanese and
English, for an auditor — the summary table first (how many hosts ended how, and why the rollout stopped),
then one row per host with its certificate before and after and a link to that run's own report.

Built from the fleet record's data only (:func:`.record.write_fleet_record` writes it just before
``fleet.json``, which hashes it). Every value is HTML-escaped; there is no script.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPORT_HTML = "fleet_report.html"

STATUS_JA = {
    "renewed": "更新済み",
    "dry run": "確認のみ（変更なし）",
    "failed": "失敗",
    "interrupted": "中断",
    "already renewed": "更新済み（以前の実行）",
    "not started": "未着手",
}
_RESULT = {
    "completed": ("完了", "completed"),
    "stopped": ("停止（失敗が上限を超えた）", "stopped (failures over the limit)"),
    "interrupted": ("中断（Ctrl-C）", "interrupted (Ctrl-C)"),
    "recorded": ("実行フォルダから記録", "recorded from run folders"),
}
_STYLE = (
    "body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}"
    "th,td{border:1px solid #999;padding:.3em .6em;text-align:left;vertical-align:top}"
    "th{background:#eee}.failed,.interrupted{background:#fdd}.renewed,.already{background:#dfd}"
    "code{font-size:90%}"
)


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _short(thumbprint: Any) -> str:
    text = str(thumbprint or "")
    return f"{text[:8]}…{text[-4:]}" if len(text) > 16 else text or "–"


def _run_link(fleet_dir: Path, host: Mapping[str, Any]) -> str:
    run_dir = str(host.get("run_dir") or "")
    if not run_dir:
        return "–"
    root = fleet_dir.parent.parent
    target = root / run_dir / "report.html"
    label = _e(host.get("run_id"))
    if not target.is_file():
        return f"<code>{label}</code>"
    rel = Path(os.path.relpath(target, fleet_dir)).as_posix()
    return f'<a href="{_e(rel)}"><code>{label}</code></a>'


def render_fleet_report(fleet_dir: Path, doc: Mapping[str, Any]) -> str:
    hosts = [h for h in doc.get("hosts") or [] if isinstance(h, Mapping)]
    counts = doc.get("counts") if isinstance(doc.get("counts"), Mapping) else {}
    assert isinstance(counts, Mapping)
    ja, en = _RESULT.get(str(doc.get("result")), (str(doc.get("result")), str(doc.get("result"))))
    settings = doc.get("settings") if isinstance(doc.get("settings"), Mapping) else {}
    assert isinstance(settings, Mapping)
    summary = [
        ("フリート / Fleet", f"{_e(doc.get('name'))} (<code>{_e(doc.get('fleet_id'))}</code>)"),
        (
            "結果 / Result",
            f"{_e(ja)} / {_e(en)}" + (f"<br>{_e(doc.get('stop_reason'))}" if doc.get("stop_reason") else ""),
        ),
        ("開始 / Started (UTC)", _e(doc.get("started_utc"))),
        ("終了 / Finished (UTC)", _e(doc.get("finished_utc"))),
        ("作業者 / Operator", _e(doc.get("operator"))),
        ("台数 / Hosts", str(len(hosts))),
    ]
    summary += [(f"{STATUS_JA.get(s, s)} / {s}", str(n)) for s, n in counts.items() if n]
    summary.append(
        (
            "進め方 / Rollout",
            _e(", ".join(f"{k}={v}" for k, v in settings.items())) or "–",
        )
    )
    if doc.get("continues"):
        summary.append(("前回の試行 / Continues", f"<code>{_e(doc['continues'].get('fleet_id'))}</code>"))
    rows = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in summary)
    host_rows = []
    for h in hosts:
        status = str(h.get("status") or "")
        css = "already" if status == "already renewed" else status.replace(" ", "-")
        note = h.get("failed_step") or h.get("renewed_by") or ""
        host_rows.append(
            f'<tr class="{_e(css)}"><td>{_e(h.get("name"))}</td><td>{_e(h.get("batch") or "–")}</td>'
            f"<td>{_e(STATUS_JA.get(status, status))} / {_e(status)}</td>"
            f"<td><code>{_e(_short(h.get('old_thumbprint')))}</code><br>{_e(h.get('old_not_after_utc') or '–')}</td>"
            f"<td><code>{_e(_short(h.get('new_thumbprint')))}</code><br>{_e(h.get('new_not_after_utc') or '–')}</td>"
            f"<td>{_e(note) or '–'}</td><td>{_run_link(fleet_dir, h)}</td></tr>"
        )
    return (
        '<!DOCTYPE html><html lang="ja"><head><meta charset="utf-8">'
        f"<title>フリート更新の記録 / Fleet renewal record — {_e(doc.get('name'))}</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>フリート更新の記録 / Fleet renewal record</h1>"
        f"<h2>概要 / Summary</h2><table>{rows}</table>"
        "<h2>サーバごとの結果 / Each server</h2>"
        "<p>各サーバの詳細は実行ごとの報告書にあります。完全性は <code>opslib evidence verify</code> で確認します。<br>"
        "Each server's details are in its run's own report. Check integrity with "
        "<code>opslib evidence verify</code>.</p>"
        "<table><tr><th>サーバ / Host</th><th>バッチ / Batch</th><th>状態 / Status</th>"
        "<th>以前の証明書・有効期限 / Certificate before, expiry</th>"
        "<th>新しい証明書・有効期限 / Certificate after, expiry</th>"
        "<th>失敗した手順・更新した実行 / Failed step, renewed by</th><th>実行 / Run</th></tr>"
        + "".join(host_rows)
        + "</table></body></html>\n"
    )


def write_fleet_report(fleet_dir: Path, doc: Mapping[str, Any]) -> Path:
    target = fleet_dir / REPORT_HTML
    target.write_text(render_fleet_report(fleet_dir, doc), encoding="utf-8")
    return target
