"""Secret scan for evidence folders (shared by every end-to-end test).

``assert_no_secrets(folder, secrets)`` reads every file under ``folder`` as bytes — notebooks,
``run.json``, ``transcript.jsonl``, ``html/`` renders, ``.reg`` backups, anything else, binary
files too — and fails when it finds:

* a secret in any of :func:`opslib.secrets.forms` (plain, base64, UTF-16LE, URL-encoded), each
  searched as UTF-8 and UTF-16LE bytes, and HTML-/JSON-escaped;
* a PEM private-key header (``-----BEGIN … PRIVATE KEY-----``);
* a PKCS#12 structure: the DER of the PKCS#12 bag-type or PBE object identifiers, raw, hex or
  base64 at any alignment (``certutil -encode`` wraps a PFX in ``BEGIN CERTIFICATE`` lines, so the
  header alone proves nothing).

Failure messages name the file and the kind of finding, never the secret itself.
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Iterable
from pathlib import Path

from opslib.secrets import forms

# DER of OID prefixes: pkcs-12 bag types 1.2.840.113549.1.12.10.1 and pkcs-12 PBE ids 1.2.840.113549.1.12.1
# (RFC 7292, appendix D). A PFX always holds at least one of them.
_PKCS12_OIDS = {
    "PKCS#12 bag type OID": bytes.fromhex("060B2A864886F70D010C0A01"),
    "PKCS#12 PBE OID": bytes.fromhex("060A2A864886F70D010C01"),
}
_PEM_KEY_MARKERS = (b"PRIVATE KEY-----", "PRIVATE KEY-----".encode("utf-16-le"))


def _b64_needles(pattern: bytes) -> list[bytes]:
    """Base64 fragments that appear whenever ``pattern`` is base64-encoded, at any of the 3 alignments."""
    out: list[bytes] = []
    for shift in range(3):
        enc = base64.b64encode(b"\0" * shift + pattern)
        # Keep only characters whose 6 bits all come from the pattern.
        first = -(-8 * shift // 6)
        last = 8 * (shift + len(pattern)) // 6
        out.append(enc[first:last])
    return out


def _needles(secret: str) -> list[tuple[str, bytes]]:
    found: list[tuple[str, bytes]] = []
    for n, form in enumerate(forms(secret)):
        variants = {form, html.escape(form), json.dumps(form)[1:-1]}
        for variant in variants:
            for enc in ("utf-8", "utf-16-le"):
                try:
                    found.append((f"secret form {n} ({enc})", variant.encode(enc)))
                except UnicodeEncodeError:
                    continue
    return found


def scan(folder: str | os.PathLike[str], secrets: Iterable[str]) -> list[str]:
    """Every finding as ``"<relative path>: <kind>"`` (empty when the folder is clean)."""
    root = Path(folder)
    needles: list[tuple[str, bytes]] = []
    for index, secret in enumerate(s for s in secrets if s):
        needles += [(f"secret #{index} {kind}", b) for kind, b in _needles(secret)]
    for kind, oid in _PKCS12_OIDS.items():
        needles.append((kind, oid))
        needles.append((f"{kind} (hex)", oid.hex().encode()))
        needles.append((f"{kind} (HEX)", oid.hex().upper().encode()))
        needles += [(f"{kind} (base64)", b) for b in _b64_needles(oid)]
    findings: list[str] = []
    files = [p for p in sorted(root.rglob("*")) if p.is_file()]
    assert files, f"{root} holds no files: nothing was scanned"
    for path in files:
        data = path.read_bytes()
        rel = path.relative_to(root)
        if any(m in data for m in _PEM_KEY_MARKERS):
            findings.append(f"{rel}: PEM private-key header")
        # Base64 is wrapped in lines (certutil -encode: 64 columns), sometimes JSON-escaped.
        joined = b"".join(data.replace(b"\\r", b" ").replace(b"\\n", b" ").split())
        for kind, needle in needles:
            if needle and (needle in data or (kind.endswith("(base64)") and needle in joined)):
                findings.append(f"{rel}: {kind}")
    return sorted(set(findings))


def assert_no_secrets(folder: str | os.PathLike[str], secrets: Iterable[str]) -> None:
    """Fail (naming file and kind, never the secret) when ``folder`` holds a secret or key material."""
    secrets = list(secrets)
    assert all(len(s) >= 4 for s in secrets), "scan for real secrets (4+ characters), not placeholders"
    findings = scan(folder, secrets)
    assert not findings, "secrets or key material in the evidence:\n  " + "\n  ".join(findings)
