"""Step R: put the previous certificate back on the production site (the undo of step 2) — before,
plan, apply, verify through the server's IIS backend.

The notebook calls :func:`before`, :func:`plan`, :func:`apply`, :func:`verify` and records
``verify(...).facts()``; step 4 then checks that the old certificate is served again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ..iis import Change, Site, SwapResult, canonical_thumbprint, check_swap, find_site, secure_binding

if TYPE_CHECKING:
    from ..server import Server

__all__ = [
    "RollbackBefore",
    "RollbackDone",
    "RollbackPlan",
    "RollbackStep",
    "apply",
    "before",
    "plan",
    "verify",
]

_HINT = (
    "put the old certificate back in IIS Manager (Directory Security → Server Certificate) and start the site"
)


@dataclass(frozen=True)
class RollbackBefore:
    sites: tuple[Site, ...]
    production: Site
    run_id: str
    old_thumbprint: str
    old_not_after_utc: str
    bindings: tuple[str, ...]  # the secure bindings to put back (``IP:port:host``)
    # step 2's ``old_cert_source``: "inherited" = the site inherited the old certificate from /LM/W3SVC (IIS 6,
    # W-IIS6-SSLCERTHASH-INHERIT), so the rollback restores inheritance instead of an own value
    old_cert_source: str = ""

    def rows(self) -> list[dict[str, Any]]:
        return [s.row() for s in self.sites]


def before(
    server: Server,
    *,
    production_site: str,
    run_id: str,
    old_thumbprint: str,
    old_not_after_utc: str = "",
    old_secure_bindings: Sequence[str] = (),
    port: int = 443,
    old_cert_source: str = "",
) -> RollbackBefore:
    """Read every site; the bindings to restore are the recorded ones, else ``:<port>:``."""
    old = canonical_thumbprint(old_thumbprint, key="old_thumbprint")
    found = server.iis.sites()
    return RollbackBefore(
        sites=tuple(found),
        production=find_site(found, production_site, host=server.host),
        run_id=run_id,
        old_thumbprint=old,
        old_not_after_utc=str(old_not_after_utc or ""),
        bindings=tuple(old_secure_bindings) or (secure_binding(port),),
        old_cert_source=str(old_cert_source or ""),
    )


@dataclass(frozen=True)
class RollbackPlan:
    before: RollbackBefore
    port: int
    changes: tuple[Change, ...]

    def rows(self) -> list[dict[str, Any]]:
        return [c.row() for c in self.changes]


def plan(server: Server, found: RollbackBefore, *, port: int = 443) -> RollbackPlan:
    """From → to (empty: the old certificate is already in place)."""
    changes = server.iis.plan_swap(
        production_site=found.production.path, new_thumbprint=found.old_thumbprint, port=port
    )
    if _inherited(found):  # the site inherits the old certificate again: its own value is cleared
        inherit = f"{found.old_thumbprint} (inherited from W3SVC)"
        changes = [replace(c, after=inherit) if c.field == "SSLCertHash" else c for c in changes]
        if not any(c.field == "SSLCertHash" for c in changes) and found.production.cert_source != "inherited":
            changes.append(
                Change(found.production.label, "SSLCertHash", found.production.cert_described, inherit)
            )
    return RollbackPlan(found, port, tuple(changes))


def _inherited(found: RollbackBefore) -> bool:
    return found.old_cert_source == "inherited"


@dataclass(frozen=True)
class RollbackDone:
    plan: RollbackPlan
    result: SwapResult | None  # None in a dry run

    def rows(self) -> list[dict[str, Any]]:
        return [self.result.row()] if self.result else [{"dry_run": "nothing changed"}]


def apply(server: Server, planned: RollbackPlan, *, dry_run: bool = False) -> RollbackDone:
    """Put the old certificate back and start the site; a dry run changes nothing."""
    if dry_run:
        return RollbackDone(planned, None)
    found = planned.before
    result = server.iis.rollback(
        production_site=found.production.path,
        old_thumbprint=found.old_thumbprint,
        secure_bindings=list(found.bindings),
        old_cert_source=found.old_cert_source,
    )
    return RollbackDone(planned, result)


@dataclass(frozen=True)
class RollbackStep:
    done: RollbackDone
    production_after: Site
    checks: tuple[dict[str, Any], ...]

    def rows(self) -> list[dict[str, Any]]:
        return list(self.checks)

    def facts(self) -> dict[str, Any]:
        found = self.done.plan.before
        dry_run = self.done.result is None
        return {
            "rolled_back_run": found.run_id,
            "restored_thumbprint": found.old_thumbprint,
            "restored_not_after_utc": found.old_not_after_utc,
            "replaced_thumbprint": found.production.cert_thumbprint,
            "rollback_plan": self.done.plan.rows(),
            "stopped_sites": [s.path for s in self.done.result.stopped_sites] if self.done.result else [],
            "production_state": self.production_after.state_name,
            "expected_thumbprint": self.production_after.cert_thumbprint if dry_run else found.old_thumbprint,
            # own / inherited (from W3SVC, IIS 6) / none: as step 2 found it, and as read back now
            "restored_cert_source": self.production_after.cert_source,
        }


def verify(server: Server, done: RollbackDone) -> RollbackStep:
    """Production started with the old certificate, no other started site on its secure binding
    (raises unless dry run)."""
    found = done.plan.before
    sites_after = server.iis.sites()  # one read for the checks and the facts
    checks = check_swap(
        sites_after,
        production_site=found.production.path,
        new_thumbprint=found.old_thumbprint,
        host=server.host,
        dry_run=done.result is None,
        hint=_HINT,
        inherited=_inherited(found),
    )
    production_after = find_site(sites_after, found.production.path, host=server.host)
    return RollbackStep(done, production_after, tuple(checks))
