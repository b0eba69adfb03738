"""The opslib WinRM transport against the rehearsal host, over real HTTP(S) with real pywinrm."""

from __future__ import annotations

import base64
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REHEARSAL_PASSWORD, make_bare_host
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opslib import rehearsal
from opslib import winrm as transport
from opslib.errors import (
    AuthenticationFailed,
    CommandTimedOut,
    ConnectionFailed,
    ParameterError,
    RemoteCommandFailed,
    UnsafeArgument,
    WSManFault,
)
from opslib.rehearsal import cmd
from opslib.rehearsal.host import Host, Invocation

FAST = {"operation_timeout_s": 1, "read_timeout_s": 3}


def _connect(r: rehearsal.Rehearsal, **kw: object) -> transport.Connection:
    opts: dict[str, object] = {
        "transport": "basic",
        "username": r.user,
        "password": REHEARSAL_PASSWORD,
        "host_label": "web01",
        "allow_unencrypted_basic": not r.https,
        "ca_trust_path": str(r.ca_file) if r.ca_file else None,
    }
    opts.update(kw)
    return transport.connect(r.url, **opts)  # type: ignore[arg-type]


@pytest.fixture
def ja_endpoint() -> Iterator[rehearsal.Rehearsal]:
    with rehearsal.start(make_bare_host(locale="ja", codepage=932), password=REHEARSAL_PASSWORD) as r:
        yield r


# --- cmdline ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (
            ["certutil", "-f", "-decode", "C:\\t\\a.b64", "C:\\t\\a.cer"],
            "certutil -f -decode C:\\t\\a.b64 C:\\t\\a.cer",
        ),
        (["reg", "query", "HKLM\\A B\\C"], 'reg query "HKLM\\A B\\C"'),
        (["x", "C:\\dir with space\\"], 'x "C:\\dir with space\\\\"'),
        (["x", ""], 'x ""'),
        (["x", "a&b|c<d>e(f)g^h"], 'x "a&b|c<d>e(f)g^h"'),
        (["x", "a=b", "@c"], 'x "a=b" "@c"'),
    ],
)
def test_cmdline_quotes(argv: list[str], line: str) -> None:
    assert transport.cmdline(argv) == line


def test_cmdline_prefix_redirect_echo() -> None:
    line = transport.cmdline(["echo", "QUJD+/=="], redirect=("append", "C:\\a b\\f.b64"))
    assert line == '>>"C:\\a b\\f.b64" echo QUJD+/=='


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("50%off", "percent sign"),
        ("wow!", "exclamation mark"),
        ('say "hi"', "double quote"),
        ("two\nlines", "line break"),
        ("tab\there", "control character"),
    ],
)
def test_cmdline_refuses_unsafe_values_by_name(value: str, reason: str) -> None:
    with pytest.raises(UnsafeArgument, match=f"^production_site: .*{reason}.*nothing was sent"):
        transport.cmdline(["cscript", value], names=["cscript", "production_site"])
    with pytest.raises(UnsafeArgument, match="^argument 2: "):
        transport.cmdline(["x", "ok", value])


def test_cmdline_refuses_overlong_lines_and_echo_metacharacters() -> None:
    with pytest.raises(UnsafeArgument, match="8191"):
        transport.cmdline(["x", "A" * 8200])
    with pytest.raises(UnsafeArgument, match="echo text"):
        transport.cmdline(["echo", "a&b"])
    with pytest.raises(UnsafeArgument, match="ECHO ON/OFF"):
        transport.cmdline(["echo", "off"])


_ARG = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    args=st.lists(
        _ARG | st.sampled_from(["", "\\", 'a\\"', "C:\\x y\\", "^&", "%TEMP%", "a b\\\\"]), max_size=5
    )
)
def test_cmdline_either_refuses_or_round_trips_through_the_interpreter(args: list[str]) -> None:
    host = _PROPERTY_HOST
    try:
        line = transport.cmdline(["echoargs", *args])
    except UnsafeArgument:
        return
    result = cmd.execute(host, line, codepage=65001)
    assert result.exit_code == 0, (line, result.stderr)
    assert json.loads(result.stdout.decode("utf-8")) == args


_PROPERTY_HOST = make_bare_host()


# --- connect, code pages ------------------------------------------------------------------------------


def test_run_on_english_host_auto_code_page(endpoint: rehearsal.Rehearsal) -> None:
    with _connect(endpoint) as conn:
        assert conn.codepage == 437 and conn.host == "web01" and conn.url == endpoint.url
        before = endpoint.request_count
        result = conn.run(["echoargs", "a b", "C:\\x y\\", "&|<>"])
        assert endpoint.request_count - before == 3  # Command, Receive, Signal on the reused shell
        assert json.loads(result.stdout_text) == ["a b", "C:\\x y\\", "&|<>"]
        assert result.exit_code == 0 and result.command_line.startswith("echoargs ")
        with pytest.raises(
            RemoteCommandFailed, match=r"web01: `nosuch` exited with 9009 .*operable program or batch file"
        ):
            conn.run(["nosuch"])
        assert conn.run(["nosuch"], check=False).exit_code == 9009


def test_japanese_host_round_trips_exactly(ja_endpoint: rehearsal.Rehearsal) -> None:
    with _connect(ja_endpoint) as conn:
        assert conn.codepage == 932  # learned from chcp's digits
        assert conn.run(["chcp"]).stdout_text == "現在のコード ページ: 932\r\n"
        failed = conn.run(["nosuch"], check=False)
        assert failed.stderr_text == (
            "'nosuch' は、内部コマンドまたは外部コマンド、\r\n"
            "操作可能なプログラムまたはバッチ ファイルとして認識されていません。\r\n"
        )
    with _connect(ja_endpoint, codepage=437) as conn:
        assert conn.codepage == 437
        assert conn.run(["chcp"]).stdout_text == "?????? ???: 437\r\n"  # Japanese text in cp437: '?'


def test_https_validates_with_ca_trust_path(bare_host: Host) -> None:
    with rehearsal.start(bare_host, password=REHEARSAL_PASSWORD, https=True) as r:
        with _connect(r, transport="basic") as conn:
            assert conn.run(["hostname"]).stdout == b"WEB01\r\n"
        with pytest.raises(ConnectionFailed, match="TLS certificate could not be validated.*ca_trust_path"):
            _connect(r, ca_trust_path=None)


def test_wrong_password_is_authentication_failed(endpoint: rehearsal.Rehearsal) -> None:
    with pytest.raises(
        AuthenticationFailed, match=r"refused the credentials of winrm\.username 'Administrator' \(HTTP 401\)"
    ) as info:
        _connect(endpoint, password="Wrong-Password-123")
    assert "Wrong-Password-123" not in str(info.value)


def test_basic_over_http_needs_explicit_permission(endpoint: rehearsal.Rehearsal) -> None:
    with pytest.raises(ParameterError, match="allow_unencrypted_basic.*readable on the network"):
        _connect(endpoint, allow_unencrypted_basic=False)


def test_refused_connection_is_connection_failed() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(
        ConnectionFailed,
        match="connection failed or dropped while trying to open a shell.*no connection was made, so nothing "
        "reached the server$",
    ):
        transport.connect(
            f"http://127.0.0.1:{port}/wsman",
            transport="basic",
            username="u",
            password=REHEARSAL_PASSWORD,
            host_label="h",
            allow_unencrypted_basic=True,
        )


# --- file transfer ------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [2_048, 50_000, 200_000])
def test_upload_download_byte_identical(endpoint: rehearsal.Rehearsal, bare_host: Host, size: int) -> None:
    data = os.urandom(size)
    with _connect(endpoint) as conn:
        remote = conn.temp_dir + "\\payload.bin"
        before = endpoint.request_count
        transfer = conn.upload(data, remote)
        chunks = -(-len(base64.b64encode(data)) // transport.ECHO_CHUNK_MAX)
        assert endpoint.request_count - before <= 3 * chunks + 3
        assert bare_host.read_file(remote) == data
        assert (transfer.size, transfer.verified_by) == (size, "size")  # Server 2003: no SHA-256 in certutil
        assert conn.download(remote) == data
        temp = conn.temp_dir
        staged = [f for f in bare_host.files if f.startswith(temp.lower()) and f.endswith(".b64")]
        assert staged == []  # no base64 copy (possibly of key material) outlives its transfer
    assert not bare_host.exists(temp) and not bare_host.exists(remote)  # removed at close


def test_transfer_checks_sha256_where_certutil_can() -> None:
    host = make_bare_host(windows_version="6.1.7601")
    with rehearsal.start(host, password=REHEARSAL_PASSWORD) as r, _connect(r) as conn:
        data = os.urandom(5000)
        assert conn.upload(data, conn.temp_dir + "\\a.bin").verified_by == "size+sha256"
        assert conn.download(conn.temp_dir + "\\a.bin") == data


def test_temp_dir_removed_even_when_the_block_fails(endpoint: rehearsal.Rehearsal, bare_host: Host) -> None:
    with pytest.raises(RemoteCommandFailed), _connect(endpoint) as conn:
        temp = conn.temp_dir
        assert bare_host.is_dir(temp)
        conn.run(["nosuch"])
    assert not bare_host.exists(temp)


# --- timeouts and faults ------------------------------------------------------------------------------


def test_deadline_terminates_a_slow_command(endpoint: rehearsal.Rehearsal, bare_host: Host) -> None:
    def slow(inv: Invocation) -> int:
        time.sleep(2.5)
        return 0

    bare_host.programs["slow"] = slow
    with _connect(endpoint, **FAST) as conn:
        t0 = time.monotonic()
        with pytest.raises(CommandTimedOut, match=r"command timed out after 1.2 s: slow"):
            conn.run(["slow"], timeout_s=1.2)
        assert time.monotonic() - t0 < 2.4


@pytest.mark.parametrize(
    ("spec", "error", "match", "ran"),
    [
        ("before:echoargs:drop", ConnectionFailed, "dropped while trying to start the command", False),
        ("after:echoargs:drop", ConnectionFailed, "dropped while trying to receive the output", True),
        ("before:echoargs:timeout", CommandTimedOut, "timed out after 1.5 s", False),
        ("after:*:timeout", CommandTimedOut, "timed out after 1.5 s", True),
        ("before:echoargs:fault500", WSManFault, "WS-Management fault 2150859120 .*start the command", False),
        ("after:echoargs:fault500", WSManFault, "WS-Management fault 2150859120 .*receive the output", True),
        ("before:echoargs:fail", RemoteCommandFailed, "exited with 5 .*Access is denied", False),
        ("after:echoargs:fail", RemoteCommandFailed, "exited with 5 .*Access is denied", True),
    ],
)
def test_fault_specs_surface_as_kit_errors(
    endpoint: rehearsal.Rehearsal, bare_host: Host, spec: str, error: type[Exception], match: str, ran: bool
) -> None:
    with _connect(endpoint, **FAST) as conn:
        endpoint.set_faults([spec])
        t0 = time.monotonic()
        with pytest.raises(error, match=match):
            conn.run(["echoargs", "marker"], timeout_s=1.5)
        assert time.monotonic() - t0 < 6
        ran_it = any(h["command"] == "echoargs marker" and "fault" not in h for h in bare_host.history)
        assert ran_it is ran
        endpoint.set_faults([])
        assert conn.run(["echoargs", "again"]).stdout == b'["again"]\r\n'  # the connection still works


def test_japanese_fail_fault_message(ja_endpoint: rehearsal.Rehearsal) -> None:
    with _connect(ja_endpoint) as conn:
        ja_endpoint.set_faults(["before:mkdir#1:fail"])
        with pytest.raises(RemoteCommandFailed, match="アクセスが拒否されました。"):
            conn.run(["mkdir", "C:\\x"])


def test_shell_reopened_once_when_the_server_lost_it(endpoint: rehearsal.Rehearsal) -> None:
    with _connect(endpoint) as conn:
        endpoint._server.shells.clear()  # the server forgets the shell (restart, idle timeout)
        assert conn.run(["echoargs", "x"]).exit_code == 0
        assert len(endpoint._server.shells) == 1


# --- transcript and secrets ---------------------------------------------------------------------------


def test_transcript_records_commands_without_secrets(
    endpoint: rehearsal.Rehearsal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSLIB_TEST_WINRM_PW", REHEARSAL_PASSWORD)
    params = endpoint.params(password_env="OPSLIB_TEST_WINRM_PW")
    with transport.connect_params(params["winrm"], host="web01", run_dir=str(tmp_path)) as conn:
        conn.run(["echoargs", "-p", "Pfx-Secret-777"], secrets=["Pfx-Secret-777"], what="export")
        with pytest.raises(RemoteCommandFailed) as info:
            conn.run(["nosuch", "Pfx-Secret-777"])
        assert "Pfx-Secret-777" not in str(info.value)
        conn.upload(b"x" * 3000, conn.temp_dir + "\\u.bin")
        assert conn.download(conn.temp_dir + "\\u.bin") == b"x" * 3000
    text = (tmp_path / "transcript.jsonl").read_text(encoding="utf-8")
    entries = [json.loads(x) for x in text.splitlines()]
    for secret in ("Pfx-Secret-777", REHEARSAL_PASSWORD):
        assert secret not in text
        assert base64.b64encode(secret.encode()).decode() not in text
    export = next(e for e in entries if e["what"] == "export")
    assert export["argv"] == ["echoargs", "-p", "[REDACTED]"] and export["exit_code"] == 0
    assert base64.b64decode(export["stdout_b64"]) == b'["-p", "[REDACTED]"]\r\n'
    assert {"time_utc", "host", "command_line", "duration_s", "bytes_out", "bytes_in"} <= export.keys()
    typed = next(e for e in entries if e.get("command_line", "").startswith("type "))
    assert "stdout_b64" not in typed and typed["stdout"]["size"] > 4000  # download data: size and hash only
    assert any("upload" in e for e in entries) and any("download" in e for e in entries)


def test_only_the_shell_module_imports_pywinrm() -> None:
    import ast

    from opslib.winrm import shell

    root = Path(transport.__file__).resolve().parent.parent
    users = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            if any(n == "winrm" or n.startswith("winrm.") for n in names):
                users.add(path.relative_to(root).as_posix())
    assert users == {"winrm/shell.py"}
    # `import winrm` inside opslib/winrm/ is absolute: it is pywinrm, not this package.
    assert shell.winrm.__name__ == "winrm" and hasattr(shell.winrm, "protocol")
