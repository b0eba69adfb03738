"""Production only moves forward unless the operator says otherwise, by name.

A resume or a rollback acts on what an earlier run recorded. Before it changes anything it reads what
production serves now **from the server's own bindings** (every secure binding of the site, through the
IIS backend's site read — not a TLS handshake, which a load balancer or a cache could answer) and
compares it with what the run expects to find (:class:`Expected`): a resume, the certificate its run
recorded before its swap (or the new one, once the swap is done); a rollback, the certificate the
undone run put on. Anything else means a newer run (or someone by hand) moved production on since: the
run stops naming both certificates and the newer run that made the change (looked up in the evidence
root), unless ``--force-older`` was given (recorded in run.json as ``forced``).

A rollback whose target certificate has expired stops before any run folder exists unless
``--force-expired`` was given (recorded): the way forward is a renewal. One that expires within
``warn_days`` goes on and says so on the console (``expiry_warning`` in run.json, and step 4's
warnings in the report).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import evidence
from .. import params as params_
from ..errors import PreconditionFailed
from ..server import open_server
from ..text import escape_text
from .record import now_utc

if TYPE_CHECKING:
    from ..server import Server

SWAP_STEP = "02_swap_certificate"


@dataclass(frozen=True)
class Expected:
    """What production may serve now for a resume or rollback of run ``run_id`` to go on."""

    thumbprints: tuple[str, ...]  # any of these on every secure binding of the site
    why: str  # where the expectation comes from, for the message
    run_id: str  # the run whose record it is (never the "newer run")
    force_older: bool = False  # --force-older: go on anyway (recorded)

    def facts(self) -> dict[str, Any]:
        return {"expected": list(self.thumbprints), "because": self.why, "run_id": self.run_id}


def for_resume(manifest: Mapping[str, Any], done: Iterable[str], *, force_older: bool) -> Expected | None:
    """A resume: after its run's swap, the new certificate; before it, the one recorded before the swap
    (or the new one: a swap that failed on this side may have finished on the server). None when the
    run recorded neither (it stopped before step 00 read production)."""
    facts = manifest.get("facts") if isinstance(manifest.get("facts"), Mapping) else {}
    assert isinstance(facts, Mapping)
    run_id = str(manifest.get("run_id") or "")
    new = _thumb(facts.get("expected_thumbprint") or facts.get("new_thumbprint"))
    if SWAP_STEP in set(done):
        if not new:
            return None
        return Expected((new,), f"run {run_id} swapped production to {new}", run_id, force_older)
    before = _thumb(facts.get("production_thumbprint_before") or facts.get("old_thumbprint"))
    if not before:
        return None
    allowed = tuple(t for t in (before, new) if t)
    return Expected(allowed, f"run {run_id} recorded {before} before its swap", run_id, force_older)


def for_rollback(params: params_.Parameters, *, force_older: bool) -> Expected | None:
    """A rollback: the certificate the undone run put on (or the one it puts back: done already)."""
    section = params.data.get("rollback") or {}
    replaced, old = _thumb(section.get("replaced_thumbprint")), _thumb(section.get("old_thumbprint"))
    if not replaced:
        return None
    run_id = str(section.get("run_id") or "")
    why = f"run {run_id} put {replaced} on production"
    return Expected(tuple(t for t in (replaced, old) if t), why, run_id, force_older)


def _thumb(value: Any) -> str:
    return str(value or "").replace(" ", "").upper()


def served_thumbprints(server: Server, site: str) -> list[str]:
    """The certificates every secure binding of ``site`` serves, from the server's own configuration
    (the IIS backend's site read: IIS 6 SSLCertHash, IIS 7–10 each HTTP.sys binding)."""
    found = server.iis.find_site(site)
    return [t for t in dict.fromkeys((found.cert_thumbprint, *found.binding_thumbprints)) if t]


def check_production(server: Server, *, site: str, expected: Expected, root: Path) -> dict[str, Any]:
    """Compare what ``site`` serves now with ``expected``; returns run.json's ``production_check``.

    Raises :class:`PreconditionFailed` when production serves anything else and ``--force-older`` was not
    given, naming both certificates and the newer run of ``root`` that made the change."""
    served = served_thumbprints(server, site)
    unexpected = [t for t in served if t not in expected.thumbprints] or ([] if served else ["(none)"])
    record: dict[str, Any] = {
        **expected.facts(),
        "site": site,
        "served": served,
        "source": "the site's secure bindings on the server",
    }
    if not unexpected:
        return {**record, "result": "as expected"}
    now = unexpected[0]
    newer = newer_run(root, now, exclude=expected.run_id)
    by = (
        f"run {newer}" if newer else "no run of this evidence root (by hand, or from another evidence folder)"
    )
    record.update(newer_run=newer, result="different")
    want = " or ".join(expected.thumbprints)
    text = (
        f"production site {escape_text(site)} serves {now} now, not {want} ({expected.why}); "
        f"it was put there by {by}"
    )
    if expected.force_older:
        print(
            f"opslib: warning: {text}; going on because --force-older was given", file=sys.stderr, flush=True
        )
        return {**record, "result": "different; going on: --force-older"}
    raise PreconditionFailed(
        site,
        text,
        hint="nothing was changed: production moved forward since that run. Check it with opslib inspect; "
        "to go on anyway, give the same command with --force-older (opslib resume / opslib rollback; "
        "recorded in run.json)",
    )


def read_production(
    params: params_.Parameters, env: Mapping[str, str], expected: Expected, *, root: Path
) -> dict[str, Any]:
    """:func:`check_production` on a short connection of its own, before the run folder exists (a
    refusal leaves no run folder that would suggest resuming itself); returns run.json's
    ``production_check``. ``env``: prompted secrets ({key path: environment variable})."""
    site = str(params.get("production_site") or params.site)
    with open_server(winrm_values(params, env), host=params.host) as server:
        return check_production(server, site=site, expected=expected, root=root)


def run_folder(params: params_.Parameters) -> str:
    """The run a rollback undoes, as ``opslib rollback`` takes it (its folder, next to rollback.yaml)."""
    section = params.data.get("rollback") or {}
    if (params.base_dir / "run.json").is_file():
        return str(params.base_dir)
    return str(section.get("run_id") or "RUN")


def winrm_values(params: params_.Parameters, env: Mapping[str, str]) -> dict[str, Any]:
    """The ``winrm`` mapping for a connection of the runner (a prompted password through its variable)."""
    winrm = dict(params.data["winrm"])
    if "winrm.password" in env:
        winrm["password"] = f"env:{env['winrm.password']}"
    return winrm


def newer_run(root: Path, thumbprint: str, *, exclude: str) -> str:
    """The newest run of ``root`` that put ``thumbprint`` on production ("" when none did)."""
    found = ""
    for entry in evidence.scan(root):
        doc = entry.doc or {}
        facts = doc.get("facts") if isinstance(doc.get("facts"), Mapping) else {}
        assert isinstance(facts, Mapping)
        if entry.run_id == exclude or doc.get("dry_run"):
            continue
        put = {_thumb(facts.get("expected_thumbprint")), _thumb(facts.get("restored_thumbprint"))}
        if thumbprint in put:
            found = entry.run_id  # scan is sorted by name: the last match is the newest
    return found


def check_rollback_target(
    params: params_.Parameters, *, force_expired: bool, moment: datetime | None = None
) -> dict[str, Any]:
    """A rollback's target certificate: expired → :class:`PreconditionFailed` (before any run folder)
    unless ``force_expired``; within ``warn_days`` → a console warning. Returns run.json's fields."""
    section = params.data.get("rollback") or {}
    thumb = _thumb(section.get("old_thumbprint"))
    text = str(section.get("old_not_after_utc") or "")
    if not text:
        return {}
    try:
        until = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return {}
    if until.tzinfo is None:
        until = until.replace(tzinfo=UTC)
    now = moment or now_utc()
    left = until - now
    if left <= timedelta(0):
        if not force_expired:
            raise PreconditionFailed(
                params.host,
                f"the certificate this rollback would put back, {thumb}, expired at {text}",
                hint="nothing was changed; production would serve an expired certificate. Renew instead "
                "(opslib run PARAMS.yaml with a new certificate); to put it back anyway: "
                f"opslib rollback {run_folder(params)} --force-expired (recorded in run.json)",
            )
        print(
            f"opslib: warning: putting back {thumb}, which expired at {text} (--force-expired)",
            file=sys.stderr,
            flush=True,
        )
        return {"forced": {"expired": {"thumbprint": thumb, "not_after_utc": text}}}
    warn_days = int(params.get("warn_days") or 0)
    if left <= timedelta(days=warn_days):
        days = left / timedelta(days=1)
        line = f"the certificate put back, {thumb}, expires at {text} (in {days:.1f} days): renew it soon"
        print(f"opslib: warning: {line}", file=sys.stderr, flush=True)
        return {"expiry_warning": line}
    return {}


__all__ = [
    "Expected",
    "check_production",
    "check_rollback_target",
    "for_resume",
    "for_rollback",
    "newer_run",
    "read_production",
    "winrm_values",
    "served_thumbprints",
]
