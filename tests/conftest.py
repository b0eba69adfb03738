"""Shared fixtures (a bare emulated host and a rehearsal endpoint in front of it) and the test tiers.

Kept small and generic; area-specific fixtures live in the area's test module.

Tiers (markers registered in pyproject.toml), assigned here by test module (:data:`TIER_OF_MODULE`;
a test whose cost differs from its module's is listed in :data:`TIER_OF_TEST`):

* ``unit`` — opslib modules alone (no endpoint, no kernel);
* ``rehearsal`` — opslib over real HTTP against the rehearsal host;
* ``notebooks`` — papermill runs (kernels), end to end through the runbook;
* ``faults`` — the fault matrix;
* ``slow`` — added to every test of the two tiers above, of the modules in :data:`SLOW_MODULES` and
  of :data:`SLOW`.

``make test-fast`` runs ``-m "(unit or rehearsal) and not slow"`` (under a minute); ``make test`` runs
everything.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from secretscan import scan_runs

from opslib import credentials as opslib_secrets
from opslib import rehearsal
from opslib.rehearsal.host import Host, Invocation
from opslib.rehearsal.programs import filecodec

# --- tiers ---------------------------------------------------------------------------------------------

TIERS = ("unit", "rehearsal", "notebooks", "faults")
TIER_OF_MODULE: dict[str, str] = {
    "test_backup": "unit",
    "test_certs": "unit",
    "test_evidence": "unit",
    "test_evidence_integrity": "unit",
    "test_params": "unit",
    "test_project": "unit",
    "test_runbook": "unit",
    "test_tiers": "unit",
    "test_errors": "unit",
    "test_layout": "unit",
    "test_session": "rehearsal",
    "test_round_trips": "rehearsal",
    "test_rehearsal_readback": "rehearsal",
    "test_readback_kit": "rehearsal",
    "test_rehearsal_iis7": "rehearsal",
    "test_iis7": "rehearsal",
    "test_iis7_e2e": "notebooks",
    "test_rehearsal_chains": "rehearsal",
    "test_chains_e2e": "notebooks",
    "test_wsman_conformance": "rehearsal",
    "test_channels": "rehearsal",
    "test_inspect": "rehearsal",
    "test_iis": "rehearsal",
    "test_rehearsal_server": "rehearsal",
    "test_scenarios": "rehearsal",
    "test_tls": "rehearsal",
    "test_transport": "rehearsal",
    "test_windows": "rehearsal",
    "test_bad_inputs": "notebooks",
    "test_notebooks": "notebooks",
    "test_engines": "notebooks",
    "test_recovery": "notebooks",
    "test_review_notebook": "notebooks",
    "test_report": "notebooks",
    "test_faultpoints": "notebooks",
    "test_security": "notebooks",
    "test_faults": "faults",
    "test_lab": "rehearsal",
    "test_interruptions": "notebooks",
    "test_compat": "rehearsal",
    "test_wire": "notebooks",
}
# Single tests that start a kernel (papermill) in a module of a faster tier: "module::test name".
TIER_OF_TEST: dict[str, str] = {
    "test_evidence::test_record_and_read_facts_through_a_real_kernel": "notebooks",
    "test_inspect::test_notebook_inspect_certificate_runs_under_papermill": "notebooks",
    "test_lab::test_the_lab_check_notebook_runs_under_papermill": "notebooks",
    "test_windows::test_a_full_run_backs_up_through_iis_certobj": "notebooks",
    "test_readback_kit::test_a_full_run_on_a_server_that_holds_the_pfx_reports_it": "notebooks",
}
SLOW_TIERS = ("notebooks", "faults")
# Rehearsal modules too long for the quick loop: test_windows runs every Windows verb in two locales
# (74 tests, about half of the rehearsal tier's time).
SLOW_MODULES = {"test_windows"}
SLOW: set[str] = set()  # further "module::test name" entries marked slow


def tier_of(module: str, test: str) -> str | None:
    """The tier of one test (``test``: its name without parameters), or None for an unmapped module."""
    return TIER_OF_TEST.get(f"{module}::{test}") or TIER_OF_MODULE.get(module)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmapped: set[str] = set()
    for item in items:
        module = Path(str(item.fspath)).stem
        test = getattr(item, "originalname", None) or item.name.split("[")[0]
        tier = tier_of(module, test)
        if tier is None:
            unmapped.add(module)
            continue
        item.add_marker(getattr(pytest.mark, tier))
        if tier in SLOW_TIERS or module in SLOW_MODULES or f"{module}::{test}" in SLOW:
            item.add_marker(pytest.mark.slow)
    if unmapped:
        raise pytest.UsageError(
            f"tests/conftest.py: no tier for {', '.join(sorted(unmapped))}; add the module to TIER_OF_MODULE"
        )


# --- tools a test needs: a skip is a failure in CI -------------------------------------------------------

# A test skipped because one of these is missing fails instead when CI is set: on a CI machine the tool is
# installed (`make test` installs Node.js from the OS packages when it runs as root).
CI_REQUIRED = {
    "node (Node.js) is not installed": "Node.js: apt-get install nodejs (make test does it as root)"
}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if not (report.skipped and os.environ.get("CI")) or not isinstance(report.longrepr, tuple):
        return
    reason = str(report.longrepr[2]).removeprefix("Skipped: ")
    for missing, remedy in CI_REQUIRED.items():
        if missing in reason:
            report.outcome = "failed"
            report.longrepr = f"{reason} — CI is set, so this is a failure, not a skip; install {remedy}"


REHEARSAL_PASSWORD = "Rehearsal-Pa55word!"  # a test-only literal, registered for redaction by start()


def echoargs(inv: Invocation) -> int:
    """A test program: prints its argv[1:] as one line of ASCII JSON (exit code 0)."""
    inv.write(json.dumps(inv.argv[1:]) + "\r\n")
    return 0


def make_bare_host(*, locale: str = "en", codepage: int = 437, windows_version: str = "5.2.3790") -> Host:
    """A Host with no scenario: cmd built-ins, certutil's file verbs and ``echoargs``."""
    host = Host(locale=locale, codepage=codepage, windows_version=windows_version)
    host.programs["echoargs"] = echoargs
    filecodec.register(host)
    return host


@pytest.fixture
def bare_host() -> Host:
    return make_bare_host()


@pytest.fixture
def endpoint(bare_host: Host) -> Iterator[rehearsal.Rehearsal]:
    """A plain-HTTP rehearsal endpoint on ``bare_host`` (user Administrator, REHEARSAL_PASSWORD)."""
    with rehearsal.start(bare_host, password=REHEARSAL_PASSWORD) as r:
        yield r


# --- every evidence folder the session produced goes through the secret scan --------------------------

TEST_SECRETS = [REHEARSAL_PASSWORD]  # literals of the tests; generated ones are registered by the kit
_SCAN = pytest.StashKey[tuple[int, int, list[str]]]()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Scan every run folder under the session's temporary base for every registered secret (all forms),
    PEM private-key headers and PKCS#8 / PKCS#1 / PKCS#12 DER; a finding fails the session."""
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None:
        return
    secrets = sorted(set(opslib_secrets.registered()) | set(TEST_SECRETS))
    folders, findings = scan_runs(factory.getbasetemp(), secrets)
    session.config.stash[_SCAN] = (len(folders), len([s for s in secrets if len(s) >= 6]), findings)
    if findings:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    result = config.stash.get(_SCAN, None)
    if result is None:
        return
    folders, secrets, findings = result
    if findings:
        terminalreporter.write_line(
            f"SECRET SCAN FAILED: {len(findings)} findings in {folders} evidence folders:", red=True
        )
        for item in findings:
            terminalreporter.write_line(f"  {item}", red=True)
    else:
        terminalreporter.write_line(f"secret scan: {folders} evidence folders, {secrets} secrets: clean")
