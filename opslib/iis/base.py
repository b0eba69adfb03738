"""What every IIS backend offers (:class:`IISBackend`), the facts it returns, and the checks they share.

A backend drives one IIS generation: IIS 6 through the metabase (:mod:`opslib.iis.iis6`); IIS 7–10
through HTTP.sys SSL bindings and ``appcmd`` (:mod:`opslib.iis.iis7`). Callers (:mod:`opslib.ops`) use only
this Protocol, so a new backend changes no caller. Bindings are data (:class:`SslBinding`: IP, port,
host header / SNI name), rendered as IIS's own ``IP:port:host`` text, which is both the IIS 6
SecureBindings form and the IIS 7+ ``bindingInformation`` form
(https://learn.microsoft.com/en-us/iis/configuration/system.applicationhost/sites/site/bindings/binding).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import OpsError, ParameterError, SiteNotFound, VerificationFailed

if TYPE_CHECKING:
    from ..winrm import Connection

# ServerState (IIS 6.0 SDK, https://learn.microsoft.com/en-us/previous-versions/iis/6.0-sdk/ms524905(v=vs.90)).
STARTING, STARTED, STOPPING, STOPPED, PAUSING, PAUSED, CONTINUING = 1, 2, 3, 4, 5, 6, 7
STATE_NAMES = {
    STARTING: "starting",
    STARTED: "started",
    STOPPING: "stopping",
    STOPPED: "stopped",
    PAUSING: "pausing",
    PAUSED: "paused",
    CONTINUING: "continuing",
}

_THUMB = re.compile(r"^[0-9A-F]{40}$")


# --- facts -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """A planned or made change: ``target``'s ``field`` goes from ``before`` to ``after``."""

    target: str
    field: str
    before: Any
    after: Any

    def row(self) -> dict[str, Any]:
        return {"target": self.target, "field": self.field, "before": self.before, "after": self.after}


@dataclass(frozen=True)
class SslBinding:
    """One SSL endpoint of a site: where it listens and which certificate it serves.

    IIS 6 keeps the certificate per site (SSLCertHash/SSLStoreName) and the endpoint in SecureBindings
    ``IP:port:`` (no host header on 6.0); IIS 7+ keeps it per HTTP.sys binding (``ip:port`` or, with
    SNI on 8+, ``hostname:port``). ``ip`` "" is all unassigned addresses.
    """

    ip: str = ""
    port: int = 443
    host_header: str = ""  # SNI name on IIS 8+; always "" on IIS 6
    thumbprint: str = ""
    store: str = "MY"

    @property
    def text(self) -> str:
        """``IP:port:host`` as IIS writes it (``:443:`` for all addresses, port 443, no host)."""
        return f"{self.ip}:{self.port}:{self.host_header}"

    @classmethod
    def parse(cls, text: str, *, thumbprint: str = "", store: str = "MY") -> SslBinding:
        """``IP:port:host`` (or ``IP:port``) → a binding; :class:`ParameterError` for anything else."""
        # IPv6 addresses come in brackets (``[::]:443:``, ``[2001:db8::1]:443:host``), as IIS writes them.
        m = re.fullmatch(r"\s*(\[[0-9A-Fa-f:.]+\]|[0-9.*]*):([0-9]{1,5})(?::([^:\s]*))?\s*", text or "")
        if m is None or not 0 < int(m.group(2)) < 65536:
            raise ParameterError("secure_bindings", f"{text!r}: expected a secure binding such as :443:")
        ip = "" if m.group(1) in ("", "*") else m.group(1)
        return cls(ip, int(m.group(2)), m.group(3) or "", thumbprint, store)


@dataclass(frozen=True)
class Site:
    """One IIS web site (IIS 6: metabase node ``/LM/W3SVC/<id>``; IIS 7+: ``<site id=…>``)."""

    id: int
    name: str  # ServerComment (the description IIS Manager shows)
    state: int  # ServerState
    state_name: str
    bindings: tuple[str, ...]  # ServerBindings "IP:port:host"
    secure_bindings: tuple[str, ...]  # SecureBindings "IP:port:"
    cert_thumbprint: str  # SSLCertHash as 40 upper-case hex digits, "" when none
    store_name: str  # SSLStoreName ("MY")
    cert_not_after_utc: datetime | None = None  # the bound certificate's expiry, when known
    # IIS 7+: the certificate each secure binding serves, in the order of ``secure_bindings`` (the
    # first is ``cert_thumbprint``); empty on IIS 6, where the certificate is one per site.
    binding_thumbprints: tuple[str, ...] = ()
    # IIS 6: SSLCertHash is INHERIT from /LM/W3SVC (ms525719): True when ``cert_thumbprint`` is the
    # service-level value the site inherits, not its own (helper field ``cert_hash_inherited``,
    # docs/windows-behaviour.md W-IIS6-SSLCERTHASH-INHERIT). Always False on IIS 7+.
    cert_inherited: bool = False

    @property
    def cert_source(self) -> str:
        """Where the site's certificate comes from: "own", "inherited" (from /LM/W3SVC) or "none"."""
        if not self.cert_thumbprint:
            return "none"
        return "inherited" if self.cert_inherited else "own"

    @property
    def cert_described(self) -> str:
        """The thumbprint as a read-back shows it: an inherited value says so, none is "(none)"."""
        if not self.cert_thumbprint:
            return "(none)"
        return self.cert_thumbprint + (" (inherited from W3SVC)" if self.cert_inherited else "")

    def serves(self, thumbprint: str) -> bool:
        """Whether any of the site's secure bindings serves ``thumbprint``."""
        return thumbprint in (self.cert_thumbprint, *self.binding_thumbprints)

    @property
    def path(self) -> str:
        return f"W3SVC/{self.id}"

    @property
    def label(self) -> str:
        return f'{self.path} "{self.name}"'

    @property
    def started(self) -> bool:
        return self.state == STARTED

    @property
    def ssl_bindings(self) -> tuple[SslBinding, ...]:
        """The secure bindings as data, each with the certificate the site serves on it."""
        return tuple(
            SslBinding.parse(b, thumbprint=self.cert_thumbprint, store=self.store_name)
            for b in self.secure_bindings
        )

    def row(self) -> dict[str, Any]:
        """One row for a pandas table."""
        return {
            "site": self.path,
            "name": self.name,
            "state": self.state_name,
            "bindings": " ".join(self.bindings),
            "secure_bindings": " ".join(self.secure_bindings),
            "certificate": self.cert_thumbprint,
            "store": self.store_name,
            "expires_utc": self.cert_not_after_utc.isoformat() if self.cert_not_after_utc else "",
        }


@dataclass(frozen=True)
class SwapResult:
    """What :meth:`IISBackend.swap` (or :meth:`IISBackend.rollback`) did, with everything needed to undo it."""

    production: Site  # read back afterwards
    old_thumbprint: str
    old_store_name: str
    old_secure_bindings: tuple[str, ...]
    new_thumbprint: str
    stopped_sites: tuple[Site, ...]  # the other sites this call stopped (read back)
    already_done: bool
    changes: tuple[Change, ...] = field(default_factory=tuple)

    def row(self) -> dict[str, Any]:
        return {
            "site": self.production.path,
            "name": self.production.name,
            "state": self.production.state_name,
            "old_thumbprint": self.old_thumbprint,
            "new_thumbprint": self.new_thumbprint,
            "stopped_sites": " ".join(s.path for s in self.stopped_sites),
            "already_done": self.already_done,
        }

    def facts(self) -> dict[str, Any]:
        """Facts for the evidence and for a rollback parameter set."""
        return {
            "production_site": self.production.path,
            "production_site_name": self.production.name,
            "old_thumbprint": self.old_thumbprint,
            "old_store_name": self.old_store_name,
            "old_secure_bindings": list(self.old_secure_bindings),
            "new_thumbprint": self.new_thumbprint,
            "stopped_sites": [s.path for s in self.stopped_sites],
            "already_done": self.already_done,
            "production_state": self.production.state_name,
        }


# --- the backend interface ----------------------------------------------------------------------------


class IISBackend(Protocol):
    """One IIS generation on one server (built by :func:`opslib.iis.backend_for`, held by
    :class:`opslib.server.Server` as ``server.iis``). Every verb reads back what it changed and
    raises an :class:`~opslib.errors.OpsError` saying what to do; ``site`` is a :class:`Site` or its
    name (ServerComment / site name, or the path ``W3SVC/n``)."""

    name: str  # "IIS 6 (metabase, iis6.js)"
    # Whether :meth:`swap` runs as one server-side transaction that keeps a journal on the server
    # (IIS 6: ``iis6.js swap``); a backend without one answers None from the two journal verbs.
    keeps_swap_journal: bool

    def sites(self, *, expiry: Mapping[str, datetime] | None = None) -> list[Site]:
        """Every web site, ordered by id (``expiry``: thumbprint → not-after fills the site's expiry)."""
        ...

    def find_site(self, name: str) -> Site:
        """The one site called ``name`` (:class:`~opslib.errors.SiteNotFound` otherwise)."""
        ...

    def plan_bind(
        self, site: Site | str, thumbprint: str, *, port: int = 443, host_header: str = ""
    ) -> list[Change]:
        """What :meth:`bind` would change (read-only)."""
        ...

    def bind(self, site: Site | str, thumbprint: str, *, port: int = 443, host_header: str = "") -> Site:
        """Serve ``thumbprint`` (LocalMachine MY) on ``site``'s SSL binding ``*:port:host_header``
        (``host_header`` is the SNI name on IIS 8+; a backend that cannot bind by name refuses it
        with CapabilityMissing); does not start the site."""
        ...

    def plan_swap(self, *, production_site: str, new_thumbprint: str, port: int = 443) -> list[Change]:
        """What :meth:`swap` would change (empty: already done)."""
        ...

    def swap(self, *, production_site: str, new_thumbprint: str, port: int = 443) -> SwapResult:
        """Serve ``new_thumbprint`` on the production site, make it the one started site on its
        SSL endpoint; on failure put the old certificate back and raise."""
        ...

    def rollback(
        self,
        *,
        production_site: str,
        old_thumbprint: str,
        secure_bindings: Sequence[str] | str,
        old_cert_source: str = "",
    ) -> SwapResult:
        """The undo of :meth:`swap`: ``old_thumbprint`` back on ``secure_bindings`` (``IP:port:host``);
        ``old_cert_source`` "inherited" (IIS 6): the site inherits it again instead of holding it as its own."""
        ...

    def swap_journal(self, site: Site | str) -> dict[str, Any] | None:
        """What the last :meth:`swap` of ``site`` wrote to its journal on the server (None: no journal,
        or a backend that keeps none)."""
        ...

    def wait_for_journal(
        self, production: Site, *, new: str, deadline_s: float = 0.0
    ) -> dict[str, Any] | None:
        """Poll the journal until the swap of ``new`` has ended (None: not within ``deadline_s``, or a
        backend that keeps no journal)."""
        ...

    def start(self, site: Site | str) -> Site:
        """Start a site and wait until it is started."""
        ...

    def stop(self, site: Site | str) -> Site:
        """Stop a site and wait until it is stopped."""
        ...

    def export_certificate(self, site: Site, remote_path: str, *, password: str) -> str:
        """Export the certificate ``site`` serves, with key and chain, to a PFX at ``remote_path`` on
        the server; returns its thumbprint. Backends without such a route raise CapabilityMissing."""
        ...

    def check_swap(
        self,
        *,
        production_site: str,
        work_site: str = "",
        new_thumbprint: str,
        run_dir: str = "",
        dry_run: bool = False,
        hint: str = "",
    ) -> list[dict[str, Any]]:
        """Read the sites back after a swap/rollback: :func:`check_swap`'s rows (raises unless dry_run)."""
        ...

    def check_bound(
        self, site: str, *, thumbprint: str, installed: Installed | None, dry_run: bool = False
    ) -> list[dict[str, Any]]:
        """Read the site back after step 1's bind: :func:`check_bound`'s rows (raises unless dry_run)."""
        ...


# A parsed ``reg export`` ({key: {value name: (type, data)}}, as opslib.server.regfile returns it), or None.
RegistryReader = Callable[[str], "Mapping[str, Mapping[str, tuple[str, Any]]] | None"]


class BackendFactory(Protocol):
    """How every backend is built (:data:`opslib.iis.BACKENDS`): the connection, the host label, the
    probed IIS major version and a registry reader (``reg export`` of a key, parsed; the server layer
    supplies it, so this package does not import that layer). A backend ignores what it does not need."""

    def __call__(
        self, conn: Connection, *, host: str, iis_major: int, read_registry: RegistryReader | None
    ) -> IISBackend: ...


class Installed(Protocol):
    """What :func:`check_bound` needs of an install result (``opslib.ops.install.InstallResult``)."""

    @property
    def thumbprint(self) -> str: ...

    @property
    def key_container(self) -> str: ...


# --- shared helpers and checks ---------------------------------------------------------------------


def canonical_thumbprint(value: str, *, key: str = "thumbprint") -> str:
    """``value`` as 40 upper-case hex digits (spaces and colons dropped); :class:`ParameterError` otherwise."""
    thumb = re.sub(r"[\s:]", "", value or "").upper()
    if not _THUMB.match(thumb):
        raise ParameterError(key, f"{value!r} is not a SHA-1 thumbprint (40 hexadecimal digits)")
    return thumb


def _endpoint(binding: str) -> tuple[str, str, str]:
    ip, _, rest = binding.partition(":")
    port, _, host = rest.partition(":")
    return ("" if ip == "*" else ip), port, host.lower()


def _shares_endpoint(a: Iterable[str], b: Iterable[str]) -> bool:
    """Whether two secure-binding lists meet on a port (wildcard IP meets any IP — conservative) with the
    same host name: IIS 7+ runs ``*:443:a`` and ``*:443:b`` side by side (host header / SNI); on IIS 6
    the host part is always empty, so only IP and port count there."""
    for ip1, port1, host1 in map(_endpoint, a):
        for ip2, port2, host2 in map(_endpoint, b):
            if port1 == port2 and host1 == host2 and (ip1 == ip2 or not ip1 or not ip2):
                return True
    return False


def with_expiry(found: Sequence[Site], expiry: Mapping[str, datetime]) -> list[Site]:
    """The same sites with the bound certificate's expiry filled in where ``expiry`` knows it."""
    upper = {k.upper(): v for k, v in expiry.items()}
    return [replace(s, cert_not_after_utc=upper.get(s.cert_thumbprint, s.cert_not_after_utc)) for s in found]


def find_site(found: Sequence[Site], name: str, *, host: str = "IIS") -> Site:
    """The one site whose ServerComment is ``name``, or whose path is ``name`` (``W3SVC/n``).

    No match or several → :class:`SiteNotFound` listing the sites.
    """
    wanted = name.strip()
    m = re.fullmatch(r"(?:/?LM/)?W3SVC/(\d+)", wanted, flags=re.IGNORECASE)
    if m:
        matches = [s for s in found if s.id == int(m.group(1))]
    else:
        matches = [s for s in found if s.name == wanted]
        if not matches:
            matches = [s for s in found if s.name.casefold() == wanted.casefold()]
    listing = "; ".join(f"{s.label} ({s.state_name})" for s in found) or "none"
    if not matches:
        raise SiteNotFound(
            host,
            f"no IIS site is named {name!r}; the sites are: {listing}",
            hint="use the site description exactly as IIS Manager shows it, or W3SVC/n",
        )
    if len(matches) > 1:
        raise SiteNotFound(
            host,
            f"{len(matches)} IIS sites are named {name!r}: "
            + "; ".join(f"{s.label} ({s.state_name})" for s in matches),
            hint="name the site by its path instead (W3SVC/n)",
        )
    return matches[0]


def secure_binding(port: int) -> str:
    if not 0 < port < 65536:
        raise ParameterError("ssl_port", f"{port} is not a TCP port")
    return f":{port}:"


def sharing_sites(found: Sequence[Site], production: Site, bindings: Sequence[str]) -> list[Site]:
    """The other started sites whose secure bindings meet ``bindings`` (the work site, typically)."""
    return [
        s
        for s in found
        if s.id != production.id and s.started and _shares_endpoint(s.secure_bindings, bindings)
    ]


def reason(exc: OpsError) -> str:
    return str(getattr(exc, "problem", "") or exc)


def check_swap(
    sites_after: Sequence[Site],
    *,
    production_site: str,
    work_site: str = "",
    new_thumbprint: str,
    host: str,
    run_dir: str = "",
    dry_run: bool = False,
    hint: str = "",
    inherited: bool = False,
) -> list[dict[str, Any]]:
    """Seed step 2.8, read back: the production site is started with ``new_thumbprint``, the work site
    (when given) is stopped, and no other started site shares the production secure binding. With
    ``inherited`` (the rollback of an IIS 6 site that inherited its certificate) the certificate must be
    ``new_thumbprint`` inherited from W3SVC, not the site's own.

    Returns one row per check (``check``, ``site``, ``expected``, ``actual``, ``ok``) for a table.
    A failed check raises :class:`VerificationFailed` naming every failure and the undo
    (``opslib run <run_dir>/rollback.yaml``) — unless ``dry_run`` (nothing was changed, so the rows
    only report). ``hint`` replaces the default advice (the rollback step has its own).
    """
    new = canonical_thumbprint(new_thumbprint, key="new_thumbprint")
    production = find_site(sites_after, production_site, host=host)
    sharing = sharing_sites(sites_after, production, production.secure_bindings)
    rows = [
        _check_row("production site started", production, "started", production.state_name),
        # The site's OWN value: an inherited one reads "<thumbprint> (inherited from W3SVC)" and fails.
        _check_row(
            "production certificate",
            production,
            new + (" (inherited from W3SVC)" if inherited else ""),
            production.cert_described,
        ),
    ]
    if work_site:
        work = find_site(sites_after, work_site, host=host)
        rows.append(_check_row("work site stopped", work, "stopped", work.state_name))
    rows.append(
        {
            "check": "no other started site on the secure binding",
            "site": " ".join(production.secure_bindings) or "(none)",
            "expected": "(none)",
            "actual": ", ".join(s.label for s in sharing) or "(none)",
            "ok": not sharing,
        }
    )
    says = {
        "production certificate": "{site} serves {actual}, not {expected}",
        "no other started site on the secure binding": "other started sites share the secure binding "
        "{site}: {actual}",
    }
    problems = [
        says.get(row["check"], "{site} is {actual}, not {expected}").format(**row)
        for row in rows
        if not row["ok"]
    ]
    if problems and not dry_run:
        undo = (
            f"opslib run {run_dir.rstrip('/')}/rollback.yaml"
            if run_dir
            else "opslib run <run folder>/rollback.yaml"
        )
        raise VerificationFailed(
            host, "; ".join(problems), hint=hint or f"look at the sites in IIS Manager; to undo: {undo}"
        )
    return rows


def _check_row(check: str, site: Site, expected: str, actual: str) -> dict[str, Any]:
    return {
        "check": check,
        "site": site.label,
        "expected": expected,
        "actual": actual,
        "ok": actual == expected,
    }


def check_bound(
    work_after: Site,
    *,
    thumbprint: str,
    installed: Installed | None,
    host: str,
    dry_run: bool = False,
) -> list[dict[str, Any]]:
    """Step 1's read-back: ``thumbprint`` is in MY with its private key (``installed``) and bound to
    the work site. Returns one row per check; a failure raises :class:`VerificationFailed` unless
    ``dry_run`` (nothing was installed, so the rows only report)."""
    thumb = canonical_thumbprint(thumbprint)
    with_key = bool(installed and installed.thumbprint == thumb and installed.key_container)
    bound = thumb if work_after.serves(thumb) else work_after.cert_thumbprint or "(none)"
    rows = [
        {
            "check": "in MY with its private key",
            "site": "",
            "expected": thumb,
            "actual": f"{installed.thumbprint} (key {installed.key_container or 'none'})"
            if installed
            else "(none)",
            "ok": with_key,
        },
        _check_row("bound to the work site", work_after, thumb, bound),
    ]
    if not all(row["ok"] for row in rows) and not dry_run:
        raise VerificationFailed(
            host,
            f"after the install: in MY with its key {with_key}, {work_after.label} bound to "
            f"{bound} (expected {thumb})",
            hint="look at the MY store (certutil -store MY) and the work site in IIS Manager",
        )
    return rows


class ReadBackChecks:
    """The read-back checks both backends share: the sites read again, then :func:`check_swap` /
    :func:`check_bound`. A backend provides ``host``, ``sites()`` and ``find_site()``."""

    host: str

    def sites(self, *, expiry: Mapping[str, datetime] | None = None) -> list[Site]:
        raise NotImplementedError

    def find_site(self, name: str) -> Site:
        raise NotImplementedError

    def check_swap(
        self,
        *,
        production_site: str,
        work_site: str = "",
        new_thumbprint: str,
        run_dir: str = "",
        dry_run: bool = False,
        hint: str = "",
    ) -> list[dict[str, Any]]:
        found = self.sites()
        if (
            work_site
            and find_site(found, work_site, host=self.host).id
            == find_site(found, production_site, host=self.host).id
        ):
            work_site = ""  # the work binding is on the production site itself (IIS 7–10 with SNI)
        return check_swap(
            found,
            production_site=production_site,
            work_site=work_site,
            new_thumbprint=new_thumbprint,
            host=self.host,
            run_dir=run_dir,
            dry_run=dry_run,
            hint=hint,
        )

    def check_bound(
        self, site: str, *, thumbprint: str, installed: Installed | None, dry_run: bool = False
    ) -> list[dict[str, Any]]:
        return check_bound(
            self.find_site(site), thumbprint=thumbprint, installed=installed, host=self.host, dry_run=dry_run
        )
