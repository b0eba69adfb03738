"""Step 1: install the CA certificates on the new certificate's path, complete the pending request
with it, bind it to the work site — read the file, predict the chain, check, match the request, plan,
apply, verify.

The notebook calls :func:`read_certificate`, :func:`build_chains`, :func:`opslib.ops.served_chain.predict`,
:func:`check_certificate`, :func:`match_request`, :func:`plan`, :func:`apply`, :func:`verify` and
records ``verify(...).facts()``.

Vendor order — the CA certificates before the server certificate: the intermediates and cross
certificates go into the CA store *first*, then
``certreq -accept`` completes the request — installing a response builds its chain and fails with
CERT_E_CHAINING / CERT_E_UNTRUSTEDROOT when it cannot (``InstallResponse`` with ``AllowNone``: "Do not
install untrusted certificates",
https://learn.microsoft.com/en-us/windows/win32/api/certenroll/nf-certenroll-ix509enrollment-installresponse ;
that certreq -accept goes through the same check is assumed from public reports of its error text). Only the CA
certificates on a usable path of the new certificate are installed (nothing the chain does not need
is added to the server's stores); the others of the CA's file are listed as ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import certs, winerror
from ..errors import CapabilityMissing, CertificateError, VerificationFailed
from ..iis import Change, Site, check_bound
from ..server.probe import require_admin
from ..server.remote import delete_remote, failed, host_of, remote_path
from ..server.stores import (
    StoreEntry,
    match_pending_request,
    pending_requests,
    read_store,
    trusted_roots,
)
from ..server.stores import match_request as _match_request
from . import served_chain

if TYPE_CHECKING:
    from ..server import Server
    from ..winrm import Connection

__all__ = [
    "CheckedCertificate",
    "InstallDone",
    "InstallPlan",
    "InstallResult",
    "InstallStep",
    "MatchedRequest",
    "NewCertificate",
    "apply",
    "build_chains",
    "check_certificate",
    "install_certificate",
    "match_request",
    "plan",
    "plan_install",
    "read_certificate",
    "verify",
]


@dataclass(frozen=True)
class InstallResult:
    """What :func:`install_certificate` did (or found already done)."""

    thumbprint: str
    request_thumbprint: str  # the REQUEST-store placeholder completed ("" when already installed)
    key_container: str
    ca_certificates: tuple[str, ...]  # thumbprints of the intermediates/cross certificates now in CA
    skipped_roots: tuple[str, ...]  # self-signed certificates of the bundle that were never sent
    already_installed: bool
    work_site: str | None
    changes: tuple[Change, ...]
    ignored: tuple[str, ...] = ()  # CA certificates of the bundle on no usable path: never sent

    def row(self) -> dict[str, Any]:
        return {
            "thumbprint": self.thumbprint,
            "request_thumbprint": self.request_thumbprint,
            "key_container": self.key_container,
            "ca_certificates": ", ".join(self.ca_certificates),
            "skipped_roots": ", ".join(self.skipped_roots),
            "ignored": ", ".join(self.ignored),
            "already_installed": self.already_installed,
            "work_site": self.work_site or "",
        }


def _split_bundle(
    bundle: certs.Bundle, expected: certs.ExpectedChain | None
) -> tuple[certs.Certificate, list[certs.Certificate], list[certs.Certificate], list[certs.Certificate]]:
    """(leaf, CA certificates to install, roots never sent, CA certificates ignored: on no usable path)."""
    leaf = bundle.leaf
    if leaf is None:
        raise CertificateError(bundle.source, "holds no server certificate (only CA certificates)")
    wanted = None if expected is None else {certs.thumbprint(c) for c in expected.on_path}
    cas: list[certs.Certificate] = []
    roots: list[certs.Certificate] = []
    ignored: list[certs.Certificate] = []
    for c in bundle.others:
        if certs.is_self_signed(c):
            roots.append(c)
        elif wanted is None or certs.thumbprint(c) in wanted:
            cas.append(c)
        else:
            ignored.append(c)
    return leaf, cas, roots, ignored


@dataclass(frozen=True)
class _InstallState:
    leaf: certs.Certificate
    thumbprint: str
    cas: list[certs.Certificate]
    roots: list[certs.Certificate]
    ignored: list[certs.Certificate]
    my: list[StoreEntry]
    request: StoreEntry | None
    ca_held: set[str]

    @property
    def installed(self) -> StoreEntry | None:
        return next((e for e in self.my if e.thumbprint == self.thumbprint and e.has_key_link), None)


def _install_state(
    conn: Connection, bundle: certs.Bundle, expected: certs.ExpectedChain | None = None
) -> _InstallState:
    leaf, cas, roots, ignored = _split_bundle(bundle, expected)
    thumb = certs.thumbprint(leaf)
    my = read_store(conn, "MY")
    requests = read_store(conn, "REQUEST")
    ca_held = {e.thumbprint for e in read_store(conn, "CA")}
    installed = any(e.thumbprint == thumb and e.has_key_link for e in my)
    request = None if installed else _match_request(host_of(conn), requests, leaf)
    if installed:
        request = next(
            (r for r in requests if r.certificate is not None and certs.key_matches(r.certificate, leaf)),
            None,
        )
    return _InstallState(leaf, thumb, cas, roots, ignored, my, request, ca_held)


def _install_changes(state: _InstallState) -> list[Change]:
    """In the order they are made: the CA certificates first, then the request completed."""
    changes: list[Change] = []
    name = certs.summarize(state.leaf).common_name
    for c in state.cas:
        tp = certs.thumbprint(c)
        cn = certs.summarize(c).common_name
        changes.append(Change(f"CA\\{tp}", "certificate", "present" if tp in state.ca_held else None, cn))
    if state.installed is not None:
        changes.append(
            Change(f"MY\\{state.thumbprint}", "certificate", "present", "present (already installed)")
        )
    else:
        assert state.request is not None
        changes.append(
            Change(
                f"REQUEST\\{state.request.thumbprint}", "pending request", "pending", "completed (removed)"
            )
        )
        changes.append(
            Change(
                f"MY\\{state.thumbprint}", "certificate", None, f"{name} (key {state.request.key_container})"
            )
        )
    for c in state.ignored:
        changes.append(
            Change(
                f"CA\\{certs.thumbprint(c)}",
                "certificate",
                None,
                f"not sent: on no path of the new certificate ({certs.describe_certificate(c)})",
            )
        )
    for r in state.roots:
        changes.append(
            Change(
                f"ROOT\\{certs.thumbprint(r)}", "certificate", None, "not sent (roots are never installed)"
            )
        )
    return changes


def _accept(server: Server, state: _InstallState, added: Sequence[str]) -> None:
    """``certreq -accept`` the leaf alone; a failure names its HRESULT and what it means."""
    caps, conn = server.capabilities, server.conn
    assert state.request is not None
    cer = remote_path(conn, ".cer")
    conn.upload(certs.encode_der(state.leaf), cer)
    # certreq -accept [-machine] [-q] CertFileIn (W-CERTREQ-ACCEPT; 2003:
    # https://learn.microsoft.com/en-us/previous-versions/windows/it-pro/windows-server-2003/cc736326(v=ws.10)).
    argv = ["certreq", "-accept"]
    if caps.certreq_machine:
        argv.append("-machine")
    if caps.certreq_quiet:
        argv.append("-q")
    try:
        result = conn.run([*argv, cer], check=False, what="complete the pending request", timeout_s=120)
    finally:
        delete_remote(conn, cer)
    if result.exit_code == 0:
        return
    code = winerror.hresult(result.exit_code)
    kept = (
        f"the CA certificates added before ({', '.join(added)}) stay in the CA store (harmless); "
        if added
        else ""
    )
    undo = "roots disabled by step 0 stay recorded for undo in its .reg backups"
    if code == winerror.CRYPT_E_NOT_FOUND:
        hint = (
            f"certreq found no matching request ({winerror.describe(code)}) although the REQUEST store holds "
            f"{state.request.thumbprint}; complete it in IIS Manager instead. {kept}{undo}"
        )
    elif code in (winerror.CERT_E_UNTRUSTEDROOT, winerror.CERT_E_CHAINING, winerror.CERT_E_EXPIRED):
        hint = (
            f"certreq could not build the new certificate's chain: {winerror.describe(code)}. The request "
            "is still pending and nothing else changed; "
            f"{kept}give the CA's intermediate and cross certificates in certificate_file (or enable the "
            f"CA's root in the Trusted Root store), then resume; {undo}"
        )
    else:
        hint = f"the request is still pending ({winerror.describe(code)}); {kept}{undo}"
    raise failed(conn, result, "complete the pending request", hint=hint)


def plan_install(
    server: Server, bundle: certs.Bundle, expected: certs.ExpectedChain | None = None
) -> list[Change]:
    """What :func:`install_certificate` would change (reads MY, REQUEST and CA; changes nothing).
    ``expected``: the new certificate's expected chain (None = every CA certificate of the file)."""
    return _install_changes(_install_state(server.conn, bundle, expected))


def install_certificate(
    server: Server,
    bundle: certs.Bundle,
    *,
    work_site: str | None = None,
    expected: certs.ExpectedChain | None = None,
) -> InstallResult:
    """Install the CA certificates on the new certificate's path, then complete the pending request.

    ``expected`` (:func:`opslib.ops.served_chain.predict`; None = predicted here without ``forbidden_roots``)
    must be usable, else :class:`~opslib.errors.PreconditionFailed` before anything is sent. Its CA
    certificates that the CA's file holds go one by one to ``certutil -addstore CA`` first (vendor
    order); the file's other CA certificates are ignored (listed); then the leaf alone (a DER ``.cer``)
    goes to ``certreq -accept``. Self-signed roots are never sent (a root in the accepted file can make
    Windows prompt, which would hang over WinRM). A failing accept names its HRESULT
    (:mod:`opslib.winerror`). Read back: MY holds the thumbprint with a key link (property 2), the
    placeholder is gone, CA holds the CA certificates. A lost reply is recognised: MY already holds
    it with a key → recorded as done. Binding to ``work_site`` is the IIS backend's ``bind``.
    """
    caps = server.capabilities
    conn = server.conn
    if expected is None:
        _install_state(conn, bundle)  # no pending request → refused before the chain is predicted
        expected = served_chain.predict(server, bundle.require_leaf(), supplied=bundle.others)
    served_chain.require_usable(expected, host=server.host)
    state = _install_state(conn, bundle, expected)
    planned = _install_changes(state)
    need_ca = [c for c in state.cas if certs.thumbprint(c) not in state.ca_held]
    if state.installed is not None and not need_ca:
        return InstallResult(
            thumbprint=state.thumbprint,
            request_thumbprint="",
            key_container=state.installed.key_container,
            ca_certificates=tuple(certs.thumbprint(c) for c in state.cas),
            skipped_roots=tuple(certs.thumbprint(r) for r in state.roots),
            ignored=tuple(certs.thumbprint(c) for c in state.ignored),
            already_installed=True,
            work_site=work_site,
            changes=tuple(planned),
        )
    require_admin(caps, "installing a certificate")
    if state.installed is None and not caps.certreq_accept:
        raise CapabilityMissing(
            caps.host,
            "certreq -accept",
            hint="complete the pending request in IIS Manager (Directory Security → Server Certificate → "
            "Process the pending request)",
        )
    added: list[str] = []
    for c in need_ca:  # vendor order: the chain first, so that certreq -accept can build it
        path = remote_path(conn, ".cer")
        conn.upload(certs.encode_der(c), path)
        try:
            # certutil -addstore CA InFile, one certificate per file (W-CERTUTIL-ADDSTORE; whether the 2003
            # certutil takes a .p7b is unverified).
            result = conn.run(
                ["certutil", "-addstore", "CA", path], check=False, what=f"add {certs.thumbprint(c)} to CA"
            )
        finally:
            delete_remote(conn, path)
        if result.exit_code != 0:
            raise failed(
                conn,
                result,
                f"add the CA certificate {certs.describe_certificate(c)} to the CA store",
                hint="the pending request was not completed; "
                + (f"already added to CA: {', '.join(added)}; " if added else "")
                + "check certutil on the server, then resume",
            )
        added.append(certs.thumbprint(c))
    if state.installed is None:
        assert state.request is not None
        _accept(server, state, added)
    # Read back.
    my = {e.thumbprint: e for e in read_store(conn, "MY")}
    entry = my.get(state.thumbprint)
    if entry is None or not entry.has_key_link:
        raise VerificationFailed(
            caps.host,
            f"MY does not hold {state.thumbprint} with a private key link after certreq -accept",
            hint=f"repair the link with `certutil -repairstore MY {state.thumbprint}` and check in the Certificates MMC",
        )
    if state.request is not None and state.installed is None:
        left = {e.thumbprint for e in read_store(conn, "REQUEST")}
        if state.request.thumbprint in left:
            raise VerificationFailed(
                caps.host, f"the pending request {state.request.thumbprint} is still in the REQUEST store"
            )
    ca_now = {e.thumbprint for e in read_store(conn, "CA")}
    missing = [certs.thumbprint(c) for c in state.cas if certs.thumbprint(c) not in ca_now]
    if missing:
        raise VerificationFailed(caps.host, f"the CA store lacks {', '.join(missing)} after -addstore")
    return InstallResult(
        thumbprint=state.thumbprint,
        request_thumbprint=state.request.thumbprint if state.request and state.installed is None else "",
        key_container=entry.key_container,
        ca_certificates=tuple(certs.thumbprint(c) for c in state.cas),
        skipped_roots=tuple(certs.thumbprint(r) for r in state.roots),
        ignored=tuple(certs.thumbprint(c) for c in state.ignored),
        already_installed=state.installed is not None,
        work_site=work_site,
        changes=tuple(planned),
    )


# --- the step ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewCertificate:
    """The CA's file, read locally: every certificate in it, the server certificate and its summary."""

    source: str
    bundle: certs.Bundle
    leaf: certs.Certificate
    summary: certs.CertSummary

    def rows(self) -> list[dict[str, Any]]:
        return self.bundle.rows()


def read_certificate(path: str | Path, *, source: str = "") -> NewCertificate:
    """Read the CA's mail, PEM, DER or PKCS#7 file (local; nothing is sent)."""
    name = source or str(path)
    bundle = certs.load_certificates(Path(path).read_bytes(), source=name)
    leaf = bundle.require_leaf()
    return NewCertificate(name, bundle, leaf, certs.summarize(leaf))


def build_chains(server: Server, new: NewCertificate) -> list[certs.Chain]:
    """The chains of the new certificate, anchored in the server's Trusted Root stores."""
    roots = [e.certificate for e in trusted_roots(server.conn) if e.certificate is not None]
    return certs.build_chains(new.leaf, [*new.bundle.others, *roots], anchors=roots)


def chain_rows(chains: Sequence[certs.Chain]) -> list[dict[str, Any]]:
    return [{"complete": c.complete, "chain": c.describe(), "missing": c.missing} for c in chains]


@dataclass(frozen=True)
class CheckedCertificate:
    """The local checks passed (no blocking finding): the chains and the findings (warnings)."""

    new: NewCertificate
    chains: tuple[certs.Chain, ...]
    findings: tuple[Any, ...]
    expected: certs.ExpectedChain | None = None  # the predicted chain (usable)

    def rows(self) -> list[dict[str, Any]]:
        return [f.to_json() for f in self.findings]


def check_certificate(
    new: NewCertificate,
    chains: Sequence[certs.Chain],
    *,
    hostnames: Sequence[str],
    warn_days: int,
    forbidden_roots: Sequence[str] = (),
    expected: certs.ExpectedChain | None = None,
    host: str = "",
) -> CheckedCertificate:
    """Validity, host names, chain; a blocking finding raises (:class:`CertificateError`) before
    anything is sent, and so does an ``expected`` chain (:func:`opslib.ops.served_chain.predict`) that is not
    usable (:class:`~opslib.errors.PreconditionFailed` naming each certificate)."""
    if expected is not None:
        served_chain.require_usable(expected, host=host or new.source)
    findings = certs.check_warnings(
        new.leaf,
        chains=list(chains),
        hostnames=list(hostnames),
        warn_days=warn_days,
        forbidden_roots=tuple(forbidden_roots),
        supplied=new.bundle.certificates,
    )
    certs.raise_for_blocking(findings, source=new.source)
    return CheckedCertificate(new, tuple(chains), tuple(findings), expected)


@dataclass(frozen=True)
class MatchedRequest:
    """The REQUEST-store placeholders and the one whose key is the new certificate's."""

    requests: tuple[StoreEntry, ...]
    request: StoreEntry

    def rows(self) -> list[dict[str, Any]]:
        return [{"matches": r.thumbprint == self.request.thumbprint, **r.row()} for r in self.requests]


def match_request(server: Server, new: NewCertificate) -> MatchedRequest:
    """The pending request for the new certificate's key (a resumed step finds the certificate in MY)."""
    requests = pending_requests(server.conn)
    request = match_pending_request(server.conn, new.leaf, installed_ok=True)
    return MatchedRequest(tuple(requests), request)


@dataclass(frozen=True)
class InstallPlan:
    checked: CheckedCertificate
    matched: MatchedRequest
    work_site: str
    port: int
    changes: tuple[Change, ...]

    def rows(self) -> list[dict[str, Any]]:
        return [c.row() for c in self.changes]


def plan(
    server: Server, checked: CheckedCertificate, matched: MatchedRequest, *, work_site: str, port: int = 443
) -> InstallPlan:
    """What installing and binding change, from → to (read-only)."""
    thumb = checked.new.summary.thumbprint
    changes = [
        *plan_install(server, checked.new.bundle, checked.expected),
        *server.iis.plan_bind(work_site, thumb, port=port),
    ]
    return InstallPlan(checked, matched, work_site, port, tuple(changes))


@dataclass(frozen=True)
class InstallDone:
    plan: InstallPlan
    installed: InstallResult | None  # None in a dry run
    work: Site | None

    def rows(self) -> list[dict[str, Any]]:
        return [self.installed.row()] if self.installed else [{"dry_run": "nothing changed"}]


def apply(server: Server, planned: InstallPlan, *, dry_run: bool = False) -> InstallDone:
    """Complete the request, install the CA certificates, bind to the work site; a dry run changes nothing."""
    if dry_run:
        return InstallDone(planned, None, None)
    thumb = planned.checked.new.summary.thumbprint
    installed = install_certificate(
        server, planned.checked.new.bundle, work_site=planned.work_site, expected=planned.checked.expected
    )
    work = server.iis.bind(planned.work_site, thumb, port=planned.port)
    return InstallDone(planned, installed, work)


@dataclass(frozen=True)
class InstallStep:
    """Step 1's outcome: the read-back rows and the facts for steps 2–4 and the reviewer."""

    done: InstallDone
    work_after: Site
    checks: tuple[dict[str, Any], ...]

    def rows(self) -> list[dict[str, Any]]:
        return list(self.checks)

    def facts(self) -> dict[str, Any]:
        checked = self.done.plan.checked
        new, installed = checked.new.summary, self.done.installed
        request = self.done.plan.matched.request
        return {
            "new_thumbprint": new.thumbprint,
            "new_not_after_utc": new.not_after_utc,
            "new_not_before_utc": new.not_before_utc,
            "new_subject": new.subject,
            "new_issuer": new.issuer,
            "new_dns_names": list(new.dns_names),
            "certificate_formats": list(checked.new.bundle.formats),
            "chain": checked.expected.describe()
            if checked.expected
            else (checked.chains[0].describe() if checked.chains else ""),
            # The expected chain (thumbprints, leaf first, root last): what step 4 compares the served chain with.
            "predicted_chain": list(checked.expected.thumbprints) if checked.expected else [],
            "predicted_needs_cross": checked.expected.needs_cross if checked.expected else None,
            "ca_certificates_ignored": [
                {"thumbprint": certs.thumbprint(c), "certificate": certs.describe_certificate(c)}
                for c in (checked.expected.ignored if checked.expected else ())
            ],
            "warnings": [f.code for f in checked.findings],
            "pending_request": request.thumbprint,
            "key_container": installed.key_container if installed else request.key_container,
            "ca_certificates_installed": list(installed.ca_certificates) if installed else [],
            "install_plan": self.done.plan.rows(),
            "work_site_path": self.work_after.path,
        }


def verify(server: Server, done: InstallDone) -> InstallStep:
    """Read back MY and the work site: in MY with its key, bound to the work site (raises unless dry run)."""
    work_after = server.iis.find_site(done.plan.work_site)  # one read of the sites
    checks = check_bound(
        work_after,
        thumbprint=done.plan.checked.new.summary.thumbprint,
        installed=done.installed,
        host=server.host,
        dry_run=done.installed is None,
    )
    return InstallStep(done, work_after, tuple(checks))
