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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import backup, certs, credentials, winerror
from ..errors import CapabilityMissing, CertificateError, PreconditionFailed, VerificationFailed
from ..iis import Change, Site, find_site
from ..server.probe import Capabilities, require_admin
from ..server.remote import delete_remote, download, failed, host_of, remote_path
from ..server.stores import StoreEntry, read_entry, trusted_roots

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
    "plan",
    "plan_export",
    "plan_target",
    "verify",
]


class ExportResult(bytes):
    """The verified PFX: *is* the PFX bytes (the contract's ``-> bytes``) and carries the facts.

    ``sha256``, ``thumbprint``, ``check`` (:class:`opslib.certs.PfxCheck`), ``remote_path`` (the
    server-side copy, deleted), ``chain`` and ``route`` (how it was exported). ``.data`` gives plain bytes.
    """

    sha256: str
    thumbprint: str
    check: certs.PfxCheck
    remote_path: str
    remote_deleted: bool
    chain: bool
    route: str  # "certutil -exportPFX" or "IIS.CertObj via W3SVC/n"

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
    ) -> ExportResult:
        obj = super().__new__(cls, data)
        obj.sha256 = hashlib.sha256(data).hexdigest().upper()
        obj.thumbprint = thumbprint
        obj.check = check
        obj.remote_path = remote_path
        obj.remote_deleted = remote_deleted
        obj.chain = chain
        obj.route = route
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
            "pfx_encryption": list(self.check.encryption),
            "server_copy_deleted": self.remote_deleted,
            "pfx_export_route": self.route,
        }

    def row(self) -> dict[str, Any]:
        return {
            **self.check.row(),
            "sha256": self.sha256,
            "route": self.route,
            "server_copy_deleted": self.remote_deleted,
        }


def check_password(host: str, password: str) -> None:
    if len(password) < 8:
        raise PreconditionFailed(host, "the PFX password must have at least 8 characters — nothing was sent")
    if password[0] in "-/" or "," in password or any(ch.isspace() for ch in password):
        # certutil reads a leading - or / as an option and (newer builds) a comma as a password list [U].
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


def _require_export(caps: Capabilities) -> None:
    """Refuse unless one export route can exist: certutil -exportPFX, or IIS 6 with cscript."""
    require_admin(caps, "exporting a private key")
    if caps.has_certutil("exportPFX") or (caps.iis_major == 6 and caps.cscript):
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
    """certutil when the probe found ``-exportPFX``; otherwise IIS.CertObj through a site that has
    ``thumbprint`` bound (``site`` names one: ServerComment or W3SVC/n). IIS.CertObj exports only a
    site's certificate (MS-IMSA ExportToBlob takes an InstanceName, windows-commands.md §5)."""
    caps = server.capabilities
    _require_export(caps)
    if caps.has_certutil("exportPFX"):
        return _Route()
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
            + f" ({route.label})",
        ),
        Change(f"{caps.host}:{conn.temp_dir}", "temporary PFX", None, "created, downloaded, deleted"),
    ]


def _key_not_exportable(host: str, thumbprint: str) -> PreconditionFailed:
    return PreconditionFailed(
        host,
        f"the private key of {thumbprint} was created non-exportable, so Windows refuses to "
        f"export it ({winerror.name(winerror.NTE_BAD_KEY_STATE)} 0x{winerror.NTE_BAD_KEY_STATE:08X}) — nothing was changed",
        hint="keep the server itself as the key's only copy, or make a new request with an "
        "exportable key (IIS wizard: 'Mark the key as exportable') and have the certificate re-issued",
    )


def export_pfx(
    server: Server,
    thumbprint: str,
    *,
    password: str,
    chain: bool = True,
    anchors: Sequence[certs.Certificate] | None = None,
    site: str | None = None,
) -> ExportResult:
    """Export MY\\<thumbprint> with its key (and the chain) to a PFX, bring it back, prove it, delete the
    server copy (also on failure).

    Route (:func:`plan_export` names it): ``certutil -p PASSWORD -exportPFX MY THUMB out.pfx [NoChain]``
    (certutil reference, windows-commands.md §5) when the probe found ``-exportPFX``; otherwise, on
    IIS 6 with cscript, ``IIS.CertObj`` ``Export`` through the site that has the certificate bound
    (``site`` names it; default: a started site, else the lowest id) — the IIS backend's ``export_certificate``.
    IIS.CertObj always includes the chain (``chain=False`` is honoured by certutil only); ``site`` is
    used on the IIS.CertObj route only.
    The password is registered for redaction before anything is sent and reaches the server only
    inside that one command. Verified locally with :func:`opslib.certs.check_pfx`: opens with the
    password, key matches, the intermediate and (with the chain) the cross certificate inside.
    ``anchors`` (default: the server's Trusted Root certificates) let the check recognise a cross
    certificate by its self-signed twin.
    """
    credentials.register(password)
    conn, host = server.conn, server.host
    conn.require_confidential("export the certificate and its private key to a PFX and bring it back")
    check_password(host, password)
    thumb = re.sub(r"[^0-9A-Fa-f]", "", thumbprint).upper()
    route = _export_route(server, thumb, site=site)
    entry = _exportable_entry(conn, thumb)
    if route.site is not None:
        chain = True
    if anchors is None:
        anchors = [e.certificate for e in trusted_roots(conn) if e.certificate is not None]
    remote = remote_path(conn, ".pfx")
    deleted = False
    try:
        if route.site is not None:
            exported = server.iis.export_certificate(route.site, remote, password=password)
            if exported != entry.thumbprint:
                raise VerificationFailed(
                    host,
                    f"{route.site.label} exported {exported or 'no certificate'}, not {entry.thumbprint} "
                    "(its binding changed meanwhile?)",
                    hint="list the sites (server.iis.sites()) and export again",
                )
        else:
            argv = ["certutil", "-p", password, "-exportPFX", "MY", entry.thumbprint, remote]
            if not chain:
                argv.append("NoChain")
            result = conn.run(
                argv,
                check=False,
                what=f"export MY\\{entry.thumbprint} to a PFX",
                timeout_s=120,
                secrets=[password],
                names=["certutil", "", "PFX password"],
            )
            if result.exit_code != 0:
                if winerror.hresult(result.exit_code) == winerror.NTE_BAD_KEY_STATE:
                    raise _key_not_exportable(host, entry.thumbprint)
                raise failed(conn, result, f"export MY\\{entry.thumbprint} to a PFX")
        data = download(conn, remote, what="bring the PFX back")
    finally:
        deleted = delete_remote(conn, remote)
    try:
        check = certs.check_pfx(
            data,
            password,
            source=f"{host}:{remote}",
            expected_thumbprint=entry.thumbprint,
            anchors=anchors,
            require_chain=chain,
        )
    except CertificateError as exc:
        raise VerificationFailed(host, f"the exported PFX does not open: {exc.problem}") from None
    if not check.ok:
        raise VerificationFailed(
            host,
            f"the exported PFX ({route.label}) is not a usable backup: " + "; ".join(check.problems),
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
    )


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
