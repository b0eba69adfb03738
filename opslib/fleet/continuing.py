"""Continuing a stopped rollout: which hosts already serve their new certificate, and which run put it there.

A second ``opslib fleet run`` of the same inventory must not renew a host twice (its pending request is
gone after the first renewal, so a second run would fail, and a canary batch of already-renewed hosts
proves nothing). For each host, the evidence root is searched first — no server is contacted for a host
that no finished, successful, changing run of this root renewed with the certificate its parameters name
now (the leaf of ``certificate_file``). For the others, the server is read the way a resume reads it before
it changes anything (:func:`opslib.runbook.forward.served_thumbprints`: every secure binding of the
production site, from the server's own configuration — read-only, never a TLS handshake a load balancer
could answer). A host whose every binding serves that certificate is recorded "already renewed", with the
run that did it; any other answer (or a server that cannot be read) leaves the host to be renewed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .. import evidence
from .. import params as params_
from ..certs import load_certificates, normalize_thumbprint, thumbprint
from ..errors import OpsError
from ..runbook.forward import served_thumbprints, winrm_values
from ..server import open_server


@dataclass(frozen=True)
class Renewed:
    """A host found serving its new certificate: the thumbprint and the run (folder) that put it on."""

    thumbprint: str
    run_dir: Path


@dataclass(frozen=True)
class Check:
    """One host to look at: its name, parameters file and environment (its secrets; never logged)."""

    name: str
    params_file: Path
    env: Mapping[str, str]


def new_thumbprint(params: params_.Parameters) -> str:
    """The leaf thumbprint of the parameters' ``certificate_file`` ("" when it cannot be read)."""
    try:
        path = params.path("certificate_file")
        bundle = load_certificates(path.read_bytes(), source=str(path))
        return normalize_thumbprint(thumbprint(bundle.require_leaf()))
    except (OSError, OpsError, KeyError, ValueError):
        return ""


def renewing_run(root: Path, params: params_.Parameters, thumb: str) -> Path | None:
    """The newest finished, successful run of ``root`` (not a dry run) on this host and site that put
    ``thumb`` on production."""
    found = None
    for entry in evidence.scan(root) if root.is_dir() else []:
        doc = entry.doc or {}
        facts = doc.get("facts") if isinstance(doc.get("facts"), dict) else {}
        assert isinstance(facts, dict)
        if doc.get("dry_run") or doc.get("status") != "succeeded" or not doc.get("finished_utc"):
            continue
        if doc.get("host") != params.host or doc.get("site") != params.site:
            continue
        put = {
            normalize_thumbprint(str(facts.get(k) or "")) for k in ("expected_thumbprint", "new_thumbprint")
        }
        if thumb in put:
            found = Path(entry.path)  # scan is sorted by name (UTC start): the last match is the newest
    return found


def _check(check: Check, root: Path) -> tuple[str, Renewed | None, str]:
    params = params_.load(check.params_file)
    thumb = new_thumbprint(params)
    run_dir = renewing_run(root, params, thumb) if thumb else None
    if run_dir is None:
        return check.name, None, ""
    site = str(params.get("production_site") or params.site)
    try:
        with open_server(winrm_values(params, {}), host=params.host, env=check.env) as server:
            served = [normalize_thumbprint(t) for t in served_thumbprints(server, site)]
    except OpsError as exc:
        return check.name, None, f"could not read what it serves ({type(exc).__name__}); it will be renewed"
    if served and all(t == thumb for t in served):
        return check.name, Renewed(thumb, run_dir), ""
    return check.name, None, ""


def already_renewed(
    checks: Sequence[Check], root: Path, *, forks: int
) -> tuple[dict[str, Renewed], dict[str, str]]:
    """Hosts already serving their new certificate (by name), and notes for hosts whose server could not
    be read. Reads at most ``forks`` servers at once."""
    found: dict[str, Renewed] = {}
    notes: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=max(1, forks), thread_name_prefix="fleet-check") as pool:
        for name, renewed, note in pool.map(lambda c: _check(c, root), checks):
            if renewed is not None:
                found[name] = renewed
            if note:
                notes[name] = note
    return found, notes
