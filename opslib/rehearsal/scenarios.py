"""Scenarios for the rehearsal host: a Windows Server 2003 / IIS 6 web server in the seed's situation.

The seed (``shared/seed/``, the CA's IIS 6 renewal article) starts from: a production site serving
the current certificate (about to expire), a separate work site on which the renewal CSR was made
(its key sits in the REQUEST store as a pending request), the CA's issuance mail with the new
certificate, and possibly the VeriSign G5 root enabled in Trusted Root (step 0 must disable it).

Every scenario uses the rehearsal PKI (:mod:`opslib.rehearsal.pki`): its "G5 (Rehearsal)" root has
its own key, so the kit — which recognises the *real* G5 by its catalogue thumbprint — is told about
it through ``forbidden_roots`` (``host.extra``), exactly as an operator would list an extra root.
The real G5 root from the catalogue also sits in AuthRoot (as Windows Update would put it there).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .. import certs
from ..errors import UsageError
from . import cmd
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
    chain: str = "g5"  # the CA chain shape (opslib.rehearsal.pki.CHAINS)


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
    Scenario(
        "key-not-exportable",
        "like default, but the pending request's key is not exportable",
        key_exportable=False,
    ),
    Scenario(
        "iis6-ja", "Japanese 2003/IIS 6 (code page 932), otherwise like default", locale="ja", codepage=932
    ),
    Scenario(
        "iis7",
        "Windows Server 2008 R2 / IIS 7.5 (InetStp MajorVersion 7), otherwise like default: the kit must "
        "refuse before anything changes",
        windows_version="6.1.7601",
        iis_major=7,
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
}

SCENARIOS: dict[str, str] = {s.name: s.description for s in _ALL}
_BY_NAME = {s.name: s for s in _ALL}


def _set_versions(host: Host) -> None:
    # IIS version: HKLM\SOFTWARE\Microsoft\InetStp MajorVersion/MinorVersion (REG_DWORD) [I: the key
    # IIS setup writes; read by the kit's probe instead of assuming a version].
    host.reg_set(r"HKLM\SOFTWARE\Microsoft\InetStp", "MajorVersion", "REG_DWORD", host.iis_major)
    host.reg_set(
        r"HKLM\SOFTWARE\Microsoft\InetStp", "MinorVersion", "REG_DWORD", 5 if host.iis_major == 7 else 0
    )
    host.reg_set(r"HKLM\SOFTWARE\Microsoft\InetStp", "PathWWWRoot", "REG_SZ", r"C:\Inetpub\wwwroot")
    # Windows version: HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion (5.2 build 3790 = 2003).
    nt = r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion"
    major_minor = ".".join(host.windows_version.split(".")[:2])
    host.reg_set(nt, "CurrentVersion", "REG_SZ", major_minor)
    host.reg_set(nt, "CurrentBuildNumber", "REG_SZ", host.windows_version.split(".")[-1])
    product, service_pack = _PRODUCTS.get(major_minor, _PRODUCTS["5.2"])
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


def _populate_sites(host: Host, pki: Pki) -> None:
    current = certs.thumbprint(pki.current_leaf)
    host.sites[1] = Site(
        id=1,
        comment=PRODUCTION_SITE,
        state=STARTED,
        server_bindings=[f":80:{PRODUCTION_SITE}"],
        secure_bindings=[":443:"],
        ssl_cert_hash=current,
        ssl_store_name="MY",
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
    return {"certificate_file": str(mail), "pkcs7_file": str(p7b), "verify_ca_file": str(ca_file)}


def build_host(
    name: str = "default",
    *,
    locale: str | None = None,
    codepage: int | None = None,
    state_file: str | os.PathLike[str] | None = None,
    workdir: str | os.PathLike[str],
    now_utc: datetime | None = None,
) -> Host:
    """A populated rehearsal host for scenario ``name`` (see :data:`SCENARIOS`).

    Writes the CA's mail (``2026cert.txt``), the PKCS#7 (``2026cert.p7b``) and the rehearsal trust
    anchors (``rehearsal-roots.pem``) into ``workdir``.
    """
    scenario = _BY_NAME.get(name)
    if scenario is None:
        raise UsageError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    clock = (now_utc or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    pki = make_pki(now_utc=clock, hostnames=HOSTNAMES, chain=scenario.chain)
    chosen_locale = locale or scenario.locale
    # A Japanese Windows console's OEM code page is 932 (winrm.md section 1.5); an explicit one wins.
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
    _set_versions(host)
    register_all(host)
    _populate_stores(host, pki, scenario)
    _populate_sites(host, pki)
    files = _write_workdir(Path(workdir), pki)
    host.extra.update(
        {
            "scenario": scenario.name,
            "now_utc": clock.isoformat(),
            "production_site": PRODUCTION_SITE,
            "work_site": WORK_SITE,
            "ssl_port": 443,
            "hostnames": list(HOSTNAMES),
            "expected_hostnames": list(HOSTNAMES),
            "forbidden_roots": list(pki.forbidden_thumbprints),
            "current_thumbprint": certs.thumbprint(pki.current_leaf),
            "new_thumbprint": certs.thumbprint(pki.new_leaf),
            "verify_endpoint": "",  # filled by opslib.rehearsal.tlsserve when it serves the sites
            "verify_servername": HOSTNAMES[0],
            **files,
        }
    )
    return host
