"""The rehearsal endpoint and its cmd.exe interpreter, driven by unmodified pywinrm over real HTTP(S)."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
import requests
import winrm
from conftest import REHEARSAL_PASSWORD, make_bare_host
from winrm.exceptions import InvalidCredentialsError, WinRMOperationTimeoutError, WSManFaultError
from winrm.protocol import Protocol

from opslib import rehearsal
from opslib.errors import UsageError
from opslib.rehearsal import cmd
from opslib.rehearsal.host import Host, Invocation
from opslib.rehearsal.programs import filecodec
from opslib.rehearsal.server import ERROR_WSMAN_UNEXPECTED_SELECTORS, FaultSpec

JA_NOT_RECOGNIZED = "'nosuch' は、内部コマンドまたは外部コマンド、\r\n操作可能なプログラムまたはバッチ ファイルとして認識されていません。\r\n"


def _protocol(r: rehearsal.Rehearsal, **kw: object) -> Protocol:
    opts: dict[str, object] = {"operation_timeout_sec": 1, "read_timeout_sec": 5}
    opts.update(kw)
    if r.ca_file:
        opts.setdefault("ca_trust_path", str(r.ca_file))
    return Protocol(r.url, transport="basic", username=r.user, password=REHEARSAL_PASSWORD, **opts)  # type: ignore[arg-type]


def _run(p: Protocol, shell: str, command: str, *args: str) -> tuple[bytes, bytes, int]:
    cid = p.run_command(shell, command, list(args))
    out = p.get_command_output(shell, cid)
    p.cleanup_command(shell, cid)
    return out


# --- unmodified pywinrm -------------------------------------------------------------------------------


def test_session_run_cmd_over_http_costs_five_requests(endpoint: rehearsal.Rehearsal) -> None:
    session = winrm.Session(endpoint.url, auth=(endpoint.user, REHEARSAL_PASSWORD), transport="basic")
    before = endpoint.request_count
    result = session.run_cmd("echoargs", ['"a b"', "c"])
    assert (result.status_code, result.std_out, result.std_err) == (0, b'["a b", "c"]\r\n', b"")
    assert endpoint.request_count - before == 5  # Create, Command, Receive, Signal, Delete (W-WINRM-ENVELOPE)


def test_session_over_https_validates_with_the_generated_ca(bare_host: Host) -> None:
    with rehearsal.start(bare_host, password=REHEARSAL_PASSWORD, https=True) as r:
        assert r.url.startswith("https://127.0.0.1:") and r.ca_file is not None
        ok = winrm.Session(
            r.url, auth=(r.user, REHEARSAL_PASSWORD), transport="basic", ca_trust_path=str(r.ca_file)
        )
        assert ok.run_cmd("hostname").std_out == b"WEB01\r\n"
        untrusted = winrm.Session(
            r.url, auth=(r.user, REHEARSAL_PASSWORD), transport="basic", ca_trust_path=None
        )
        with pytest.raises(requests.exceptions.SSLError):
            untrusted.run_cmd("hostname")


def test_wrong_password_is_401_with_basic_challenge(endpoint: rehearsal.Rehearsal) -> None:
    with pytest.raises(InvalidCredentialsError):
        winrm.Session(endpoint.url, auth=(endpoint.user, "wrong-password"), transport="basic").run_cmd("ver")
    resp = requests.post(endpoint.url, data=b"<x/>", timeout=5)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"] == 'Basic realm="WSMAN"'
    assert resp.content == b""


def test_japanese_host_answers_in_cp932(tmp_path: Path) -> None:
    host = make_bare_host(locale="ja", codepage=932)
    with rehearsal.start(host, password=REHEARSAL_PASSWORD, state_file=tmp_path / "state.json") as r:
        p = _protocol(r)
        shell = p.open_shell(codepage=932)
        assert _run(p, shell, "chcp") == ("現在のコード ページ: 932\r\n".encode("cp932"), b"", 0)
        out, err, code = _run(p, shell, "nosuch")
        assert (out, code) == (b"", 9009)
        assert err.decode("cp932") == JA_NOT_RECOGNIZED
        p.close_shell(shell)
        # The same words in a cp437 shell come back as '?' (W-CODEPAGE-DECODE).
        p = _protocol(r)
        shell = p.open_shell(codepage=437)
        _, err437, _ = _run(p, shell, "nosuch")
        assert err437.startswith(b"'nosuch' ?") and b"?" * 5 in err437
        p.close_shell(shell)
    state = json.loads((tmp_path / "state.json").read_text(encoding="utf-8"))
    assert state["locale"] == "ja"
    assert [h["command"] for h in host.history] == ["chcp", "nosuch", "nosuch"]


def test_receive_waits_operation_timeout_then_faults_timed_out(bare_host: Host) -> None:
    def slow(inv: Invocation) -> int:
        time.sleep(float(inv.argv[1]))
        inv.write("finished\r\n")
        return 7

    bare_host.programs["slow"] = slow
    with rehearsal.start(bare_host, password=REHEARSAL_PASSWORD) as r:
        p = _protocol(r)
        shell = p.open_shell()
        cid = p.run_command(shell, "slow", ["1.6"])
        t0 = time.monotonic()
        with pytest.raises(WinRMOperationTimeoutError):
            p.get_command_output_raw(shell, cid)
        assert 0.9 < time.monotonic() - t0 < 1.5  # PT1S honoured
        assert p.get_command_output(shell, cid) == (b"finished\r\n", b"", 7)
        p.close_shell(shell)


def test_receive_is_chunked_below_max_envelope_size(bare_host: Host) -> None:
    blob = bytes(range(256)) * 1600  # 409,600 bytes of output

    def big(inv: Invocation) -> int:
        inv.write(blob.decode("latin-1"))
        return 0

    bare_host.programs["big"] = big
    with rehearsal.start(bare_host, password=REHEARSAL_PASSWORD) as r:
        p = _protocol(r)
        shell = p.open_shell(codepage=437)
        cid = p.run_command(shell, "big")
        sizes = []
        chunks = []
        while True:
            before = r.request_count
            out, _, code, done = p.get_command_output_raw(shell, cid)
            assert r.request_count == before + 1
            sizes.append(len(out))
            chunks.append(out)
            if done:
                break
        assert len(sizes) >= 4 and max(sizes) * 4 / 3 < 153600
        assert b"".join(chunks) == blob.decode("latin-1").encode("cp437", "replace") and code == 0
        p.close_shell(shell)


def test_stdin_send_with_end_reaches_the_program(endpoint: rehearsal.Rehearsal, bare_host: Host) -> None:
    def cat(inv: Invocation) -> int:
        inv.write(inv.stdin.decode("latin-1"))
        return 0

    bare_host.programs["cat"] = cat
    p = _protocol(endpoint)
    shell = p.open_shell()
    cid = p.run_command(shell, "cat")
    p.send_command_input(shell, cid, b"line one\r\n", end=False)
    p.send_command_input(shell, cid, b"line two\r\n", end=True)
    assert p.get_command_output(shell, cid) == (b"line one\r\nline two\r\n", b"", 0)
    p.close_shell(shell)


def test_unknown_shell_is_the_shell_not_found_fault(endpoint: rehearsal.Rehearsal) -> None:
    p = _protocol(endpoint)
    shell = p.open_shell()
    assert shell.startswith("uuid:")  # WinRM 1.1 (Server 2003) ShellId form
    p.close_shell(shell)
    p = _protocol(endpoint)
    with pytest.raises(WSManFaultError) as info:
        p.run_command(shell, "ver")
    assert info.value.wsman_fault_code == ERROR_WSMAN_UNEXPECTED_SELECTORS == 2150858843
    assert "shell was not found" in info.value.reason


def test_skip_cmd_shell_passes_the_line_to_the_program(endpoint: rehearsal.Rehearsal) -> None:
    p = _protocol(endpoint)
    shell = p.open_shell()
    cid = p.run_command(shell, "echoargs", ["a&b", "%TEMP%", ">x"], skip_cmd_shell=True)
    assert p.get_command_output(shell, cid) == (b'["a&b", "%TEMP%", ">x"]\r\n', b"", 0)
    cid = p.run_command(shell, "echoargs", ["a&b"])
    _, err, code = p.get_command_output(shell, cid)
    assert code == 9009 and err.startswith(b"'b' is not recognized")
    p.close_shell(shell)


def test_idle_timeout_as_int_is_a_schema_fault(endpoint: rehearsal.Rehearsal) -> None:
    p = _protocol(endpoint)
    with pytest.raises(WSManFaultError) as info:
        p.open_shell(idle_timeout=600)
    assert info.value.wsman_fault_code == 2150858817  # W-WINRM-ENVELOPE


def test_windows_2008r2_host_answers_v2_create(tmp_path: Path) -> None:
    host = make_bare_host(windows_version="6.1.7601")
    with rehearsal.start(host, password=REHEARSAL_PASSWORD) as r:
        p = _protocol(r)
        shell = p.open_shell()
        assert not shell.startswith("uuid:")
        assert _run(p, shell, "ver") == (b"\r\nMicrosoft Windows [Version 6.1.7601]\r\n", b"", 0)
        p.close_shell(shell)


# --- fault specs, start(), params() ---------------------------------------------------------------


def test_fault_specs_parse_and_count() -> None:
    spec = FaultSpec.parse("after:CertUtil#2:drop")
    assert (spec.when, spec.program, spec.nth, spec.action) == ("after", "certutil", 2, "drop")
    assert str(spec) == "after:certutil#2:drop"
    for bad in ("during:x:drop", "before:x:explode", "before:x#0:fail", "before::fail"):
        with pytest.raises(UsageError, match="bad fault spec"):
            FaultSpec.parse(bad)


def test_named_fault_points_fire_by_name_not_by_count(bare_host: Host) -> None:
    """``before:export:fail`` fails the export after a completed request, not the pre-flight's export
    before it, however many certutil commands ran; a name that is no point is refused with the names."""
    denied = (b"", b"Access is denied.\r\n", 5)
    with pytest.raises(UsageError, match=r"no fault point 'swap\.bogus'.*swap\.add"):
        FaultSpec.parse("before:swap.bogus:fail")
    with rehearsal.start(bare_host, password=REHEARSAL_PASSWORD, faults=["before:export:fail"]) as r:
        p = _protocol(r)
        shell = p.open_shell()
        export = ["certutil", "-p", "x", "-exportPFX", "MY", "AB", "C:\\e.pfx"]
        assert _run(p, shell, "certutil", "-exportPFX", "-?") != denied, "a probe is no point"
        assert _run(p, shell, *export) != denied, "the pre-flight's export (no request completed yet)"
        _run(p, shell, "certreq", "-accept", "-q", "C:\\new.cer")
        assert _run(p, shell, *export) == denied, "step 3's export, by name"
        r.set_faults(["before:export.pfx#2:fail"])  # counted from now, among the commands of that name
        assert _run(p, shell, *export) != denied and _run(p, shell, *export) == denied
        p.close_shell(shell)
        names = [(program, name) for program, _, name in r.command_log if name]
    assert names == [
        ("certutil", "preflight.export"),
        ("certreq", "install.accept"),
        ("certutil", "export.pfx"),
        ("certutil", "export.pfx"),
        ("certutil", "export.pfx"),
    ]


def test_fault_nth_command_fails_with_windows_message(bare_host: Host) -> None:
    with rehearsal.start(bare_host, password=REHEARSAL_PASSWORD, faults=["before:mkdir#2:fail"]) as r:
        p = _protocol(r)
        shell = p.open_shell()
        assert _run(p, shell, "mkdir", "C:\\a")[2] == 0
        assert _run(p, shell, "mkdir", "C:\\b") == (b"", b"Access is denied.\r\n", 5)
        assert _run(p, shell, "mkdir", "C:\\c")[2] == 0
        assert bare_host.is_dir("C:\\a") and not bare_host.is_dir("C:\\b") and bare_host.is_dir("C:\\c")
        r.set_faults(["after:*:fail"])
        assert _run(p, shell, "mkdir", "C:\\d")[2] == 5
        assert bare_host.is_dir("C:\\d")  # the effect happened; the client was told it failed
        r.set_faults([])
        assert _run(p, shell, "mkdir", "C:\\e")[2] == 0
        p.close_shell(shell)


def test_start_refuses_non_loopback(bare_host: Host) -> None:
    with pytest.raises(UsageError, match="loopback only"):
        rehearsal.start(bare_host, password=REHEARSAL_PASSWORD, listen="0.0.0.0")


def test_params_follow_the_parameters_contract(bare_host: Host) -> None:
    bare_host.extra.update(
        production_site="www1.example.jp",
        work_site="renew.www1.example.jp",
        certificate_file="/tmp/mail.txt",
        verify_endpoint="127.0.0.1:8443",
        verify_ca_file="/tmp/roots.pem",
        forbidden_roots=["AB" * 20],
    )
    with rehearsal.start(bare_host, password=REHEARSAL_PASSWORD) as r:
        params = r.params(
            password_env="PW", pfx_password_env="PFX", backup_dir="/tmp/b", certificate_file=None
        )
        assert params["winrm"] == {
            "url": r.url,
            "transport": "basic",
            "username": "Administrator",
            "password": "env:PW",
            "ca_trust_path": "",
            "server_cert_validation": "validate",
            "codepage": "auto",
            "allow_unencrypted_basic": True,
            "tls": "default",
            "message_encryption": "auto",
            "allow_cleartext_secrets": True,
        }
        assert (
            params["production_site"] == "www1.example.jp" and params["work_site"] == "renew.www1.example.jp"
        )
        assert params["certificate_file"] == "/tmp/mail.txt"
        assert params["forbidden_roots"] == ["AB" * 20]
        assert params["backup"] == {"directory": "/tmp/b", "pfx_password": "env:PFX"}
        assert (
            params["verify"]["endpoint"] == "127.0.0.1:8443"
            and params["verify"]["ca_file"] == "/tmp/roots.pem"
        )
        assert REHEARSAL_PASSWORD not in json.dumps(params)
    with rehearsal.start(bare_host, password=REHEARSAL_PASSWORD, https=True) as r:
        winrm_params = r.params()["winrm"]
        assert (
            winrm_params["ca_trust_path"] == str(r.ca_file)
            and winrm_params["allow_unencrypted_basic"] is False
        )


# --- the interpreter (no network) -------------------------------------------------------------------


def _x(host: Host, line: str, *, codepage: int = 437, stdin: bytes = b"") -> tuple[bytes, bytes, int]:
    r = cmd.execute(host, line, codepage=codepage, stdin=stdin)
    return r.stdout, r.stderr, r.exit_code


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("echo hello", (b"hello\r\n", b"", 0)),
        ("echo.", (b"\r\n", b"", 0)),
        ("echo", (b"ECHO is on.\r\n", b"", 0)),
        ('echo a^&b "c&d"', (b'a&b "c&d"\r\n', b"", 0)),
        ("echo %UNDEFINED% %OS%", (b"%UNDEFINED% Windows_NT\r\n", b"", 0)),
        ("echoargs x&&nosuch y || echo fallback", (b'["x"]\r\nfallback\r\n', None, 9009)),
        ("nosuch & echo after", (b"after\r\n", None, 9009)),
        ("exit /b 3", (b"", b"", 3)),
        ("type C:\\missing.txt 2>&1", (b"The system cannot find the file specified.\r\n", b"", 1)),
        ("echo x 2>&1 1>nul", (b"", b"", 0)),
        ('C:\\tools\\EchoArgs.EXE "a b" c\\"d', (b'["a b", "c\\"d"]\r\n', b"", 0)),
        ("whoami", (b"web01\\administrator\r\n", b"", 0)),
    ],
)
def test_interpreter_lines(bare_host: Host, line: str, expected: tuple[bytes, bytes | None, int]) -> None:
    out, err, code = _x(bare_host, line)
    assert (out, code) == (expected[0], expected[2])
    if expected[1] is not None:
        assert err == expected[1]


def test_echo_redirection_keeps_cmd_spacing(bare_host: Host) -> None:
    assert _x(bare_host, 'mkdir "C:\\t x"')[2] == 0
    assert _x(bare_host, '>"C:\\t x\\f.b64" echo ABCD')[2] == 0
    assert _x(bare_host, 'echo EFGH >>"C:\\t x\\f.b64"')[2] == 0  # suffix form keeps the space
    assert _x(bare_host, '>>"C:\\t x\\f.b64" echo IJKL')[2] == 0
    assert bare_host.read_file("C:\\t x\\f.b64") == b"ABCD\r\nEFGH \r\nIJKL\r\n"
    assert _x(bare_host, 'for %I in ("C:\\t x\\f.b64") do @echo %~zI') == (b"19\r\n", b"", 0)
    assert _x(bare_host, 'for %I in ("C:\\t x\\none") do @echo %~zI') == (b"ECHO is on.\r\n", b"", 0)
    assert _x(bare_host, 'if exist "C:\\t x\\f.b64" echo yes & echo also') == (b"yes \r\nalso\r\n", b"", 0)
    assert _x(bare_host, '>"C:\\no such dir\\f" echo x') == (
        b"",
        b"The system cannot find the path specified.\r\n",
        1,
    )
    assert _x(bare_host, 'mkdir "C:\\t x"')[1] == b"A subdirectory or file C:\\t x already exists.\r\n"
    assert _x(bare_host, 'rmdir "C:\\t x"') == (b"", b"The directory is not empty.\r\n", 145)
    assert _x(bare_host, 'rmdir /s /q "C:\\t x" && echo gone') == (b"gone\r\n", b"", 0)
    assert not bare_host.exists("C:\\t x\\f.b64") and not bare_host.is_dir("C:\\t x")
    assert _x(bare_host, "del /f /q C:\\gone.txt") == (b"", b"Could Not Find C:\\gone.txt\r\n", 0)


def test_output_is_encoded_in_the_shell_code_page(bare_host: Host) -> None:
    def hello(inv: Invocation) -> int:
        inv.write("証明書 café\r\n")
        return 0

    bare_host.programs["hello"] = hello
    assert _x(bare_host, "hello", codepage=932)[0] == "証明書 café\r\n".encode("cp932", "replace")
    assert _x(bare_host, "hello", codepage=437)[0] == b"??? caf\x82\r\n"
    assert _x(bare_host, "hello", codepage=65001)[0] == "証明書 café\r\n".encode()
    assert _x(bare_host, "chcp", codepage=932)[0] == b"Active code page: 932\r\n"  # en host: English text


def test_certutil_decode_encode_and_overwrite_rule(bare_host: Host) -> None:
    data = bytes(range(256)) * 3
    pem = (
        "-----BEGIN CERTIFICATE-----\r\n"
        + base64.b64encode(data).decode()
        + "\r\n-----END CERTIFICATE-----\r\n"
    )
    bare_host.write_file("C:\\in.b64", pem.encode())
    assert _x(bare_host, "certutil -f -decode C:\\in.b64 C:\\out.bin")[2] == 0
    assert bare_host.read_file("C:\\out.bin") == data
    out, _, code = _x(bare_host, "certutil -decode C:\\in.b64 C:\\out.bin")  # no -f: refuses to overwrite
    assert code == filecodec.HRESULT_FILE_EXISTS and b"ERROR_FILE_EXISTS" in out
    assert _x(bare_host, "certutil -f -encode C:\\out.bin C:\\enc.b64")[2] == 0
    encoded = bare_host.read_file("C:\\enc.b64") or b""
    lines = encoded.split(b"\r\n")
    assert lines[0] == b"-----BEGIN CERTIFICATE-----" and lines[-2] == b"-----END CERTIFICATE-----"
    assert all(len(x) == 64 for x in lines[1:-3])
    assert base64.b64decode(b"".join(lines[1:-2])) == data
    assert _x(bare_host, "certutil -f -decode C:\\missing C:\\x")[2] == filecodec.HRESULT_FILE_NOT_FOUND


@pytest.mark.parametrize(
    ("version", "spaced", "ok"),
    [("5.2.3790", False, False), ("6.1.7601", True, True), ("10.0.17763", False, True)],
)
def test_certutil_hashfile_forms(version: str, spaced: bool, ok: bool) -> None:
    host = make_bare_host(windows_version=version)
    host.write_file("C:\\f.bin", b"abc")
    out, _, code = _x(host, "certutil -hashfile C:\\f.bin SHA256")
    if not ok:
        assert code == filecodec.HRESULT_BAD_ALGID
        return
    digest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    shown = " ".join(digest[i : i + 2] for i in range(0, 64, 2)) if spaced else digest
    assert code == 0 and out.split(b"\r\n")[1] == shown.encode()


def test_cli_serve_prints_where_things_are_never_the_password(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    import yaml

    from opslib import winrm as transport

    env = {k: v for k, v in os.environ.items() if k != "OPSLIB_TEST_SERVE_PW"}
    env["OPSLIB_TEST_SERVE_PW"] = REHEARSAL_PASSWORD
    args = [sys.executable, "-m", "opslib", "rehearse", "serve", "--password-env", "OPSLIB_TEST_SERVE_PW"]
    args += [
        "--workdir",
        str(tmp_path),
        "--params-out",
        str(tmp_path / "p.yaml"),
        "--fault",
        "before:nosuch:fail",
    ]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl+C"):
                break
        printed = "".join(lines)
        assert "listening on http://127.0.0.1:" in printed and str(tmp_path / "p.yaml") in printed
        assert "state file:" in printed and REHEARSAL_PASSWORD not in printed
        params = yaml.safe_load((tmp_path / "p.yaml").read_text(encoding="utf-8"))
        assert params["winrm"]["password"] == "env:OPSLIB_TEST_SERVE_PW"
        os.environ["OPSLIB_TEST_SERVE_PW"] = REHEARSAL_PASSWORD
        try:
            with transport.connect_params(params["winrm"], host=params["host"]) as conn:
                assert conn.run(["hostname"]).stdout == b"WEB01\r\n"
                assert conn.run(["nosuch"], check=False).exit_code == 5  # the --fault spec is active
        finally:
            del os.environ["OPSLIB_TEST_SERVE_PW"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
