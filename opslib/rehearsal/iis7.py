"""IIS 7–10 on the rehearsal host: sites, application pools and the HTTP.sys SSL bindings.

On IIS 7+ the certificate is not a site property (as SSLCertHash is on IIS 6): IIS owns only the
site's ``<binding protocol="https" bindingInformation="IP:port:host" sslFlags>``; the certificate
belongs to HTTP.sys, which keeps its SSL configuration in the registry
(https://www.fast2host.com/knowledgebase/article/279/replace-wildcard-ssl-on-multiple-sites-bound-to-same-ip/):

* ``HKLM\\SYSTEM\\CurrentControlSet\\Services\\HTTP\\Parameters\\SslBindingInfo\\<ip:port>`` — one
  key per IP:port binding, e.g. ``0.0.0.0:443`` (the subkey name and ``DefaultSslCertCheckMode``
  under it are quoted in the fix text of the DISA IIS 7 STIG rule WG145 / V-13672, and the value in
  https://github.com/kaushalp/kaushalp.github.io/blob/master/_posts/2012-10-15-disable-client-certificate-revocation-crl-check-on-iis.md );
* ``...\\SslSniBindingInfo\\<hostname:port>`` — IIS 8+ / Windows Server 2012+ SNI bindings
  ("In IIS 8 we have a new registry key where all the SNI bindings are stored",
  https://github.com/kaushalp/kaushalp.github.io/blob/master/_posts/2012-09-04-server-name-indication-sni-with-iis-8-windows-server-2012.md ,
  Microsoft's Kaushal Panday; the subkey named ``hostname:port`` as netsh shows it is [I]).

Values of each key: the fields of HTTP_SERVICE_CONFIG_SSL_PARAM
(https://learn.microsoft.com/en-us/windows/win32/api/http/ns-http-http_service_config_ssl_param):
``SslCertHash`` REG_BINARY (the 20-byte SHA-1), ``AppId`` REG_BINARY (the GUID in its in-memory,
little-endian-first-fields form [I]), ``SslCertStoreName`` REG_SZ (``MY``; ``WebHosting`` on IIS 8+),
``DefaultSslCertCheckMode``, ``DefaultRevocationFreshnessTime``,
``DefaultRevocationUrlRetrievalTimeout``, ``DefaultFlags`` REG_DWORD (0 unless netsh was told
otherwise). Which of the optional values netsh writes when they are 0 is [U]; all are written here.

Site start (``appcmd start site``) follows IIS behaviour: appcmd returns Win32 error codes as its
exit code ("The errorlevels returned by AppCmd.exe are listed in the winerror.h file",
https://msdn.microsoft.com/library/azure/hh974418.aspx). Starting a site whose binding (protocol +
bindingInformation) another *started* site holds fails with 0x800700B7 ERROR_ALREADY_EXISTS [I: the
HRESULT IIS Manager shows for "Cannot create a file when that file already exists"]; a site
already started → 0x80070420 ERROR_SERVICE_ALREADY_RUNNING, already stopped → 0x80070426
ERROR_SERVICE_NOT_ACTIVE [I]. A site whose https binding has no HTTP.sys certificate, or whose
certificate is missing from the store or has no private key, still starts: W3SVC registers URLs,
it does not check certificates; the TLS handshake then fails (``opslib/rehearsal/tlsserve.py``) [I].
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from .host import AppPool, Host, WebBinding, WebSite

HTTP_PARAMETERS = r"HKLM\SYSTEM\CurrentControlSet\Services\HTTP\Parameters"
SSL_BINDING_INFO = HTTP_PARAMETERS + r"\SslBindingInfo"
SSL_SNI_BINDING_INFO = HTTP_PARAMETERS + r"\SslSniBindingInfo"
# The AppId IIS itself registers its bindings with, used by the public scripts that call netsh
# (https://github.com/kaushalp/kaushalp.github.io, netsh show sslcert output in the SNI post).
IIS_APP_ID = "{4dc3e181-e14b-4a21-b022-59fc669b0914}"

STARTED, STOPPED = "Started", "Stopped"
ERROR_ALREADY_EXISTS = 183
ERROR_SERVICE_ALREADY_RUNNING = 1056
ERROR_SERVICE_NOT_ACTIVE = 1062
ERROR_NOT_FOUND = 1168
ERROR_SHARING_VIOLATION = 32


@dataclass(frozen=True)
class SslBinding:
    """One HTTP.sys SSL binding as the registry holds it."""

    kind: str  # "ipport" or "hostnameport"
    endpoint: str  # "0.0.0.0:443" / "www1.example.jp:443" (the subkey name)
    thumbprint: str  # 40 upper-case hex digits
    store: str
    app_id: str  # "{xxxxxxxx-…}" lower case


def _key(kind: str, endpoint: str) -> str:
    return (SSL_BINDING_INFO if kind == "ipport" else SSL_SNI_BINDING_INFO) + "\\" + endpoint


def supports_sni(host: Host) -> bool:
    """SNI bindings exist from IIS 8 / Windows Server 2012 (6.2) on (module doc)."""
    return host.iis_major >= 8


def ensure_http_keys(host: Host) -> None:
    """The HTTP service's parameter keys, present on every IIS 7+ host (SNI key from IIS 8) [I]."""
    keys = [HTTP_PARAMETERS, SSL_BINDING_INFO] + ([SSL_SNI_BINDING_INFO] if supports_sni(host) else [])
    with host.lock:
        for key in keys:
            host.registry.setdefault(key.upper(), {})
            host.registry_case.setdefault(key.upper(), key)


def set_ssl_binding(
    host: Host, kind: str, endpoint: str, *, thumbprint: str, store: str = "MY", app_id: str = IIS_APP_ID
) -> None:
    """Write (create or overwrite) one binding's registry key with the values HTTP.sys keeps."""
    key = _key(kind, endpoint)
    ensure_http_keys(host)
    with host.lock:
        host.reg_delete_key(key)
        host.reg_set(key, "SslCertHash", "REG_BINARY", bytes.fromhex(thumbprint))
        host.reg_set(key, "AppId", "REG_BINARY", uuid.UUID(app_id.strip("{}")).bytes_le)
        host.reg_set(key, "SslCertStoreName", "REG_SZ", store)
        for name in (
            "DefaultSslCertCheckMode",
            "DefaultRevocationFreshnessTime",
            "DefaultRevocationUrlRetrievalTimeout",
            "DefaultFlags",
        ):
            host.reg_set(key, name, "REG_DWORD", 0)


def ssl_binding(host: Host, kind: str, endpoint: str) -> SslBinding | None:
    """The binding at ``endpoint`` (case-insensitive), None when HTTP.sys has none."""
    key = _key(kind, endpoint)
    if not host.reg_has_key(key):
        return None
    shown = host.registry_case.get(key.upper(), key).rsplit("\\", 1)[-1]
    cert = host.reg_get(key, "SslCertHash")
    store = host.reg_get(key, "SslCertStoreName")
    app = host.reg_get(key, "AppId")
    thumb = cert[2].hex().upper() if cert and isinstance(cert[2], bytes) else ""
    app_id = (
        "{" + str(uuid.UUID(bytes_le=app[2])) + "}"
        if app and isinstance(app[2], bytes) and len(app[2]) == 16
        else ""
    )
    return SslBinding(kind, shown, thumb, str(store[2]) if store else "MY", app_id)


def delete_ssl_binding(host: Host, kind: str, endpoint: str) -> bool:
    return host.reg_delete_key(_key(kind, endpoint))


def ssl_bindings(host: Host) -> list[SslBinding]:
    """Every binding, IP:port ones first (the order ``netsh http show sslcert`` lists them [I])."""
    out: list[SslBinding] = []
    for kind, base in (("ipport", SSL_BINDING_INFO), ("hostnameport", SSL_SNI_BINDING_INFO)):
        for sub in host.reg_subkeys(base):
            found = ssl_binding(host, kind, sub)
            if found is not None:
                out.append(found)
    return out


# --- sites ----------------------------------------------------------------------------------------


def split_binding(info: str) -> tuple[str, int, str]:
    """``"*:443:host"`` → ("*", 443, "host"); IPv6 ``"[::1]:443:"`` keeps its brackets."""
    if info.startswith("["):
        addr, _, rest = info[1:].partition("]:")
        addr = "[" + addr + "]"
    else:
        addr, _, rest = info.partition(":")
    port, _, hostname = rest.partition(":")
    return addr, int(port) if port.isdigit() else 0, hostname


def ipport_of(info: str) -> str:
    """The HTTP.sys IP:port key a binding uses: ``*`` is ``0.0.0.0`` [I, netsh's wildcard form]."""
    addr, port, _ = split_binding(info)
    return f"{'0.0.0.0' if addr in ('*', '') else addr}:{port}"


def find_site(host: Host, name: str) -> WebSite | None:
    """A site by name; appcmd compares names case-insensitively [I]."""
    return next((s for s in host.web_sites.values() if s.name.lower() == name.lower()), None)


def find_pool(host: Host, name: str) -> AppPool | None:
    return next((p for p in host.app_pools.values() if p.name.lower() == name.lower()), None)


def _endpoints(site: WebSite) -> set[tuple[str, str]]:
    return {(b.protocol.lower(), b.binding_information.lower()) for b in site.bindings}


def fail_thumbprints(host: Host) -> set[str]:
    """Scenario fault ``host.extra["fail_start_thumbprints"]`` (as on IIS 6): starting a site fails while
    one of its HTTP.sys bindings holds one of these certificates (a fault injection: W3SVC itself does
    not check certificates, module doc)."""
    return {str(t).upper() for t in host.extra.get("fail_start_thumbprints", ())}


def served_thumbprints(host: Host, site: WebSite) -> set[str]:
    """The certificates HTTP.sys holds for the site's https bindings (IP:port and, with a host name, SNI)."""
    found: set[str] = set()
    for b in site.bindings:
        if b.protocol.lower() != "https":
            continue
        _, port, hostname = split_binding(b.binding_information)
        ends = [("ipport", ipport_of(b.binding_information))] + (
            [("hostnameport", f"{hostname}:{port}")] if hostname else []
        )
        found |= {got.thumbprint for kind, end in ends if (got := ssl_binding(host, kind, end)) is not None}
    return found


def start_site(host: Host, site: WebSite) -> int:
    """Start ``site``; 0 or the Win32 error appcmd reports (module doc)."""
    with host.lock:
        if site.state == STARTED:
            return ERROR_SERVICE_ALREADY_RUNNING
        if site.fail_start or served_thumbprints(host, site) & fail_thumbprints(host):
            return ERROR_SHARING_VIOLATION
        mine = _endpoints(site)
        for other in host.web_sites.values():
            if other.id != site.id and other.state == STARTED and mine & _endpoints(other):
                return ERROR_ALREADY_EXISTS
        site.state = STARTED
        return 0


def stop_site(host: Host, site: WebSite) -> int:
    with host.lock:
        if site.state == STOPPED:
            return ERROR_SERVICE_NOT_ACTIVE
        site.state = STOPPED
        return 0


def add_site(
    host: Host,
    site_id: int,
    name: str,
    bindings: list[WebBinding],
    *,
    state: str = STOPPED,
    app_pool: str = "DefaultAppPool",
) -> WebSite:
    """Scenario helper: one site (and its application pool when new)."""
    with host.lock:
        host.app_pools.setdefault(app_pool, AppPool(app_pool))
        site = WebSite(id=site_id, name=name, state=state, bindings=bindings, app_pool=app_pool)
        host.web_sites[site_id] = site
        return site
