"""The IIS 7–10 backend: sites from ``appcmd … /xml``, certificates from the HTTP.sys SSL bindings.

On IIS 7+ the certificate is not a site property: IIS keeps the site's ``https`` binding
(https://learn.microsoft.com/en-us/iis/configuration/system.applicationhost/sites/site/bindings/binding),
HTTP.sys keeps the certificate per ``IP:port`` and, from IIS 8, per ``hostname:port`` (SNI) in the
registry (:mod:`opslib.iis.httpsys`, W-IIS7-REG). Decisions come from ``appcmd list site|apppool /xml``
(W-IIS7-APPCMD-LIST), the parsed ``reg export`` of the HTTP Parameters key, and exit codes of
``appcmd start|stop site`` (W-IIS7-APPCMD-CTL) — never from text; every ``netsh http
add|update|delete sslcert`` (W-IIS7-NETSH; ``update`` only where netsh has it) is read back from the registry.

Seed step 1 (``bind``): the work site gets its own https binding and HTTP.sys binding — ``*:port:NAME``
with SNI when the server has it and the work site has one host name (or ``host_header`` names one),
else ``*:port:`` on ``0.0.0.0:port``; a binding another site already uses is refused (on IIS 7.x the
work site needs a port of its own, e.g. ``ssl_port: 8443``). The work binding may also be a second
binding of the production site itself.
Seed step 2 (``swap``): exactly the production site's HTTP.sys bindings (IPv4, IPv6, SNI) change, in one
cmd line with a restore branch (:func:`opslib.iis.httpsys.swap_line`), then everything is read back; when the site does
not come back the old certificate is put back (self-rollback) and :class:`VerificationFailed` says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .. import winerror
from ..errors import (
    CapabilityMissing,
    OpsError,
    ParameterError,
    PreconditionFailed,
    RemoteCommandFailed,
    VerificationFailed,
)
from ..winrm import Raw
from ..winrm.quoting import CMD_LINE_MAX
from .base import (
    STARTED,
    STARTING,
    STATE_NAMES,
    STOPPED,
    STOPPING,
    Change,
    ReadBackChecks,
    RegistryReader,
    Site,
    SslBinding,
    SwapResult,
    canonical_thumbprint,
    find_site,
    reason,
    sharing_sites,
    with_expiry,
)
from .httpsys import (
    APPCMD,
    HTTP_PARAMETERS,
    IIS_APP_ID,
    HttpSslBinding,
    RawSite,
    binding_key,
    endpoints_of,
    parse_http_bindings,
    parse_xml,
    production_endpoints,
    raw_sites,
    served_by,
    set_lines,
    swap_line,
    users_of,
    verb_probe_line,
    work_binding,
    work_endpoint,
)

if TYPE_CHECKING:
    from ..winrm import CommandResult, Connection

__all__ = ["APPCMD", "HTTP_PARAMETERS", "IIS_APP_ID", "HttpSslBinding", "IIS7Backend"]

_STATES = {"started": STARTED, "starting": STARTING, "stopped": STOPPED, "stopping": STOPPING}
# appcmd start/stop exit codes (Win32, W-IIS7-APPCMD-CTL).
ERROR_ALREADY_EXISTS = 183
ERROR_SERVICE_ALREADY_RUNNING = 1056
ERROR_SERVICE_NOT_ACTIVE = 1062
ERROR_NOT_FOUND = 1168


class IIS7Backend(ReadBackChecks):
    """IIS 7.0–10 on one connection: appcmd for sites, netsh http for HTTP.sys, reg export to read back."""

    name = "IIS 7-10 (appcmd, HTTP.sys bindings via netsh http)"
    keeps_swap_journal = False  # the swap is one cmd line with its restore branch, no journal

    def __init__(
        self,
        conn: Connection,
        *,
        host: str = "",
        iis_major: int = 10,
        read_registry: RegistryReader | None = None,
    ) -> None:
        self.conn = conn
        # ``reg export`` of a key, parsed (None: the key is absent); the server layer supplies it
        # (opslib.server.Server), so this package does not import that layer.
        self.read_registry = read_registry
        self.host = host or str(getattr(conn, "host", "") or getattr(conn, "url", "") or "server")
        self.iis_major = iis_major
        self._verbs: dict[str, bool] | None = None

    @property
    def sni(self) -> bool:
        """SNI bindings and ``netsh http update sslcert`` exist from IIS 8 / Server 2012 on (W-IIS7-NETSH)."""
        return self.iis_major >= 8

    def netsh_verbs(self) -> dict[str, bool]:
        """The ``netsh http`` verbs this server has, asked read-only once per backend (W-IIS7-NETSH-VERBS:
        ``update sslcert /?`` exit 0 = present; never from the IIS version, W-IIS7-NETSH-UPDATE)."""
        if self._verbs is None:
            with self.conn.reading():
                probe = self.conn.run_line(verb_probe_line("update"), check=False, what="netsh http update?")
            self._verbs = {"update": probe.exit_code == 0, "delete": True, "add": True}
        return self._verbs

    @property
    def update_verb(self) -> bool:
        return self.netsh_verbs()["update"]

    def verbs_text(self) -> str:
        """The netsh verbs a change of an existing binding runs here (for the plan)."""
        return "update" if self.update_verb else "delete, add"

    # --- reading -----------------------------------------------------------------------------------

    def _appcmd(self, *args: str, what: str, check: bool = True) -> CommandResult:
        result = self.conn.run([Raw(APPCMD), *args], check=False, what=what)  # type: ignore[list-item]
        if result.exit_code == winerror.NOT_RECOGNIZED:
            raise CapabilityMissing(self.host, "appcmd.exe (IIS 7+ management tools)", hint="install IIS")
        if result.exit_code == winerror.ERROR_ACCESS_DENIED:
            raise CapabilityMissing(
                self.host,
                "administrator rights (appcmd reads applicationHost.config)",
                hint="connect with an account in the local Administrators group",
            )
        if check and result.exit_code != 0:
            raise self._failed(result, what, "nothing was parsed; run the same appcmd on the server")
        return result

    def _raw_sites(self) -> list[RawSite]:
        result = self._appcmd("list", "site", "/xml", what="list IIS sites (appcmd)")
        return raw_sites(parse_xml(result.stdout, int(getattr(self.conn, "codepage", 0) or 0)))

    def app_pools(self) -> dict[str, str]:
        """Application pool name → state (``appcmd list apppool /xml``)."""
        result = self._appcmd("list", "apppool", "/xml", what="list IIS application pools (appcmd)")
        root = parse_xml(result.stdout, int(getattr(self.conn, "codepage", 0) or 0))
        return {e.get("APPPOOL.NAME", ""): e.get("state", "") for e in root.findall("APPPOOL")}

    def http_bindings(self) -> dict[tuple[str, str], HttpSslBinding]:
        """Every HTTP.sys SSL binding, from ``reg export`` of the HTTP Parameters key (W-IIS7-REG)."""
        if self.read_registry is None:
            raise CapabilityMissing(
                self.host,
                "a registry reader for the IIS 7-10 backend",
                hint="build the backend through opslib.server.Server (server.iis), which supplies it",
            )
        return parse_http_bindings(self.read_registry(HTTP_PARAMETERS))

    def _site(self, raw: RawSite, http: Mapping[tuple[str, str], HttpSslBinding]) -> Site:
        state = _STATES.get(raw.state.lower(), 0)
        https = raw.https
        keys = [served_by(self.sni, b, http) for b in https]
        certs = [http[k].thumbprint if k else "" for k in keys]
        cert = http[keys[0]] if keys and keys[0] else None
        return Site(
            id=raw.id,
            name=raw.name,
            state=state,
            state_name=STATE_NAMES.get(state, raw.state.lower() or "unknown"),
            bindings=tuple(
                SslBinding.parse(info).text if proto.lower() == "http" else f"{proto}/{info}"
                for proto, info in raw.bindings
                if proto.lower() != "https"
            ),
            secure_bindings=tuple(b.text for b in https),
            cert_thumbprint=cert.thumbprint if cert else "",
            store_name=cert.store if cert else "",
            binding_thumbprints=tuple(certs),
        )

    def _read(self) -> tuple[list[RawSite], dict[tuple[str, str], HttpSslBinding], list[Site]]:
        raws, http = self._raw_sites(), self.http_bindings()
        return raws, http, [self._site(r, http) for r in raws]

    def sites(self, *, expiry: Mapping[str, datetime] | None = None) -> list[Site]:
        with self.conn.reading():  # appcmd list and reg export only read
            found = self._read()[2]
        return with_expiry(found, expiry) if expiry else found

    def find_site(self, name: str) -> Site:
        return find_site(self.sites(), name, host=self.host)

    # --- HTTP.sys changes --------------------------------------------------------------------------

    def _failed(self, result: CommandResult, what: str, hint: str) -> RemoteCommandFailed:
        return RemoteCommandFailed(
            host=self.host,
            command=result.command_line,
            remote_exit_code=result.exit_code,
            stdout=result.stdout_text,
            stderr=result.stderr_text,
            what=what,
            hint=hint,
        )

    def _run_line(self, line: str, *, what: str) -> CommandResult:
        if len(line) > CMD_LINE_MAX:
            raise ParameterError(
                "command", f"the command line would be {len(line)} characters (max {CMD_LINE_MAX})"
            )
        return self.conn.run_line(line, check=False, what=what)

    def _set_http(
        self, binding: HttpSslBinding | None, kind: str, endpoint: str, thumb: str, store: str
    ) -> None:
        """Point one HTTP.sys binding at ``thumb`` and read it back from the registry."""
        what = f"bind {store}\\{thumb} to HTTP.sys {kind}={endpoint}"
        exists = binding is not None  # a new binding is an `add` everywhere: no verb probe for it
        line = set_lines(exists and self.update_verb, kind, endpoint, thumb, store, exists=exists)
        result = self._run_line(line, what=what)
        after = self.http_bindings().get(binding_key(kind, endpoint))
        if after is None or after.thumbprint != thumb:
            raise VerificationFailed(
                self.host,
                f"HTTP.sys {kind}={endpoint} reads back {after.thumbprint if after else 'no binding'} after "
                f"netsh (exit {result.exit_code}), expected {thumb}",
                hint="look at `netsh http show sslcert` on the server; netsh error 1312 means the certificate "
                "has no private key in the store",
            )

    # --- start/stop ---------------------------------------------------------------------------------

    def _control(self, site: Site, verb: str) -> Site:
        """appcmd start|stop site, decided by exit code, then read back."""
        result = self._appcmd(
            verb, "site", f"/site.name:{site.name}", what=f"{verb} {site.label}", check=False
        )
        benign = ERROR_SERVICE_ALREADY_RUNNING if verb == "start" else ERROR_SERVICE_NOT_ACTIVE
        after = find_site(self.sites(), site.path, host=self.host)
        wanted = STARTED if verb == "start" else STOPPED
        if result.exit_code not in (0, benign) or after.state != wanted:
            why = (
                "another started site holds the same binding (ERROR_ALREADY_EXISTS)"
                if result.exit_code == ERROR_ALREADY_EXISTS
                else f"appcmd exit {result.exit_code}"
            )
            raise VerificationFailed(
                self.host,
                f"{site.label} did not {verb}: it is {after.state_name}; {why}",
                hint="look at the System event log (source WAS / W3SVC) on the server",
            )
        return after

    def start(self, site: Site | str) -> Site:
        return self._control(self._resolve(site), "start")

    def stop(self, site: Site | str) -> Site:
        return self._control(self._resolve(site), "stop")

    def _resolve(self, site: Site | str) -> Site:
        return find_site(self.sites(), site.path if isinstance(site, Site) else site, host=self.host)

    # --- bind (seed step 1) ---------------------------------------------------------------------------

    def _bind_changes(
        self, site: Site | str, thumbprint: str, port: int, host_header: str
    ) -> tuple[Any, ...]:
        thumb = canonical_thumbprint(thumbprint)
        raws, http, found = self._read()
        target = find_site(found, site.path if isinstance(site, Site) else site, host=self.host)
        if host_header and not self.sni:
            raise CapabilityMissing(
                self.host,
                f"SNI bindings ({host_header}) on IIS {self.iis_major} (SNI exists from IIS 8)",
                hint="bind without a host name, on a port of its own (e.g. ssl_port: 8443)",
            )
        binding, has = work_binding(self.sni, next(r for r in raws if r.id == target.id), port, host_header)
        kind, endpoint = work_endpoint(self.sni, binding)
        current = http.get(binding_key(kind, endpoint))
        if current is not None and not current.owned_by_iis:
            raise PreconditionFailed(
                self.host,
                f"{current.label} belongs to another application (AppId {current.app_id or '?'}, not IIS's "
                f"{IIS_APP_ID}); the kit does not change it — nothing was changed",
                hint="choose another port (ssl_port) or host name for the work site",
            )
        others = users_of(self.sni, raws, http, binding_key(kind, endpoint), but=target.id)
        if others:
            raise PreconditionFailed(
                self.host,
                f"binding {thumb} to {target.label} on {kind}={endpoint} would change the certificate of "
                f"{', '.join(others)} too (HTTP.sys keeps one certificate per "
                f"{'host name and port' if kind == 'hostnameport' else 'IP:port'}) — nothing was changed",
                hint="give the work site a port of its own (ssl_port, e.g. 8443)"
                + ("" if self.sni else "; IIS 7.x has no SNI")
                + ", or a host name of its own (SNI, IIS 8+)",
            )
        changes = []
        if not has:
            changes.append(Change(target.label, "https binding", None, f"*:{port}:{binding.host_header}"))
        if current is None or current.thumbprint != thumb or current.store.upper() != "MY":
            changes.append(
                Change(
                    f"HTTP.sys {kind}={endpoint}",
                    "SslCertHash",
                    current.thumbprint if current else None,
                    thumb,
                )
            )
        return target, binding, has, kind, endpoint, current, changes

    def plan_bind(
        self, site: Site | str, thumbprint: str, *, port: int = 443, host_header: str = ""
    ) -> list[Change]:
        return list(self._bind_changes(site, thumbprint, port, host_header)[-1])

    def bind(self, site: Site | str, thumbprint: str, *, port: int = 443, host_header: str = "") -> Site:
        """Seed step 1 on IIS 7+: the work site's own https binding and HTTP.sys binding serve
        ``thumbprint`` (MY); the site is not started. Read back from appcmd and the registry."""
        thumb = canonical_thumbprint(thumbprint)
        target, binding, has, kind, endpoint, current, changes = self._bind_changes(
            site, thumb, port, host_header
        )
        if not changes:
            return target
        if not has:
            attrs = f"protocol='https',bindingInformation='*:{port}:{binding.host_header}'"
            if binding.host_header and self.sni:
                attrs += ",sslFlags='1'"  # SNI (sslFlags exists from IIS 8, W-IIS7-APPCMD-SET)
            result = self._appcmd(
                "set",
                "site",
                f"/site.name:{target.name}",
                f"/+bindings.[{attrs}]",
                what=f"add the https binding to {target.label}",
                check=False,
            )
            if result.exit_code not in (0, ERROR_ALREADY_EXISTS):
                raise self._failed(
                    result,
                    f"add the https binding to {target.label}",
                    "nothing else was changed; add the binding in IIS Manager",
                )
        if current is None or current.thumbprint != thumb or current.store.upper() != "MY":
            self._set_http(current, kind, endpoint, thumb, "MY")
        after = find_site(self.sites(), target.path, host=self.host)
        if binding.text not in after.secure_bindings or not after.serves(thumb):
            raise VerificationFailed(
                self.host,
                f"{after.label} reads back secure bindings {' '.join(after.secure_bindings) or '(none)'} "
                f"serving {' '.join(after.binding_thumbprints) or '(none)'}, expected {binding.text} with {thumb}",
                hint="look at the site's https binding in IIS Manager and `netsh http show sslcert`",
            )
        return after

    # --- swap (seed step 2) ---------------------------------------------------------------------------

    def _pool_state(self, pool: str) -> str:
        return {k.lower(): v for k, v in self.app_pools().items()}.get(pool.lower(), "").lower()

    def _stopped_pool(self, production: Site) -> str:
        """The production site's application pool when it is stopped ("" otherwise). ``list site /xml``
        does not name a site's pool; IIS Manager's Add Website creates one named after the site [U], so
        that pool is the one started (the site would answer 503 with its pool stopped)."""
        return production.name if self._pool_state(production.name) == "stopped" else ""

    def _start_pool(self, pool: str) -> None:
        what = f"start the application pool {pool!r}"
        result = self._appcmd("start", "apppool", f"/apppool.name:{pool}", what=what, check=False)
        state = self._pool_state(pool)
        if result.exit_code not in (0, ERROR_SERVICE_ALREADY_RUNNING) or state != "started":
            raise VerificationFailed(
                self.host,
                f"the application pool {pool!r} did not start (appcmd exit {result.exit_code}, state {state or '?'})",
                hint="look at the System event log (source WAS) on the server",
            )

    def _plan(
        self,
        production: Site,
        binding: SslBinding,
        currents: list[HttpSslBinding],
        found: list[Site],
        new: str,
        pool: str = "",
    ) -> list[Change]:
        changes = [
            Change(s.label, "state", s.state_name, "stopped")
            for s in sharing_sites(found, production, [binding.text])
        ]
        if pool:
            changes.append(Change(f"application pool {pool!r}", "state", "stopped", "started"))
        if any(c.thumbprint != new or c.store.upper() != "MY" for c in currents):
            # The commands an approver signs off, then every endpoint (IPv4, IPv6, SNI) that changes.
            verbs = f"netsh http {self.verbs_text()} sslcert; on failure: delete, add (the old one back)"
            changes.append(Change("HTTP.sys (netsh http)", "verbs", None, verbs))
        for current in currents:
            if current.thumbprint != new:
                changes.append(Change(current.label, "SslCertHash", current.thumbprint, new))
            if current.store.upper() != "MY":
                changes.append(Change(current.label, "SslCertStoreName", current.store, "MY"))
        if not production.started:
            changes.append(Change(production.label, "state", production.state_name, "started"))
        elif any(c.thumbprint != new for c in currents):
            changes.append(Change(production.label, "state", "started", "restarted"))
        return changes

    def _swap_target(
        self, production_site: str, new: str
    ) -> tuple[list[Site], Site, SslBinding, list[HttpSslBinding]]:
        raws, http, found = self._read()
        production = find_site(found, production_site, host=self.host)
        binding, currents = production_endpoints(self.sni, raws, http, production, new, host=self.host)
        return found, production, binding, currents

    def plan_swap(self, *, production_site: str, new_thumbprint: str, port: int = 443) -> list[Change]:
        new = canonical_thumbprint(new_thumbprint, key="new_thumbprint")
        found, production, binding, currents = self._swap_target(production_site, new)
        return self._plan(production, binding, currents, found, new, self._stopped_pool(production))

    def check_bindings(
        self, *, production_site: str, work_site: str, new_thumbprint: str, port: int
    ) -> dict[str, str]:
        """Read-only, in the pre-flight (before step 0 changes anything): whatever step 1 (the work
        binding) or step 2 (the production endpoints) would refuse for a binding reason raises here; the
        row names the endpoints the swap touches and the netsh verbs it runs (found, not assumed)."""
        swap = self.plan_swap(production_site=production_site, new_thumbprint=new_thumbprint)
        bind = self.plan_bind(work_site, new_thumbprint, port=port)
        return {
            "netsh_verbs": self.verbs_text() + ("" if self.update_verb else " (no `update sslcert` here)"),
            "swap_endpoints": ", ".join(c.target for c in swap if c.field == "SslCertHash") or "(none)",
            "work_binding": ", ".join(c.target for c in bind if c.field == "SslCertHash") or "(in place)",
        }

    def swap_command(self, *, production_site: str, new_thumbprint: str) -> str:
        """The one cmd line :meth:`swap` sends for the server as it is now (read-only: for the plan,
        the lab and the tests that run it with every command failing in turn)."""
        new = canonical_thumbprint(new_thumbprint, key="new_thumbprint")
        _, production, _, currents = self._swap_target(production_site, new)
        before = next((c for c in currents if c.thumbprint != new), currents[0])
        olds = [(before.thumbprint, before.store)] * len(currents)
        return swap_line(self.update_verb, production, currents, new, olds)

    def swap(self, *, production_site: str, new_thumbprint: str, port: int = 443) -> SwapResult:
        new = canonical_thumbprint(new_thumbprint, key="new_thumbprint")
        found, production, binding, currents = self._swap_target(production_site, new)
        before = next((c for c in currents if c.thumbprint != new), currents[0])
        old_thumb, old_store, old_bindings = before.thumbprint, before.store, (binding.text,)
        pool = self._stopped_pool(production)
        planned = self._plan(production, binding, currents, found, new, pool)
        if not planned:
            return SwapResult(production, old_thumb, old_store, old_bindings, new, (), already_done=True)
        stopped = tuple(self._control(s, "stop") for s in sharing_sites(found, production, [binding.text]))
        olds = [(old_thumb, old_store)] * len(currents)
        try:
            if pool:
                self._start_pool(pool)
            if any(c.thumbprint != new or c.store.upper() != "MY" for c in currents):
                line = swap_line(self.update_verb, production, currents, new, olds)
                labels = ", ".join(c.label for c in currents)
                self._run_line(line, what=f"serve {new} on {production.label} ({labels}) and restart it")
            elif not production.started:
                self._control(production, "start")
            after_http = self.http_bindings()
            after = find_site(self.sites(), production.path, host=self.host)
            wrong = [
                f"{c.label} {got.thumbprint if got else '(no binding)'}"
                for c in currents
                if (got := after_http.get(binding_key(c.kind, c.endpoint))) is None or got.thumbprint != new
            ]
            if wrong or not after.started:
                raise VerificationFailed(
                    self.host,
                    f"{after.label} reads back {after.state_name}, {'; '.join(wrong) or 'every endpoint new'} "
                    f"(expected started, {new} on every endpoint)",
                )
        except OpsError as exc:
            self._self_rollback(production, currents, old_thumb, old_store, new, exc)
            raise
        return SwapResult(after, old_thumb, old_store, old_bindings, new, stopped, False, tuple(planned))

    def _restore_certificate(self, currents: list[HttpSslBinding], old: str, old_store: str) -> None:
        now = self.http_bindings()
        for current in currents:
            got = now.get(binding_key(current.kind, current.endpoint))
            if got is None or got.thumbprint != old:
                self._set_http(got, current.kind, current.endpoint, old, old_store)

    def _self_rollback(
        self,
        production: Site,
        currents: list[HttpSslBinding],
        old: str,
        old_store: str,
        new: str,
        cause: OpsError,
    ) -> None:
        """Put the previous certificate back on every endpoint and start the site; always raises."""
        failed_text = f"{production.label} did not come back with the new certificate {new} ({reason(cause)})"
        try:
            self._restore_certificate(currents, old, old_store)
        except OpsError as again:
            labels = ", ".join(c.label for c in currents)
            raise VerificationFailed(
                self.host,
                f"{failed_text}; putting the previous certificate {old} back failed too ({reason(again)})",
                hint=f"put {old} back on {labels} (netsh http add sslcert) and start the site NOW",
            ) from cause
        try:
            restored = find_site(self.sites(), production.path, host=self.host)
            if not restored.started:
                restored = self._control(restored, "start")
        except OpsError as again:
            raise VerificationFailed(
                self.host,
                f"{failed_text}; rolled back to the previous certificate {old}, but the site did not start "
                f"again ({reason(again)}) — the site is DOWN",
                hint="look at the System event log (WAS / W3SVC), fix the cause and start the site in IIS Manager",
            ) from cause
        raise VerificationFailed(
            self.host,
            f"{failed_text}; rolled back to the previous certificate {old} and the site is "
            f"{restored.state_name} again",
            hint="look at the System event log (WAS / W3SVC / HttpEvent) for why, fix it, then run this step again",
        ) from cause

    def _store_of(self, thumb: str) -> str:
        """MY when it holds ``thumb``, else WebHosting (IIS 8+) when that does, else MY (netsh then fails
        and the read-back says so). Read from the registry: ``SystemCertificates\\<store>\\Certificates\\<SHA1>``."""
        if self.read_registry is not None and self.sni:  # WebHosting exists from IIS 8
            for store in ("MY", "WebHosting"):
                key = rf"HKLM\SOFTWARE\Microsoft\SystemCertificates\{store}\Certificates\{thumb}"
                if self.read_registry(key):
                    return store
        return "MY"

    def rollback(
        self,
        *,
        production_site: str,
        old_thumbprint: str,
        secure_bindings: Sequence[str] | str,
        old_cert_source: str = "",
    ) -> SwapResult:
        """The undo of :meth:`swap`: ``old_thumbprint`` back on the production binding (from the store that
        holds it: MY, else WebHosting), the site started. Idempotent. ``old_cert_source`` is IIS 6's (a
        binding's certificate is never inherited on IIS 7+)."""
        old = canonical_thumbprint(old_thumbprint, key="old_thumbprint")
        wanted = [secure_bindings] if isinstance(secure_bindings, str) else list(secure_bindings)
        raws, http, found = self._read()
        production = find_site(found, production_site, host=self.host)
        raw = next(r for r in raws if r.id == production.id)
        texts = {SslBinding.parse(b).text.lower() for b in wanted}
        https = [b for b in raw.https if b.text.lower() in texts] or raw.https[:1]
        keys = endpoints_of(self.sni, https[0], http) if https else []
        if not keys:
            raise PreconditionFailed(
                self.host,
                f"{production.label} has no https binding with an HTTP.sys certificate "
                f"({' '.join(wanted)}) — nothing was changed",
                hint="put the old certificate back in IIS Manager (Bindings → https)",
            )
        currents = [http[k] for k in keys]
        current = currents[0]
        sharing = sharing_sites(found, production, [https[0].text])
        if all(c.thumbprint == old for c in currents) and production.started and not sharing:
            return SwapResult(production, old, current.store, (https[0].text,), old, (), already_done=True)
        planned = [Change(s.label, "state", s.state_name, "stopped") for s in sharing]
        planned += [
            Change(c.label, "SslCertHash", c.thumbprint, old) for c in currents if c.thumbprint != old
        ]
        stopped = tuple(self._control(s, "stop") for s in sharing)
        if any(c.thumbprint != old for c in currents):
            store = self._store_of(old)
            for c in currents:
                if c.thumbprint != old:
                    self._set_http(c, c.kind, c.endpoint, old, store)
            if production.started:
                self._control(production, "stop")
        after = find_site(self.sites(), production.path, host=self.host)
        if not after.started:
            after = self._control(after, "start")
        if after.cert_thumbprint != old:
            raise VerificationFailed(
                self.host,
                f"{after.label} serves {after.cert_thumbprint or '(none)'} after the rollback, not {old}",
            )
        return SwapResult(
            after, current.thumbprint, current.store, (https[0].text,), old, stopped, False, tuple(planned)
        )

    def swap_journal(self, site: Site | str) -> dict[str, Any] | None:
        """None: the IIS 7–10 swap keeps no journal on the server (nothing is read)."""
        return None

    def wait_for_journal(
        self, production: Site, *, new: str, deadline_s: float = 0.0
    ) -> dict[str, Any] | None:
        """None at once: there is no journal to wait for (nothing is read)."""
        return None

    # --- export, checks -------------------------------------------------------------------------------

    def export_certificate(self, site: Site, remote_path: str, *, password: str) -> str:
        raise CapabilityMissing(
            self.host,
            "an IIS.CertObj export on IIS 7+",
            hint="the kit exports with certutil -exportPFX, which exists from Server 2008 on",
        )
