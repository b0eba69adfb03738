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

import contextlib
import hashlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from secrets import token_urlsafe as random_token
from typing import Any, NamedTuple

import pytest
from secretscan import scan_runs

from opslib import credentials as opslib_secrets
from opslib import rehearsal
from opslib.rehearsal import scenarios
from opslib.rehearsal.host import Host, HostSnapshot, Invocation
from opslib.rehearsal.programs import filecodec

# jsonschema (nbformat's, so papermill's) imports rfc3987_syntax when it is installed (jupyter-events'
# jsonschema[format-nongpl] brings it), and rfc3987_syntax compiles 38 lark grammars as it is imported:
# 2–3 s of CPU in every xdist worker, only to check the "iri" formats that no notebook schema uses.
# A None entry makes that optional import fail, as on a machine without the package (jsonschema then
# has no "iri" check). Tests only: the kit does not change what other code in its process imports.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[assignment]

# --- tiers ---------------------------------------------------------------------------------------------

TIERS = ("unit", "rehearsal", "notebooks", "faults")
TIER_OF_MODULE: dict[str, str] = {
    "test_backup": "unit",
    "test_request": "notebooks",  # the request notebook and whole lifecycles (request → issue → renewal)
    "test_certs": "unit",
    "test_paths": "unit",
    "test_conformance_certs": "unit",
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
    "test_rehearsal_inherit": "rehearsal",
    "test_readback_kit": "rehearsal",
    "test_rehearsal_iis7": "rehearsal",
    "test_conformance_httpsys": "rehearsal",
    "test_httpsys": "rehearsal",
    "test_iis7": "rehearsal",
    "test_httpsys_e2e": "notebooks",
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
    "test_lab_serve": "rehearsal",
    "test_conformance_winrm": "rehearsal",
    "test_transfer_hashfile": "rehearsal",
    "test_conformance_certutil": "rehearsal",
    "test_conformance_certreq": "unit",
    "test_interruptions": "notebooks",
    "test_compat": "rehearsal",
    "test_wire": "notebooks",
    "test_forward": "notebooks",
    "test_locks": "rehearsal",
    "test_fleet_ansible": "rehearsal",
    "test_fleet_host_params": "unit",
    "test_fleet_run": "notebooks",
    "test_calendar": "rehearsal",
    "test_fleet_inventory": "unit",
    "test_fleet_rehearsal": "rehearsal",
}
# Single tests that start a kernel (papermill) in a module of a faster tier: "module::test name".
TIER_OF_TEST: dict[str, str] = {
    "test_calendar::test_after_a_renewal_the_evidence_says_what_is_served": "notebooks",
    "test_calendar::test_the_renewal_calendar_notebook_runs_under_papermill": "notebooks",
    "test_locks::test_breaking_a_dead_runs_lock_removes_what_it_left_on_the_server": "notebooks",
    "test_locks::test_a_run_whose_lock_was_broken_stops_before_its_next_change": "notebooks",
    "test_evidence::test_record_and_read_facts_through_a_real_kernel": "notebooks",
    "test_inspect::test_notebook_inspect_certificate_runs_under_papermill": "notebooks",
    "test_inspect::test_notebook_inspect_shows_what_the_ca_sees_in_a_csr": "notebooks",
    "test_lab::test_the_lab_check_notebook_runs_under_papermill": "notebooks",
    "test_windows::test_a_full_run_backs_up_through_iis_certobj": "notebooks",
    "test_readback_kit::test_a_full_run_on_a_server_that_holds_the_pfx_reports_it": "notebooks",
    "test_transfer_hashfile::test_a_run_that_fell_back_to_size_says_so_in_run_json_the_console_and_the_report": "notebooks",
    # a full renewal, about IIS 6 inheritance, not kernels: the notebooks tier runs it in-process
    "test_rehearsal_inherit::test_a_renewal_on_iis6_inherited_leaves_production_with_its_own_new_certificate": "notebooks",
}
SLOW_TIERS = ("notebooks", "faults")
# Rehearsal modules too long for the quick loop: test_windows runs every Windows verb in two locales
# (74 tests, about half of the rehearsal tier's time).
# test_lab_serve captures and compares every scenario's own `opslib rehearse serve` host.
# test_fleet_ansible runs ansible-playbook four times over a three-host rehearsal fleet (about a minute).
SLOW_MODULES = {"test_windows", "test_lab_serve", "test_fleet_ansible"}
# Further "module::test name" entries marked slow: test_lab's fresh captures of a rehearsal host (the
# whole probe set each, 5–13 s) — the committed bundles' comparisons and the refusals stay in the quick loop.
SLOW: set[str] = {
    f"test_lab::{name}"
    for name in (
        "test_the_reversible_tier_leaves_the_host_byte_identical_and_round_trips",
        "test_an_iis7_plus_capture_round_trips_with_the_appcmd_site_list",
        "test_cli_capture_through_a_parameters_file_then_compare",
        "test_a_certutil_whose_probe_denies_export_pfx_is_a_difference",
        "test_a_del_that_silently_fails_is_a_difference",
        "test_a_different_timeout_fault_is_a_difference",
        "test_a_different_language_is_cosmetic_only",
    )
}


def tier_of(module: str, test: str) -> str | None:
    """The tier of one test (``test``: its name without parameters), or None for an unmapped module."""
    return TIER_OF_TEST.get(f"{module}::{test}") or TIER_OF_MODULE.get(module)


# Module-scoped fixtures that cost a renewal (kernels): under ``--dist loadgroup`` the tests that use one
# run on one xdist worker (an ``xdist_group``), so it runs once, not once per worker.
# A rehearsal fleet ("fleet": tests/test_fleet_run.py's tests build on each other in order) is one too.
SHARED_RUNS = {"renewal", "runs", "shared", "fleet"}


def _group_for_xdist(config: pytest.Config, item: pytest.Item, group: str) -> None:
    """What xdist's worker does for ``--dist loadgroup`` (the group as a ``@group`` suffix of the node id,
    which its scheduler reads): xdist 3.8 sets ``item._nodeid``, which pytest 9 no longer reads (the id is
    ``item._id``), so every test was its own group. Remove when xdist sets the id pytest reads."""
    if not (hasattr(config, "workerinput") and config.getvalue("loadgroup")) or "@" in item.nodeid:
        return
    if hasattr(item, "_id"):
        from _pytest.nodeid import coerce_node_id

        item._id = coerce_node_id(f"{item.nodeid}@{group}")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmapped: set[str] = set()
    for item in items:
        module = Path(str(item.fspath)).stem
        for name in sorted(SHARED_RUNS & set(getattr(item, "fixturenames", ()))):
            item.add_marker(pytest.mark.xdist_group(f"{module}::{name}"))
            _group_for_xdist(config, item, f"{module}::{name}")
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


# --- the step engine: real kernels only where the test is about them ---------------------------------------
#
# The runbook's in-process step engine (OPSLIB_STEP_ENGINE=inprocess; no effect until it lands) runs the
# step notebooks' code without a kernel. Notebook- and fault-tier tests use it unless marked ``kernel``
# (about kernels, interruptions, papermill itself); a renewal per IIS family stays on real kernels (the ``renewal`` of
# test_notebooks for IIS 6, the iis10 full run of test_iis7_e2e for IIS 10). A module-scoped fixture (a
# renewal shared by a module) runs in the module's setting: in-process unless the module is marked kernel.

STEP_ENGINE_ENV = "OPSLIB_STEP_ENGINE"
IN_PROCESS = "inprocess"
# The tiers whose renewals take the in-process engine unless marked kernel: the fault matrix's runbook-level
# cases are about the runner's failure handling, not kernels (test_engines proves the engines alike).
IN_PROCESS_TIERS = ("notebooks", "faults")


def _module_is_kernel(module: Any) -> bool:
    marks = getattr(module, "pytestmark", [])
    return any(m.name == "kernel" for m in (marks if isinstance(marks, list) else [marks]))


@pytest.fixture(scope="module", autouse=True)
def _step_engine_of_module(request: pytest.FixtureRequest) -> Iterator[None]:
    module = request.module
    if TIER_OF_MODULE.get(Path(str(module.__file__)).stem) not in IN_PROCESS_TIERS or _module_is_kernel(
        module
    ):
        yield
        return
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(STEP_ENGINE_ENV, IN_PROCESS)
        yield


@pytest.fixture(autouse=True)
def _step_engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    node = request.node
    if node.get_closest_marker("kernel"):
        monkeypatch.delenv(STEP_ENGINE_ENV, raising=False)
    elif any(node.get_closest_marker(tier) for tier in IN_PROCESS_TIERS):
        monkeypatch.setenv(STEP_ENGINE_ENV, IN_PROCESS)


@contextmanager
def on_real_kernels() -> Iterator[None]:
    """For a module-scoped fixture whose tests are marked kernel (a renewal that must use kernels)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(STEP_ENGINE_ENV, raising=False)
        yield


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


@contextlib.contextmanager
def random_secrets(*names: str) -> Iterator[list[str]]:
    """Random passwords in the environment under ``names`` (as an operator would put them there), one per
    name, put back as they were afterwards. Each starts with a letter (a leading "-" is refused)."""
    saved = {k: os.environ.get(k) for k in names}
    values = [f"{name.rsplit('_', 1)[-1][:1]}{random_token(15)}" for name in names]
    os.environ.update(zip(names, values, strict=True))
    try:
        yield values
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


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


# --- rehearsal endpoints shared by the session, put back before each test --------------------------------


class SharedEndpoints:
    """One running rehearsal endpoint per (scenario, options) for the whole session (per xdist worker).

    :meth:`get` puts it back into the state it had when it started before handing it out (``Host.restore``:
    registry, files, sites, keys, programs, env, history, extra; no faults, no open shells; the host's
    change hooks as they were) and points its state file at this test's ``state_file`` — so a test
    never sees another test's leftovers. Starting a host costs a scenario build, a TLS endpoint per
    started site and the WS-Management listener; a restore costs a deep copy of the model.
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self._live: dict[str, tuple[rehearsal.Rehearsal, HostSnapshot, list[Any]]] = {}

    def get(
        self,
        scenario: str = "default",
        *,
        state_file: Path | None = None,
        build: dict[str, Any] | None = None,
        **options: Any,
    ) -> rehearsal.Rehearsal:
        """The endpoint of ``scenario`` (``options``: :func:`opslib.rehearsal.start`'s; ``build``:
        ``scenarios.build_host``'s, e.g. ``now_utc``) as it started, writing its state to ``state_file``."""
        key = repr((scenario, sorted((build or {}).items()), sorted(options.items())))
        if key not in self._live:
            workdir = self.base / f"{len(self._live):02d}-{scenario}"
            host = None
            if build:
                host = scenarios.build_host(scenario, workdir=workdir, **build)
            reh = rehearsal.start(host, scenario=scenario, workdir=workdir, **options)
            self._live[key] = (reh, reh.snapshot(), list(reh.host.on_change))
        reh, snap, hooks = self._live[key]
        reh.host.state_file = state_file
        reh.host.on_change[:] = hooks
        reh.restore(snap)
        return reh

    def stop(self) -> None:
        for reh, _, _ in self._live.values():
            reh.stop()
        self._live.clear()


@pytest.fixture(scope="session")
def shared_endpoints(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedEndpoints]:
    """Session-wide endpoints; a test takes one with ``shared_endpoints.get(scenario, ...)``."""
    endpoints = SharedEndpoints(tmp_path_factory.mktemp("shared-hosts"))
    yield endpoints
    endpoints.stop()


# --- counts a test module adds to the terminal summary (added up over xdist workers) ------------------

_COUNTS_OUTPUT = "opslib_summary_counts"
# name → (the line's template, its counts, the counts every worker reports alike: merged by max, not sum)
SUMMARY_COUNTS: dict[str, tuple[str, dict[str, int], tuple[str, ...]]] = {}
_WORKER_COUNTS = pytest.StashKey[list[dict[str, Any]]]()


def summary_counts(
    name: str, template: str, keys: Sequence[str], *, same: Sequence[str] = ()
) -> dict[str, int]:
    """Counts shown in the terminal summary as ``template.format(**counts)`` when any is not zero (an empty
    ``template``: ``name: {counts as JSON}``, for counts whose keys the tests add).

    Under xdist each worker counts its own tests; the controller adds them up (``same``: the largest)."""
    counts = dict.fromkeys(keys, 0)
    SUMMARY_COUNTS[name] = (template, counts, tuple(same))
    return counts


def _merged_counts(config: pytest.Config) -> dict[str, tuple[str, dict[str, int], tuple[str, ...]]]:
    if not _is_xdist_controller(config):
        return SUMMARY_COUNTS
    merged: dict[str, tuple[str, dict[str, int], tuple[str, ...]]] = {}
    for output in config.stash.get(_WORKER_COUNTS, []):
        for name, (template, counts, same) in output.items():
            _, total, _ = merged.setdefault(name, (template, dict.fromkeys(counts, 0), tuple(same)))
            for key, value in counts.items():
                total[key] = max(total.get(key, 0), value) if key in same else total.get(key, 0) + value
    return merged


# --- every evidence folder the session produced goes through the secret scan --------------------------
#
# Without xdist this process scans its own base temp with the secrets registered in it. Under xdist the
# secrets are registered in the worker that ran the test, so each worker scans its own base temp
# (``<base>/popen-gwN``) with its own secrets and sends the result to the controller
# (``config.workeroutput``); the controller adds them up (``pytest_testnodedown``) and fails the session
# on any finding, or when a worker went down without a result (its folders were not scanned).

TEST_SECRETS = [REHEARSAL_PASSWORD]  # literals of the tests; generated ones are registered by the kit
_SCAN = pytest.StashKey["ScanResult"]()
_WORKER_SCANS = pytest.StashKey[list[dict[str, Any]]]()
_WORKER_OUTPUT = "opslib_secret_scan"


class ScanResult(NamedTuple):
    folders: int
    secrets: int
    findings: list[str]
    workers: int = 0


def _scan_here(config: pytest.Config) -> dict[str, Any] | None:
    """This process's scan: its base temp, the secrets registered here (only SHA-256 leaves the process)."""
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is None:
        return None
    secrets = sorted(set(opslib_secrets.registered()) | set(TEST_SECRETS))
    folders, findings = scan_runs(factory.getbasetemp(), secrets)
    digests = [hashlib.sha256(s.encode("utf-8")).hexdigest() for s in secrets if len(s) >= 6]
    return {"folders": len(folders), "secret_digests": digests, "findings": list(findings)}


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _is_xdist_controller(config: pytest.Config) -> bool:
    return config.pluginmanager.has_plugin("dsession")


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object | None) -> None:
    """Controller: keep each worker's scan result (a worker that crashed has none: a finding)."""
    scans = node.config.stash.setdefault(_WORKER_SCANS, [])
    result = getattr(node, "workeroutput", {}).get(_WORKER_OUTPUT)
    if result is None:
        worker = getattr(node, "gateway", None)
        name = getattr(worker, "id", "a worker")
        result = {
            "folders": 0,
            "secret_digests": [],
            "findings": [f"{name} went down without a secret scan ({error or 'no result'}): not scanned"],
        }
    scans.append(result)
    counts = getattr(node, "workeroutput", {}).get(_COUNTS_OUTPUT)
    if counts:
        node.config.stash.setdefault(_WORKER_COUNTS, []).append(counts)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Scan every run folder under the session's temporary base for every registered secret (all forms),
    PEM private-key headers and PKCS#8 / PKCS#1 / PKCS#12 DER; a finding fails the session."""
    config = session.config
    if _is_xdist_controller(config):
        scans = config.stash.get(_WORKER_SCANS, [])
        if not scans:
            return
        digests = {d for scan in scans for d in scan["secret_digests"]}
        findings = [f for scan in scans for f in scan["findings"]]
        result = ScanResult(sum(scan["folders"] for scan in scans), len(digests), findings, len(scans))
    else:
        scan = _scan_here(config)
        if scan is None:
            return
        if _is_xdist_worker(config):
            config.workeroutput[_WORKER_OUTPUT] = scan  # type: ignore[attr-defined]
            config.workeroutput[_COUNTS_OUTPUT] = {  # type: ignore[attr-defined]
                name: [template, counts, list(same)]
                for name, (template, counts, same) in SUMMARY_COUNTS.items()
            }
        result = ScanResult(scan["folders"], len(scan["secret_digests"]), scan["findings"])
    config.stash[_SCAN] = result
    if result.findings:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    for name, (template, counts, _) in _merged_counts(config).items():
        if any(counts.values()):
            line = template.format(**counts) if template else f"{name}: {json.dumps(counts, sort_keys=True)}"
            terminalreporter.write_line(line)
    result = config.stash.get(_SCAN, None)
    if result is None:
        return
    workers = f" ({result.workers} workers)" if result.workers else ""
    if result.findings:
        terminalreporter.write_line(
            f"SECRET SCAN FAILED: {len(result.findings)} findings in {result.folders} evidence folders{workers}:",
            red=True,
        )
        for item in result.findings:
            terminalreporter.write_line(f"  {item}", red=True)
    else:
        terminalreporter.write_line(
            f"secret scan: {result.folders} evidence folders, {result.secrets} secrets{workers}: clean"
        )
