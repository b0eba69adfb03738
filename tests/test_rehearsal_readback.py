"""The rehearsal host shows what real cmd and certutil do when a delete or a capability probe cannot be trusted.

Everything runs through :func:`opslib.rehearsal.cmd.execute`, the interpreter behind the WS-Management
endpoint. The behaviours and their sources are the rows of docs/windows-behaviour.md named in each test.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_bare_host

from opslib import rehearsal
from opslib.ops.export import export_pfx
from opslib.rehearsal import cmd, scenarios
from opslib.rehearsal.host import Host
from opslib.rehearsal.programs import stores
from opslib.server import Server
from opslib.winrm import connect

LOCKED_MSG = b"The process cannot access the file because it is being used by another process.\r\n"
E_INVALIDARG = -2147024809  # 0x80070057


def run(host: Host, line: str) -> tuple[int, bytes, bytes]:
    result = cmd.execute(host, line, codepage=host.default_codepage)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def host() -> Host:
    h = make_bare_host()
    cmd.make_dirs(h, r"C:\t x\sub")
    h.write_file(r"C:\t x\a.pfx", b"key\r\n")
    h.write_file(r"C:\t x\sub\b.b64", b"copy\r\n")
    return h


# --- DEL (rows W-DEL, W-DEL-MISSING, W-DEL-NOPATH) ------------------------------------------------------


def test_del_of_a_file_held_open_exits_0_and_the_file_stays(host: Host) -> None:
    host.locked_files.add(r"c:\t x\*.pfx")
    code, out, err = run(host, r'del /f /q "C:\t x\a.pfx"')
    assert (code, out) == (0, b"")
    assert err == b"C:\\t x\\a.pfx\r\n" + LOCKED_MSG
    assert host.read_file(r"C:\t x\a.pfx") == b"key\r\n"


def test_del_of_a_file_nobody_holds_removes_it(host: Host) -> None:
    host.locked_files.add(r"c:\t x\*.pfx")  # only .pfx files are held
    assert run(host, r'del /f /q "C:\t x\sub\b.b64"') == (0, b"", b"")
    assert host.read_file(r"C:\t x\sub\b.b64") is None


def test_del_wildcard_skips_held_files_and_removes_the_others(host: Host) -> None:
    assert run(host, r'>"C:\t x\c.pfx" echo other')[0] == 0
    host.locked_files.add(r"c:\t x\a.pfx")
    code, _, err = run(host, r'del /f /q "C:\t x\*.pfx"')
    assert code == 0 and err.count(LOCKED_MSG) == 1
    assert host.read_file(r"C:\t x\a.pfx") is not None and host.read_file(r"C:\t x\c.pfx") is None


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (r'del /f /q "C:\t x\gone.pfx"', (0, b"", b"Could Not Find C:\\t x\\gone.pfx\r\n")),
        (r'del /f /q "C:\t x\*.none"', (0, b"", b"Could Not Find C:\\t x\\*.none\r\n")),
        (r'del /f /q "C:\no such\x.pfx"', (1, b"", b"The system cannot find the path specified.\r\n")),
        ("del /f /q", (1, b"", b"The syntax of the command is incorrect.\r\n")),
    ],
)
def test_del_statuses(host: Host, line: str, expected: tuple[int, bytes, bytes]) -> None:
    assert run(host, line) == expected


# --- IF EXIST (row W-IF-EXIST) --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "code", "out"),
    [
        (r'if exist "C:\t x\a.pfx" (exit /b 1)', 1, b""),
        (r'if exist "C:\t x\gone.pfx" (exit /b 1)', 0, b""),
        (r'if not exist "C:\t x\gone.pfx" (exit /b 3)', 3, b""),
        (r'if not exist "C:\t x\a.pfx" (exit /b 3)', 0, b""),
        (r'if exist "C:\t x\a.pfx" exit /b 7', 7, b""),
        (r'if exist "C:\t x\sub" (exit /b 4)', 4, b""),  # a folder exists too
        (r'if exist "C:\t x\*.pfx" (exit /b 5)', 5, b""),
        (r'if exist "C:\t x\*.none" (exit /b 5)', 0, b""),
        (r'if exist "C:\t x\gone.pfx" (exit /b 1) else (echo gone)', 0, b"gone\r\n"),
        (r'if exist "C:\t x\a.pfx" (echo here & exit /b 6) else echo gone', 6, b"here \r\n"),
        # Without parentheses the rest of the line is the command and ELSE is plain text (as in cmd).
        (r'if exist "C:\t x\a.pfx" echo x else y', 0, b"x else y\r\n"),
    ],
)
def test_if_exist_exit_codes(host: Host, line: str, code: int, out: bytes) -> None:
    assert run(host, line)[:2] == (code, out)


def test_if_exist_proves_a_delete_only_when_the_file_is_really_gone(host: Host) -> None:
    prove = r'del /f /q "C:\t x\a.pfx" & if exist "C:\t x\a.pfx" (exit /b 1)'
    host.locked_files.add(r"c:\t x\a.pfx")
    assert run(host, prove)[0] == 1  # del said nothing useful; the read-back did
    host.locked_files.clear()
    assert run(host, prove) == (0, b"", b"")
    assert host.read_file(r"C:\t x\a.pfx") is None


def test_if_block_followed_by_other_text_is_refused_not_guessed(host: Host) -> None:
    code, _, err = run(host, r'if exist "C:\t x\a.pfx" (echo a) & echo b')
    assert code == 1 and b"not emulated" in err


def test_a_line_over_8191_characters_is_refused_before_anything_runs(host: Host) -> None:
    chunk = "A" * (8191 - len(r'>>"C:\t x\l.b64" echo '))
    assert run(host, rf'>>"C:\t x\l.b64" echo {chunk}')[0] == 0  # exactly 8191: runs
    code, out, err = run(host, rf'>>"C:\t x\m.b64" echo {chunk}B')
    assert (code, out, err) == (1, b"", b"The input line is too long.\r\n")
    assert host.read_file(r"C:\t x\m.b64") is None


# --- RMDIR (rows W-RMDIR-SQ, W-RMDIR-SQ-LOCKED) ----------------------------------------------------------


def test_rmdir_s_q_with_a_held_file_removes_the_rest_and_leaves_that_file(host: Host) -> None:
    assert run(host, r'mkdir "C:\t x\deep\er" && >"C:\t x\deep\er\k.pfx" echo k')[0] == 0
    host.locked_files.add(r"c:\t x\deep\er\k.pfx")
    code, out, err = run(host, r'rmdir /s /q "C:\t x"')
    assert (code, out) == (0, b"")  # [assumed] the worst case: nothing says it failed
    assert err == b"C:\\t x\\deep\\er\\k.pfx\r\n" + LOCKED_MSG
    assert host.read_file(r"C:\t x\deep\er\k.pfx") == b"k\r\n"
    assert host.read_file(r"C:\t x\a.pfx") is None and host.read_file(r"C:\t x\sub\b.b64") is None
    assert host.is_dir(r"C:\t x\deep\er") and host.is_dir(r"C:\t x") and not host.is_dir(r"C:\t x\sub")
    assert run(host, r'if exist "C:\t x" (exit /b 1)')[0] == 1  # the read-back tells the truth


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (r'rmdir "C:\t x"', (145, b"The directory is not empty.\r\n")),
        (r'rmdir /s /q "C:\t x\a.pfx"', (267, b"The directory name is invalid.\r\n")),
        (r'rmdir /s /q "C:\gone"', (2, b"The system cannot find the file specified.\r\n")),
        (r'rmdir /s /q "C:\gone\deeper"', (3, b"The system cannot find the path specified.\r\n")),
        (r'rmdir /s /q "C:\t x"', (0, b"")),
    ],
)
def test_rmdir_statuses(host: Host, line: str, expected: tuple[int, bytes]) -> None:
    code, _, err = run(host, line)
    assert (code, err) == expected


# --- scenarios ------------------------------------------------------------------------------------------


def build(name: str, tmp_path: Path) -> Host:
    return scenarios.build_host(name, workdir=tmp_path / "work")


def test_pfx_locked_scenario_keeps_the_exported_pfx_in_temp(tmp_path: Path) -> None:
    host = build("pfx-locked", tmp_path)
    folder = host.env["TEMP"] + r"\opslib-0123456789ab"
    pfx = folder + r"\opslib-cafe.pfx"
    thumb = host.extra["current_thumbprint"]
    assert run(host, f'mkdir "{folder}"')[0] == 0
    assert run(host, f'certutil -p pw -exportPFX MY {thumb} "{pfx}"')[0] == 0
    assert run(host, f'del /f /q "{pfx}"')[0] == 0
    assert host.read_file(pfx) is not None
    assert run(host, f'rmdir /s /q "{folder}"')[0] == 0
    assert host.read_file(pfx) is not None and host.is_dir(folder)
    assert run(host, f'if exist "{pfx}" (exit /b 1)')[0] == 1
    # Only the temp folder's PFX files are held: the same file elsewhere goes, and so do other files.
    assert run(host, f'certutil -p pw -exportPFX MY {thumb} "C:\\x.pfx" && del /f /q "C:\\x.pfx"')[0] == 0
    assert host.read_file("C:\\x.pfx") is None
    assert run(host, f'>"{folder}\\t0001.b64" echo x && del /f /q "{folder}\\t0001.b64"') == (0, b"", b"")
    assert host.read_file(folder + r"\t0001.b64") is None


def test_b64_locked_scenario_keeps_staging_copies(tmp_path: Path) -> None:
    host = build("b64-locked", tmp_path)
    stage = host.env["TEMP"] + r"\t0001.b64"
    assert run(host, f'>"{stage}" echo QUJD && del /f /q "{stage}"')[0] == 0
    assert host.read_file(stage) == b"QUJD \r\n"  # echo before " &&" keeps the space, as cmd does


def test_default_scenario_locks_nothing(tmp_path: Path) -> None:
    host = build("default", tmp_path)
    assert host.locked_files == set()
    assert "certutil_probe_lies" not in host.extra and "certutil_probe_denies" not in host.extra


def _export(host: Host) -> tuple[int, bytes, bytes]:
    out = host.env["TEMP"] + r"\probe.pfx"
    return run(host, f'certutil -f -p pw -exportPFX MY {host.extra["current_thumbprint"]} "{out}"')


def _hashfile(host: Host) -> tuple[int, bytes, bytes]:
    assert run(host, r'>"C:\known.txt" echo abc')[0] == 0
    return run(host, r'certutil -hashfile "C:\known.txt" SHA1')


@pytest.mark.parametrize(
    ("scenario", "verb", "use", "help_ok", "use_ok"),
    [
        ("exportpfx-probe-lies", "exportPFX", _export, True, False),
        ("exportpfx-probe-denies", "exportPFX", _export, False, True),
        ("hashfile-probe-lies", "hashfile", _hashfile, True, False),
        ("hashfile-probe-denies", "hashfile", _hashfile, False, True),
        ("default", "exportPFX", _export, True, True),
        ("default", "hashfile", _hashfile, True, True),
    ],
)
def test_probe_scenarios_make_help_and_use_disagree(
    tmp_path: Path, scenario: str, verb: str, use: object, help_ok: bool, use_ok: bool
) -> None:
    host = build(scenario, tmp_path)
    help_code, help_out, _ = run(host, f"certutil -{verb} -?")
    assert (help_code == 0) is help_ok
    if not help_ok:
        assert help_code == E_INVALIDARG and help_out.startswith(
            f"CertUtil: Unknown arg: -{verb}\r\n".encode()
        )
    use_code, use_out, _ = use(host)  # type: ignore[operator]
    assert (use_code == 0) is use_ok
    if not use_ok:
        assert use_code == E_INVALIDARG and use_out.startswith(f"CertUtil: Unknown arg: -{verb}\r\n".encode())
        assert b"0x80070057" in use_out


def test_probe_lie_leaves_other_verbs_alone(tmp_path: Path) -> None:
    host = build("exportpfx-probe-lies", tmp_path)
    assert _hashfile(host)[0] == 0
    assert run(host, "certutil -hashfile -?")[0] == 0


# --- the kit against pfx-locked (issue 13 step 1 is the kit-side fix) -----------------------------------

KIT_PASSWORD = "Readback-Test-Pa55"  # WinRM password of the rehearsal endpoint (test-only literal)
KIT_PFX_PASSWORD = "Readback-Pfx-Pa55word"


def test_kit_does_not_claim_a_held_pfx_deleted(tmp_path: Path) -> None:
    host = build("pfx-locked", tmp_path)
    thumb = str(host.extra["current_thumbprint"])
    for root in host.extra["forbidden_roots"]:  # step 0 done: the chain runs through the cross certificate
        stores.set_eku(host, "ROOT", root, [])
    with rehearsal.start(host, password=KIT_PASSWORD) as r:
        with connect(
            r.url,
            transport="basic",
            username=r.user,
            password=KIT_PASSWORD,
            host_label="web01",
            allow_unencrypted_basic=True,
            codepage=437,
            allow_cleartext_secrets=True,  # a Basic/HTTP lab host: accepted explicitly
        ) as conn:
            pfx = export_pfx(Server(conn), thumb, password=KIT_PFX_PASSWORD)
            left = [f for f in host.files if f.endswith(".pfx")]
    assert left == [Host.norm(pfx.remote_path)]  # the emulator kept it, as Windows would
    assert pfx.remote_deleted is False
