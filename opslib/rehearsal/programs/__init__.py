"""Programs the rehearsal host's interpreter can start (certutil, certreq, reg, cscript, …).

Each module exposes ``register(host)``, which adds its programs to ``host.programs``.
``register_all`` installs every program the host's Windows / IIS version has for the kit
(``appcmd`` only on IIS 7+; ``netsh http`` answers as on the host's Windows version).
"""

from __future__ import annotations

import importlib

from ..host import Host

# Order matters: certutil (full) wraps filecodec's -encode/-decode.
_MODULES = ("filecodec", "certutil", "certreq", "reg", "cscript", "netsh", "appcmd")


def register_all(host: Host) -> None:
    for name in _MODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        module.register(host)
