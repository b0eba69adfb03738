"""The server: one connection (:class:`Server`), what it offers (:mod:`.probe`), its certificate
stores (:mod:`.stores`) read through registry exports (:mod:`.regfile`)."""

from __future__ import annotations

from .probe import Capabilities, probe, require_admin
from .regfile import parse_blob, parse_reg_export
from .session import Server, open_server
from .stores import (
    ROOT_STORES,
    STORE_KEYS,
    StoreEntry,
    check_roots_disabled,
    forbidden_entries,
    match_pending_request,
    pending_requests,
    read_store,
    trusted_roots,
)

__all__ = [
    "ROOT_STORES",
    "STORE_KEYS",
    "Capabilities",
    "Server",
    "StoreEntry",
    "check_roots_disabled",
    "forbidden_entries",
    "match_pending_request",
    "open_server",
    "parse_blob",
    "parse_reg_export",
    "pending_requests",
    "probe",
    "read_store",
    "require_admin",
    "trusted_roots",
]
