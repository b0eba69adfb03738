"""Every test module has a tier (tests/conftest.py), and the tiers are the markers pyproject.toml registers."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import conftest
import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_every_test_module_has_a_tier() -> None:
    modules = {p.stem for p in (ROOT / "tests").glob("test_*.py")}
    assert sorted(modules - set(conftest.TIER_OF_MODULE)) == [], (
        "add these to TIER_OF_MODULE in tests/conftest.py"
    )
    assert sorted(set(conftest.TIER_OF_MODULE) - modules) == [], (
        "TIER_OF_MODULE names modules that do not exist"
    )
    assert conftest.SLOW_MODULES <= modules
    for key in [*conftest.TIER_OF_TEST, *conftest.SLOW]:
        module, _, test = key.partition("::")
        assert f"def {test}(" in (ROOT / "tests" / f"{module}.py").read_text(encoding="utf-8"), key


def test_every_tier_is_a_registered_marker() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    registered = {m.split(":")[0].strip() for m in config["tool"]["pytest"]["ini_options"]["markers"]}
    used = set(conftest.TIER_OF_MODULE.values()) | set(conftest.TIER_OF_TEST.values())
    assert used <= set(conftest.TIERS)
    assert {*conftest.TIERS, "slow"} <= registered


# --- the session's secret scan, with and without xdist --------------------------------------------------

LEAK_TESTS = """
import json
from opslib import credentials


def _run(tmp_path, name, value):
    credentials.register(value)  # registered in the process that runs the test (an xdist worker)
    folder = tmp_path / name
    folder.mkdir()
    note = value if name == "a" else "nothing to see"
    (folder / "run.json").write_text(json.dumps({"note": note}), encoding="utf-8")


def test_a(tmp_path):
    _run(tmp_path, "a", "worker-secret-AAAA-1234")


def test_b(tmp_path):
    _run(tmp_path, "b", "worker-secret-BBBB-1234")
"""


def _session(
    tmp_path: Path, *args: str, tests: str = LEAK_TESTS, tier: str = "unit"
) -> subprocess.CompletedProcess[str]:
    """A pytest session of ``tests`` (module test_leaks in ``tier``) with this suite's conftest (its own
    base temp, removed after)."""
    (tmp_path / "conftest.py").write_text(
        f"exec(compile(open({str(ROOT / 'tests' / 'conftest.py')!r}).read(), 'conftest.py', 'exec'))\n"
        f"TIER_OF_MODULE['test_leaks'] = {tier!r}\n",
        encoding="utf-8",
    )
    (tmp_path / "test_leaks.py").write_text(tests, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]))
    with tempfile.TemporaryDirectory(prefix="opslib-scan-") as base:  # not under this session's base temp
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp", base, *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )


@pytest.mark.parametrize("args", [(), ("-n", "2")], ids=["one-process", "xdist"])
def test_the_secret_scan_fails_the_session_on_a_secret_registered_in_any_process(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    """Under xdist the secrets are registered in the workers: each scans its own folders, the controller
    adds the results up and fails the session (exit status 1) though every test passed."""
    leaked = _session(tmp_path, *args)
    assert leaked.returncode == 1, leaked.stdout + leaked.stderr
    assert "2 passed" in leaked.stdout
    workers = " (2 workers)" if args else ""
    assert f"SECRET SCAN FAILED: 1 findings in 2 evidence folders{workers}:" in leaked.stdout, leaked.stdout
    assert "a/run.json" in leaked.stdout and "b/run.json" not in leaked.stdout
    assert "worker-secret" not in leaked.stdout  # the report names the file, never the secret


ENGINE_TESTS = """
import os
import pytest


@pytest.fixture(scope="module")
def shared_run():
    return os.environ.get("OPSLIB_STEP_ENGINE")  # what a renewal shared by the module would run under


def test_steps_run_in_process(shared_run):
    assert os.environ.get("OPSLIB_STEP_ENGINE") == "inprocess" and shared_run == "inprocess"


@pytest.mark.kernel
def test_about_kernels_runs_on_real_kernels():
    assert "OPSLIB_STEP_ENGINE" not in os.environ
"""


def test_notebook_tier_tests_take_the_in_process_engine_unless_marked_kernel(tmp_path: Path) -> None:
    result = _session(tmp_path, tests=ENGINE_TESTS, tier="notebooks")
    assert result.returncode == 0 and "2 passed" in result.stdout, result.stdout + result.stderr


GROUP_TESTS = """
import os
import pytest


@pytest.fixture(scope="module")
def renewal(tmp_path_factory):
    print(f"renewal set up in {os.getpid()}", file=open(os.environ["SETUPS_FILE"], "a"))


@pytest.mark.parametrize("i", range(6))
def test_uses_the_shared_renewal(renewal, i):
    pass


@pytest.mark.parametrize("i", range(6))
def test_other(i):
    pass
"""


def test_tests_sharing_a_module_renewal_run_on_one_xdist_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under --dist loadgroup a module's renewal (SHARED_RUNS) is set up once, not once per worker."""
    setups = tmp_path / "setups.txt"
    monkeypatch.setenv("SETUPS_FILE", str(setups))
    result = _session(tmp_path, "-n", "3", "--dist", "loadgroup", tests=GROUP_TESTS)
    assert result.returncode == 0 and "12 passed" in result.stdout, result.stdout + result.stderr
    assert len(setups.read_text(encoding="utf-8").splitlines()) == 1
