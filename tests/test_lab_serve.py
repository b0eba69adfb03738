"""``opslib lab capture`` against ``opslib rehearse serve``, then ``opslib lab compare``: "same".

The served host is started the way a user starts it (the CLI, in its own process); the comparison host is
built by ``opslib lab compare``. Both must be the same host: nothing is added to either for the lab check
(issue 24 item 5: the served host answered the probe's ``ping`` with 9009, the comparison host did not).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from opslib.cli import main
from opslib.cli.parser import REHEARSAL_SCENARIOS

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "Serve-Lab-Pa55word!"  # a test-only literal


@contextmanager
def served(tmp_path: Path, *args: str) -> Iterator[Path]:
    """``opslib rehearse serve ARGS`` in a child process; yields its parameters file."""
    params = tmp_path / "served.yaml"
    env = {**os.environ, "OPSLIB_REHEARSAL_PASSWORD": PASSWORD, "PYTHONPATH": str(ROOT)}
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "opslib", "rehearse", "serve", "--workdir", str(tmp_path / "srv"),
         "--params-out", str(params), *args],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while b"Press Ctrl+C" not in (tmp_path / "serve.log").read_bytes():
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "opslib rehearse serve did not start"
            time.sleep(0.2)
        yield params
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _capture_and_compare(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], serve_args: list[str],
    compare_args: list[str],
) -> dict[str, object]:  # fmt: skip
    monkeypatch.setenv("OPSLIB_REHEARSAL_PASSWORD", PASSWORD)
    bundle = tmp_path / "bundle"
    with served(tmp_path, *serve_args) as params:
        assert main(["lab", "capture", str(params), "--out", str(bundle)]) == 0
    capsys.readouterr()
    code = main(["lab", "compare", str(bundle), "--json", *compare_args])
    report = json.loads(capsys.readouterr().out)
    assert [p for p in report["probes"] if not p["agrees"]] == []
    assert (code, report["decision_differences"]) == (0, 0)
    return report


@pytest.mark.parametrize(
    ("serve_args", "scenario"),
    [(["--locale", "ja"], "iis6-ja"), (["--scenario", "iis6-ja"], "iis6-ja"), ([], "default")],
    ids=["default-ja", "iis6-ja", "default"],
)
def test_compare_says_same_for_a_served_host_as_a_user_starts_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    serve_args: list[str],
    scenario: str,
) -> None:
    report = _capture_and_compare(tmp_path, monkeypatch, capsys, serve_args, [])
    assert report["scenario"] == scenario
    timeout = next(p for p in report["probes"] if p["id"] == "winrm.receive-timeout")
    assert timeout["agrees"]


@pytest.mark.parametrize("scenario", REHEARSAL_SCENARIOS)
def test_compare_says_same_for_every_scenarios_own_served_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], scenario: str
) -> None:
    report = _capture_and_compare(
        tmp_path, monkeypatch, capsys, ["--scenario", scenario], ["--scenario", scenario]
    )
    assert report["scenario"] == scenario
