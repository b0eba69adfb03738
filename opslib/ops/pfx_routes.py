"""The two ways step 3 exports a PFX on the server, shared by step 3 (:mod:`opslib.ops.export`) and the
pre-flight's proof of the route (:mod:`opslib.ops.export_route`): ``certutil -exportPFX``, else
``IIS.CertObj`` through the site the certificate is bound to — which one to try first, the fallback
when certutil does not know the verb, and what stayed on the server afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import winerror
from ..errors import CapabilityMissing, PreconditionFailed, VerificationFailed
from ..iis import Site, find_site
from ..server.probe import Capabilities, require_admin
from ..server.remote import failed

if TYPE_CHECKING:
    from ..server import Server
    from ..winrm import Connection

__all__ = [
    "CERTUTIL_ROUTE",
    "E_INVALIDARG",
    "ONE_TIME_PASSWORD",
    "Route",
    "certobj_candidate",
    "certobj_route",
    "certutil_candidate",
    "first_route",
    "key_not_exportable",
    "left_on_server",
    "require_export",
    "run_export",
]

# E_INVALIDARG: what certutil exits with for a verb its build does not know ("Unknown arg",
# docs/windows-behaviour.md W-CERTUTIL-UNKNOWN-VERB). The one failure class that sends step 3 to the
# next route (IIS.CertObj) instead of stopping.
E_INVALIDARG = 0x80070057
ONE_TIME_PASSWORD = "one-time PFX password"


CERTUTIL_ROUTE = "certutil -exportPFX"


@dataclass(frozen=True)
class Route:
    """How :func:`export_pfx` exports: ``certutil -exportPFX``, or ``IIS.CertObj`` through ``site``."""

    site: Site | None = None  # the site IIS.CertObj exports through; None for certutil
    pending: str = ""  # a dry run's IIS.CertObj route: the certificate is not bound to a site yet

    @property
    def certutil(self) -> bool:
        return self.site is None and not self.pending

    @property
    def label(self) -> str:
        if self.site is not None:
            return f"IIS.CertObj via {self.site.path}"
        return f"IIS.CertObj via {self.pending}" if self.pending else CERTUTIL_ROUTE


def certutil_candidate(caps: Capabilities) -> bool:
    """certutil -exportPFX is the first route when its ``-?`` probe says the verb exists. That exit code
    is not trusted alone (W-CERTUTIL-PROBE-EXPORTPFX): the route is proven by use — in the pre-flight
    (:func:`opslib.ops.export_route.prove_export_route`) and again in step 3, which falls back to IIS.CertObj when certutil
    fails as an unknown verb. No Microsoft page dates the verb's arrival, so the Windows version alone
    does not decide it (W-CERTUTIL-EXPORTPFX)."""
    return caps.has_certutil("exportPFX")


def certobj_candidate(caps: Capabilities) -> bool:
    return caps.iis_major == 6 and caps.cscript


def require_export(caps: Capabilities) -> None:
    """Refuse unless one export route can exist: certutil -exportPFX, or IIS 6 with cscript."""
    require_admin(caps, "exporting a private key")
    if certutil_candidate(caps) or certobj_candidate(caps):
        return
    if caps.iis_major == 6:
        lacking = "cscript.exe (Windows Script Host), which the IIS.CertObj export fallback needs"
    else:
        iis = f"IIS {caps.iis_major}.{caps.iis_minor}" if caps.iis_major else "no IIS"
        lacking = f"an IIS 6 for the IIS.CertObj export fallback (it has {iis})"
    raise CapabilityMissing(
        caps.host,
        f"certutil -exportPFX, and {lacking}",
        hint="export the certificate with its private key by hand (IIS Manager → Directory Security → "
        "Server Certificate → Export to a .pfx file, or the Certificates MMC), include the chain, and keep "
        "the file safe",
    )


def first_route(server: Server, thumbprint: str, *, site: str | None, installed: bool = True) -> Route:
    """The first route to try: certutil (:func:`certutil_candidate`), otherwise IIS.CertObj."""
    caps = server.capabilities
    require_export(caps)
    if certutil_candidate(caps):
        return Route()
    return certobj_route(server, thumbprint, site=site, installed=installed)


def certobj_route(server: Server, thumbprint: str, *, site: str | None, installed: bool = True) -> Route:
    """IIS.CertObj through a site that has ``thumbprint`` bound (``site`` names one: ServerComment or
    W3SVC/n). IIS.CertObj exports only a site's certificate (MS-IMSA ExportToBlob takes an
    InstanceName, W-IIS6-CERTOBJ-EXPORT)."""
    caps = server.capabilities
    found = server.iis.sites()
    if site:
        chosen = find_site(found, site, host=caps.host)
        if not installed:
            return Route(pending=f"{chosen.path} (once it has {thumbprint} bound)")
        if chosen.cert_thumbprint != thumbprint or chosen.store_name.upper() != "MY":
            bound_to = (
                f"{chosen.store_name or '?'}\\{chosen.cert_thumbprint}"
                if chosen.cert_thumbprint
                else "no certificate"
            )
            raise PreconditionFailed(
                caps.host,
                f"{chosen.label} is bound to {bound_to}, not MY\\{thumbprint}; without "
                "certutil -exportPFX the key can only be exported through the site it is bound to "
                "(IIS.CertObj) — nothing was changed",
                hint=f"bind {thumbprint} to {chosen.label} first, or name the site that has it bound",
            )
        return Route(site=chosen)
    bound = [s for s in found if s.cert_thumbprint == thumbprint and s.store_name.upper() == "MY"]
    if not bound:
        if not installed:
            return Route(pending="the site it is bound to (steps 1–2 bind it; not in a dry run)")
        listing = "; ".join(f"{s.label}: {s.cert_thumbprint or 'none'}" for s in found) or "no sites"
        raise PreconditionFailed(
            caps.host,
            f"this server's certutil has no -exportPFX and no IIS site has MY\\{thumbprint} bound, so "
            f"IIS.CertObj cannot export it (sites: {listing}) — nothing was changed",
            hint=f"bind {thumbprint} to a site first (step 1 binds it to the work site: "
            "the IIS backend's bind), then export again; or export it by hand in the Certificates MMC",
        )
    # A started site first (the production site after step 2), then the lowest id: any bound site
    # exports the same certificate and key.
    return Route(site=min(bound, key=lambda s: (not s.started, s.id)))


def key_not_exportable(host: str, thumbprint: str) -> PreconditionFailed:
    return PreconditionFailed(
        host,
        f"the private key of {thumbprint} was created non-exportable, so Windows refuses to "
        f"export it ({winerror.name(winerror.NTE_BAD_KEY_STATE)} 0x{winerror.NTE_BAD_KEY_STATE:08X}) — nothing was changed",
        hint="keep the server itself as the key's only copy, or make a new request with an "
        "exportable key (IIS wizard: 'Mark the key as exportable') and have the certificate re-issued",
    )


def _probe_said(caps: Capabilities) -> str:
    return "said present" if caps.has_certutil("exportPFX") else "said absent"


def run_export(
    server: Server,
    route: Route,
    thumbprint: str,
    remote: str,
    one_time: str,
    *,
    chain: bool,
    site: str | None,
) -> tuple[Route, str]:
    """Export MY\\<thumbprint> to ``remote`` protected by ``one_time`` by ``route``; when certutil fails
    as an unknown verb (E_INVALIDARG, W-CERTUTIL-UNKNOWN-VERB) and IIS.CertObj can exist, export by
    IIS.CertObj instead — nothing else has changed at that point. Returns the route that ran and why."""
    caps, conn, host = server.capabilities, server.conn, server.host
    if route.certutil:
        argv = ["certutil", "-p", one_time, "-exportPFX", "MY", thumbprint, remote]
        if not chain:
            argv.append("NoChain")
        what = f"export MY\\{thumbprint} to {remote} (certutil -exportPFX, one-time password)"
        result = conn.run(
            argv,
            check=False,
            what=what,
            timeout_s=120,
            secrets=[one_time],
            names=["certutil", "", ONE_TIME_PASSWORD],
        )
        if result.exit_code == 0:
            return route, (
                f"certutil -exportPFX ran on Windows {caps.windows_version or '?'} (its -? probe "
                f"{_probe_said(caps)}; the route is decided by use, and the PFX is proven here)"
            )
        code = winerror.hresult(result.exit_code)
        if code == winerror.NTE_BAD_KEY_STATE:
            raise key_not_exportable(host, thumbprint)
        if code != E_INVALIDARG or not certobj_candidate(caps):
            raise failed(conn, result, what)
        fallback = certobj_route(server, thumbprint, site=site)
        reason = (
            f"certutil -exportPFX failed as an unknown verb (exit 0x{E_INVALIDARG:08X}; its -? probe "
            f"{_probe_said(caps)}), so {fallback.label} exported it; nothing else had changed"
        )
        route = fallback
    else:
        reason = f"certutil -exportPFX is not available (its -? probe {_probe_said(caps)}, Windows {caps.windows_version or '?'})"
    assert route.site is not None
    exported = server.iis.export_certificate(route.site, remote, password=one_time)
    if exported != thumbprint:
        raise VerificationFailed(
            host,
            f"{route.site.label} exported {exported or 'no certificate'}, not {thumbprint} "
            "(its binding changed meanwhile?)",
            hint="list the sites (server.iis.sites()) and export again",
        )
    return route, reason


def left_on_server(conn: Connection, remote: str, deleted: bool) -> list[str]:
    left = list(getattr(conn, "remote_left", None) or ([] if deleted else [remote]))
    return left
