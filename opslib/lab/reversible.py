"""The reversible tier: a throw-away certificate through the store changes the kit makes.

One probe, ``store.throwaway``: a self-signed certificate made here (``cryptography``, one day valid, a
fresh key) goes into MY — ``certutil -f -p PW -importPFX MY F.pfx`` (with its key; certutil reference,
https://learn.microsoft.com/en-us/windows-server/administration/windows-commands/certutil#-importpfx), or,
where that verb fails, ``certutil -addstore MY F.cer`` (certificate only, W-CERTUTIL-ADDSTORE) — then is
disabled for all purposes and enabled again exactly as step 0 does (``ops.roots.disable_roots`` /
``ops.roots.restore_roots``: ``.reg`` backup, ``certutil -repairstore`` with the INF, ``reg import``),
exported to a PFX (``ops.export.export_pfx`` when it has a key, else the bare ``certutil -exportPFX`` whose
failure is recorded) and deleted (``certutil -delstore MY THUMB``; an imported key's container with
``certutil -delkey CONTAINER`` — whether that removes a machine key without ``-csp`` is [U], its exit code is
kept as a fact). Every change is read back. Nothing else is touched: the certificate is new, its
thumbprint is checked absent first, and the local copies (PFX, key, ``.reg`` backup) live in a temporary
folder removed at the end — none of them goes into the bundle.
"""

from __future__ import annotations

import secrets as _random
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from .. import certs, credentials
from ..errors import OpsError, PreconditionFailed
from ..ops import export as export_step
from ..ops import roots as roots_step
from ..server import Server, stores
from ..server.regfile import ENHKEY_USAGE, parse_blob
from ..winrm import Raw
from .belief_probes import BELIEF_PROBES
from .probes import Probe, Recorder


def make_throwaway(label: str) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"opslib lab throw-away {label}")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _gone(rec: Recorder, label: str, path: str) -> bool:
    """``del /f /q F`` then ``if exist "F" (exit /b 7)``: True when the file is gone (W-DEL, W-IF-EXIST)."""
    rec.run(f"{label}-del", ["del", "/f", "/q", path])
    return (
        rec.run(
            f"{label}-exists", [Raw("if"), Raw("exist"), path, Raw("(exit"), Raw("/b"), Raw("7)")]
        ).exit_code
        != 7
    )


def _throwaway(rec: Recorder) -> dict[str, Any]:
    conn = rec.conn
    tag = _random.token_hex(4)
    cert, key = make_throwaway(tag)
    thumb = certs.thumbprint(cert)
    password = _random.token_hex(16)  # one-time; certutil-safe (no leading -, no comma, no space)
    credentials.register(password)
    out: dict[str, Any] = {}
    before, _ = stores.read_entry(conn, "MY", thumb)
    if before is not None:
        raise PreconditionFailed(
            conn.host, f"MY already holds {thumb}: the lab check touches no existing certificate"
        )
    with tempfile.TemporaryDirectory(prefix="opslib-lab-") as local:
        pfx = pkcs12.serialize_key_and_certificates(
            b"opslib-lab",
            key,
            cert,
            None,
            serialization.BestAvailableEncryption(password.encode()),
        )
        remote_pfx = rec.temp(".pfx")
        conn.upload(pfx, remote_pfx, what="lab probe: upload the throw-away PFX")
        try:
            imported = rec.run(
                "importpfx",
                ["certutil", "-f", "-p", password, "-importPFX", "MY", remote_pfx],
                names=["certutil", "", "", "PFX password"],
                secret_values=[password],
            ).exit_code
        finally:
            out["pfx_gone_after_del"] = _gone(rec, "pfx", remote_pfx)
        rec.facts["importpfx_exit_code"] = imported
        out["route"] = "importPFX" if imported == 0 else "addstore"
        added = None
        if imported != 0:
            remote_cer = rec.temp(".cer")
            conn.upload(
                cert.public_bytes(serialization.Encoding.DER),
                remote_cer,
                what="lab probe: upload the certificate",
            )
            try:
                added = rec.run("addstore", ["certutil", "-addstore", "MY", remote_cer]).exit_code
            finally:
                _gone(rec, "cer", remote_cer)
        rec.facts["addstore_exit_code"] = added
        try:
            entry, _ = stores.read_entry(conn, "MY", thumb)
            out["present_after_add"] = entry is not None
            if entry is None:
                return out
            rec.facts["key_link_after_add"] = entry.has_key_link
            # Step 0's disable, then its undo, each read back by the kit's own functions.
            try:
                roots_step.disable_roots(Server(conn), [entry], backup_dir=Path(local))
                after, _ = stores.read_entry(conn, "MY", thumb)
                out["disabled_read_back"] = after is not None and after.purposes == ()
                rec.facts["eku_property9_after_kit_inf"] = _property9(after)
                backups = sorted(Path(local).glob("root-backup_*.reg"))
                roots_step.restore_roots(Server(conn), backups)
                again, _ = stores.read_entry(conn, "MY", thumb)
                out["restored_read_back"] = again is not None and again.blob == entry.blob
                _documented_eku_form(rec, thumb)  # W-CERTUTIL-REPAIRSTORE-INF: the form Microsoft documents
                roots_step.restore_roots(Server(conn), backups)
            except OpsError as exc:
                out["disable_restore_error"] = type(exc).__name__
            # Export: the kit's export when there is a key, else the bare verb (its failure is the fact).
            if entry.has_key_link:
                try:
                    result = export_step.export_pfx(
                        Server(conn), thumb, password=_random.token_hex(16), chain=False, anchors=[]
                    )
                    out["export"] = "ok" if result.check.ok else "not a usable PFX"
                except OpsError as exc:
                    out["export"] = type(exc).__name__
            else:
                remote_out = rec.temp(".pfx")
                refused = (
                    rec.run(
                        "exportpfx-no-key",
                        ["certutil", "-p", password, "-exportPFX", "MY", thumb, remote_out, "NoChain"],
                        names=["certutil", "", "PFX password"],
                        secret_values=[password],
                    ).exit_code
                    != 0
                )
                out["export"] = "refused without a key" if refused else "exit 0 without a key"
                _gone(rec, "exported", remote_out)
        finally:
            container = ""
            current, _ = stores.read_entry(conn, "MY", thumb)
            if current is not None:
                container = current.key_container or ""
                out["delstore_exit_code"] = rec.run(
                    "delstore", ["certutil", "-delstore", "MY", thumb]
                ).exit_code
                if container:
                    # The key file stays after -delstore; -delkey removes the container (certutil reference).
                    rec.facts["delkey_exit_code"] = rec.run(
                        "delkey", ["certutil", "-delkey", container]
                    ).exit_code
            gone, _ = stores.read_entry(conn, "MY", thumb)
            out["absent_after_delete"] = gone is None
    return out


# certutil's page documents the EKU property only as `9 = "{text}"` + `_continue_ = "OID,"` lines
# (https://learn.microsoft.com/en-us/windows-server/administration/windows-commands/certutil#-repairstore);
# the kit writes `9 = "{hex}30 00"` (an empty EKU list, a form the page shows only for custom properties).
# A real server settles both: the kit's form by disabled_read_back (its effect, read back before anything
# else changes) and the documented form here, on the throw-away certificate: its property 9 must read back
# as the DER of the one OID it names (SEQUENCE { serverAuth } = 300a06082b06010505070301).
DOCUMENTED_EKU_INF = (
    b'[Version]\r\nSignature = "$Windows NT$"\r\n\r\n[Properties]\r\n'
    b'9 = "{text}"\r\n  _continue_ = "1.3.6.1.5.5.7.3.1,"\r\n'
)
SERVER_AUTH_EKU_DER = "300a06082b06010505070301"


def _property9(entry: stores.StoreEntry | None) -> str | None:
    """Property 9 (EKU) of the key's Blob as hex, or None when the property (or the key) is absent."""
    if entry is None:
        return None
    value = parse_blob(entry.blob)[0].get(ENHKEY_USAGE)
    return value.hex() if value is not None else None


def _documented_eku_form(rec: Recorder, thumb: str) -> None:
    inf = rec.temp(".inf")
    rec.conn.upload(DOCUMENTED_EKU_INF, inf, what="lab probe: upload the documented EKU INF")
    try:
        rec.facts["eku_documented_text_form_exit_code"] = rec.run(
            "repairstore-text-eku", ["certutil", "-repairstore", "MY", thumb, inf]
        ).exit_code
    finally:
        _gone(rec, "inf", inf)
    after, _ = stores.read_entry(rec.conn, "MY", thumb)
    rec.facts["eku_property9_after_documented_text_inf"] = _property9(after)
    rec.facts["eku_documented_text_form_as_documented"] = _property9(after) == SERVER_AUTH_EKU_DER


REVERSIBLE: tuple[Probe, ...] = (
    Probe(
        "store.throwaway",
        "reversible",
        (
            "W-CERTUTIL-ADDSTORE",
            "W-CERTUTIL-REPAIRSTORE-INF",
            "W-REG-IMPORT",
            "W-REG-EXPORT",
            "W-REG-STORE-LAYOUT",
            "W-CERTUTIL-EXPORTPFX",
            "W-CERTUTIL-EXITCODE",
            "W-DEL",
            "W-IF-EXIST",
        ),
        "certutil -importPFX|-addstore MY; certutil -repairstore MY T F.inf; reg import; "
        "certutil -exportPFX MY T F.pfx; certutil -delstore MY T",
        _throwaway,
    ),
)
# certutil -hashfile on a held and an empty throw-away file (:mod:`.belief_probes`, issue 24).
REVERSIBLE += tuple(Probe(*spec) for spec in BELIEF_PROBES if spec[1] == "reversible")
