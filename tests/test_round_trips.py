"""Fewer round trips, none of the safety lost (issue 18).

* Registry reads are batched: several ``reg export`` in one command line, each key's outcome read from
  kit-owned markers (docs/windows-behaviour.md W-CMD-CHAIN-MARKERS) — and a line whose markers are
  missing, unmatched or contradictory stops the read (the opposite behaviour, injected into the parser).
* A run's connections share one temp folder and the code page (W-RUN-TEMP-FOLDER): the second
  connection runs no set-up command, a helper uploaded by the first is read back (not trusted) before
  it is reused — a changed copy is uploaded again — and the run's end removes the folder, read back.
  A folder that vanished between steps stops the next step before it changes anything.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from opslib import rehearsal
from opslib.errors import OpsError, RemoteCommandFailed, VerificationFailed
from opslib.iis import iis6
from opslib.rehearsal.host import Host
from opslib.server import remote, session, stores
from opslib.winrm import CMD_LINE_MAX, STATE_FILE, CommandResult, stale_temp_dirs

PASSWORD = "Round-Trips-2026"
SYSTEM_CERTS = r"HKLM\SOFTWARE\Microsoft\SystemCertificates"


def _winrm(r: rehearsal.Rehearsal) -> dict[str, object]:
    return {
        "url": r.url,
        "transport": "basic",
        "username": r.user,
        "password": "env:OPSLIB_ROUND_TRIPS_PW",
        "allow_unencrypted_basic": True,
    }


@contextmanager
def _host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scenario: str = "iis6-ja"
) -> Iterator[tuple[rehearsal.Rehearsal, Path]]:
    monkeypatch.setenv("OPSLIB_ROUND_TRIPS_PW", PASSWORD)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with rehearsal.start(scenario=scenario, password=PASSWORD, workdir=tmp_path / "host") as r:
        yield r, run_dir


def _commands(run_dir: Path) -> list[dict[str, object]]:
    lines = (run_dir / "transcript.jsonl").read_text(encoding="utf-8").splitlines()
    return [e for e in map(json.loads, lines) if "command_line" in e]


def _kit_folders(host: Host) -> list[str]:
    temp = host.norm(str(host.env["TEMP"]))
    return sorted(d for d in host.dirs if d.startswith(temp + "\\opslib-"))


# --- batched registry reads -----------------------------------------------------------------------


def test_several_keys_are_read_in_one_command_and_an_absent_key_is_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (
        _host(tmp_path, monkeypatch) as (r, run_dir),
        session.open_server(_winrm(r), host="web01", run_dir=str(run_dir)) as server,
    ):
        assert server.conn.temp_dir  # the run's temp folder (two commands, once per run)
        before = server.conn.commands_run
        keys = [
            SYSTEM_CERTS + r"\ROOT",
            SYSTEM_CERTS + r"\CA",
            r"HKLM\SOFTWARE\Policies\Microsoft\SystemCertificates\Root",
        ]
        got = remote.export_keys(server.conn, keys, what="read three keys")
        assert server.conn.commands_run == before + 1  # one command line for the three
        assert got[keys[0]] is not None and got[keys[0]].startswith(b"\xff\xfe")  # regedit 5, UTF-16LE
        assert got[keys[2]] is None  # the Group Policy key does not exist on this host
        again = remote.export_keys(server.conn, keys[:2], what="read again")
        assert again == {k: got[k] for k in keys[:2]} and server.conn.commands_run == before + 1  # cached
        roots = stores.read_store(server.conn, "ROOT")
        assert roots and server.conn.commands_run == before + 2  # the Root group (4 keys) in one line
        assert (
            stores.read_store(server.conn, "AuthRoot") is not None and server.conn.commands_run == before + 2
        )


def test_a_batch_too_long_for_one_line_is_split_and_each_line_fits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (
        _host(tmp_path, monkeypatch) as (r, run_dir),
        session.open_server(_winrm(r), host="web01", run_dir=str(run_dir)) as server,
    ):
        keys = [SYSTEM_CERTS + rf"\ROOT\Certificates\{n:040X}" for n in range(24)]  # absent, long names
        got = remote.export_keys(server.conn, keys, what="read many absent keys")
        assert set(got.values()) == {None}
        lines = [str(e["command_line"]) for e in _commands(run_dir) if "reg export" in str(e["command_line"])]
    assert len(lines) > 1 and all(len(line) <= CMD_LINE_MAX for line in lines)


def _result(stdout: bytes, exit_code: int = 0) -> CommandResult:
    return CommandResult("reg export …", exit_code, stdout, b"", 0.1, 437)


class _Conn:
    host = "web01"


BATCH = [(1, SYSTEM_CERTS + r"\ROOT", "r1.reg", "r1.b64"), (2, SYSTEM_CERTS + r"\CA", "r2.reg", "r2.b64")]
DATA = b"-----BEGIN CERTIFICATE-----\r\n//5XAGkA\r\n-----END CERTIFICATE-----\r\n"


def test_the_batch_markers_are_read_per_key() -> None:
    out = remote.parse_batch(
        _Conn(),
        _result(b"opslib-begin-1 \r\n" + DATA + b"opslib-end-1\r\nopslib-failed-2\r\n"),
        BATCH,
        what="t",
    )  # type: ignore[arg-type]
    assert out == {BATCH[0][1]: b"\xff\xfeW\x00i\x00", BATCH[1][1]: None}


@pytest.mark.parametrize(
    "stdout, error",
    [
        # cmd ran only the first key's part (e.g. `&` bound otherwise than documented): the second has no marker
        (b"opslib-begin-1\r\n" + DATA + b"opslib-end-1\r\n", VerificationFailed),
        # the output was cut inside a key's data: begin without end
        (b"opslib-begin-1\r\n" + DATA[:40] + b"\r\nopslib-failed-2\r\n", VerificationFailed),
        # the key exists (reg query exits 0) but its export failed: not read as an empty store
        (
            b"opslib-begin-1\r\n" + DATA + b"opslib-end-1\r\nopslib-failed-2\r\nopslib-present-2\r\n",
            RemoteCommandFailed,
        ),
        # no marker at all (cmd could not run the line)
        (b"", VerificationFailed),
        # data that is not base64
        (b"opslib-begin-1\r\n%%%%\r\nopslib-end-1\r\nopslib-failed-2\r\n", VerificationFailed),
    ],
)
def test_abatch_line_whose_markers_do_not_add_up_stops_the_read(stdout: bytes, error: type[OpsError]) -> None:
    with pytest.raises(error):
        remote.parse_batch(_Conn(), _result(stdout), BATCH, what="t")  # type: ignore[arg-type]


# --- one temp folder, one code page per run ------------------------------------------------------------


def test_the_runs_second_connection_runs_no_set_up_and_reuses_the_helper_after_reading_it_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _host(tmp_path, monkeypatch) as (r, run_dir):
        with session.open_server(_winrm(r), host="web01", run_dir=str(run_dir)) as first:
            sites = first.iis.sites()
        state = json.loads((run_dir / STATE_FILE).read_text(encoding="utf-8"))
        folder = str(state["work_dir"])
        assert state["codepage"] == 932 and r.host.is_dir(folder)  # kept for the run's next connection
        assert list(state["uploaded"]) == [folder + "\\" + iis6.HELPER]
        seen = len(_commands(run_dir))
        with session.open_server(_winrm(r), host="web01", run_dir=str(run_dir)) as second:
            assert second.iis.sites() == sites
            assert second.conn.codepage == 932
        new = [str(e["command_line"]) for e in _commands(run_dir)[seen:]]
        assert not any(line.startswith(("chcp", "echo %TEMP%", "mkdir", "rmdir", ">")) for line in new), new
        assert len(new) == 2 and "-encode" in new[0] and "iis6.js" in new[0]  # read back, then `list`
        with session.open_server(_winrm(r), host="web01", run_dir=str(run_dir)) as last:
            assert last.conn.finish_run()
        assert _kit_folders(r.host) == [] and stale_temp_dirs(run_dir / "transcript.jsonl") == []
        assert json.loads((run_dir / STATE_FILE).read_text(encoding="utf-8"))["work_dir"] == ""


def test_a_helper_changed_on_the_server_between_steps_is_uploaded_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _host(tmp_path, monkeypatch) as (r, run_dir):
        with session.open_server(_winrm(r), host="web01", run_dir=str(run_dir)) as first:
            first.iis.sites()
        folder = str(json.loads((run_dir / STATE_FILE).read_text(encoding="utf-8"))["work_dir"])
        helper = folder + "\\" + iis6.HELPER
        r.host.write_file(
            helper, iis6.helper_script().replace(b"function", b"function ", 1)
        )  # same name, other bytes
        with session.open_server(_winrm(r), host="web01", run_dir=str(run_dir)) as second:
            second.iis.sites()
            second.conn.finish_run()
        entries = [
            json.loads(x) for x in (run_dir / "transcript.jsonl").read_text(encoding="utf-8").splitlines()
        ]
    uploads = [
        e["upload"]
        for e in entries
        if "upload" in e and str(e["upload"]["remote_path"]).endswith(iis6.HELPER)
    ]
    assert len(uploads) == 2  # the changed copy was not used: uploaded again
    assert not any("reuse" in e for e in entries)


def test_a_run_folder_that_vanished_between_steps_stops_the_next_step_before_any_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _host(tmp_path, monkeypatch) as (r, run_dir):
        with session.open_server(_winrm(r), host="web01", run_dir=str(run_dir)) as first:
            first.iis.sites()
        folder = str(json.loads((run_dir / STATE_FILE).read_text(encoding="utf-8"))["work_dir"])
        for f in [f for f in r.host.files if f.startswith(r.host.norm(folder) + "\\")]:
            r.host.delete_file(f)
        r.host.dirs.discard(r.host.norm(folder))  # someone cleaned %TEMP% while the run was between steps
        before = json.dumps(r.host.state(), sort_keys=True, default=str)
        with session.open_server(_winrm(r), host="web01", run_dir=str(run_dir)) as second:
            with pytest.raises(OpsError):
                stores.read_store(second.conn, "MY")
            with pytest.raises(OpsError):
                second.iis.sites()  # the helper cannot be written into the missing folder
        assert json.dumps(r.host.state(), sort_keys=True, default=str) == before  # nothing changed


# --- a resume removes what the run it continues left -------------------------------------------------


@pytest.mark.parametrize("held", [False, True])
def test_a_resume_removes_the_temp_folder_a_killed_run_left_or_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, held: bool
) -> None:
    from opslib.runbook.chores import inherit_leftovers as _inherit_leftovers
    from opslib.runbook.chores import left_on_server as _left_on_server

    with _host(tmp_path, monkeypatch) as (r, old_run):
        killed = session.open_server(_winrm(r), host="web01", run_dir=str(old_run))
        killed.iis.sites()  # the helper is in the run's folder; the run is then killed: no finish_run
        killed.conn._protocol.transport.close_session()
        folder = str(json.loads((old_run / STATE_FILE).read_text(encoding="utf-8"))["work_dir"])
        if held:
            r.host.locked_files.add(folder + "\\iis6.js")  # another process holds a file in it
        new_run = tmp_path / "resume"
        new_run.mkdir()
        _inherit_leftovers(old_run, new_run, url=r.url)
        with session.open_server(_winrm(r), host="web01", run_dir=str(new_run)) as resume:
            assert r.host.is_dir(folder)  # opening a connection touches nothing of the other run
            left = resume.conn.remove_inherited()  # the runner calls it once the lock is held
        named = _left_on_server(new_run, {})
    if held:
        assert left == [folder] and r.host.is_dir(folder)
        assert any(folder in line and "rmdir /s /q" in line for line in named), named
    else:
        assert left == [] and not r.host.is_dir(folder) and named == []
