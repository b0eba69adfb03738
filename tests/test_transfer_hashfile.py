"""``certutil -hashfile`` after a transfer: no silent downgrade (docs/windows-behaviour.md W-CERTUTIL-HASHFILE,
W-CERTUTIL-HASHFILE-HELD, W-CERTUTIL-HASHFILE-EMPTY).

Real Windows fails ``-hashfile`` on a file another process holds (ERROR_SHARING_VIOLATION, an antivirus
scanning the fresh file) and on a zero-byte file (ERROR_FILE_INVALID). The rehearsal host does both
(``host.extra["hashfile_held_reads"]``; empty files); the kit retries the first, never hashes the second,
and decides "no SHA-256 here" only on an exit code that says the algorithm or verb is absent.
"""

from __future__ import annotations

import json
import os
import secrets as random
from pathlib import Path

import pytest
import yaml
from conftest import REHEARSAL_PASSWORD, make_bare_host

from opslib import cli, rehearsal
from opslib import winrm as transport
from opslib.rehearsal import cmd
from opslib.runbook.chores import size_only_checks
from opslib.winrm import transfer


def _connect(r: rehearsal.Rehearsal, run_dir: Path | None = None) -> transport.Connection:
    return transport.connect(
        r.url,
        transport="basic",
        username=r.user,
        password=REHEARSAL_PASSWORD,
        host_label="web01",
        allow_unencrypted_basic=True,
        state_file=run_dir / transport.STATE_FILE if run_dir else None,
    )


def _hashes(host: object) -> list[int]:
    return [h["exit_code"] for h in host.history if "-hashfile" in h["command"]]  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transfer, "HASHFILE_RETRY_WAIT_S", 0.05)


def test_the_rehearsal_host_fails_hashfile_on_a_held_and_on_an_empty_file() -> None:
    host = make_bare_host(windows_version="6.1.7601")
    host.extra["hashfile_held_reads"] = 1
    assert cmd.execute(host, r"mkdir C:\t", codepage=437).exit_code == 0
    host.write_file(r"C:\t\x.b64", b"-----BEGIN CERTIFICATE-----\r\nAAEC\r\n-----END CERTIFICATE-----\r\n")
    host.write_file(r"C:\t\empty.bin", b"")
    assert cmd.execute(host, r"certutil -f -decode C:\t\x.b64 C:\t\x.bin", codepage=437).exit_code == 0
    held = cmd.execute(host, r"certutil -hashfile C:\t\x.bin SHA256", codepage=437)
    assert held.exit_code & 0xFFFFFFFF == 0x80070020  # ERROR_SHARING_VIOLATION while the "antivirus" holds it
    assert cmd.execute(host, r"certutil -hashfile C:\t\x.bin SHA256", codepage=437).exit_code == 0  # let go
    empty = cmd.execute(host, r"certutil -hashfile C:\t\empty.bin SHA256", codepage=437)
    assert empty.exit_code & 0xFFFFFFFF == 0x800703EE  # ERROR_FILE_INVALID


def test_a_held_file_is_hashed_again_and_checked_by_sha256(tmp_path: Path) -> None:
    host = make_bare_host(windows_version="6.1.7601")
    host.extra["hashfile_held_reads"] = 1
    with rehearsal.start(host, password=REHEARSAL_PASSWORD) as r, _connect(r, tmp_path) as conn:
        data = os.urandom(3000)
        assert conn.upload(data, conn.temp_dir + "\\a.bin").verified_by == "size+sha256"
        assert conn.size_only_transfers == []
    assert [c & 0xFFFFFFFF for c in _hashes(host)] == [0x80070020, 0]
    assert size_only_checks(tmp_path) == []


def test_a_file_held_longer_than_the_retries_is_checked_by_size_and_said_so_and_later_ones_by_sha256(
    tmp_path: Path,
) -> None:
    host = make_bare_host(windows_version="6.1.7601")
    host.extra["hashfile_held_reads"] = transfer.HASHFILE_TRIES
    with rehearsal.start(host, password=REHEARSAL_PASSWORD) as r, _connect(r, tmp_path) as conn:
        held_path = conn.temp_dir + "\\held.bin"
        assert conn.upload(os.urandom(2000), held_path).verified_by == "size"
        (line,) = conn.size_only_transfers
        assert (
            held_path in line
            and "ERROR_SHARING_VIOLATION" in line
            and f"{transfer.HASHFILE_TRIES} times" in line
        )
        host.extra["hashfile_held_reads"] = 0  # the scanner is done: the next transfer is hashed again
        assert conn.upload(os.urandom(2000), conn.temp_dir + "\\next.bin").verified_by == "size+sha256"
    state = json.loads((tmp_path / transport.STATE_FILE).read_text(encoding="utf-8"))
    assert state["hashfile_sha256"] is True  # one held file never says "no SHA-256 on this server"
    (said,) = size_only_checks(tmp_path)
    assert said.startswith(f"upload {held_path}: checked by size only") and "0x80070020" in said


def test_an_empty_file_is_not_hashed(tmp_path: Path) -> None:
    host = make_bare_host(windows_version="6.1.7601")
    with rehearsal.start(host, password=REHEARSAL_PASSWORD) as r, _connect(r, tmp_path) as conn:
        assert conn.upload(b"", conn.temp_dir + "\\empty.bin").verified_by == "size"
        assert conn.download(conn.temp_dir + "\\empty.bin") == b""
        assert conn.size_only_transfers == []
    assert _hashes(host) == []  # certutil would fail (ERROR_FILE_INVALID); 0 bytes fix the content anyway
    assert size_only_checks(tmp_path) == []


def test_server_2003_without_sha256_is_decided_once_and_said_for_the_run(tmp_path: Path) -> None:
    host = make_bare_host()  # Server 2003: -hashfile SHA256 exits NTE_BAD_ALGID
    with rehearsal.start(host, password=REHEARSAL_PASSWORD) as r, _connect(r, tmp_path) as conn:
        for n in range(3):
            assert conn.upload(os.urandom(500), conn.temp_dir + f"\\{n}.bin").verified_by == "size"
    assert [c & 0xFFFFFFFF for c in _hashes(host)] == [0x80090008]  # once: the code says "no such algorithm"
    (said,) = size_only_checks(tmp_path)
    assert said.startswith("every file transfer was checked by size only") and "NTE_BAD_ALGID" in said


def test_a_run_that_fell_back_to_size_says_so_in_run_json_the_console_and_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPSLIB_STEP_ENGINE", "inprocess")
    winrm_pw, pfx_pw = f"W{random.token_urlsafe(15)}", f"P{random.token_urlsafe(15)}"
    monkeypatch.setenv("OPSLIB_HF_WINRM", winrm_pw)
    monkeypatch.setenv("OPSLIB_HF_PFX", pfx_pw)
    with rehearsal.start(scenario="iis10", password=winrm_pw, workdir=tmp_path / "host") as reh:
        reh.host.extra["hashfile_held_reads"] = 99  # an antivirus that never lets go of a fresh file
        data = reh.params(
            password_env="OPSLIB_HF_WINRM", pfx_password_env="OPSLIB_HF_PFX", backup_dir=str(tmp_path / "b")
        )
        params_file = tmp_path / "params" / "web01.yaml"
        params_file.parent.mkdir()
        params_file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        code = cli.main(["run", str(params_file), "--evidence-root", str(tmp_path / "evidence"), "--yes"])
    out = capsys.readouterr().out
    assert code == 0, out
    (run_json,) = (tmp_path / "evidence").glob("*/run.json")
    checks = json.loads(run_json.read_text(encoding="utf-8"))["size_only_checks"]
    assert checks and all("checked by size only" in c and "ERROR_SHARING_VIOLATION" in c for c in checks)
    assert f"CHECKED BY SIZE ONLY: {checks[0]}" in out
    report = (run_json.parent / "report.html").read_text(encoding="utf-8")
    assert "SHA-256 failed, checked by size (listed in run.json)" in report
