"""The lab check's own IIS 6 script on the rehearsal host: ``cscript //nologo //E:jscript sslinherit.js``.

``opslib/scripts/sslinherit.js`` (read-only) reports, for ``/LM/W3SVC`` and each site, whether SSLCertHash
reads a value (ADSI ``Get``), ``GetPropertyAttribObj("SSLCertHash").IsInherit`` and whether the node holds
its own value (``W3SVC.GetDataPaths("SSLCertHash", 0)``: the nodes where the property is set, never those
that only inherit it — IMSAdminBase::GetDataPaths,
https://learn.microsoft.com/en-us/previous-versions/iis/6.0-sdk/ms525329(v=vs.90)). The emulation answers as
the kit believes IIS 6 does (docs/windows-behaviour.md W-IIS6-SSLCERTHASH-INHERIT): a site without its own
value inherits the service-level one (``host.extra["w3svc_ssl_cert_hash"]``) and reads ``IsInherit`` true;
a value of its own, or no value anywhere, reads false. [I] the ADsPath form GetDataPaths returns
(``IIS://localhost/W3SVC/n``); the script accepts any path that ends with ``/W3SVC`` or ``/W3SVC/n``.
"""

from __future__ import annotations

from importlib import resources

from ..host import Host, Invocation, Site

SCRIPT = "sslinherit.js"


def sslinherit_bytes() -> bytes:
    """The packaged ``sslinherit.js``, exactly as the lab probe uploads it."""
    return (resources.files("opslib") / "scripts" / SCRIPT).read_bytes()


def _record(node_id: int, value: bool, is_inherit: bool, own: bool) -> str:
    def b(flag: bool) -> str:
        return "true" if flag else "false"

    return f'{{"id":{node_id},"value":{b(value)},"is_inherit":{b(is_inherit)},"own":{b(own)}}}'


def _site(site: Site, service_hash: str) -> str:
    own = bool(site.ssl_cert_hash)
    inherited = not own and bool(service_hash)
    return _record(site.id, own or inherited, inherited, own)


def sslinherit(inv: Invocation, args: list[str]) -> int:
    """What ``sslinherit.js`` prints on this host (one line of JSON), exit 0."""
    host: Host = inv.host
    if args:
        return 1  # the script takes no arguments; it would ignore them, the lab never sends any
    service_hash = str(host.extra.get("w3svc_ssl_cert_hash", "") or "")
    paths = (["IIS://localhost/W3SVC"] if service_hash else []) + [
        f"IIS://localhost/W3SVC/{sid}" for sid, s in sorted(host.sites.items()) if s.ssl_cert_hash
    ]
    sites = ",".join(_site(s, service_hash) for _, s in sorted(host.sites.items()))
    quoted = ",".join(f'"{p}"' for p in paths)
    inv.write(
        f'{{"data_paths":"{"ok" if paths else "none"}","paths":[{quoted}],'
        f'"service":{_record(0, bool(service_hash), False, bool(service_hash))},"sites":[{sites}]}}\r\n'
    )
    return 0
