"""TEMPORARY shim: the old ``opslib.windows`` names, now in :mod:`opslib.server` and :mod:`opslib.ops`.

Kept for files outside the server/IIS/ops split that still import it (tests/test_notebooks.py,
tests/test_faults.py, runbook's kernel preload); remove once they import :mod:`opslib.server`.
"""

from __future__ import annotations

from .server.regfile import (
    EMPTY_EKU,
    ENHKEY_USAGE,
    KEY_PROV_INFO,
    SHA1_HASH,
    parse_blob,
    parse_reg_export,
)
from .server.regfile import key_prov_info as _key_prov_info
from .server.stores import ROOT_STORES, STORE_KEYS

__all__ = [
    "EMPTY_EKU",
    "ENHKEY_USAGE",
    "KEY_PROV_INFO",
    "ROOT_STORES",
    "SHA1_HASH",
    "STORE_KEYS",
    "_key_prov_info",
    "parse_blob",
    "parse_reg_export",
]
