"""The renewal calendar as an iCalendar file (RFC 5545), written with the ``icalendar`` library.

One all-day VEVENT per host + site + certificate at its renew-by date. Its UID comes from host, site
and the certificate's thumbprint (:attr:`.calendar.Entry.uid`): importing next week's file again
updates the same events instead of adding copies (RFC 5545 §3.8.4.7: UID with SEQUENCE/DTSTAMP
identifies a revision of the same event). Once the certificate is renewed its thumbprint changes, and
the new certificate's renew-by date is a new event.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import icalendar

from .calendar import Calendar, Entry

PRODID = "-//opslib//renewal calendar//EN"


def summary(entry: Entry) -> str:
    """Bilingual one-line title."""
    t = entry.target
    return f"証明書の更新期限 / Renew the certificate: {t.host} {t.site}"


def description(entry: Entry) -> str:
    j = entry.to_json()
    s = j["served"]
    nxt = j["next_certificate"]
    lines = [
        f"ホスト / host: {j['host']}",
        f"サイト / site: {j['site']}",
        f"証明書 / certificate: {s['thumbprint'] or '?'} ({s['subject'] or '?'})",
        f"有効期限 / expires: {s['not_after_utc'] or '?'}",
        f"更新期限 / renew by: {j['renew_by_utc']} ({j['lead_days']} days before expiry)",
        f"確認方法 / how it is known: {s['detail']}",
        f"申請状況 / pending request: {j['request']['state']} — {j['request']['detail']}",
        f"PKI: {j['pki']} — {j['pki_reason']}",
        f"次の証明書 / next certificate: {nxt['text']}",
        f"出典 / source: {nxt['ballot_url']}",
        f"次のコマンド / next: opslib request PARAMS, then opslib run PARAMS (input {j['input']})",
    ]
    return "\n".join(lines)


def to_ical(cal: Calendar, *, stamp_utc: datetime | None = None) -> bytes:
    """The calendar's entries that have a renew-by date, as iCalendar bytes."""
    out = icalendar.Calendar()
    out.add("prodid", PRODID)
    out.add("version", "2.0")
    out.add("x-wr-calname", "証明書の更新 / Certificate renewals")
    stamp = stamp_utc or cal.now_utc
    for entry in cal.entries:
        renew_by = entry.renew_by_utc
        if renew_by is None:
            continue
        event = icalendar.Event()
        event.add("uid", entry.uid)
        event.add("dtstamp", stamp)
        event.add("dtstart", renew_by.date())
        event.add("summary", summary(entry))
        event.add("description", description(entry))
        event.add("categories", ["certificate-renewal", entry.pki])
        event.add("x-opslib-host", entry.target.host)
        event.add("x-opslib-site", entry.target.site)
        event.add("x-opslib-thumbprint", entry.served.thumbprint)
        out.add_component(event)
    return bytes(out.to_ical())


def write_ics(cal: Calendar, path: str | os.PathLike[str]) -> Path:
    """Write :func:`to_ical` to ``path`` (replaced atomically)."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(to_ical(cal))
    os.replace(tmp, target)
    return target


__all__ = ["PRODID", "description", "summary", "to_ical", "write_ics"]
