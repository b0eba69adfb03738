"""The kit claims only what it read back (issue 13) and never sends the operator's PFX password (issue 12 item 6).

Every test runs the real stack (pywinrm over HTTP) against a rehearsal host whose scenario injects the
opposite behaviour of a row of docs/windows-behaviour.md: a PFX or base64 copy that ``del`` and ``rmdir``
cannot remove (W-DEL, W-DEL-STAGE, W-RMDIR-SQ-LOCKED), capability probes that lie in either direction
(W-CERTUTIL-PROBE-EXPORTPFX, W-CERTUTIL-PROBE-HASHFILE), a probe cmd cannot start (W-CMD-DENIED-5), a
certutil whose failure code is not E_INVALIDARG (W-CERTUTIL-EXITCODE).
"""

from __future__ import annotations

import json
import re
import secrets as random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import SharedEndpoints

from opslib import certs, cli, rehearsal
from opslib.certs.pfx import PFX_3DES_SHA1, PFX_AES256_SHA256, pfx_encryption_for
from opslib.errors import CapabilityMissing, RemoteCommandFailed
from opslib.iis import find_site
from opslib.ops import export, export_route
from opslib.rehearsal.host import Host, Invocation
from opslib.rehearsal.programs import stores
from opslib.runbook.chores import left_on_server as _left_on_server
from opslib.server import Server
from opslib.server.remote import delete_remote, remote_path
from opslib.winrm import Connection, connect, stale_temp_dirs
from opslib.winrm.transfer import leftover_advice

PASSWORD = "Readback-Kit-Pa55"  # WinRM password of the rehearsal endpoint (test-only literal)
PFX_PASSWORD = "Operator-Pfx-Pa55word"
E_INVALIDARG = -2147024809  # 0x80070057


@dataclass
class Session:
    host: Host
    conn: Connection
    server: Server
    transcript: Path

    def entries(self) -> list[dict[str, object]]:
        return [json.loads(x) for x in self.transcript.read_text(encoding="utf-8").splitlines()]

    def files(self, suffix: str) -> list[str]:
        return [f for f in self.host.files if f.endswith(suffix)]


@contextmanager
def session(
    endpoints: SharedEndpoints, tmp_path: Path, scenario: str, *, step0: bool = True, **extra: object
) -> Iterator[Session]:
    """A connection to the session's endpoint of ``scenario`` (put back as it started, tests/conftest.py)."""
    r = endpoints.get(scenario, password=PASSWORD)
    host = r.host
    host.extra.update(extra)
    if step0:  # step 0 done: the chain runs through the cross certificate, which the backup must hold
        for root in host.extra["forbidden_roots"]:
            stores.set_eku(host, "ROOT", root, [])
    host.save_state()
    transcript = tmp_path / "run" / "transcript.jsonl"
    conn = connect(
        r.url,
        transport="basic",
        username=r.user,
        password=PASSWORD,
        host_label="web01",
        allow_unencrypted_basic=True,
        allow_cleartext_secrets=True,  # a Basic/HTTP lab host: accepted explicitly
        codepage=host.default_codepage,
        transcript=transcript,
    )
    try:
        yield Session(host, conn, Server(conn), transcript)
    finally:
        conn.close()


def _export(s: Session, thumb: str = "") -> export.ExportResult:
    return export.export_pfx(
        s.server, thumb or str(s.host.extra["current_thumbprint"]), password=PFX_PASSWORD
    )


# --- deletes are read back (W-DEL, W-DEL-STAGE, W-RMDIR-SQ-LOCKED, W-IF-EXIST) ---------------------------


def test_a_held_pfx_is_reported_on_the_server_not_claimed_deleted(
    shared_endpoints: SharedEndpoints, tmp_path: Path
) -> None:
    with session(shared_endpoints, tmp_path, "pfx-locked") as s:
        pfx = _export(s)
        assert s.files(".pfx") == [Host.norm(pfx.remote_path)]  # Windows would keep it too
        folder = s.conn.temp_dir
        planned = export.ExportPlan(None, pfx.thumbprint, False, ())  # type: ignore[arg-type]
        step = export.ExportStep(export.ExportDone(planned, pfx), None)
        facts = export.finish(s.server, step)  # closes: rmdir + read-back of the temp folder
        assert s.host.read_file(pfx.remote_path) is not None and s.host.is_dir(folder)
        deletes = [e for e in s.entries() if str(e.get("what", "")).startswith("delete the server's copy")]
    assert pfx.remote_deleted is False
    assert facts["remote_deleted"] is False and facts["server_copy_deleted"] is False
    assert facts["remote_left"] == [pfx.remote_path, folder]
    advice = facts["remote_left_advice"]
    assert f'del /f "{pfx.remote_path}"' in advice[0] and "holds the private key" in advice[0]
    assert "one-time password, which was never recorded" in advice[0]
    assert f'rmdir /s /q "{folder}"' in advice[1]
    # The delete was tried twice, each time read back by `if exist` (exit 1: still there).
    assert [e["exit_code"] for e in deletes] == [1, 1]
    assert all("if exist" in str(e["command_line"]) for e in deletes)
    assert stale_temp_dirs(s.transcript) == [folder]


def test_a_held_base64_copy_is_reported_and_the_summary_says_what_to_do(
    shared_endpoints: SharedEndpoints, tmp_path: Path
) -> None:
    with session(shared_endpoints, tmp_path, "b64-locked", step0=False) as s:
        target = remote_path(s.conn, ".bin")
        s.conn.upload(b"not a key, but it could be" * 40, target, what="upload a test file")
        assert s.conn.download(target, what="download it again") == b"not a key, but it could be" * 40
        stages = s.files(".b64")
        folder = s.conn.temp_dir
        s.conn.close()
        assert len(stages) == 2 and all(s.host.read_file(p) is not None for p in stages)
        removes = [e for e in s.entries() if str(e.get("what", "")).startswith("remove the temp folder")]
    assert [Host.norm(p) for p in s.conn.remote_left] == [*stages, Host.norm(folder)]
    assert [e["exit_code"] for e in removes] == [1, 1]  # rmdir said nothing; `if exist` said "still there"
    lines = _left_on_server(s.transcript.parent, {})
    assert lines == [leftover_advice(folder)] and f'rmdir /s /q "{folder}"' in lines[0]
    assert "base64 copy" in leftover_advice(s.conn.remote_left[0])


def test_on_a_normal_host_deletes_are_proven_and_nothing_is_left(
    shared_endpoints: SharedEndpoints, tmp_path: Path
) -> None:
    with session(shared_endpoints, tmp_path, "default") as s:
        path = remote_path(s.conn, ".txt")
        s.conn.upload(b"x" * 10, path)
        assert delete_remote(s.conn, path) is True
        pfx = _export(s)
        s.conn.close()
        left = [f for f in s.host.files if "opslib-" in f]
        deletes = [e for e in s.entries() if str(e.get("what", "")).startswith("delete ")]
    assert pfx.remote_deleted is True and pfx.facts()["remote_left"] == [] and s.conn.remote_left == []
    assert left == [] and stale_temp_dirs(s.transcript) == []
    assert deletes and all(e["exit_code"] == 0 and "if exist" in str(e["command_line"]) for e in deletes)


# --- transcript labels and decoded text ------------------------------------------------------------------


def test_helper_commands_have_their_own_labels_and_decoded_text(
    shared_endpoints: SharedEndpoints, tmp_path: Path
) -> None:
    with session(shared_endpoints, tmp_path, "iis6-ja", step0=False) as s:
        s.server.probe()
        entries = s.entries()
    by_line = {str(e.get("command_line")).split(" ")[0] + " " + str(e.get("what")) for e in entries}
    encode = [e for e in entries if "certutil -f -encode" in str(e.get("command_line"))]
    # a download's encode line is labelled "encode …"; a batch of registry reads names its reg export and encode
    assert encode and all(
        str(e["what"]).startswith("encode ")
        or ("reg export" in str(e["what"]) and "certutil -encode" in str(e["what"]))
        for e in encode
    )
    commands = [e for e in entries if "command_line" in e]  # (transfer summaries keep the caller's label)
    assert not any(str(e["what"]) == "read the IIS version" for e in commands), by_line
    ver = next(e for e in entries if e.get("command_line") == "ver")
    assert ver["codepage"] == 932 and "stdout_b64" in ver
    import base64

    assert ver["stdout_text"] == base64.b64decode(str(ver["stdout_b64"])).decode("cp932")


# --- export routes: proven by use, with fallback (W-CERTUTIL-PROBE-EXPORTPFX, W-CERTUTIL-UNKNOWN-VERB) -----


def test_a_lying_exportpfx_probe_falls_back_to_iis_certobj_in_step_3(
    shared_endpoints: SharedEndpoints, tmp_path: Path
) -> None:
    with session(shared_endpoints, tmp_path, "exportpfx-probe-lies") as s:
        assert s.server.capabilities.has_certutil("exportPFX")  # the probe says yes …
        pfx = _export(s)  # … the use says "unknown verb": IIS.CertObj through the production site
        assert s.files(".pfx") == []
    assert pfx.route == "IIS.CertObj via W3SVC/1" and pfx.check.ok
    facts = pfx.facts()
    assert facts["export_route"] == pfx.route
    assert "unknown verb" in facts["export_route_reason"] and "0x80070057" in facts["export_route_reason"]


def test_a_lying_exportpfx_probe_is_found_in_the_preflight_before_step_2(
    shared_endpoints: SharedEndpoints, tmp_path: Path
) -> None:
    with session(shared_endpoints, tmp_path, "exportpfx-probe-lies") as s:
        production = find_site(s.server.iis.sites(), "W3SVC/1", host="web01")
        proof = export_route.prove_export_route(s.server, production)
        assert s.files(".pfx") == []
    assert proof.route == "IIS.CertObj via W3SVC/1" and proof.remote_left == ()
    assert proof.reason.startswith("pre-flight: certutil -exportPFX failed as an unknown verb")


def test_a_lying_probe_without_a_fallback_refuses_in_the_preflight(
    shared_endpoints: SharedEndpoints, tmp_path: Path
) -> None:
    with session(shared_endpoints, tmp_path, "exportpfx-probe-lies") as s:
        production = find_site(s.server.iis.sites(), "W3SVC/1", host="web01")
        del s.host.programs["cscript"]
        s.server.probe(refresh=True)
        sites_before = json.dumps(s.host.state()["sites"], sort_keys=True)
        with pytest.raises(CapabilityMissing, match=r"a working PFX export route .* nothing was changed"):
            export_route.prove_export_route(s.server, production)
        assert json.dumps(s.host.state()["sites"], sort_keys=True) == sites_before
        assert s.files(".pfx") == []


def test_a_denying_exportpfx_probe_takes_iis_certobj_proven_by_use(
    shared_endpoints: SharedEndpoints, tmp_path: Path
) -> None:
    with session(shared_endpoints, tmp_path, "exportpfx-probe-denies") as s:
        assert not s.server.capabilities.has_certutil("exportPFX")
        production = find_site(s.server.iis.sites(), "W3SVC/1", host="web01")
        proof = export_route.prove_export_route(s.server, production)
        pfx = _export(s)
    assert proof.route == pfx.route == "IIS.CertObj via W3SVC/1"
    assert "pre-flight" in proof.reason and "said absent" in proof.reason and pfx.check.ok


def test_a_certutil_failure_other_than_an_unknown_verb_stops_without_fallback(
    shared_endpoints: SharedEndpoints, tmp_path: Path
) -> None:
    """W-CERTUTIL-EXITCODE, opposite case: certutil exits 1 (not E_INVALIDARG) for the unknown verb.
    The kit does not guess a fallback: the pre-flight refuses before step 2, step 3 stops with the code."""
    with session(shared_endpoints, tmp_path, "exportpfx-probe-lies") as s:
        real = s.host.programs["certutil"]

        def exit_one(inv: Invocation) -> int:
            code = int(real(inv))
            return 1 if code == E_INVALIDARG else code

        s.host.programs["certutil"] = exit_one
        production = find_site(s.server.iis.sites(), "W3SVC/1", host="web01")
        with pytest.raises(CapabilityMissing, match="pre-flight export of the production certificate"):
            export_route.prove_export_route(s.server, production)
        with pytest.raises(RemoteCommandFailed, match=r"exited with 1 \("):
            _export(s)
        assert s.files(".pfx") == []


def test_a_probe_cmd_cannot_start_stops_the_probe(shared_endpoints: SharedEndpoints, tmp_path: Path) -> None:
    """W-CMD-DENIED-5, opposite case: cmd answers 5 (access denied) for a probe: no answer, not "absent"."""
    with session(shared_endpoints, tmp_path, "default", step0=False) as s:
        real = s.host.programs["certutil"]

        def denied(inv: Invocation) -> int:
            return 5 if inv.argv[-1] == "-?" else int(real(inv))

        s.host.programs["certutil"] = denied
        with pytest.raises(RemoteCommandFailed, match="the probe itself failed"):
            s.server.probe()


# --- hashfile: decided by use (W-CERTUTIL-PROBE-HASHFILE, W-CERTUTIL-HASHFILE) --------------------------


@pytest.mark.parametrize(
    ("scenario", "extra", "probe_says", "verified_by"),
    [
        ("hashfile-probe-lies", {}, True, "size"),  # 2003: the use fails, the transfer keeps the size check
        ("hashfile-probe-denies", {}, False, "size"),  # 2003 refuses SHA256 anyway
        ("iis10", {"certutil_probe_lies": ["hashfile"]}, True, "size"),
        ("iis10", {"certutil_probe_denies": ["hashfile"]}, False, "size+sha256"),  # used although -? said no
    ],
)
def test_hashfile_is_decided_by_use_not_by_its_probe(
    shared_endpoints: SharedEndpoints,
    tmp_path: Path,
    scenario: str,
    extra: dict[str, object],
    probe_says: bool,
    verified_by: str,
) -> None:
    with session(shared_endpoints, tmp_path, scenario, step0=False, **extra) as s:
        assert s.server.capabilities.has_certutil("hashfile") is probe_says
        data = random.token_bytes(3000)
        path = remote_path(s.conn, ".bin")
        assert s.conn.upload(data, path).verified_by == verified_by
        assert s.conn.download(path) == data


# --- the operator's password never reaches the server; the PFX is re-protected for the target ----------


def _oid(dotted: str) -> bytes:
    """DER of an OID, written out here independently of the kit (X.690 8.19: base-128 arcs)."""
    first, second, *rest = (int(a) for a in dotted.split("."))
    body = bytes([first * 40 + second])
    for arc in rest:
        digits = [arc & 0x7F]
        while arc >= 0x80:
            arc >>= 7
            digits.append(0x80 | (arc & 0x7F))
        body += bytes(reversed(digits))
    return bytes([6, len(body)]) + body


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("5.2.3790", PFX_3DES_SHA1),
        ("6.1.7601", PFX_3DES_SHA1),
        ("10.0.14393", PFX_3DES_SHA1),  # Server 2016: before Windows 10 1709
        ("10.0.16299", PFX_AES256_SHA256),
        ("10.0.17763", PFX_AES256_SHA256),  # Server 2019
        ("", PFX_3DES_SHA1),
    ],
)
def test_pfx_encryption_follows_the_windows_version(version: str, expected: str) -> None:
    assert pfx_encryption_for(version) == expected


@pytest.mark.parametrize(
    ("scenario", "encryption", "present", "absent"),
    [
        ("default", PFX_3DES_SHA1, {"1.2.840.113549.1.12.1.3", "1.3.14.3.2.26"}, {"2.16.840.1.101.3.4.1.42"}),
        (
            "iis10",
            PFX_AES256_SHA256,
            {"1.2.840.113549.1.5.13", "2.16.840.1.101.3.4.1.42", "2.16.840.1.101.3.4.2.1"},
            {"1.2.840.113549.1.12.1.3", "1.3.14.3.2.26"},
        ),
    ],
)
def test_the_pfx_is_reprotected_for_the_target_and_the_one_time_password_is_nowhere(
    shared_endpoints: SharedEndpoints,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    scenario: str,
    encryption: str,
    present: set[str],
    absent: set[str],
) -> None:
    seen: list[str] = []
    real: Callable[[int], str] = export.secrets.token_hex

    def remember(n: int) -> str:
        seen.append(real(n))
        return seen[-1]

    monkeypatch.setattr(export.secrets, "token_hex", remember)
    with session(shared_endpoints, tmp_path, scenario) as s:
        pfx = _export(s)
        served = [e for e in s.entries() if "-exportPFX MY" in str(e.get("command_line"))]
    (one_time,) = seen
    assert pfx.encryption == encryption and pfx.facts()["pfx_encryption"] == encryption
    assert all(_oid(o) in pfx.data for o in present) and not any(_oid(o) in pfx.data for o in absent)
    bundle = certs.load_pkcs12(pfx.data, PFX_PASSWORD, source="backup")
    assert (
        bundle.private_key is not None and certs.thumbprint(bundle.leaf) == s.host.extra["current_thumbprint"]
    )
    with pytest.raises(Exception):  # noqa: B017 - cryptography's ValueError or the kit's CertificateError
        certs.load_pkcs12(pfx.data, one_time, source="backup")
    evidence = s.transcript.read_text(encoding="utf-8") + json.dumps(pfx.facts()) + json.dumps(pfx.row())
    assert one_time not in evidence and PFX_PASSWORD not in evidence
    assert served and all(re.search(r"-p \S+ -exportPFX", str(e["command_line"])) for e in served)


# --- end to end: `opslib run` against a server that holds the exported PFX (notebooks tier) -------------


def test_a_full_run_on_a_server_that_holds_the_pfx_reports_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    winrm_pw, pfx_pw = f"W{random.token_urlsafe(15)}", f"P{random.token_urlsafe(15)}"
    monkeypatch.setenv("OPSLIB_RB_WINRM", winrm_pw)
    monkeypatch.setenv("OPSLIB_RB_PFX", pfx_pw)
    reh = rehearsal.start(
        scenario="pfx-locked",
        password=winrm_pw,
        workdir=tmp_path / "host",
        state_file=tmp_path / "state.json",
    )
    try:
        data = reh.params(
            password_env="OPSLIB_RB_WINRM",
            pfx_password_env="OPSLIB_RB_PFX",
            backup_dir=str(tmp_path / "backups"),
        )
        params_file = tmp_path / "params" / "web01.yaml"
        params_file.parent.mkdir()
        params_file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        code = cli.main(["run", str(params_file), "--evidence-root", str(tmp_path / "evidence"), "--yes"])
        held = sorted(f for f in reh.host.files if f.endswith(".pfx"))
    finally:
        reh.stop()
    out = capsys.readouterr().out
    assert code == 0
    (run_json,) = (tmp_path / "evidence").glob("*/run.json")
    m = json.loads(run_json.read_text(encoding="utf-8"))
    facts = m["facts"]
    assert facts["remote_deleted"] is False and facts["export_route"] == "certutil -exportPFX"
    assert facts["pfx_encryption"] == PFX_3DES_SHA1
    step3_pfx = next(p for p in facts["remote_left"] if p.endswith(".pfx"))
    assert step3_pfx.endswith(".pfx") and Host.norm(step3_pfx) in held
    assert len(held) == 2  # step 3's and the pre-flight's (step 0) export of the production certificate
    left = m["left_on_server"]
    assert any(f'del /f "{step3_pfx}"' in line and "never recorded" in line for line in left)
    # the run's one temp folder (its steps share it): the held PFX files keep it from going at the run's end
    assert sum("rmdir /s /q" in line for line in left) == 1
    assert f"STILL ON THE SERVER: {leftover_advice(step3_pfx)}" in out
    assert pfx_pw not in run_json.read_text(encoding="utf-8") and pfx_pw not in out


def test_the_read_back_lines_are_built_by_the_one_quoting_function() -> None:
    from opslib.errors import UnsafeArgument
    from opslib.winrm.quoting import delete_and_check, gone_check

    assert gone_check(r"C:\t x\a.pfx") == r'if exist "C:\t x\a.pfx" (exit /b 1) else (exit /b 0)'
    assert gone_check(r"C:\t\a.pfx") == r"if exist C:\t\a.pfx (exit /b 1) else (exit /b 0)"
    assert delete_and_check(["rmdir", "/s", "/q", r"C:\t x"], r"C:\t x") == (
        r'rmdir /s /q "C:\t x"&if exist "C:\t x" (exit /b 1) else (exit /b 0)'
    )
    with pytest.raises(UnsafeArgument, match="percent sign"):
        gone_check(r"C:\%TEMP%\a.pfx")
