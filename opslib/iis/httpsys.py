"""HTTP.sys SSL bindings and appcmd XML as data: parsed from ``reg export`` and ``appcmd … /xml`` bytes.

No remote command here (bytes in, facts out), used by :mod:`opslib.iis.iis7`. The registry layout:
``HKLM\\SYSTEM\\CurrentControlSet\\Services\\HTTP\\Parameters\\SslBindingInfo\\<ip:port>`` and, from IIS 8 /
Server 2012, ``…\\SslSniBindingInfo\\<hostname:port>``; values ``SslCertHash`` (REG_BINARY SHA-1),
``SslCertStoreName`` (REG_SZ), ``AppId`` (REG_BINARY GUID) — the fields of HTTP_SERVICE_CONFIG_SSL_PARAM
(https://learn.microsoft.com/en-us/windows/win32/api/http/ns-http-http_service_config_ssl_param; W-IIS7-REG).
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ParameterError
from ..winrm import Raw, cmdline, join_commands
from .base import RegistryReader, Site, SslBinding

__all__ = [
    "work_binding",
    "work_endpoint",
    "served_by",
    "users_of",
    "RegistryReader",
    "set_lines",
    "site_line",
    "swap_line",
    "APPCMD",
    "HTTP_PARAMETERS",
    "IIS_APP_ID",
    "HttpSslBinding",
    "RawSite",
    "binding_key",
    "parse_http_bindings",
    "parse_xml",
    "raw_sites",
]

# appcmd's documented location (W-IIS7-APPCMD-LIST); %windir% is expanded by cmd, so it travels Raw.
APPCMD = r"%windir%\system32\inetsrv\appcmd.exe"
HTTP_PARAMETERS = r"HKLM\SYSTEM\CurrentControlSet\Services\HTTP\Parameters"
# The AppId IIS registers its HTTP.sys SSL bindings with (IIS Manager; W-IIS7-REG). A binding with
# another AppId belongs to another application (e.g. a self-hosted service): the kit never touches it.
IIS_APP_ID = "{4dc3e181-e14b-4a21-b022-59fc669b0914}"


@dataclass(frozen=True)
class HttpSslBinding:
    """One HTTP.sys SSL binding as the registry holds it."""

    kind: str  # "ipport" or "hostnameport" (netsh's parameter name)
    endpoint: str  # "0.0.0.0:443" or "www1.example.jp:443" (the subkey name)
    thumbprint: str
    store: str
    app_id: str  # "{…}" lower case, "" when unreadable

    @property
    def label(self) -> str:
        return f"HTTP.sys {self.kind}={self.endpoint}"

    @property
    def owned_by_iis(self) -> bool:
        return self.app_id.lower() == IIS_APP_ID


@dataclass(frozen=True)
class RawSite:
    id: int
    name: str
    state: str
    bindings: tuple[tuple[str, str], ...]  # (protocol, bindingInformation)

    @property
    def https(self) -> list[SslBinding]:
        return [SslBinding.parse(info) for proto, info in self.bindings if proto.lower() == "https"]


def binding_key(kind: str, endpoint: str) -> tuple[str, str]:
    return kind, endpoint.lower()


def parse_http_bindings(
    export: Mapping[str, Mapping[str, tuple[str, Any]]] | None,
) -> dict[tuple[str, str], HttpSslBinding]:
    """The parsed ``reg export`` of the HTTP Parameters key → {(kind, endpoint lower case): binding}."""
    found: dict[tuple[str, str], HttpSslBinding] = {}
    if export is None:
        return found
    for key, values in export.items():
        parent, _, sub = key.rpartition("\\")
        kind = {"sslbindinginfo": "ipport", "sslsnibindinginfo": "hostnameport"}.get(
            parent.rpartition("\\")[2].lower()
        )
        if kind is None or not sub:
            continue
        cert, store, app = values.get("SslCertHash"), values.get("SslCertStoreName"), values.get("AppId")
        thumb = bytes(cert[1]).hex().upper() if cert and isinstance(cert[1], bytes | bytearray) else ""
        app_id = (
            "{" + str(uuid.UUID(bytes_le=bytes(app[1]))) + "}"
            if app and isinstance(app[1], bytes | bytearray) and len(app[1]) == 16
            else ""
        )
        found[binding_key(kind, sub)] = HttpSslBinding(
            kind, sub, thumb, str(store[1]) if store else "MY", app_id
        )
    return found


def parse_xml(data: bytes, codepage: int) -> ET.Element:
    try:
        return ET.fromstring(data)
    except ET.ParseError:
        # appcmd writes in the console code page on some builds [U]; re-read as text without the declaration.
        text = data.decode(f"cp{codepage}" if codepage else "utf-8", errors="replace")
        return ET.fromstring(re.sub(r"^\s*<\?xml[^>]*\?>", "", text))


def raw_sites(root: ET.Element) -> list[RawSite]:
    """``<appcmd><SITE SITE.NAME=… SITE.ID=… bindings="http/*:80:,https/*:443:" state=…/>`` → sites by id."""
    out = []
    for e in root.findall("SITE"):
        bindings = tuple(
            (proto, info)
            for item in (e.get("bindings") or "").split(",")
            if item
            for proto, _, info in [item.partition("/")]
        )
        out.append(RawSite(int(e.get("SITE.ID", "0")), e.get("SITE.NAME", ""), e.get("state", ""), bindings))
    return sorted(out, key=lambda s: s.id)


def served_by(
    sni: bool, binding: SslBinding, http: Mapping[tuple[str, str], HttpSslBinding]
) -> tuple[str, str] | None:
    """The HTTP.sys binding key a site binding's certificate comes from (None: none): the SNI name's
    ``hostname:port`` (IIS 8+), else ``IP:port``, else ``0.0.0.0:port`` (W-IIS7-HTTPSYS-LOOKUP)."""
    if binding.host_header and sni:
        key = binding_key("hostnameport", f"{binding.host_header}:{binding.port}")
        if key in http:
            return key
    for ip in ([binding.ip] if binding.ip else []) + ["0.0.0.0"]:
        key = binding_key("ipport", f"{ip}:{binding.port}")
        if key in http:
            return key
    return None


def users_of(
    sni: bool,
    raws: list[RawSite],
    http: Mapping[tuple[str, str], HttpSslBinding],
    key: tuple[str, str],
    *,
    but: int,
) -> list[str]:
    """Labels of the sites (other than id ``but``) whose https bindings get their certificate from
    HTTP.sys ``key`` (counting ``key`` as present: what a new binding would serve too)."""
    probe = dict(http)
    probe.setdefault(key, HttpSslBinding(key[0], key[1], "", "MY", IIS_APP_ID))
    return [
        f'W3SVC/{r.id} "{r.name}" ({b.text})'
        for r in raws
        if r.id != but
        for b in r.https
        if served_by(sni, b, probe) == key
    ]


def work_binding(sni: bool, raw: RawSite, port: int, host_header: str) -> tuple[SslBinding, bool]:
    """Step 1's work binding on ``raw`` and whether the site has it already: ``*:port:NAME`` with SNI
    (``host_header``, else the site's one http host name when the server has SNI), else ``*:port:``."""
    if not 0 < port < 65536:
        raise ParameterError("ssl_port", f"{port} is not a TCP port")
    if not host_header and sni:
        names = {SslBinding.parse(i).host_header.lower() for p, i in raw.bindings if p.lower() == "http"}
        names.discard("")
        if len(names) == 1:
            host_header = names.pop()
    for b in raw.https:
        if b.port == port and b.host_header.lower() == host_header.lower():
            return b, True
    return SslBinding("", port, host_header), False


def work_endpoint(sni: bool, binding: SslBinding) -> tuple[str, str]:
    """The HTTP.sys binding (netsh parameter, endpoint) a new work binding gets."""
    if binding.host_header and sni:
        return "hostnameport", f"{binding.host_header}:{binding.port}"
    return "ipport", f"{binding.ip or '0.0.0.0'}:{binding.port}"


# --- command lines (every one built by the one quoting function) -------------------------------------


def netsh_line(verb: str, kind: str, endpoint: str, thumb: str = "", store: str = "MY") -> str:
    """One ``netsh http VERB sslcert`` line (W-IIS7-NETSH)."""
    argv = ["netsh", "http", verb, "sslcert", f"{kind}={endpoint}"]
    if verb != "delete":
        argv += [f"certhash={thumb}", f"appid={IIS_APP_ID}", f"certstorename={store}"]
    return cmdline(argv)


def set_lines(update: bool, kind: str, endpoint: str, thumb: str, store: str, *, exists: bool) -> str:
    """The line that makes ``kind=endpoint`` serve ``thumb``: add when absent; ``update`` where it exists
    (IIS 8+), else ``delete && add`` (Server 2008 R2, W-IIS7-NETSH-2008R2)."""
    if not exists:
        return netsh_line("add", kind, endpoint, thumb, store)
    if update:
        return netsh_line("update", kind, endpoint, thumb, store)
    return join_commands(
        [netsh_line("delete", kind, endpoint), netsh_line("add", kind, endpoint, thumb, store)]
    )


def site_line(verb: str, name: str) -> str:
    """``appcmd start|stop site /site.name:NAME`` (W-IIS7-APPCMD-CTL); ``%windir%`` travels as Raw."""
    return cmdline([Raw(APPCMD), verb, "site", f"/site.name:{name}"])  # type: ignore[list-item]


def swap_line(update: bool, site: Site, current: HttpSslBinding, thumb: str, old: str, old_store: str) -> str:
    """One cmd line: ``thumb`` (MY) on ``current``, restart ``site``; on any failure put ``old`` back.

    ``SET && [STOP &&] START || RESTORE & START`` (W-IIS7-SWAP-LINE): cmd runs it server-side in one
    process, so a dropped WinRM connection cannot leave it half done between commands. Windows that
    remain: on IIS 7.x between ``delete`` and ``add`` HTTP.sys has no certificate for the endpoint
    (handshakes fail for milliseconds; ``update`` on IIS 8+ replaces it in place); between stop and
    start the site answers nothing; a failed restore is found by the read-back (self-rollback). The
    trailing START also runs after success and then exits 1056 (already running): the result is
    decided by the registry and appcmd read-back, never by the line's exit code. The caller checks
    the length (W-CMD-LINE-8191).
    """
    steps = [set_lines(update, current.kind, current.endpoint, thumb, "MY", exists=True)]
    if site.started:
        steps.append(site_line("stop", site.name))
    steps.append(site_line("start", site.name))
    restore = set_lines(update, current.kind, current.endpoint, old, old_store, exists=True)
    return join_commands(steps) + " || " + restore + " & " + site_line("start", site.name)
