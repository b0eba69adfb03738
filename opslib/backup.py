"""The key-pair backup on the operator's side: where the PFX goes, how it is written, how it is proven.

The seed's step 3 says the key-pair file must be kept safe and never lost (「確実にバックアップを取って
ください」). So the PFX is written owner-only (file 0600; a folder the kit creates is 0700), never into the
evidence root, never over an existing file, and read back before the step records it. The kit never
changes a folder it did not create: an existing folder (or the folder a symlink points to) that other
accounts can write to is refused, because anyone who can write there can replace or remove the key pair.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import PreconditionFailed, VerificationFailed

FILE_MODE = 0o600
FOLDER_MODE = 0o700


def folder_problem(folder: Path, *, evidence_root: Path | None = None) -> tuple[str, str] | None:
    """Why ``folder`` cannot take the backup, as ``(problem, hint)``; ``None`` when it can."""
    folder = folder.expanduser().resolve()
    if evidence_root is not None:
        root = evidence_root.expanduser().resolve()
        if folder == root or root in folder.parents:
            return (
                f"{folder} is inside the evidence root {root}",
                "keep the key pair out of the evidence: choose a folder outside it",
            )
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not a writable folder", "choose a folder this account can write to"
    if existing == folder:
        mode = stat.S_IMODE(folder.stat().st_mode)
        if mode & (stat.S_IWGRP | stat.S_IWOTH):
            return (
                f"{folder} (mode {oct(mode)}) can be written by other accounts",
                "the kit does not change folders it did not create: name a new folder (the kit creates it "
                "0700) or one only you can write to (chmod go-w)",
            )
    return None


@dataclass(frozen=True)
class BackupTarget:
    """Where the PFX will be written (nothing is written yet)."""

    folder: Path
    path: Path
    folder_exists: bool

    def row(self) -> dict[str, Any]:
        return {
            "backup_file": str(self.path),
            "folder": str(self.folder),
            "folder_exists": self.folder_exists,
        }


@dataclass(frozen=True)
class StoredBackup:
    """The PFX as read back from disk."""

    path: Path
    size: int
    sha256: str
    file_mode: int
    folder_mode: int

    def row(self) -> dict[str, Any]:
        return {
            "backup_file": str(self.path),
            "bytes": self.size,
            "sha256": self.sha256,
            "file_mode": oct(self.file_mode),
            "folder_mode": oct(self.folder_mode),
        }

    def facts(self) -> dict[str, Any]:
        return {"backup_file": str(self.path), "backup_sha256": self.sha256}


def _label(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-.") or "x"


def plan_backup(
    directory: str | os.PathLike[str],
    *,
    host: str,
    site: str,
    thumbprint: str,
    now_utc: datetime,
    evidence_root: Path | None = None,
) -> BackupTarget:
    """Name the backup ``<host>_<site>_<thumbprint prefix>_<UTC>.pfx`` in ``directory`` and check the folder.

    Raises :class:`PreconditionFailed` (nothing written) when the folder cannot take it.
    """
    folder = Path(directory).expanduser().resolve()
    problem = folder_problem(folder, evidence_root=evidence_root)
    if problem:
        raise PreconditionFailed(host, f"backup.directory: {problem[0]}", hint=problem[1])
    stamp = now_utc.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = "_".join(_label(part) for part in (host, site, thumbprint[:8], stamp))
    return BackupTarget(folder=folder, path=folder / f"{name}.pfx", folder_exists=folder.is_dir())


def write_backup(data: bytes, target: BackupTarget, *, host: str) -> StoredBackup:
    """Write ``data`` owner-only, never over an existing file, and prove it by reading it back."""
    problem = folder_problem(target.folder)  # again: the folder may have changed since the plan
    if problem:
        raise PreconditionFailed(host, f"backup.directory: {problem[0]}", hint=problem[1])
    created = not target.folder.exists()
    target.folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
    if created:
        target.folder.chmod(FOLDER_MODE)  # mkdir's mode is masked by the umask; this folder is ours
    path = target.path
    for n in range(2, 100):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
            break
        except FileExistsError:  # a second attempt within the same second: keep both files
            path = target.path.with_name(f"{target.path.stem}-{n}{target.path.suffix}")
    else:
        raise PreconditionFailed(host, f"{target.folder}: too many backups named {target.path.name}")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    expected = hashlib.sha256(data).hexdigest()
    stored = StoredBackup(
        path=path,
        size=path.stat().st_size,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        file_mode=stat.S_IMODE(path.stat().st_mode),
        folder_mode=stat.S_IMODE(target.folder.stat().st_mode),
    )
    others_write = bool(stored.folder_mode & (stat.S_IWGRP | stat.S_IWOTH))
    if (stored.sha256, stored.file_mode, others_write) != (expected, FILE_MODE, False):
        raise VerificationFailed(
            host,
            f"{path}: reads back sha256 {stored.sha256}, modes {oct(stored.file_mode)}/{oct(stored.folder_mode)}; "
            f"expected {expected}, file {oct(FILE_MODE)} in a folder only this account can write to",
            hint="check the disk and the folder's owner; the server still holds the certificate and key",
        )
    return stored
