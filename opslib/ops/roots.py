"""Step 0: no forbidden root (the G5 root, ``forbidden_roots``) may stay enabled in any physical
Trusted Root store — plan, apply (disable for all purposes, after a ``.reg`` backup), verify, restore.

The notebook calls :func:`before`, :func:`plan`, :func:`apply`, :func:`verify` and records
``verify(...).facts()``; :func:`disable_roots` / :func:`restore_roots` are the verbs underneath.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CapabilityMissing, PreconditionFailed, VerificationFailed
from ..iis import Change, Site, find_site, with_expiry
from ..server.probe import Capabilities, require_admin
from ..server.regfile import EMPTY_EKU, ENHKEY_USAGE, parse_reg_export, with_property
from ..server.remote import delete_remote, failed, remote_path
from ..server.stores import (
    CERTUTIL_STORE,
    STORE_KEYS,
    StoreEntry,
    check_roots_disabled,
    forbidden_entries,
    purposes_text,
    read_entries,
    read_entry,
    read_store,
    trusted_roots,
)

if TYPE_CHECKING:
    from ..server import Server

__all__ = [
    "RootsBefore",
    "RootsDone",
    "RootsPlan",
    "RootsResult",
    "apply",
    "before",
    "disable_roots",
    "plan",
    "plan_disable_roots",
    "restore_roots",
    "verify",
]

_CHANGE_COLUMNS = ["target", "field", "before", "after"]


def plan_disable_roots(entries: Iterable[StoreEntry]) -> list[Change]:
    """What :func:`disable_roots` would change (no remote command)."""
    return [
        Change(
            f"{e.store}\\{e.thumbprint}",
            "purposes (EKU property 9)",
            purposes_text(e),
            "disabled (no purposes)" if e.enabled else "unchanged: already disabled",
        )
        for e in entries
    ]


def _inf_disable_all_purposes() -> bytes:
    # certutil -repairstore PropertyInfFile, documented form ("[Properties]", `ID = "{hex}…"`, `ID = "{text}…"`
    # with `_continue_` lines) — certutil reference, -repairstore. Property 9 = the DER of an empty EKU
    # SEQUENCE (30 00): "no valid uses" per CertGetEnhancedKeyUsage [I]; that this equals the GUI's
    # "Disable all purposes" is [U] (docs/windows-behaviour.md W-EKU-EMPTY-DISABLES). [Version] as in public examples.
    return b'[Version]\r\nSignature = "$Windows NT$"\r\n\r\n[Properties]\r\n9 = "{hex}30 00"\r\n'


def disable_roots(
    server: Server,
    entries: Iterable[StoreEntry],
    *,
    backup_dir: Path,
    allow_registry_fallback: bool = False,
) -> list[Change]:
    """Disable every enabled entry for all purposes, after saving each key's ``.reg`` export.

    Per entry: export the certificate's key and save it in ``backup_dir`` (the run's evidence folder)
    BEFORE any change; ``certutil -repairstore`` with an INF setting property 9 to an empty EKU; read the
    key back (property 9 present and empty). An entry already disabled is recorded, not touched.
    ``allow_registry_fallback`` (when the server's certutil lacks ``-repairstore``) writes the Blob with
    ``reg add`` instead — [U, high risk] (docs/windows-behaviour.md W-EKU-EMPTY-DISABLES).
    Undo: :func:`restore_roots` with the saved files.
    """
    todo = list(entries)
    changes: list[Change] = []
    pending = [e for e in todo if e.enabled]
    for e in todo:
        if not e.enabled:
            changes.append(
                Change(f"{e.store}\\{e.thumbprint}", "purposes (EKU property 9)", "disabled", "disabled")
            )
    if not pending:
        return changes
    caps = server.capabilities
    conn = server.conn
    require_admin(caps, "disabling a root certificate")
    use_certutil = caps.has_certutil("repairstore")
    if not use_certutil and not allow_registry_fallback:
        raise CapabilityMissing(
            caps.host,
            "certutil -repairstore (needed to disable a root for all purposes)",
            hint="disable it by hand (Certificates MMC → Local Computer → Trusted Root Certification Authorities → "
            "Properties → 'Disable all purposes for this certificate'), or allow the registry fallback "
            "(writes the Blob with reg add; unverified on real Windows)",
        )
    backup_dir = Path(backup_dir)
    backup_dir.mkdir(parents=True, exist_ok=True)
    # 1. Back up every affected key first.
    current: list[tuple[StoreEntry, Path]] = []
    backups = read_entries(conn, [(e.store, e.thumbprint) for e in pending])  # one command line
    for e, (fresh, export) in zip(pending, backups, strict=True):
        if fresh is None or export is None:
            raise PreconditionFailed(
                caps.host,
                f"{e.store}\\{e.thumbprint} is no longer in the store — nothing was changed",
                hint="read the root stores again (trusted_roots) and plan again",
            )
        path = backup_dir / f"root-backup_{e.store}_{e.thumbprint}.reg"
        path.write_bytes(export)
        changes.append(Change(fresh.registry_key, "backup (.reg export)", None, path.name))
        current.append((fresh, path))
    # 2. Disable, 3. read back.
    for fresh, path in current:
        target = f"{fresh.store}\\{fresh.thumbprint}"
        if not fresh.enabled:
            changes.append(Change(target, "purposes (EKU property 9)", "disabled", "disabled"))
            continue
        if use_certutil:
            inf = remote_path(conn, ".inf")
            conn.upload(_inf_disable_all_purposes(), inf)
            options, name = CERTUTIL_STORE[fresh.store]
            try:
                # certutil [-enterprise|-grouppolicy] -repairstore Store CertId PropertyInfFile (certutil reference)
                result = conn.run(
                    ["certutil", *options, "-repairstore", name, fresh.thumbprint, inf],
                    check=False,
                    what=f"disable {target} for all purposes",
                )
            finally:
                delete_remote(conn, inf)
            if result.exit_code != 0:
                raise failed(
                    conn,
                    result,
                    f"disable {target} for all purposes",
                    hint=f"the key was saved to {path.name} before this step; restore_roots puts it back",
                )
        else:
            # reg add KEY /v Blob /t REG_BINARY /d HEX /f (reg add reference,
            # https://learn.microsoft.com/en-us/windows-server/administration/windows-commands/reg-add) [U, high risk:
            # CryptoAPI may cache the store; docs/windows-behaviour.md W-EKU-EMPTY-DISABLES].
            blob = with_property(fresh.blob, ENHKEY_USAGE, EMPTY_EKU)
            result = conn.run(
                [
                    "reg",
                    "add",
                    fresh.registry_key,
                    "/v",
                    "Blob",
                    "/t",
                    "REG_BINARY",
                    "/d",
                    blob.hex().upper(),
                    "/f",
                ],
                check=False,
                what=f"write the Blob of {target}",
            )
            if result.exit_code != 0:
                raise failed(conn, result, f"write the Blob of {target}", hint=f"backup: {path.name}")
        after, _ = read_entry(conn, fresh.store, fresh.thumbprint)
        if after is None or after.purposes != ():
            raise VerificationFailed(
                caps.host,
                f"{target} still shows {purposes_text(after) if after else 'no certificate'} after disabling",
                hint=f"restore it with restore_roots([{path.name!r}]) and disable it by hand in the Certificates MMC",
            )
        changes.append(
            Change(target, "purposes (EKU property 9)", purposes_text(fresh), "disabled (no purposes)")
        )
        if fresh.store == "GroupPolicy":
            changes.append(
                Change(
                    target, "note", None, "a Group Policy refresh may put this root back [I]: fix the GPO too"
                )
            )
    return changes


def restore_roots(server: Server, backups: Iterable[Path | str]) -> list[Change]:
    """Put back keys saved by :func:`disable_roots`: upload each ``.reg`` file, ``reg import`` it, read back."""
    caps = server.capabilities
    conn = server.conn
    require_admin(caps, "restoring a root certificate")
    changes: list[Change] = []
    for backup in backups:
        path = Path(backup)
        data = path.read_bytes()
        try:
            saved = parse_reg_export(data)
        except ValueError as exc:
            raise PreconditionFailed(caps.host, f"{path.name}: {exc} — nothing was changed") from None
        blobs = {k: v["Blob"][1] for k, v in saved.items() if "Blob" in v and v["Blob"][0] == "REG_BINARY"}
        if not blobs:
            raise PreconditionFailed(
                caps.host, f"{path.name} holds no certificate Blob — nothing was changed"
            )
        targets: list[tuple[str, str, str, bytes]] = []  # (store, thumbprint, before, saved blob)
        for key, blob in blobs.items():
            store = next((s for s, k in STORE_KEYS.items() if key.upper().startswith(k.upper() + "\\")), None)
            thumb = key.rsplit("\\", 1)[-1].upper()
            before, _ = read_entry(conn, store, thumb) if store else (None, None)
            if store is None or before is None:
                raise PreconditionFailed(
                    caps.host,
                    f"{path.name}: {key} is not a certificate of this server's stores — nothing was changed",
                    hint="a backup restores a certificate that is still there; check that the file belongs to this server",
                )
            targets.append((store, thumb, purposes_text(before), blob))
        remote = remote_path(conn, ".reg")
        conn.upload(data, remote)
        try:
            # reg import FILE (https://learn.microsoft.com/en-us/windows-server/administration/windows-commands/reg-import)
            result = conn.run(["reg", "import", remote], check=False, what=f"restore {path.name}")
        finally:
            delete_remote(conn, remote)
        if result.exit_code != 0:
            raise failed(conn, result, f"restore {path.name}")
        for store, thumb, before_text, blob in targets:
            after, _ = read_entry(conn, store, thumb)
            if after is None or after.blob != blob:
                raise VerificationFailed(
                    caps.host,
                    f"{store}\\{thumb} does not hold the saved Blob after reg import of {path.name}",
                    hint="import the file by hand (regedit) and check the certificate in the Certificates MMC",
                )
            changes.append(
                Change(f"{store}\\{thumb}", "purposes (EKU property 9)", before_text, purposes_text(after))
            )
    return changes


# --- the step ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RootsBefore:
    """What step 0 reads first: the capabilities (IIS backend checked), every root, the forbidden ones."""

    capabilities: Capabilities
    roots: tuple[StoreEntry, ...]
    forbidden: tuple[StoreEntry, ...]
    forbidden_roots: tuple[str, ...]
    iis_backend: str = ""  # the backend the probe chose (IIS 6 / IIS 7-10), recorded in run.json

    def rows(self) -> list[dict[str, Any]]:
        return [e.row() for e in self.roots]

    def forbidden_rows(self) -> list[dict[str, Any]]:
        return [e.row() for e in self.forbidden]


@dataclass(frozen=True)
class RootsPlan:
    before: RootsBefore
    changes: tuple[Change, ...]

    def rows(self) -> list[dict[str, Any]]:
        return [c.row() for c in self.changes]


@dataclass(frozen=True)
class RootsDone:
    plan: RootsPlan
    changes: tuple[Change, ...]  # empty in a dry run or with nothing to do
    backups: tuple[str, ...]  # names of the .reg backups in the run folder
    dry_run: bool

    def rows(self) -> list[dict[str, Any]]:
        return [c.row() for c in self.changes]


@dataclass(frozen=True)
class RootsResult:
    """Step 0's outcome: the read-back and the snapshot of the sites before anything else changes."""

    done: RootsDone
    capabilities: Capabilities
    codepage: int
    forbidden_after: tuple[StoreEntry, ...]
    sites: tuple[Site, ...] = field(default_factory=tuple)
    production: Site | None = None
    work: Site | None = None

    def check_rows(self) -> list[dict[str, Any]]:
        return [e.row() for e in self.forbidden_after]

    def site_rows(self) -> list[dict[str, Any]]:
        return [s.row() for s in self.sites]

    def facts(self) -> dict[str, Any]:
        production, work = self.production, self.work
        return {
            "server": self.capabilities.row(),
            "iis_backend": self.done.plan.before.iis_backend,
            "codepage": self.codepage,
            "forbidden_roots_found": self.done.plan.before.forbidden_rows(),
            "forbidden_roots_disabled": self.done.rows(),
            "root_backups": list(self.done.backups),
            "forbidden_roots_planned": self.done.plan.rows(),
            "sites_before": self.site_rows(),
            "production_site_path": production.path if production else "",
            "work_site_path": work.path if work else "",
            "production_thumbprint_before": production.cert_thumbprint if production else "",
            "production_not_after_utc_before": production.cert_not_after_utc if production else None,
            "production_secure_bindings_before": list(production.secure_bindings) if production else [],
        }


def before(server: Server, *, forbidden_roots: Iterable[str] = ()) -> RootsBefore:
    """Probe (refusing a server without an IIS backend, before anything changes) and read every
    physical Trusted Root store; pick out the forbidden entries."""
    caps = server.capabilities
    backend = server.iis  # an IIS version without a backend is refused here, before anything changes
    roots = trusted_roots(server.conn)
    extra = tuple(forbidden_roots)
    return RootsBefore(caps, tuple(roots), tuple(forbidden_entries(roots, extra)), extra, backend.name)


def plan(server: Server, found: RootsBefore) -> RootsPlan:
    """What disabling changes, from → to (no remote command)."""
    return RootsPlan(found, tuple(plan_disable_roots(found.forbidden)))


def apply(server: Server, planned: RootsPlan, *, backup_dir: str | Path, dry_run: bool = False) -> RootsDone:
    """Disable the forbidden roots (a ``.reg`` backup of each in ``backup_dir`` first); a dry run, or
    nothing to do, changes nothing."""
    folder = Path(backup_dir or ".")
    changes: list[Change] = []
    if not dry_run and planned.changes:
        changes = disable_roots(server, planned.before.forbidden, backup_dir=folder)
    backups = tuple(sorted(p.name for p in folder.glob("root-backup_*.reg")))
    return RootsDone(planned, tuple(changes), backups, dry_run)


def verify(
    server: Server, done: RootsDone, *, sites: Sequence[Site], production_site: str, work_site: str
) -> RootsResult:
    """Read the root stores back (an enabled forbidden root raises unless dry run) and take the
    snapshot of ``sites`` (read before any change, e.g. by the preflight) with each certificate's expiry."""
    forbidden_after = check_roots_disabled(
        trusted_roots(server.conn),
        forbidden=done.plan.before.forbidden_roots,
        host=server.host,
        dry_run=done.dry_run,
    )
    personal = read_store(server.conn, "MY")  # gives each bound certificate's expiry
    found = with_expiry(sites, {e.thumbprint: e.summary.not_after_utc for e in personal})
    return RootsResult(
        done=done,
        capabilities=done.plan.before.capabilities,
        codepage=int(getattr(server.conn, "codepage", 0) or 0),
        forbidden_after=tuple(forbidden_after),
        sites=tuple(found),
        production=find_site(found, production_site, host=server.host),
        work=find_site(found, work_site, host=server.host),
    )
