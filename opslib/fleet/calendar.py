"""When must every certificate be renewed: the renewal calendar across hosts and sites (read-only).

For each host and site: what it serves now (a read-only TLS handshake with ``verify.endpoint``, else
the latest evidence, saying which and when), its expiry and days left, the pending request on the
server (the REQUEST store, read-only, :func:`opslib.server.stores.pending_requests`), the renew-by date
(expiry minus the operator's lead time) and the longest lifetime the *next* certificate may have
(:mod:`.lifetimes`, CA/Browser Forum SC-081) when it is publicly trusted (:mod:`opslib.certs.trust`).

Inputs become :class:`Target` s (:func:`targets_from_params`, :func:`targets_from_evidence`, and the
fleet inventory's hosts in :func:`targets_from_hosts`); :func:`build_calendar` looks at them, in
parallel, and returns a :class:`Calendar` ordered by renew-by date. Nothing here changes a server:
the handshake sends no HTTP request, the store read is ``reg export`` into the connection's own temp
folder, removed (and read back) when the connection closes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from .. import certs, credentials, tls
from .. import params as params_
from ..certs.trust import Trust, chain_trust, thumbprints_trust
from ..errors import OpsError, UsageError
from ..evidence import index as evidence_index
from ..evidence import iso_utc
from ..server.stores import pending_requests
from ..winrm.from_params import connect_params
from .lifetimes import BALLOT, BALLOT_URL, max_lifetime

SCHEMA = 1
DEFAULT_LEAD_DAYS = 30
HANDSHAKE_TIMEOUT_S = 5.0
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Target:
    """One host and site to put on the calendar, and how to look at it (read-only)."""

    host: str
    site: str
    source: str  # where it came from: a parameters file, an inventory host, an evidence root
    endpoint: str = ""  # verify.endpoint ("" = no handshake)
    servername: str = ""
    hostnames: tuple[str, ...] = ()
    winrm: Mapping[str, Any] | None = None  # None = the server is not asked (evidence input)
    env: Mapping[str, str] = field(default_factory=dict, repr=False)  # secrets for this host only
    private_pki: bool | None = None  # True: said to be private; None/False: judged by the chain
    private_pki_from: str = ""  # what said so (e.g. "private_pki: true in web01.yaml")


@dataclass(frozen=True)
class Served:
    """What the site serves, and how that is known."""

    how: str  # "handshake" | "evidence" | "unknown"
    detail: str  # e.g. "read-only TLS handshake with 127.0.0.2:443 at …" / "evidence run X (finished …)"
    seen_utc: str  # when it was seen ("" = never)
    thumbprint: str = ""
    subject: str = ""
    not_before_utc: datetime | None = None
    not_after_utc: datetime | None = None
    trust: Trust | None = None  # None: the chain is not known well enough to judge


@dataclass(frozen=True)
class RequestState:
    """Pending requests on the server (REQUEST store) for the site's names."""

    state: str  # "pending" | "none" | "not checked"
    detail: str
    pending: tuple[dict[str, Any], ...] = ()  # thumbprint, subject, names, for_site


@dataclass(frozen=True)
class Entry:
    """One host + site + certificate on the calendar."""

    target: Target
    served: Served
    request: RequestState
    lead_days: int
    now_utc: datetime
    problems: tuple[str, ...] = ()  # what could not be looked at (handshake failed, …)

    @property
    def renew_by_utc(self) -> datetime | None:
        n = self.served.not_after_utc
        return None if n is None else n - self.lead_days * DAY

    @property
    def days_left(self) -> int | None:
        n = self.served.not_after_utc
        return None if n is None else (n - self.now_utc) // DAY

    @property
    def days_to_renew_by(self) -> int | None:
        r = self.renew_by_utc
        return None if r is None else (r - self.now_utc) // DAY

    @property
    def pki(self) -> str:
        """public | private | unknown."""
        if self.target.private_pki:
            return "private"
        return "unknown" if self.served.trust is None else self.served.trust.label

    @property
    def pki_reason(self) -> str:
        if self.target.private_pki:
            return f"said to be private ({self.target.private_pki_from})"
        if self.served.trust is None:
            return (
                "not known: no served chain to judge (set private_pki: true / opslib_private_pki for a "
                "private CA)"
            )
        return self.served.trust.reason

    @property
    def uid(self) -> str:
        """Stable across runs: from host, site and the certificate's thumbprint (an iCalendar UID)."""
        basis = "\n".join([self.target.host.lower(), self.target.site.lower(), self.served.thumbprint])
        return f"{hashlib.sha256(basis.encode('utf-8')).hexdigest()[:32]}@opslib-calendar"

    def next_certificate(self) -> dict[str, Any]:
        """The lifetime the next certificate may have (issued at the renew-by date, or now when that is
        past), and how often the site must then be renewed with this lead time."""
        renew_by = self.renew_by_utc
        issued = self.now_utc if renew_by is None or renew_by < self.now_utc else renew_by
        limit = max_lifetime(issued)
        pki = self.pki
        applies = {"public": True, "private": False}.get(pki)
        out: dict[str, Any] = {
            "assumed_issued_utc": iso_utc(issued),
            "sc081_applies": applies,
            "sc081_max_days": limit.max_days,
            "sc081_since": limit.since,
            "ballot": BALLOT,
            "ballot_url": BALLOT_URL,
        }
        if applies is False:
            out["renew_every_days"] = None
            out["text"] = "private CA: SC-081 does not apply (the CA's own policy sets the lifetime)"
            return out
        every = limit.max_days - self.lead_days
        out["renew_every_days"] = max(every, 1)
        when = "" if applies else "if publicly trusted: "
        out["text"] = (
            f"{when}{limit.text()}; with {self.lead_days} days' lead, renew every {max(every, 1)} days"
        )
        if every < 1:
            out["text"] += f" (the lead time {self.lead_days} days is not shorter than the lifetime)"
        return out

    def to_json(self) -> dict[str, Any]:
        s, t, r = self.served, self.target, self.renew_by_utc
        return {
            "uid": self.uid,
            "host": t.host,
            "site": t.site,
            "input": t.source,
            "served": {
                "how": s.how,
                "detail": s.detail,
                "seen_utc": s.seen_utc,
                "thumbprint": s.thumbprint,
                "subject": s.subject,
                "not_before_utc": iso_utc(s.not_before_utc) if s.not_before_utc else "",
                "not_after_utc": iso_utc(s.not_after_utc) if s.not_after_utc else "",
            },
            "days_left": self.days_left,
            "lead_days": self.lead_days,
            "renew_by_utc": iso_utc(r) if r else "",
            "days_to_renew_by": self.days_to_renew_by,
            "renew_now": r is not None and r <= self.now_utc,
            "expired": s.not_after_utc is not None and s.not_after_utc <= self.now_utc,
            "request": {
                "state": self.request.state,
                "detail": self.request.detail,
                "pending": list(self.request.pending),
            },
            "pki": self.pki,
            "pki_reason": self.pki_reason,
            "next_certificate": self.next_certificate(),
            "problems": list(self.problems),
        }


@dataclass(frozen=True)
class Calendar:
    """Every entry, ordered by renew-by date (unknown expiry last)."""

    entries: tuple[Entry, ...]
    now_utc: datetime
    lead_days: int

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "now_utc": iso_utc(self.now_utc),
            "lead_days": self.lead_days,
            "ballot": BALLOT,
            "ballot_url": BALLOT_URL,
            "entries": [e.to_json() for e in self.entries],
        }


# --- inputs -------------------------------------------------------------------------------------


def target_from_params(
    p: params_.Parameters,
    *,
    source: str,
    env: Mapping[str, str] | None = None,
    private_pki: bool | None = None,
    private_pki_from: str = "",
) -> Target:
    """A :class:`Target` from validated parameters (paths made absolute: the file's folder)."""
    winrm = dict(p.data["winrm"])
    if winrm.get("ca_trust_path"):
        winrm["ca_trust_path"] = str(p.path("winrm.ca_trust_path"))
    said = bool(p.data.get("private_pki")) if private_pki is None else private_pki
    return Target(
        host=p.host,
        site=p.site,
        source=source,
        endpoint=str(p.get("verify.endpoint") or ""),
        servername=str(p.get("verify.servername") or ""),
        hostnames=tuple(p.data.get("expected_hostnames") or ()) or (p.site,),
        winrm=winrm,
        env=dict(env or {}),
        private_pki=said or None,
        private_pki_from=private_pki_from or (f"private_pki: true in {source}" if said else ""),
    )


def targets_from_params(paths: Sequence[str | os.PathLike[str]]) -> list[Target]:
    """Every parameters file validated first (a bad one: exit 2, before any server is contacted)."""
    out = []
    for path in paths:
        p = params_.load(path)
        out.append(target_from_params(p, source=str(path)))
    return out


def targets_from_inventory(
    path: Path, *, limit: str | None = None, vault_password_file: Path | None = None
) -> list[Target]:
    """Every host of an Ansible inventory (:func:`opslib.fleet.inventory.load_inventory` validates them
    all first: a bad host is exit 2 before any server is contacted); its secrets stay in its ``env``."""
    from .inventory import load_inventory

    out = []
    for host in load_inventory(path, limit=limit, vault_password_file=vault_password_file):
        source = f"{path} (host {host.name})"
        p = params_.validate(host.params, source=source, base_dir=path.parent, check_files=False)
        said = "inventory variable opslib_private_pki" if host.private_pki else ""
        out.append(
            target_from_params(
                p, source=source, env=host.env, private_pki=host.private_pki, private_pki_from=said
            )
        )
    return out


def targets_from_evidence(root: str | os.PathLike[str]) -> list[Target]:
    """Every host + site the evidence root has a run for (the evidence alone: nothing is contacted)."""
    seen: dict[tuple[str, str], Target] = {}
    for entry in evidence_index.scan(root):
        doc = entry.doc
        if not doc or not doc.get("host") or not doc.get("site"):
            continue
        key = (str(doc["host"]), str(doc["site"]))
        private = bool((doc.get("parameters") or {}).get("private_pki"))
        seen[key] = Target(
            host=key[0],
            site=key[1],
            source=str(root),
            private_pki=private or None,
            private_pki_from=f"private_pki: true in run {entry.run_id}" if private else "",
        )
    return list(seen.values())


def is_params_file(path: str | os.PathLike[str]) -> bool:
    """A parameters file is a YAML mapping with a ``winrm`` section; anything else is an inventory."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and "winrm" in data


def targets_for(
    inputs: Sequence[str | os.PathLike[str]],
    *,
    evidence_root: str | os.PathLike[str] | None = None,
    limit: str | None = None,
    vault_password_file: Path | None = None,
) -> list[Target]:
    """The targets of ``opslib calendar``: parameters files, one inventory, or the evidence root alone."""
    if not inputs:
        if not evidence_root:
            raise UsageError(
                "give an inventory, parameters files or --evidence-root DIR",
                hint="opslib calendar inventory.yml | web01.yaml web02.yaml | --evidence-root evidence",
            )
        return targets_from_evidence(evidence_root)
    for item in inputs:
        if not Path(item).is_file():
            raise UsageError(f"{item}: no such file", hint="give an inventory or parameters files")
    if all(is_params_file(i) for i in inputs):
        if limit or vault_password_file:
            raise UsageError("--limit and --vault-password-file are for an inventory, not parameters files")
        return targets_from_params(inputs)
    if len(inputs) != 1:
        raise UsageError(
            f"{len(inputs)} inputs that are not all parameters files: give one inventory, or parameters files"
        )
    return targets_from_inventory(Path(inputs[0]), limit=limit, vault_password_file=vault_password_file)


def calendar_json(
    inputs: Sequence[str | os.PathLike[str]] = (),
    *,
    evidence_root: str | os.PathLike[str] | None = None,
    lead_days: int = DEFAULT_LEAD_DAYS,
    now_utc: datetime | None = None,
    check_requests: bool = True,
) -> dict[str, Any]:
    """The calendar as the JSON document ``opslib calendar --json`` prints (the notebook's source)."""
    found = targets_for(inputs, evidence_root=evidence_root)
    now = now_utc or datetime.now(UTC).replace(microsecond=0)
    cal = build_calendar(
        found, now_utc=now, lead_days=lead_days, evidence_root=evidence_root, check_requests=check_requests
    )
    return cal.to_json()


# --- the latest evidence ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    """What a run recorded production serving at its end."""

    run_id: str
    finished_utc: str
    thumbprint: str
    not_after_utc: str
    what: str  # which facts said so
    chain: tuple[str, ...] = ()  # predicted_chain (SHA-1, leaf first) when it is the new certificate


def recorded_serving(doc: Mapping[str, Any]) -> Recorded | None:
    """What production served when run ``doc`` ended, from its facts (None: the run says nothing)."""
    facts = doc.get("facts") or {}
    run_id, finished = (
        str(doc.get("run_id", "")),
        str(doc.get("finished_utc") or doc.get("started_utc") or ""),
    )
    now = doc.get("production_now") or {}
    mode = evidence_index.run_mode(doc)
    if doc.get("status") == "succeeded" and not doc.get("dry_run"):
        if facts.get("restored_thumbprint"):
            old = (doc.get("parameters") or {}).get("rollback") or {}
            return Recorded(
                run_id,
                finished,
                str(facts["restored_thumbprint"]),
                str(old.get("old_not_after_utc") or ""),
                f"{mode}: the certificate put back",
            )
        if facts.get("new_thumbprint") and facts.get("expected_thumbprint"):
            return Recorded(
                run_id,
                finished,
                str(facts["new_thumbprint"]),
                str(facts.get("new_not_after_utc") or ""),
                f"{mode}: the new certificate, swapped in and checked",
                tuple(str(t) for t in facts.get("predicted_chain") or ()),
            )
    if now.get("thumbprint"):
        return Recorded(
            run_id,
            finished,
            str(now["thumbprint"]),
            str(now.get("not_after_utc") or ""),
            f"{mode} ({doc.get('status')}): production_now — {now.get('source', '')}",
        )
    if facts.get("production_thumbprint_before"):
        return Recorded(
            run_id,
            finished,
            str(facts["production_thumbprint_before"]),
            str(facts.get("production_not_after_utc_before") or ""),
            f"{mode} ({doc.get('status')}): production before the run",
        )
    return None


def latest_recorded(root: str | os.PathLike[str]) -> dict[tuple[str, str], Recorded]:
    """(host, site) → what its latest run (by folder name: UTC first) recorded production serving."""
    out: dict[tuple[str, str], Recorded] = {}
    for entry in evidence_index.scan(root):
        doc = entry.doc
        if not doc:
            continue
        found = recorded_serving(doc)
        if found is not None:
            out[(str(doc.get("host", "")), str(doc.get("site", "")))] = found
    return out


def _parse_utc(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


def served_from_record(rec: Recorded) -> Served:
    return Served(
        how="evidence",
        detail=f"the latest evidence: run {rec.run_id} (finished {rec.finished_utc or '?'}; {rec.what})",
        seen_utc=rec.finished_utc,
        thumbprint=certs.normalize_thumbprint(rec.thumbprint),
        not_after_utc=_parse_utc(rec.not_after_utc),
        trust=thumbprints_trust(rec.chain),
    )


# --- looking (read-only) ----------------------------------------------------------------------------


def look_served(target: Target, *, timeout_s: float = HANDSHAKE_TIMEOUT_S) -> Served:
    """A read-only TLS handshake with the target's endpoint (raises :class:`OpsError` when it fails)."""
    host, port = tls.parse_endpoint(target.endpoint)
    chain = tls.fetch_chain(host, port, servername=target.servername or None, timeout_s=timeout_s)
    summary = certs.summarize(chain.leaf)
    sni = f" (SNI {target.servername})" if target.servername else ""
    seen = iso_utc(datetime.now(UTC).replace(microsecond=0))  # the real time, whatever --now says
    return Served(
        how="handshake",
        detail=f"read-only TLS handshake with {target.endpoint}{sni} at {seen}",
        seen_utc=seen,
        thumbprint=summary.thumbprint,
        subject=summary.subject,
        not_before_utc=summary.not_before_utc,
        not_after_utc=summary.not_after_utc,
        trust=chain_trust(chain.certificates),
    )


def look_requests(target: Target) -> RequestState:
    """The server's pending requests (REQUEST store), read-only; those naming the site's names first."""
    if target.winrm is None:
        return RequestState("not checked", "evidence input: the server is not contacted")
    winrm = dict(target.winrm)
    try:
        with connect_params(winrm, host=target.host, env=target.env) as conn:
            entries = pending_requests(conn)
    except OpsError as exc:
        return RequestState("not checked", f"the server could not be asked: {credentials.redact(str(exc))}")
    wanted = {n.lower() for n in target.hostnames}
    pending = []
    for e in entries:
        names = {e.summary.common_name.lower(), *(d.lower() for d in e.summary.dns_names)}
        pending.append(
            {
                "thumbprint": e.thumbprint,
                "subject": e.summary.subject,
                "names": sorted(names - {""}),
                "for_site": bool(names & wanted),
            }
        )
    pending.sort(key=lambda p: (not p["for_site"], p["thumbprint"]))
    mine = [p for p in pending if p["for_site"]]
    if mine:
        return RequestState(
            "pending",
            f"{len(mine)} pending request(s) for {', '.join(sorted(wanted))} "
            f"in the REQUEST store (read-only)",
            tuple(pending),
        )
    others = f" ({len(pending)} for other names)" if pending else ""
    return RequestState("none", f"no pending request for {', '.join(sorted(wanted))}{others}", tuple(pending))


def look(
    target: Target,
    *,
    now_utc: datetime,
    lead_days: int,
    recorded: Mapping[tuple[str, str], Recorded],
    check_requests: bool = True,
    timeout_s: float = HANDSHAKE_TIMEOUT_S,
) -> Entry:
    """One entry: the handshake (else the latest evidence), the pending request, read-only."""
    problems: list[str] = []
    served: Served | None = None
    if target.endpoint and target.winrm is not None:
        try:
            served = look_served(target, timeout_s=timeout_s)
        except OpsError as exc:
            problems.append(f"the read-only TLS handshake failed: {credentials.redact(str(exc))}")
    if served is None:
        rec = recorded.get((target.host, target.site))
        if rec is not None:
            served = served_from_record(rec)
        else:
            served = Served("unknown", "no handshake and no evidence for this host and site", "")
    if not check_requests:
        request = RequestState("not checked", "--no-requests: the server was not asked")
    else:
        request = look_requests(target)
    return Entry(target, served, request, lead_days, now_utc, tuple(problems))


def _order(entry: Entry) -> tuple[Any, ...]:
    r = entry.renew_by_utc
    return (r is None, r or entry.now_utc, entry.target.host, entry.target.site)


def build_calendar(
    targets: Iterable[Target],
    *,
    now_utc: datetime,
    lead_days: int = DEFAULT_LEAD_DAYS,
    evidence_root: str | os.PathLike[str] | None = None,
    check_requests: bool = True,
    workers: int = 8,
    timeout_s: float = HANDSHAKE_TIMEOUT_S,
) -> Calendar:
    """Look at every target (in parallel, read-only) and order the entries by renew-by date."""
    if now_utc.tzinfo is None:
        raise UsageError("--now must carry a time zone (e.g. 2026-12-01T00:00:00Z)")
    if not 0 <= lead_days <= 3650:
        raise UsageError(f"--lead-days {lead_days}: give 0 to 3650 days")
    items = list(targets)
    recorded = latest_recorded(evidence_root) if evidence_root and Path(evidence_root).is_dir() else {}

    def one(t: Target) -> Entry:
        return look(
            t,
            now_utc=now_utc,
            lead_days=lead_days,
            recorded=recorded,
            check_requests=check_requests,
            timeout_s=timeout_s,
        )

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(items) or 1))) as pool:
        entries = list(pool.map(one, items))
    return Calendar(tuple(sorted(entries, key=_order)), now_utc, lead_days)
