"""Step 2: the production site serves the new certificate — before, plan, apply, verify (through the
server's IIS backend), and the facts a rollback needs.

The notebook calls :func:`before`, :func:`plan`, :func:`apply`, :func:`verify` and records
``verify(...).facts()`` (the runner writes ``rollback.yaml`` from them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import OpsError, PreconditionFailed
from ..iis import Change, Site, SwapResult, check_swap, find_site

if TYPE_CHECKING:
    from ..server import Server

__all__ = ["SwapBefore", "SwapDone", "SwapPlan", "SwapStep", "apply", "before", "plan", "verify"]


@dataclass(frozen=True)
class SwapBefore:
    """Every site before the swap, the two named ones, and what step 0 recorded before any change."""

    sites: tuple[Site, ...]
    production: Site
    work: Site
    new_thumbprint: str
    thumbprint_before: str  # recorded by step 0
    not_after_utc_before: str
    secure_bindings_before: tuple[str, ...]

    def rows(self) -> list[dict[str, Any]]:
        return [s.row() for s in self.sites]


def before(
    server: Server,
    *,
    production_site: str,
    work_site: str,
    new_thumbprint: str,
    thumbprint_before: str = "",
    not_after_utc_before: str = "",
    secure_bindings_before: Sequence[str] = (),
) -> SwapBefore:
    """Read every site; refuse when step 1 recorded no new certificate."""
    if not new_thumbprint:
        raise PreconditionFailed(
            server.host,
            "no new_thumbprint: step 1 has not recorded the new certificate",
            hint="run step 1 first",
        )
    found = server.iis.sites()
    production = find_site(found, production_site, host=server.host)
    return SwapBefore(
        sites=tuple(found),
        production=production,
        work=find_site(found, work_site, host=server.host),
        new_thumbprint=new_thumbprint.strip().upper(),
        thumbprint_before=thumbprint_before,
        not_after_utc_before=str(not_after_utc_before or ""),
        secure_bindings_before=tuple(secure_bindings_before),
    )


def _journal_of(server: Server, production: Site) -> dict[str, Any] | None:
    """The swap journal on the server, summarized for the evidence (backends without one: None)."""
    try:
        journal = server.iis.swap_journal(production)
    except OpsError:
        return None
    if not journal:
        return None
    before = journal.get("before") or {}
    after = journal.get("site") or {}
    return {
        "phase": journal.get("phase"),
        "new_thumbprint": journal.get("new_hash"),
        "thumbprint_before": before.get("cert_hash") if isinstance(before, dict) else None,
        "thumbprint_after": after.get("cert_hash") if isinstance(after, dict) else None,
        "state_after": after.get("state") if isinstance(after, dict) else None,
        "path": journal.get("journal"),
    }


@dataclass(frozen=True)
class SwapPlan:
    before: SwapBefore
    port: int
    changes: tuple[Change, ...]

    def rows(self) -> list[dict[str, Any]]:
        return [c.row() for c in self.changes]


def plan(server: Server, found: SwapBefore, *, port: int = 443) -> SwapPlan:
    """What the swap changes, from → to (empty: already done)."""
    changes = server.iis.plan_swap(
        production_site=found.production.path, new_thumbprint=found.new_thumbprint, port=port
    )
    return SwapPlan(found, port, tuple(changes))


@dataclass(frozen=True)
class SwapDone:
    plan: SwapPlan
    result: SwapResult | None  # None in a dry run

    def rows(self) -> list[dict[str, Any]]:
        return [self.result.row()] if self.result else [{"dry_run": "nothing changed"}]


def apply(server: Server, planned: SwapPlan, *, dry_run: bool = False) -> SwapDone:
    """Swap (the backend rolls itself back and raises when the site does not come back); a dry run
    changes nothing."""
    if dry_run:
        return SwapDone(planned, None)
    found = planned.before
    result = server.iis.swap(
        production_site=found.production.path, new_thumbprint=found.new_thumbprint, port=planned.port
    )
    return SwapDone(planned, result)


@dataclass(frozen=True)
class SwapStep:
    """Step 2's outcome: the read-back rows and the facts (the old certificate for ``rollback.yaml``)."""

    done: SwapDone
    production_after: Site
    checks: tuple[dict[str, Any], ...]
    # The server's swap journal, read back after the step: what the last swap on this server did —
    # this attempt's, or (a resume that found the swap already done) the interrupted attempt's.
    journal: dict[str, Any] | None = None

    def rows(self) -> list[dict[str, Any]]:
        return list(self.checks)

    def facts(self) -> dict[str, Any]:
        found = self.done.plan.before
        production = found.production
        replaced = production.cert_thumbprint != found.new_thumbprint
        # A resumed step 2 finds the new certificate already served: the old one is step 0's record.
        old_thumbprint = production.cert_thumbprint if replaced else found.thumbprint_before
        dry_run = self.done.result is None
        return {
            "old_thumbprint": old_thumbprint,
            "old_not_after_utc": found.not_after_utc_before
            if old_thumbprint == found.thumbprint_before
            else "",
            "old_secure_bindings": list(
                production.secure_bindings if replaced else found.secure_bindings_before
            ),
            "old_store_name": production.store_name,
            # own / inherited (from W3SVC, IIS 6) / none, before and after (W-IIS6-SSLCERTHASH-INHERIT)
            "old_cert_source": production.cert_source,
            "cert_source_after": self.production_after.cert_source,
            "production_site_path": production.path,
            "swap_plan": self.done.plan.rows(),
            "stopped_sites": [s.path for s in self.done.result.stopped_sites] if self.done.result else [],
            "production_state": self.production_after.state_name,
            "expected_thumbprint": self.production_after.cert_thumbprint if dry_run else found.new_thumbprint,
            "swap_journal": self.journal,
        }


def verify(server: Server, done: SwapDone, *, run_dir: str = "") -> SwapStep:
    """Read the sites back: production started with the new certificate, the work site stopped, no other
    started site on its secure binding. A failed line raises naming the undo (in a dry run it only reports)."""
    found = done.plan.before
    sites_after = server.iis.sites()  # one read for the checks and the facts
    checks = check_swap(
        sites_after,
        production_site=found.production.path,
        # IIS 7+: the work binding may sit on the production site itself (then nothing to see stopped).
        work_site=found.work.path if found.work.id != found.production.id else "",
        new_thumbprint=found.new_thumbprint,
        host=server.host,
        run_dir=run_dir,
        dry_run=done.result is None,
    )
    production_after = find_site(sites_after, found.production.path, host=server.host)
    return SwapStep(done, production_after, tuple(checks), _journal_of(server, production_after))


def served_now(server: Server, *, production_site: str, new_thumbprint: str = "", wait_s: float = 0.0) -> str:
    """One sentence: what the production site serves now, read back from the server — after the swap's
    server-side transaction has ended (its journal is polled up to ``wait_s``). For a message after the
    client side of step 2 died (a killed kernel): the server finished the transaction by itself."""
    iis = server.iis
    production = find_site(iis.sites(), production_site, host=server.host)
    journal: dict[str, Any] | None = None
    if iis.keeps_swap_journal and new_thumbprint:
        journal = iis.wait_for_journal(production, new=new_thumbprint.upper(), deadline_s=max(wait_s, 1.0))
        production = find_site(iis.sites(), production_site, host=server.host)
    thumb = production.cert_thumbprint or "(no certificate)"
    which = ""
    if new_thumbprint and thumb == new_thumbprint.upper():
        which = " (the new one)"
    elif new_thumbprint:
        which = " (not the new one: the previous certificate)"
    ended = f"; the server-side swap ended: {journal.get('phase')}" if journal else ""
    return f"{production.label} is {production.state_name} with certificate {thumb}{which}{ended}"
