"""Step 3: back up the new certificate with its private key — the export route (``certutil
-exportPFX``, or ``IIS.CertObj`` through the site it is bound to), the PFX export, its proof, the
deletion of the server copy, and the owner-only file here.

The notebook calls :func:`plan_target`, :func:`plan`, :func:`apply`, :func:`verify` and records
``verify(...).facts()``. The PFX password is resolved inside :func:`apply` and never shown.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import backup, certs, credentials, winerror
from ..certs.pfx import encryption_problems, pfx_encryption_for, reprotect_pfx
from ..errors import (
    CapabilityMissing,
    CertificateError,
    PreconditionFailed,
    VerificationFailed,
)
from ..iis import Change, Site, find_site
from ..server.probe import Capabilities, require_admin
from ..server.remote import delete_remote, download, failed, host_of, remote_path
from ..server.stores import StoreEntry, read_entry, trusted_roots
from ..winrm.transfer import leftover_advice

if TYPE_CHECKING:
    from ..server import Server
    from ..winrm import Connection

__all__ = [
    "CERTUTIL_ROUTE",
    "ExportDone",
    "ExportPlan",
    "ExportResult",
    "ExportStep",
    "apply",
    "check_password",
    "export_pfx",
    "finish",
    "plan",
    "plan_export",
    "plan_target",
    "verify",
]

# E_INVALIDARG: what certutil exits with for a verb its build does not know ("Unknown arg",
# docs/windows-behaviour.md W-CERTUTIL-UNKNOWN-VERB). The one failure class that sends step 3 to the
# next route (IIS.CertObj) instead of stopping.
E_INVALIDARG = 0x80070057
ONE_TIME_PASSWORD = "one-time PFX password"


class ExportResult(bytes):
    """The verified PFX: *is* the PFX bytes (the contract's ``-> bytes``) and carries the facts.

    ``sha256``, ``thumbprint``, ``check`` (:class:`opslib.certs.PfxCheck` of the re-protected file),
    ``remote_path`` (the server-side copy), ``remote_deleted`` (True only when read back absent),
    ``remote_left`` (what stays on the server), ``chain``, ``route`` and ``route_reason`` (how it was
    exported and why), ``encryption`` (the protection chosen for the server's Windows). ``.data`` gives
    plain bytes.
    """

    sha256: str
    thumbprint: str
    check: certs.PfxCheck
    remote_path: str
    remote_deleted: bool
    chain: bool
    route: str  # "certutil -exportPFX" or "IIS.CertObj via W3SVC/n"
    route_reason: str
    encryption: str
    remote_left: tuple[str, ...]

    def __new__(
        cls,
        data: bytes,
        *,
        thumbprint: str,
        check: certs.PfxCheck,
        remote_path: str,
        remote_deleted: bool,
        chain: bool,
        route: str = "certutil -exportPFX",
        route_reason: str = "",
        encryption: str = "",
        remote_left: Sequence[str] = (),
    ) -> ExportResult:
        obj = super().__new__(cls, data)
        obj.sha256 = hashlib.sha256(data).hexdigest().upper()
        obj.thumbprint = thumbprint
        obj.check = check
        obj.remote_path = remote_path
        obj.remote_deleted = remote_deleted
        obj.chain = chain
        obj.route = route
        obj.route_reason = route_reason
        obj.encryption = encryption
        obj.remote_left = tuple(remote_left)
        return obj

    @property
    def data(self) -> bytes:
        return bytes(self)

    def facts(self) -> dict[str, Any]:
        return {
            "pfx_sha256": self.sha256,
            "pfx_size": len(self),
            "pfx_thumbprint": self.thumbprint,
            "pfx_certificates": list(self.check.certificates),
            "pfx_has_intermediate": self.check.has_intermediate,
            "pfx_has_cross": self.check.has_cross,
            "pfx_encryption": self.encryption,
            "pfx_algorithms": list(self.check.encryption),
            "server_copy_deleted": self.remote_deleted,
            "remote_deleted": self.remote_deleted,
            "remote_left": list(self.remote_left),
            "pfx_export_route": self.route,
            "export_route": self.route,
            "export_route_reason": self.route_reason,
        }

    def row(self) -> dict[str, Any]:
        return {
            **self.check.row(),
            "sha256": self.sha256,
            "route": self.route,
            "route_reason": self.route_reason,
            "pfx_encryption": self.encryption,
            "server_copy_deleted": self.remote_deleted,
            "remote_left": "; ".join(self.remote_left),
        }


def check_password(host: str, password: str) -> None:
    if len(password) < 8:
        raise PreconditionFailed(host, "the PFX password must have at least 8 characters — nothing was sent")
    if password[0] in "-/" or "," in password or any(ch.isspace() for ch in password):
        # Kept from when the operator's password went to certutil (a leading - or / reads as an option, a
        # comma as a password list); it no longer leaves this process, but the runner's pre-flight
        # (preflight.check_pfx_password) still states these rules, and a password that works with the
        # server's own tools is easier to use by hand.
        raise PreconditionFailed(
            host,
            "the PFX password must not start with - or / nor contain commas or spaces — nothing was sent",
        )


def _exportable_entry(conn: Connection, thumbprint: str) -> StoreEntry:
    thumb = re.sub(r"[^0-9A-Fa-f]", "", thumbprint).upper()
    entry, _ = read_entry(conn, "MY", thumb)
    if entry is None:
        raise PreconditionFailed(
            host_of(conn), f"the Personal (MY) store holds no certificate {thumb} — nothing was changed"
        )
    if not entry.has_key_link:
        raise PreconditionFailed(
            host_of(conn),
            f"MY\\{thumb} has no private key link (property 2) — nothing was changed",
            hint=f"repair it with `certutil -repairstore MY {thumb}` if the key exists on this server",
        )
    return entry


CERTUTIL_ROUTE = "certutil -exportPFX"


@dataclass(frozen=True)
class _Route:
    """How :func:`export_pfx` exports: ``certutil -exportPFX``, or ``IIS.CertObj`` through ``site``."""

    site: Site | None = None  # the site IIS.CertObj exports through; None for certutil
    pending: str = ""  # a dry run's IIS.CertObj route: the certificate is not bound to a site yet

    @property
    def certutil(self) -> bool:
        return self.site is None and not self.pending

    @property
    def label(self) -> str:
        if self.site is not None:
            return f"IIS.CertObj via {self.site.path}"
        return f"IIS.CertObj via {self.pending}" if self.pending else CERTUTIL_ROUTE


def _certutil_candidate(caps: Capabilities) -> bool:
    """certutil -exportPFX is the first route when its ``-?`` probe says the verb exists. That exit code
    is not trusted alone (W-CERTUTIL-PROBE-EXPORTPFX): the route is proven by use — in the pre-flight
    (:func:`opslib.ops.export_route.prove_export_route`) and again in step 3, which falls back to IIS.CertObj when certutil
    fails as an unknown verb. No Microsoft page dates the verb's arrival, so the Windows version alone
    does not decide it (W-CERTUTIL-EXPORTPFX)."""
    return caps.has_certutil("exportPFX")


def _certobj_candidate(caps: Capabilities) -> bool:
    return caps.iis_major == 6 and caps.cscript


def _require_export(caps: Capabilities) -> None:
    """Refuse unless one export route can exist: certutil -exportPFX, or IIS 6 with cscript."""
    require_admin(caps, "exporting a private key")
    if _certutil_candidate(caps) or _certobj_candidate(caps):
        return
    if caps.iis_major == 6:
        lacking = "cscript.exe (Windows Script Host), which the IIS.CertObj export fallback needs"
    else:
        iis = f"IIS {caps.iis_major}.{caps.iis_minor}" if caps.iis_major else "no IIS"
        lacking = f"an IIS 6 for the IIS.CertObj export fallback (it has {iis})"
    raise CapabilityMissing(
        caps.host,
        f"certutil -exportPFX, and {lacking}",
        hint="export the certificate with its private key by hand (IIS Manager → Directory Security → "
        "Server Certificate → Export to a .pfx file, or the Certificates MMC), include the chain, and keep "
        "the file safe",
    )


def _export_route(server: Server, thumbprint: str, *, site: str | None, installed: bool = True) -> _Route:
    """The first route to try: certutil (:func:`_certutil_candidate`), otherwise IIS.CertObj."""
    caps = server.capabilities
    _require_export(caps)
    if _certutil_candidate(caps):
        return _Route()
    return _certobj_route(server, thumbprint, site=site, installed=installed)


def _certobj_route(server: Server, thumbprint: str, *, site: str | None, installed: bool = True) -> _Route:
    """IIS.CertObj through a site that has ``thumbprint`` bound (``site`` names one: ServerComment or
    W3SVC/n). IIS.CertObj exports only a site's certificate (MS-IMSA ExportToBlob takes an
    InstanceName, W-IIS6-CERTOBJ-EXPORT)."""
    caps = server.capabilities
    found = server.iis.sites()
    if site:
        chosen = find_site(found, site, host=caps.host)
        if not installed:
            return _Route(pending=f"{chosen.path} (once it has {thumbprint} bound)")
        if chosen.cert_thumbprint != thumbprint or chosen.store_name.upper() != "MY":
            bound_to = (
                f"{chosen.store_name or '?'}\\{chosen.cert_thumbprint}"
                if chosen.cert_thumbprint
                else "no certificate"
            )
            raise PreconditionFailed(
                caps.host,
                f"{chosen.label} is bound to {bound_to}, not MY\\{thumbprint}; without "
                "certutil -exportPFX the key can only be exported through the site it is bound to "
                "(IIS.CertObj) — nothing was changed",
                hint=f"bind {thumbprint} to {chosen.label} first, or name the site that has it bound",
            )
        return _Route(site=chosen)
    bound = [s for s in found if s.cert_thumbprint == thumbprint and s.store_name.upper() == "MY"]
    if not bound:
        if not installed:
            return _Route(pending="the site it is bound to (steps 1–2 bind it; not in a dry run)")
        listing = "; ".join(f"{s.label}: {s.cert_thumbprint or 'none'}" for s in found) or "no sites"
        raise PreconditionFailed(
            caps.host,
            f"this server's certutil has no -exportPFX and no IIS site has MY\\{thumbprint} bound, so "
            f"IIS.CertObj cannot export it (sites: {listing}) — nothing was changed",
            hint=f"bind {thumbprint} to a site first (step 1 binds it to the work site: "
            "the IIS backend's bind), then export again; or export it by hand in the Certificates MMC",
        )
    # A started site first (the production site after step 2), then the lowest id: any bound site
    # exports the same certificate and key.
    return _Route(site=min(bound, key=lambda s: (not s.started, s.id)))


def plan_export(
    server: Server,
    thumbprint: str,
    *,
    chain: bool = True,
    installed: bool = True,
    site: str | None = None,
) -> list[Change]:
    """What :func:`export_pfx` would do (read-only: probes, reads MY and, without ``-exportPFX``, the sites).

    ``installed=False`` is a dry run's plan: step 1 installed nothing, so MY holds no certificate to
    read yet; the capability is still checked, so a dry run says now that the export could not work.
    The plan names the route: ``certutil -exportPFX`` or ``IIS.CertObj via W3SVC/n``.
    """
    caps, conn = server.capabilities, server.conn
    thumb = re.sub(r"[^0-9A-Fa-f]", "", thumbprint).upper()
    route = _export_route(server, thumb, site=site, installed=installed)
    label = route.label
    if route.certutil and _certobj_candidate(caps):
        # Not resolved to a site here: reading the sites uploads the IIS 6 helper (the plan stays read-only).
        label = (
            f"{route.label}; if certutil does not know the verb: IIS.CertObj through the site it is bound to"
        )
    before = "installed by step 1 (not in a dry run)"
    if installed:
        entry = _exportable_entry(conn, thumb)
        thumb, before = entry.thumbprint, f"on the server only (container {entry.key_container})"
    with_chain = chain or not route.certutil  # IIS.CertObj always adds the chain
    return [
        Change(
            f"MY\\{thumb}",
            "private key",
            before,
            "exported to a password-protected PFX"
            + (" with the chain" if with_chain else "")
            + f" ({label})",
        ),
        Change(
            f"{caps.host}:{conn.temp_dir}", "temporary PFX", None, "created, downloaded, deleted (read back)"
        ),
    ]


def _key_not_exportable(host: str, thumbprint: str) -> PreconditionFailed:
    return PreconditionFailed(
        host,
        f"the private key of {thumbprint} was created non-exportable, so Windows refuses to "
        f"export it ({winerror.name(winerror.NTE_BAD_KEY_STATE)} 0x{winerror.NTE_BAD_KEY_STATE:08X}) — nothing was changed",
        hint="keep the server itself as the key's only copy, or make a new request with an "
        "exportable key (IIS wizard: 'Mark the key as exportable') and have the certificate re-issued",
    )


def _one_time_password() -> str:
    """A fresh random password for one server-side export: 32 hex digits (nothing cmd or certutil
    reads specially), registered for redaction at once and never recorded (issue 12 item 6)."""
    value = secrets.token_hex(16)
    credentials.register(value)
    return value


def _probe_said(caps: Capabilities) -> str:
    return "said present" if caps.has_certutil("exportPFX") else "said absent"


def _run_export(
    server: Server,
    route: _Route,
    thumbprint: str,
    remote: str,
    one_time: str,
    *,
    chain: bool,
    site: str | None,
) -> tuple[_Route, str]:
    """Export MY\\<thumbprint> to ``remote`` protected by ``one_time`` by ``route``; when certutil fails
    as an unknown verb (E_INVALIDARG, W-CERTUTIL-UNKNOWN-VERB) and IIS.CertObj can exist, export by
    IIS.CertObj instead — nothing else has changed at that point. Returns the route that ran and why."""
    caps, conn, host = server.capabilities, server.conn, server.host
    if route.certutil:
        argv = ["certutil", "-p", one_time, "-exportPFX", "MY", thumbprint, remote]
        if not chain:
            argv.append("NoChain")
        what = f"export MY\\{thumbprint} to {remote} (certutil -exportPFX, one-time password)"
        result = conn.run(
            argv,
            check=False,
            what=what,
            timeout_s=120,
            secrets=[one_time],
            names=["certutil", "", ONE_TIME_PASSWORD],
        )
        if result.exit_code == 0:
            return route, (
                f"certutil -exportPFX ran on Windows {caps.windows_version or '?'} (its -? probe "
                f"{_probe_said(caps)}; the route is decided by use, and the PFX is proven here)"
            )
        code = winerror.hresult(result.exit_code)
        if code == winerror.NTE_BAD_KEY_STATE:
            raise _key_not_exportable(host, thumbprint)
        if code != E_INVALIDARG or not _certobj_candidate(caps):
            raise failed(conn, result, what)
        fallback = _certobj_route(server, thumbprint, site=site)
        reason = (
            f"certutil -exportPFX failed as an unknown verb (exit 0x{E_INVALIDARG:08X}; its -? probe "
            f"{_probe_said(caps)}), so {fallback.label} exported it; nothing else had changed"
        )
        route = fallback
    else:
        reason = f"certutil -exportPFX is not available (its -? probe {_probe_said(caps)}, Windows {caps.windows_version or '?'})"
    assert route.site is not None
    exported = server.iis.export_certificate(route.site, remote, password=one_time)
    if exported != thumbprint:
        raise VerificationFailed(
            host,
            f"{route.site.label} exported {exported or 'no certificate'}, not {thumbprint} "
            "(its binding changed meanwhile?)",
            hint="list the sites (server.iis.sites()) and export again",
        )
    return route, reason


def _left(conn: Connection, remote: str, deleted: bool) -> list[str]:
    left = list(getattr(conn, "remote_left", None) or ([] if deleted else [remote]))
    return left


def export_pfx(
    server: Server,
    thumbprint: str,
    *,
    password: str,
    chain: bool = True,
    anchors: Sequence[certs.Certificate] | None = None,
    site: str | None = None,
) -> ExportResult:
    """Export MY\\<thumbprint> with its key (and the chain) to a PFX on the server under a one-time
    password, bring it back, re-protect it here with ``password``, prove it, delete the server copy
    (also on failure) and read the deletion back.

    Route: ``certutil -p ONE-TIME -exportPFX MY THUMB out.pfx [NoChain]`` first when the probe or the
    Windows version says it can exist (:func:`_certutil_candidate`); when it fails as an unknown verb,
    or is not available, ``IIS.CertObj`` ``Export`` through the site that has the certificate bound
    (``site`` names it; default: a started site, else the lowest id) — the IIS backend's
    ``export_certificate``. IIS.CertObj always includes the chain. ``route`` and ``route_reason`` say
    which ran and why.

    ``password`` (the operator's) never leaves this process: the server sees only a random one-time
    password (registered for redaction, never recorded). The PFX is re-written here with
    :func:`opslib.certs.pfx.reprotect_pfx` in the protection the server's Windows can import
    (:func:`opslib.certs.pfx.pfx_encryption_for`: AES-256/SHA-256 from Server 2019, 3DES/SHA-1
    before) and proven with :func:`opslib.certs.check_pfx` with ``password`` (opens, key matches,
    intermediate and cross certificate inside) and by its algorithm OIDs. ``anchors`` (default: the
    server's Trusted Root certificates) let the check recognise a cross certificate by its self-signed twin.
    ``remote_deleted`` is True only when ``if exist`` read the server copy back as gone (W-DEL).
    """
    credentials.register(password)
    conn, host = server.conn, server.host
    conn.require_confidential("export the certificate and its private key to a PFX and bring it back")
    check_password(host, password)
    thumb = re.sub(r"[^0-9A-Fa-f]", "", thumbprint).upper()
    route = _export_route(server, thumb, site=site)
    entry = _exportable_entry(conn, thumb)
    if anchors is None:
        anchors = [e.certificate for e in trusted_roots(conn) if e.certificate is not None]
    one_time = _one_time_password()
    remote = remote_path(conn, ".pfx")
    deleted = False
    try:
        route, reason = _run_export(server, route, entry.thumbprint, remote, one_time, chain=chain, site=site)
        raw = download(conn, remote, what=f"bring the PFX {remote} back")
    finally:
        deleted = delete_remote(
            conn, remote, what=f"delete the server's copy of the PFX {remote} and check it is gone"
        )
    if route.site is not None:
        chain = True
    encryption = pfx_encryption_for(server.capabilities.windows_version)
    source = f"{host}:{remote}"
    try:
        data = reprotect_pfx(raw, one_time, password, encryption=encryption, source=source)
        check = certs.check_pfx(
            data,
            password,
            source=source,
            expected_thumbprint=entry.thumbprint,
            anchors=anchors,
            require_chain=chain,
        )
    except CertificateError as exc:
        raise VerificationFailed(host, f"the exported PFX does not open: {exc.problem}") from None
    problems = [*check.problems, *encryption_problems(data, encryption)]
    if problems:
        raise VerificationFailed(
            host,
            f"the exported PFX ({route.label}) is not a usable backup: " + "; ".join(problems),
            hint="if the cross certificate is missing, disable the G5 root (step 0) and export again",
        )
    return ExportResult(
        data,
        thumbprint=entry.thumbprint,
        check=check,
        remote_path=remote,
        remote_deleted=deleted,
        chain=chain,
        route=route.label,
        route_reason=reason,
        encryption=encryption,
        remote_left=_left(conn, remote, deleted),
    )


def finish(server: Server, step: ExportStep) -> dict[str, Any]:
    """Close the connection (its temp folder is removed and read back) and return the step's facts,
    with everything that stayed on the server in ``remote_left`` and what to do in ``remote_left_advice``."""
    server.close()
    facts = step.facts()
    left = list(dict.fromkeys([*facts.get("remote_left", []), *getattr(server.conn, "remote_left", [])]))
    facts["remote_left"] = left
    facts["remote_left_advice"] = [leftover_advice(p) for p in left]
    if step.done.exported is None:
        facts.setdefault("remote_deleted", True)
    return facts


# --- the step ------------------------------------------------------------------------------------------


def plan_target(
    backup_directory: str,
    *,
    host: str,
    site: str,
    thumbprint: str,
    run_dir: str = "",
    now_utc: _dt.datetime | None = None,
) -> backup.BackupTarget:
    """Where the PFX goes and whether that folder is usable (local; refuses before any connection
    when step 1 recorded no certificate)."""
    if not thumbprint:
        raise PreconditionFailed(
            host, "no new_thumbprint: step 1 has not recorded the new certificate", hint="run step 1 first"
        )
    return backup.plan_backup(
        backup_directory,
        host=host,
        site=site,
        thumbprint=thumbprint,
        now_utc=now_utc or _dt.datetime.now(_dt.UTC),
        evidence_root=Path(run_dir).parent if run_dir else None,
    )


@dataclass(frozen=True)
class ExportPlan:
    target: backup.BackupTarget
    thumbprint: str
    dry_run: bool
    changes: tuple[Change, ...]

    def rows(self) -> list[dict[str, Any]]:
        return [c.row() for c in self.changes]


def plan(
    server: Server, target: backup.BackupTarget, *, thumbprint: str, dry_run: bool = False
) -> ExportPlan:
    """What the export does on the server (a dry run: step 1 installed nothing, so MY is not read, but
    the route is still checked, so the plan says now whether the export could work)."""
    changes = plan_export(server, thumbprint, installed=not dry_run)
    return ExportPlan(target, thumbprint, dry_run, tuple(changes))


@dataclass(frozen=True)
class ExportDone:
    plan: ExportPlan
    exported: ExportResult | None  # None in a dry run

    def rows(self) -> list[dict[str, Any]]:
        return [self.exported.row()] if self.exported else [{"dry_run": "nothing exported"}]


def apply(server: Server, planned: ExportPlan, *, password_ref: str) -> ExportDone:
    """Export the PFX with the chain, bring it back and prove it (skipped in a dry run). The password
    is resolved from ``password_ref`` here and leaves this process only inside the export command."""
    if planned.dry_run:
        return ExportDone(planned, None)
    password = credentials.resolve(password_ref, purpose="PFX password")
    try:
        exported = export_pfx(server, planned.thumbprint, password=password)
    finally:
        del password
    return ExportDone(planned, exported)


@dataclass(frozen=True)
class ExportStep:
    """Step 3's outcome: the stored file (0600 in a 0700 folder) and the facts (never the PFX itself)."""

    done: ExportDone
    stored: backup.StoredBackup | None

    def rows(self) -> list[dict[str, Any]]:
        return [self.stored.row()] if self.stored else [{"dry_run": "nothing written"}]

    def facts(self) -> dict[str, Any]:
        exported = self.done.exported
        return {
            **(self.stored.facts() if self.stored else {"backup_file": "", "backup_sha256": ""}),
            "backup_thumbprint": exported.thumbprint if exported else "",
            **(exported.facts() if exported else {}),
            "backup_plan": self.done.plan.rows(),
        }


def verify(server: Server, done: ExportDone) -> ExportStep:
    """Write the proven PFX owner-only (never over an existing file) and read it back."""
    exported = done.exported
    if exported is None:
        return ExportStep(done, None)
    return ExportStep(done, backup.write_backup(exported.data, done.plan.target, host=server.host))
