"""HTTP round trips and seconds per remote command: opslib's reused shell vs ``winrm.Session.run_cmd``.

Runs against a loopback rehearsal endpoint (a bare emulated host), so the numbers show protocol
cost (requests, serialisation), not network latency: multiply the request counts by your RTT.
Targets (README: Benchmarks): ≤ 3 requests per command on a reused shell; upload ≤ 3 requests per chunk.

    .venv/bin/python benchmarks/winrm_roundtrips.py [--commands N]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import time

import winrm

from opslib import rehearsal
from opslib import winrm as transport
from opslib.rehearsal.host import Host, Invocation
from opslib.rehearsal.programs import filecodec

PASSWORD = "Bench-Pa55word!"


def _echoargs(inv: Invocation) -> int:
    inv.write(json.dumps(inv.argv[1:]) + "\r\n")
    return 0


def _row(name: str, requests: int, seconds: float, units: int, unit: str) -> tuple[str, str, str, str]:
    return (name, f"{requests / units:.2f}", f"{seconds / units * 1000:.1f}", f"{units} {unit}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commands", type=int, default=50)
    ap.add_argument("--size", type=int, default=200_000, help="bytes to upload and download (default 200 KB)")
    a = ap.parse_args()
    host = Host()
    host.programs["echoargs"] = _echoargs
    filecodec.register(host)
    rows = []
    with rehearsal.start(host, password=PASSWORD) as r:
        session = winrm.Session(r.url, auth=(r.user, PASSWORD), transport="basic", ca_trust_path=None)
        n0, t0 = r.request_count, time.perf_counter()
        for i in range(a.commands):
            session.run_cmd("echoargs", [str(i)])
        rows.append(
            _row(
                "winrm.Session.run_cmd",
                r.request_count - n0,
                time.perf_counter() - t0,
                a.commands,
                "commands",
            )
        )

        with transport.connect(
            r.url,
            transport="basic",
            username=r.user,
            password=PASSWORD,
            host_label="bench",
            allow_unencrypted_basic=True,
        ) as conn:
            n0, t0 = r.request_count, time.perf_counter()
            for i in range(a.commands):
                conn.run(["echoargs", str(i)])
            rows.append(
                _row(
                    "opslib Connection.run (reused shell)",
                    r.request_count - n0,
                    time.perf_counter() - t0,
                    a.commands,
                    "commands",
                )
            )

            data = os.urandom(a.size)
            remote = conn.temp_dir + "\\bench.bin"
            chunks = -(-len(base64.b64encode(data)) // transport.ECHO_CHUNK_MAX)
            n0, t0 = r.request_count, time.perf_counter()
            transfer = conn.upload(data, remote)
            up_req, up_s = r.request_count - n0, time.perf_counter() - t0
            rows.append(_row(f"upload {a.size // 1000} KB, 1st (per chunk)", up_req, up_s, chunks, "chunks"))
            # The first upload also probes certutil -hashfile SHA256 (cached per connection).
            n0, t0 = r.request_count, time.perf_counter()
            conn.upload(data, remote)
            rows.append(
                _row(
                    f"upload {a.size // 1000} KB, again",
                    r.request_count - n0,
                    time.perf_counter() - t0,
                    chunks,
                    "chunks",
                )
            )
            n0, t0 = r.request_count, time.perf_counter()
            back = conn.download(remote)
            down_req, down_s = r.request_count - n0, time.perf_counter() - t0
            assert back == data and transfer.size == len(data)
    header = ("operation", "requests/unit", "ms/unit", "units")
    table = [header, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    for n, row in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
        if n == 0:
            print("  ".join("-" * w for w in widths))
    print()
    print(
        f"upload {a.size} B: {up_req} requests, {up_s:.3f} s ({transfer.commands} commands, verified by {transfer.verified_by})"
    )
    print(f"download {a.size} B: {down_req} requests, {down_s:.3f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
