"""``opslib inspect``: certificates from files, mails, PFX, CSR or host:port, as text or JSON."""

from __future__ import annotations

import argparse

from .. import inspection
from .text import escaped_errors


def command(a: argparse.Namespace) -> int:
    """Text and JSON are escaped by :mod:`opslib.inspection`; error lines by :func:`escaped_errors`."""
    with escaped_errors():
        report = inspection.inspect_sources(
            a.sources,
            password_env=a.password_env,
            servername=a.servername,
            hostnames=a.hostname or [],
            warn_days=a.warn_days,
            forbidden_roots=a.forbidden_root or [],
        )
    print(inspection.render_json(report) if a.json else inspection.render_text(report))
    return 0
