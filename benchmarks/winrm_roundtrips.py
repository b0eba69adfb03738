"""HTTP round trips and seconds per remote command, per channel: Basic/HTTP, NTLM-sealed HTTP, TLS 1.0 HTTPS.

Runs against loopback rehearsal endpoints (bare emulated hosts), so the numbers show protocol cost
(requests, serialisation, NTLM sealing, TLS), not network latency: multiply the request counts by your
RTT. Channels, as each Windows ships WinRM (``rehearsal.shipped_options``):

* Basic over plain HTTP (a lab only; also ``winrm.Session.run_cmd`` for comparison);
* NTLM with WinRM message encryption over HTTP (Server 2008 R2 and later);
* NTLM over HTTPS with TLS 1.0 (Server 2003, ``winrm.tls: legacy-tls1.0``).

Targets (docs/benchmarks.md): ≤ 3 requests per command on a reused shell; upload ≤ 3 requests per chunk.

    .venv/bin/python benchmarks/winrm_roundtrips.py [--commands N] [--size BYTES]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import time
from typing import Any

import winrm

from opslib import rehearsal
from opslib import winrm as transport
from opslib.rehearsal.host import Host, Invocation
from opslib.rehearsal.programs import filecodec

PASSWORD = "Bench-Pa55word!"
W2003, W2019 = "5.2.3790", "10.0.17763"

# name, Windows version, rehearsal.start() options, Connection options
CHANNELS: tuple[tuple[str, str, dict[str, Any], dict[str, Any]], ...] = (
    (
        "Basic/HTTP",
        W2003,
        {},
        {"transport": "basic", "allow_unencrypted_basic": True, "allow_cleartext_secrets": True},
    ),
    ("NTLM-sealed HTTP", W2019, rehearsal.shipped_options(W2019), {"transport": "ntlm"}),
    (
        "NTLM/HTTPS TLS 1.0",
        W2003,
        rehearsal.shipped_options(W2003),
        {"transport": "ntlm", "tls": "legacy-tls1.0"},
    ),
)


def _echoargs(inv: Invocation) -> int:
    inv.write(json.dumps(inv.argv[1:]) + "\r\n")
    return 0


def _host(windows_version: str) -> Host:
    host = Host(windows_version=windows_version)
    host.programs["echoargs"] = _echoargs
    filecodec.register(host)
    return host


def _row(name: str, requests: int, seconds: float, units: int, unit: str) -> tuple[str, str, str, str]:
    return (name, f"{requests / units:.2f}", f"{seconds / units * 1000:.1f}", f"{units} {unit}")


def _measure(
    name: str,
    windows_version: str,
    start: dict[str, Any],
    options: dict[str, Any],
    *,
    commands: int,
    size: int,
) -> tuple[list[tuple[str, str, str, str]], str]:
    rows = []
    with rehearsal.start(_host(windows_version), password=PASSWORD, **start) as r:
        if name == "Basic/HTTP":
            session = winrm.Session(r.url, auth=(r.user, PASSWORD), transport="basic", ca_trust_path=None)
            n0, t0 = r.request_count, time.perf_counter()
            for i in range(commands):
                session.run_cmd("echoargs", [str(i)])
            rows.append(
                _row(
                    "  winrm.Session.run_cmd",
                    r.request_count - n0,
                    time.perf_counter() - t0,
                    commands,
                    "commands",
                )
            )
        n0, t0 = r.request_count, time.perf_counter()
        conn = transport.connect(
            r.url,
            username=r.user,
            password=PASSWORD,
            host_label="bench",
            ca_trust_path=str(r.ca_file) if r.ca_file else None,
            **options,
        )
        with conn:
            rows.append(
                _row(
                    "  open (auth, shell, chcp)",
                    r.request_count - n0,
                    time.perf_counter() - t0,
                    1,
                    "connection",
                )
            )
            channel = conn.channel
            n0, t0 = r.request_count, time.perf_counter()
            for i in range(commands):
                conn.run(["echoargs", str(i)])
            rows.append(
                _row(
                    "  Connection.run (reused shell)",
                    r.request_count - n0,
                    time.perf_counter() - t0,
                    commands,
                    "commands",
                )
            )
            data = os.urandom(size)
            remote = conn.temp_dir + "\\bench.bin"
            chunks = -(-len(base64.b64encode(data)) // transport.ECHO_CHUNK_MAX)
            conn.upload(data, remote, secret=True)  # the first also probes certutil -hashfile (cached)
            n0, t0 = r.request_count, time.perf_counter()
            conn.upload(data, remote, secret=True)
            rows.append(
                _row(
                    f"  upload {size // 1000} KB (per chunk)",
                    r.request_count - n0,
                    time.perf_counter() - t0,
                    chunks,
                    "chunks",
                )
            )
            n0, t0 = r.request_count, time.perf_counter()
            back = conn.download(remote, secret=True)
            rows.append(
                _row(
                    f"  download {size // 1000} KB", r.request_count - n0, time.perf_counter() - t0, 1, "file"
                )
            )
            assert back == data
    tls = f"{channel['tls_version']} {channel['cipher']}" if channel["tls_version"] else "no TLS"
    sealed = "message encryption" if channel["message_encryption"] else "no message encryption"
    return rows, f"{name}: {channel['auth']}, {tls}, {sealed}, confidential={channel['confidential']}"


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--commands", type=int, default=50)
    ap.add_argument("--size", type=int, default=200_000, help="bytes to upload and download (default 200 KB)")
    a = ap.parse_args()
    table: list[tuple[str, str, str, str]] = [("operation", "requests/unit", "ms/unit", "units")]
    notes = []
    for name, version, start, options in CHANNELS:
        rows, note = _measure(name, version, start, options, commands=a.commands, size=a.size)
        table += [(name, "", "", ""), *rows]
        notes.append(note)
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    for n, row in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    print()
    for note in notes:
        print(note)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
