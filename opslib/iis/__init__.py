"""IIS backends, one per IIS generation, behind one interface (:class:`IISBackend`).

:func:`backend_for` picks the backend for the probed ``HKLM\\SOFTWARE\\Microsoft\\InetStp``
MajorVersion from :data:`BACKENDS`; :class:`opslib.server.Server` holds the one it built as
``server.iis``. IIS 6 is :mod:`opslib.iis.iis6`; IIS 7.0–10 (7.x, 8.x, 10) is :mod:`opslib.iis.iis7`;
any other version is refused before anything changes.
"""

from __future__ import annotations

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
    BackendFactory,
    Change,
    IISBackend,
    Installed,
    RegistryReader,
    Site,
    SslBinding,
    SwapResult,
    canonical_thumbprint,
    check_bound,
    check_swap,
    find_site,
    secure_binding,
    with_expiry,
)
from .iis6 import IIS6Backend
from .iis6_helper import HELPER, IIS6Helper, helper_script
from .iis7 import IIS7Backend

if TYPE_CHECKING:
    from ..winrm import Connection

__all__ = [
    "BACKENDS",
    "BackendFactory",
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
    "IIS6Helper",
    "IIS7Backend",
    "IISBackend",
    "Installed",
    "RegistryReader",
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
    "canonical_thumbprint",
    "with_expiry",
]

# IIS major version → the backend class for it (IIS 7–10 share one model: HTTP.sys bindings, appcmd);
# the only way to a backend (:func:`backend_for`), each built with the one signature of :class:`BackendFactory`.
BACKENDS: dict[int, BackendFactory] = {
    6: IIS6Backend,
    7: IIS7Backend,
    8: IIS7Backend,
    10: IIS7Backend,
}


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

    IIS 6 and IIS 7.0–10 have backends; on IIS 7+ the certificate lives in the HTTP.sys binding, not
    in the site (https://learn.microsoft.com/en-us/iis/manage/configuring-security/how-to-set-up-ssl-on-iis),
    so a version the kit does not know (a future IIS) is refused rather than driven by a guess.
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
    raise CapabilityMissing(
        capabilities.host,
        f"IIS 6 or 7–10 (it runs IIS {major}.{minor}, which this kit does not support)",
        hint="renew this server's certificate by hand in IIS Manager",
    )


def backend_for(
    capabilities: _Versioned, conn: Connection, *, read_registry: RegistryReader | None = None
) -> IISBackend:
    """The backend for the probed IIS version on ``conn``; :class:`CapabilityMissing` when none is.

    ``read_registry`` (``reg export`` of a key, parsed) is what the IIS 7–10 backend reads HTTP.sys
    bindings with; :class:`opslib.server.Server` supplies it."""
    require_backend(capabilities)
    return BACKENDS[capabilities.iis_major](
        conn, host=capabilities.host, iis_major=capabilities.iis_major, read_registry=read_registry
    )
