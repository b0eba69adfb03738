"""IIS backends, one per IIS generation, behind one interface (:class:`IISBackend`).

:func:`backend_for` picks the backend for the probed ``HKLM\\SOFTWARE\\Microsoft\\InetStp``
MajorVersion from :data:`BACKENDS`; :class:`opslib.server.Server` holds the one it built as
``server.iis``. IIS 6 is :mod:`opslib.iis.iis6`; IIS 7+ is refused (with what to do by hand) until an
``iis7`` backend registers itself here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from ..errors import CapabilityMissing
from .base import (
    CONTINUING,
    PAUSED,
    PAUSING,
    STARTED,
    STARTING,
    STATE_NAMES,
    STOPPED,
    STOPPING,
    Change,
    IISBackend,
    Installed,
    Site,
    SslBinding,
    SwapResult,
    check_bound,
    check_swap,
    find_site,
    secure_binding,
    thumbprint_of,
    with_expiry,
)
from .iis6 import HELPER, IIS6Backend, helper_script

if TYPE_CHECKING:
    from ..winrm import Connection

__all__ = [
    "BACKENDS",
    "CONTINUING",
    "HELPER",
    "PAUSED",
    "PAUSING",
    "STARTED",
    "STARTING",
    "STATE_NAMES",
    "STOPPED",
    "STOPPING",
    "Change",
    "IIS6Backend",
    "IISBackend",
    "Installed",
    "Site",
    "SslBinding",
    "SwapResult",
    "backend_for",
    "check_bound",
    "check_swap",
    "find_site",
    "helper_script",
    "require_backend",
    "secure_binding",
    "thumbprint_of",
    "with_expiry",
]

# IIS major version → the backend class for it (IIS 7–10 share one model: HTTP.sys bindings, appcmd).
BACKENDS: dict[int, Callable[..., IISBackend]] = {6: IIS6Backend}


class _Versioned(Protocol):
    """What :func:`require_backend` reads of :class:`opslib.server.Capabilities`."""

    @property
    def host(self) -> str: ...

    @property
    def iis_major(self) -> int: ...

    @property
    def iis_minor(self) -> int: ...


def require_backend(capabilities: _Versioned) -> None:
    """Refuse a server no backend is registered for, before anything changes.

    On IIS 7+ the certificate lives in the HTTP.sys binding, not in the site
    (https://learn.microsoft.com/en-us/iis/manage/configuring-security/how-to-set-up-ssl-on-iis);
    the IIS 6 helper might still reach such a server through the IIS 6 Metabase Compatibility
    feature [U] and "succeed" without changing what is served, so the kit stops instead.
    """
    major, minor = capabilities.iis_major, capabilities.iis_minor
    if major in BACKENDS:
        return
    if major <= 0:
        raise CapabilityMissing(
            capabilities.host,
            "IIS (HKLM\\SOFTWARE\\Microsoft\\InetStp MajorVersion not found)",
            hint="check that IIS is installed on this server",
        )
    if major >= 7:
        raise CapabilityMissing(
            capabilities.host,
            f"IIS 6 (it runs IIS {major}.{minor}; IIS 7+ backend not implemented yet)",
            hint="renew this server's certificate by hand (IIS Manager → Server Certificates → Complete "
            "Certificate Request, then the site's https binding); the kit drives IIS 6 only",
        )
    raise CapabilityMissing(
        capabilities.host,
        f"IIS 6 (it runs IIS {major}.{minor}, which this kit does not support)",
        hint="renew this server's certificate by hand in IIS Manager",
    )


def backend_for(capabilities: _Versioned, conn: Connection) -> IISBackend:
    """The backend for the probed IIS version on ``conn``; :class:`CapabilityMissing` when none is."""
    require_backend(capabilities)
    return BACKENDS[capabilities.iis_major](conn, host=capabilities.host)
