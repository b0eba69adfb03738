"""What one renewal costs on the wire: remote commands, HTTP requests, bytes and wall time, per step.

A full renewal (``opslib.runbook.run`` of the step notebooks, scenario ``iis6-ja``, the make-demo
case) against a fresh rehearsal host, once per link latency. The latency is added on the server
side before every WS-Management request is read — one round trip of a slow link per request, as a
WAN between an operations centre and a data centre would add. Counting happens on the rehearsal
host (every request it reads, every command line its interpreter runs), so the numbers do not
depend on the kit's own bookkeeping and the same script measures an older checkout of the kit.

Targets (issue "Fewer round trips"): at most 100 remote commands and 300 HTTP requests per renewal,
and at 50 ms at most 15 s more wall time than at 0 ms. Run by hand; never a timed test.

    .venv/bin/python benchmarks/renewal_roundtrips.py [--latency-ms 0 50 100] [--scenario iis10] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import secrets
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from opslib import rehearsal, runbook
from opslib.rehearsal import cmd as rehearsal_cmd
from opslib.rehearsal import server as wsman

TARGET_COMMANDS = 100
TARGET_REQUESTS = 300
TARGET_EXTRA_S_AT_50 = 15.0


@dataclass
class Wire:
    """What the rehearsal host saw, with wall-clock times so it can be split by step."""

    latency_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[tuple[float, int]] = field(default_factory=list)  # (time, request body bytes)
    responses: list[tuple[float, int]] = field(default_factory=list)  # (time, response body bytes)
    commands: list[float] = field(default_factory=list)
    steps: list[tuple[str, float, float]] = field(default_factory=list)  # (notebook, start, end)


WIRE = Wire()


def _instrument() -> None:
    """Count on the server side: requests (and their bytes) and command lines; add the latency."""
    handler = wsman._Handler
    post, send_header = handler.do_POST, handler.send_header
    execute = rehearsal_cmd.execute

    def do_post(self: Any) -> None:
        if WIRE.latency_s:
            time.sleep(WIRE.latency_s)
        with WIRE.lock:
            WIRE.requests.append((time.time(), int(self.headers.get("Content-Length") or 0)))
        post(self)

    def header(self: Any, keyword: str, value: str) -> None:
        if keyword.lower() == "content-length":
            with WIRE.lock:
                WIRE.responses.append((time.time(), int(value)))
        send_header(self, keyword, value)

    def run_line(*args: Any, **kwargs: Any) -> Any:
        with WIRE.lock:
            WIRE.commands.append(time.time())
        return execute(*args, **kwargs)

    import papermill

    run_notebook = papermill.execute_notebook

    def execute_notebook(input_path: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.time()
        try:
            return run_notebook(input_path, *args, **kwargs)
        finally:
            WIRE.steps.append((Path(str(input_path)).stem, start, time.time()))

    papermill.execute_notebook = execute_notebook
    handler.do_POST = do_post  # type: ignore[method-assign]
    handler.send_header = header  # type: ignore[method-assign]
    rehearsal_cmd.execute = run_line  # type: ignore[assignment]
    if hasattr(wsman, "cmd"):
        wsman.cmd.execute = run_line  # the server module holds its own reference to the interpreter


def one_renewal(base: Path, latency_ms: int, scenario: str = "iis6-ja") -> dict[str, Any]:
    base.mkdir(parents=True)
    reh = rehearsal.start(scenario=scenario, password=os.environ["OPSLIB_BENCH_WINRM"], workdir=base / "host")
    data = reh.params(
        password_env="OPSLIB_BENCH_WINRM",
        pfx_password_env="OPSLIB_BENCH_PFX",
        backup_dir=str(base / "backups"),
    )
    params_file = base / "bench.yaml"
    params_file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    with WIRE.lock:
        WIRE.latency_s = latency_ms / 1000.0
        WIRE.requests.clear()
        WIRE.responses.clear()
        WIRE.commands.clear()
        WIRE.steps.clear()
    with reh, contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        t0 = time.perf_counter()
        code = runbook.run(params_file, evidence_root=base / "evidence", yes=True)
        wall = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"the renewal failed at {latency_ms} ms (exit {code}); see {base / 'evidence'}")
    steps = []
    for name, lo, hi in WIRE.steps:
        steps.append(
            {
                "step": name,
                "commands": sum(lo <= t <= hi for t in WIRE.commands),
                "requests": sum(lo <= t <= hi for t, _ in WIRE.requests),
                "bytes": sum(n for t, n in WIRE.requests if lo <= t <= hi)
                + sum(n for t, n in WIRE.responses if lo <= t <= hi),
                "wall_s": round(hi - lo, 2),
            }
        )
    inside = sum(s["commands"] for s in steps)
    steps.append(
        {
            "step": "(runner, outside the notebooks)",
            "commands": len(WIRE.commands) - inside,
            "requests": len(WIRE.requests) - sum(s["requests"] for s in steps),
            "bytes": 0,
            "wall_s": 0.0,
        }
    )
    return {
        "latency_ms": latency_ms,
        "commands": len(WIRE.commands),
        "requests": len(WIRE.requests),
        "bytes": sum(n for _, n in WIRE.requests) + sum(n for _, n in WIRE.responses),
        "wall_s": round(wall, 2),
        "steps": steps,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency-ms", type=int, nargs="+", default=[0, 50, 100])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--scenario", default="iis6-ja", help="rehearsal scenario (the targets are for iis6-ja)")
    a = ap.parse_args(argv)
    os.environ.setdefault("OPSLIB_BENCH_WINRM", "B" + secrets.token_urlsafe(15))
    os.environ.setdefault("OPSLIB_BENCH_PFX", "B" + secrets.token_urlsafe(15))
    _instrument()
    results = []
    with tempfile.TemporaryDirectory(prefix="opslib-roundtrips-") as tmp:
        for latency in a.latency_ms:
            results.append(one_renewal(Path(tmp) / f"{latency}ms", latency, a.scenario))
    if a.json:
        print(json.dumps(results, indent=1))
        return 0
    for r in results:
        print(
            f"{r['latency_ms']:>4} ms: {r['commands']} commands, {r['requests']} requests, "
            f"{r['bytes'] / 1024:.0f} KiB, {r['wall_s']:.1f} s"
        )
        for s in r["steps"]:
            print(
                f"        {s['step']:<26} {s['commands']:>4} commands {s['requests']:>5} requests "
                f"{s['bytes'] / 1024:>7.0f} KiB {s['wall_s']:>6.1f} s"
            )
    base = next((r for r in results if r["latency_ms"] == 0), None)
    at50 = next((r for r in results if r["latency_ms"] == 50), None)
    print(
        f"targets: commands {results[0]['commands']} (≤ {TARGET_COMMANDS}), "
        f"requests {results[0]['requests']} (≤ {TARGET_REQUESTS})"
        + (
            f", +{at50['wall_s'] - base['wall_s']:.1f} s at 50 ms (≤ {TARGET_EXTRA_S_AT_50:.0f} s)"
            if base and at50
            else ""
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
