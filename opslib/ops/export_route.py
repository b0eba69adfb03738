"""Step 3's export route, proven before step 2 (claim only what was read back: the route is proven by use).

The pre-flight exports the certificate production serves now — a harmless object — through the route
step 3 will take (certutil ``-exportPFX``, else IIS.CertObj), under a one-time password, brings it
back, opens it, deletes it and reads the delete back. No route decision can then first fail after
the production swap (docs/windows-behaviour.md W-CERTUTIL-PROBE-EXPORTPFX).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import certs
from ..errors import CapabilityMissing, PreconditionFailed, RemoteCommandFailed, VerificationFailed
from ..iis import Site
from ..server.remote import delete_remote, download, remote_path
from ..winrm.transfer import leftover_advice
from .export import one_time_password
from .pfx_routes import (
    Route,
    certutil_candidate,
    left_on_server,
    require_export,
    run_export,
)

if TYPE_CHECKING:
    from ..server import Server

__all__ = ["RouteProof", "prove_export_route"]


@dataclass(frozen=True)
class RouteProof:
    """What :func:`prove_export_route` found: the route that exported the production certificate
    (the one step 3 will start with or fall back to), why, and what stayed on the server."""

    route: str
    reason: str
    remote_left: tuple[str, ...] = ()

    def row(self) -> dict[str, Any]:
        return {
            "export_route": self.route,
            "export_route_reason": self.reason,
            "remote_left": "; ".join(leftover_advice(p) for p in self.remote_left),
        }


def prove_export_route(server: Server, production: Site) -> RouteProof:
    """Pre-flight (before step 2): prove step 3's export route by use on a harmless object — the
    certificate production serves now, exported to the temp folder under a one-time password, brought
    back, opened, deleted and read back (nothing on the server changes). certutil first; an
    unknown-verb failure falls back to IIS.CertObj through the production site (as step 3 does).

    A key that refuses export (NTE_BAD_KEY_STATE) still proves the verb exists. Raises
    :class:`CapabilityMissing` when no route works, so the run stops before the swap.
    """
    caps, conn, host = server.capabilities, server.conn, server.host
    require_export(caps)
    thumb = re.sub(r"[^0-9A-Fa-f]", "", production.cert_thumbprint or "").upper()
    if not thumb or production.store_name.upper() not in ("MY", ""):
        first = Route() if certutil_candidate(caps) else Route(pending=production.path)
        return RouteProof(
            first.label,
            f"decided by the version facts (Windows {caps.windows_version or '?'}, IIS {caps.iis_major}): "
            f"{production.label} serves no certificate from MY to try the export on",
        )
    start = Route() if certutil_candidate(caps) else Route(site=production)
    one_time = one_time_password()
    remote = remote_path(conn, ".pfx")
    deleted = False
    try:
        try:
            route, reason = run_export(
                server, start, thumb, remote, one_time, chain=False, site=production.path
            )
        except PreconditionFailed as exc:
            if "non-exportable" not in exc.problem:
                raise _no_route(host, thumb, exc) from None
            return RouteProof(
                start.label,
                f"{start.label} ran on the production certificate {thumb}, whose key is not exportable "
                "(the verb exists; step 3 exports the new key)",
            )
        except (RemoteCommandFailed, VerificationFailed) as exc:
            raise _no_route(host, thumb, exc) from None
        # A transfer failure below is not a route's: it propagates as itself (run again).
        raw = download(conn, remote, what=f"bring the pre-flight PFX {remote} back")
        bundle = certs.load_pkcs12(raw, one_time, source=f"{host}:{remote}")
        if bundle.leaf is None or certs.thumbprint(bundle.leaf) != thumb:
            raise _no_route(host, thumb, f"{route.label} exported another certificate")
    finally:
        deleted = delete_remote(conn, remote, what=f"delete the pre-flight PFX {remote} and check it is gone")
    return RouteProof(
        route.label,
        f"pre-flight: {reason}; the production certificate {thumb} was exported, brought back and opened",
        tuple(left_on_server(conn, remote, deleted)),
    )


def _no_route(host: str, thumb: str, cause: object) -> CapabilityMissing:
    return CapabilityMissing(
        host,
        "a working PFX export route for step 3 (certutil -exportPFX, IIS.CertObj): the pre-flight export "
        f"of the production certificate {thumb} failed ({cause}) — nothing was changed",
        hint="step 3 could not back up the new key after the swap; find out why the export fails, or "
        "plan to export the new certificate by hand (Certificates MMC, with the chain) right after step 2",
    )
