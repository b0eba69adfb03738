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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ParameterError, PreconditionFailed
from ..winrm import Bare, Raw, cmdline, join_commands
from .base import RegistryReader, Site, SslBinding

__all__ = [
    "endpoints_of",
    "restore_lines",
    "verb_probe_line",
    "production_endpoints",
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


def store_holding(read_registry: RegistryReader | None, sni: bool, thumb: str) -> str:
    """MY when it holds ``thumb``, else WebHosting (IIS 8+, ``sni``) when that does, else MY (netsh then
    fails and the read-back says so). Read from the registry: ``SystemCertificates\\<store>\\Certificates\\<SHA1>``."""
    if read_registry is not None and sni:  # WebHosting exists from IIS 8
        for store in ("MY", "WebHosting"):
            if read_registry(rf"HKLM\SOFTWARE\Microsoft\SystemCertificates\{store}\Certificates\{thumb}"):
                return store
    return "MY"


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
    for ip in ([binding.ip] if binding.ip else []) + ["0.0.0.0", "[::]"]:
        key = binding_key("ipport", f"{ip}:{binding.port}")
        if key in http:
            return key
    return None


def endpoints_of(
    sni: bool, binding: SslBinding, http: Mapping[tuple[str, str], HttpSslBinding]
) -> list[tuple[str, str]]:
    """Every HTTP.sys binding a site binding's clients can get their certificate from: the one
    :func:`served_by` names and, for IIS's ``*`` (all addresses) on ``IP:port``, both wildcards present —
    ``0.0.0.0:port`` for IPv4 clients and ``[::]:port`` for IPv6 clients (W-IIS7-HTTPSYS-DUALSTACK:
    real ``netsh http show sslcert`` lists them side by side, each with its own certificate and AppId)."""
    key = served_by(sni, binding, http)
    if key is None:
        return []
    keys = [key]
    if key[0] == "ipport" and not binding.ip:
        for wildcard in (f"0.0.0.0:{binding.port}", f"[::]:{binding.port}"):
            other = binding_key("ipport", wildcard)
            if other in http and other not in keys:
                keys.append(other)
    return keys


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
        if key in endpoints_of(sni, b, probe)
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
    """One ``netsh http VERB sslcert`` line (W-IIS7-NETSH); its ``key=value`` tokens travel bare, as
    Microsoft's examples write them (:class:`opslib.winrm.Bare`, W-NETSH-BARE-TOKENS)."""
    argv: list[str] = ["netsh", "http", verb, "sslcert", Bare(f"{kind}={endpoint}")]
    if verb != "delete":
        argv += [Bare(f"certhash={thumb}"), Bare(f"appid={IIS_APP_ID}"), Bare(f"certstorename={store}")]
    return cmdline(argv)


def verb_probe_line(verb: str) -> str:
    """``netsh http VERB sslcert /?``: read-only; exit 0 = netsh knows the verb (W-IIS7-NETSH-VERBS)."""
    return cmdline(["netsh", "http", verb, "sslcert", "/?"])


def set_lines(update: bool, kind: str, endpoint: str, thumb: str, store: str, *, exists: bool) -> str:
    """The line that makes ``kind=endpoint`` serve ``thumb``: add when absent; ``update`` where the
    pre-flight found that verb (W-IIS7-NETSH-VERBS), else ``delete && add`` (present on every release)."""
    if not exists:
        return netsh_line("add", kind, endpoint, thumb, store)
    if update:
        return netsh_line("update", kind, endpoint, thumb, store)
    return join_commands(
        [netsh_line("delete", kind, endpoint), netsh_line("add", kind, endpoint, thumb, store)]
    )


def restore_lines(kind: str, endpoint: str, thumb: str, store: str) -> str:
    """``delete & add OLD``: puts ``thumb`` back whatever state a failed change left — the binding still
    old (delete, add), gone (delete fails, add), new (delete, add) — because ``&`` runs the add whatever
    the delete returned (W-IIS7-SWAP-LINE)."""
    return join_commands(
        [netsh_line("delete", kind, endpoint), netsh_line("add", kind, endpoint, thumb, store)], op="&"
    )


def site_line(verb: str, name: str) -> str:
    """``appcmd start|stop site /site.name:NAME`` (W-IIS7-APPCMD-CTL); ``%windir%`` travels as Raw."""
    return cmdline([Raw(APPCMD), verb, "site", f"/site.name:{name}"])  # type: ignore[list-item]


def swap_line(
    update: bool, site: Site, currents: Sequence[HttpSslBinding], thumb: str, olds: Sequence[tuple[str, str]]
) -> str:
    """One cmd line: ``thumb`` (MY) on every endpoint of ``currents``, restart ``site``; on any failure
    every endpoint gets its old ``(thumbprint, store)`` of ``olds`` back and the site is started.

    ``SET1 && SET2 && [STOP &&] START || (RESTORE1 & RESTORE2 & START)`` (W-IIS7-SWAP-LINE, W-CMD-GROUP):
    cmd runs it server-side in one process, so a dropped WinRM connection cannot stop it halfway. A
    failure at any command of the ``&&`` chain runs the block; each RESTORE is ``delete & add OLD``,
    which ends with OLD bound whatever the chain left (:func:`restore_lines`). After a success the block
    does not run. The result is read back, never taken from the line's exit code; the caller checks
    the length (W-CMD-LINE-8191). Windows that remain: between a ``delete`` and its ``add`` the endpoint
    has no certificate for milliseconds (``update`` replaces in place where the server has it); between
    stop and start the site answers nothing.
    """
    steps = [set_lines(update, c.kind, c.endpoint, thumb, "MY", exists=True) for c in currents]
    if site.started:
        steps.append(site_line("stop", site.name))
    steps.append(site_line("start", site.name))
    restore = [
        restore_lines(c.kind, c.endpoint, old, store) for c, (old, store) in zip(currents, olds, strict=True)
    ]
    return (
        join_commands(steps)
        + " || ("
        + join_commands([*restore, site_line("start", site.name)], op="&")
        + ")"
    )


# --- which HTTP.sys bindings a swap changes (pure: the backend passes what it read) -----------------


def production_endpoints(
    sni: bool,
    raws: list[RawSite],
    http: Mapping[tuple[str, str], HttpSslBinding],
    production: Site,
    new: str,
    *,
    host: str,
) -> tuple[SslBinding, list[HttpSslBinding]]:
    """The production site's https binding to swap and every HTTP.sys binding serving it (IPv4, IPv6,
    SNI: :func:`endpoints_of`); :class:`PreconditionFailed` (nothing changed) for what the kit must not
    touch: no or several https bindings, an endpoint under another application's AppId, an endpoint
    other sites share, endpoints serving different old certificates."""
    raw = next(r for r in raws if r.id == production.id)
    https = raw.https
    if len(https) > 1:  # a second binding (the work binding on the production site): swap the other
        https = [
            b for b in https if (k := served_by(sni, b, http)) is None or http[k].thumbprint != new
        ] or https[:1]
    if len(https) != 1:
        listing = " ".join(b.text for b in raw.https) or "none"
        raise PreconditionFailed(
            host,
            f"{production.label} has {len(raw.https)} https bindings ({listing}); the kit swaps a site "
            "with exactly one (besides the work binding) — nothing was changed",
            hint="swap this site's certificate in IIS Manager (Bindings → https → SSL certificate)",
        )
    keys = endpoints_of(sni, https[0], http)
    if not keys:
        raise PreconditionFailed(
            host,
            f"{production.label}'s binding {https[0].text} has no HTTP.sys certificate — nothing was changed",
            hint="select its SSL certificate in IIS Manager (Bindings → https) first",
        )
    currents = [http[k] for k in keys]
    for current in currents:
        if not current.owned_by_iis:
            raise PreconditionFailed(
                host,
                f"{current.label} serves {production.label} but belongs to another application (AppId "
                f"{current.app_id or '?'}, not IIS's {IIS_APP_ID}) — nothing was changed",
                hint="change it with the tool of the application that owns it, or remove it "
                "(netsh http delete sslcert) if nothing uses it, then run again",
            )
    exact = {b.text.lower() for b in https}
    for key, current in zip(keys, currents, strict=True):
        others = [
            u
            for u in users_of(sni, raws, http, key, but=production.id)
            if u.rsplit("(", 1)[1][:-1].lower() not in exact
        ]
        if others:
            raise PreconditionFailed(
                host,
                f"{current.label} also serves {', '.join(others)}; swapping it would change their certificate "
                "too — nothing was changed",
                hint="give the production site an SNI binding of its own (IIS 8+) or renew these sites "
                "together by hand",
            )
    olds = {c.thumbprint for c in currents if c.thumbprint != new}
    if len(olds) > 1:
        raise PreconditionFailed(
            host,
            f"{production.label}'s endpoints serve different certificates ("
            + ", ".join(f"{c.label} {c.thumbprint}" for c in currents)
            + ") — nothing was changed",
            hint="bind the same certificate to every endpoint of the site first (netsh http show sslcert)",
        )
    return https[0], currents
