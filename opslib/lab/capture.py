"""``opslib lab capture``: run the probe set against a host and write one bundle folder.

The bundle: ``capture.json`` (the manifest: kit and probe-set versions, where it came from, the host's
facts, one record per probe — every command line, exit code, code page, duration and the files holding
its raw stdout/stderr bytes — and the SHA-256 of every file) plus ``probes/<id>/…`` files. Command lines
and bytes pass through redaction; the throw-away certificate's PFX and key never enter the bundle.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import credentials
from ..errors import OpsError, UsageError
from ..params import read_yaml
from ..version import __version__
from ..winrm import Connection, connect_params
from .probes import PROBE_SET_VERSION, READ_ONLY, Probe, Recorder, probe_error
from .reversible import REVERSIBLE

FORMAT = "opslib-lab-capture/1"
MANIFEST = "capture.json"
TIERS = ("read-only", "reversible")
SOURCES = ("operator capture", "rehearsal host")
_NT = r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion"
_LANGUAGE = r"HKLM\SYSTEM\CurrentControlSet\Control\Nls\Language"
# Install language ids (LANGID, https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-lcid/)
_LANGIDS = {"0409": "en", "0411": "ja"}


def probes_for(tier: str) -> tuple[Probe, ...]:
    if tier not in TIERS:
        raise UsageError(f"unknown tier {tier!r}", hint="read-only or reversible")
    return READ_ONLY + (REVERSIBLE if tier == "reversible" else ())


def _query_value(conn: Connection, key: str, name: str) -> str:
    """``reg query KEY /v NAME``: the data after the (unlocalized) type name, "" when absent."""
    r = conn.run(["reg", "query", key, "/v", name], check=False, what=f"lab: read {name}")
    m = re.search(rb"\s" + re.escape(name.encode()) + rb"\s+REG_\w+\s+(.*?)\s*$", r.stdout, re.M)
    return m.group(1).decode("ascii", "replace") if (r.exit_code == 0 and m) else ""


def host_facts(conn: Connection, identify: Mapping[str, str], iis: tuple[int, int]) -> dict[str, Any]:
    """OS/IIS facts: Windows version and build from the registry, IIS version (InetStp), code page
    (``chcp``, read when the connection opened), language (install LANGID; else from the code page)."""
    version = _query_value(conn, _NT, "CurrentVersion")
    build = _query_value(conn, _NT, "CurrentBuildNumber")
    langid = _query_value(conn, _LANGUAGE, "InstallLanguage")
    language, language_from = (
        (_LANGIDS.get(langid.upper(), langid), "InstallLanguage") if langid else ("", "")
    )
    if not language:
        language, language_from = ("ja" if conn.codepage == 932 else "en"), "code page"
    m = re.search(r"Stack: ([\d.]+)", identify.get("ProductVersion", ""))
    return {
        "windows_version": f"{version}.{build}" if version and build else version,
        "service_pack": _query_value(conn, _NT, "CSDVersion"),
        "product_name": _query_value(conn, _NT, "ProductName"),
        "iis_major": iis[0],
        "iis_minor": iis[1],
        "codepage": conn.codepage,
        "language": language,
        "language_from": language_from,
        "winrm_product_version": identify.get("ProductVersion", ""),
        "winrm_stack": m.group(1) if m else "",
    }


def run_probes(conn: Connection, folder: Path, *, tier: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run every probe of ``tier``; (per-probe records, scratch facts). A probe that fails is recorded."""
    rec = Recorder(conn, folder)
    records: list[dict[str, Any]] = []
    for probe in probes_for(tier):
        rec.begin(probe.id)
        error = ""
        try:
            decision = probe.fn(rec)
        except OpsError as exc:
            decision, error = probe_error(exc), credentials.redact(str(exc))
        records.append(
            {
                "id": probe.id,
                "tier": probe.tier,
                "rows": list(probe.rows),
                "what": probe.what,
                "commands": rec.commands,
                "decision": decision,
                "facts": rec.facts,
                "error": error,
            }
        )
    return records, rec.scratch


def _file_hashes(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }


def _empty_folder(out: str | Path) -> Path:
    folder = Path(out)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UsageError(f"{folder} is not an empty folder", hint="give a new folder for the bundle")
    return folder


def capture_connection(
    conn: Connection,
    out: str | Path,
    *,
    tier: str = "read-only",
    source: str = "operator capture",
    label: str = "",
) -> dict[str, Any]:
    """Run the probes over an open connection and write the bundle into ``out`` (new or empty)."""
    if source not in SOURCES:
        raise UsageError(f"unknown source {source!r}", hint=" or ".join(SOURCES))
    folder = _empty_folder(out)
    folder.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    records, scratch = run_probes(conn, folder, tier=tier)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "kit_version": __version__,
        "probe_set_version": PROBE_SET_VERSION,
        "source": source,
        "tier": tier,
        "host_label": label or conn.host,
        "captured_utc": started.isoformat(timespec="seconds"),
        "host": host_facts(
            conn,
            scratch.get("identify", {}),
            (int(scratch.get("iis_major", 0)), int(scratch.get("iis_minor", 0))),
        ),
        "probes": records,
    }
    manifest["files"] = _file_hashes(folder)
    text = credentials.redact(json.dumps(manifest, indent=2, ensure_ascii=False, sort_keys=False))
    (folder / MANIFEST).write_text(text + "\n", encoding="utf-8")
    return manifest


def capture(
    params: str | Path | Mapping[str, Any],
    out: str | Path,
    *,
    tier: str = "read-only",
    source: str = "operator capture",
) -> dict[str, Any]:
    """Connect with the parameters file's ``winrm`` section and capture (see :func:`capture_connection`)."""
    if isinstance(params, Mapping):
        data: Mapping[str, Any] = params
    else:
        data = read_yaml(params)
    host = str(data.get("host") or "server")
    probes_for(tier)
    _empty_folder(out)  # before connecting
    with connect_params(dict(data.get("winrm") or {}), host=host) as conn:
        return capture_connection(conn, out, tier=tier, source=source, label=host)


def load(folder: str | Path) -> dict[str, Any]:
    """Read a bundle's manifest and check every file's SHA-256 (a changed bundle is refused)."""
    root = Path(folder)
    path = root / MANIFEST
    if not path.is_file():
        raise UsageError(f"{root} holds no {MANIFEST}", hint="give a folder written by `opslib lab capture`")
    manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT:
        raise UsageError(f"{path}: not a lab capture ({manifest.get('format')!r})")
    for rel, digest in manifest.get("files", {}).items():
        file = root / rel
        if not file.is_file() or hashlib.sha256(file.read_bytes()).hexdigest() != digest:
            raise UsageError(f"{path}: {rel} is missing or changed since the capture", hint="capture again")
    return manifest
