"""opslib: renew SSL server certificates on Microsoft IIS over WinRM, leaving evidence.

The notebooks call this library; see README.md. Submodules are imported on first use so that
``import opslib`` stays cheap in every kernel.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

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
    if name == "connect":
        from .winrm import connect_params

        return connect_params
    if name == "open_server":
        from .server import open_server

        return open_server
    raise AttributeError(f"module 'opslib' has no attribute {name!r}")
