"""The tables and chart of ``notebooks/fleet_review.ipynb``: one fleet record read back — hosts by status,
what each host serves according to the record, the expiry across the fleet, and the record's integrity
(:func:`.record.verify_fleet`, the same check as ``opslib evidence verify FLEET_DIR``).

pandas and matplotlib are imported when a function runs (the command line never needs them).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import EvidenceError
from ..evidence.verify import verdict_text
from .record import DONE, fleet_dirs, read_fleet, verify_fleet
from .report import STATUS_JA

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure


def pick_fleet(evidence_root: str | os.PathLike[str], fleet_id: str = "") -> Path:
    """The fleet folder ``fleet_id`` of the root, or its newest; says what to set when there is none."""
    folders = fleet_dirs(evidence_root)
    if fleet_id:
        folders = [f for f in folders if f.name == fleet_id]
    if not folders:
        raise EvidenceError(
            str(evidence_root),
            f"no fleet record{' ' + fleet_id if fleet_id else ''} under {Path(evidence_root).resolve()}/fleets",
            hint="set evidence_root (and fleet_id) in this notebook's parameters cell; "
            "`opslib fleet run` or `opslib fleet record` writes one",
        )
    return folders[-1]


def summary_table(fleet_dir: str | os.PathLike[str], *, hmac_key: bytes | None = None) -> pd.DataFrame:
    """The fleet in one table: name, result, times, settings, and what its verification found."""
    import pandas as pd

    doc = read_fleet(fleet_dir)
    report = verify_fleet(fleet_dir, hmac_key=hmac_key)
    integrity = verdict_text(report) if report.ok else "; ".join(p.line() for p in report.problems)
    rows = [
        ("フリート / Fleet", f"{doc.get('name')} ({doc.get('fleet_id')})"),
        (
            "結果 / Result",
            f"{doc.get('result')}" + (f": {doc['stop_reason']}" if doc.get("stop_reason") else ""),
        ),
        ("開始 / Started (UTC)", doc.get("started_utc")),
        ("終了 / Finished (UTC)", doc.get("finished_utc")),
        ("進め方 / Rollout", ", ".join(f"{k}={v}" for k, v in (doc.get("settings") or {}).items())),
        ("前回の試行 / Continues", (doc.get("continues") or {}).get("fleet_id") or "–"),
        ("完全性 / Integrity", integrity),
    ]
    return pd.DataFrame(rows, columns=["項目 / item", "値 / value"])


def status_table(fleet_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """Hosts by status: how many, and which."""
    import pandas as pd

    hosts = read_fleet(fleet_dir).get("hosts") or []
    rows = []
    for status, ja in STATUS_JA.items():
        names = [str(h.get("name")) for h in hosts if h.get("status") == status]
        if names:
            rows.append((f"{ja} / {status}", len(names), ", ".join(names)))
    return pd.DataFrame(rows, columns=["状態 / status", "台数 / hosts", "サーバ / which"])


def _serves(host: dict[str, Any]) -> tuple[str, str]:
    if host.get("status") in DONE:
        return str(host.get("new_thumbprint") or ""), str(host.get("new_not_after_utc") or "")
    return str(host.get("old_thumbprint") or ""), str(host.get("old_not_after_utc") or "")


def hosts_table(fleet_dir: str | os.PathLike[str]) -> pd.DataFrame:
    """One row per host: batch, status, what it serves according to the record and until when, its run."""
    import pandas as pd

    rows = []
    for h in read_fleet(fleet_dir).get("hosts") or []:
        serves, until = _serves(h)
        status = str(h.get("status"))
        rows.append(
            {
                "サーバ / host": h.get("name"),
                "バッチ / batch": h.get("batch"),
                "状態 / status": f"{STATUS_JA.get(status, status)} / {status}",
                "配信中の証明書 / serves": serves or "(not recorded)",
                "有効期限 / expires (UTC)": until,
                "実行 / run": h.get("renewed_by") or h.get("run_id") or "",
                "失敗した手順 / failed step": h.get("failed_step") or "",
            }
        )
    return pd.DataFrame(rows)


def plot_expiry(fleet_dir: str | os.PathLike[str], *, now_utc: dt.datetime, warn_days: int = 30) -> Figure:
    """The expiry of what each host serves according to the record (:func:`opslib.evidence.plot_expiry`)."""
    import pandas as pd

    from ..evidence.review import plot_expiry as plot

    rows = []
    for h in read_fleet(fleet_dir).get("hosts") or []:
        _, until = _serves(h)
        rows.append({"host": h.get("name"), "site": h.get("status"), "not_after_utc": until or None})
    table = pd.DataFrame(rows, columns=["host", "site", "not_after_utc"])
    table["not_after_utc"] = pd.to_datetime(table["not_after_utc"], utc=True, errors="coerce")
    now = pd.Timestamp(now_utc)
    table["state"] = [
        "expired" if t <= now else "renew now" if t <= now + pd.Timedelta(days=warn_days) else "ok"
        for t in table["not_after_utc"].fillna(now)
    ]
    return plot(table, now_utc=now_utc, warn_days=warn_days)
