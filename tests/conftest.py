"""Shared fixtures: a bare emulated host and a rehearsal endpoint in front of it.

Kept small and generic; area-specific fixtures live in the area's test module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from opslib import rehearsal
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
