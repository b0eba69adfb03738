"""Checks that run before anything changes on the server.

A renewal must not change the server and then stop on an input the kit could have refused at the
start. Two layers:

* **Local** (the runner, before a run folder or a kernel exists; no connection):
  :func:`check_certificate_file` reads ``certificate_file`` the way step 1 will and refuses what
  step 1 would refuse (no server certificate, several, expired, not yet valid, wrong host names,
  SHA-1 signed, weak key, self-signed, the issuing intermediate missing, a private key inside);
  :func:`check_pfx_password` refuses a PFX password outside the one rule (``credentials.PFX_PASSWORD_RULE``).
* **On the server, read-only** (step 0, before it disables a root): :func:`check_server` — both
  sites exist (exactly one each), the new certificate's key belongs to a pending request, and the
  chain Windows must build for it (:mod:`opslib.ops.served_chain`, forbidden roots counted as disabled)
  ends at a trusted, allowed root with every certificate valid — else refused, nothing changed.

Every refusal says what, where (the key path or the file) and what to do; none echoes a secret.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import certs, credentials
from .errors import CertificateError, OpsError, ParameterError, PreconditionFailed, SiteNotFound
from .iis import find_site
from .ops import compat, served_chain
from .ops.export_route import prove_export_route
from .server.stores import match_pending_request

if TYPE_CHECKING:
    from .iis import Site
    from .server import Server

# The install-blocking findings that need nothing but the file (the chain needs the server's roots).
LOCAL_BLOCKING = tuple(code for code in certs.INSTALL_BLOCKING if code != "chain_incomplete")
_FILE_HINT = (
    "certificate_file must be what the CA sent for this renewal: its mail (text or .eml), a PEM, "
    "DER or PKCS#7 (.p7b) file; nothing was changed"
)


def check_certificate_file(
    path: Path,
    *,
    source: str,
    hostnames: Sequence[str],
    warn_days: int = 30,
    forbidden_roots: Iterable[str] = (),
    now_utc: datetime | None = None,
) -> certs.Bundle:
    """Read ``path`` as step 1 will and refuse it (:class:`CertificateError` naming ``source``) when
    step 1 could not install it. Returns the bundle."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CertificateError(
            source, f"cannot read the file ({type(exc).__name__})", hint=_FILE_HINT
        ) from None
    try:
        bundle = certs.load_certificates(data, source=source)
    except CertificateError as exc:
        raise CertificateError(source, exc.problem, hint=_FILE_HINT) from None
    if bundle.private_key is not None:
        raise CertificateError(
            source,
            "holds a private key; the CA never mails one, and the kit keeps key material out of its notebooks",
            hint="give the CA's mail or certificate file without the key; nothing was changed",
        )
    summaries = [(c, certs.summarize(c, now_utc=now_utc)) for c in bundle.certificates]
    leaves = [(c, s) for c, s in summaries if not s.is_ca]
    if not leaves:
        raise CertificateError(
            source,
            "holds no server certificate (only CA certificates)",
            hint="give the mail or file with the サーバID itself; nothing was changed",
        )
    if len(leaves) > 1:
        listed = ", ".join(f"{s.common_name or s.subject} ({s.thumbprint})" for _, s in leaves)
        raise CertificateError(
            source,
            f"holds {len(leaves)} server certificates: {listed}; the kit installs exactly one",
            hint="give a file with only the new certificate and its CA certificates; nothing was changed",
        )
    leaf, summary = leaves[0]
    findings = certs.check_warnings(
        leaf,
        now_utc=now_utc,
        chains=[],  # the chain is step 1's check, against the server's roots
        hostnames=list(hostnames),
        warn_days=warn_days,
        forbidden_roots=tuple(forbidden_roots),
        supplied=bundle.certificates,
    )
    problems = [f.message for f in findings if f.code in LOCAL_BLOCKING]
    if not summary.self_signed and not any(
        s.subject == summary.issuer for c, s in summaries if c is not leaf
    ):
        problems.append(
            f"the CA certificate that issued it ({summary.issuer}) is not in the file, so the chain "
            "cannot be checked or installed"
        )
    if problems:
        raise CertificateError(
            source,
            "; ".join(problems),
            hint="check that this is the certificate the CA issued for this renewal, with its intermediate "
            "(the PKCS#7 part of the mail); nothing was changed",
        )
    return bundle


def check_pfx_password(password: str) -> str:
    """The problem with a PFX password under :data:`opslib.credentials.PFX_PASSWORD_RULE`; "" if none.
    Never contains the password; the run stops before anything changes rather than at step 3."""
    return credentials.pfx_password_problem(password)


@dataclass(frozen=True)
class ServerReady:
    """What :func:`check_server` found: every site, the two named ones, and the pending request."""

    sites: tuple[Site, ...]
    production: Site
    work: Site
    pending_request: str  # thumbprint of the REQUEST-store placeholder ("" when not checked)
    predicted: certs.ExpectedChain | None = None  # the new certificate's expected chain (None: not checked)
    export_route: dict[str, Any] | None = None  # step 3's route, proven before step 2 (ops.export)
    bindings: dict[str, str] | None = None  # IIS 7–10: endpoints and netsh verbs of steps 1 and 2

    def row(self) -> dict[str, Any]:
        return {
            "production_site": self.production.label,
            "work_site": self.work.label,
            "pending_request": self.pending_request or "(not checked)",
            "predicted_chain": self.predicted.describe() if self.predicted else "(not checked)",
            **(self.export_route or {}),
            **(self.bindings or {}),
        }


def check_server(
    server: Server,
    *,
    production_site: str,
    work_site: str,
    certificate_file: str = "",
    forbidden_roots: Iterable[str] = (),
    host: str,
    ssl_port: int | None = None,
) -> ServerReady:
    """Read-only: both sites exist (one each, not the same one), the certificate in
    ``certificate_file`` has a pending request on this server (step 1 needs it), and its expected
    chain (:func:`opslib.ops.served_chain.predict`, with the CA's certificates of the file and the server's
    stores, forbidden roots as step 0 will leave them: disabled) is usable.

    With ``ssl_port`` (IIS 7–10), everything steps 1 and 2 would refuse for a binding reason (the work
    binding shared with another site, a production endpoint under another AppId or shared, …) is
    found here too, before step 0 changes anything (the backend's ``check_bindings``).

    Raises :class:`SiteNotFound` / :class:`PreconditionFailed`; nothing is changed either way.
    """
    found = server.iis.sites()
    production = find_site(found, production_site, host=host)
    work = find_site(found, work_site, host=host)
    if production.id == work.id:
        raise SiteNotFound(
            host,
            f"production_site {production_site!r} and work_site {work_site!r} are the same site ({production.label})",
            hint="work_site is the site where the renewal request was made; nothing was changed",
        )
    request = ""
    predicted: certs.ExpectedChain | None = None
    bindings: dict[str, str] | None = None
    if certificate_file:
        bundle = certs.load_certificates(Path(certificate_file).read_bytes(), source=certificate_file)
        leaf = bundle.leaf
        if leaf is None:
            raise CertificateError(certificate_file, "holds no server certificate (only CA certificates)")
        thumb = certs.thumbprint(leaf)
        compat.refuse_unusable(leaf, server.capabilities, source=certificate_file, host=host)
        if thumb == production.cert_thumbprint:
            raise PreconditionFailed(
                host,
                f"{certificate_file} holds {thumb}, the certificate {production.label} already serves — "
                "not a renewal; nothing was changed",
                hint="give the new certificate the CA sent for this renewal",
            )
        # As step 1 does: the key must be pending here, or, after an interrupted step 1, the
        # certificate is already in MY with its key (installed_ok: that entry is returned).
        request = match_pending_request(server.conn, leaf, installed_ok=True).thumbprint
        predicted = served_chain.require_usable(
            served_chain.predict(server, leaf, supplied=bundle.others, forbidden_roots=forbidden_roots),
            host=host,
        )
        check_bindings = getattr(server.iis, "check_bindings", None)
        if ssl_port is not None and check_bindings is not None:
            bindings = check_bindings(
                production_site=production.path, work_site=work.path, new_thumbprint=thumb, port=ssl_port
            )
    # Step 3's export route, proven by use on the current production certificate before step 2, so no
    # route decision can first fail after the production swap.
    with server.conn.reading():  # an export to the temp folder, deleted again: the stores do not change
        route = prove_export_route(server, production).row()
    return ServerReady(tuple(found), production, work, request, predicted, route, bindings)


def check_inputs(params: Any, *, steps: Sequence[str], prompted: dict[str, str] | None = None) -> None:
    """The runner's local checks for the steps about to run (``params``: :class:`opslib.params.Parameters`).

    :class:`CertificateError` (exit 1) for the certificate file, :class:`ParameterError` (exit 2) for a
    PFX password step 3 could not use. Nothing is contacted. ``prompted``: ``{key path: environment
    variable}`` of secrets the runner already asked for (they are not asked again).
    """
    if params.mode != "renew":
        return
    if "01_install_certificate" in steps or "00_precheck_root_store" in steps:
        check_certificate_file(
            params.path("certificate_file"),
            source=str(params.get("certificate_file")),
            hostnames=params.get("expected_hostnames"),
            warn_days=params.get("warn_days"),
            forbidden_roots=params.get("forbidden_roots"),
        )
    if "03_backup_keypair" in steps:
        ref = str(params.get("backup.pfx_password"))
        var = (prompted or {}).get("backup.pfx_password")
        try:
            value = credentials.resolve(f"env:{var}" if var else ref, purpose="backup.pfx_password")
        except OpsError:
            return  # the runner's secret resolution reports it
        problem = check_pfx_password(value)
        if problem:
            raise ParameterError(
                "backup.pfx_password",
                f"the password {ref} gives cannot be used: {problem}",
                source=params.source,
                hint=f"{credentials.PFX_PASSWORD_RULE}; nothing was changed",
            )
