"""``opslib calendar``: when every certificate must be renewed (read-only on every server)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..fleet import calendar as cal_
from ..fleet.calendar_ics import write_ics
from .text import escaped_errors, table


def _now(text: str | None) -> datetime:
    if not text:
        return datetime.now(UTC).replace(microsecond=0)
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--now {text!r}: not an ISO date/time", hint="e.g. 2026-12-01T00:00:00Z") from None
    if value.tzinfo is None:
        raise UsageError(f"--now {text!r}: give a time zone", hint="e.g. 2026-12-01T00:00:00Z") from None
    return value.astimezone(UTC)


def _cell(value: Any) -> str:
    return "?" if value is None or value == "" else str(value)


def render_text(doc: dict[str, Any]) -> str:
    entries = doc["entries"]
    head = (
        f"renewal calendar: {len(entries)} site(s), counted from {doc['now_utc']}; renew-by date = expiry − "
        f"{doc['lead_days']} days; ordered by renew-by date"
    )
    rows = []
    for e in entries:
        s = e["served"]
        renew = e["renew_by_utc"][:10] if e["renew_by_utc"] else "?"
        if e["renew_now"]:
            renew += " (now!)"
        nxt = e["next_certificate"]
        rows.append(
            [
                renew,
                _cell(e["days_left"]),
                e["host"],
                e["site"],
                s["not_after_utc"][:10] or "?",
                s["how"],
                e["request"]["state"],
                e["pki"],
                "—"
                if nxt["sc081_applies"] is False
                else f"{nxt['sc081_max_days']} d / every {nxt['renew_every_days']} d",
            ]
        )
    headers = [
        "renew by",
        "days left",
        "host",
        "site",
        "expires",
        "seen by",
        "request",
        "PKI",
        "next cert (SC-081)",
    ]
    lines = [head, table(headers, rows), ""]
    for e in entries:
        lines.append(f"{e['host']} {e['site']}: {e['served']['thumbprint'] or 'no certificate known'}")
        lines.append(f"  seen    : {e['served']['detail']}")
        lines.append(f"  request : {e['request']['detail']}")
        lines.append(f"  PKI     : {e['pki']} — {e['pki_reason']}")
        lines.append(f"  next    : {e['next_certificate']['text']}")
        for problem in e["problems"]:
            lines.append(f"  problem : {problem}")
    lines.append(f"lifetimes: {doc['ballot']}, {doc['ballot_url']}")
    return "\n".join(lines)


def command(a: argparse.Namespace) -> int:
    with escaped_errors():
        now_utc = _now(a.now)
        if a.lead_days < 0 or a.lead_days > 3650:
            raise UsageError(f"--lead-days {a.lead_days}: give 0 to 3650 days")
        found = cal_.targets_for(
            a.inputs or [],
            evidence_root=a.evidence_root,
            limit=a.limit,
            vault_password_file=Path(a.vault_password_file) if a.vault_password_file else None,
        )
        calendar = cal_.build_calendar(
            found,
            now_utc=now_utc,
            lead_days=a.lead_days,
            evidence_root=a.evidence_root,
            check_requests=not a.no_requests,
        )
    doc = calendar.to_json()
    if a.ics:
        write_ics(calendar, a.ics)
    if a.json:
        print(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        print(render_text(doc))
        if a.ics:
            print(f"iCalendar: {a.ics} ({sum(1 for e in doc['entries'] if e['renew_by_utc'])} event(s))")
    return 0
