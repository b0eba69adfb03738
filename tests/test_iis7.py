"""opslib.iis.iis7 (the IIS 7–10 backend) over real pywinrm against the rehearsal scenarios
``iis75-ja`` (2008 R2, IIS 7.5, ja/932), ``iis10`` (2019) and ``iis10-sni`` (two SNI sites + a non-SNI
site on 0.0.0.0:443). Every assertion reads what the emulated server holds afterwards: its registry
(HTTP.sys SslBindingInfo / SslSniBindingInfo), its sites and what its TLS endpoint serves.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import SharedEndpoints

from opslib import tls
from opslib.errors import PreconditionFailed, SiteNotFound, VerificationFailed
from opslib.iis import IIS7Backend
from opslib.ops import endpoint
from opslib.rehearsal import iis7 as emulated
from opslib.rehearsal import scenarios, tlsserve
from opslib.rehearsal.host import Host, WebBinding
from opslib.rehearsal.pki import make_pki
from opslib.rehearsal.programs import stores
from opslib.server import Server
from opslib.winrm import connect

PASSWORD = "Rehearsal-iis7-pw1"
CLOCK = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
SNI = r"HKLM\SYSTEM\CurrentControlSet\Services\HTTP\Parameters\SslSniBindingInfo"
IPPORT = r"HKLM\SYSTEM\CurrentControlSet\Services\HTTP\Parameters\SslBindingInfo"
OTHER_APP = "{12345678-1234-1234-1234-123456789abc}"


@dataclass
class Env:
    host: Host
    server: Server
    backend: IIS7Backend
    current: str
    new: str
    reh: Any = None


@contextmanager
def env_fault(env: Env, spec: str) -> Iterator[None]:
    env.reh.set_faults([spec])
    try:
        yield
    finally:
        env.reh.set_faults([])


@contextmanager
def serve(endpoints: SharedEndpoints, tmp_path: Path, scenario: str) -> Iterator[Env]:
    """A connection to the session's endpoint of ``scenario`` (put back as it started, tests/conftest.py)
    holding the new certificate (what step 1 installs)."""
    r = endpoints.get(scenario, build={"now_utc": CLOCK}, password=PASSWORD)
    host = r.host
    pki = make_pki(now_utc=CLOCK, hostnames=scenarios.HOSTNAMES)
    new = stores.add_certificate(host, "MY", pki.new_leaf, key=pki.new_key)  # what step 1 installs
    host.save_state()
    codepage = host.default_codepage
    with connect(
        r.url,
        transport="basic",
        username=r.user,
        password=PASSWORD,
        host_label="web01",
        allow_unencrypted_basic=True,
        allow_cleartext_secrets=True,  # a Basic/HTTP lab host: accepted explicitly
        codepage=codepage,
    ) as conn:
        server = Server(conn)
        backend = server.iis
        assert isinstance(backend, IIS7Backend)
        yield Env(host, server, backend, str(host.extra["current_thumbprint"]), new, r)


def reg_hash(host: Host, key: str) -> str:
    value = host.reg_get(key, "SslCertHash")
    return bytes(value[2]).hex().upper() if value else ""


def served(host: Host, servername: str | None) -> str:
    port = host.extra["tls_ports"]["0.0.0.0:443"]
    return tls.fetch_chain("127.0.0.1", port, servername=servername, timeout_s=5).thumbprints[0]


@pytest.mark.parametrize("scenario", ["iis75-ja", "iis10", "iis10-sni"])
def test_sites_and_certificates_come_from_appcmd_xml_and_the_registry(
    shared_endpoints: SharedEndpoints, tmp_path: Path, scenario: str
) -> None:
    with serve(shared_endpoints, tmp_path, scenario) as env:
        assert env.server.capabilities.iis_major in (7, 10)
        assert env.server.capabilities.has_certutil("exportPFX")  # step 3 takes the certutil route
        sites = {s.name: s for s in env.backend.sites()}
        production = sites["www1.example.jp"]
        assert (production.path, production.state_name) == ("W3SVC/1", "started")
        assert production.cert_thumbprint == env.current and production.store_name == "MY"
        sni = scenario == "iis10-sni"
        assert production.secure_bindings == ((":443:www1.example.jp",) if sni else (":443:",))
        work = sites["renew.www1.example.jp"]
        assert (work.state_name, work.secure_bindings, work.cert_thumbprint) == ("stopped", (), "")
        if sni:
            others = env.host.extra["other_thumbprints"]
            assert sites["www2.example.jp"].cert_thumbprint == others["www2.example.jp"]
            assert sites["legacy.example.jp"].cert_thumbprint == others["legacy.example.jp"]
        assert env.backend.app_pools()["www1.example.jp"] == "Started"


@pytest.mark.parametrize(
    ("scenario", "port", "key"),
    [
        ("iis75-ja", 8443, IPPORT + r"\0.0.0.0:8443"),
        ("iis10", 443, SNI + r"\renew.www1.example.jp:443"),
        ("iis10-sni", 443, SNI + r"\renew.www1.example.jp:443"),
    ],
)
def test_bind_swap_and_rollback_change_exactly_the_production_binding(
    shared_endpoints: SharedEndpoints, tmp_path: Path, scenario: str, port: int, key: str
) -> None:
    with serve(shared_endpoints, tmp_path, scenario) as env:
        host, backend = env.host, env.backend
        prod_key = SNI + r"\www1.example.jp:443" if scenario == "iis10-sni" else IPPORT + r"\0.0.0.0:443"
        before = {k: v for k, v in host.registry.items() if "HTTP\\PARAMETERS" in k.upper()}
        # Step 1: the work site gets its own binding (SNI on IIS 10, a port of its own on 7.5).
        plan = backend.plan_bind("renew.www1.example.jp", env.new, port=port)
        assert [c.field for c in plan] == ["https binding", "SslCertHash"]
        work = backend.bind("renew.www1.example.jp", env.new, port=port)
        assert (work.cert_thumbprint, work.state_name) == (env.new, "stopped")
        assert reg_hash(host, key) == env.new and reg_hash(host, prod_key) == env.current
        assert backend.plan_bind("renew.www1.example.jp", env.new, port=port) == []  # idempotent
        # Step 2: only the production binding changes; the site is restarted and read back.
        changes = backend.plan_swap(production_site="www1.example.jp", new_thumbprint=env.new)
        verbs = "delete, add" if scenario == "iis75-ja" else "update"
        assert [(c.field, c.before, c.after) for c in changes] == [
            ("verbs", None, f"netsh http {verbs} sslcert; on failure: delete, add (the old one back)"),
            ("SslCertHash", env.current, env.new),
            ("state", "started", "restarted"),
        ]
        result = backend.swap(production_site="www1.example.jp", new_thumbprint=env.new)
        assert (result.old_thumbprint, result.production.cert_thumbprint) == (env.current, env.new)
        assert result.production.started and host.web_sites[2].state == "Stopped"
        assert reg_hash(host, prod_key) == env.new
        rows = backend.check_swap(
            production_site="www1.example.jp", work_site="renew.www1.example.jp", new_thumbprint=env.new
        )
        assert all(r["ok"] for r in rows), rows
        if scenario == "iis10-sni":
            others = host.extra["other_thumbprints"]
            assert reg_hash(host, SNI + r"\www2.example.jp:443") == others["www2.example.jp"]
            assert reg_hash(host, IPPORT + r"\0.0.0.0:443") == others["legacy.example.jp"]
            assert all(host.web_sites[i].state == "Started" for i in (1, 3, 4))
        assert backend.swap(production_site="www1.example.jp", new_thumbprint=env.new).already_done
        # Rollback: the old certificate is back on the same binding.
        back = backend.rollback(
            production_site="www1.example.jp",
            old_thumbprint=env.current,
            secure_bindings=list(result.old_secure_bindings),
        )
        assert back.production.cert_thumbprint == env.current and back.production.started
        assert reg_hash(host, prod_key) == env.current
        after = {k: v for k, v in host.registry.items() if "HTTP\\PARAMETERS" in k.upper()}
        assert set(after) - set(before) == {key.upper()}  # the work binding is the only new key


def test_iis75_refuses_a_work_binding_on_the_production_ip_port(
    shared_endpoints: SharedEndpoints, tmp_path: Path
) -> None:
    with serve(shared_endpoints, tmp_path, "iis75-ja") as env:
        with pytest.raises(PreconditionFailed, match=r"would change the certificate of W3SVC/1.*ssl_port"):
            env.backend.bind("renew.www1.example.jp", env.new, port=443)
        assert env.host.web_sites[2].bindings[-1].protocol == "http"  # nothing added
        assert reg_hash(env.host, IPPORT + r"\0.0.0.0:443") == env.current


def test_sni_swap_serves_the_new_certificate_to_www1_only(
    shared_endpoints: SharedEndpoints, tmp_path: Path
) -> None:
    with serve(shared_endpoints, tmp_path, "iis10-sni") as env:
        endpoints = tlsserve.attach(env.host)
        try:
            env.backend.bind("renew.www1.example.jp", env.new)
            env.backend.swap(production_site="www1.example.jp", new_thumbprint=env.new)
            others = env.host.extra["other_thumbprints"]
            assert served(env.host, "www1.example.jp") == env.new
            assert served(env.host, "www2.example.jp") == others["www2.example.jp"]
            assert served(env.host, None) == others["legacy.example.jp"]  # a client without SNI
            # Step 4's judgement: www1 with SNI is held to the new certificate; no SNI is reported only.
            where, ca = str(env.host.extra["verify_endpoint"]), str(env.host.extra.get("verify_ca_file", ""))
            check = endpoint.judge(
                endpoint.fetch(where, servername="www1.example.jp"),
                expected_thumbprint=env.new,
                expected_hostnames=["www1.example.jp"],
                forbidden_roots=list(env.host.extra["forbidden_roots"]),
                ca_file=ca,
            )
            assert isinstance(check, endpoint.SniServedCheck)
            # Only the cross certificate is missing (step 0, which disables the G5 root, did not run here).
            (problem,) = check.problems
            assert problem.startswith("SNI www1.example.jp: the chain sent ends at the forbidden root")
            assert problem.endswith("the cross certificate is not sent")
            facts = check.facts()
            assert (facts["served_leaf_sni"], facts["served_leaf_no_sni"]) == (
                env.new,
                others["legacy.example.jp"],
            )
            assert "a client without SNI gets" in facts["no_sni_fallback"]
            # A name no SNI binding has gets the no-SNI certificate: a problem, and the hint says why.
            wrong = endpoint.judge(
                endpoint.fetch(where, servername="nosuch.example.jp"), expected_thumbprint=env.new, ca_file=ca
            )
            assert (
                not wrong.ok
                and "nosuch.example.jp was answered with the certificate sent without SNI" in wrong.hint
            )
            with pytest.raises(VerificationFailed, match=r"SNI nosuch.example.jp: serves \w+, expected"):
                endpoint.verify(wrong)
        finally:
            endpoints.stop()


def test_bad_inputs_are_refused_before_any_change(shared_endpoints: SharedEndpoints, tmp_path: Path) -> None:
    with serve(shared_endpoints, tmp_path, "iis10-sni") as env:
        host, backend = env.host, env.backend
        # Two sites with the same name.
        emulated.add_site(host, 5, "www1.example.jp", [WebBinding("http", "*:8080:")])
        host.save_state()
        with pytest.raises(SiteNotFound, match=r"2 IIS sites are named 'www1.example.jp'"):
            backend.plan_swap(production_site="www1.example.jp", new_thumbprint=env.new)
        del host.web_sites[5]
        # An SNI host name on a server without SNI is refused (here: a name no binding has is bound anew).
        with pytest.raises(SiteNotFound, match="no IIS site is named 'nosuch.example.jp'"):
            backend.swap(production_site="nosuch.example.jp", new_thumbprint=env.new)
        # The production binding owned by another application's AppId.
        emulated.set_ssl_binding(
            host, "hostnameport", "www1.example.jp:443", thumbprint=env.current, app_id=OTHER_APP
        )
        host.save_state()
        with pytest.raises(PreconditionFailed, match=r"belongs to another application \(AppId \{12345678"):
            backend.swap(production_site="www1.example.jp", new_thumbprint=env.new)
        assert reg_hash(host, SNI + r"\www1.example.jp:443") == env.current
        # www2 without its SNI binding falls back to 0.0.0.0:443, the legacy site's: swapping that would
        # change www2's certificate too.
        emulated.set_ssl_binding(host, "hostnameport", "www1.example.jp:443", thumbprint=env.current)
        emulated.delete_ssl_binding(host, "hostnameport", "www2.example.jp:443")
        host.save_state()
        with pytest.raises(
            PreconditionFailed, match=r'also serves W3SVC/3 "www2.example.jp" \(:443:www2.example.jp\)'
        ):
            backend.plan_swap(production_site="legacy.example.jp", new_thumbprint=env.new)
        others = host.extra["other_thumbprints"]
        assert reg_hash(host, IPPORT + r"\0.0.0.0:443") == others["legacy.example.jp"]


def test_iis75_sni_host_name_is_refused(shared_endpoints: SharedEndpoints, tmp_path: Path) -> None:
    with serve(shared_endpoints, tmp_path, "iis75-ja") as env:
        from opslib.errors import CapabilityMissing

        with pytest.raises(CapabilityMissing, match="SNI exists from IIS 8"):
            env.backend.plan_bind("renew.www1.example.jp", env.new, port=8443, host_header="renew.example.jp")


def test_a_production_site_that_will_not_start_is_rolled_back(
    shared_endpoints: SharedEndpoints, tmp_path: Path
) -> None:
    with serve(shared_endpoints, tmp_path, "iis10") as env:
        host, backend = env.host, env.backend
        backend.bind("renew.www1.example.jp", env.new)
        host.app_pools["www1.example.jp"].state = "Stopped"  # started again with the swap
        host.web_sites[1].fail_start = True
        host.save_state()
        # The site never starts again: the old certificate is back and the message says the site is down.
        with pytest.raises(
            VerificationFailed,
            match=r"rolled back to the previous certificate \w+, but the site did not start again .*the site is DOWN",
        ):
            backend.swap(production_site="www1.example.jp", new_thumbprint=env.new)
        assert reg_hash(host, IPPORT + r"\0.0.0.0:443") == env.current
        assert host.app_pools["www1.example.jp"].state == "Started"
        # A failure of the swap line itself (the command is refused): nothing changed, the site still runs.
        host.web_sites[1].fail_start = False
        host.web_sites[1].state = "Started"
        host.save_state()
        with pytest.raises(
            VerificationFailed,
            match=r"rolled back to the previous certificate \w+ and the site is started again",
        ):
            with env_fault(env, "before:netsh#1:fail"):
                backend.swap(production_site="www1.example.jp", new_thumbprint=env.new)
        assert (
            reg_hash(host, IPPORT + r"\0.0.0.0:443") == env.current and host.web_sites[1].state == "Started"
        )


@pytest.mark.parametrize("scenario", ["iis10", "iis10-sni"])
def test_a_rollback_the_old_certificate_will_not_start_with_is_undone(
    shared_endpoints: SharedEndpoints, tmp_path: Path, scenario: str
) -> None:
    """The renewed certificate is served; IIS will not start the site with the old one: the rollback puts
    the renewed one back, starts the site, reads both back and says the rollback was undone."""
    with serve(shared_endpoints, tmp_path, scenario) as env:
        host, backend = env.host, env.backend
        sni = scenario == "iis10-sni"
        prod_key = SNI + r"\www1.example.jp:443" if sni else IPPORT + r"\0.0.0.0:443"
        backend.bind("renew.www1.example.jp", env.new)
        swapped = backend.swap(production_site="www1.example.jp", new_thumbprint=env.new)
        host.extra["fail_start_thumbprints"] = [env.current]
        host.save_state()
        try:
            with pytest.raises(
                VerificationFailed,
                match=rf"the rollback of W3SVC/1 .* to the previous certificate {env.current} failed .*; "
                rf"the rollback was undone: W3SVC/1 .* serves .*{env.new} again, started \(read back\)",
            ):
                backend.rollback(
                    production_site="www1.example.jp",
                    old_thumbprint=env.current,
                    secure_bindings=list(swapped.old_secure_bindings),
                )
            assert reg_hash(host, prod_key) == env.new and host.web_sites[1].state == "Started"
            assert served(host, "www1.example.jp" if sni else None) == env.new  # answers TLS with it
            # Neither certificate starts: the message says the undo failed too and what is read back.
            host.extra["fail_start_thumbprints"] = [env.current, env.new]
            host.save_state()
            with pytest.raises(VerificationFailed, match=r"failed too .* reads back"):
                backend.rollback(
                    production_site="www1.example.jp",
                    old_thumbprint=env.current,
                    secure_bindings=list(swapped.old_secure_bindings),
                )
            assert reg_hash(host, prod_key) == env.new
        finally:
            host.extra["fail_start_thumbprints"] = []
            host.save_state()


def test_backend_choice_by_iis_version() -> None:
    from opslib import iis
    from opslib.errors import CapabilityMissing
    from opslib.server import Capabilities

    def caps(major: int, minor: int = 0) -> Capabilities:
        return Capabilities("web01", "10.0.17763", major, minor, 437, True, True, True, (), True, True, True)

    assert isinstance(iis.backend_for(caps(6), conn=None), iis.IIS6Backend)  # type: ignore[arg-type]
    for major, minor in ((7, 0), (7, 5), (8, 5), (10, 0)):
        backend = iis.backend_for(caps(major, minor), conn=None)  # type: ignore[arg-type]
        assert isinstance(backend, IIS7Backend) and backend.sni == (major >= 8)
    with pytest.raises(
        CapabilityMissing, match=r"^web01: the server lacks IIS 6 or 7–10 \(it runs IIS 11.0, which this kit"
    ):
        iis.require_backend(caps(11))
    with pytest.raises(CapabilityMissing, match=r"it runs IIS 5.0, which this kit does not support"):
        iis.require_backend(caps(5))
    with pytest.raises(
        CapabilityMissing, match=r"lacks IIS \(HKLM\\SOFTWARE\\Microsoft\\InetStp MajorVersion"
    ):
        iis.require_backend(caps(0))


def test_the_work_binding_may_be_a_second_binding_of_the_production_site(
    shared_endpoints: SharedEndpoints, tmp_path: Path
) -> None:
    with serve(shared_endpoints, tmp_path, "iis10") as env:
        host, backend = env.host, env.backend
        work = backend.bind("www1.example.jp", env.new, host_header="renew.www1.example.jp")
        assert work.secure_bindings == (":443:", ":443:renew.www1.example.jp")
        assert reg_hash(host, SNI + r"\renew.www1.example.jp:443") == env.new
        assert reg_hash(host, IPPORT + r"\0.0.0.0:443") == env.current  # production unchanged
        result = backend.swap(production_site="www1.example.jp", new_thumbprint=env.new)
        assert result.old_secure_bindings == (":443:",) and result.old_thumbprint == env.current
        assert reg_hash(host, IPPORT + r"\0.0.0.0:443") == env.new
        rows = backend.check_swap(
            production_site="www1.example.jp", work_site="www1.example.jp", new_thumbprint=env.new
        )
        assert [r["check"] for r in rows if not r["ok"]] == []
        assert "work site stopped" not in [r["check"] for r in rows]
