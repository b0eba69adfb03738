"""``opslib request`` and the whole lifecycle on the rehearsal host (issue 28).

request → ``opslib rehearse issue`` (the rehearsal CA) → ``opslib run`` → the new certificate served, on
``iis6-ja-no-request`` (Server 2003: SHA-1 request, no subjectAltName), ``iis75-ja-no-request`` and
``iis10-no-request`` (SHA-256 and a subjectAltName). Asserted as a user sees it: exit codes, what is
printed, what the emulated server holds afterwards (REQUEST store, key containers, what the site serves),
and what the evidence holds (run.json's mode, facts, ``request_run``, the CSR).
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import conftest
import pytest
import yaml
from secretscan import assert_no_secrets

from opslib import certs, cli, rehearsal, tls
from opslib.rehearsal.host import Host
from opslib.rehearsal.programs import stores

WINRM_ENV, PFX_ENV = "OPSLIB_REQUEST_WINRM", "OPSLIB_REQUEST_PFX"


@pytest.fixture(scope="module")
def secrets_() -> Iterator[list[str]]:
    with conftest.random_secrets(WINRM_ENV, PFX_ENV) as values:
        yield values


@dataclass
class Setup:
    reh: rehearsal.Rehearsal
    base: Path
    params_file: Path
    evidence_root: Path

    @property
    def host(self) -> Host:
        return self.reh.host

    def cli(self, command: str, *extra: str) -> int:
        return cli.main([command, str(self.params_file), "--evidence-root", str(self.evidence_root), *extra])

    def runs(self) -> list[Path]:
        return sorted(p for p in self.evidence_root.iterdir() if (p / "run.json").is_file())

    @staticmethod
    def manifest(run_dir: Path) -> dict[str, Any]:
        return json.loads((run_dir / "run.json").read_text(encoding="utf-8"))


def start(base: Path, secrets: list[str], scenario: str, *, faults: list[str] | None = None) -> Setup:
    reh = rehearsal.start(
        scenario=scenario,
        password=secrets[0],
        workdir=base / "host",
        state_file=base / "state.json",
        faults=faults or [],
    )
    data = reh.params(password_env=WINRM_ENV, pfx_password_env=PFX_ENV, backup_dir=str(base / "backups"))
    data["ssl_port"] = reh.host.extra["ssl_port"]
    data["certificate_file"] = str(base / "mail" / "2026cert.txt")  # not there yet: the CA has not answered
    path = base / "params" / "web01.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return Setup(reh, base, path, base / "evidence")


def requests_on(host: Host) -> list[stores.StoredCert]:
    return stores.certificates(host, "REQUEST")


@dataclass
class Lifecycle:
    setup: Setup
    request_rc: int
    request_out: str
    issue_rc: int
    run_rc: int
    request_run: Path
    renewal_run: Path
    keys_before: set[str]
    secrets: list[str]


def lifecycle(base: Path, secrets: list[str], scenario: str) -> Lifecycle:
    s = start(base, secrets, scenario)
    keys_before = set(s.host.keys)
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        request_rc = s.cli("request", "--yes")
    request_run = s.runs()[-1]
    issue_rc = cli.main(
        [
            "rehearse",
            "issue",
            str(request_run / "request.csr"),
            "--out",
            str(base / "mail" / "2026cert.txt"),
            "--workdir",
            str(base / "host"),
        ]
    )
    run_rc = s.cli("run", "--yes")
    renewal = [r for r in s.runs() if r != request_run][-1]
    return Lifecycle(
        s, request_rc, buffer.getvalue(), issue_rc, run_rc, request_run, renewal, keys_before, secrets
    )


SCENARIOS = ("iis6-ja-no-request", "iis75-ja-no-request", "iis10-no-request")


@pytest.fixture(scope="module", params=SCENARIOS)
def life(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, secrets_: list[str]
) -> Iterator[Lifecycle]:
    done = lifecycle(tmp_path_factory.mktemp(request.param), secrets_, request.param)
    yield done
    done.setup.reh.stop()


def test_lifecycle_request_issue_run_serves_the_requested_key(life: Lifecycle) -> None:
    assert (life.request_rc, life.issue_rc, life.run_rc) == (0, 0, 0), life.request_out
    host = life.setup.host
    csr = certs.load_certificates((life.request_run / "request.csr").read_bytes(), source="csr").csrs[0]
    name, port = tls.parse_endpoint(host.extra["verify_endpoint"])
    served = tls.fetch_chain(name, port, servername=host.extra["verify_servername"], timeout_s=5)
    assert certs.key_matches(served.certificates[0], csr)  # the served key is the one the request made
    assert requests_on(host) == []  # the request was consumed by certreq -accept
    request_doc = Setup.manifest(life.request_run)
    assert request_doc["mode"] == "request"
    renewal_doc = Setup.manifest(life.renewal_run)
    assert renewal_doc["request_run"]["run_id"] == life.request_run.name
    assert "-----BEGIN NEW CERTIFICATE REQUEST-----" in life.request_out
    assert f"opslib run {life.setup.params_file}" in life.request_out
    assert_no_secrets(life.setup.evidence_root, life.secrets)
