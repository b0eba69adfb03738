"""opslib: renew SSL server certificates on Microsoft IIS over WinRM, leaving evidence.

The notebooks call this library; see README.md. ``opslib.connect(winrm, host=, run_dir=)`` opens a
connection and ``opslib.open_server(...)`` a :class:`~opslib.server.Server`; the other subpackages
(``opslib.ops``, ``opslib.evidence``, …) are imported on first attribute access (PEP 562), so that
``import opslib`` — and every ``opslib.x`` import, the command line's parser included — stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from .version import __version__

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
# The facade's verbs: name → (subpackage, attribute), imported on first use like the subpackages.
_VERBS = {"connect": ("winrm", "connect_params"), "open_server": ("server", "open_server")}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _VERBS:
        package, attribute = _VERBS[name]
        return getattr(importlib.import_module(f".{package}", __name__), attribute)
    raise AttributeError(f"module 'opslib' has no attribute {name!r}")
