"""IIS sites, their certificate binding, start/stop — one interface, per-version backends.

IIS 6 (Windows Server 2003, the seed's target) is driven through the kit's JScript helper
``opslib/scripts/iis6.js`` (ADSI, ``IIS://localhost/W3SVC``), uploaded once per connection into
``conn.temp_dir`` and run with ``cscript //nologo //E:jscript``. The helper prints ASCII-only JSON
and decides nothing by localized text; this module reads only its JSON and exit codes
(0 ok, 1 an ADSI call failed, 2 bad arguments, 3 the site did not reach the requested state).
IIS 7+ (HTTP.sys bindings, ``appcmd``/PowerShell; ``shared/reference/windows-commands.md`` §4) will
live behind the same functions; the version comes from :func:`opslib.windows.probe`.

Seed step 1 (``bind_certificate``): the new certificate goes onto the work site as the IIS wizard
would leave it — SSLCertHash, SSLStoreName ``MY``, SecureBindings ``:443:``.
Seed step 2 (``swap``): record the production site's certificate and secure bindings (for
rollback), stop the other started sites sharing its secure binding (the work site), set the new
certificate, start the production site and read everything back; when the production site does not
come back it rolls itself back and says so.
Seed step 3, when certutil has no ``-exportPFX`` (``export_certificate``): ``IIS.CertObj`` exports the
certificate a site is bound to, with its key and chain, to a PFX (windows-commands.md §5);
:func:`opslib.windows.export_pfx` chooses the site, brings the file back, proves it and deletes it.
"""

from __future__ import annotations

import json
import re
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from importlib import resources
from typing import TYPE_CHECKING, Any

from .errors import (
    CapabilityMissing,
    OpsError,
    ParameterError,
    PreconditionFailed,
    RemoteCommandFailed,
    SiteNotFound,
    VerificationFailed,
)
from .windows import Capabilities, Change, InstallResult, probe

if TYPE_CHECKING:
    from ._transport import CommandResult, Connection

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

HELPER = "iis6.js"
# Helper exit codes (see the header of opslib/scripts/iis6.js).
_EXIT_ADSI, _EXIT_USAGE, _EXIT_STATE = 1, 2, 3
_NOT_RECOGNIZED = 9009  # cmd: "'cscript' is not recognized …"

_THUMB = re.compile(r"^[0-9A-F]{40}$")


def helper_script() -> bytes:
    """The packaged IIS 6 helper, byte for byte as it is uploaded."""
    return (resources.files("opslib") / "scripts" / HELPER).read_bytes()


# --- facts -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    """One IIS web site (IIS 6: metabase node ``/LM/W3SVC/<id>``)."""

    id: int
    name: str  # ServerComment (the description IIS Manager shows)
    state: int  # ServerState
    state_name: str
    bindings: tuple[str, ...]  # ServerBindings "IP:port:host"
    secure_bindings: tuple[str, ...]  # SecureBindings "IP:port:"
    cert_thumbprint: str  # SSLCertHash as 40 upper-case hex digits, "" when none
    store_name: str  # SSLStoreName ("MY")
    cert_not_after_utc: datetime | None = None  # the bound certificate's expiry, when known

    @property
    def path(self) -> str:
        return f"W3SVC/{self.id}"

    @property
    def label(self) -> str:
        return f'{self.path} "{self.name}"'

    @property
    def started(self) -> bool:
        return self.state == STARTED

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
    """What :func:`swap` (or :func:`rollback`) did, with everything needed to undo it."""

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


# --- helper plumbing -------------------------------------------------------------------------------


class _HelperError(Exception):
    """The helper answered with its error JSON (exit 1/2/3)."""

    def __init__(self, exit_code: int, error: Mapping[str, Any], result: CommandResult) -> None:
        super().__init__(str(error.get("description", "")))
        self.exit_code = exit_code
        self.error = dict(error)
        self.result = result

    @property
    def number(self) -> str:
        return str(self.error.get("number", ""))

    @property
    def description(self) -> str:
        return str(self.error.get("description", ""))


_helper_paths: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def _host(conn: Connection) -> str:
    return str(getattr(conn, "host", "") or getattr(conn, "url", "") or "server")


def _require_iis6(conn: Connection) -> None:
    require_backend(probe(conn))  # cached per connection


def require_backend(capabilities: Capabilities) -> None:
    """Refuse a server this module has no backend for (anything but IIS 6), before anything changes.

    On IIS 7+ the certificate lives in the HTTP.sys binding, not in the site (windows-commands.md §4,
    [V]); the IIS 6 helper might still reach such a server through the IIS 6 Metabase Compatibility
    feature [U] and "succeed" without changing what is served, so the kit stops instead. Called by
    every helper verb and by step 0 right after :func:`opslib.windows.probe`.
    """
    major, minor = capabilities.iis_major, capabilities.iis_minor
    if major == 6:
        return
    if major <= 0:
        raise CapabilityMissing(
            capabilities.host,
            "IIS (HKLM\\SOFTWARE\\Microsoft\\InetStp MajorVersion not found)",
            hint="check that IIS is installed on this server",
        )
    if major >= 7:
        raise CapabilityMissing(
            capabilities.host,
            f"IIS 6 (it runs IIS {major}.{minor}; IIS 7+ backend not implemented yet)",
            hint="renew this server's certificate by hand (IIS Manager → Server Certificates → Complete "
            "Certificate Request, then the site's https binding); the kit drives IIS 6 only",
        )
    raise CapabilityMissing(
        capabilities.host,
        f"IIS 6 (it runs IIS {major}.{minor}, which this kit does not support)",
        hint="renew this server's certificate by hand in IIS Manager",
    )


def _helper_path(conn: Connection) -> str:
    """Upload the helper once per connection (into ``conn.temp_dir``) and return its remote path."""
    path = _helper_paths.get(conn)
    if path is None:
        path = str(conn.temp_dir).rstrip("\\") + "\\" + HELPER
        conn.upload(helper_script(), path)
        _helper_paths[conn] = path
    return path


def _run_helper(
    conn: Connection,
    verb: str,
    *args: str,
    what: str,
    secrets: Sequence[str] = (),
    names: Sequence[str] = (),
    timeout_s: float = 60,
) -> dict[str, Any]:
    """Run one helper verb; return its JSON, raise :class:`_HelperError` for its error JSON.

    ``secrets`` (e.g. the PFX password of ``export-pfx``) are registered for redaction before the
    command is sent; ``names`` name the verb's arguments in a refused-argument message.
    """
    _require_iis6(conn)
    path = _helper_path(conn)
    # cscript host options //nologo (no banner) and //E:jscript (engine), WSH 5.6 on 2003:
    # https://learn.microsoft.com/en-us/previous-versions/windows/it-pro/windows-server-2003/cc738482(v=ws.10)
    argv = ["cscript", "//nologo", "//E:jscript", path, verb, *args]
    result = conn.run(
        argv,
        check=False,
        what=what,
        timeout_s=timeout_s,
        secrets=secrets,
        names=["cscript", "", "", "helper", "verb", *names] if names else None,
    )
    payload = _parse_json(result.stdout)
    if result.exit_code == _NOT_RECOGNIZED:
        raise CapabilityMissing(_host(conn), "cscript.exe (Windows Script Host)", hint="install WSH 5.6")
    if payload is None:
        raise RemoteCommandFailed(
            host=_host(conn),
            command=result.command_line,
            exit_code=result.exit_code,
            stdout=result.stdout_text,
            stderr=result.stderr_text,
            what=f"{what}: the IIS helper printed no JSON",
            hint="run the same cscript command on the server and look at its output; nothing was parsed",
        )
    if result.exit_code != 0:
        error = payload.get("error")
        if not isinstance(error, dict):
            error = {"number": "", "description": "non-zero exit without an error object"}
        raise _HelperError(result.exit_code, error, result)
    return payload


def _parse_json(stdout: bytes) -> dict[str, Any] | None:
    # The helper writes one ASCII JSON line; take the last line that parses as an object.
    for line in reversed(stdout.decode("ascii", errors="replace").splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


def _command_failed(conn: Connection, exc: _HelperError, what: str, hint: str) -> RemoteCommandFailed:
    return RemoteCommandFailed(
        host=_host(conn),
        command=exc.result.command_line,
        exit_code=exc.exit_code,
        stdout=f"ADSI error {exc.number}: {exc.description}",
        stderr="",
        what=what,
        hint=hint,
    )


def _site_from(data: Mapping[str, Any]) -> Site:
    state = int(data.get("state", 0))
    return Site(
        id=int(data["id"]),
        name=str(data.get("name", "")),
        state=state,
        state_name=STATE_NAMES.get(state, f"unknown ({state})"),
        bindings=tuple(str(b) for b in data.get("bindings", ())),
        secure_bindings=tuple(str(b) for b in data.get("secure_bindings", ())),
        cert_thumbprint=str(data.get("cert_hash", "")).upper(),
        store_name=str(data.get("store_name", "")),
    )


def _thumbprint(value: str, *, key: str = "thumbprint") -> str:
    thumb = re.sub(r"[\s:]", "", value or "").upper()
    if not _THUMB.match(thumb):
        raise ParameterError(key, f"{value!r} is not a SHA-1 thumbprint (40 hexadecimal digits)")
    return thumb


def _endpoint(binding: str) -> tuple[str, str]:
    ip, _, rest = binding.partition(":")
    return ip, rest.split(":")[0]


def _shares_endpoint(a: Iterable[str], b: Iterable[str]) -> bool:
    """Whether two SecureBindings lists meet on a port (wildcard IP meets any IP — conservative)."""
    for ip1, port1 in map(_endpoint, a):
        for ip2, port2 in map(_endpoint, b):
            if port1 == port2 and (ip1 == ip2 or not ip1 or not ip2):
                return True
    return False


# --- reading -----------------------------------------------------------------------------------------


def sites(conn: Connection, *, expiry: Mapping[str, datetime] | None = None) -> list[Site]:
    """Every web site of the server, ordered by id.

    ``expiry`` (thumbprint → not-after, e.g. from the MY store entries) fills
    :attr:`Site.cert_not_after_utc`.
    """
    payload = _safe_helper(conn, "list", what="list IIS sites")
    found = sorted((_site_from(s) for s in payload.get("sites", [])), key=lambda s: s.id)
    return with_expiry(found, expiry) if expiry else found


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


def _safe_helper(conn: Connection, verb: str, *args: str, what: str) -> dict[str, Any]:
    try:
        return _run_helper(conn, verb, *args, what=what)
    except _HelperError as exc:
        raise _command_failed(
            conn, exc, what, "nothing was changed by the kit; check IIS on the server"
        ) from None


def _resolve(conn: Connection, site: Site | str) -> tuple[list[Site], Site]:
    found = sites(conn)
    key = site.path if isinstance(site, Site) else site
    return found, find_site(found, key, host=_host(conn))


# --- changing: one site -----------------------------------------------------------------------------


def _secure_binding(port: int) -> str:
    if not 0 < port < 65536:
        raise ParameterError("ssl_port", f"{port} is not a TCP port")
    return f":{port}:"


def plan_bind(conn: Connection, site: Site | str, thumbprint: str, *, port: int = 443) -> list[Change]:
    """What :func:`bind_certificate` would change (read-only)."""
    thumb = _thumbprint(thumbprint)
    _, target = _resolve(conn, site)
    return _bind_changes(target, thumb, _secure_binding(port))


def _bind_changes(target: Site, thumb: str, binding: str) -> list[Change]:
    changes = []
    if target.cert_thumbprint != thumb:
        changes.append(Change(target.label, "SSLCertHash", target.cert_thumbprint, thumb))
    if target.store_name.upper() != "MY":
        changes.append(Change(target.label, "SSLStoreName", target.store_name, "MY"))
    if target.secure_bindings != (binding,):
        changes.append(Change(target.label, "SecureBindings", " ".join(target.secure_bindings), binding))
    return changes


def bind_certificate(conn: Connection, site: Site | str, thumbprint: str, *, port: int = 443) -> Site:
    """Seed step 1: bind ``thumbprint`` (in MY) to ``site`` as the IIS wizard would; returns the read-back.

    Sets SSLCertHash, SSLStoreName ``MY`` and SecureBindings ``:<port>:`` (windows-commands.md §4);
    does not start the site.
    """
    thumb = _thumbprint(thumbprint)
    binding = _secure_binding(port)
    _, target = _resolve(conn, site)
    if not _bind_changes(target, thumb, binding):
        return target
    after = _set_cert(conn, target, thumb, binding, what=f"bind {thumb} to {target.label}")
    if after.cert_thumbprint != thumb or after.secure_bindings != (binding,):
        raise VerificationFailed(
            _host(conn),
            f"{target.label} reads back SSLCertHash {after.cert_thumbprint or '(none)'} / "
            f"SecureBindings {' '.join(after.secure_bindings) or '(none)'}, expected {thumb} / {binding}",
            hint="look at the site in IIS Manager (Directory Security → Server Certificate)",
        )
    return after


def _set_cert(conn: Connection, target: Site, thumb: str, binding: str, *, what: str) -> Site:
    try:
        payload = _run_helper(conn, "set-cert", str(target.id), thumb, "MY", binding, what=what)
    except _HelperError as exc:
        raise _command_failed(
            conn, exc, what, f"check {target.label} in IIS Manager; its certificate may be unchanged"
        ) from None
    return _site_from(payload["site"])


def _clear_cert(conn: Connection, target: Site, *, what: str) -> Site:
    try:
        payload = _run_helper(conn, "clear-cert", str(target.id), what=what)
    except _HelperError as exc:
        raise _command_failed(conn, exc, what, f"check {target.label} in IIS Manager") from None
    return _site_from(payload["site"])


def _control(conn: Connection, target: Site, verb: str) -> Site:
    """Start/stop one site; a site that does not reach the state raises VerificationFailed."""
    what = f"{verb} {target.label}"
    try:
        payload = _run_helper(conn, verb, str(target.id), what=what)
    except _HelperError as exc:
        if exc.exit_code in (_EXIT_STATE, _EXIT_ADSI) and "state" in exc.error:
            state = int(exc.error["state"])
            raise VerificationFailed(
                _host(conn),
                f"{target.label} did not {verb}: ServerState is {STATE_NAMES.get(state, state)} "
                f"(ADSI {exc.number}: {exc.description})",
                hint="look at the System event log (source W3SVC) on the server, e.g. event 1007 for a "
                "binding another site or program already uses",
            ) from None
        raise _command_failed(conn, exc, what, f"check {target.label} in IIS Manager") from None
    return _site_from(payload["site"])


# HRESULTs of the IIS.CertObj export (MS-IMSA ExportToBlob return values; NTE_* from winerror.h).
NTE_BAD_KEY_STATE = 0x8009000B
NTE_BAD_KEYSET = 0x80090016
CRYPT_E_NOT_FOUND = 0x80092004
MD_ERROR_DATA_NOT_FOUND = 0x800CC801


def export_certificate(conn: Connection, site: Site, remote_path: str, *, password: str) -> str:
    """Export the certificate bound to ``site`` with its private key and chain to ``remote_path``
    (a PFX protected by ``password``) through ``IIS.CertObj`` (helper verb ``export-pfx``,
    windows-commands.md §5). Returns the thumbprint the helper read from the site's SSLCertHash.

    The server-side file is the caller's to bring back, prove and delete
    (:func:`opslib.windows.export_pfx` does all three). ``password`` is registered for redaction
    before the command is sent and travels only inside this one command line; the one quoting
    function refuses one that cmd cannot carry (``%``, ``!``, ``"`` …). Failures:
    :class:`PreconditionFailed` for a key created non-exportable (NTE_BAD_KEY_STATE), a missing key
    (NTE_BAD_KEYSET) or no certificate on the site (MD_ERROR_DATA_NOT_FOUND / CRYPT_E_NOT_FOUND);
    :class:`RemoteCommandFailed` for anything else.
    """
    host = _host(conn)
    what = f"export the certificate of {site.label} to a PFX (IIS.CertObj)"
    try:
        payload = _run_helper(
            conn,
            "export-pfx",
            str(site.id),
            remote_path,
            password,
            what=what,
            secrets=[password],
            names=["site id", "remote path", "PFX password"],
            timeout_s=120,
        )
    except _HelperError as exc:
        try:
            number = int(exc.number, 16)
        except ValueError:
            number = 0
        thumb = site.cert_thumbprint or "(none)"
        if number == NTE_BAD_KEY_STATE:
            raise PreconditionFailed(
                host,
                f"the private key of {thumb} (bound to {site.label}) was created non-exportable, so Windows "
                "refuses to export it (IIS.CertObj: NTE_BAD_KEY_STATE 0x8009000B) — nothing was changed",
                hint="keep the server itself as the key's only copy, or make a new request with an "
                "exportable key (IIS wizard: 'Mark the key as exportable') and have the certificate re-issued",
            ) from None
        if number == NTE_BAD_KEYSET:
            raise PreconditionFailed(
                host,
                f"the private key of {thumb} (bound to {site.label}) is missing (IIS.CertObj: NTE_BAD_KEYSET "
                "0x80090016) — nothing was changed",
                hint=f"repair the link with `certutil -repairstore MY {thumb}` if the key exists on this server",
            ) from None
        if number in (MD_ERROR_DATA_NOT_FOUND, CRYPT_E_NOT_FOUND):
            raise PreconditionFailed(
                host,
                f"{site.label} has no certificate IIS.CertObj can export (ADSI {exc.number}: "
                f"{exc.description}) — nothing was changed",
                hint="bind the certificate to a site first (steps 1–2), then export again",
            ) from None
        raise _command_failed(
            conn,
            exc,
            what,
            "nothing was changed; export the certificate by hand in IIS Manager if this persists",
        ) from None
    return str(payload.get("cert_hash", "")).upper()


def start_site(conn: Connection, site: Site | str) -> Site:
    """Start a site (ADSI ``Start()``) and wait until ServerState is 2; returns the read-back."""
    _, target = _resolve(conn, site)
    return _control(conn, target, "start")


def stop_site(conn: Connection, site: Site | str) -> Site:
    """Stop a site (ADSI ``Stop()``) and wait until ServerState is 4; returns the read-back."""
    _, target = _resolve(conn, site)
    return _control(conn, target, "stop")


# --- changing: the swap (seed step 2) -----------------------------------------------------------------


def _sharing(found: Sequence[Site], production: Site, bindings: Sequence[str]) -> list[Site]:
    """The other started sites whose secure bindings meet ``bindings`` (the work site, typically)."""
    return [
        s
        for s in found
        if s.id != production.id and s.started and _shares_endpoint(s.secure_bindings, bindings)
    ]


def _production_binding(host: str, production: Site, port: int) -> str:
    if len(production.secure_bindings) > 1:
        raise PreconditionFailed(
            host,
            f"{production.label} has {len(production.secure_bindings)} secure bindings "
            f"({' '.join(production.secure_bindings)}); the kit swaps sites with exactly one",
            hint="swap this site's certificate in IIS Manager; nothing was changed",
        )
    return production.secure_bindings[0] if production.secure_bindings else _secure_binding(port)


def _swap_plan(found: Sequence[Site], production: Site, new: str, binding: str) -> list[Change]:
    changes = [
        Change(s.label, "ServerState", s.state_name, "stopped")
        for s in _sharing(found, production, [binding])
    ]
    changes += _bind_changes(production, new, binding)
    if not production.started:
        changes.append(Change(production.label, "ServerState", production.state_name, "started"))
    elif production.cert_thumbprint != new:
        changes.append(Change(production.label, "ServerState", "started", "restarted"))
    return changes


def plan_swap(
    conn: Connection, *, production_site: str, new_thumbprint: str, port: int = 443
) -> list[Change]:
    """What :func:`swap` would change, from → to (read-only; an empty list means already done)."""
    host = _host(conn)
    new = _thumbprint(new_thumbprint, key="new_thumbprint")
    found = sites(conn)
    production = find_site(found, production_site, host=host)
    return _swap_plan(found, production, new, _production_binding(host, production, port))


def swap(conn: Connection, *, production_site: str, new_thumbprint: str, port: int = 443) -> SwapResult:
    """Seed step 2: put ``new_thumbprint`` on the production site and make it the one started site.

    Order (windows-commands.md §4): record the old certificate and secure bindings; stop every other
    started site sharing the production secure binding; set the certificate; (re)start the
    production site; read back. A started production site is stopped and started again so that the
    new certificate is what Schannel serves (IIS 6 may also pick up a metabase change on a running
    site [U]; the restart makes it certain, and is the moment the seed's step 2.8 checks).
    If the production site does not come back (ServerState ≠ 2) the previous certificate is put
    back and the site started again, then :class:`VerificationFailed` says so.
    Idempotent: nothing to do → ``SwapResult.already_done``.
    """
    host = _host(conn)
    new = _thumbprint(new_thumbprint, key="new_thumbprint")
    found = sites(conn)
    production = find_site(found, production_site, host=host)
    # Rollback data first: the previous certificate, store and secure bindings.
    old_thumb, old_store, old_bindings = (
        production.cert_thumbprint,
        production.store_name,
        production.secure_bindings,
    )
    binding = _production_binding(host, production, port)
    planned = _swap_plan(found, production, new, binding)
    if not planned:
        return SwapResult(production, old_thumb, old_store, old_bindings, new, (), already_done=True)

    stopped = tuple(_control(conn, s, "stop") for s in _sharing(found, production, [binding]))
    try:
        if _bind_changes(production, new, binding):
            set_back = _set_cert(conn, production, new, binding, what=f"set {new} on {production.label}")
            if set_back.cert_thumbprint != new:
                raise VerificationFailed(
                    host, f"{production.label} reads back SSLCertHash {set_back.cert_thumbprint}, not {new}"
                )
        if production.started and production.cert_thumbprint != new:
            _control(conn, production, "stop")
        _control(conn, production, "start")
        after = find_site(sites(conn), production.path, host=host)
        if not after.started or after.cert_thumbprint != new:
            raise VerificationFailed(
                host,
                f"{after.label} reads back ServerState {after.state_name}, SSLCertHash "
                f"{after.cert_thumbprint or '(none)'} (expected started, {new})",
            )
    except OpsError as exc:
        _self_rollback(conn, production, old_thumb, old_bindings or (binding,), new, exc)
        raise  # not reached: _self_rollback always raises
    still = _sharing(sites(conn), after, after.secure_bindings)
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
        stopped_sites=stopped,
        already_done=False,
        changes=tuple(planned),
    )


def _reason(exc: OpsError) -> str:
    return str(getattr(exc, "problem", "") or exc)


def _self_rollback(
    conn: Connection, production: Site, old_thumb: str, bindings: Sequence[str], new: str, cause: OpsError
) -> None:
    """Put the previous certificate back and start the site again; always raises VerificationFailed."""
    host = _host(conn)
    failed = f"{production.label} did not come back with the new certificate {new} ({_reason(cause)})"
    old_label = old_thumb or "(no certificate)"
    try:
        _restore_certificate(conn, production, old_thumb, bindings)
    except OpsError as again:
        raise VerificationFailed(
            host,
            f"{failed}; putting the previous certificate {old_label} back failed too ({_reason(again)})",
            hint=f"put {old_label} back on {production.label} in IIS Manager and start the site NOW",
        ) from cause
    try:
        restored = _restart(conn, production, bindings)
    except OpsError as again:
        raise VerificationFailed(
            host,
            f"{failed}; rolled back to the previous certificate {old_label}, but the site did not start "
            f"again ({_reason(again)}) — the site is DOWN",
            hint="look at the System event log (source W3SVC), fix the cause and start the site in IIS Manager",
        ) from cause
    raise VerificationFailed(
        host,
        f"{failed}; rolled back to the previous certificate {old_label} and the site is "
        f"{restored.state_name} again",
        hint="look at the System event log (source W3SVC) for why the site would not start with the new "
        "certificate, fix it, then run this step again",
    ) from cause


def _restore_certificate(conn: Connection, production: Site, old_thumb: str, bindings: Sequence[str]) -> Site:
    current = find_site(sites(conn), production.path, host=_host(conn))
    if old_thumb:
        if current.cert_thumbprint != old_thumb or current.secure_bindings != tuple(bindings[:1]):
            current = _set_cert(
                conn, current, old_thumb, bindings[0], what=f"roll back {current.label} to {old_thumb}"
            )
    elif current.cert_thumbprint:
        current = _clear_cert(conn, current, what=f"roll back {current.label} to no certificate")
    if current.cert_thumbprint != old_thumb:
        raise VerificationFailed(
            _host(conn), f"{current.label} reads back SSLCertHash {current.cert_thumbprint or '(none)'}"
        )
    return current


def _restart(conn: Connection, production: Site, bindings: Sequence[str]) -> Site:
    found = sites(conn)
    current = find_site(found, production.path, host=_host(conn))
    for other in _sharing(found, current, bindings):
        _control(conn, other, "stop")
    if not current.started:
        current = _control(conn, current, "start")
    return current


def rollback(
    conn: Connection, *, production_site: str, old_thumbprint: str, secure_bindings: Sequence[str] | str
) -> SwapResult:
    """Put the previous certificate back on the production site and start it (the undo of :func:`swap`).

    Other started sites sharing the secure binding are stopped first; a started production site is
    restarted when its certificate changes. Idempotent.
    """
    host = _host(conn)
    old = _thumbprint(old_thumbprint, key="old_thumbprint")
    bindings = [secure_bindings] if isinstance(secure_bindings, str) else list(secure_bindings)
    if not bindings or not re.fullmatch(r"[0-9.]*:[0-9]{1,5}:", bindings[0]):
        raise ParameterError(
            "secure_bindings", f"{secure_bindings!r}: expected a secure binding such as :443:"
        )
    found = sites(conn)
    production = find_site(found, production_site, host=host)
    sharing = _sharing(found, production, bindings)
    if production.started and production.cert_thumbprint == old and not sharing:
        return SwapResult(
            production, old, production.store_name, production.secure_bindings, old, (), already_done=True
        )
    planned = [Change(s.label, "ServerState", s.state_name, "stopped") for s in sharing]
    planned += _bind_changes(production, old, bindings[0])
    stopped = tuple(_control(conn, s, "stop") for s in sharing)
    if production.started and production.cert_thumbprint != old:
        _control(conn, production, "stop")
    _restore_certificate(conn, production, old, bindings)
    after = _restart(conn, production, bindings)
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


# --- checking: the read-back after a swap or a rollback --------------------------------------------


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
) -> list[dict[str, Any]]:
    """Seed step 2.8, read back: the production site is started with ``new_thumbprint``, the work site
    (when given) is stopped, and no other started site shares the production secure binding.

    Returns one row per check (``check``, ``site``, ``expected``, ``actual``, ``ok``) for a table.
    A failed check raises :class:`VerificationFailed` naming every failure and the undo
    (``opslib run <run_dir>/rollback.yaml``) — unless ``dry_run`` (nothing was changed, so the rows
    only report). ``hint`` replaces the default advice (the rollback step has its own).
    """
    new = _thumbprint(new_thumbprint, key="new_thumbprint")
    production = find_site(sites_after, production_site, host=host)
    sharing = _sharing(sites_after, production, production.secure_bindings)
    rows = [
        _check_row("production site started", production, "started", production.state_name),
        _check_row("production certificate", production, new, production.cert_thumbprint or "(none)"),
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
    installed: InstallResult | None,
    host: str,
    dry_run: bool = False,
) -> list[dict[str, Any]]:
    """Step 1's read-back: ``thumbprint`` is in MY with its private key (``installed``) and bound to
    the work site. Returns one row per check; a failure raises :class:`VerificationFailed` unless
    ``dry_run`` (nothing was installed, so the rows only report)."""
    thumb = _thumbprint(thumbprint)
    with_key = bool(installed and installed.thumbprint == thumb and installed.key_container)
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
        _check_row("bound to the work site", work_after, thumb, work_after.cert_thumbprint or "(none)"),
    ]
    if not all(row["ok"] for row in rows) and not dry_run:
        raise VerificationFailed(
            host,
            f"after the install: in MY with its key {with_key}, {work_after.label} bound to "
            f"{work_after.cert_thumbprint or '(none)'} (expected {thumb})",
            hint="look at the MY store (certutil -store MY) and the work site in IIS Manager",
        )
    return rows
