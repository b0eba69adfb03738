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

from .. import backup, certs, credentials
from ..certs.pfx import encryption_problems, pfx_encryption_for, reprotect_pfx
from ..errors import (
    CertificateError,
    PreconditionFailed,
    VerificationFailed,
)
from ..iis import Change
from ..server.remote import delete_remote, download, host_of, remote_path
from ..server.stores import StoreEntry, read_entry, trusted_roots
from ..winrm.transfer import leftover_advice
from .pfx_routes import (
    CERTUTIL_ROUTE,
    certobj_candidate,
    first_route,
    left_on_server,
    run_export,
)

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
    "one_time_password",
    "plan",
    "plan_export",
    "plan_target",
    "verify",
]


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
    """Refuse a PFX password outside :data:`opslib.credentials.PFX_PASSWORD_RULE` (the one rule)."""
    problem = credentials.pfx_password_problem(password)
    if problem:
        raise PreconditionFailed(host, f"{problem} — nothing was sent", hint=credentials.PFX_PASSWORD_RULE)


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
    route = first_route(server, thumb, site=site, installed=installed)
    label = route.label
    if route.certutil and certobj_candidate(caps):
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


def one_time_password() -> str:
    """A fresh random password for one server-side export: 32 hex digits (nothing cmd or certutil
    reads specially), registered for redaction at once and never recorded: the server-side PFX is
    protected only by it, and the PFX kept here is re-protected with the operator's password."""
    value = secrets.token_hex(16)
    credentials.register(value)
    return value


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
    Windows version says it can exist (:func:`certutil_candidate`); when it fails as an unknown verb,
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
    route = first_route(server, thumb, site=site)
    entry = _exportable_entry(conn, thumb)
    if anchors is None:
        anchors = [e.certificate for e in trusted_roots(conn) if e.certificate is not None]
    one_time = one_time_password()
    remote = remote_path(conn, ".pfx")
    deleted = False
    try:
        route, reason = run_export(server, route, entry.thumbprint, remote, one_time, chain=chain, site=site)
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
        remote_left=left_on_server(conn, remote, deleted),
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
