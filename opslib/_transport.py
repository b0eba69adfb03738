"""TEMPORARY shim: the transport moved to :mod:`opslib.winrm`. Import from there.

Re-exports every name other files use from ``opslib._transport``; the lead deletes this module
once every caller imports :mod:`opslib.winrm`.
"""

from __future__ import annotations

from .winrm import *  # noqa: F403
from .winrm import __all__ as __all__
