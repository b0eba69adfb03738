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
from dataclasses import dataclass

from ..server.regfile import parse_reg_export
from .base import SslBinding

__all__ = [
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


def parse_http_bindings(export: bytes | None) -> dict[tuple[str, str], HttpSslBinding]:
    """``reg export`` of the HTTP Parameters key → {(kind, endpoint lower case): binding}."""
    found: dict[tuple[str, str], HttpSslBinding] = {}
    if export is None:
        return found
    for key, values in parse_reg_export(export).items():
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
