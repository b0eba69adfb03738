"""Which request run a renewal's key comes from: run.json's ``request_run`` (``opslib request``, issue 28).

The renewal reads the CA's file locally before anything is contacted, takes the SHA-256 of its
certificate's public key, and looks for the newest request run of the same evidence root that recorded
that key (``request_key_sha256``). Nothing found: no ``request_run`` (the request was made elsewhere, e.g.
in the IIS wizard).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .. import certs
from .. import params as params_
from ..errors import CertificateError
from .record import link
from .steps import REQUEST_MODE


def request_run_for(root: Path, key_sha256: str) -> dict[str, Any] | None:
    """The newest finished request run of ``root`` whose request carries the key ``key_sha256``."""
    if not root.is_dir():
        return None
    found: str | None = None
    for run_json in sorted(root.glob("*/run.json")):
        try:
            doc = json.loads(run_json.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        facts = doc.get("facts") or {}
        if doc.get("mode") == REQUEST_MODE and facts.get("request_key_sha256") == key_sha256:
            found = run_json.parent.name
    return link(root, found) if found else None


def key_sha256_of(path: Path) -> str:
    """SHA-256 of the public key of the certificate in the CA's file ("" when it cannot be read)."""
    try:
        bundle = certs.load_certificates(path.read_bytes(), source=str(path))
        leaf = bundle.require_leaf()
    except (OSError, ValueError, CertificateError):
        return ""
    return hashlib.sha256(certs.public_key_info(leaf)).hexdigest()


def run_folders(evidence_root: str | os.PathLike[str] | None) -> list[Path]:
    """The run folders of the evidence root a renewal's parameters use (``./evidence`` by default)."""
    root = Path(evidence_root or "evidence").resolve()
    return sorted(p.parent for p in root.glob("*/run.json")) if root.is_dir() else []


def paste_lines(run_dir: Path, params_path: str | os.PathLike[str]) -> list[str]:
    """What ``opslib request`` prints after a request run: the CSR ready to paste, the request's
    thumbprint, what the CA will see, and the next command when the CA's mail arrives."""
    doc = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    facts = doc.get("facts") or {}
    csr_path = run_dir / str(facts.get("request_csr_file") or "request.csr")
    if not csr_path.is_file():
        return []
    text = csr_path.read_bytes().decode("ascii", errors="replace").replace("\r\n", "\n").strip()
    csr = certs.load_certificates(csr_path.read_bytes(), source=str(csr_path)).csrs[0]
    seen = certs.request_facts(csr)
    params = params_.load(params_path, absent_ok=("certificate_file",))
    lines = [
        "",
        "CA の申込フォームに貼り付ける要求 (CSR) / The request (CSR) to paste into the CA's form:",
        "",
        text,
        "",
        f"保留中の要求 / Pending request: {facts.get('request_thumbprint')} (REQUEST store, run {run_dir.name})",
        f"  subject: {seen.subject}",
        f"  names: {', '.join(seen.dns_names) or '(subject only) ' + seen.common_name}",
        f"  key: {seen.key_type} {seen.key_size} (SHA-256 {seen.key_sha256[:16]}…)",
        f"  signature: {seen.signature_hash}",
    ]
    if seen.signature_hash == "sha1":
        lines.append(
            "  ! SHA-1 署名の要求です (Windows Server 2003)。受け付けない CA があります / the request is "
            "SHA-1-signed (Windows Server 2003); some CAs refuse such requests"
        )
    lines += [
        f"  CSR file: {csr_path}",
        "",
        f"CA からメールが届いたら {params.get('certificate_file')} として保存し、次を実行 / When the CA's mail "
        f"arrives, save it as {params.get('certificate_file')} and run:",
        f"  opslib run {params_path}",
    ]
    return lines
