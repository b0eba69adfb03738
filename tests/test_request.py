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
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import conftest
import pytest
import yaml
from secretscan import assert_no_secrets

from opslib import certs, cli, rehearsal, tls, winerror
from opslib.ops import request as request_ops
from opslib.rehearsal import cmd
from opslib.rehearsal.host import Host
from opslib.rehearsal.programs import register_all, stores

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


def test_the_request_is_what_the_target_windows_can_make(
    life: Lifecycle, capsys: pytest.CaptureFixture[str]
) -> None:
    """``opslib inspect`` on the CSR shows what the CA will see: 2003 signs with SHA-1 and names the
    host in the subject only (a warning says so); 2008 R2 and 2019 sign with SHA-256 and list the names."""
    csr = life.request_run / "request.csr"
    assert cli.main(["inspect", str(csr), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (seen,) = report["csrs"]
    codes = [w["code"] for w in report["warnings"]]
    facts = Setup.manifest(life.request_run)["facts"]
    assert seen["key_sha256"] == facts["request_key_sha256"]
    assert seen["signature_valid"] is True
    assert (seen["key_type"], seen["key_size"]) == ("RSA", 2048)
    if life.setup.host.windows_version.startswith("5."):
        assert (seen["signature_hash"], seen["dns_names"]) == ("sha1", [])
        assert "csr_sha1_signature" in codes
        assert "SHA-1" in life.request_out  # the console says it too
    else:
        assert (seen["signature_hash"], seen["dns_names"]) == ("sha256", ["www1.example.jp"])
        assert "csr_sha1_signature" not in codes
    assert cli.main(["inspect", str(csr)]) == 0
    text = capsys.readouterr().out
    assert f"Signature  {seen['signature_hash']}" in text and seen["key_sha256"] in text


# --- refusals: nothing changes, nothing is left behind ------------------------------------------------


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory, secrets_: list[str]) -> Iterator[Setup]:
    """A 2003 host whose certreq -new does its work, then the command reports a failure (access denied)."""
    s = start(
        tmp_path_factory.mktemp("failing"), secrets_, "iis6-ja-no-request", faults=["after:request.new:fail"]
    )
    yield s
    s.reh.stop()


def test_a_failed_request_leaves_neither_the_request_nor_its_key(
    failing: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    keys_before = set(failing.host.keys)
    assert failing.cli("request", "--yes") == 1
    err = capsys.readouterr().err
    assert "nothing is left on the server (read back)" in err, err
    assert requests_on(failing.host) == []  # the emulated server's REQUEST store
    assert set(failing.host.keys) == keys_before  # and no new key container
    commands = [h["command"] for h in failing.host.history]
    assert any("-delstore REQUEST" in c for c in commands) and any("-delkey" in c for c in commands)
    doc = Setup.manifest(failing.runs()[-1])
    assert doc["mode"] == "request" and doc["status"] == "failed"


def test_a_key_read_back_that_answers_otherwise_names_the_key_as_left(
    failing: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    """W-CERTUTIL-KEY (assumed) injected the other way: `certutil -key` answers something else than
    NTE_BAD_KEYSET after the cleanup — the kit names the key container as left, never as removed."""
    failing.reh.set_faults(["after:request.new:fail", "before:request.key:fail"])
    try:
        assert failing.cli("request", "--yes") == 1
    finally:
        failing.reh.set_faults(["after:request.new:fail"])
    err = capsys.readouterr().err
    assert re.search(r"left on the server: key container \S+", err) and "nothing is left" not in err, err
    assert requests_on(failing.host) == []  # the REQUEST entry's removal was read back from the registry


@pytest.fixture(scope="module")
def pending(tmp_path_factory: pytest.TempPathFactory, secrets_: list[str]) -> Iterator[Setup]:
    """A 2003 host with a pending request for www1.example.jp already (made in the IIS wizard)."""
    s = start(tmp_path_factory.mktemp("pending"), secrets_, "iis6-ja")
    yield s
    s.reh.stop()


@pytest.mark.kernel  # the request notebook on real kernels, as operators run it (the others: in-process)
def test_an_existing_request_for_the_same_names_refuses_unless_new_request(
    pending: Setup, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PFX_ENV)  # a request never needs the PFX password (only step 3 does)
    before = [e.thumbprint for e in requests_on(pending.host)]
    keys_before = set(pending.host.keys)
    assert len(before) == 1
    assert pending.cli("request", "--yes") == 1
    err = capsys.readouterr().err
    assert before[0] in err and "--new-request" in err
    assert [e.thumbprint for e in requests_on(pending.host)] == before and set(
        pending.host.keys
    ) == keys_before
    assert not any("certreq -new" in h["command"] for h in pending.host.history)
    assert pending.cli("request", "--dry-run", "--new-request") == 0  # the plan only
    assert [e.thumbprint for e in requests_on(pending.host)] == before and set(
        pending.host.keys
    ) == keys_before
    assert not any("certreq -new" in h["command"] for h in pending.host.history)
    assert pending.cli("request", "--yes", "--new-request") == 0
    after = [e.thumbprint for e in requests_on(pending.host)]
    assert len(after) == 2 and before[0] in after
    facts = Setup.manifest(pending.runs()[-1])["facts"]
    assert facts["new_request_forced"] is True and facts["request_kept"] == before


# --- the INF per Windows version (W-CERTREQ-NEW) -------------------------------------------------------


def _before(windows_version: str) -> request_ops.Before:
    return request_ops.Before(
        "AB" * 20, "CN=www1.example.jp,O=Example K.K.,C=JP", ("www1.example.jp",), (), windows_version
    )


def test_the_2003_inf_has_none_of_the_2008_keys() -> None:
    planned = request_ops.plan(_before("5.2.3790"), host="web01")
    inf = planned.inf.lower()
    for newer in ("hashalgorithm", "[extensions]", "2.5.29.17", "_continue_", "{text}"):
        assert newer not in inf
    for needed in ("machinekeyset = true", "exportable = true", "keyspec = 1", "keylength = 2048"):
        assert needed in inf
    assert '"microsoft rsa schannel cryptographic provider"' in inf
    assert 'subject = "cn=www1.example.jp, o=example k.k., c=jp"' in inf
    assert "Windows Server 2003" in planned.statement and planned.expected_hash == "sha1"
    modern = request_ops.plan(_before("6.1.7601"), host="web01", key_size=3072)
    assert "HashAlgorithm = sha256" in modern.inf and '_continue_ = "dns=www1.example.jp&"' in modern.inf
    assert "KeyLength = 3072" in modern.inf and modern.expected_hash == "sha256"


@pytest.mark.parametrize("lenient", [False, True])
def test_the_emulated_2003_certreq_refuses_a_2008_key_by_exit_code(lenient: bool) -> None:
    """The emulator's 2003 rule ([assumed], W-CERTREQ-NEW) and its injected opposite (the key ignored):
    either way the kit never sends the key, and a request it did not plan is caught by its read-back."""
    host = conftest.make_bare_host(locale="ja", codepage=932)
    register_all(host)
    host.extra["certreq_ignores_unknown_inf_keys"] = lenient
    modern = request_ops.plan(_before("6.1.7601"), host="web01").inf
    host.write_file(r"C:\t\r.inf", b"\xff\xfe" + modern.encode("utf-16-le"))
    result = cmd.execute(host, r"certreq -new -q C:\t\r.inf C:\t\r.csr", codepage=932)
    if not lenient:
        assert result.exit_code == winerror_signed(winerror.E_INVALIDARG)
        assert requests_on(host) == [] and host.keys == {} and not host.exists(r"C:\t\r.csr")
    else:
        assert result.exit_code == 0
        csr = certs.load_certificates(host.read_file(r"C:\t\r.csr") or b"", source="csr").csrs[0]
        assert certs.request_facts(csr).signature_hash == "sha1"  # not what the 2008 INF asked for


def winerror_signed(code: int) -> int:
    return code - (1 << 32) if code >= 1 << 31 else code
