"""The rehearsal scenarios and the TLS endpoints of the emulated IIS sites."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from opslib import certs, tls
from opslib.errors import EndpointError, UsageError
from opslib.rehearsal import cmd, scenarios, tlsserve
from opslib.rehearsal.host import STARTED, STOPPED, Host
from opslib.rehearsal.pki import make_pki
from opslib.rehearsal.programs import stores

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def build(name: str, tmp_path: Path, **kw: object) -> Host:
    return scenarios.build_host(name, workdir=tmp_path, now_utc=NOW, **kw)  # type: ignore[arg-type]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Host, tlsserve.TlsEndpoints]]:
    host = build("default", tmp_path)
    endpoints = tlsserve.attach(host)
    try:
        yield host, endpoints
    finally:
        endpoints.stop()


def chain_of(host: Host) -> tuple[str, ...]:
    hostname, port = tls.parse_endpoint(str(host.extra["verify_endpoint"]))
    return tls.fetch_chain(hostname, port, servername="www1.example.jp").thumbprints


def test_scenarios_are_listed_with_descriptions() -> None:
    assert set(scenarios.SCENARIOS) == {
        "default",
        "no-g5",
        "no-pending-request",
        "key-not-exportable",
        "iis6-inherited",
        "iis6-ja",
        "iis7",
        # IIS 7.5-10 (names fixed: operators use them from the README)
        "iis75-ja",
        "iis10",
        "iis10-sni",
        # HTTP.sys as Windows ships it (issue 23)
        "iis85",
        "iis10-dualstack",
        "iis10-dualstack-foreign",
        # chains operators meet now
        "modern-chain",
        "cross-to-older-root",
        "expired-cross",
        # the whole lifecycle: no request yet (opslib request makes it; issue 28)
        "iis6-ja-no-request",
        "iis75-ja-no-request",
        "iis10-no-request",
        # read-back: what real cmd and certutil do that a naive kit would misread
        "pfx-locked",
        "b64-locked",
        "exportpfx-probe-lies",
        "exportpfx-probe-denies",
        "hashfile-probe-lies",
        "hashfile-probe-denies",
    }
    assert all(len(d) > 20 for d in scenarios.SCENARIOS.values())


def test_unknown_scenario_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown scenario 'nope'; known: default"):
        build("nope", tmp_path)


def test_default_host_holds_the_seed_situation(tmp_path: Path) -> None:
    host = build("default", tmp_path)
    pki = make_pki(now_utc=NOW, hostnames=("www1.example.jp",))
    assert (host.locale, host.default_codepage) == ("en", 437)
    assert host.reg_get(r"HKLM\SOFTWARE\Microsoft\InetStp", "MajorVersion") == (
        "MajorVersion",
        "REG_DWORD",
        6,
    )
    assert host.reg_get(r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion", "CurrentVersion")[2] == "5.2"  # type: ignore[index]
    assert {"certutil", "certreq", "reg", "cscript"} <= set(host.programs)

    g5 = certs.thumbprint(pki.g5_root)
    root = {e.thumbprint: e for e in stores.certificates(host, "ROOT")}
    assert g5 in root and not root[g5].disabled
    assert certs.thumbprint(pki.old_root) in root
    auth = {e.thumbprint: e for e in stores.certificates(host, "ROOT", physical="AuthRoot")}
    assert certs.G5_THUMBPRINT in auth and not auth[certs.G5_THUMBPRINT].disabled
    ca = {e.thumbprint for e in stores.certificates(host, "CA")}
    assert {certs.thumbprint(pki.intermediate), certs.thumbprint(pki.cross)} <= ca
    (mine,) = stores.certificates(host, "MY")
    assert mine.thumbprint == certs.thumbprint(pki.current_leaf)
    assert stores.key_for(host, mine) is not None
    assert mine.cert.not_valid_after_utc - NOW == timedelta(days=10)
    (request,) = stores.certificates(host, "REQUEST")
    assert certs.key_matches(request.cert, pki.new_leaf)
    pair = stores.key_for(host, request)
    assert pair is not None and pair.exportable

    production, work = host.sites[1], host.sites[2]
    assert (production.comment, production.state, production.secure_bindings) == (
        "www1.example.jp",
        STARTED,
        [":443:"],
    )
    assert production.ssl_cert_hash == mine.thumbprint and production.ssl_store_name == "MY"
    assert (work.comment, work.state, work.ssl_cert_hash) == ("renew.www1.example.jp", STOPPED, "")

    extra = host.extra
    assert extra["production_site"] == "www1.example.jp" and extra["work_site"] == "renew.www1.example.jp"
    assert extra["forbidden_roots"] == [g5]
    assert extra["hostnames"] == ["www1.example.jp"]
    mail = Path(extra["certificate_file"]).read_bytes()
    assert mail == (tmp_path / "2026cert.txt").read_bytes()
    assert "サーバID".encode("shift_jis") in mail and b"-----BEGIN CERTIFICATE-----" in mail
    bundle = certs.load_certificates(mail, source="2026cert.txt")
    assert certs.thumbprint(pki.new_leaf) in {certs.thumbprint(c) for c in bundle.certificates}
    p7b = certs.load_certificates((tmp_path / "2026cert.p7b").read_bytes(), source="2026cert.p7b")
    assert certs.thumbprint(pki.new_leaf) in {certs.thumbprint(c) for c in p7b.certificates}
    anchors = certs.load_certificates(Path(extra["verify_ca_file"]).read_bytes(), source="ca")
    assert {certs.thumbprint(c) for c in anchors.certificates} == {g5, certs.thumbprint(pki.old_root)}


@pytest.mark.parametrize(
    ("name", "check"),
    [
        (
            "no-g5",
            lambda h: (
                not any(
                    "G5" in certs.summarize(e.cert).common_name
                    for e in stores.logical_certificates(h, "ROOT")
                )
            ),
        ),
        ("no-pending-request", lambda h: stores.certificates(h, "REQUEST") == []),
        (
            "key-not-exportable",
            lambda h: not stores.key_for(h, stores.certificates(h, "REQUEST")[0]).exportable,
        ),  # type: ignore[union-attr]
        ("iis6-ja", lambda h: (h.locale, h.default_codepage) == ("ja", 932)),
    ],
)
def test_scenario_differences(tmp_path: Path, name: str, check: object) -> None:
    host = build(name, tmp_path)
    assert callable(check) and check(host)
    assert host.extra["scenario"] == name


def test_locale_and_codepage_can_be_overridden(tmp_path: Path) -> None:
    host = build("default", tmp_path, locale="ja", codepage=65001)
    assert (host.locale, host.default_codepage) == ("ja", 65001)
    result = cmd.execute(host, "certutil -nosuchverb", codepage=65001)
    assert result.exit_code != 0


def test_state_file_shows_the_sites(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    host = build("default", tmp_path, state_file=state_file)
    cmd.execute(host, "ver", codepage=437)
    state = json.loads(state_file.read_text(encoding="utf-8"))
    assert state["sites"]["1"]["comment"] == "www1.example.jp"
    assert state["extra"]["work_site"] == "renew.www1.example.jp"


# --- TLS endpoints ---------------------------------------------------------------------------------------


def test_production_site_serves_leaf_and_intermediate_while_g5_is_enabled(
    served: tuple[Host, tlsserve.TlsEndpoints],
) -> None:
    host, endpoints = served
    pki = make_pki(now_utc=NOW, hostnames=("www1.example.jp",))
    port = host.extra["tls_ports"][":443:"]
    assert endpoints.ports == {":443": port}
    assert host.extra["verify_endpoint"] == f"127.0.0.1:{port}"
    assert chain_of(host) == (certs.thumbprint(pki.current_leaf), certs.thumbprint(pki.intermediate))


def test_disabling_g5_makes_the_server_send_the_cross_certificate(
    served: tuple[Host, tlsserve.TlsEndpoints],
) -> None:
    host, _ = served
    pki = make_pki(now_utc=NOW, hostnames=("www1.example.jp",))
    before = chain_of(host)
    assert stores.set_eku(host, "ROOT", certs.thumbprint(pki.g5_root), [])
    host.save_state()  # what the interpreter does after every command; fires host.on_change
    after = chain_of(host)
    assert before != after
    assert after == (
        certs.thumbprint(pki.current_leaf),
        certs.thumbprint(pki.intermediate),
        certs.thumbprint(pki.cross),
    )
    assert certs.thumbprint(pki.old_root) not in after  # the root itself is not sent


def test_no_g5_scenario_serves_the_cross_path(tmp_path: Path) -> None:
    host = build("no-g5", tmp_path)
    endpoints = tlsserve.attach(host)
    try:
        pki = make_pki(now_utc=NOW, hostnames=("www1.example.jp",))
        assert certs.thumbprint(pki.cross) in chain_of(host)
    finally:
        endpoints.stop()


def test_site_without_private_key_serves_no_tls(served: tuple[Host, tlsserve.TlsEndpoints]) -> None:
    host, _ = served
    pki = make_pki(now_utc=NOW, hostnames=("www1.example.jp",))
    # Point the production site at a certificate whose key the server does not hold.
    stores.add_certificate(host, "MY", pki.new_leaf)
    host.sites[1].ssl_cert_hash = certs.thumbprint(pki.new_leaf)
    host.save_state()
    with pytest.raises(EndpointError):
        chain_of(host)


def test_stopped_site_serves_nothing_and_port_stays(served: tuple[Host, tlsserve.TlsEndpoints]) -> None:
    host, _ = served
    endpoint = host.extra["verify_endpoint"]
    host.sites[1].state = STOPPED
    host.save_state()
    hostname, port = tls.parse_endpoint(str(endpoint))
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection((hostname, port), timeout=5) as raw, pytest.raises((ssl.SSLError, OSError)):
        with context.wrap_socket(raw, server_hostname="www1.example.jp"):
            pass
    host.sites[1].state = STARTED
    host.save_state()
    assert host.extra["verify_endpoint"] == endpoint
    assert len(chain_of(host)) == 2


def test_stop_detaches_from_the_host(tmp_path: Path) -> None:
    host = build("default", tmp_path)
    endpoints = tlsserve.attach(host)
    assert endpoints.refresh in host.on_change
    endpoints.stop()
    assert endpoints.refresh not in host.on_change
    host.save_state()  # no error after stop


# --- snapshots: tests that share one endpoint never see each other's leftovers -------------------------


@pytest.mark.parametrize("name", sorted(scenarios.SCENARIOS))
def test_restore_puts_every_scenario_back_exactly(name: str, tmp_path: Path) -> None:
    host = build(name, tmp_path)
    before = json.dumps(host.state(), sort_keys=True, default=str)
    programs, keys, locked = dict(host.programs), dict(host.keys), set(host.locked_files)
    snap = host.snapshot()
    cmd.execute(host, r"mkdir C:\leftover && echo x> C:\leftover\f.txt", codepage=437)
    host.registry.clear()
    host.sites.clear()
    host.web_sites.clear()
    host.keys.clear()
    host.programs["certutil"] = lambda inv: 9
    host.extra["leftover"] = True
    host.env["LEFTOVER"] = "1"
    host.locked_files.add("*")
    host.is_admin = False
    host.leftover = 1  # type: ignore[attr-defined]
    host.restore(snap)
    assert json.dumps(host.state(), sort_keys=True, default=str) == before
    assert (host.programs, host.keys, host.history, host.locked_files) == (programs, keys, [], locked)
    assert host.is_admin and "LEFTOVER" not in host.env and not hasattr(host, "leftover")
    host.extra["again"] = 1  # the snapshot itself is not changed by later changes
    host.restore(snap)
    assert "again" not in host.extra


def test_a_shared_endpoint_is_handed_out_as_it_started(shared_endpoints: Any, tmp_path: Path) -> None:
    from opslib.winrm import connect

    first = shared_endpoints.get("default", state_file=tmp_path / "a.json")
    before = json.dumps(first.host.state(), sort_keys=True, default=str)
    first.set_faults(["before:certutil:fail"])
    first.host.on_change.append(lambda host: None)
    with connect(
        first.url,
        transport="basic",
        username=first.user,
        password=first.password,
        host_label="web01",
        allow_unencrypted_basic=True,
        allow_cleartext_secrets=True,
    ) as conn:
        conn.run(["mkdir", r"C:\leftover"], what="leave something behind")
    assert first.host.is_dir(r"C:\leftover") and first.host.history
    again = shared_endpoints.get("default", state_file=tmp_path / "b.json")
    assert again is first  # the same endpoint, put back
    assert json.dumps(again.host.state(), sort_keys=True, default=str) == before
    assert not again.faults and not again.host.history and not again._server.shells
    assert len(again.host.on_change) == 1  # the TLS endpoints' hook only
    assert json.loads((tmp_path / "b.json").read_text(encoding="utf-8"))["dirs"] == sorted(again.host.dirs)
