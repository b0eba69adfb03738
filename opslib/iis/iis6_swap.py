"""IIS 6 step 2 as one server-side transaction: the helper's ``swap`` verb and its journal.

:meth:`opslib.iis.iis6.IIS6Backend.swap` plans, then :func:`transaction` runs ``iis6.js swap`` through
the backend's :class:`~opslib.iis.iis6_helper.IIS6Helper` (one
cscript invocation that sets, restarts, waits and restores by itself — W-IIS6-SWAP) and returns its
answer; when the connection is lost meanwhile, or cscript ends without the helper's JSON, the answer
is read back from the journal the helper keeps on the server (``%SystemRoot%\\Temp\\opslib-swap-N.json``,
W-FSO-JOURNAL) and from the sites. :func:`raise_failed` turns a failed answer into the message.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from .. import winerror
from ..errors import OpsError, RemoteCommandFailed, TransportError, VerificationFailed
from ..text import escape_text
from . import undo
from .base import Site, find_site, reason
from .iis6_helper import HelperError, IIS6Helper, parse_json

# The swap's bound for ServerState 2 after Start() (each of: the new certificate, the restore), and the
# client's deadline for the whole transaction — longer than everything the helper may wait for (a
# client deadline would Signal-terminate the helper in the middle of its transaction, W-WINRS-ORPHAN).
SWAP_START_TIMEOUT_S = 60
SWAP_COMMAND_TIMEOUT_S = 2 * SWAP_START_TIMEOUT_S + 60
_ENDED = ("done", "restored", "failed")
_JOURNAL_POLL_S = 1.0


def transaction(
    helper: IIS6Helper, production: Site, new: str, binding: str, stop_ids: str, *, rollback: bool = False
) -> dict[str, Any]:
    """Run the helper's ``swap`` verb; its answer, or the journal's when the connection was lost.
    ``rollback``: the same transaction puts the previous certificate ``new`` back (step R)."""
    what = (
        f"{'roll back' if rollback else 'swap'} {new} onto {production.label} (one transaction on the server)"
    )
    undo = (
        f"`opslib rollback RUN` again once the cause is fixed, or put {new} back in IIS Manager"
        if rollback
        else "rollback.yaml in the run folder puts the previous certificate back"
    )
    try:
        return helper.run(
            "swap",
            str(production.id),
            new,
            "MY",
            binding,
            stop_ids,
            str(SWAP_START_TIMEOUT_S),
            what=what,
            names=["site id", "thumbprint", "store", "secure binding", "sites to stop", "timeout"],
            # Never shorter than the helper's own bounds (two start waits, the stops): a client
            # deadline would Signal-terminate the helper in the middle of its transaction.
            timeout_s=SWAP_COMMAND_TIMEOUT_S,
        )
    except HelperError as exc:
        if "ok" in exc.error:  # the transaction ran and ended restored (3) or down (4)
            return exc.error
        raise helper.command_failed(
            exc,
            what,
            f"the helper refused before changing anything; check {production.label} in IIS Manager",
        ) from None
    except TransportError as lost:
        # The helper keeps running on the server (a dropped client does not stop it): wait for its
        # journal to say how it ended.
        answer = wait_for_journal(helper, production, new=new)
        if answer is None:
            _refuse_unstarted(helper, production, new, lost)
            raise VerificationFailed(
                helper.host,
                f"the connection was lost during the {'rollback' if rollback else 'swap'} on {production.label} ({reason(lost)}) and the "
                "server's swap journal could not be read back",
                hint="the transaction completes or restores what production served before it on the server by itself; "
                "read what production serves with `opslib resume RUN` (or look in IIS Manager)",
            ) from lost
        return answer
    except RemoteCommandFailed as unclear:
        # cscript ended without the helper's JSON (refused to start, crashed): ask the server.
        answer = wait_for_journal(helper, production, new=new, deadline_s=_JOURNAL_POLL_S)
        if answer is None:
            _refuse_unstarted(helper, production, new, unclear)
            raise VerificationFailed(
                helper.host,
                f"the {'rollback' if rollback else 'swap'} on {production.label} ended without an answer "
                f"({reason(unclear)}) and its journal does not say it finished",
                hint=f"look at {production.label} in IIS Manager; {undo}",
            ) from unclear
        return answer


def _refuse_unstarted(helper: IIS6Helper, production: Site, new: str, lost: OpsError) -> None:
    """No journal for this swap: when production reads back unchanged, the swap never started."""
    try:
        journal = read_journal(helper, production)
        now = find_site(helper.sites(), production.path, host=helper.host)
    except OpsError:
        return
    if (journal is None or journal.get("new_hash") != new) and now == production:
        raise VerificationFailed(
            helper.host,
            f"{reason(lost)}; the swap did not start on the server (no journal) "
            f"and {production.label} still serves {production.cert_thumbprint or '(no certificate)'}, "
            f"{production.state_name} — nothing was changed",
            hint=_retry_hint(lost),
        ) from lost


def _retry_hint(lost: OpsError) -> str:
    """What to do before running the step again: the account's rights after "access denied" (exit 5),
    else the connection."""
    if isinstance(lost, RemoteCommandFailed) and lost.remote_exit_code == winerror.ERROR_ACCESS_DENIED:
        return (
            "exit 5 is access denied: the WinRM account lacks the rights to change IIS on the server — "
            "give it administrator rights there (or use an account that has them), then run this step again"
        )
    return "check the connection, then run this step again"


def read_journal(helper: IIS6Helper, site: Site | str) -> dict[str, Any] | None:
    """What the last ``swap`` of ``site`` wrote to its journal on the server (None: no journal)."""
    target = site if isinstance(site, Site) else find_site(helper.sites(), site, host=helper.host)
    payload = helper.run_read_only("journal", str(target.id), what=f"read the swap journal of {target.label}")
    text = payload.get("journal")
    if not isinstance(text, str):
        return None
    value = parse_json(text.encode("ascii", errors="replace"))
    return value if value and value.get("verb") == "swap" else None


def wait_for_journal(
    helper: IIS6Helper, production: Site, *, new: str, deadline_s: float = 0.0
) -> dict[str, Any] | None:
    """Poll the journal until the swap of ``new`` has ended (phase done/restored/failed)."""
    end = time.monotonic() + (deadline_s or SWAP_COMMAND_TIMEOUT_S)
    while True:
        try:
            answer = read_journal(helper, production)
        except OpsError:
            answer = None
        if answer and answer.get("new_hash") == new and answer.get("phase") in _ENDED:
            return answer
        if time.monotonic() >= end:
            return None
        time.sleep(_JOURNAL_POLL_S)


def raise_failed(
    helper: IIS6Helper, production: Site, old_thumb: str, new: str, answer: Mapping[str, Any], after: Site
) -> None:
    """The transaction ended without the new certificate: say whether the old one is back; raises."""
    cause = answer.get("cause") or {}
    why = f"ADSI {escape_text(cause.get('number', '?'))}: {escape_text(cause.get('description', '?'))}"
    failed = f"{production.label} did not come back with the new certificate {new} ({why})"
    old_label = old_thumb or "(no certificate)"
    if answer.get("restored"):
        raise VerificationFailed(
            helper.host,
            f"{failed}; rolled back to the previous certificate {old_label} and the site is "
            f"{after.state_name} again",
            hint="look at the System event log (source W3SVC) for why the site would not start with the new "
            "certificate, fix it, then run this step again",
        )
    again = answer.get("restore_error") or {}
    if after.cert_thumbprint == old_thumb:
        raise VerificationFailed(
            helper.host,
            f"{failed}; rolled back to the previous certificate {old_label}, but the site did not start "
            f"again (ADSI {escape_text(again.get('number', '?'))}: {escape_text(again.get('description', '?'))}) "
            "— the site is DOWN",
            hint="look at the System event log (source W3SVC), fix the cause and start the site in IIS Manager",
        )
    raise VerificationFailed(
        helper.host,
        f"{failed}; putting the previous certificate {old_label} back failed too "
        f"(ADSI {escape_text(again.get('number', '?'))}: {escape_text(again.get('description', '?'))})",
        hint=f"put {old_label} back on {production.label} in IIS Manager and start the site NOW",
    )


def raise_rollback_failed(helper: IIS6Helper, production: Site, old: str, answer: Mapping[str, Any]) -> None:
    """The rollback transaction ended without ``old``: the helper put back what production served before
    the rollback; read the site back and say plainly what it serves now; raises (:mod:`opslib.iis.undo`)."""
    why, again = (
        f"ADSI {escape_text(c.get('number', '?'))}: {escape_text(c.get('description', '?'))}"
        for c in (answer.get("cause") or {}, answer.get("restore_error") or {})
    )
    what = undo.Failed(helper.host, production.label, old, why, "source W3SVC")
    before = production.cert_described or "(no certificate)"
    try:
        now = find_site(helper.sites(), production.path, host=helper.host)
    except OpsError as unread:
        raise what.not_undone(before, f"(not read back: {reason(unread)})", again) from None
    if not answer.get("restored"):
        raise what.not_undone(before, f"{now.cert_described or '(no certificate)'}, {now.state_name}", again)
    raise what.read_back(before, now.cert_described or "(no certificate)", now)
