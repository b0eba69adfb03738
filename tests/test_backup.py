"""opslib.backup: where the PFX goes, owner-only writes, never over an existing file."""

from __future__ import annotations

import hashlib
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opslib import backup
from opslib.errors import PreconditionFailed

NOW = datetime(2026, 11, 26, 19, 45, 0, tzinfo=UTC)
THUMB = "A0B8E41A966C52BE187272F92792A04DA1FF4C6F"


def _plan(folder: Path, **kw: object) -> backup.BackupTarget:
    return backup.plan_backup(
        folder, host="web01", site="www1.example.jp", thumbprint=THUMB, now_utc=NOW, **kw
    )  # type: ignore[arg-type]


def test_the_name_carries_host_site_thumbprint_prefix_and_utc(tmp_path: Path) -> None:
    target = _plan(tmp_path / "keys")
    assert target.path.name == "web01_www1.example.jp_A0B8E41A_20261126T194500Z.pfx"
    assert not target.folder_exists and not target.folder.exists()  # planning writes nothing


def test_hostile_characters_do_not_leave_the_folder(tmp_path: Path) -> None:
    target = backup.plan_backup(tmp_path, host="../../etc", site="a/b c", thumbprint=THUMB, now_utc=NOW)
    assert target.path.parent == tmp_path.resolve()
    assert target.path.name.startswith("etc_a-b-c_A0B8E41A_")


def test_a_folder_inside_the_evidence_root_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PreconditionFailed, match=r"backup.directory: .*keys is inside the evidence root"):
        _plan(tmp_path / "evidence" / "keys", evidence_root=tmp_path / "evidence")


def test_a_folder_nobody_can_create_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(PreconditionFailed, match=r"is not a writable folder"):
        _plan(blocker / "keys")


def test_the_backup_is_owner_only_and_read_back(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    stored = backup.write_backup(b"pfx-bytes", _plan(folder), host="web01")
    assert stored.path.read_bytes() == b"pfx-bytes"
    assert stat.S_IMODE(stored.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755  # a folder the kit did not create is left as it was
    assert stored.facts() == {
        "backup_file": str(stored.path),
        "backup_sha256": hashlib.sha256(b"pfx-bytes").hexdigest(),
    }


def test_a_second_backup_in_the_same_second_keeps_both(tmp_path: Path) -> None:
    target = _plan(tmp_path / "keys")
    first = backup.write_backup(b"one", target, host="web01")
    second = backup.write_backup(b"two", target, host="web01")
    assert first.path != second.path and second.path.name.endswith("-2.pfx")
    assert first.path.read_bytes() == b"one" and second.path.read_bytes() == b"two"


def test_a_folder_the_kit_creates_is_owner_only(tmp_path: Path) -> None:
    stored = backup.write_backup(b"k", _plan(tmp_path / "new" / "keys"), host="web01")
    assert stat.S_IMODE(stored.path.parent.stat().st_mode) == 0o700


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o775, 0o757])
def test_a_folder_others_can_write_is_refused_and_left_unchanged(tmp_path: Path, mode: int) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    with pytest.raises(PreconditionFailed, match=r"can be written by other accounts.*chmod go-w"):
        _plan(shared)
    assert stat.S_IMODE(shared.stat().st_mode) == mode


def test_a_symlink_to_a_shared_folder_is_refused_and_its_target_unchanged(tmp_path: Path) -> None:
    shared = tmp_path / "tmp-like"
    shared.mkdir()
    shared.chmod(0o1777)
    link = tmp_path / "keys"
    link.symlink_to(shared)
    with pytest.raises(
        PreconditionFailed, match=r"tmp-like \(mode 0o1777\) can be written by other accounts"
    ):
        _plan(link)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777


def test_a_folder_made_shared_after_the_plan_is_refused_at_write(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    folder.mkdir()
    folder.chmod(0o700)
    target = _plan(folder)
    folder.chmod(0o777)
    with pytest.raises(PreconditionFailed, match=r"can be written by other accounts"):
        backup.write_backup(b"k", target, host="web01")
    assert list(folder.iterdir()) == []
