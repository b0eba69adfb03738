"""Production only moves forward unless the operator says otherwise, by name (issue 25), end to end
against the rehearsal host through the command line:

* a resume of an old run after a newer run changed production stops before anything, naming both
  certificates and the newer run; ``--force-older`` goes on and is recorded;
* a rollback whose target has expired stops before any run folder unless ``--force-expired``
  (recorded); one that expires within ``warn_days`` goes on and says so;
* a resume refuses a run whose evidence does not verify (an edited run.json), naming the problem.

The steps run in-process (``OPSLIB_STEP_ENGINE=inprocess``): a failure after the swap is injected by
making step 3's first call raise, as a real fault there would.
"""

from __future__ import annotations

import errno
import json
import os
import secrets as random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from opslib import cli, evidence, rehearsal
from opslib.errors import VerificationFailed
from opslib.runbook import forward

WINRM_ENV, PFX_ENV = "OPSLIB_FORWARD_WINRM", "OPSLIB_FORWARD_PFX"


@pytest.fixture
def reh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[rehearsal.Rehearsal]:
    password = f"W{random.token_urlsafe(15)}"
    monkeypatch.setenv(WINRM_ENV, password)
    monkeypatch.setenv(PFX_ENV, f"P{random.token_urlsafe(15)}")
    monkeypatch.setenv("OPSLIB_STEP_ENGINE", "inprocess")
    r = rehearsal.start(scenario="iis6-ja", password=password, workdir=tmp_path / "host")
    try:
        yield r
    finally:
        r.stop()


def _params(reh: rehearsal.Rehearsal, tmp_path: Path) -> Path:
    data = reh.params(password_env=WINRM_ENV, pfx_password_env=PFX_ENV, backup_dir=str(tmp_path / "backups"))
    path = tmp_path / "params" / "web01.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _runs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if (p / "run.json").is_file()) if root.is_dir() else []


def _manifest(run_dir: Path) -> dict[str, Any]:
    return dict(json.loads((run_dir / "run.json").read_text(encoding="utf-8")))


def _served(reh: rehearsal.Rehearsal) -> str:
    sites = reh.host.state()["sites"].values()
    site = next(s for s in sites if s["comment"] == reh.host.extra["production_site"])
    return str(site["ssl_cert_hash"])


def _assert_reviewers_read_the_rollback(
    root: Path, a: Path, r: Path, *, old: str, new: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``evidence list/show`` and the review notebook's expiry view after A (swapped, then failed at
    step 3) and R (A's rollback): R took the new certificate off and put the old one back."""
    old_until = _manifest(a)["facts"]["production_not_after_utc_before"]
    new_until = _manifest(a)["facts"]["new_not_after_utc"]
    assert cli.main(["evidence", "list", "--root", str(root), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(x["old_thumbprint"], x["new_thumbprint"], x["serving_thumbprint"]) for x in rows] == [
        (old, new, new),  # A failed after its swap: the new certificate serves (its read-only handshake)
        (new, old, old),
    ]
    assert (rows[1]["old_not_after_utc"], rows[1]["new_not_after_utc"]) == (new_until, old_until)
    assert cli.main(["evidence", "list", "--root", str(root)]) == 0
    line = capsys.readouterr().out.splitlines()[2]
    assert "rollback  succeeded" in line and f"{new[:8]} → {old[:8]}" in line and old_until[:10] in line
    assert cli.main(["evidence", "show", str(r)]) == 0
    out = capsys.readouterr().out
    assert f"taken off {new}  expires {new_until}" in out and f"put back  {old}  expires {old_until}" in out
    # What must be renewed next: the certificate the rollback put back (10 days left), not NaN/unknown.
    now_utc = datetime.fromisoformat(_manifest(r)["finished_utc"])
    (row,) = evidence.expiry_table(evidence.load_runs(root), now_utc=now_utc).itertuples()
    assert (row.thumbprint, row.source_run, row.state, row.days_left) == (old, r.name, "renew now", 9)
    assert row.not_after_utc.isoformat().replace("+00:00", "Z") == old_until


@pytest.mark.timeout(600)
def test_a_resume_after_a_newer_rollback_stops_unless_forced_by_name(
    reh: rehearsal.Rehearsal,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old, new = reh.host.extra["current_thumbprint"], reh.host.extra["new_thumbprint"]
    params, root = _params(reh, tmp_path), tmp_path / "evidence"

    # A: swaps to the new certificate, then step 3 fails.
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise VerificationFailed("web01", "injected: the export failed")

    with monkeypatch.context() as m:
        m.setattr("opslib.ops.export.plan_target", broken)
        assert cli.main(["run", str(params), "--evidence-root", str(root), "--yes"]) == 1
    (a,) = _runs(root)
    assert _served(reh) == new
    # R: a newer run — the rollback of A — puts the old certificate back.
    assert cli.main(["rollback", str(a), "--yes"]) == 0
    r = _runs(root)[1]
    assert _served(reh) == old
    capsys.readouterr()
    _assert_reviewers_read_the_rollback(root, a, r, old=old, new=new, capsys=capsys)

    # Resuming A now would put the new certificate back over what R did: refused, nothing created.
    assert cli.main(["resume", str(a), "--yes"]) == 1
    err = capsys.readouterr().err
    assert f"serves {old} now, not {new} (run {a.name} swapped production to {new})" in err
    assert f"it was put there by run {r.name}" in err
    assert "--force-older" in err and "nothing was changed" in err
    assert len(_runs(root)) == 2, "a refused resume leaves no run folder"
    assert _served(reh) == old

    # Said by name, it goes on (steps 3 and 4: A's swap is done, so nothing is swapped again) and records
    # it; step 4 then says that production does not serve A's certificate.
    assert cli.main(["resume", str(a), "--yes", "--force-older"]) == 1
    err = capsys.readouterr().err
    assert "going on because --force-older was given" in err
    c = _runs(root)[2]
    m_c = _manifest(c)
    assert m_c["forced"] == {"older": True}
    assert m_c["production_check"]["newer_run"] == r.name
    assert m_c["production_check"]["served"] == [old]
    assert m_c["failed_step"] == "04_verify_endpoint"
    assert _served(reh) == old
    assert cli.main(["evidence", "verify", "--root", str(root)]) == 0


@pytest.mark.timeout(600)
def test_a_rollback_of_an_expired_certificate_stops_and_one_that_expires_soon_warns(
    reh: rehearsal.Rehearsal,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old, new = reh.host.extra["current_thumbprint"], reh.host.extra["new_thumbprint"]
    params, root = _params(reh, tmp_path), tmp_path / "evidence"
    assert cli.main(["run", str(params), "--evidence-root", str(root), "--yes"]) == 0
    (a,) = _runs(root)
    capsys.readouterr()

    # 11 days later the old certificate (10 days left in this scenario) has expired.
    later = datetime.now(UTC) + timedelta(days=11)
    with monkeypatch.context() as m:
        m.setattr(forward, "now_utc", lambda: later)
        assert cli.main(["rollback", str(a), "--yes"]) == 1
        err = capsys.readouterr().err
        assert f"the certificate this rollback would put back, {old}, expired at" in err
        assert "Renew instead" in err and f"opslib rollback {a} --force-expired" in err
        assert len(_runs(root)) == 1, "nothing was created"
        assert _served(reh) == new
        # Said by name, it goes on and run.json records it.
        assert cli.main(["rollback", str(a), "--yes", "--force-expired"]) == 0
        assert f"opslib: warning: putting back {old}, which expired at" in capsys.readouterr().err
        forced = _manifest(_runs(root)[1])["forced"]
        assert forced["expired"]["thumbprint"] == old
        assert _served(reh) == old

    # Today it expires within warn_days (30): a rollback goes on and says so (production serving the
    # certificate being put back already is expected: the rollback is done again, idempotently).
    assert cli.main(["rollback", str(a), "--yes"]) == 0
    err = capsys.readouterr().err
    assert f"opslib: warning: the certificate put back, {old}, expires at" in err
    rb = _runs(root)[2]
    m_rb = _manifest(rb)
    assert old in m_rb["expiry_warning"] and "renew it soon" in m_rb["expiry_warning"]
    assert m_rb["production_check"]["result"] == "as expected"
    assert _served(reh) == old
    report = (rb / "report.html").read_text(encoding="utf-8")
    assert "warnings: expires soon" in report and "警告: 有効期限が近い" in report  # step 4's, in words
    assert str(m_rb["parameters"]["rollback"]["old_not_after_utc"])[:10] in report


@pytest.mark.timeout(600)
def test_a_resume_refuses_a_run_whose_evidence_does_not_verify(
    reh: rehearsal.Rehearsal, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params, root = _params(reh, tmp_path), tmp_path / "evidence"
    reh.set_faults(["before:swap:fail"])  # step 2's server-side swap, refused (by its name)
    assert cli.main(["run", str(params), "--evidence-root", str(root), "--yes"]) == 1
    reh.set_faults([])
    (a,) = _runs(root)
    doc = _manifest(a)
    doc["operator"] = "mallory"
    doc["status"] = "running"
    (a / "run.json").write_text(json.dumps(doc), encoding="utf-8")
    capsys.readouterr()
    assert cli.main(["resume", str(a), "--yes"]) == 1
    err = capsys.readouterr().err
    assert "this run's evidence does not verify, so it cannot be resumed" in err
    assert "nothing was changed" in err
    assert len(_runs(root)) == 1
    assert _served(reh) == reh.host.extra["current_thumbprint"]
    assert os.environ.get("OPSLIB_STEP_ENGINE") == "inprocess"


@pytest.mark.timeout(600)
@pytest.mark.parametrize("keyed", [False, True], ids=["no-key", "hmac-key"])
def test_a_full_evidence_disk_stops_with_one_message_cleans_the_server_and_resumes_later(
    reh: rehearsal.Rehearsal,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    keyed: bool,
) -> None:
    params, root = _params(reh, tmp_path), tmp_path / "evidence"
    if keyed:  # with a key every write of the unfinished run.json is signed, so the resume accepts it
        monkeypatch.setenv("OPSLIB_FORWARD_HMAC", random.token_urlsafe(24))
        data = yaml.safe_load(params.read_text(encoding="utf-8"))
        data["evidence"] = {**(data.get("evidence") or {}), "hmac_key": "env:OPSLIB_FORWARD_HMAC"}
        params.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    from opslib.evidence import folder

    real = folder.write_run_json

    def full_once_step_1_starts(run_dir: Any, doc: dict[str, Any]) -> None:
        if any(s.get("name") == "01_install_certificate" for s in doc.get("steps") or []):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(run_dir, doc)

    with monkeypatch.context() as m:
        m.setattr(folder, "write_run_json", full_once_step_1_starts)
        assert cli.main(["run", str(params), "--evidence-root", str(root), "--yes"]) == 1
    err = capsys.readouterr().err
    (a,) = _runs(root)
    assert err.count("cannot write the evidence (No space left on device)") >= 1
    assert "Traceback" not in err
    assert f"opslib: error: {a}: cannot write the evidence (No space left on device)" in err
    assert f"then continue: opslib resume {a}" in err
    state = reh.host.state()
    left = [d for d in state["dirs"] if "opslib-" in d.lower()]
    assert left == [], f"the lock and the run's temp folder are removed: {left}"
    assert _manifest(a)["status"] == "running", "the evidence stays unfinished: the resume closes it"
    assert ("progress_hmac" in _manifest(a)) is keyed
    assert _served(reh) == reh.host.extra["current_thumbprint"], "step 01 never ran"

    # The disk is back: the run is resumed from step 01 and the evidence verifies.
    assert cli.main(["resume", str(a), "--yes"]) == 0
    assert _served(reh) == reh.host.extra["new_thumbprint"]
    assert _manifest(a)["status"] == "failed"
    key = ["--hmac-key", "env:OPSLIB_FORWARD_HMAC"] if keyed else []
    assert cli.main(["evidence", "verify", "--root", str(root), *key]) == 0
    assert ("hmac" in _manifest(a)) is keyed


@pytest.mark.timeout(600)
def test_certificate_text_reaches_the_console_escaped(
    reh: rehearsal.Rehearsal,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The "not installed" warning and the run's summary carry certificate text: control characters
    (a terminal's clear-screen and title sequences here) are escaped before they reach the console."""
    from opslib.ops import install

    real = install.InstallStep.facts
    hostile = "\x1b[2J\x1b]0;owned\x07 Rogue CA"

    def with_a_hostile_ca(self: Any) -> dict[str, Any]:
        facts = real(self)
        facts["ca_certificates_ignored"] = [{"thumbprint": "AB" * 20, "certificate": hostile}]
        facts["new_subject"] = hostile
        return facts

    monkeypatch.setattr(install.InstallStep, "facts", with_a_hostile_ca)
    params, root = _params(reh, tmp_path), tmp_path / "evidence"
    assert cli.main(["run", str(params), "--evidence-root", str(root), "--yes", "--steps", "0,1"]) == 0
    out, err = capsys.readouterr()
    assert "opslib: warning: 1 CA certificate(s) of the file not installed" in err
    assert "facts.ca_certificates_ignored): \\x1b[2J\\x1b]0;owned\\x07 Rogue CA [ABABABAB…]" in err
    assert "\x1b" not in out + err and "\x07" not in out + err
