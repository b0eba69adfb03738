"""Scenarios for the rehearsal host: a Windows Server 2003 / IIS 6 web server in the seed's situation.

The CA's IIS 6 renewal article (DigiCert Japan SO23586, the procedure the kit automates) starts from: a production site serving
the current certificate (about to expire), a separate work site on which the renewal CSR was made
(its key sits in the REQUEST store as a pending request), the CA's issuance mail with the new
certificate, and possibly the VeriSign G5 root enabled in Trusted Root (step 0 must disable it).

Every scenario uses the rehearsal PKI (:mod:`opslib.rehearsal.pki`): its "G5 (Rehearsal)" root has
its own key, so the kit — which recognises the *real* G5 by its catalogue thumbprint — is told about
it through ``forbidden_roots`` (``host.extra``), exactly as an operator would list an extra root.
The real G5 root from the catalogue also sits in AuthRoot (as Windows Update would put it there).

Read-back scenarios (docs/windows-behaviour.md): each is the default scenario with one Windows
behaviour the kit must not trust blindly made visible.

* ``pfx-locked`` — every ``.pfx`` under the logon's %TEMP% is held open by another process (an antivirus
  scan): ``del`` prints a message and still ends with status 0, the file stays, and ``rmdir /s /q`` of the
  kit's temp folder leaves it (and the folder) behind (``Host.locked_files``; rows W-DEL, W-RMDIR-SQ-LOCKED).
* ``b64-locked`` — the same for every ``.b64`` base64 staging copy under %TEMP%.
* ``exportpfx-probe-lies`` / ``exportpfx-probe-denies`` — ``certutil -exportPFX -?`` answers "present"
  while the verb fails at use time, or "absent" while it works; ``hashfile-probe-lies`` /
  ``hashfile-probe-denies`` the same for ``-hashfile``. They set the host options
  ``host.extra["certutil_probe_lies"]`` / ``["certutil_probe_denies"]`` (lists of verbs), which a test may
  also set on any other scenario (:mod:`.programs.certutil`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .. import certs
from ..errors import UsageError
from . import cmd, scenarios_iis7
from .ca import write_ca
from .host import STARTED, STOPPED, Host, Site
from .pki import Pki, make_pki
from .programs import register_all, stores

HOSTNAMES = ("www1.example.jp",)
PRODUCTION_SITE = "www1.example.jp"
WORK_SITE = "renew.www1.example.jp"
MAIL_FILE = "2026cert.txt"
P7B_FILE = "2026cert.p7b"
CA_FILE = "rehearsal-roots.pem"


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    locale: str = "en"
    codepage: int = 437
    g5_in_root: bool = True
    pending_request: bool = True
    key_exportable: bool = True
    windows_version: str = "5.2.3790"  # Windows Server 2003 SP2
    iis_major: int = 6  # InetStp MajorVersion: the kit must refuse anything but 6
    iis7_model: bool = False  # sites in applicationHost.config + HTTP.sys bindings (opslib.rehearsal.iis7)
    sni: bool = False  # IIS 8+: the production site is one of two SNI sites on *:443
    locked_in_temp: tuple[str, ...] = ()  # file patterns under %TEMP% another process holds open
    probe_lies: tuple[str, ...] = ()  # certutil verbs whose "-?" says present but whose use fails
    probe_denies: tuple[str, ...] = ()  # certutil verbs whose "-?" says absent but whose use works
    chain: str = "g5"  # the CA chain shape (opslib.rehearsal.pki.CHAINS)
    netsh_missing: tuple[str, ...] = ()  # netsh http verbs this server answers "command not found" for
    dualstack: str = ""  # "iis": production also on [::]:443 with IIS's AppId; "foreign": another AppId
    ssl_port: int = 443  # the work site's port --params-out writes (IIS 7.x: no SNI, so one of its own)
    # IIS 6: the production site has no SSLCertHash of its own and serves the one set on /LM/W3SVC
    # (INHERIT, W-IIS6-SSLCERTHASH-INHERIT); the work site then reads it inherited too.
    inherited_cert: bool = False


_ALL = (
    Scenario("default", "English 2003/IIS 6: G5 enabled in Trusted Root, pending request on the work site"),
    Scenario(
        "no-g5",
        "like default, but no G5 root in any Trusted Root store (step 0 has nothing to do)",
        g5_in_root=False,
    ),
    Scenario(
        "no-pending-request",
        "like default, but the REQUEST store is empty (the key was lost)",
        pending_request=False,
    ),
    # The whole lifecycle (issue 28): no pending request yet; `opslib request` makes it, `opslib rehearse
    # issue` answers as the CA, `opslib run` installs.
    Scenario(
        "iis6-ja-no-request",
        "like iis6-ja (Japanese 2003/IIS 6), but no request has been made yet: the REQUEST store is empty",
        locale="ja",
        codepage=932,
        pending_request=False,
    ),
    Scenario(
        "key-not-exportable",
        "like default, but the pending request's key is not exportable",
        key_exportable=False,
    ),
    Scenario(
        "iis6-ja", "Japanese 2003/IIS 6 (code page 932), otherwise like default", locale="ja", codepage=932
    ),
    Scenario(
        "iis6-inherited",
        "like default, but the production site has no SSLCertHash of its own: it inherits the current "
        "certificate set on /LM/W3SVC (the swap must give it its own)",
        inherited_cert=True,
    ),
    Scenario(
        "iis7",
        "Windows Server 2008 R2 / IIS 7.5 (InetStp MajorVersion 7), otherwise like default: the kit must "
        "refuse before anything changes",
        windows_version="6.1.7601",
        iis_major=7,
    ),
    Scenario(
        "iis75-ja",
        "Japanese Windows Server 2008 R2 SP1 / IIS 7.5 (code page 932): production site on *:443 "
        "(HTTP.sys SslBindingInfo 0.0.0.0:443), stopped work site holding the pending request",
        locale="ja",
        codepage=932,
        windows_version="6.1.7601",
        iis_major=7,
        iis7_model=True,
        ssl_port=8443,
    ),
    Scenario(
        "iis75-ja-no-request",
        "like iis75-ja (Japanese 2008 R2 / IIS 7.5), but no request has been made yet: the REQUEST store is "
        "empty",
        locale="ja",
        codepage=932,
        windows_version="6.1.7601",
        iis_major=7,
        iis7_model=True,
        ssl_port=8443,
        pending_request=False,
    ),
    Scenario(
        "iis85",
        "English Windows Server 2012 R2 / IIS 8.5: like iis10-sni (SNI sites on *:443, a non-SNI site on "
        '0.0.0.0:443), but `netsh http update sslcert` answers "The following command was not found" as '
        "reported on real 2012 R2 servers",
        windows_version="6.3.9600",
        iis_major=8,
        iis7_model=True,
        sni=True,
        netsh_missing=("update",),
    ),
    Scenario(
        "iis10-dualstack",
        "English Windows Server 2019 / IIS 10: production site on *:443 served by HTTP.sys 0.0.0.0:443 and "
        "[::]:443, both with IIS's AppId (IPv4 and IPv6 clients)",
        windows_version="10.0.17763",
        iis_major=10,
        iis7_model=True,
        dualstack="iis",
    ),
    Scenario(
        "iis10-dualstack-foreign",
        "like iis10-dualstack, but [::]:443 carries another application's AppId: the kit must refuse "
        "before anything changes",
        windows_version="10.0.17763",
        iis_major=10,
        iis7_model=True,
        dualstack="foreign",
    ),
    Scenario(
        "iis10",
        "English Windows Server 2019 / IIS 10: production site on *:443 (SslBindingInfo 0.0.0.0:443), "
        "stopped work site holding the pending request",
        windows_version="10.0.17763",
        iis_major=10,
        iis7_model=True,
    ),
    Scenario(
        "iis10-no-request",
        "like iis10 (English 2019 / IIS 10), but no request has been made yet: the REQUEST store is empty",
        windows_version="10.0.17763",
        iis_major=10,
        iis7_model=True,
        pending_request=False,
    ),
    Scenario(
        "iis10-sni",
        "English Windows Server 2019 / IIS 10: production and a second site as SNI bindings on *:443 "
        "(SslSniBindingInfo, sslFlags=1) plus a non-SNI site holding 0.0.0.0:443",
        windows_version="10.0.17763",
        iis_major=10,
        iis7_model=True,
        sni=True,
    ),
    Scenario(
        "pfx-locked",
        "like default, but every PFX in the server's temp folder stays locked (held open by another process): "
        "del ends with status 0 and the file stays; rmdir /s /q leaves it and its folder",
        locked_in_temp=("*.pfx",),
    ),
    Scenario(
        "b64-locked",
        "like default, but every base64 staging copy (.b64) in the server's temp folder stays locked",
        locked_in_temp=("*.b64",),
    ),
    Scenario(
        "exportpfx-probe-lies",
        "like default, but `certutil -exportPFX -?` exits 0 while -exportPFX itself fails as an unknown verb",
        probe_lies=("exportPFX",),
    ),
    Scenario(
        "exportpfx-probe-denies",
        "like default, but `certutil -exportPFX -?` fails as an unknown verb while -exportPFX itself works",
        probe_denies=("exportPFX",),
    ),
    Scenario(
        "hashfile-probe-lies",
        "like default, but `certutil -hashfile -?` exits 0 while -hashfile itself fails as an unknown verb",
        probe_lies=("hashfile",),
    ),
    Scenario(
        "hashfile-probe-denies",
        "like default, but `certutil -hashfile -?` fails as an unknown verb while -hashfile itself works",
        probe_denies=("hashfile",),
    ),
    # Chains operators meet now (issue 11); each with the stores its current certificate needs.
    Scenario(
        "modern-chain",
        "root -> one intermediate -> leaf (a 'Global Root G2'-like rehearsal root enabled in Trusted Root, "
        "its intermediate in Intermediate CA), no cross certificate, no G5 anywhere",
        chain="modern",
    ),
    Scenario(
        "cross-to-older-root",
        "the CA's newer root is absent from the server, which trusts only an older root; the path runs "
        "leaf -> intermediate -> cross certificate (newer root's key, signed by the older root) -> older root",
        chain="cross-to-older-root",
    ),
    Scenario(
        "expired-cross",
        "like default (G5 enabled in Trusted Root), but the only cross certificate for G5 has expired, as "
        "the real one did on 2021-11-07: with G5 disabled no valid path remains",
        chain="expired-cross",
    ),
)
_PRODUCTS = {
    "5.2": ("Microsoft Windows Server 2003", "Service Pack 2"),
    "6.1": ("Windows Server 2008 R2", "Service Pack 1"),
    "6.3": ("Windows Server 2012 R2 Standard", ""),
    "10.0": ("Windows Server 2019 Standard", ""),  # no service packs after 2008 R2: no CSDVersion [I]
}

SCENARIOS: dict[str, str] = {s.name: s.description for s in _ALL}
_BY_NAME = {s.name: s for s in _ALL}


def shipped_auth(name: str) -> str:
    """The WinRM authentication a scenario's Windows ships with: ``ntlm`` (Negotiate, message encryption;
    Basic and unencrypted HTTP refused) from Server 2008 R2 / WinRM 2.0 on, ``basic`` for the Server 2003
    scenarios (the historical rehearsal endpoint). docs/iis7.md, "WinRM as shipped"."""
    scenario = _BY_NAME.get(name)
    if scenario is None:
        raise UsageError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    return "ntlm" if int(scenario.windows_version.split(".")[0]) >= 6 else "basic"


def _set_versions(host: Host) -> None:
    # IIS version: HKLM\SOFTWARE\Microsoft\InetStp MajorVersion/MinorVersion (REG_DWORD) [I: the key
    # IIS setup writes; read by the kit's probe instead of assuming a version].
    host.reg_set(r"HKLM\SOFTWARE\Microsoft\InetStp", "MajorVersion", "REG_DWORD", host.iis_major)
    host.reg_set(
        r"HKLM\SOFTWARE\Microsoft\InetStp", "MinorVersion", "REG_DWORD", 5 if host.iis_major in (7, 8) else 0
    )
    host.reg_set(r"HKLM\SOFTWARE\Microsoft\InetStp", "PathWWWRoot", "REG_SZ", r"C:\Inetpub\wwwroot")
    # Windows version: HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion (5.2 build 3790 = 2003).
    nt = r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion"
    major_minor = ".".join(host.windows_version.split(".")[:2])
    host.reg_set(nt, "CurrentVersion", "REG_SZ", major_minor)
    host.reg_set(nt, "CurrentBuildNumber", "REG_SZ", host.windows_version.split(".")[-1])
    product, service_pack = _PRODUCTS.get(major_minor, _PRODUCTS["5.2"])
    if service_pack:
        host.reg_set(nt, "CSDVersion", "REG_SZ", service_pack)
    host.reg_set(nt, "ProductName", "REG_SZ", product)


def _real_g5() -> certs.Certificate:
    entry = certs.KNOWN.by_role("forbidden_root")[0]
    return entry.certificate


def _populate_stores(host: Host, pki: Pki, scenario: Scenario) -> None:
    stores.init_stores(host)
    # Trusted Root (G5 shapes): the old Class 3 PCA (rehearsal copy) in .Default; G5 (rehearsal)
    # enabled in .Default; the real G5 (catalogue) enabled in .AuthRoot. Other shapes: their roots.
    for root in pki.chain.server_roots:
        stores.add_certificate(host, "ROOT", root)
    if scenario.g5_in_root:
        for root in pki.chain.roots_to_disable:
            stores.add_certificate(host, "ROOT", root)
        if pki.chain.real_g5_in_authroot:
            stores.add_certificate(host, "ROOT", _real_g5(), physical="AuthRoot")
    # Intermediate CAs: the CA's intermediate and the cross certificate (G5 shape: the G5 cross).
    for ca in pki.chain.server_cas:
        stores.add_certificate(host, "CA", ca)
    # Personal: the certificate the production site serves today, with its key.
    stores.add_certificate(
        host, "MY", pki.current_leaf, key=pki.current_key, friendly_name=f"{HOSTNAMES[0]} (current)"
    )
    # Certificate Enrollment Requests: the dummy certificate holding the renewal key (seed step 1).
    if scenario.pending_request:
        stores.add_certificate(
            host, "REQUEST", pki.request_placeholder(), key=pki.new_key, exportable=scenario.key_exportable
        )


def _populate_sites(host: Host, pki: Pki, *, inherited: bool = False) -> None:
    current = certs.thumbprint(pki.current_leaf)
    if inherited:
        host.extra["w3svc_ssl_cert_hash"] = current  # /LM/W3SVC SSLCertHash (programs/cscript.py)
    host.sites[1] = Site(
        id=1,
        comment=PRODUCTION_SITE,
        state=STARTED,
        server_bindings=[f":80:{PRODUCTION_SITE}"],
        secure_bindings=[":443:"],
        ssl_cert_hash="" if inherited else current,
        ssl_store_name="" if inherited else "MY",
    )
    # The work site: the renewal CSR was made on it with the IIS wizard; it holds no certificate
    # yet and is stopped (it would clash with the production site on :443: once it has one).
    host.sites[2] = Site(
        id=2,
        comment=WORK_SITE,
        state=STOPPED,
        server_bindings=[f":80:{WORK_SITE}"],
        secure_bindings=[],
    )


def _write_workdir(workdir: Path, pki: Pki) -> dict[str, str]:
    workdir.mkdir(parents=True, exist_ok=True)
    mail = workdir / MAIL_FILE
    # The mail body as an operator saves it on Japanese Windows (Notepad "ANSI" = Shift_JIS) [I].
    mail.write_bytes(pki.notification_mail(charset="shift_jis"))
    p7b = workdir / P7B_FILE
    p7b.write_bytes(pki.pkcs7_bundle(encoding="DER"))
    ca_file = workdir / CA_FILE
    ca_file.write_bytes(pki.pem(*pki.chain.client_roots))
    write_ca(workdir, pki)  # the rehearsal CA of `opslib rehearse issue --workdir`
    return {"certificate_file": str(mail), "pkcs7_file": str(p7b), "verify_ca_file": str(ca_file)}


def build_host(
    name: str = "default",
    *,
    locale: str | None = None,
    codepage: int | None = None,
    state_file: str | os.PathLike[str] | None = None,
    workdir: str | os.PathLike[str],
    now_utc: datetime | None = None,
    current_days_left: int = 10,
    leaf_tag: str = "",
) -> Host:
    """A populated rehearsal host for scenario ``name`` (see :data:`SCENARIOS`).

    Writes the CA's mail (``2026cert.txt``), the PKCS#7 (``2026cert.p7b``) and the rehearsal trust
    anchors (``rehearsal-roots.pem``) into ``workdir``. The certificate the production site serves
    expires ``current_days_left`` days from now (a rehearsal fleet varies it host by host); ``leaf_tag`` gives
    the host server certificates of its own (:func:`opslib.rehearsal.pki.make_pki`).
    """
    scenario = _BY_NAME.get(name)
    if scenario is None:
        raise UsageError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    clock = (now_utc or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    pki = make_pki(
        now_utc=clock,
        hostnames=HOSTNAMES,
        chain=scenario.chain,
        current_days_left=current_days_left,
        leaf_tag=leaf_tag,
    )
    chosen_locale = locale or scenario.locale
    # A Japanese Windows console's OEM code page is 932 (W-CODEPAGE-DECODE); an explicit one wins.
    default_codepage = 932 if chosen_locale == "ja" else scenario.codepage
    host = Host(
        hostname="WEB01",
        locale=chosen_locale,
        codepage=codepage or default_codepage,
        windows_version=scenario.windows_version,
        iis_major=scenario.iis_major,
        state_file=state_file,
    )
    cmd.prepare_host(host)
    temp = Host.norm(str(host.env.get("TEMP", "")))
    host.locked_files.update(f"{temp}\\{pattern}" for pattern in scenario.locked_in_temp)
    _set_versions(host)
    register_all(host)
    _populate_stores(host, pki, scenario)
    if scenario.iis7_model:
        iis7_sites = scenarios_iis7.populate(host, pki, sni=scenario.sni, dualstack=scenario.dualstack)
    else:
        _populate_sites(host, pki, inherited=scenario.inherited_cert)
        iis7_sites = {}
    files = _write_workdir(Path(workdir), pki)
    host.extra.update(
        {
            "scenario": scenario.name,
            "now_utc": clock.isoformat(),
            "production_site": PRODUCTION_SITE,
            "work_site": WORK_SITE,
            "ssl_port": scenario.ssl_port,
            "hostnames": list(HOSTNAMES),
            "expected_hostnames": list(HOSTNAMES),
            "forbidden_roots": list(pki.forbidden_thumbprints),
            "current_thumbprint": certs.thumbprint(pki.current_leaf),
            "new_thumbprint": certs.thumbprint(pki.new_leaf),
            "verify_endpoint": "",  # filled by opslib.rehearsal.tlsserve when it serves the sites
            "verify_servername": HOSTNAMES[0],
            **files,
            **iis7_sites,
        }
    )
    if scenario.netsh_missing:
        host.extra["netsh_missing"] = list(scenario.netsh_missing)
    if scenario.probe_lies:
        host.extra["certutil_probe_lies"] = list(scenario.probe_lies)
    if scenario.probe_denies:
        host.extra["certutil_probe_denies"] = list(scenario.probe_denies)
    return host
