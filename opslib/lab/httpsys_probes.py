"""Lab probes for HTTP.sys on IIS 7–10 (issue 23), registered in :data:`opslib.lab.probes.READ_ONLY`: which
``netsh http`` verbs the server has, its HTTP.sys bindings (IPv6 wildcards, AppIds) and whether netsh takes
bare and quoted ``key=value`` tokens alike. All read-only; on IIS 6 each answers ``{"backend": "none"}``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ..iis.httpsys import parse_http_bindings
from ..server import regfile
from ..winrm import Bare, CommandResult, Connection


class _Rec(Protocol):
    """What a probe needs of :class:`opslib.lab.probes.Recorder`."""

    conn: Connection
    scratch: dict[str, Any]

    def run(self, label: str, argv: Sequence[str]) -> CommandResult: ...

    def attach(self, name: str, data: bytes) -> dict[str, Any]: ...

    def temp(self, suffix: str) -> str: ...


def _exported(rec: _Rec, label: str, key: str) -> tuple[int, bytes | None]:
    """``reg export KEY FILE`` (W-REG-EXPORT) into the temp folder, brought back and deleted."""
    path = rec.temp(".reg")
    result = rec.run(label, ["reg", "export", key, path])
    if result.exit_code != 0:
        return result.exit_code, None
    try:
        data = rec.conn.download(path, what=f"lab probe: bring the export of {key} back")
    finally:
        rec.run(f"{label}-del", ["del", "/f", "/q", path])
    rec.attach(f"{label}.reg", data)
    return 0, data


HTTP_PARAMETERS_KEY = r"HKLM\SYSTEM\CurrentControlSet\Services\HTTP\Parameters"


def _iis7(rec: _Rec) -> bool:
    return int(rec.scratch.get("iis_major") or 0) >= 7


def netsh_verbs(rec: _Rec) -> dict[str, Any]:
    """``netsh http VERB sslcert /?`` for update, delete, add: the exit code says whether netsh knows the
    verb (W-IIS7-NETSH-VERBS); Server 2012 R2 is reported without ``update`` (W-IIS7-NETSH-UPDATE)."""
    if not _iis7(rec):
        return {"backend": "none"}
    return {
        verb: rec.run(f"netsh-{verb}-help", ["netsh", "http", verb, "sslcert", "/?"]).exit_code
        for verb in ("update", "delete", "add")
    }


def http_bindings(rec: _Rec) -> dict[str, Any]:
    """The HTTP.sys SSL bindings as the registry holds them (W-IIS7-REG): which endpoints exist beside
    ``0.0.0.0:port`` — ``[::]:port`` for IPv6 clients — and whether each carries IIS's AppId
    (W-IIS7-HTTPSYS-DUALSTACK, W-IIS7-REG-APPID)."""
    if not _iis7(rec):
        return {"backend": "none"}
    exit_code, data = _exported(rec, "http-parameters", HTTP_PARAMETERS_KEY)
    if data is None:
        return {"exit_code": exit_code, "read": False}
    found = parse_http_bindings(regfile.parse_reg_export(data))
    return {
        "exit_code": exit_code,
        "read": True,
        "endpoints": sorted(
            f"{k}={e}" + (" iis" if b.owned_by_iis else " other") for (k, e), b in found.items()
        ),
        "ipv6_wildcards": sorted(e for (k, e) in found if k == "ipport" and e.startswith("[::]:")),
    }


def bare_tokens(rec: _Rec) -> dict[str, Any]:
    """``netsh http show sslcert ipport=IP:PORT`` bare and with the token in double quotes, from cmd: the
    same exit code means netsh takes both (W-NETSH-BARE-TOKENS; the kit sends the bare form)."""
    if not _iis7(rec):
        return {"backend": "none"}
    token = "ipport=0.0.0.0:443"
    bare = rec.run("show-bare", ["netsh", "http", "show", "sslcert", Bare(token)]).exit_code
    quoted = rec.run("show-quoted", ["netsh", "http", "show", "sslcert", token]).exit_code
    return {"bare": bare, "quoted": quoted, "same": bare == quoted}


# (id, rows, what it sends, function): registered read-only in opslib.lab.probes.READ_ONLY.
HTTPSYS_PROBES: tuple[tuple[str, tuple[str, ...], str, Callable[[Any], dict[str, Any]]], ...] = (
    (
        "httpsys.netsh-verbs",
        ("W-IIS7-NETSH-VERBS", "W-IIS7-NETSH-UPDATE"),
        "netsh http update|delete|add sslcert /?",
        netsh_verbs,
    ),
    (
        "httpsys.bindings",
        ("W-IIS7-REG", "W-IIS7-HTTPSYS-DUALSTACK", "W-IIS7-REG-APPID"),
        r"reg export HKLM\SYSTEM\CurrentControlSet\Services\HTTP\Parameters F.reg; download; del",
        http_bindings,
    ),
    (
        "httpsys.bare-tokens",
        ("W-NETSH-BARE-TOKENS",),
        'netsh http show sslcert ipport=0.0.0.0:443; the same with "ipport=0.0.0.0:443"',
        bare_tokens,
    ),
)
HTTPSYS_IF_DIFFERENT = {
    "httpsys.netsh-verbs": "netsh knows other verbs than the kit found: the swap may use delete+add where update "
    "exists (harmless), or try update where it is missing (the line puts the old certificate back) — report it",
    "httpsys.bindings": "the HTTP.sys bindings read differently (IPv6 endpoints, AppIds): the swap may miss or refuse "
    "an endpoint — check `netsh http show sslcert`",
    "httpsys.bare-tokens": "netsh takes bare and quoted key=value tokens differently: report it before a renewal",
}
