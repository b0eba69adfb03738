"""``opslib inspect``: look at certificates from files, the CA's mail, PFX/CSR files and live endpoints.

Every source is read into one pool, so a leaf from one file and a bundle from another give the
leaf's chains. :func:`inspect_sources` returns a JSON-ready report (schema: ``docs/inspect-json.md``);
:func:`render_text` and :func:`render_json` format it. Bad input raises
:class:`~opslib.errors.CertificateError` naming the source (the CLI prints one line, exit 1).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import certs, tls
from .credentials import resolve
from .errors import CertificateError, UsageError
from .text import escape_json, escape_text

SCHEMA = 1
_ENDPOINT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


def read_source(
    source: str, *, password: bytes | None = None, servername: str | None = None, timeout_s: float = 10
) -> tuple[certs.Bundle, str]:
    """One source → (bundle, kind). ``kind`` is ``"file"`` or ``"endpoint"``.

    A path that exists is a file; otherwise ``host:port`` is an endpoint (SNI: ``servername``; when
    None, the host name itself unless it is an IP address; "" sends none)."""
    path = Path(source).expanduser()
    if path.exists() or not _ENDPOINT.match(source):
        if path.is_dir():
            raise CertificateError(source, "is a directory, not a certificate file")
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise CertificateError(
                source, "no such file", hint="check the path (or give host:port)"
            ) from None
        except PermissionError:
            raise CertificateError(source, "permission denied while reading the file") from None
        except OSError as exc:
            raise CertificateError(source, f"cannot read the file: {exc.strerror or exc}") from None
        return certs.load_certificates(data, source=source, password=password), "file"
    host, port = tls.parse_endpoint(source)
    sni = servername
    if sni is None:
        sni = None if _is_ip(host.strip("[]")) else host
    served = tls.fetch_chain(host.strip("[]"), port, servername=sni or None, timeout_s=timeout_s)
    return (
        certs.Bundle(source=source, certificates=served.certificates, formats=(f"tls {served.protocol}",)),
        "endpoint",
    )


def _is_ip(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _starts(pool: Sequence[certs.Certificate], bundles: Sequence[certs.Bundle]) -> list[certs.Certificate]:
    """The certificates whose chains are built: the leaves; without any leaf (a CA's download page: an
    intermediate, a cross certificate, roots), every CA certificate that issued none of the others."""
    out: list[certs.Certificate] = []
    seen: set[str] = set()

    def add(c: certs.Certificate) -> None:
        tp = certs.thumbprint(c)
        if tp not in seen:
            seen.add(tp)
            out.append(c)

    for b in bundles:
        if b.leaf is not None:
            add(b.leaf)
    # One pass (a 500-certificate bundle stays linear): how many certificates name each issuer.
    named = Counter(c.issuer.public_bytes() for c in pool)
    for c in pool:  # other end-entity certificates in the pool (e.g. a PEM holding two leaves)
        subject = c.subject.public_bytes()
        by_others = named[subject] - (1 if c.issuer.public_bytes() == subject else 0)
        if not certs.is_ca_certificate(c) and by_others == 0:
            add(c)
    if out:
        return out  # CA certificates on none of the leaves' chains are "left out" (one grouped warning)
    # A self-signed v1 root is a CA, not a leaf. "Issued none": no other certificate with another subject
    # names it as issuer.
    issued: set[bytes] = {c.issuer.public_bytes() for c in pool if c.issuer != c.subject}
    for c in pool:
        if certs.is_ca_certificate(c) and c.subject.public_bytes() not in issued:
            add(c)
    return out


def inspect_sources(
    sources: Sequence[str],
    *,
    password_env: str | None = None,
    servername: str | None = None,
    hostnames: Sequence[str] = (),
    warn_days: int = 30,
    forbidden_roots: Sequence[str] = (),
    now_utc: datetime | None = None,
    timeout_s: float = 10,
) -> dict[str, Any]:
    """Read every source, pool the certificates, build the leaves' chains, and collect warnings."""
    now = now_utc or datetime.now(UTC)
    if not sources:
        raise UsageError("no source given")
    if warn_days < 0:
        raise UsageError("--warn-days must be 0 or more")
    bad = [t for t in forbidden_roots if len(re.sub(r"[^0-9A-Fa-f]", "", t)) != 40]
    if bad:
        raise UsageError(f"--forbidden-root {bad[0]!r} is not a SHA-1 thumbprint (40 hex digits)")
    password = (
        resolve(f"env:{password_env}", purpose="PFX password").encode("utf-8") if password_env else None
    )

    bundles: list[certs.Bundle] = []
    kinds: list[str] = []
    for source in sources:
        bundle, kind = read_source(source, password=password, servername=servername, timeout_s=timeout_s)
        bundles.append(bundle)
        kinds.append(kind)

    pool: list[certs.Certificate] = []
    origin: dict[str, list[str]] = {}
    for b in bundles:
        for c in b.certificates:
            tp = certs.thumbprint(c)
            if tp not in origin:
                origin[tp] = []
                pool.append(c)
            if b.source not in origin[tp]:
                origin[tp].append(b.source)
    if not pool:
        only = ", ".join(b.source for b in bundles)
        if any(b.csrs for b in bundles):
            # A CSR alone is a valid thing to inspect.
            pass
        else:  # pragma: no cover - loaders raise before this
            raise CertificateError(only, "no certificate found")

    leaves = _starts(pool, bundles) if pool else []
    anchors = certs.KNOWN.certificates
    chains_out: list[dict[str, Any]] = []
    findings: list[certs.Finding] = []
    leaf_tps = {certs.thumbprint(c) for c in leaves}
    on_chain: set[str] = set()
    builder = certs.PathBuilder([*pool, *anchors])  # the kit's one path builder, shared by every leaf
    named = certs.SubjectIndex(pool)  # built once: names a root and its cross certificate apart
    for leaf in leaves:
        search = certs.search_chains(leaf, pool, anchors=anchors, builder=builder)
        chains = list(search.chains)
        if search.warning:
            findings.append(certs.Finding("too_many_paths", search.warning, certs.thumbprint(leaf)))
        for ch in chains:
            on_chain.update(ch.thumbprints)
            forbidden = ch.anchor is not None and certs.is_forbidden_root(ch.anchor, forbidden_roots)
            chains_out.append(
                {
                    "leaf": certs.thumbprint(leaf),
                    **ch.to_json(),
                    "forbidden_root": forbidden,
                    "names": ch.describe(),
                }
            )
        if certs.is_ca_certificate(leaf):  # no end-entity checks (no_san, self_signed_leaf, hostname_*)
            findings += certs.certificate_warnings(leaf, now_utc=now, warn_days=warn_days, pool=named)
            findings += certs.forbidden_root_findings(
                leaf, chains, forbidden_roots=forbidden_roots, supplied=pool
            )
            if certs.is_forbidden_root(leaf, forbidden_roots):
                findings.append(_forbidden_in_sources(leaf, pool))
        else:
            findings += certs.check_warnings(
                leaf,
                now_utc=now,
                chains=chains,
                hostnames=hostnames,
                warn_days=warn_days,
                forbidden_roots=forbidden_roots,
                supplied=pool,
            )
    left_out: list[dict[str, Any]] = []
    for c in pool:  # intermediates, cross certificates, roots that came from the sources
        tp = certs.thumbprint(c)
        if tp in leaf_tps:
            continue
        found = certs.certificate_warnings(c, now_utc=now, warn_days=warn_days, pool=named)
        if tp in on_chain or not leaf_tps:
            findings += found
            continue
        # On no chain of any leaf: one grouped warning line; the list (with each one's codes) in the JSON.
        if certs.is_forbidden_root(c, forbidden_roots):
            findings.append(_forbidden_in_sources(c, pool))
        left_out.append(
            {"sha1": tp, "common_name": certs.summarize(c).common_name, "warnings": [f.code for f in found]}
        )
    if left_out:
        findings.append(
            certs.Finding(
                "certificates_left_out",
                f"{len(left_out)} certificate(s) of the sources are on no chain of the leaf and were left out "
                "(not needed for it; listed in the JSON report's left_out, with their own warnings)",
            )
        )

    cert_rows = []
    by_key: dict[bytes, list[certs.Certificate]] = {}  # one pass, not pairwise: a 500-certificate bundle
    for c in pool:
        by_key.setdefault(certs.public_key_info(c), []).append(c)
    for c in pool:
        s = certs.summarize(c, now_utc=now)
        tp = s.thumbprint
        same_key = [certs.thumbprint(o) for o in by_key[certs.public_key_info(c)] if o is not c]
        row = s.to_json()
        row.update(
            {
                "role": _role(c, pool, leaf_tps),
                "forbidden_root": certs.is_forbidden_root(c, forbidden_roots),
                "same_key_as": same_key,
                "sources": origin[tp],
            }
        )
        cert_rows.append(row)

    keys_out = []
    csrs_out = []
    for b in bundles:
        if b.private_key is not None:
            keys_out.append(
                {
                    "source": b.source,
                    "matches": [certs.thumbprint(c) for c in pool if certs.key_matches(c, b.private_key)],
                }
            )
        for csr in b.csrs:
            seen = certs.request_facts(csr)  # what the CA will see
            csrs_out.append(
                {
                    "source": b.source,
                    "subject": seen.subject,
                    "dns_names": list(seen.dns_names),
                    "key_type": seen.key_type,
                    "key_size": seen.key_size,
                    "key_sha256": seen.key_sha256,
                    "signature_hash": seen.signature_hash,
                    "signature_valid": seen.signature_valid,
                    "matches": [certs.thumbprint(c) for c in pool if certs.key_matches(c, csr)],
                }
            )
            if seen.signature_hash in ("sha1", "md5"):
                findings.append(
                    certs.Finding(
                        "csr_sha1_signature",
                        f"the request from {b.source} is signed with {seen.signature_hash.upper()} (Windows Server "
                        "2003 signs so); some CAs refuse such requests — the certificate itself is signed with "
                        "the CA's own hash",
                    )
                )

    return {
        "schema": SCHEMA,
        "generated_utc": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "parameters": {
            "hostnames": list(hostnames),
            "warn_days": warn_days,
            "forbidden_roots": [re.sub(r"[^0-9A-Fa-f]", "", t).upper() for t in forbidden_roots],
            "servername": servername,
        },
        "sources": [
            {
                "source": b.source,
                "kind": k,
                "formats": list(b.formats),
                "certificates": [certs.thumbprint(c) for c in b.certificates],
                "private_key": b.private_key is not None,
                "csrs": len(b.csrs),
            }
            for b, k in zip(bundles, kinds, strict=True)
        ],
        "certificates": cert_rows,
        "chains": chains_out,
        "left_out": left_out,
        "keys": keys_out,
        "csrs": csrs_out,
        "warnings": [f.to_json() for f in _dedupe(findings)],
    }


def _forbidden_in_sources(cert: certs.Certificate, pool: Sequence[certs.Certificate]) -> certs.Finding:
    return certs.Finding(
        "forbidden_root_in_chain",
        f"{certs.describe_certificate(cert, pool)} is a forbidden root (SHA-1 {certs.thumbprint(cert)}); "
        "it must not be enabled in the server's Trusted Root store",
        certs.thumbprint(cert),
    )


def _dedupe(findings: list[certs.Finding]) -> list[certs.Finding]:
    seen: set[tuple[str, str, str]] = set()
    out = []
    for f in findings:
        key = (f.code, f.certificate, f.message)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def _role(c: certs.Certificate, pool: Sequence[certs.Certificate], leaf_tps: set[str]) -> str:
    if certs.is_self_signed(c):
        return "root" if certs.is_ca_certificate(c) else "leaf"
    if certs.is_cross_certificate(c, pool):
        return "cross"
    if certs.thumbprint(c) in leaf_tps and not certs.summarize(c).is_ca:
        return "leaf"
    return "intermediate" if certs.summarize(c).is_ca else "leaf"


# --- rendering -----------------------------------------------------------------------------------


def render_json(report: dict[str, Any]) -> str:
    """The report as JSON; control characters of certificate fields and sources as ``\\uNNNN``."""
    return escape_json(report)


def render_text(report: dict[str, Any]) -> str:
    """The report for a terminal: every line through :func:`opslib.text.escape_text` (subjects, names,
    sources and warnings come from certificates, endpoints and file names)."""
    lines: list[str] = []
    certificates = report["certificates"]
    by_tp = {c["sha1"]: c for c in certificates}
    lines.append(f"Certificates ({len(certificates)})")
    for i, c in enumerate(certificates, 1):
        flags = [c["role"]]
        if c.get("known_as"):
            flags.append(f"known: {c['known_as']}")
        if c.get("forbidden_root"):
            flags.append("FORBIDDEN ROOT")
        lines.append(f"  [{i}] {c['common_name']}  ({'; '.join(flags)})")
        sans = ", ".join(c["dns_names"] + c["ip_addresses"]) or "(none)"
        usage = ", ".join(c["key_usage"]) or "-"
        if c["extended_key_usage"]:
            usage += "; " + ", ".join(c["extended_key_usage"])
        rows = [
            ("SHA-1", c["sha1"]),
            ("SHA-256", c["sha256"]),
            ("Subject", c["subject"]),
            ("Issuer", c["issuer"]),
            ("Serial", c["serial"]),
            ("Valid", f"{c['not_before_utc']} → {c['not_after_utc']} ({c['days_left']} days left)"),
            ("SANs", sans),
            (
                "Key",
                f"{c['key_type']} {c['key_size'] or ''}".strip() + f", signed {c['signature_algorithm']}",
            ),
            ("Usage", usage),
            ("CA", f"{'yes' if c['is_ca'] else 'no'}; self-signed: {'yes' if c['self_signed'] else 'no'}"),
            ("SKI / AKI", f"{c['subject_key_id'] or '-'} / {c['authority_key_id'] or '-'}"),
            ("From", ", ".join(c["sources"])),
        ]
        if c["same_key_as"]:
            rows.append(("Same key", ", ".join(c["same_key_as"])))
        lines += [f"      {k:<10} {v}" for k, v in rows]
    if report.get("csrs"):
        lines.append("")
        lines.append(f"Certificate requests ({len(report['csrs'])})")
        for r in report["csrs"]:
            match = ", ".join(r["matches"]) or "no certificate here has its key"
            lines.append(
                f"  {r['subject']}  ({r['key_type']} {r['key_size']}; from {r['source']}) key matches: {match}"
            )
            lines.append(f"      {'Names':<10} {', '.join(r['dns_names']) or '(none: subject only)'}")
            lines.append(
                f"      {'Signature':<10} {r['signature_hash']}{'' if r['signature_valid'] else ' (INVALID)'}"
            )
            lines.append(f"      {'Key SHA-256':<10} {r['key_sha256']}")
    if report.get("keys"):
        lines.append("")
        lines.append("Private keys")
        for k in report["keys"]:
            match = ", ".join(k["matches"]) or "matches no certificate here"
            lines.append(f"  from {k['source']}: {match}")
    lines.append("")
    lines.append(f"Chains ({len(report['chains'])})")
    for ch in report["chains"]:
        state = "complete" if ch["complete"] else "INCOMPLETE"
        anchor = ch["anchor"]
        anchor_name = by_tp[anchor]["common_name"] if anchor in by_tp else _catalogue_name(anchor)
        anchor_text = f", anchor {anchor_name}" if anchor else ""
        if ch.get("forbidden_root"):
            anchor_text += " (FORBIDDEN ROOT)"
        lines.append(f"  {state}{anchor_text}: {ch['names']}")
    lines.append("")
    warnings = report["warnings"]
    if warnings:
        lines.append(f"Warnings ({len(warnings)})")
        lines += [f"  ! {w['code']}: {w['message']}" for w in warnings]
    else:
        lines.append("No warnings.")
    return "\n".join(escape_text(line) for line in lines)


def _catalogue_name(sha1: str | None) -> str:
    for entry in certs.KNOWN.entries:
        if entry.sha1 == sha1:
            return f"{entry.name} (catalogue)"
    return sha1 or ""


__all__ = ["inspect_sources", "read_source", "render_json", "render_text"]
