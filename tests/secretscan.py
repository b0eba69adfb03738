"""Secret scan for evidence folders (shared by every end-to-end test).

``assert_no_secrets(folder, secrets)`` reads every file under ``folder`` as bytes — notebooks,
``run.json``, ``transcript.jsonl``, ``html/`` renders, ``.reg`` backups, anything else, binary
files too — and fails when it finds:

* a secret in any of :func:`opslib.credentials.forms` (plain, base64, UTF-16LE, URL-encoded), each
  searched as UTF-8 and UTF-16LE bytes, and HTML-/JSON-escaped;
* a PEM private-key header (``-----BEGIN … PRIVATE KEY-----``);
* a PKCS#12 structure: the DER of the PKCS#12 bag-type or PBE object identifiers, raw, hex or
  base64 at any alignment (``certutil -encode`` wraps a PFX in ``BEGIN CERTIFICATE`` lines, so the
  header alone proves nothing);
* a bare private key: the DER opening of a PKCS#8 PrivateKeyInfo (RSA, EC, Ed25519), a PKCS#1
  RSAPrivateKey, or the PBES2 OID of an encrypted key — raw, hex or base64 at any alignment.

Failure messages name the file and the kind of finding, never the secret itself.
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Iterable
from pathlib import Path

from opslib.credentials import forms

# DER of OID prefixes: pkcs-12 bag types 1.2.840.113549.1.12.10.1 and pkcs-12 PBE ids 1.2.840.113549.1.12.1
# (RFC 7292, appendix D). A PFX always holds at least one of them.
_PKCS12_OIDS = {
    "PKCS#12 bag type OID": bytes.fromhex("060B2A864886F70D010C0A01"),
    "PKCS#12 PBE OID": bytes.fromhex("060A2A864886F70D010C01"),
}
# Private keys outside a PFX (RFC 5208 / RFC 5958 PrivateKeyInfo, RFC 8017 RSAPrivateKey): the DER that
# opens the structure — version 0 followed by the key's AlgorithmIdentifier (PKCS#8) or by the modulus
# (PKCS#1) — and the PBES2 OID of an EncryptedPrivateKeyInfo. A certificate's SubjectPublicKeyInfo
# carries the same algorithm OIDs but never after "INTEGER 0".
_KEY_DER = {
    "PKCS#8 RSA private key": bytes.fromhex("020100300D06092A864886F70D0101010500"),
    "PKCS#8 EC private key": bytes.fromhex("020100301306072A8648CE3D0201"),
    "PKCS#8 Ed25519 private key": bytes.fromhex("020100300506032B6570"),
    "PKCS#1 RSA private key": bytes.fromhex("0201000282"),
    "PKCS#5 PBES2 OID (encrypted key)": bytes.fromhex("06092A864886F70D01050D"),
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
    for kind, oid in {**_PKCS12_OIDS, **_KEY_DER}.items():
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


def run_folders(base: str | os.PathLike[str]) -> list[Path]:
    """Every evidence run folder (a folder holding ``run.json``) under ``base``."""
    return sorted({p.parent for p in Path(base).rglob("run.json") if p.is_file()})


def scan_runs(base: str | os.PathLike[str], secrets: Iterable[str]) -> tuple[list[Path], list[str]]:
    """Scan every run folder under ``base``: (the folders, every finding as ``"<folder>/<file>: <kind>"``)."""
    wanted = sorted({s for s in secrets if len(s) >= 6})
    folders = run_folders(base)
    findings: list[str] = []
    for folder in folders:
        findings += [f"{folder}/{item}" for item in scan(folder, wanted)]
    return folders, findings
