"""``opslib request``: the pending request on the server — an INF, ``certreq -new``, read back.

Before → plan → apply → verify, like the renewal's steps:

* :func:`before` reads what production serves (its subject and names: the request's defaults) and the
  pending requests already in the machine REQUEST store;
* :func:`plan` writes the INF for the target Windows (W-CERTREQ-NEW): RSA 2048/3072, ``MachineKeySet =
  TRUE`` (a machine key IIS can use), ``Exportable = TRUE`` (step 3's backup), ``KeySpec = 1``
  (AT_KEYEXCHANGE, Schannel), the Schannel provider; ``HashAlgorithm = sha256`` and a subjectAltName
  (``[Extensions]`` ``2.5.29.17 = "{text}"``) only on 2008 and later — never sent to Server 2003, whose
  request is SHA-1-signed and carries the names in its subject only (said in plain words). A pending
  request for the same names refuses the plan unless ``new_request`` (recorded);
* :func:`apply` uploads the INF, runs ``certreq -new`` and decides from what it reads back, not from the
  exit code or text: exactly one new entry in the REQUEST store, linked to a key, its public key equal to
  the CSR's, the CSR's signature hash and names as planned. On any failure what ``certreq`` made is
  removed — the REQUEST entry (``certutil -delstore REQUEST``, W-CERTUTIL-DELSTORE) and its key container
  (``certutil -csp … -delkey``, W-CERTUTIL-DELKEY) — and read back (the store from the registry, the
  container with ``certutil -key``, W-CERTUTIL-KEY);
* :func:`verify` reads the request back once more and gives the facts (the CSR is public: it goes to the
  run folder as ``request.csr``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import certs, winerror
from ..errors import PreconditionFailed, VerificationFailed
from ..server.remote import delete_remote, download, host_of, remote_path
from ..server.stores import StoreEntry, pending_requests, read_entry

if TYPE_CHECKING:
    from ..server import Server

PROVIDER = "Microsoft RSA SChannel Cryptographic Provider"  # PROV_RSA_SCHANNEL = 12
KEY_SIZES = (2048, 3072)
CSR_FILE = "request.csr"


@dataclass(frozen=True)
class Before:
    production_thumbprint: str
    subject: str
    names: tuple[str, ...]
    pending: tuple[StoreEntry, ...]
    windows_version: str

    def rows(self) -> list[dict[str, Any]]:
        rows = [
            {"item": "production certificate", "value": self.production_thumbprint or "(none)"},
            {"item": "subject", "value": self.subject},
            {"item": "names", "value": ", ".join(self.names)},
            {"item": "Windows", "value": self.windows_version},
        ]
        rows += [
            {"item": "pending request", "value": f"{p.thumbprint} {p.summary.subject}"} for p in self.pending
        ]
        return rows


def before(server: Server, *, production_site: str) -> Before:
    """What production serves (the request's defaults) and the pending requests (read-only)."""
    site = server.iis.find_site(production_site)
    thumb = site.cert_thumbprint
    subject: str = ""
    names: tuple[str, ...] = ()
    if thumb:
        entry, _ = read_entry(server.conn, "MY", thumb)
        if entry is not None and entry.certificate is not None:
            subject = entry.certificate.subject.rfc4514_string()
            dns, _ips = certs.subject_alt_names(entry.certificate)
            names = tuple(dns) or ((entry.summary.common_name,) if entry.summary.common_name else ())
    pending = tuple(pending_requests(server.conn))
    return Before(thumb, subject, tuple(names), pending, server.capabilities.windows_version)


def _inf_subject(rfc4514: str) -> str:
    """certreq's Subject text from RFC 4514 (CN first): ``CN=a, O="b, c", S=Tokyo, C=JP``."""
    parts = [p.strip() for p in re.split(r"(?<!\\),", rfc4514) if p.strip()]
    out = []
    for part in parts:
        name, _, value = part.partition("=")
        value = value.replace("\\,", ",")
        if "," in value or '"' in value:
            value = '"' + value.replace('"', '""') + '"'
        out.append(f"{'S' if name == 'ST' else name}={value}")
    return ", ".join(out)


@dataclass(frozen=True)
class RequestPlan:
    subject: str
    names: tuple[str, ...]
    key_size: int
    modern: bool  # 2008+: SHA-256 and a subjectAltName
    inf: str
    statement: str
    replaces: tuple[str, ...]  # pending requests for the same names, kept (--new-request)

    @property
    def expected_hash(self) -> str:
        return "sha256" if self.modern else "sha1"

    def rows(self) -> list[dict[str, Any]]:
        out = [
            {"target": "REQUEST store", "field": "pending request", "before": "-", "after": self.subject},
            {"target": "request", "field": "names", "before": "-", "after": ", ".join(self.names)},
            {
                "target": "request",
                "field": "key",
                "before": "-",
                "after": f"RSA {self.key_size}, machine, exportable",
            },
            {"target": "request", "field": "signature hash", "before": "-", "after": self.expected_hash},
        ]
        out += [{"target": "REQUEST store", "field": "kept", "before": t, "after": t} for t in self.replaces]
        return out

    def inf_rows(self) -> list[dict[str, Any]]:
        return [{"line": line} for line in self.inf.splitlines()]


def plan(
    facts: Before,
    *,
    host: str,
    subject: str = "",
    names: Sequence[str] = (),
    key_size: int = 2048,
    new_request: bool = False,
) -> RequestPlan:
    """The INF for this server's Windows, or a refusal before anything changes."""
    if key_size not in KEY_SIZES:
        raise PreconditionFailed(host, f"key size {key_size} is not offered", hint="use 2048 or 3072")
    chosen_subject = subject or facts.subject
    chosen_names = tuple(names) or facts.names
    if not chosen_subject or not chosen_names:
        raise PreconditionFailed(
            host,
            "no subject or names for the request: production serves no certificate this kit can read",
            hint="set request.subject and request.dns_names in the parameters file; nothing was changed",
        )
    wanted = {n.lower() for n in chosen_names}
    same = [
        p.thumbprint
        for p in facts.pending
        if p.certificate is not None and wanted & {n.lower() for n in _names_of(p.certificate)}
    ]
    if same and not new_request:
        raise PreconditionFailed(
            host,
            f"a pending request for {', '.join(sorted(wanted))} already sits in the REQUEST store "
            f"({', '.join(same)}); its key is the one the CA's certificate will be matched to",
            hint="send that request's CSR to the CA (or wait for its mail and run opslib run), or give "
            "--new-request to make another one (recorded); nothing was changed",
        )
    modern = int((facts.windows_version or "5").split(".")[0]) >= 6
    lines = [
        "[Version]",
        'Signature = "$Windows NT$"',
        "",
        "[NewRequest]",
        f'Subject = "{_inf_subject(chosen_subject)}"',
        "KeySpec = 1",
        f"KeyLength = {key_size}",
        "Exportable = TRUE",
        "MachineKeySet = TRUE",
        f'ProviderName = "{PROVIDER}"',
        "ProviderType = 12",
        "RequestType = PKCS10",
        "KeyUsage = 0xa0",
    ]
    if modern:
        lines += ["HashAlgorithm = sha256", "", "[Extensions]", '2.5.29.17 = "{text}"']
        lines += [f'_continue_ = "dns={n}&"' for n in chosen_names]
        statement = "SHA-256 signature and a subjectAltName with every name (Windows Server 2008 and later)"
    else:
        statement = (
            "Windows Server 2003's certreq signs the request with SHA-1 and has no text form for a "
            "subjectAltName (both are Windows Server 2008 and later): the request is SHA-1-signed and names "
            "the host in its subject only; the CA signs the certificate with its own hash and adds the names "
            "(some CAs refuse SHA-1-signed requests)"
        )
    return RequestPlan(
        chosen_subject, chosen_names, key_size, modern, "\r\n".join(lines) + "\r\n", statement, tuple(same)
    )


def _names_of(cert: certs.Certificate) -> tuple[str, ...]:
    dns, _ips = certs.subject_alt_names(cert)
    return tuple(dns) or (certs.summarize(cert).common_name,)


@dataclass(frozen=True)
class RequestDone:
    plan: RequestPlan
    entry: StoreEntry | None  # None in a dry run
    csr: bytes
    facts: certs.RequestFacts | None

    def rows(self) -> list[dict[str, Any]]:
        if self.entry is None or self.facts is None:
            return [{"dry_run": "nothing changed"}]
        return [{"request_thumbprint": self.entry.thumbprint, **self.facts.row()}]


def apply(server: Server, planned: RequestPlan, *, dry_run: bool = False) -> RequestDone:
    """Upload the INF, ``certreq -new``, read back; on failure remove what it made and read that back."""
    if dry_run:
        return RequestDone(planned, None, b"", None)
    conn = server.conn
    held = {p.thumbprint for p in pending_requests(conn)}
    inf, out = remote_path(conn, ".inf"), remote_path(conn, ".csr")
    conn.upload(b"\xff\xfe" + planned.inf.encode("utf-16-le"), inf, what="the request's INF")
    argv = ["certreq", "-new"]
    if server.capabilities.certreq_quiet:
        argv.append("-q")
    # certreq -new [-q] PolicyFileIn RequestFileOut (W-CERTREQ-NEW)
    result = conn.run([*argv, inf, out], check=False, what="create the certificate request", timeout_s=180)
    made = [p for p in pending_requests(conn) if p.thumbprint not in held]
    csr_bytes = b""
    try:
        if result.exit_code != 0:
            raise VerificationFailed(
                host_of(conn),
                f"certreq -new failed ({winerror.describe(winerror.hresult(result.exit_code))})",
            )
        csr_bytes = download(conn, out, what="the certificate request")
        entry, found = _decide(conn, planned, made, csr_bytes)
    except (VerificationFailed, PreconditionFailed) as exc:
        left = remove_requests(server, made)
        raise VerificationFailed(
            host_of(conn),
            f"{getattr(exc, 'problem', '') or exc}; "
            + (
                f"left on the server: {', '.join(left)}"
                if left
                else "nothing is left on the server (read back)"
            ),
            hint="read the transcript; fix the cause and run opslib request again",
        ) from None
    finally:
        delete_remote(conn, inf)
        delete_remote(conn, out)
    return RequestDone(planned, entry, csr_bytes, found)


def _decide(
    conn: Any, planned: RequestPlan, made: list[StoreEntry], csr_bytes: bytes
) -> tuple[StoreEntry, certs.RequestFacts]:
    host = host_of(conn)
    bundle = certs.load_certificates(csr_bytes, source="the request certreq wrote")
    if len(bundle.csrs) != 1:
        raise VerificationFailed(host, "certreq wrote no readable request")
    csr = bundle.csrs[0]
    found = certs.request_facts(csr)
    if len(made) != 1:
        raise VerificationFailed(host, f"the REQUEST store holds {len(made)} new entries, expected one")
    entry = made[0]
    problems = []
    if not entry.has_key_link:
        problems.append("the new REQUEST entry is linked to no key")
    if entry.certificate is None or not certs.key_matches(entry.certificate, csr):
        problems.append("the new REQUEST entry's public key is not the request's")
    if not found.signature_valid:
        problems.append("the request's signature does not verify")
    if found.signature_hash != planned.expected_hash:
        problems.append(
            f"the request is signed with {found.signature_hash}, expected {planned.expected_hash}"
        )
    want = {n.lower() for n in planned.names}
    have = {n.lower() for n in found.dns_names} if planned.modern else {found.common_name.lower()}
    if (planned.modern and have != want) or (not planned.modern and not have & want):
        problems.append(
            f"the request names {', '.join(sorted(have)) or 'nothing'}, expected {', '.join(sorted(want))}"
        )
    if (found.key_size or 0) != planned.key_size:
        problems.append(f"the request's key has {found.key_size} bits, expected {planned.key_size}")
    if problems:
        raise VerificationFailed(host, "; ".join(problems))
    return entry, found


def remove_requests(server: Server, made: Sequence[StoreEntry]) -> list[str]:
    """Delete REQUEST entries and their key containers; return what a read-back still finds."""
    conn = server.conn
    for entry in made:
        # certutil -delstore REQUEST CertId (W-CERTUTIL-DELSTORE); certutil -csp P -delkey Name (W-CERTUTIL-DELKEY)
        conn.run(
            ["certutil", "-delstore", "REQUEST", entry.thumbprint], check=False, what="remove the request"
        )
        if entry.key_container:
            conn.run(
                ["certutil", "-csp", entry.key_provider or PROVIDER, "-delkey", entry.key_container],
                check=False,
                what="remove the request's key container",
            )
    left_store = {p.thumbprint for p in pending_requests(conn)}
    left = [f"REQUEST {e.thumbprint}" for e in made if e.thumbprint in left_store]
    for entry in made:
        if entry.key_container and key_container_exists(server, entry.key_container, entry.key_provider):
            left.append(f"key container {entry.key_container}")
    return left


def key_container_exists(server: Server, container: str, provider: str = "") -> bool:
    """``certutil -csp P -key NAME``: exit 0 = present (W-CERTUTIL-KEY, assumed); anything else counts as
    absent only for NTE_BAD_KEYSET — another failure is reported as present (fail-safe)."""
    result = server.conn.run(
        ["certutil", "-csp", provider or PROVIDER, "-key", container],
        check=False,
        what="read the key container",
    )
    return winerror.hresult(result.exit_code) != winerror.NTE_BAD_KEYSET


@dataclass(frozen=True)
class RequestResult:
    done: RequestDone
    csr_file: str
    new_request: bool

    def rows(self) -> list[dict[str, Any]]:
        return self.done.rows()

    def facts(self) -> dict[str, Any]:
        d = self.done
        if d.entry is None or d.facts is None:
            return {"request_plan": d.plan.rows(), "request_statement": d.plan.statement}
        return {
            "request_plan": d.plan.rows(),
            "request_thumbprint": d.entry.thumbprint,
            "request_key_container": d.entry.key_container,
            "request_key_sha256": d.facts.key_sha256,
            "request_subject": d.facts.subject,
            "request_names": list(d.plan.names),
            "request_signature_hash": d.facts.signature_hash,
            "request_key_size": d.facts.key_size,
            "request_csr_file": self.csr_file,
            "request_csr_sha256": hashlib.sha256(d.csr).hexdigest(),
            "request_statement": d.plan.statement,
            "new_request_forced": self.new_request,
            "request_kept": list(d.plan.replaces),
        }


def verify(server: Server, done: RequestDone, *, run_dir: str, new_request: bool = False) -> RequestResult:
    """Read the REQUEST entry back once more; save the CSR (public) into the run folder."""
    if done.entry is None:
        return RequestResult(done, "", new_request)
    again, _ = read_entry(server.conn, "REQUEST", done.entry.thumbprint)
    if again is None:
        raise VerificationFailed(host_of(server.conn), f"the pending request {done.entry.thumbprint} is gone")
    path = Path(run_dir) / CSR_FILE
    path.write_bytes(done.csr)
    return RequestResult(done, CSR_FILE, new_request)
