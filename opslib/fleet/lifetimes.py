"""The longest lifetime a publicly trusted TLS server certificate may have, by its issuance date.

CA/Browser Forum ballot SC-081 (v3, adopted 11 April 2025), "Introduce Schedule of Reducing Validity
and Data Reuse Periods":
https://cabforum.org/2025/04/11/ballot-sc081v3-introduce-schedule-of-reducing-validity-and-data-reuse-periods/
— a certificate issued before 15 March 2026 may be valid for up to 398 days; from 15 March 2026 200
days, from 15 March 2027 100 days, from 15 March 2029 47 days. The limits bind publicly trusted
certificates only; a private CA sets its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

BALLOT = "CA/Browser Forum ballot SC-081v3"
BALLOT_URL = (
    "https://cabforum.org/2025/04/11/"
    "ballot-sc081v3-introduce-schedule-of-reducing-validity-and-data-reuse-periods/"
)
BEFORE_SCHEDULE_DAYS = 398

# (issued on or after, maximum validity in days), latest first.
SCHEDULE: tuple[tuple[datetime, int], ...] = (
    (datetime(2029, 3, 15, tzinfo=UTC), 47),
    (datetime(2027, 3, 15, tzinfo=UTC), 100),
    (datetime(2026, 3, 15, tzinfo=UTC), 200),
)


@dataclass(frozen=True)
class Lifetime:
    """The limit for a certificate issued at ``issued_utc``."""

    issued_utc: datetime
    max_days: int
    since: str  # the date the limit took effect ("" = before the schedule)

    def text(self) -> str:
        since = f"issued from {self.since}" if self.since else "issued before 2026-03-15"
        return f"at most {self.max_days} days ({since}; {BALLOT})"


def max_lifetime(issued_utc: datetime) -> Lifetime:
    """The SC-081 limit for a publicly trusted certificate issued at ``issued_utc`` (tz-aware)."""
    if issued_utc.tzinfo is None:
        raise ValueError("issued_utc must be timezone-aware")
    for start_utc, days in SCHEDULE:
        if issued_utc >= start_utc:
            return Lifetime(issued_utc, days, start_utc.date().isoformat())
    return Lifetime(issued_utc, BEFORE_SCHEDULE_DAYS, "")
