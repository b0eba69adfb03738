"""How fast reviewers get an answer from a large evidence root.

Builds 10,000 synthetic run folders in a temporary directory — one template run written with the
kit's own writing API (new_run / update_run / finalize_run), cloned with fresh ids, times,
thumbprints and file hashes, and chained as finalize_run chains them — then measures:

* ``opslib evidence list`` as a user runs it (a subprocess; wall time, interpreter start included);
* ``load_runs`` in-process;
* the review notebook's first table: load_runs + verify_root (integrity per run) + the styled runs
  table rendered to HTML, as Jupyter displays it.

Targets (2 cores): list < 2 s, first table < 5 s. Run: ``.venv/bin/python benchmarks/evidence_index.py
[--runs N] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from opslib import evidence, runbook

STEPS = tuple(s.name for s in runbook.RENEW_STEPS if s.changes_server)
T = TypeVar("T")
HOSTS = [f"web{n:02d}.example.jp" for n in range(1, 41)]
SITES = ["www1.example.jp", "shop.example.jp", "api.example.jp"]


def _template(root: Path) -> Path:
    """One realistic run written with the writing API."""
    t0 = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    run_dir = evidence.new_run(
        root,
        host="web01.example.jp",
        site="www1.example.jp",
        parameters={
            "host": "web01.example.jp",
            "winrm": {
                "url": "https://web01.example.jp:5986/wsman",
                "transport": "ntlm",
                "username": "EXAMPLE\\svc-certrenew",
                "password": "env:OPSLIB_WINRM_PASSWORD",
                "codepage": "auto",
            },
            "production_site": "www1.example.jp",
            "work_site": "renew.www1.example.jp",
            "ssl_port": 443,
            "certificate_file": "mail/2026cert.txt",
            "expected_hostnames": ["www1.example.jp"],
            "backup": {"directory": "~/ssl-backups", "pfx_password": "env:OPSLIB_PFX_PASSWORD"},
        },
        operator="alice",
        dry_run=False,
        now_utc=t0,
    )
    (run_dir / "html").mkdir()
    for i, step in enumerate(STEPS):
        (run_dir / f"{step}.ipynb").write_text(json.dumps({"cells": [], "step": step}) + "\n" * 200)
        (run_dir / "html" / f"{step}.html").write_text(f"<html>{step}</html>")
        evidence.update_run(
            run_dir,
            steps=[
                {
                    "name": step,
                    "notebook": f"{step}.ipynb",
                    "status": "succeeded",
                    "started_utc": t0 + dt.timedelta(seconds=20 * i),
                    "finished_utc": t0 + dt.timedelta(seconds=20 * i + 15),
                    "duration_s": 15.0,
                    "facts": {"step": step, "bindings": [":443:"], "chain": ["Intermediate", "Root"]},
                    "error": None,
                }
            ],
        )
    (run_dir / "transcript.jsonl").write_text(
        "".join(
            json.dumps({"what": "x", "command_line": "chcp", "exit_code": 0, "duration_s": 0.1}) + "\n"
            for _ in range(40)
        )
    )
    (run_dir / "rollback.yaml").write_text("old_thumbprint: X\n")
    evidence.update_run(run_dir, status="succeeded")
    evidence.finalize_run(run_dir, now_utc=t0 + dt.timedelta(minutes=2))
    return run_dir


def build(root: Path, runs: int) -> None:
    template = _template(root / ".template")
    base = json.loads((template / "run.json").read_text(encoding="utf-8"))
    files = {rel: (template / rel).read_bytes() for rel in base["files"]}
    t0 = dt.datetime(2021, 1, 1, tzinfo=dt.UTC)
    previous: dict[str, str] | None = None
    for n in range(runs):
        host, site = HOSTS[n % len(HOSTS)], SITES[(n // len(HOSTS)) % len(SITES)]
        started = t0 + dt.timedelta(hours=3 * n)
        run_id = f"{started:%Y%m%dT%H%M%SZ}_{host}_{site}"
        run_dir = root / run_id
        (run_dir / "html").mkdir(parents=True)
        for rel, data in files.items():
            (run_dir / rel).write_bytes(data.replace(b"web01", host[:5].encode()))
        failed = n % 17 == 0
        old, new = (
            hashlib.sha1(f"{n}-old".encode()).hexdigest().upper(),
            hashlib.sha1(f"{n}".encode()).hexdigest().upper(),
        )
        doc = {
            **base,
            "run_id": run_id,
            "host": host,
            "site": site,
            "started_utc": evidence.iso_utc(started),
            "finished_utc": evidence.iso_utc(started + dt.timedelta(minutes=2)),
            "status": "failed" if failed else "succeeded",
            "failed_step": STEPS[2] if failed else None,
            "error": "site did not start" if failed else None,
            "facts": {
                "old_thumbprint": old,
                "old_not_after_utc": evidence.iso_utc(started + dt.timedelta(days=20)),
                "new_thumbprint": new,
                "new_not_after_utc": evidence.iso_utc(started + dt.timedelta(days=397)),
                "backup_file": f"~/ssl-backups/{site}.pfx",
                "backup_sha256": hashlib.sha256(new.encode()).hexdigest(),
            },
            "files": {rel: hashlib.sha256((run_dir / rel).read_bytes()).hexdigest() for rel in sorted(files)},
            "previous_run": previous,
        }
        raw = (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
        (run_dir / "run.json").write_bytes(raw)
        previous = {"run_id": run_id, "run_json_sha256": hashlib.sha256(raw).hexdigest()}
    shutil.rmtree(root / ".template")


def timed(fn: Callable[[], T], repeat: int = 3) -> tuple[float, T]:
    """Median wall time of ``repeat`` calls, and the last result."""
    times: list[float] = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--keep", metavar="DIR", help="build the root here and keep it")
    a = ap.parse_args()
    tmp = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="opslib-bench-"))
    root = tmp / "evidence"
    try:
        start = time.perf_counter()
        build(root, a.runs)
        size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
        print(
            f"built {a.runs} runs ({size / 1e6:.0f} MB) in {time.perf_counter() - start:.1f} s; {os.cpu_count()} cores"
        )

        cmd = [sys.executable, "-m", "opslib", "evidence", "list", "--root", str(root)]
        t_list, out = timed(lambda: subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        assert len(out.splitlines()) == a.runs + 1
        t_json, _ = timed(lambda: subprocess.run([*cmd, "--json"], check=True, capture_output=True).stdout)
        t_host, _ = timed(
            lambda: subprocess.run([*cmd, "--host", HOSTS[0]], check=True, capture_output=True).stdout
        )

        t_load, df = timed(lambda: evidence.load_runs(root))
        t_verify, reports = timed(lambda: evidence.verify_root(root), repeat=1)
        assert all(r.ok for r in reports), "the synthetic chain must verify clean"

        def first_table() -> str:
            runs = evidence.load_runs(root)
            return evidence.style_runs(runs, evidence.verify_root(root)).to_html()

        t_first, _ = timed(first_table, repeat=1)
        t_style, _ = timed(lambda: evidence.style_runs(df, reports).to_html())

        print(f"opslib evidence list            {t_list:6.2f} s   (target < 2 s; subprocess, median of 3)")
        print(f"opslib evidence list --json     {t_json:6.2f} s")
        print(f"opslib evidence list --host H   {t_host:6.2f} s")
        print(f"load_runs                       {t_load:6.2f} s   ({len(df)} rows)")
        print(f"verify_root                     {t_verify:6.2f} s   (every file hashed, chain checked)")
        print(f"styled runs table (HTML)        {t_style:6.2f} s   (newest 200 rows shown)")
        print(f"notebook first table, total     {t_first:6.2f} s   (target < 5 s; load + verify + style)")
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
