"""Recovery paths against the rehearsal host, end to end (papermill, real kernels, real WinRM):

fail → a later run → ``opslib resume --params`` → a failing ``opslib rollback`` → ``opslib rollback``
(the roots stay disabled) → ``opslib rollback --roots``, with ``opslib evidence verify --root`` clean
after each run: a run folder, once finalized, is never written again (resume and rollback are new runs
chained like any run). Along the way: what the operator reads on the console after a failure and in a
dry run, and the mode column of ``evidence list``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import secrets as random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from secretscan import assert_no_secrets

from opslib import certs, cli, evidence, rehearsal
from opslib.rehearsal.host import STARTED
from opslib.server import stores

WINRM_ENV, PFX_ENV = "OPSLIB_RECOVERY_WINRM", "OPSLIB_RECOVERY_PFX"


@pytest.fixture
def secrets_() -> Iterator[list[str]]:
    values = [f"W{random.token_urlsafe(15)}", f"P{random.token_urlsafe(15)}"]
    saved = {k: os.environ.get(k) for k in (WINRM_ENV, PFX_ENV)}
    os.environ.update({WINRM_ENV: values[0], PFX_ENV: values[1]})
    yield values
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _runs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if (p / "run.json").is_file())


def _manifest(run_dir: Path) -> dict[str, Any]:
    return dict(json.loads((run_dir / "run.json").read_text(encoding="utf-8")))


def _verify_root(root: Path, capsys: pytest.CaptureFixture[str]) -> str:
    code = cli.main(["evidence", "verify", "--root", str(root)])
    out = capsys.readouterr().out
    assert code == 0, out
    return out


def _root_blobs(reh: rehearsal.Rehearsal, roots: list[tuple[str, str]]) -> list[bytes]:
    return [
        reh.host.reg_get(rf"{stores.STORE_KEYS[store]}\Certificates\{thumb}", "Blob")[2]
        for store, thumb in roots
    ]


@pytest.mark.timeout(900)
def test_fail_new_run_resume_rollback_keeps_the_evidence_valid(
    tmp_path: Path, secrets_: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    reh = rehearsal.start(scenario="iis6-ja", password=secrets_[0], workdir=tmp_path / "host")
    root = tmp_path / "evidence"
    try:
        extra = reh.host.extra
        old, new = extra["current_thumbprint"], extra["new_thumbprint"]
        roots = [("ROOT", extra["forbidden_roots"][0]), ("AuthRoot", certs.G5_THUMBPRINT)]
        blobs_before = _root_blobs(reh, roots)
        data = reh.params(
            password_env=WINRM_ENV, pfx_password_env=PFX_ENV, backup_dir=str(tmp_path / "backups")
        )
        params_file = tmp_path / "params" / "web01.yaml"
        params_file.parent.mkdir()
        params_file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")

        # A: step 2 fails: its one server-side swap (the 10th cscript command of a run) is refused.
        reh.set_faults(["before:swap:fail"])  # step 2's one server-side swap, refused before it runs
        assert cli.main(["run", str(params_file), "--evidence-root", str(root), "--yes"]) == 1
        err = capsys.readouterr().err
        (a,) = _runs(root)
        # One line per step, no cell progress bars.
        assert re.search(
            r"opslib: \[1/5\] 00 事前確認 / Pre-check the trusted root store +succeeded +\d+\.\d s", err
        )
        assert re.search(
            r"opslib: \[3/5\] 02 サーバIDの入替え / Swap the production certificate +failed", err
        )
        assert "Executing" not in err and "cell/s" not in err
        # The last lines: what production serves now (a read-only handshake), what changed, what to type.
        tail = err[err.index(f"opslib: run {a.name} failed at step 02") :]
        assert re.search(
            rf"production now : www1\.example\.jp serves certificate {old}, expires 20\d\d-.* — read-only TLS handshake",
            tail,
        )
        assert f"00: ROOT\\{roots[0][1]}: purposes (EKU property 9) all purposes → disabled" in tail
        assert f"01: MY\\{new}: certificate (none) → www1.example.jp" in tail
        assert f"02: failed; what it did before it stopped is in {a / '02_swap_certificate.ipynb'}" in tail
        assert f"next           : fix the cause, then continue: opslib resume {a} --yes" in tail
        assert f"opslib resume {a} --params FIXED.yaml --yes" in tail
        assert f"or undo what changed: opslib rollback {a} --roots --yes" in tail
        assert _manifest(a)["production_now"]["thumbprint"] == old
        assert "server_changed" not in _manifest(a)["steps"][-1], "a failed swap is no refusal"
        assert "changed_nothing" not in _manifest(a)
        a_bytes = (a / "run.json").read_bytes()
        reh.set_faults([])

        # B: a later run (a dry run) chains A; it prints its plan.
        assert cli.main(["run", str(params_file), "--evidence-root", str(root), "--dry-run"]) == 0
        out = capsys.readouterr().out
        b = _runs(root)[1]
        assert _manifest(b)["previous_run"]["run_json_sha256"] == hashlib.sha256(a_bytes).hexdigest()
        assert "plan (dry run: nothing was changed; a real run would do this):" in out
        assert f'W3SVC/1 "www1.example.jp": SSLCertHash {old} → {new}' in out
        assert re.search(r"predicted chain: www1\.example\.jp → .* G4 → ", out)
        _verify_root(root, capsys)

        # Resume A with a correction that cannot change what was done; a key that could is refused.
        bad = tmp_path / "params" / "bad.yaml"
        bad.write_text(
            yaml.safe_dump({"production_site": "www2.example.jp", "warn_days": 20}), encoding="utf-8"
        )
        assert cli.main(["resume", str(a), "--params", str(bad), "--yes"]) == 2
        err = capsys.readouterr().err
        assert re.search(r"bad\.yaml: production_site: cannot be changed on resume \(production_site: ", err)
        # What to do instead names a rollback that has something to undo (A disabled roots, wrote rollback.yaml).
        assert f"undo the run first (opslib rollback {a} --roots), then start a new run" in err
        assert len(_runs(root)) == 2, "a refused resume creates nothing"
        fixed = tmp_path / "params" / "fixed.yaml"
        fixed.write_text(yaml.safe_dump({"warn_days": 20, "winrm": {"read_timeout_s": 40}}), encoding="utf-8")
        assert cli.main(["resume", str(a), "--params", str(fixed), "--yes"]) == 0
        capsys.readouterr()
        c = _runs(root)[2]
        assert (a / "run.json").read_bytes() == a_bytes, "the resumed run's run.json is never rewritten"
        m = _manifest(c)
        assert (m["mode"], m["status"]) == ("resume", "succeeded")
        assert m["resumes"] == {
            "run_id": a.name,
            "run_json_sha256": hashlib.sha256(a_bytes).hexdigest(),
            "steps": ["00_precheck_root_store", "01_install_certificate"],
        }
        assert m["parameter_changes"] == [
            {"key": "warn_days", "old": 30, "new": 20},
            {"key": "winrm.read_timeout_s", "old": 30, "new": 40},
        ]
        assert [s["name"] for s in m["steps"]] == [
            "02_swap_certificate",
            "03_backup_keypair",
            "04_verify_endpoint",
        ]
        assert m["facts"]["new_thumbprint"] == new and m["facts"]["production_thumbprint_before"] == old
        assert not (c / "00_precheck_root_store.ipynb").exists(), "nothing it did not execute is copied"
        # The resume reuses A's probe (same connection): no capability probe runs again (issue 18).
        assert m["capabilities_from"]["run_id"] == a.name
        probes = [
            e
            for e in map(json.loads, (c / "transcript.jsonl").read_text(encoding="utf-8").splitlines())
            if "command_line" in e and str(e.get("what", "")).endswith("?")
        ]
        assert probes == [], probes
        assert (reh.host.sites[1].ssl_cert_hash, reh.host.sites[1].state) == (new, STARTED)
        _verify_root(root, capsys)
        assert cli.main(["resume", str(a), "--yes"]) == 2
        assert f"was already resumed by run {c.name} (succeeded)" in capsys.readouterr().err

        # A rollback that fails (IIS will not start the site with the old certificate) is undone: production
        # serves the certificate it served before, started; the console says so and does not advise itself.
        extra["fail_start_thumbprints"] = [old]
        assert cli.main(["rollback", str(c), "--yes"]) == 1
        err = capsys.readouterr().err
        tail = err[err.index("opslib: error:") :]
        assert (
            "the rollback was undone: W3SVC/1" in tail and f"serves {new} again, started (read back)" in tail
        )
        assert re.search(
            rf"production now : www1\.example\.jp serves certificate {new}, .* read-only TLS handshake",
            tail,
        ), tail
        assert "does NOT answer TLS" not in tail
        assert (reh.host.sites[1].ssl_cert_hash, reh.host.sites[1].state) == (new, STARTED)
        assert f"or put certificate {old} back by hand: IIS Manager → site www1.example.jp" in tail
        # The printed next command is the one run below, once the cause is fixed.
        assert (
            f"fix the cause (the error above), then run the rollback again: opslib rollback {c} --yes" in tail
        )
        assert "rollback.yaml" not in tail and "opslib resume" not in tail
        extra["fail_start_thumbprints"] = []
        _verify_root(root, capsys)

        # The rollback without --roots (the printed command): the old certificate back, the roots left disabled.
        assert cli.main(["rollback", str(c), "--yes"]) == 0
        err = capsys.readouterr().err
        assert re.search(r"\[2/2\] 04 公開状態の確認 / Verify what the site serves +succeeded", err)
        assert "06_restore_roots" not in _manifest(_runs(root)[-1])["selected_steps"]
        assert (reh.host.sites[1].ssl_cert_hash, reh.host.sites[1].state) == (old, STARTED)

        # The rollback with the roots: the old certificate back, exactly the roots A's step 0 disabled.
        assert _root_blobs(reh, roots) != blobs_before
        assert cli.main(["rollback", str(c), "--roots", "--yes"]) == 0
        err = capsys.readouterr().err
        # The endpoint is checked after the roots changed (06 before 04); the lost cross certificate
        # is a warning with its meaning, on the console and in run.json; exit 0.
        assert re.search(
            r"\[2/3\] 06 ルート証明書の復元 / Re-enable the roots step 0 disabled +succeeded", err
        )
        assert re.search(r"\[3/3\] 04 公開状態の確認 / Verify what the site serves +succeeded", err)
        assert "IIS no longer sends the cross certificate" in err
        assert "the certificate put back" in err and "renew it soon" in err  # expiring, on the console
        d = _runs(root)[-1]
        m = _manifest(d)
        assert m["selected_steps"][-2:] == ["06_restore_roots", "04_verify_endpoint"]
        assert any("cross certificate" in w for w in m["facts"]["verify_expected_warnings"])
        assert m["facts"]["chain_ok"] is True
        # The auditor's summary says it in both languages (the glossary's words, not the code).
        page = (d / "report.html").read_text(encoding="utf-8")
        summary = page[page.index('<section id="summary">') : page.index('<section class="step"')]
        assert "IIS はクロスルート証明書を送らなくなりました" in summary
        assert "so IIS no longer sends the cross certificate" in summary
        assert "cross_not_sent_expected" not in summary and "expires_soon" not in summary
        assert (m["mode"], m["status"]) == ("rollback", "succeeded")
        assert m["rolls_back"]["run_id"] == c.name
        assert {r["file"] for r in m["facts"]["root_backups_used"]} == {
            f"root-backup_{store}_{thumb}.reg" for store, thumb in roots
        }
        assert {r["run_id"] for r in m["facts"]["root_backups_used"]} == {a.name}
        assert _root_blobs(reh, roots) == blobs_before
        assert (reh.host.sites[1].ssl_cert_hash, reh.host.sites[1].state) == (old, STARTED)
    finally:
        reh.stop()
    out = _verify_root(root, capsys)
    assert out.splitlines()[0] == (
        f"ok: 6 runs in {root} (file hashes, chain) — integrity not provable without the HMAC key"
    )
    assert cli.main(["evidence", "list", "--root", str(root), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["mode"], r["status"]) for r in rows] == [
        ("renew", "failed"),
        ("dry run", "succeeded"),
        ("resume", "succeeded"),
        ("rollback", "failed"),
        ("rollback", "succeeded"),
        ("rollback", "succeeded"),
    ]
    assert all(r["nonzero_exits"] is not None for r in rows)
    assert rows[1]["probe_nonzero_exits"] > 0, "a dry run probes the server's tools"
    # Old → new as a reviewer reads them: the failed run's old certificate is what step 0 recorded; a
    # rollback's is what production served before → after it; what production serves after each run.
    old_until = _manifest(a)["facts"]["production_not_after_utc_before"]
    assert (rows[0]["old_thumbprint"], rows[0]["old_not_after_utc"], rows[0]["new_thumbprint"]) == (
        old,
        old_until,
        new,
    )
    assert rows[0]["serving_thumbprint"] == old, "the failed swap left the old certificate in service"
    # The failed rollback's attempt: new → old (from its rollback parameters). IIS would not start the
    # site with the old certificate, so the rollback was undone (production started with the new one
    # again): the next rollback took off the new certificate, the last one found the old one in place —
    # each shows what production's binding held before → after.
    assert (rows[3]["old_thumbprint"], rows[3]["new_thumbprint"]) == (new, old)
    assert rows[4]["old_thumbprint"] == new
    assert rows[5]["old_thumbprint"] == old
    for rollback in rows[4:]:
        assert (rollback["new_thumbprint"], rollback["new_not_after_utc"]) == (old, old_until)
        assert (rollback["serving_thumbprint"], rollback["serving_not_after_utc"]) == (old, old_until)
    assert cli.main(["evidence", "list", "--root", str(root)]) == 0
    listing = capsys.readouterr().out
    dry_line = listing.splitlines()[2]
    assert re.search(
        rf"dry run .* {rows[1]['nonzero_exits']} \(\+{rows[1]['probe_nonzero_exits']} probes\)$", dry_line
    )
    lines = listing.splitlines()
    assert f"{old[:8]} → {new[:8]}" in lines[1], "the failed run: its recorded old certificate, not –"
    assert f"{new[:8]} → {old[:8]}" in lines[4] and f"{old[:8]} → {old[:8]}" in lines[6]
    assert old_until[:10] in lines[6] and "–" not in lines[6]
    assert cli.main(["evidence", "show", str(a)]) == 0
    assert f"old cert  {old}  expires {old_until}" in capsys.readouterr().out
    assert cli.main(["evidence", "show", str(d)]) == 0
    out = capsys.readouterr().out
    assert f"mode      rollback    rolls back run {c.name}" in out
    assert f"taken off {old}  expires {old_until}" in out
    assert f"put back  {old}  expires {old_until}" in out
    # The review notebook's expiry view after the rollback: the certificate put back, 10 days left.
    now_utc = dt.datetime.fromisoformat(_manifest(d)["finished_utc"])
    (expiry,) = evidence.expiry_table(evidence.load_runs(root), now_utc=now_utc).itertuples()
    assert (expiry.thumbprint, expiry.source_run, expiry.state) == (old, d.name, "renew now")
    assert expiry.not_after_utc == pd.Timestamp(old_until) and 8 <= expiry.days_left <= 10
    assert re.search(
        r"commands  \d+ remote commands, \d+ non-zero exits, .*; \d+ more non-zero exits were capability probes",
        out,
    )
    for run_dir in _runs(root):
        assert_no_secrets(run_dir, secrets_)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("how", ["printed run", "resume with the corrected key"])
def test_failure_before_any_change_prints_a_command_that_works(
    how: str, tmp_path: Path, secrets_: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A precondition refused before any change: the console says to correct the file and run again (not
    resume); the printed command, run after the correction, succeeds; so does a resume of such a run
    with a corrected key resume otherwise refuses."""
    reh = rehearsal.start(scenario="iis6-ja", password=secrets_[0], workdir=tmp_path / "host")
    root = tmp_path / "evidence"
    try:
        good = reh.params(
            password_env=WINRM_ENV, pfx_password_env=PFX_ENV, backup_dir=str(tmp_path / "backups")
        )
        params_file = tmp_path / "params" / "web01.yaml"
        params_file.parent.mkdir()
        bad = {**good, "production_site": "no-such-site.example.jp"}
        params_file.write_text(yaml.safe_dump(bad, sort_keys=False), encoding="utf-8")
        assert cli.main(["run", str(params_file), "--evidence-root", str(root), "--yes"]) == 1
        err = capsys.readouterr().err
        (a,) = _runs(root)
        assert "opslib resume" not in err, err[-3000:]
        line = next(x for x in err.splitlines() if "correct the file and run again: " in x)
        command = line.split("correct the file and run again: ", 1)[1].split()
        assert command[:3] == ["opslib", "run", str(params_file)]
        assert _manifest(a)["changed_nothing"] is True
        # A typed field the failed step recorded (its error's class), which the advice reads.
        assert _manifest(a)["steps"][-1]["server_changed"] is False

        if how == "printed run":  # the printed command, after correcting the file, succeeds
            params_file.write_text(yaml.safe_dump(good, sort_keys=False), encoding="utf-8")
            code = cli.main([*command[1:], "--evidence-root", str(root)])
            assert code == 0, capsys.readouterr().err[-3000:]
            assert _manifest(_runs(root)[-1])["status"] == "succeeded"
            return
        # The resume of a run that changed nothing accepts the corrected key (production_site: not correctable otherwise).
        fixed = tmp_path / "params" / "fixed.yaml"
        fixed.write_text(yaml.safe_dump(good, sort_keys=False), encoding="utf-8")
        assert cli.main(["resume", str(a), "--params", str(fixed), "--yes"]) == 0, capsys.readouterr().err[
            -3000:
        ]
        m = _manifest(_runs(root)[-1])
        assert (m["mode"], m["status"]) == ("resume", "succeeded")
        assert m["parameter_changes"][0]["key"] == "production_site"
        # the steps done used the old value: they ran again, with the corrected one
        assert [s["name"] for s in m["steps"]][0] == "00_precheck_root_store"
        assert reh.host.sites[1].ssl_cert_hash == reh.host.extra["new_thumbprint"]
    finally:
        reh.stop()


@pytest.mark.timeout(900)
def test_a_failed_dry_run_advises_only_commands_that_work(
    tmp_path: Path, secrets_: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A dry run that fails: never `rollback` (it would refuse: a dry run changed nothing); the printed
    command — the dry run again, after correcting the file — works; a resume of it accepts the corrected
    key (a refused key's advice after a real change: test_fail_new_run_resume_rollback_keeps_the_evidence_valid)."""
    reh = rehearsal.start(scenario="iis6-ja", password=secrets_[0], workdir=tmp_path / "host")
    root = tmp_path / "evidence"
    try:
        current = reh.host.sites[1].ssl_cert_hash
        good = reh.params(
            password_env=WINRM_ENV, pfx_password_env=PFX_ENV, backup_dir=str(tmp_path / "backups")
        )
        params_file = tmp_path / "params" / "web01.yaml"
        params_file.parent.mkdir()
        params_file.write_text(
            yaml.safe_dump({**good, "production_site": "no-such-site.example.jp"}, sort_keys=False),
            encoding="utf-8",
        )
        assert cli.main(["run", str(params_file), "--evidence-root", str(root), "--dry-run"]) == 1
        err = capsys.readouterr().err
        (a,) = _runs(root)
        tail = err[err.index(f"opslib: run {a.name} failed") :]
        assert "opslib rollback" not in tail and "opslib resume" not in tail, tail
        line = next(x for x in tail.splitlines() if "correct the file and run again: " in x)
        command = line.split("correct the file and run again: ", 1)[1].split()
        assert command == ["opslib", "run", str(params_file), "--dry-run"]
        assert _manifest(a)["changed_nothing"] is True

        # A resume of the failed dry run with the corrected key is accepted (nothing was changed).
        fixed = tmp_path / "params" / "fixed.yaml"
        fixed.write_text(yaml.safe_dump(good, sort_keys=False), encoding="utf-8")
        assert cli.main(["resume", str(a), "--params", str(fixed)]) == 0, capsys.readouterr().err[-3000:]
        m = _manifest(_runs(root)[-1])
        assert (m["mode"], m["status"], m["dry_run"]) == ("resume", "succeeded", True)
        # The printed command, run after correcting the file, succeeds.
        params_file.write_text(yaml.safe_dump(good, sort_keys=False), encoding="utf-8")
        assert cli.main([*command[1:], "--evidence-root", str(root)]) == 0, capsys.readouterr().err[-3000:]
        assert _manifest(_runs(root)[-1])["status"] == "succeeded"
        assert reh.host.sites[1].ssl_cert_hash == current, "dry runs change nothing"
        capsys.readouterr()

    finally:
        reh.stop()


@pytest.mark.timeout(900)
def test_failure_after_step_0_the_printed_resume_succeeds(
    tmp_path: Path, secrets_: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A failure after step 0 changed the roots: the printed "continue" command, typed as printed once the
    cause is gone, succeeds; nothing printed suggests a fresh run."""
    reh = rehearsal.start(scenario="iis6-ja", password=secrets_[0], workdir=tmp_path / "host")
    root = tmp_path / "evidence"
    try:
        data = reh.params(
            password_env=WINRM_ENV, pfx_password_env=PFX_ENV, backup_dir=str(tmp_path / "backups")
        )
        params_file = tmp_path / "params" / "web01.yaml"
        params_file.parent.mkdir()
        params_file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        reh.set_faults(["before:swap:fail"])
        assert cli.main(["run", str(params_file), "--evidence-root", str(root), "--yes"]) == 1
        err = capsys.readouterr().err
        (a,) = _runs(root)
        assert "correct the file and run again" not in err
        assert "changed_nothing" not in _manifest(a)
        line = next(x for x in err.splitlines() if "fix the cause, then continue: " in x)
        command = line.split("fix the cause, then continue: ", 1)[1].split()
        assert command == ["opslib", "resume", str(a), "--yes"]
        reh.set_faults([])  # the cause gone
        assert cli.main(command[1:]) == 0, capsys.readouterr().err[-3000:]
        m = _manifest(_runs(root)[-1])
        assert (m["mode"], m["status"]) == ("resume", "succeeded")
        assert reh.host.sites[1].ssl_cert_hash == reh.host.extra["new_thumbprint"]
    finally:
        reh.stop()


@pytest.mark.timeout(900)
def test_failure_at_step_1_the_printed_roots_rollback_checks_the_endpoint_after(
    tmp_path: Path, secrets_: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Step 1 fails after step 0 disabled the roots (no swap, no rollback.yaml): the printed undo,
    ``opslib rollback RUN --roots``, re-enables them and then checks the endpoint (06 → 04), the lost
    cross certificate a warning, exit 0."""
    reh = rehearsal.start(scenario="iis6-ja", password=secrets_[0], workdir=tmp_path / "host")
    root = tmp_path / "evidence"
    try:
        data = reh.params(
            password_env=WINRM_ENV, pfx_password_env=PFX_ENV, backup_dir=str(tmp_path / "backups")
        )
        params_file = tmp_path / "params" / "web01.yaml"
        params_file.parent.mkdir()
        params_file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        reh.set_faults(["before:install:fail"])
        assert cli.main(["run", str(params_file), "--evidence-root", str(root), "--yes"]) == 1
        err = capsys.readouterr().err
        (a,) = _runs(root)
        assert not (a / "rollback.yaml").exists()
        reh.set_faults([])
        line = next(x for x in err.splitlines() if "or undo what changed: " in x)
        command = line.split("or undo what changed: ", 1)[1].split()
        assert command == ["opslib", "rollback", str(a), "--roots", "--yes"]
        assert cli.main(command[1:]) == 0, capsys.readouterr().err[-3000:]
        err = capsys.readouterr().err
        assert re.search(
            r"\[1/2\] 06 ルート証明書の復元 / Re-enable the roots step 0 disabled +succeeded", err
        )
        assert re.search(r"\[2/2\] 04 公開状態の確認 / Verify what the site serves +succeeded", err)
        assert "IIS no longer sends the cross certificate" in err
        m = _manifest(_runs(root)[-1])
        assert (m["mode"], m["status"]) == ("rollback", "succeeded")
        assert m["facts"]["verify_expected_warnings"]
    finally:
        reh.stop()
