"""The renewal calendar for the notebook: a table and a timeline across the fleet.

Both take the JSON document of :func:`.calendar.calendar_json` (what ``opslib calendar --json`` prints),
so the notebook shows exactly what the command line says. pandas and matplotlib are imported inside.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

COLUMNS = {
    "renew_by_utc": "更新期限 / renew by",
    "days_left": "残り日数 / days left",
    "host": "ホスト / host",
    "site": "サイト / site",
    "not_after_utc": "有効期限 / expires",
    "seen_by": "確認方法 / seen by",
    "request": "申請 / request",
    "pki": "PKI",
    "next_max_days": "次の最長日数 / next max days",
    "renew_every_days": "更新間隔 / renew every (days)",
    "thumbprint": "拇印 / thumbprint",
}


def calendar_frame(doc: Mapping[str, Any]) -> pd.DataFrame:
    """One row per entry, in the calendar's order (renew-by date first), bilingual column names."""
    import pandas as pd

    rows = []
    for e in doc["entries"]:
        nxt = e["next_certificate"]
        rows.append(
            {
                "renew_by_utc": e["renew_by_utc"][:10] or "?",
                "days_left": e["days_left"],
                "host": e["host"],
                "site": e["site"],
                "not_after_utc": e["served"]["not_after_utc"][:10] or "?",
                "seen_by": e["served"]["how"],
                "request": e["request"]["state"],
                "pki": e["pki"],
                "next_max_days": None if nxt["sc081_applies"] is False else nxt["sc081_max_days"],
                "renew_every_days": nxt["renew_every_days"],
                "thumbprint": e["served"]["thumbprint"],
            }
        )
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame["days_left"] = frame["days_left"].astype("Int64")
    return frame.rename(columns=COLUMNS)


def _utc(text: str) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def draw_timeline(doc: Mapping[str, Any]) -> Figure:
    """One bar per host/site from now to expiry, the renew-by date marked (soonest renew-by at the top);
    a site whose renew-by date has passed is drawn in red. Entries without a known expiry are listed in
    the title's count only."""
    import matplotlib.pyplot as plt
    from matplotlib.dates import date2num
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    now = _utc(str(doc["now_utc"]))
    assert now is not None
    known = [e for e in doc["entries"] if e["served"]["not_after_utc"]][::-1]
    fig, ax = plt.subplots(figsize=(9, max(2.0, 0.5 * len(known) + 1.4)))
    labels = [f"{e['host']} / {e['site']}" for e in known]
    for label, e in zip(labels, known, strict=True):
        end, renew = _utc(e["served"]["not_after_utc"]), _utc(e["renew_by_utc"])
        assert end is not None and renew is not None
        colour = "#c0392b" if e["renew_now"] else "#2e8b57"
        ax.barh(label, date2num(end) - date2num(now), left=date2num(now), color=colour, alpha=0.8)
        ax.plot([date2num(renew)], [label], marker="D", color="black", linestyle="none")
        ax.annotate(f" {renew:%Y-%m-%d}", (date2num(renew), label), va="bottom", fontsize=8)
    ax.axvline(float(date2num(now)), color="black", linewidth=1)
    ax.xaxis_date()
    ax.margins(x=0.12)
    unknown = len(doc["entries"]) - len(known)
    extra = f"; {unknown} without a known expiry" if unknown else ""
    ax.set_title(f"Renewal calendar (lead {doc['lead_days']} days){extra}")
    ax.set_xlabel("date, UTC (black line: now)")
    handles = [
        Patch(color="#2e8b57", alpha=0.8, label="valid, before renew-by"),
        Patch(color="#c0392b", alpha=0.8, label="renew-by passed"),
        Line2D([], [], marker="D", color="black", linestyle="none", label="renew-by date"),
    ]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def details_frame(doc: Mapping[str, Any]) -> pd.DataFrame:
    """Per entry: how what it serves is known, the request, the PKI's reason, the next certificate, problems."""
    import pandas as pd

    rows = [
        {
            "ホスト / host": e["host"],
            "サイト / site": e["site"],
            "確認方法 / seen": e["served"]["detail"],
            "申請 / request": e["request"]["detail"],
            "PKI": e["pki_reason"],
            "次の証明書 / next certificate": e["next_certificate"]["text"],
            "問題 / problems": "; ".join(e["problems"]) or "—",
        }
        for e in doc["entries"]
    ]
    return pd.DataFrame(rows)
