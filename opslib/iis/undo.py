"""What a failed rollback (step R) says, for every backend: the rollback was undone — production serves
what it served before the rollback, started, read back — or, when even that failed, what it reads back
now and what to do by hand (docs/safety.md, "A rollback that fails")."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import VerificationFailed
from .base import Site


def endpoints(pairs: Iterable[tuple[str, str]]) -> str:
    """``label thumbprint, …`` for the message (``(none)`` for an endpoint without a certificate)."""
    return ", ".join(f"{label} {thumb or '(none)'}" for label, thumb in pairs)


@dataclass(frozen=True)
class Failed:
    """The rollback of ``label`` to ``old`` failed because of ``why``; ``log``: where Windows says why."""

    host: str
    label: str
    old: str
    why: str
    log: str

    def _failed(self) -> str:
        return f"the rollback of {self.label} to the previous certificate {self.old} failed ({self.why})"

    def undone(self, serving: str) -> VerificationFailed:
        """Undone: ``label`` serves ``serving`` (what it served before the rollback) again, started."""
        return VerificationFailed(
            self.host,
            f"{self._failed()}; the rollback was undone: {self.label} serves {serving} again, started "
            "(read back) — what it served before the rollback",
            hint=f"look at the System event log ({self.log}) for why the site would not start with "
            f"{self.old}, fix it, then run the rollback again",
        )

    def not_undone(self, before: str, now: str, again: str) -> VerificationFailed:
        """Putting ``before`` back failed too (``again``); ``now``: what the site reads back."""
        return VerificationFailed(
            self.host,
            f"{self._failed()}; putting back {before} (served before the rollback) failed too ({again}) — "
            f"{self.label} reads back {now}",
            hint=f"put {before} or {self.old} on {self.label} in IIS Manager and start the site NOW",
        )

    def read_back(self, before: str, now: str, after: Site) -> VerificationFailed:
        """Undone when the site reads back started with exactly ``before``; else not undone."""
        if after.started and now == before:
            return self.undone(before)
        return self.not_undone(before, f"{after.state_name}, {now}", "read back")
