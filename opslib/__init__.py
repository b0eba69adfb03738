"""opslib: renew SSL server certificates on Microsoft IIS over WinRM, leaving evidence.

The notebooks call this library; see README.md. ``opslib.connect(winrm, host=, run_dir=)`` opens a
connection and ``opslib.open_server(...)`` a :class:`~opslib.server.Server`; the other subpackages
(``opslib.ops``, ``opslib.evidence``, …) are imported on first attribute access.
"""

from __future__ import annotations

import importlib
from typing import Any

from .server import open_server
from .version import __version__
from .winrm import connect_params as connect

__all__ = ["__version__", "connect", "open_server"]

_SUBMODULES = {
    "backup",
    "certs",
    "tls",
    "iis",
    "ops",
    "server",
    "winerror",
    "evidence",
    "runbook",
    "credentials",
    "errors",
    "inspection",
    "winrm",
    "params",
    "preflight",
}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'opslib' has no attribute {name!r}")
