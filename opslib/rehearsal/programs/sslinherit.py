"""``cscript //nologo //E:jscript sslinherit.js`` on the rehearsal host (the lab probe and the IIS 6 rollback).

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


def service_cert_hash(host: Host | None) -> str:
    """The service-level SSLCertHash (``/LM/W3SVC``, IIsWebService), "" when unset.

    SSLCertHash and SSLStoreName carry the INHERIT attribute (ms525719, ms525311): a site without its
    own value reads the service-level one through ADSI ``Get()``, and
    ``GetPropertyAttribObj("SSLCertHash").IsInherit`` is true for it (GetPropertyAttribObj ms525702, IISPropertyAttribute ms524823;
    docs/windows-behaviour.md W-IIS6-SSLCERTHASH-INHERIT). Scenario fact
    ``host.extra["w3svc_ssl_cert_hash"]``; the service-level SSLStoreName is ``MY`` [I]."""
    if host is None:
        return ""
    return str(host.extra.get("w3svc_ssl_cert_hash", "") or "").upper()


def effective_cert(site: Site, host: Host | None) -> tuple[str, str, bool]:
    """(SSLCertHash, SSLStoreName, inherited) as the site serves them."""
    if site.ssl_cert_hash:
        return site.ssl_cert_hash.upper(), site.ssl_store_name, False
    inherited = service_cert_hash(host)
    if inherited:
        return inherited, site.ssl_store_name or "MY", True
    return "", site.ssl_store_name, False


def sslinherit_bytes() -> bytes:
    """The packaged ``sslinherit.js``, exactly as the lab probe uploads it."""
    return (resources.files("opslib") / "scripts" / SCRIPT).read_bytes()


def _record(node_id: int, hash_hex: str, is_inherit: bool, own: bool) -> str:
    def b(flag: bool) -> str:
        return "true" if flag else "false"

    return (
        f'{{"id":{node_id},"value":{b(bool(hash_hex))},"hash":"{hash_hex}","is_inherit":{b(is_inherit)},'
        f'"own":{b(own)}}}'
    )


def _site(site: Site, host: Host) -> str:
    hash_hex, _store, inherited = effective_cert(site, host)
    return _record(site.id, hash_hex, inherited, bool(site.ssl_cert_hash))


def sslinherit(inv: Invocation, args: list[str]) -> int:
    """What ``sslinherit.js`` prints on this host (one line of JSON), exit 0."""
    host: Host = inv.host
    if args:
        return 1  # the script takes no arguments; it would ignore them, the lab never sends any
    service_hash = service_cert_hash(host)
    paths = (["IIS://localhost/W3SVC"] if service_hash else []) + [
        f"IIS://localhost/W3SVC/{sid}" for sid, s in sorted(host.sites.items()) if s.ssl_cert_hash
    ]
    sites = ",".join(_site(s, host) for _, s in sorted(host.sites.items()))
    quoted = ",".join(f'"{p}"' for p in paths)
    inv.write(
        f'{{"data_paths":"{"ok" if paths else "none"}","paths":[{quoted}],'
        f'"service":{_record(0, service_hash, False, bool(service_hash))},"sites":[{sites}]}}\r\n'
    )
    return 0
