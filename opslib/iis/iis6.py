"""The IIS 6 backend: sites, their certificate binding, start/stop, export — through the metabase.

IIS 6 (Windows Server 2003, the seed's target) is driven through the kit's JScript helper
``opslib/scripts/iis6.js`` (ADSI, ``IIS://localhost/W3SVC``) by one :class:`opslib.iis.iis6_helper.IIS6Helper`
per backend (uploaded once per connection, run with ``cscript``, answers read from its ASCII JSON and
exit codes only); the swap transaction (:mod:`opslib.iis.iis6_swap`) takes the same helper object.
IIS 7+ (HTTP.sys bindings, ``appcmd``) gets its own backend behind :class:`opslib.iis.base.IISBackend`;
:func:`opslib.iis.backend_for` chooses by the probed InetStp MajorVersion.

Seed step 1 (``bind``): the new certificate goes onto the work site as the IIS wizard
would leave it — SSLCertHash, SSLStoreName ``MY``, SecureBindings ``:443:``.
Seed step 2 (``swap``): record the production site's certificate and secure bindings (for
rollback), stop the other started sites sharing its secure binding (the work site), set the new
certificate, start the production site and read everything back; when the production site does not
come back it rolls itself back and says so.
Seed step 3, when certutil has no ``-exportPFX`` (``export_certificate``): ``IIS.CertObj`` exports the
certificate a site is bound to, with its key and chain, to a PFX (docs/windows-behaviour.md W-IIS6-CERTOBJ-EXPORT);
:func:`opslib.ops.export.apply` chooses the site, brings the file back, proves it and deletes it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .. import winerror
from ..errors import (
    CapabilityMissing,
    ParameterError,
    PreconditionFailed,
    VerificationFailed,
)
from . import iis6_swap
from .base import (
    STATE_NAMES,
    Change,
    ReadBackChecks,
    RegistryReader,
    Site,
    SwapResult,
    canonical_thumbprint,
    find_site,
    secure_binding,
    sharing_sites,
    with_expiry,
)
from .iis6_helper import EXIT_ADSI, EXIT_STATE, HELPER, HelperError, IIS6Helper, helper_script, site_from
from .iis6_inherit import read_inheritance

if TYPE_CHECKING:
    from ..winrm import Connection

__all__ = ["HELPER", "IIS6Backend", "helper_script"]


def _bind_changes(target: Site, thumb: str, binding: str) -> list[Change]:
    changes = []
    if target.cert_thumbprint != thumb or target.cert_inherited:
        # An inherited value (W-IIS6-SSLCERTHASH-INHERIT) is replaced by the site's own, even when equal.
        shown = target.cert_described if target.cert_thumbprint else ""
        changes.append(Change(target.label, "SSLCertHash", shown, thumb))
    if target.store_name.upper() != "MY":
        changes.append(Change(target.label, "SSLStoreName", target.store_name, "MY"))
    if target.secure_bindings != (binding,):
        changes.append(Change(target.label, "SecureBindings", " ".join(target.secure_bindings), binding))
    return changes


def _production_binding(host: str, production: Site, port: int) -> str:
    if len(production.secure_bindings) > 1:
        raise PreconditionFailed(
            host,
            f"{production.label} has {len(production.secure_bindings)} secure bindings "
            f"({' '.join(production.secure_bindings)}); the kit swaps sites with exactly one",
            hint="swap this site's certificate in IIS Manager; nothing was changed",
        )
    return production.secure_bindings[0] if production.secure_bindings else secure_binding(port)


def _swap_plan(found: Sequence[Site], production: Site, new: str, binding: str) -> list[Change]:
    changes = [
        Change(s.label, "ServerState", s.state_name, "stopped")
        for s in sharing_sites(found, production, [binding])
    ]
    changes += _bind_changes(production, new, binding)
    if not production.started:
        changes.append(Change(production.label, "ServerState", production.state_name, "started"))
    elif production.cert_thumbprint != new or production.cert_inherited:
        changes.append(Change(production.label, "ServerState", "started", "restarted"))
    return changes


def _code(code: int) -> str:
    """``NTE_BAD_KEYSET 0x80090016``: the symbol and the number, from the one table."""
    return f"{winerror.name(code)} 0x{winerror.hresult(code):08X}"


class IIS6Backend(ReadBackChecks):
    """IIS 6 on one connection: the metabase through ``iis6.js`` (uploaded once, on first use)."""

    name = "IIS 6 (metabase, iis6.js)"
    keeps_swap_journal = True  # the swap is one helper run that keeps its journal on the server

    def __init__(
        self,
        conn: Connection,
        *,
        host: str = "",
        iis_major: int = 6,
        read_registry: RegistryReader | None = None,  # not needed: the helper reads the metabase
    ) -> None:
        self.conn = conn
        self.iis_major = iis_major
        self.host = host or str(getattr(conn, "host", "") or getattr(conn, "url", "") or "server")
        self.helper = IIS6Helper(conn, host=self.host)

    def _binding(self, port: int, host_header: str) -> str:
        """SecureBindings ``:port:``. The kit binds IIS 6 sites without an SSL host header (IIS 6.0
        SP1 can, only with a wildcard certificate and adsutil: not what the seed's wizard does)."""
        if host_header:
            raise CapabilityMissing(
                self.host,
                f"an SSL host header ({host_header}) in the IIS 6 backend",
                hint="bind without a host header (one certificate per IP:port on IIS 6)",
            )
        return secure_binding(port)

    def find_site(self, name: str) -> Site:
        return find_site(self.sites(), name, host=self.host)

    def sites(self, *, expiry: Mapping[str, datetime] | None = None) -> list[Site]:
        """Every web site of the server, ordered by id.

        ``expiry`` (thumbprint → not-after, e.g. from the MY store entries) fills
        :attr:`Site.cert_not_after_utc`.
        """
        found = self.helper.sites()
        return with_expiry(found, expiry) if expiry else found

    def _resolve(self, site: Site | str) -> tuple[list[Site], Site]:
        found = self.sites()
        key = site.path if isinstance(site, Site) else site
        return found, find_site(found, key, host=self.host)

    def plan_bind(
        self, site: Site | str, thumbprint: str, *, port: int = 443, host_header: str = ""
    ) -> list[Change]:
        """What :func:`bind` would change (read-only)."""
        thumb = canonical_thumbprint(thumbprint)
        _, target = self._resolve(site)
        return _bind_changes(target, thumb, self._binding(port, host_header))

    def bind(self, site: Site | str, thumbprint: str, *, port: int = 443, host_header: str = "") -> Site:
        """Seed step 1: bind ``thumbprint`` (in MY) to ``site`` as the IIS wizard would; returns the read-back.

        Sets SSLCertHash, SSLStoreName ``MY`` and SecureBindings ``:<port>:`` (docs/windows-behaviour.md W-IIS6-ADSI-SETCERT);
        does not start the site.
        """
        thumb = canonical_thumbprint(thumbprint)
        binding = self._binding(port, host_header)
        _, target = self._resolve(site)
        if not _bind_changes(target, thumb, binding):
            return target
        after = self._set_cert(target, thumb, binding, what=f"bind {thumb} to {target.label}")
        if after.cert_thumbprint != thumb or after.secure_bindings != (binding,):
            raise VerificationFailed(
                self.host,
                f"{target.label} reads back SSLCertHash {after.cert_thumbprint or '(none)'} / "
                f"SecureBindings {' '.join(after.secure_bindings) or '(none)'}, expected {thumb} / {binding}",
                hint="look at the site in IIS Manager (Directory Security → Server Certificate)",
            )
        return after

    def _set_cert(self, target: Site, thumb: str, binding: str, *, what: str) -> Site:
        try:
            payload = self.helper.run("set-cert", str(target.id), thumb, "MY", binding, what=what)
        except HelperError as exc:
            raise self.helper.command_failed(
                exc, what, f"check {target.label} in IIS Manager; its certificate may be unchanged"
            ) from None
        return site_from(payload["site"])

    def _clear_cert(self, target: Site, *, what: str) -> Site:
        try:
            payload = self.helper.run("clear-cert", str(target.id), what=what)
        except HelperError as exc:
            raise self.helper.command_failed(exc, what, f"check {target.label} in IIS Manager") from None
        return site_from(payload["site"])

    def _control(self, target: Site, verb: str) -> Site:
        """Start/stop one site; a site that does not reach the state raises VerificationFailed."""
        what = f"{verb} {target.label}"
        try:
            payload = self.helper.run(verb, str(target.id), what=what)
        except HelperError as exc:
            if exc.exit_code in (EXIT_STATE, EXIT_ADSI) and "state" in exc.error:
                state = int(exc.error["state"])
                raise VerificationFailed(
                    self.host,
                    f"{target.label} did not {verb}: ServerState is {STATE_NAMES.get(state, state)} "
                    f"(ADSI {exc.number}: {exc.description})",
                    hint="look at the System event log (source W3SVC) on the server, e.g. event 1007 for a "
                    "binding another site or program already uses",
                ) from None
            raise self.helper.command_failed(exc, what, f"check {target.label} in IIS Manager") from None
        return site_from(payload["site"])

    def export_certificate(self, site: Site, remote_path: str, *, password: str) -> str:
        """Export the certificate bound to ``site`` with its private key and chain to ``remote_path``
        (a PFX protected by ``password``) through ``IIS.CertObj`` (helper verb ``export-pfx``,
        docs/windows-behaviour.md W-IIS6-CERTOBJ-EXPORT). Returns the thumbprint the helper read from the site's SSLCertHash.

        The server-side file is the caller's to bring back, prove and delete
        (:func:`opslib.ops.export.apply` does all three). ``password`` is registered for redaction
        before the command is sent and travels only inside this one command line; the one quoting
        function refuses one that cmd cannot carry (``%``, ``!``, ``"`` …). Failures:
        :class:`PreconditionFailed` for a key created non-exportable (NTE_BAD_KEY_STATE), a missing key
        (NTE_BAD_KEYSET) or no certificate on the site (MD_ERROR_DATA_NOT_FOUND / CRYPT_E_NOT_FOUND);
        :class:`RemoteCommandFailed` for anything else.
        """
        host = self.host
        what = f"export the certificate of {site.label} to a PFX (IIS.CertObj)"
        try:
            payload = self.helper.run(
                "export-pfx",
                str(site.id),
                remote_path,
                password,
                what=what,
                secrets=[password],
                names=["site id", "remote path", "PFX password"],
                timeout_s=120,
            )
        except HelperError as exc:
            try:
                number = int(exc.number, 16)
            except ValueError:
                number = 0
            thumb = site.cert_thumbprint or "(none)"
            if number == winerror.NTE_BAD_KEY_STATE:
                raise PreconditionFailed(
                    host,
                    f"the private key of {thumb} (bound to {site.label}) was created non-exportable, so Windows "
                    f"refuses to export it (IIS.CertObj: {_code(winerror.NTE_BAD_KEY_STATE)}) — nothing was changed",
                    hint="keep the server itself as the key's only copy, or make a new request with an "
                    "exportable key (IIS wizard: 'Mark the key as exportable') and have the certificate re-issued",
                ) from None
            if number == winerror.NTE_BAD_KEYSET:
                raise PreconditionFailed(
                    host,
                    f"the private key of {thumb} (bound to {site.label}) is missing (IIS.CertObj: "
                    f"{_code(winerror.NTE_BAD_KEYSET)}) — nothing was changed",
                    hint=f"repair the link with `certutil -repairstore MY {thumb}` if the key exists on this server",
                ) from None
            if number in (winerror.MD_ERROR_DATA_NOT_FOUND, winerror.CRYPT_E_NOT_FOUND):
                raise PreconditionFailed(
                    host,
                    f"{site.label} has no certificate IIS.CertObj can export (ADSI {exc.number}: "
                    f"{exc.description}) — nothing was changed",
                    hint="bind the certificate to a site first (steps 1–2), then export again",
                ) from None
            raise self.helper.command_failed(
                exc,
                what,
                "nothing was changed; export the certificate by hand in IIS Manager if this persists",
            ) from None
        return str(payload.get("cert_hash", "")).upper()

    def start(self, site: Site | str) -> Site:
        """Start a site (ADSI ``Start()``) and wait until ServerState is 2; returns the read-back."""
        _, target = self._resolve(site)
        return self._control(target, "start")

    def stop(self, site: Site | str) -> Site:
        """Stop a site (ADSI ``Stop()``) and wait until ServerState is 4; returns the read-back."""
        _, target = self._resolve(site)
        return self._control(target, "stop")

    def plan_swap(self, *, production_site: str, new_thumbprint: str, port: int = 443) -> list[Change]:
        """What :func:`swap` would change, from → to (read-only; an empty list means already done)."""
        host = self.host
        new = canonical_thumbprint(new_thumbprint, key="new_thumbprint")
        found = self.sites()
        production = find_site(found, production_site, host=host)
        return _swap_plan(found, production, new, _production_binding(host, production, port))

    def swap(self, *, production_site: str, new_thumbprint: str, port: int = 443) -> SwapResult:
        """Seed step 2: put ``new_thumbprint`` on the production site and make it the one started site.

        One server-side transaction (helper verb ``swap``): in a single cscript invocation the helper
        writes its journal (``%SystemRoot%\\Temp\\opslib-swap-N.json``) with the old certificate and
        secure bindings, stops every other started site sharing the production secure binding, sets
        the certificate, restarts the production site and waits for ServerState 2 up to
        :data:`SWAP_START_TIMEOUT_S`; when the site does not come back (or anything throws) it puts the
        old SSLCertHash/SSLStoreName/SecureBindings back and starts the site again — on the server,
        whatever happens to this client. The answer is read from the helper's JSON, or, when the
        connection is lost meanwhile, from the journal (:meth:`swap_journal`).
        A restored site raises :class:`VerificationFailed` saying so; one that stays down says DOWN.
        Idempotent: nothing to do → ``SwapResult.already_done``.
        """
        host = self.host
        new = canonical_thumbprint(new_thumbprint, key="new_thumbprint")
        found = self.sites()
        production = find_site(found, production_site, host=host)
        old_thumb, old_store, old_bindings = (
            production.cert_thumbprint,
            production.store_name,
            production.secure_bindings,
        )
        binding = _production_binding(host, production, port)
        planned = _swap_plan(found, production, new, binding)
        if not planned:
            return SwapResult(production, old_thumb, old_store, old_bindings, new, (), already_done=True)
        stop_ids = ",".join(str(s.id) for s in sharing_sites(found, production, [binding])) or "-"
        answer = iis6_swap.transaction(self.helper, production, new, binding, stop_ids)
        if not answer.get("ok"):
            site = answer.get("site")
            after = site_from(site) if isinstance(site, dict) else production
            iis6_swap.raise_failed(self.helper, production, old_thumb, new, answer, after)
        after = find_site(self.sites(), production.path, host=host)
        if not after.started or after.cert_thumbprint != new or after.cert_inherited:
            raise VerificationFailed(
                host,
                f"{after.label} reads back ServerState {after.state_name}, SSLCertHash "
                f"{after.cert_described} after the swap (expected started, its own {new})",
                hint="look at the site in IIS Manager; rollback.yaml in the run folder puts the old certificate back",
            )
        still = sharing_sites(self.sites(), after, after.secure_bindings)
        if still:
            raise VerificationFailed(
                host,
                "other sites are still started on the production secure binding: "
                + ", ".join(s.label for s in still),
                hint="stop them in IIS Manager; the production site is started with the new certificate",
            )
        return SwapResult(
            production=after,
            old_thumbprint=old_thumb,
            old_store_name=old_store,
            old_secure_bindings=old_bindings,
            new_thumbprint=new,
            stopped_sites=tuple(site_from(s) for s in answer.get("stopped") or ()),
            already_done=False,
            changes=tuple(planned),
        )

    def swap_journal(self, site: Site | str) -> dict[str, Any] | None:
        """What the last ``swap`` of ``site`` wrote to its journal on the server (None: no journal)."""
        return iis6_swap.read_journal(self.helper, site)

    def wait_for_journal(
        self, production: Site, *, new: str, deadline_s: float = 0.0
    ) -> dict[str, Any] | None:
        """Poll the journal until the swap of ``new`` has ended (phase done/restored/failed)."""
        return iis6_swap.wait_for_journal(self.helper, production, new=new, deadline_s=deadline_s)

    def _restore_certificate(self, production: Site, old_thumb: str, bindings: Sequence[str]) -> Site:
        current = find_site(self.sites(), production.path, host=self.host)
        if old_thumb:
            if current.cert_thumbprint != old_thumb or current.secure_bindings != tuple(bindings[:1]):
                current = self._set_cert(
                    current, old_thumb, bindings[0], what=f"roll back {current.label} to {old_thumb}"
                )
        elif current.cert_thumbprint:
            current = self._clear_cert(current, what=f"roll back {current.label} to no certificate")
        if current.cert_thumbprint != old_thumb:
            raise VerificationFailed(
                self.host, f"{current.label} reads back SSLCertHash {current.cert_thumbprint or '(none)'}"
            )
        return current

    def _restart(self, production: Site, bindings: Sequence[str]) -> Site:
        found = self.sites()
        current = find_site(found, production.path, host=self.host)
        for other in sharing_sites(found, current, bindings):
            self._control(other, "stop")
        if not current.started:
            current = self._control(current, "start")
        return current

    def rollback(
        self,
        *,
        production_site: str,
        old_thumbprint: str,
        secure_bindings: Sequence[str] | str,
        old_cert_source: str = "",
    ) -> SwapResult:
        """Put the previous certificate back on the production site and start it (the undo of :func:`swap`).

        Other started sites sharing the secure binding are stopped first; a started production site is
        restarted when its certificate changes. Idempotent. ``old_cert_source`` "inherited" (step 2's
        ``old_cert_source``): the site inherited ``old_thumbprint`` from /LM/W3SVC, so inheritance is
        restored instead (:meth:`_rollback_to_inherited`).
        """
        host = self.host
        old = canonical_thumbprint(old_thumbprint, key="old_thumbprint")
        bindings = [secure_bindings] if isinstance(secure_bindings, str) else list(secure_bindings)
        if not bindings or not re.fullmatch(r"[0-9.]*:[0-9]{1,5}:", bindings[0]):
            raise ParameterError(
                "secure_bindings", f"{secure_bindings!r}: expected a secure binding such as :443:"
            )
        found = self.sites()
        production = find_site(found, production_site, host=host)
        sharing = sharing_sites(found, production, bindings)
        if old_cert_source == "inherited":
            return self._rollback_to_inherited(production, old, bindings, sharing)
        if production.started and production.cert_thumbprint == old and not sharing:
            return SwapResult(
                production, old, production.store_name, production.secure_bindings, old, (), already_done=True
            )
        planned = [Change(s.label, "ServerState", s.state_name, "stopped") for s in sharing]
        planned += _bind_changes(production, old, bindings[0])
        stopped = tuple(self._control(s, "stop") for s in sharing)
        if production.started and production.cert_thumbprint != old:
            self._control(production, "stop")
        self._restore_certificate(production, old, bindings)
        after = self._restart(production, bindings)
        if not after.started or after.cert_thumbprint != old:
            raise VerificationFailed(
                host,
                f"{after.label} reads back ServerState {after.state_name}, SSLCertHash "
                f"{after.cert_thumbprint or '(none)'} after the rollback (expected started, {old})",
            )
        return SwapResult(
            production=after,
            old_thumbprint=production.cert_thumbprint,
            old_store_name=production.store_name,
            old_secure_bindings=production.secure_bindings,
            new_thumbprint=old,
            stopped_sites=stopped,
            already_done=False,
            changes=tuple(planned),
        )

    def _rollback_to_inherited(
        self, production: Site, old: str, bindings: Sequence[str], sharing: Sequence[Site]
    ) -> SwapResult:
        """The site inherited ``old`` from /LM/W3SVC before the renewal (W-IIS6-SSLCERTHASH-INHERIT): clear
        its own value so that it inherits again, read back that the effective value is ``old`` and inherited.
        When W3SVC holds another certificate now, clearing would serve that one: stop before any change,
        naming both."""
        host = self.host
        wanted = (bindings[0],)
        if (
            production.started
            and production.cert_thumbprint == old
            and production.cert_inherited
            and production.secure_bindings == wanted
            and not sharing
        ):
            return SwapResult(
                production, old, production.store_name, production.secure_bindings, old, (), already_done=True
            )
        service = read_inheritance(
            self.conn, host=host, what=f"read the certificate {production.label} inherited from W3SVC"
        ).service_thumbprint
        if service != old:
            raise PreconditionFailed(
                host,
                f"{production.label} inherited certificate {old} from /LM/W3SVC before the renewal, but W3SVC "
                f"now holds {service or '(none)'}: clearing the site's own value would serve that instead",
                hint=f"nothing was changed; decide by hand in IIS Manager: give {production.label} certificate "
                f"{old} as its own (Directory Security → Server Certificate), or set the Web Sites folder's "
                f"certificate back to {old} and run the rollback again",
            )
        planned = [Change(s.label, "ServerState", s.state_name, "stopped") for s in sharing]
        planned.append(
            Change(
                production.label, "SSLCertHash", production.cert_described, f"{old} (inherited from W3SVC)"
            )
        )
        if production.secure_bindings != wanted:
            planned.append(
                Change(production.label, "SecureBindings", " ".join(production.secure_bindings), bindings[0])
            )
        stopped = tuple(self._control(s, "stop") for s in sharing)
        if production.started and production.cert_thumbprint != old:
            self._control(production, "stop")
        current = production
        if current.secure_bindings != wanted:  # the binding, with the old certificate as its own for a moment
            current = self._set_cert(current, old, bindings[0], what=f"roll back {current.label}'s binding")
        current = self._clear_cert(
            current, what=f"roll back {current.label}: clear its own certificate (inherit {old} from W3SVC)"
        )
        after = self._restart(current, bindings)
        if not after.started or after.cert_thumbprint != old or not after.cert_inherited:
            raise VerificationFailed(
                host,
                f"{after.label} reads back ServerState {after.state_name}, SSLCertHash {after.cert_described} after "
                f"the rollback (expected started, {old} inherited from W3SVC)",
            )
        return SwapResult(
            production=after,
            old_thumbprint=production.cert_thumbprint,
            old_store_name=production.store_name,
            old_secure_bindings=production.secure_bindings,
            new_thumbprint=old,
            stopped_sites=stopped,
            already_done=False,
            changes=tuple(planned),
        )
