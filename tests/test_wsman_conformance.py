"""WinRM as each Windows ships it, against unmodified pywinrm, pypsrp and Python's ssl.

* 2008 R2+: Negotiate (NTLM) with message encryption over HTTP; Basic and unencrypted SOAP refused.
* HTTPS: NTLM and Basic, TLS does the encryption.
* Server 2003 / WinRM 1.1: HTTPS restricted to TLS 1.0 (AES suites only with KB948963); HTTP authenticates
  but does not encrypt.
* WS-Management conformance of a cmd-only host: Identify, resource URI, Environment/WorkingDirectory,
  ``cmd /c``, malformed XML, content type.
"""

from __future__ import annotations

import socket
import ssl
import warnings
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
import requests
import winrm
from conftest import REHEARSAL_PASSWORD, make_bare_host
from pypsrp.client import Client
from pypsrp.shell import Process, SignalCode, WinRS
from pypsrp.wsman import WSMan
from requests_ntlm import HttpNtlmAuth
from winrm.exceptions import InvalidCredentialsError, WinRMTransportError, WSManFaultError

from opslib import rehearsal
from opslib.errors import UsageError
from opslib.rehearsal import server as wsman_server

W2008R2 = "6.1.7601"
W2019 = "10.0.17763"
SOAP = "application/soap+xml;charset=UTF-8"


def _port(r: rehearsal.Rehearsal) -> int:
    return int(r.url.rsplit(":", 1)[1].split("/")[0])


@pytest.fixture
def ntlm_http() -> Iterator[rehearsal.Rehearsal]:
    """Server 2008 R2 as shipped: Negotiate only, AllowUnencrypted=false, HTTP."""
    with rehearsal.start(
        make_bare_host(windows_version=W2008R2), password=REHEARSAL_PASSWORD, auth="negotiate"
    ) as r:
        yield r


# --- NTLM with message encryption over HTTP -------------------------------------------------------


def test_pywinrm_ntlm_with_message_encryption_over_http(ntlm_http: rehearsal.Rehearsal) -> None:
    session = winrm.Session(ntlm_http.url, auth=(ntlm_http.user, REHEARSAL_PASSWORD), transport="ntlm")
    assert session.protocol.transport.message_encryption == "auto"
    ver = session.run_cmd("ver")
    assert ver.status_code == 0
    assert b"Microsoft Windows [Version 6.1.7601]" in ver.std_out
    echo = session.run_cmd("echo", ["sealed", "hello"])
    assert (echo.status_code, echo.std_out) == (0, b"sealed hello\r\n")
    assert session.protocol.transport.encryption is not None  # pywinrm really sealed the messages


def test_plain_soap_on_an_ntlm_connection_is_refused_with_500(ntlm_http: rehearsal.Rehearsal) -> None:
    """AllowUnencrypted=false: after NTLM, an application/soap+xml body over HTTP gets an empty 500."""
    auth = HttpNtlmAuth(ntlm_http.user, REHEARSAL_PASSWORD)
    with requests.Session() as s:
        s.auth = auth
        first = s.post(ntlm_http.url, data=b"", timeout=10)  # pywinrm's setup_encryption probe
        assert first.status_code == 200
        assert auth.session_security is not None
        resp = s.post(ntlm_http.url, data=b"<not-encrypted/>", headers={"Content-Type": SOAP}, timeout=10)
        assert resp.status_code == 500  # AllowUnencrypted=false
        assert resp.content == b""


def test_pywinrm_ntlm_wrong_password_is_401_with_negotiate_challenge(ntlm_http: rehearsal.Rehearsal) -> None:
    with pytest.raises(InvalidCredentialsError, match="credentials were rejected"):
        winrm.Session(ntlm_http.url, auth=(ntlm_http.user, "wrong"), transport="ntlm").run_cmd("ver")
    resp = requests.post(ntlm_http.url, data=b"", auth=HttpNtlmAuth(ntlm_http.user, "wrong"), timeout=10)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"] == "Negotiate"
    assert resp.content == b""


def test_basic_is_refused_when_basic_is_off(ntlm_http: rehearsal.Rehearsal) -> None:
    with pytest.raises(InvalidCredentialsError, match="credentials were rejected"):
        winrm.Session(ntlm_http.url, auth=(ntlm_http.user, REHEARSAL_PASSWORD), transport="basic").run_cmd(
            "ver"
        )
    resp = requests.post(ntlm_http.url, data=b"<x/>", auth=(ntlm_http.user, REHEARSAL_PASSWORD), timeout=10)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"] == "Negotiate"  # Basic is not even offered


def test_unencrypted_soap_after_ntlm_is_refused_unless_allowed() -> None:
    host = make_bare_host(windows_version=W2008R2)
    with rehearsal.start(host, password=REHEARSAL_PASSWORD, auth="negotiate") as r:
        plain = winrm.Session(
            r.url, auth=(r.user, REHEARSAL_PASSWORD), transport="ntlm", message_encryption="never"
        )
        with pytest.raises(WinRMTransportError, match="Code 500"):
            plain.run_cmd("ver")
    with rehearsal.start(
        make_bare_host(windows_version=W2008R2),
        password=REHEARSAL_PASSWORD,
        auth="negotiate",
        allow_unencrypted=True,
        allow_basic=True,
    ) as r:
        plain = winrm.Session(
            r.url, auth=(r.user, REHEARSAL_PASSWORD), transport="ntlm", message_encryption="never"
        )
        assert plain.run_cmd("echo", ["clear"]).std_out == b"clear\r\n"
        basic = winrm.Session(r.url, auth=(r.user, REHEARSAL_PASSWORD), transport="basic")
        assert basic.run_cmd("echo", ["basic"]).std_out == b"basic\r\n"


def test_pypsrp_negotiate_with_encryption_over_http(ntlm_http: rehearsal.Rehearsal) -> None:
    client = Client(
        "127.0.0.1",
        port=_port(ntlm_http),
        username=ntlm_http.user,
        password=REHEARSAL_PASSWORD,
        ssl=False,
        auth="negotiate",
    )
    out, err, rc = client.execute_cmd("ver")
    assert rc == 0 and "6.1.7601" in out and err == ""
    assert client.execute_cmd("echo psrp") == ("psrp\r\n", "", 0)
    wsman = WSMan(
        "127.0.0.1",
        port=_port(ntlm_http),
        username=ntlm_http.user,
        password=REHEARSAL_PASSWORD,
        ssl=False,
        auth="ntlm",
    )
    with wsman, WinRS(wsman) as shell:
        process = Process(shell, "cmd.exe", ["/c", "echo", "from", "process"])
        process.invoke()
        process.signal(SignalCode.CTRL_C)
        assert (process.rc, process.stdout) == (0, b"from process\r\n")


def test_pypsrp_wrong_password_fails_authentication(ntlm_http: rehearsal.Rehearsal) -> None:
    from pypsrp.exceptions import AuthenticationError

    client = Client("127.0.0.1", port=_port(ntlm_http), username=ntlm_http.user, password="wrong", ssl=False)
    with pytest.raises(AuthenticationError, match="Failed to authenticate"):
        client.execute_cmd("ver")


# --- HTTPS ----------------------------------------------------------------------------------------


def test_https_with_ntlm_and_basic() -> None:
    with rehearsal.start(
        make_bare_host(windows_version=W2019),
        password=REHEARSAL_PASSWORD,
        auth="negotiate",
        https=True,
        allow_basic=True,
    ) as r:
        assert r.url.startswith("https://")
        ntlm = winrm.Session(
            r.url, auth=(r.user, REHEARSAL_PASSWORD), transport="ntlm", ca_trust_path=str(r.ca_file)
        )
        assert ntlm.protocol.transport.encryption is None  # TLS encrypts; no message encryption
        assert ntlm.run_cmd("echo", ["tls"]).std_out == b"tls\r\n"
        basic = winrm.Session(
            r.url, auth=(r.user, REHEARSAL_PASSWORD), transport="basic", ca_trust_path=str(r.ca_file)
        )
        assert b"10.0.17763" in basic.run_cmd("ver").std_out
        client = Client(
            "127.0.0.1",
            port=_port(r),
            username=r.user,
            password=REHEARSAL_PASSWORD,
            ssl=True,
            cert_validation=str(r.ca_file),
        )
        assert client.execute_cmd("echo psrp-tls") == ("psrp-tls\r\n", "", 0)


def test_https_without_allow_basic_refuses_basic() -> None:
    with rehearsal.start(
        make_bare_host(windows_version=W2019), password=REHEARSAL_PASSWORD, auth="ntlm", https=True
    ) as r:
        basic = winrm.Session(
            r.url, auth=(r.user, REHEARSAL_PASSWORD), transport="basic", ca_trust_path=str(r.ca_file)
        )
        with pytest.raises(InvalidCredentialsError):
            basic.run_cmd("ver")


# --- Server 2003: WinRM 1.1 and Schannel TLS 1.0 --------------------------------------------------


def _tls10_client(ca_file: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(ca_file))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    return ctx


def _handshake(port: int, ctx: ssl.SSLContext) -> tuple[str | None, tuple[str, str, int] | None]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            return tls.version(), tls.cipher()


def test_tls10_listener_refuses_default_clients_and_serves_aes_to_tls10_clients() -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    with rehearsal.start(make_bare_host(), password=REHEARSAL_PASSWORD, auth="negotiate", tls="tls1.0") as r:
        assert r.https and r.ca_file is not None
        cert = x509.load_pem_x509_certificate(r.ca_file.read_bytes())
        assert isinstance(cert.signature_hash_algorithm, hashes.SHA1)
        assert cert.public_key().key_size == 2048  # type: ignore[union-attr]
        with pytest.raises(ssl.SSLError, match="PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL"):
            _handshake(_port(r), ssl.create_default_context(cafile=str(r.ca_file)))
        version, cipher = _handshake(_port(r), _tls10_client(r.ca_file))
        assert version == "TLSv1"
        assert cipher is not None and cipher[0] in ("AES128-SHA", "AES256-SHA")
        # pywinrm on a default requests stack sees the same refusal, as an SSLError
        session = winrm.Session(
            r.url, auth=(r.user, REHEARSAL_PASSWORD), transport="ntlm", ca_trust_path=str(r.ca_file)
        )
        with pytest.raises(requests.exceptions.SSLError):
            session.run_cmd("ver")


def test_wsman_over_the_tls10_listener_with_a_tls10_client() -> None:
    import base64
    import http.client

    with rehearsal.start(
        make_bare_host(), password=REHEARSAL_PASSWORD, auth="negotiate", tls="tls1.0", allow_basic=True
    ) as r:
        assert r.ca_file is not None
        conn = http.client.HTTPSConnection(
            "127.0.0.1", _port(r), context=_tls10_client(r.ca_file), timeout=10
        )
        token = base64.b64encode(f"{r.user}:{REHEARSAL_PASSWORD}".encode()).decode()
        try:
            conn.request(
                "POST",
                "/wsman",
                body=IDENTIFY.encode(),
                headers={"Content-Type": SOAP, "Authorization": f"Basic {token}"},
            )
            resp = conn.getresponse()
            assert resp.status == 200
            assert b"OS: 5.2.3790 SP: 2.0 Stack: 1.1" in resp.read()
            assert conn.sock.version() == "TLSv1"  # type: ignore[union-attr]
        finally:
            conn.close()


def test_tls10_without_aes_update_fails_for_every_client() -> None:
    with rehearsal.start(
        make_bare_host(), password=REHEARSAL_PASSWORD, auth="negotiate", tls="tls1.0-no-aes"
    ) as r:
        assert r.ca_file is not None
        for ctx in (ssl.create_default_context(cafile=str(r.ca_file)), _tls10_client(r.ca_file)):
            with pytest.raises(ssl.SSLError, match="HANDSHAKE_FAILURE"):
                _handshake(_port(r), ctx)


def test_winrm11_http_authenticates_but_does_not_encrypt() -> None:
    with rehearsal.start(make_bare_host(), password=REHEARSAL_PASSWORD, auth="negotiate") as r:
        assert r._server.winrm_version == "1.1"  # from the host's Windows version (5.2)
        plain = winrm.Session(
            r.url, auth=(r.user, REHEARSAL_PASSWORD), transport="ntlm", message_encryption="never"
        )
        assert b"5.2.3790" in plain.run_cmd("ver").std_out
        sealed = winrm.Session(r.url, auth=(r.user, REHEARSAL_PASSWORD), transport="ntlm")
        with pytest.raises(WinRMTransportError, match="Code 415"):
            sealed.run_cmd("ver")
        basic = winrm.Session(r.url, auth=(r.user, REHEARSAL_PASSWORD), transport="basic")
        with pytest.raises(InvalidCredentialsError):
            basic.run_cmd("ver")


def test_shipped_options_table() -> None:
    assert rehearsal.shipped_options("5.2.3790") == {
        "winrm_version": "1.1",
        "auth": "negotiate",
        "https": True,
        "tls": "tls1.0",
    }
    assert rehearsal.shipped_options(W2008R2)["auth"] == "negotiate"
    assert rehearsal.shipped_options(W2008R2)["https"] is False
    assert rehearsal.shipped_options(W2019)["winrm_version"] == "3.0"


def test_bad_options_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="unknown TLS mode"):
        rehearsal.start(make_bare_host(), password=REHEARSAL_PASSWORD, tls="ssl3")
    with pytest.raises(UsageError, match="unknown auth"):
        rehearsal.start(make_bare_host(), password=REHEARSAL_PASSWORD, auth="kerberos")
    with pytest.raises(UsageError, match="cannot hold"):
        rehearsal.start(make_bare_host(), password="has:colon", auth="ntlm")


# --- WS-Management conformance of a cmd-only host -------------------------------------------------


def _protocol(r: rehearsal.Rehearsal) -> winrm.Protocol:
    return winrm.Protocol(r.url, transport="basic", username=r.user, password=REHEARSAL_PASSWORD)


def _envelope(action: str, resource_uri: str, body: str) -> str:
    return (
        f'<s:Envelope xmlns:s="{wsman_server.NS["s"]}" xmlns:a="{wsman_server.NS["a"]}" '
        f'xmlns:w="{wsman_server.NS["w"]}" xmlns:rsp="{wsman_server.NS["rsp"]}"><s:Header>'
        f"<a:To>{''}</a:To><a:Action>{action}</a:Action><a:MessageID>uuid:0A1B</a:MessageID>"
        f"<w:ResourceURI>{resource_uri}</w:ResourceURI><w:OperationTimeout>PT20S</w:OperationTimeout>"
        f"</s:Header><s:Body>{body}</s:Body></s:Envelope>"
    )


SHELL_BODY = "<rsp:Shell><rsp:InputStreams>stdin</rsp:InputStreams><rsp:OutputStreams>stdout stderr</rsp:OutputStreams></rsp:Shell>"


@pytest.mark.parametrize(
    "resource_uri",
    [
        "http://schemas.microsoft.com/powershell/Microsoft.PowerShell",
        "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/Win32_Service",
    ],
)
def test_create_for_another_resource_uri_is_refused(endpoint: rehearsal.Rehearsal, resource_uri: str) -> None:
    p = _protocol(endpoint)
    with pytest.raises(WSManFaultError) as info:
        p.send_message(_envelope(wsman_server.ACTION_CREATE, resource_uri, SHELL_BODY))
    assert info.value.wsman_fault_code == 2150858811
    assert info.value.fault_subcode == "w:DestinationUnreachable"
    assert not endpoint._server.shells  # no cmd shell was created behind the client's back


def test_enumerate_is_action_not_supported_not_shell_not_found(endpoint: rehearsal.Rehearsal) -> None:
    p = _protocol(endpoint)
    with pytest.raises(WSManFaultError) as info:
        p.send_message(
            _envelope(
                "http://schemas.xmlsoap.org/ws/2004/09/enumeration/Enumerate",
                "http://schemas.microsoft.com/wbem/wsman/1/wmi/root/cimv2/Win32_Service",
                '<n:Enumerate xmlns:n="http://schemas.xmlsoap.org/ws/2004/09/enumeration"/>',
            )
        )
    assert info.value.wsman_fault_code == wsman_server.ERROR_WSMAN_ACTION_NOT_SUPPORTED


IDENTIFY = (
    '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:wsmid="http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd">'
    "<s:Header/><s:Body><wsmid:Identify/></s:Body></s:Envelope>"
)


@pytest.mark.parametrize(
    ("windows_version", "product_version"),
    [("5.2.3790", "OS: 5.2.3790 SP: 2.0 Stack: 1.1"), (W2019, "OS: 10.0.17763 SP: 0.0 Stack: 3.0")],
)
def test_identify_answers_per_emulated_os(windows_version: str, product_version: str) -> None:
    host = make_bare_host(windows_version=windows_version)
    with rehearsal.start(host, password=REHEARSAL_PASSWORD) as r:
        reply = _protocol(r).send_message(IDENTIFY)
    ns = {"wsmid": wsman_server.NS_WSMID}
    identify = ET.fromstring(reply).find(".//wsmid:IdentifyResponse", ns)
    assert identify is not None
    assert identify.findtext("wsmid:ProtocolVersion", namespaces=ns) == wsman_server.NS["w"]
    assert identify.findtext("wsmid:ProductVendor", namespaces=ns) == "Microsoft Corporation"
    assert identify.findtext("wsmid:ProductVersion", namespaces=ns) == product_version


def test_identify_and_faults_over_encrypted_ntlm(ntlm_http: rehearsal.Rehearsal) -> None:
    session = winrm.Session(ntlm_http.url, auth=(ntlm_http.user, REHEARSAL_PASSWORD), transport="ntlm")
    reply = session.protocol.send_message(IDENTIFY)
    assert b"OS: 6.1.7601 SP: 1.0 Stack: 2.0" in reply
    with pytest.raises(WSManFaultError) as info:  # the 500 fault is sealed too; pywinrm unseals it
        session.protocol.send_message(
            _envelope(
                wsman_server.ACTION_CREATE,
                "http://schemas.microsoft.com/powershell/Microsoft.PowerShell",
                SHELL_BODY,
            )
        )
    assert info.value.wsman_fault_code == wsman_server.ERROR_WSMAN_INVALID_RESOURCE_URI


def test_unauthenticated_identify_hides_the_os_version(ntlm_http: rehearsal.Rehearsal) -> None:
    resp = requests.post(
        ntlm_http.url,
        data=IDENTIFY.encode(),
        headers={"Content-Type": SOAP, "WSMANIDENTIFY": "unauthenticated"},
        timeout=10,
    )
    assert resp.status_code == 200
    assert b"OS: 0.0.0 SP: 0.0 Stack: 2.0" in resp.content
    assert b"Microsoft Corporation" in resp.content
    with rehearsal.start(make_bare_host(), password=REHEARSAL_PASSWORD, auth="negotiate") as legacy:
        resp = requests.post(
            legacy.url,
            data=IDENTIFY.encode(),
            headers={"Content-Type": SOAP, "WSMANIDENTIFY": "unauthenticated"},
            timeout=10,
        )
        assert resp.status_code == 401  # WinRM 1.1 wants credentials for Identify too


def test_two_ntlm_servers_keep_their_own_accounts() -> None:
    """NTLM_USER_FILE is process-wide: concurrent logins to two servers must each see their own account."""
    from concurrent.futures import ThreadPoolExecutor

    with (
        rehearsal.start(
            make_bare_host(windows_version=W2008R2), password="First-Pa55", auth="negotiate"
        ) as one,
        rehearsal.start(
            make_bare_host(windows_version=W2008R2), password="Second-Pa55", auth="negotiate"
        ) as two,
    ):

        def run(target: rehearsal.Rehearsal, password: str) -> bytes:
            session = winrm.Session(target.url, auth=(target.user, password), transport="ntlm")
            return bytes(session.run_cmd("echo", [password]).std_out)

        with ThreadPoolExecutor(max_workers=4) as pool:
            pairs = [(one, "First-Pa55"), (two, "Second-Pa55")] * 3
            jobs = [pool.submit(run, target, password) for target, password in pairs]
            assert sorted({j.result() for j in jobs}) == [b"First-Pa55\r\n", b"Second-Pa55\r\n"]
        with pytest.raises(InvalidCredentialsError):
            run(one, "Second-Pa55")


def test_environment_and_working_directory_are_honoured(bare_host: rehearsal.Host) -> None:
    bare_host.dirs.add(bare_host.norm("C:\\Work"))
    bare_host.write_file("C:\\Work\\marker.txt", b"found me\r\n")
    with rehearsal.start(bare_host, password=REHEARSAL_PASSWORD) as r:
        p = _protocol(r)
        shell = p.open_shell(env_vars={"RENEW_TAG": "tag-42"}, working_directory="C:\\Work")
        try:
            for line, expected in (
                ("echo %RENEW_TAG%", b"tag-42\r\n"),
                ("cd", b"C:\\Work\r\n"),
                ("type marker.txt", b"found me\r\n"),
            ):
                cid = p.run_command(shell, line)
                out, err, rc = p.get_command_output(shell, cid)
                p.cleanup_command(shell, cid)
                assert (out, rc) == (expected, 0), (line, err)
        finally:
            p.close_shell(shell)
        assert "RENEW_TAG" not in bare_host.env  # the shell's environment did not leak into the host
        plain = p.open_shell()
        cid = p.run_command(plain, "echo %RENEW_TAG%")
        out, _, _ = p.get_command_output(plain, cid)
        p.close_shell(plain)
        assert out == b"%RENEW_TAG%\r\n"


@pytest.mark.parametrize(
    ("command", "args"),
    [
        ("cmd.exe /c echo via-cmd", []),
        ("cmd", ["/c", "echo", "via-cmd"]),
        ("C:\\WINDOWS\\system32\\cmd.exe", ["/s", "/c", '"echo via-cmd"']),
    ],
)
def test_cmd_c_as_the_program_runs_its_argument(
    endpoint: rehearsal.Rehearsal, command: str, args: list[str]
) -> None:
    p = _protocol(endpoint)
    shell = p.open_shell()
    cid = p.run_command(shell, command, args)
    out, err, rc = p.get_command_output(shell, cid)
    p.close_shell(shell)
    assert (out, err, rc) == (b"via-cmd\r\n", b"", 0)


def test_malformed_xml_is_a_soap_fault(endpoint: rehearsal.Rehearsal) -> None:
    resp = requests.post(
        endpoint.url,
        data=b"<s:Envelope><unclosed>",
        headers={"Content-Type": SOAP},
        auth=(endpoint.user, REHEARSAL_PASSWORD),
        timeout=10,
    )
    assert resp.status_code == 500
    fault = ET.fromstring(resp.content).find(".//f:WSManFault", wsman_server.NS)
    assert fault is not None and fault.get("Code") == str(wsman_server.ERROR_WSMAN_SCHEMA_VALIDATION)


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", "application/xml"])
def test_non_soap_content_type_is_415(endpoint: rehearsal.Rehearsal, content_type: str) -> None:
    resp = requests.post(
        endpoint.url,
        data=IDENTIFY.encode(),
        headers={"Content-Type": content_type},
        auth=(endpoint.user, REHEARSAL_PASSWORD),
        timeout=10,
    )
    assert resp.status_code == 415
    assert resp.content == b""


def test_serve_cli_accepts_the_new_flags() -> None:
    from opslib import cli

    parser = cli._parser()
    a = parser.parse_args(
        ["rehearse", "serve", "--auth", "ntlm", "--allow-basic", "--allow-unencrypted", "--tls", "tls1.0"]
    )
    assert (a.auth, a.allow_basic, a.allow_unencrypted, a.tls) == ("ntlm", True, True, "tls1.0")
    a = parser.parse_args(["rehearse", "serve"])
    assert (a.auth, a.allow_basic, a.allow_unencrypted, a.tls) == (None, None, None, "modern")
    # No --auth: the scenario's Windows as shipped (NTLM with message encryption from 2008 R2 on).
    from opslib.rehearsal.scenarios import SCENARIOS, shipped_auth

    assert {n: shipped_auth(n) for n in ("default", "iis6-ja", "iis7", "iis75-ja", "iis85", "iis10")} == {
        "default": "basic",
        "iis6-ja": "basic",
        "iis7": "ntlm",
        "iis75-ja": "ntlm",
        "iis85": "ntlm",
        "iis10": "ntlm",
    }
    assert {shipped_auth(n) for n in SCENARIOS if n.startswith("iis1")} == {"ntlm"}


def test_cli_serve_with_ntlm(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OPSLIB_TEST_SERVE_PW"}
    env["OPSLIB_TEST_SERVE_PW"] = REHEARSAL_PASSWORD
    args = [sys.executable, "-m", "opslib", "rehearse", "serve", "--password-env", "OPSLIB_TEST_SERVE_PW"]
    args += ["--workdir", str(tmp_path), "--scenario", "iis7", "--auth", "ntlm"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl+C"):
                break
        printed = "".join(lines)
        assert "auth:        negotiate" in printed and REHEARSAL_PASSWORD not in printed
        url = next(w for w in printed.split() if w.startswith("http://127.0.0.1:"))
        session = winrm.Session(url, auth=("Administrator", REHEARSAL_PASSWORD), transport="ntlm")
        assert session.run_cmd("echo", ["served"]).std_out == b"served\r\n"
        with pytest.raises(InvalidCredentialsError):
            winrm.Session(url, auth=("Administrator", REHEARSAL_PASSWORD), transport="basic").run_cmd("ver")
        assert not any(
            REHEARSAL_PASSWORD in p.read_text(errors="ignore") for p in tmp_path.rglob("*") if p.is_file()
        )
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_ntlm_account_file_is_private_and_removed_on_stop() -> None:
    import os
    import stat

    r = rehearsal.start(make_bare_host(windows_version=W2008R2), password=REHEARSAL_PASSWORD, auth="ntlm")
    try:
        user_file = r._server.user_file
        assert user_file is not None and user_file.is_file()
        assert stat.S_IMODE(user_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(user_file.parent.stat().st_mode) == 0o700
        assert user_file.parent != r.workdir  # not beside the evidence-facing work folder
        assert "NTLM_USER_FILE" not in os.environ  # set only while a context reads it
    finally:
        r.stop()
    assert not user_file.exists()


def _ntlm_post_with_bindings(r: rehearsal.Rehearsal, bindings: bytes | None) -> int:
    """An NTLM login over HTTPS whose channel binding token is ``bindings`` (None: no bindings)."""
    import base64

    import spnego
    from spnego.channel_bindings import GssChannelBindings

    cb = GssChannelBindings(application_data=bindings) if bindings is not None else None
    client = spnego.client(
        r.user,
        REHEARSAL_PASSWORD,
        hostname="127.0.0.1",
        service="http",
        protocol="ntlm",
        channel_bindings=cb,
        options=spnego.NegotiateOptions.use_ntlm,
    )
    with requests.Session() as s:
        first = s.post(
            r.url,
            verify=str(r.ca_file),
            data=b"",
            headers={"Authorization": "Negotiate " + base64.b64encode(client.step() or b"").decode()},
        )
        assert first.status_code == 401
        challenge = base64.b64decode(first.headers["WWW-Authenticate"].split(" ", 1)[1])
        final = s.post(
            r.url,
            verify=str(r.ca_file),
            data=b"",
            headers={
                "Authorization": "Negotiate " + base64.b64encode(client.step(challenge) or b"").decode()
            },
        )
        return final.status_code


def test_https_ntlm_checks_channel_binding_tokens_relaxed() -> None:
    with rehearsal.start(
        make_bare_host(windows_version=W2019), password=REHEARSAL_PASSWORD, auth="ntlm", https=True
    ) as r:
        from opslib.rehearsal.ntlm import channel_bindings_for

        right = channel_bindings_for((r.workdir / "winrm-server.pem").read_bytes()).application_data
        assert right.startswith(b"tls-server-end-point:")
        assert _ntlm_post_with_bindings(r, right) == 200
        assert _ntlm_post_with_bindings(r, None) == 200  # no token at all: Relaxed accepts
        assert _ntlm_post_with_bindings(r, b"tls-server-end-point:" + b"\x01" * 32) == 401  # wrong: refused
