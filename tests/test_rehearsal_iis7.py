"""The emulated IIS 7–10 host: appcmd, netsh http sslcert, HTTP.sys bindings in the registry, SNI endpoints.

Driven through the interpreter (``opslib.rehearsal.cmd.execute``) and through unmodified pywinrm
against ``opslib.rehearsal.start(scenario=...)``; TLS endpoints checked with the kit's pyOpenSSL
client (``opslib.tls.fetch_chain``), with and without SNI.
"""

from __future__ import annotations

import json
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import REHEARSAL_PASSWORD
from winrm.protocol import Protocol

from opslib import rehearsal, tls
from opslib.errors import EndpointError
from opslib.rehearsal import cmd, iis7, scenarios, tlsserve
from opslib.rehearsal.host import CommandResult, Host
from opslib.rehearsal.pki import make_pki
from opslib.rehearsal.programs import stores

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
APPCMD = r"%windir%\system32\inetsrv\appcmd.exe"
SSL_KEY = r"HKLM\SYSTEM\CurrentControlSet\Services\HTTP\Parameters\SslBindingInfo\0.0.0.0:443"
SNI_BASE = r"HKLM\SYSTEM\CurrentControlSet\Services\HTTP\Parameters\SslSniBindingInfo"
IIS_APPID = "{4dc3e181-e14b-4a21-b022-59fc669b0914}"


def build(name: str, tmp_path: Path, **kw: object) -> Host:
    return scenarios.build_host(name, workdir=tmp_path, now_utc=NOW, **kw)  # type: ignore[arg-type]


def run(host: Host, line: str) -> CommandResult:
    return cmd.execute(host, line, codepage=host.default_codepage)


def text(host: Host, data: bytes) -> str:
    return data.decode("cp932" if host.default_codepage == 932 else "cp437")


def cert_hash(host: Host, key: str) -> str:
    value = host.reg_get(key, "SslCertHash")
    assert value is not None and value[1] == "REG_BINARY"
    return bytes(value[2]).hex().upper()


def add_new_certificate(host: Host) -> str:
    """The renewed certificate, installed in MY with its key (what step 1 of the kit leaves)."""
    pki = make_pki(now_utc=NOW, hostnames=("www1.example.jp",))
    return stores.add_certificate(host, "MY", pki.new_leaf, key=pki.new_key)


@pytest.fixture
def sni_host(tmp_path: Path) -> Iterator[tuple[Host, tlsserve.TlsEndpoints]]:
    host = build("iis10-sni", tmp_path)
    endpoints = tlsserve.attach(host)
    try:
        yield host, endpoints
    finally:
        endpoints.stop()


# --- scenarios -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "major", "minor", "version", "build_number", "locale", "codepage"),
    [
        ("iis75-ja", 7, 5, "6.1", "7601", "ja", 932),
        ("iis10", 10, 0, "10.0", "17763", "en", 437),
        ("iis10-sni", 10, 0, "10.0", "17763", "en", 437),
    ],
)
def test_iis7_scenarios_report_their_versions(
    tmp_path: Path,
    name: str,
    major: int,
    minor: int,
    version: str,
    build_number: str,
    locale: str,
    codepage: int,
) -> None:
    host = build(name, tmp_path)
    assert (host.locale, host.default_codepage, host.iis_major) == (locale, codepage, major)
    inetstp = r"HKLM\SOFTWARE\Microsoft\InetStp"
    assert host.reg_get(inetstp, "MajorVersion") == ("MajorVersion", "REG_DWORD", major)
    assert host.reg_get(inetstp, "MinorVersion") == ("MinorVersion", "REG_DWORD", minor)
    nt = r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion"
    assert host.reg_get(nt, "CurrentVersion")[2] == version  # type: ignore[index]
    assert host.reg_get(nt, "CurrentBuildNumber")[2] == build_number  # type: ignore[index]
    assert {"appcmd", "netsh", "certutil", "certreq", "reg"} <= set(host.programs)
    assert host.sites == {}  # no IIS 6 metabase on IIS 7+
    # The seed situation: pending request in REQUEST, the current certificate in MY.
    assert len(stores.certificates(host, "REQUEST")) == 1
    assert host.extra["current_thumbprint"] in {e.thumbprint for e in stores.certificates(host, "MY")}
    state = host.state()
    assert state["web_sites"]["1"]["name"] == "www1.example.jp"
    assert state["web_sites"]["2"]["state"] == "Stopped"
    assert "DefaultAppPool" in state["app_pools"]


def test_iis6_scenarios_have_no_appcmd_and_no_netsh_http(tmp_path: Path) -> None:
    host = build("default", tmp_path)
    assert "appcmd" not in host.programs
    result = run(host, f"{APPCMD} list site /xml")
    assert result.exit_code == 9009
    result = run(host, "netsh http show sslcert")
    assert result.exit_code == 1
    assert "The following command was not found: http show sslcert." in text(host, result.stdout)


# --- appcmd ------------------------------------------------------------------------------------------


def test_appcmd_list_site_xml_parses_and_lists_every_site(tmp_path: Path) -> None:
    host = build("iis10-sni", tmp_path)
    result = run(host, f"{APPCMD} list site /xml")
    assert result.exit_code == 0 and result.stderr == b""
    root = ET.fromstring(result.stdout)
    assert root.tag == "appcmd"
    sites = {e.get("SITE.NAME"): e.attrib for e in root.findall("SITE")}
    assert list(sites) == ["www1.example.jp", "renew.www1.example.jp", "www2.example.jp", "legacy.example.jp"]
    assert sites["www1.example.jp"] == {
        "SITE.NAME": "www1.example.jp",
        "SITE.ID": "1",
        "bindings": "http/*:80:www1.example.jp,https/*:443:www1.example.jp",
        "state": "Started",
    }
    assert sites["renew.www1.example.jp"]["state"] == "Stopped"
    assert sites["legacy.example.jp"]["bindings"].endswith("https/*:443:")
    # One site by name, and the text form of the getting-started page.
    one = run(host, f'{APPCMD} list site "www2.example.jp" /xml')
    assert [e.get("SITE.ID") for e in ET.fromstring(one.stdout).findall("SITE")] == ["3"]
    plain = run(host, f"{APPCMD} list site /site.name:www1.example.jp")
    assert plain.stdout == (
        b'SITE "www1.example.jp" (id:1,bindings:http/*:80:www1.example.jp,'
        b"https/*:443:www1.example.jp,state:Started)\r\n"
    )


def test_appcmd_list_apppool_xml(tmp_path: Path) -> None:
    host = build("iis10", tmp_path)
    result = run(host, f"{APPCMD} list apppool /xml")
    assert result.exit_code == 0
    pools = {e.get("APPPOOL.NAME"): e.get("state") for e in ET.fromstring(result.stdout).findall("APPPOOL")}
    assert pools == {
        "DefaultAppPool": "Started",
        "renew.www1.example.jp": "Stopped",
        "www1.example.jp": "Started",
    }
    assert run(host, f"{APPCMD} start apppool /apppool.name:renew.www1.example.jp").exit_code == 0
    assert host.app_pools["renew.www1.example.jp"].state == "Started"
    again = run(host, f"{APPCMD} start apppool renew.www1.example.jp")
    assert again.exit_code == iis7.ERROR_SERVICE_ALREADY_RUNNING
    assert run(host, f"{APPCMD} stop apppool renew.www1.example.jp").exit_code == 0
    assert host.app_pools["renew.www1.example.jp"].state == "Stopped"


def test_appcmd_unknown_site_is_error_not_found(tmp_path: Path) -> None:
    host = build("iis10", tmp_path)
    for line in (f"{APPCMD} list site nosuch /xml", f"{APPCMD} start site /site.name:nosuch"):
        result = run(host, line)
        assert result.exit_code == 1168
        assert (
            text(host, result.stdout)
            == 'ERROR ( message:Cannot find SITE object with identifier "nosuch". )\r\n'
        )


def test_appcmd_start_and_stop_change_the_site_state(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    host = build("iis10", tmp_path, state_file=state_file)
    stop = run(host, f"{APPCMD} stop site /site.name:www1.example.jp")
    assert (stop.exit_code, stop.stdout) == (0, b'"www1.example.jp" successfully stopped.\r\n')
    assert host.web_sites[1].state == "Stopped"
    assert json.loads(state_file.read_text(encoding="utf-8"))["web_sites"]["1"]["state"] == "Stopped"
    again = run(host, f"{APPCMD} stop site /site.name:www1.example.jp")
    assert again.exit_code == iis7.ERROR_SERVICE_NOT_ACTIVE
    assert b"hresult:80070426" in again.stdout
    # The work site gets the production binding; starting it while production runs conflicts.
    assert run(host, f"{APPCMD} start site www1.example.jp").exit_code == 0
    added = run(
        host,
        f"{APPCMD} set site /site.name:renew.www1.example.jp "
        "/+bindings.[protocol='https',bindingInformation='*:443:']",
    )
    assert (added.exit_code, added.stdout) == (0, b'SITE object "renew.www1.example.jp" changed\r\n')
    clash = run(host, f"{APPCMD} start site /site.name:renew.www1.example.jp")
    assert clash.exit_code == iis7.ERROR_ALREADY_EXISTS
    assert b"hresult:800700b7" in clash.stdout
    assert host.web_sites[2].state == "Stopped"
    assert run(host, f"{APPCMD} stop site www1.example.jp").exit_code == 0
    assert run(host, f"{APPCMD} start site renew.www1.example.jp").exit_code == 0
    assert [s.state for _, s in sorted(host.web_sites.items())] == ["Stopped", "Started"]


def test_appcmd_binding_edits(tmp_path: Path) -> None:
    host = build("iis10", tmp_path)
    sni = "/+bindings.[protocol='https',bindingInformation='*:443:www3.example.jp',sslFlags='1']"
    assert run(host, f"{APPCMD} set site www1.example.jp {sni}").exit_code == 0
    assert (host.web_sites[1].bindings[-1].binding_information, host.web_sites[1].bindings[-1].ssl_flags) == (
        "*:443:www3.example.jp",
        1,
    )
    duplicate = run(host, f"{APPCMD} set site www1.example.jp {sni}")
    assert duplicate.exit_code == 183
    assert b"Cannot add duplicate collection entry of type 'binding'" in duplicate.stdout
    remove = "/-bindings.[protocol='https',bindingInformation='*:443:www3.example.jp']"
    assert run(host, f"{APPCMD} set site www1.example.jp {remove}").exit_code == 0
    assert run(host, f"{APPCMD} set site www1.example.jp {remove}").exit_code == 1168
    # IIS 7.5 has no sslFlags attribute (SNI is IIS 8+).
    old = build("iis75-ja", tmp_path / "ja")
    refused = run(old, f"{APPCMD} set site www1.example.jp {sni}")
    assert refused.exit_code == 87
    assert len(old.web_sites[1].bindings) == 2


def test_appcmd_needs_an_administrator(tmp_path: Path) -> None:
    host = build("iis10", tmp_path)
    host.is_admin = False
    result = run(host, f"{APPCMD} list site /xml")
    assert result.exit_code == 5
    assert b"insufficient permissions" in result.stdout


# --- netsh http sslcert -------------------------------------------------------------------------------


def test_netsh_add_update_delete_change_the_registry(tmp_path: Path) -> None:
    host = build("iis10", tmp_path)
    current = str(host.extra["current_thumbprint"])
    new = add_new_certificate(host)
    assert cert_hash(host, SSL_KEY) == current
    assert host.reg_get(SSL_KEY, "SslCertStoreName") == ("SslCertStoreName", "REG_SZ", "MY")
    assert host.reg_get(SSL_KEY, "AppId") == ("AppId", "REG_BINARY", uuid.UUID(IIS_APPID).bytes_le)

    add = run(
        host, f"netsh http add sslcert ipport=0.0.0.0:443 certhash={new} appid={IIS_APPID} certstorename=MY"
    )
    assert add.exit_code == 1
    assert text(host, add.stdout) == (
        "SSL Certificate add failed, Error: 183\r\nCannot create a file when that file already exists.\r\n\r\n"
    )
    assert cert_hash(host, SSL_KEY) == current  # unchanged

    update = run(
        host, f"netsh http update sslcert ipport=0.0.0.0:443 certhash={new.lower()} appid={IIS_APPID}"
    )
    assert (update.exit_code, update.stdout) == (0, b"\r\nSSL Certificate successfully updated\r\n\r\n")
    assert cert_hash(host, SSL_KEY) == new

    # reg export sees the binding exactly as regedit writes it.
    assert run(host, r"mkdir C:\t").exit_code == 0
    exported = run(host, r"reg export HKLM\SYSTEM\CurrentControlSet\Services\HTTP\Parameters C:\t\http.reg")
    assert exported.exit_code == 0
    data = host.read_file(r"C:\t\http.reg")
    assert data is not None and data.startswith(b"\xff\xfe")
    hex_bytes = ",".join(f"{b:02x}" for b in bytes.fromhex(new))
    block = (
        "[HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Services\\HTTP\\Parameters\\SslBindingInfo\\0.0.0.0:443]\r\n"
        f'"SslCertHash"=hex:{hex_bytes}\r\n'
        '"AppId"=hex:81,e1,c3,4d,4b,e1,21,4a,b0,22,59,fc,66,9b,09,14\r\n'
        '"SslCertStoreName"="MY"\r\n'
    )
    assert block.encode("utf-16-le") in data

    delete = run(host, "netsh http delete sslcert ipport=0.0.0.0:443")
    assert (delete.exit_code, delete.stdout) == (0, b"\r\nSSL Certificate successfully deleted\r\n\r\n")
    assert not host.reg_has_key(SSL_KEY)
    assert run(host, f"reg query {SSL_KEY}").exit_code == 1
    missing = run(host, "netsh http delete sslcert ipport=0.0.0.0:443")
    assert missing.exit_code == 1
    assert b"SSL Certificate deletion failed, Error: 2" in missing.stdout

    again = run(host, f"netsh http add sslcert ipport=0.0.0.0:443 certhash={new} appid={IIS_APPID}")
    assert (again.exit_code, again.stdout) == (0, b"\r\nSSL Certificate successfully added\r\n\r\n")
    assert cert_hash(host, SSL_KEY) == new
    query = run(host, f"reg query {SSL_KEY} /v SslCertHash")
    assert query.exit_code == 0 and new.encode("ascii") in query.stdout


def test_netsh_refuses_bad_parameters_and_unusable_certificates(tmp_path: Path) -> None:
    host = build("iis10", tmp_path)
    current = str(host.extra["current_thumbprint"])
    for line in (
        f"netsh http update sslcert ipport=0.0.0.0:443 certhash={current[:-2]} appid={IIS_APPID}",
        f"netsh http update sslcert ipport=0.0.0.0:443 certhash={current} appid=4dc3e181",
        f"netsh http update sslcert ipport=0.0.0.0:99999 certhash={current} appid={IIS_APPID}",
        f"netsh http update sslcert ipport=0.0.0.0:443 certhash={current} appid={IIS_APPID} bogus=1",
    ):
        result = run(host, line)
        assert (result.exit_code, result.stdout) == (1, b"\r\nThe parameter is incorrect.\r\n\r\n"), line
    # A certificate in MY without its private key: error 1312; the binding keeps the old one.
    pki = make_pki(now_utc=NOW, hostnames=("www1.example.jp",))
    keyless = stores.add_certificate(host, "MY", pki.wrong_host)
    result = run(host, f"netsh http update sslcert ipport=0.0.0.0:443 certhash={keyless} appid={IIS_APPID}")
    assert result.exit_code == 1
    assert b"Error: 1312" in result.stdout
    assert cert_hash(host, SSL_KEY) == current


def test_netsh_sni_bindings_are_iis8_and_later(tmp_path: Path) -> None:
    old = build("iis75-ja", tmp_path / "ja")
    current = str(old.extra["current_thumbprint"])
    sni = f"hostnameport=www1.example.jp:443 certhash={current} appid={IIS_APPID} certstorename=MY"
    refused = run(old, f"netsh http add sslcert {sni}")
    assert refused.exit_code == 1
    assert not old.reg_has_key(SNI_BASE + r"\www1.example.jp:443")
    assert (
        run(
            old, f"netsh http update sslcert ipport=0.0.0.0:443 certhash={current} appid={IIS_APPID}"
        ).exit_code
        == 1
    )

    host = build("iis10", tmp_path / "en")
    assert run(host, f"netsh http add sslcert {sni}").exit_code == 0
    key = SNI_BASE + r"\www1.example.jp:443"
    assert cert_hash(host, key) == current
    shown = run(host, "netsh http show sslcert hostnameport=www1.example.jp:443")
    assert shown.exit_code == 0
    assert b"Hostname:port                : www1.example.jp:443" in shown.stdout
    assert current.lower().encode("ascii") in shown.stdout
    assert run(host, "netsh http delete sslcert hostnameport=www1.example.jp:443").exit_code == 0
    assert not host.reg_has_key(key)


def test_japanese_host_writes_cp932(tmp_path: Path) -> None:
    host = build("iis75-ja", tmp_path)
    shown = run(host, "netsh http show sslcert")
    assert shown.stdout.startswith("\r\nSSL 証明書のバインド:\r\n".encode("cp932"))
    missing = run(host, f"{APPCMD} start site nosuch")
    assert missing.exit_code == 1168
    assert (
        missing.stdout
        == 'エラー ( message:識別子 "nosuch" の SITE オブジェクトが見つかりません。 )\r\n'.encode("cp932")
    )


# --- TLS endpoints ------------------------------------------------------------------------------------


def served(port: int, servername: str | None) -> str:
    return tls.fetch_chain("127.0.0.1", port, servername=servername, timeout_s=5).thumbprints[0]


def test_sni_endpoint_serves_the_binding_of_the_name(sni_host: tuple[Host, tlsserve.TlsEndpoints]) -> None:
    host, _ = sni_host
    port = host.extra["tls_ports"]["0.0.0.0:443"]
    assert host.extra["verify_endpoint"] == f"127.0.0.1:{port}"
    others = host.extra["other_thumbprints"]
    assert served(port, "www1.example.jp") == host.extra["current_thumbprint"]
    assert served(port, "WWW2.example.jp") == others["www2.example.jp"]
    # No SNI, or a name without an SNI binding: the 0.0.0.0:443 binding (the non-SNI site's).
    assert served(port, None) == others["legacy.example.jp"]
    assert served(port, "unknown.example.jp") == others["legacy.example.jp"]
    # Without the IP:port binding a client without SNI fails the handshake; SNI still works.
    assert run(host, "netsh http delete sslcert ipport=0.0.0.0:443").exit_code == 0
    with pytest.raises(EndpointError, match="TLS handshake failed"):
        served(port, None)
    assert served(port, "www2.example.jp") == others["www2.example.jp"]


def test_sni_endpoint_follows_netsh_and_site_state(sni_host: tuple[Host, tlsserve.TlsEndpoints]) -> None:
    host, _ = sni_host
    port = host.extra["tls_ports"]["0.0.0.0:443"]
    new = add_new_certificate(host)
    update = f"netsh http update sslcert hostnameport=www1.example.jp:443 certhash={new} appid={IIS_APPID}"
    assert run(host, update).exit_code == 0
    assert served(port, "www1.example.jp") == new
    assert served(port, "www2.example.jp") == host.extra["other_thumbprints"]["www2.example.jp"]
    # Every site with an https binding on the port stopped: nothing answers TLS there.
    for name in ("www1.example.jp", "www2.example.jp", "legacy.example.jp"):
        assert run(host, f"{APPCMD} stop site /site.name:{name}").exit_code == 0
    with pytest.raises(EndpointError):
        served(port, "www1.example.jp")
    assert run(host, f"{APPCMD} start site /site.name:www2.example.jp").exit_code == 0
    assert host.extra["tls_ports"]["0.0.0.0:443"] == port  # the same port, as on the real server
    assert served(port, "www1.example.jp") == new  # HTTP.sys picks by its bindings, not by site


def test_iis75_endpoint_ignores_sni(tmp_path: Path) -> None:
    host = build("iis75-ja", tmp_path)
    endpoints = tlsserve.attach(host)
    try:
        port = host.extra["tls_ports"]["0.0.0.0:443"]
        current = host.extra["current_thumbprint"]
        assert served(port, "www1.example.jp") == current
        assert served(port, None) == current
        # Even an SNI key put into the registry by hand is not used before IIS 8.
        iis7.set_ssl_binding(
            host, "hostnameport", "www1.example.jp:443", thumbprint=add_new_certificate(host)
        )
        host.save_state()
        assert served(port, "www1.example.jp") == current
    finally:
        endpoints.stop()


# --- end to end over WinRM ---------------------------------------------------------------------------


def _run_winrm(p: Protocol, shell: str, command: str) -> tuple[bytes, bytes, int]:
    cid = p.run_command(shell, command)
    out = p.get_command_output(shell, cid)
    p.cleanup_command(shell, cid)
    return out


def test_iis75_ja_over_winrm(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    with rehearsal.start(
        scenario="iis75-ja", password=REHEARSAL_PASSWORD, state_file=state_file, workdir=tmp_path / "w"
    ) as r:
        p = Protocol(r.url, transport="basic", username=r.user, password=REHEARSAL_PASSWORD)
        shell = p.open_shell(codepage=932)
        out, err, code = _run_winrm(p, shell, f"{APPCMD} list site /xml")
        assert (code, err) == (0, b"")
        names = [e.get("SITE.NAME") for e in ET.fromstring(out).findall("SITE")]
        assert names == ["www1.example.jp", "renew.www1.example.jp"]
        out, _, code = _run_winrm(p, shell, f"{APPCMD} stop site /site.name:renew.www1.example.jp")
        assert code == iis7.ERROR_SERVICE_NOT_ACTIVE
        assert "サービスは開始されていません。" in out.decode("cp932")
        new = add_new_certificate(r.host)
        _, _, code = _run_winrm(p, shell, "netsh http delete sslcert ipport=0.0.0.0:443")
        assert code == 0
        out, _, code = _run_winrm(
            p,
            shell,
            f"netsh http add sslcert ipport=0.0.0.0:443 certhash={new} appid={IIS_APPID} certstorename=MY",
        )
        assert code == 0 and "SSL 証明書を正常に追加しました" in out.decode("cp932")
        p.close_shell(shell)
        hostname, port = tls.parse_endpoint(str(r.host.extra["verify_endpoint"]))
        assert served(port, "www1.example.jp") == new
        state = json.loads(state_file.read_text(encoding="utf-8"))
    registry = state["registry"][
        r"HKLM\SYSTEM\CurrentControlSet\Services\HTTP\Parameters\SslBindingInfo\0.0.0.0:443"
    ]
    assert registry["SslCertHash"] == {"type": "REG_BINARY", "data": new}
    assert state["web_sites"]["2"]["state"] == "Stopped"
    assert state["app_pools"]["www1.example.jp"]["state"] == "Started"


def test_site_bound_to_a_deleted_certificate_starts_but_cannot_handshake(tmp_path: Path) -> None:
    host = build("iis10", tmp_path)
    endpoints = tlsserve.attach(host)
    try:
        port = host.extra["tls_ports"]["0.0.0.0:443"]
        current = str(host.extra["current_thumbprint"])
        assert run(host, f"certutil -delstore MY {current}").exit_code == 0
        assert cert_hash(host, SSL_KEY) == current  # HTTP.sys keeps the binding
        assert run(host, f"{APPCMD} stop site www1.example.jp").exit_code == 0
        assert run(host, f"{APPCMD} start site www1.example.jp").exit_code == 0
        assert host.web_sites[1].state == "Started"
        with pytest.raises(EndpointError, match="TLS handshake failed"):
            served(port, "www1.example.jp")
    finally:
        endpoints.stop()


def test_non_sni_iis10_serves_one_certificate_whatever_the_name(tmp_path: Path) -> None:
    host = build("iis10", tmp_path)
    endpoints = tlsserve.attach(host)
    try:
        port = host.extra["tls_ports"]["0.0.0.0:443"]
        current = host.extra["current_thumbprint"]
        assert {served(port, name) for name in ("www1.example.jp", "other.example.com", None)} == {current}
    finally:
        endpoints.stop()
