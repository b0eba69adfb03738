"""The server's LocalMachine certificate stores, read as registry exports (never localized text).

One ``reg export`` per physical store, parsed by :mod:`opslib.server.regfile`; certificates parsed
through :mod:`opslib.certs`. Read-only: the changes are the steps' (:mod:`opslib.ops`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import certs
from ..errors import CertificateError, PreconditionFailed, VerificationFailed
from .regfile import ENHKEY_USAGE, KEY_PROV_INFO, der_oids, key_prov_info, parse_blob, parse_reg_export
from .remote import export_keys, host_of

if TYPE_CHECKING:
    from ..winrm import Connection

__all__ = [
    "CERTUTIL_STORE",
    "ROOT_STORES",
    "STORE_KEYS",
    "StoreEntry",
    "check_roots_disabled",
    "forbidden_entries",
    "match_pending_request",
    "pending_requests",
    "purposes_text",
    "read_entries",
    "read_entry",
    "read_store",
    "read_stores",
    "store_entries",
    "trusted_roots",
]

# --- registry layout (docs/windows-behaviour.md W-REG-STORE-LAYOUT) ---------------------------------------------------------

_SYSTEM_CERTS = r"HKLM\SOFTWARE\Microsoft\SystemCertificates"
# The physical stores of the LocalMachine Trusted Root store, with the registry key of each and the
# certutil arguments that open it. Membership [V]
# (https://learn.microsoft.com/en-us/windows/win32/seccrypto/system-store-locations); the Policies and
# EnterpriseCertificates paths are [I] (docs/windows-behaviour.md W-REG-STORE-LAYOUT).
ROOT_STORES: tuple[tuple[str, str], ...] = (
    ("ROOT", _SYSTEM_CERTS + r"\ROOT"),
    ("AuthRoot", _SYSTEM_CERTS + r"\AuthRoot"),
    ("GroupPolicy", r"HKLM\SOFTWARE\Policies\Microsoft\SystemCertificates\Root"),
    ("Enterprise", r"HKLM\SOFTWARE\Microsoft\EnterpriseCertificates\Root"),
)
STORE_KEYS: dict[str, str] = {
    "MY": _SYSTEM_CERTS + r"\MY",
    "CA": _SYSTEM_CERTS + r"\CA",
    "REQUEST": _SYSTEM_CERTS + r"\REQUEST",  # [I] path (docs/windows-behaviour.md W-REG-STORE-LAYOUT)
    **dict(ROOT_STORES),
}
# certutil options + store name that open one physical Root store (certutil reference: -enterprise
# "Use local machine Enterprise registry certificate store", -grouppolicy "Use Group Policy certificate
# store", https://learn.microsoft.com/en-us/windows-server/administration/windows-commands/certutil).
CERTUTIL_STORE: dict[str, tuple[list[str], str]] = {
    "ROOT": ([], "Root"),
    "AuthRoot": ([], "AuthRoot"),
    "GroupPolicy": (["-grouppolicy"], "Root"),
    "Enterprise": (["-enterprise"], "Root"),
    "MY": ([], "MY"),
    "CA": ([], "CA"),
    "REQUEST": ([], "REQUEST"),
}


@dataclass(frozen=True)
class StoreEntry:
    """One certificate of one physical store, as its registry ``Blob`` holds it."""

    store: str  # physical store: ROOT, AuthRoot, GroupPolicy, Enterprise, MY, CA, REQUEST
    registry_key: str  # HKLM\…\Certificates\<SHA1>
    thumbprint: str
    summary: certs.CertSummary
    enabled: bool  # no EKU property (all purposes), or an EKU property listing purposes
    blob: bytes = field(repr=False)
    purposes: tuple[str, ...] | None = None  # OIDs of the EKU property; None = property absent
    key_container: str = ""  # from property 2 (CRYPT_KEY_PROV_INFO); "" = no private key link
    key_provider: str = ""
    certificate: certs.Certificate | None = field(default=None, repr=False, compare=False)

    @property
    def has_key_link(self) -> bool:
        return bool(self.key_container)

    def row(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "thumbprint": self.thumbprint,
            "common_name": self.summary.common_name,
            "issuer": self.summary.row()["issuer"],
            "not_after_utc": self.summary.not_after_utc,
            "enabled": self.enabled,
            "purposes": "all" if self.purposes is None else (", ".join(self.purposes) or "none (disabled)"),
            "key_container": self.key_container,
            "known_as": self.summary.known_as,
            "registry_key": self.registry_key,
        }


def store_entries(store: str, registry_key: str, export: bytes | None) -> list[StoreEntry]:
    """The certificates of one physical store from its ``reg export`` (None = key absent = empty)."""
    if export is None:
        return []
    keys = parse_reg_export(export)
    prefix = registry_key.rstrip("\\").upper() + "\\CERTIFICATES\\"
    entries: list[StoreEntry] = []
    for key, values in keys.items():
        if not key.upper().startswith(prefix) or "\\" in key[len(prefix) :]:
            continue
        blob_value = values.get("Blob")
        if blob_value is None or blob_value[0] != "REG_BINARY":
            continue
        blob = blob_value[1]
        try:
            props, der = parse_blob(blob)
            cert = certs.load_certificates(der, source=key).certificates[0]
        except (ValueError, CertificateError, IndexError) as exc:
            raise VerificationFailed(
                "registry",
                f"{key}: the Blob value is not a certificate ({exc})",
                hint="inspect the key by hand",
            ) from None
        purposes: tuple[str, ...] | None = None
        if ENHKEY_USAGE in props:
            try:
                purposes = der_oids(props[ENHKEY_USAGE])
            except (ValueError, IndexError):
                purposes = ("(undecodable)",)
        container, provider = key_prov_info(props[KEY_PROV_INFO]) if KEY_PROV_INFO in props else ("", "")
        entries.append(
            StoreEntry(
                store=store,
                registry_key=key,
                thumbprint=key[len(prefix) :].upper(),
                summary=certs.summarize(cert),
                enabled=purposes is None or len(purposes) > 0,
                blob=blob,
                purposes=purposes,
                key_container=container,
                key_provider=provider,
                certificate=cert,
            )
        )
    return sorted(entries, key=lambda e: e.thumbprint)


# Stores read together (one command line, :func:`opslib.server.remote.export_keys`): the four physical
# Root stores, which every chain and root check needs at once, and the three stores a renewal writes.
# AuthRoot can be large on a real server, so it is not re-read with MY/CA/REQUEST after each change.
STORE_GROUPS: tuple[tuple[str, ...], ...] = (
    tuple(name for name, _key in ROOT_STORES),
    ("MY", "CA", "REQUEST"),
)


def read_stores(conn: Connection, stores: Sequence[str]) -> dict[str, list[StoreEntry]]:
    """The certificates of several physical stores (keys of :data:`STORE_KEYS`), read in one command
    line together with the rest of each one's :data:`STORE_GROUPS` group (kept until the next change)."""
    wanted = list(dict.fromkeys(stores))
    names = list(dict.fromkeys(n for s in wanted for g in STORE_GROUPS if s in g for n in g))
    names += [s for s in wanted if s not in names]
    exports = export_keys(
        conn, [STORE_KEYS[n] for n in names], what="read the certificate stores " + ", ".join(names)
    )
    return {s: store_entries(s, STORE_KEYS[s], exports[STORE_KEYS[s]]) for s in wanted}


def read_store(conn: Connection, store: str) -> list[StoreEntry]:
    """The certificates of one physical store (a key of :data:`STORE_KEYS`: MY, CA, REQUEST, ROOT,
    AuthRoot, GroupPolicy, Enterprise); an absent key is an empty store."""
    return read_stores(conn, [store])[store]


def read_entries(
    conn: Connection, wanted: Sequence[tuple[str, str]]
) -> list[tuple[StoreEntry | None, bytes | None]]:
    """Certificate keys of stores, (store, thumbprint) each, in one command line: for each, (entry,
    the raw .reg export of that one key — what a backup keeps)."""
    keys = [STORE_KEYS[store] + "\\Certificates\\" + thumb for store, thumb in wanted]
    exports = export_keys(conn, keys, what="read " + ", ".join(f"{s}\\{t}" for s, t in wanted))
    out: list[tuple[StoreEntry | None, bytes | None]] = []
    for (store, _thumb), key in zip(wanted, keys, strict=True):
        entries = store_entries(store, STORE_KEYS[store], exports[key])
        out.append(((entries[0] if entries else None), exports[key]))
    return out


def read_entry(conn: Connection, store: str, thumbprint: str) -> tuple[StoreEntry | None, bytes | None]:
    """One certificate key of a store: (entry, the raw .reg export of that key)."""
    return read_entries(conn, [(store, thumbprint)])[0]


def trusted_roots(conn: Connection) -> list[StoreEntry]:
    """Every certificate of every physical LocalMachine Trusted Root store (one command line for all)."""
    stores = read_stores(conn, [name for name, _key in ROOT_STORES])
    return [e for name, _key in ROOT_STORES for e in stores[name]]


def forbidden_entries(entries: Iterable[StoreEntry], forbidden: Iterable[str] = ()) -> list[StoreEntry]:
    """The entries that are the G5 root (catalogue) or one of the ``forbidden`` SHA-1 thumbprints."""
    extra = tuple(forbidden)
    return [
        e
        for e in entries
        if (e.certificate is not None and certs.is_forbidden_root(e.certificate, extra))
        or _thumb_in(e, extra)
    ]


def check_roots_disabled(
    entries: Iterable[StoreEntry], *, forbidden: Iterable[str] = (), host: str, dry_run: bool = False
) -> list[StoreEntry]:
    """Step 0's read-back: the forbidden entries of ``entries`` (for a table), none of them enabled.

    An enabled one raises :class:`VerificationFailed` naming its store and thumbprint — unless
    ``dry_run`` (nothing was disabled, so the entries are only reported).
    """
    found = forbidden_entries(entries, forbidden)
    left = [e for e in found if e.enabled]
    if left and not dry_run:
        raise VerificationFailed(
            host,
            "forbidden roots are still enabled: " + ", ".join(f"{e.store} {e.thumbprint}" for e in left),
            hint="disable them by hand (MMC certificates snap-in → Properties → Disable all purposes), then resume",
        )
    return found


def _thumb_in(entry: StoreEntry, thumbprints: Sequence[str]) -> bool:
    wanted = {re.sub(r"[^0-9A-Fa-f]", "", t).upper() for t in thumbprints}
    return entry.thumbprint in wanted


def purposes_text(entry: StoreEntry) -> str:
    if entry.purposes is None:
        return "all purposes"
    return ", ".join(entry.purposes) if entry.purposes else "disabled (no purposes)"


def pending_requests(conn: Connection) -> list[StoreEntry]:
    """The placeholders of pending requests (LocalMachine REQUEST store; docs/windows-behaviour.md W-CERTREQ-ACCEPT)."""
    return read_store(conn, "REQUEST")


def match_request(host: str, requests: Sequence[StoreEntry], leaf: certs.Certificate) -> StoreEntry:
    found = [r for r in requests if r.certificate is not None and certs.key_matches(r.certificate, leaf)]
    if not found:
        summary = certs.summarize(leaf)
        raise PreconditionFailed(
            host,
            f"this server holds no pending request for the key of {summary.thumbprint} "
            f"(subject {summary.subject}); the certificate was requested on another server or the "
            "request was deleted — nothing was changed",
            hint="install it on the server that made the request, or make a new request here and have it re-issued",
        )
    return found[0]


def match_pending_request(
    conn: Connection, leaf: certs.Certificate, *, installed_ok: bool = False
) -> StoreEntry:
    """The REQUEST-store placeholder whose public key is the key of ``leaf``.

    ``installed_ok`` (step 1): when an earlier attempt already completed the request (``certreq
    -accept`` ran, its reply was lost), the placeholder is gone and MY holds ``leaf`` with its key
    link: that MY entry is returned, so that a resumed step recognises its own work instead of failing.
    """
    requests = pending_requests(conn)
    if not installed_ok or any(
        r.certificate is not None and certs.key_matches(r.certificate, leaf) for r in requests
    ):
        return match_request(host_of(conn), requests, leaf)
    thumb = certs.thumbprint(leaf)
    done, _ = read_entry(conn, "MY", thumb)
    if done is not None and done.has_key_link:
        return done
    return match_request(host_of(conn), requests, leaf)
