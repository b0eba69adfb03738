"""Shared fixtures: a bare emulated host and a rehearsal endpoint in front of it.

Kept small and generic; area-specific fixtures live in the area's test module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from secretscan import scan_runs

from opslib import rehearsal
from opslib import secrets as opslib_secrets
from opslib.rehearsal.host import Host, Invocation
from opslib.rehearsal.programs import filecodec

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
