"""``opslib fleet run`` and the fleet record (issue 27 items 3, 4, 7) over one rehearsal fleet per module.

Seven emulated servers (IIS 6 English and Japanese, IIS 7.5 Japanese, IIS 8.5, IIS 10, IIS 10 with SNI,
and a "bad" IIS 6 host whose swap command fails: the named fault point ``before:swap:fail``), each with
its own WinRM password that reaches only its own ``opslib run`` subprocess (the host's environment).
Each host's steps run in-process in its child (``OPSLIB_STEP_ENGINE=inprocess`` is inherited).

The tests build on each other, in order, as an operator's week would: a canary that fails stops the
rollout with every other host untouched; a rollout interrupted with Ctrl-C lets its running hosts
finish and starts no other; a later batch over ``--max-fail-percentage`` stops; the same fleet run
again skips the hosts already serving their new certificate (read from each server), renews the rest
and links the attempt it continues. What a user sees is asserted: exit codes, console lines, what each
emulated server serves over TLS afterwards, ``fleet.json``, ``opslib evidence verify/list``, and a
secret scan of everything the fleet wrote.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import conftest
import pytest
from secretscan import assert_no_secrets

from opslib import cli, rehearsal, tls
from opslib.certs import load_certificates, normalize_thumbprint, thumbprint
from opslib.evidence import read_heads
from opslib.fleet import record, rollout
from opslib.fleet.inventory import FleetHost, write_host_params

SCENARIOS = {
    "web01": "default",
    "web02": "iis6-ja",
    "web03": "iis75-ja",
    "web04": "iis85",
    "web05": "iis10",
    "web06": "iis10-sni",
}
BAD = "bad01"
PFX_ENV = "OPSLIB_FLEET_TEST_PFX"
PASSWORD_ENV = "OPSLIB_FLEET_WINRM_PASSWORD"


def make_host(name: str, params: dict[str, Any], env: dict[str, str]) -> FleetHost:
    return FleetHost(name, params, env, ("web",), None)


@dataclass
class Fleet:
    base: Path
    root: Path
    rehearsals: dict[str, rehearsal.Rehearsal]
    hosts: dict[str, FleetHost]
    secrets: list[str]

    def select(self, *names: str) -> list[FleetHost]:
        return [self.hosts[n] for n in names]

    def run(self, *names: str, name: str, **settings: Any) -> tuple[rollout.FleetResult, str]:
        out = io.StringIO()
        result = rollout.run_fleet(
            self.select(*names),
            evidence_root=self.root,
            name=name,
            settings=rollout.Settings(**settings),
            write_params=write_host_params,
            out=out,
        )
        return result, out.getvalue()

    def served(self, name: str) -> str:
        """What the production site serves over TLS now (the emulated server's own endpoint)."""
        verify = self.hosts[name].params["verify"]
        address, port = str(verify["endpoint"]).rsplit(":", 1)
        chain = tls.fetch_chain(address, int(port), servername=verify["servername"] or None, timeout_s=5)
        return normalize_thumbprint(chain.thumbprints[0])

    def new_certificate(self, name: str) -> str:
        data = Path(self.hosts[name].params["certificate_file"]).read_bytes()
        return normalize_thumbprint(thumbprint(load_certificates(data, source=name).require_leaf()))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    base = tmp_path_factory.mktemp("fleet")
    passwords = {n: f"W{conftest.random_token(15)}" for n in [*SCENARIOS, BAD]}
    with conftest.random_secrets(PFX_ENV) as pfx:
        rehearsals: dict[str, rehearsal.Rehearsal] = {}
        hosts: dict[str, FleetHost] = {}
        try:
            for name, scenario in [*SCENARIOS.items(), (BAD, "default")]:
                reh = rehearsal.start(
                    scenario=scenario,
                    password=passwords[name],
                    workdir=base / "hosts" / name,
                    faults=["before:swap:fail"] if name == BAD else [],
                )
                rehearsals[name] = reh
                params = reh.params(
                    password_env=PASSWORD_ENV,
                    pfx_password_env=PFX_ENV,
                    backup_dir=str(base / "backups" / name),
                )
                params["host"] = name
                if scenario == "iis75-ja":
                    params["ssl_port"] = 8443  # IIS 7.5: one certificate per IP:port (tests/test_iis7_e2e.py)
                hosts[name] = make_host(name, params, {PASSWORD_ENV: passwords[name]})
            yield Fleet(base, base / "evidence", rehearsals, hosts, [*passwords.values(), *pfx])
        finally:
            for reh in rehearsals.values():
                reh.stop()


def fleet_doc(result: rollout.FleetResult) -> dict[str, Any]:
    return json.loads((result.fleet_dir / "fleet.json").read_text(encoding="utf-8"))


def statuses(doc: dict[str, Any]) -> dict[str, str]:
    return {h["name"]: h["status"] for h in doc["hosts"]}


# --- batches: Ansible's serial and max_fail_percentage (no server) ---------------------------------------


def test_serial_batches_follow_ansible() -> None:
    names = [f"h{i}" for i in range(25)]
    sizes = [len(b) for b in rollout.plan_batches(names, rollout.parse_serial("1,10%,100%"))]
    assert sizes == [1, 2, 22]
    assert [len(b) for b in rollout.plan_batches(names, rollout.parse_serial("2,5"))] == [2, 5, 5, 5, 5, 3]
    assert [len(b) for b in rollout.plan_batches(names[:3], rollout.parse_serial("1%"))] == [1, 1, 1]
    assert rollout.exceeds(1, 3, 30) and not rollout.exceeds(1, 4, 25) and not rollout.exceeds(0, 4, 0)
    with pytest.raises(Exception, match=r"--serial '1,0%,x': '0%' is not a host count"):
        rollout.parse_serial("1,0%,x")


def test_runs_finalizing_at_the_same_time_keep_one_verifiable_chain(tmp_path: Path) -> None:
    """Two hosts of a fleet: the first to start says succeeded (status, finish time) and writes its report
    while the second finalizes; the second must not link the first's run.json as it is at that moment."""
    from opslib import evidence

    t0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
    root = tmp_path / "evidence"
    first = evidence.new_run(
        root, host="web01", site="s", parameters={}, operator="o", dry_run=False, now_utc=t0
    )
    second = evidence.new_run(
        root,
        host="web02",
        site="s",
        parameters={},
        operator="o",
        dry_run=False,
        now_utc=t0 + dt.timedelta(seconds=1),
    )
    evidence.update_run(
        first, status="succeeded", finished_utc="2026-12-01T09:05:00Z"
    )  # its report comes next
    evidence.update_run(second, status="succeeded")
    assert evidence.finalize_run(second, now_utc=t0 + dt.timedelta(minutes=5))["previous_run"] is None
    assert evidence.finalize_run(first, now_utc=t0 + dt.timedelta(minutes=6))["previous_run"] is None
    assert [r.problems for r in evidence.verify_root(root)] == [(), ()]
    third = evidence.new_run(
        root,
        host="web03",
        site="s",
        parameters={},
        operator="o",
        dry_run=False,
        now_utc=t0 + dt.timedelta(minutes=7),
    )
    evidence.update_run(third, status="succeeded")
    assert (
        evidence.finalize_run(third, now_utc=t0 + dt.timedelta(minutes=8))["previous_run"]["run_id"]
        == second.name
    )
    assert [r.problems for r in evidence.verify_root(root)] == [(), (), ()]


# --- the rollout over the rehearsal fleet (in order) -----------------------------------------------------


def test_a_failing_canary_stops_the_rollout_with_the_others_untouched(fleet: Fleet) -> None:
    before = {n: fleet.served(n) for n in SCENARIOS}
    states = {n: fleet.rehearsals[n].host.state() for n in SCENARIOS}
    result, console = fleet.run(BAD, *SCENARIOS, name="canary", serial=(1, "100%"), forks=3)
    assert result.exit_code == 1 and result.result == "stopped"
    doc = fleet_doc(result)
    assert statuses(doc) == {BAD: "failed", **dict.fromkeys(SCENARIOS, "not started")}
    assert doc["batches"] == [[BAD], list(SCENARIOS)]
    assert "batch 1: 1 of 1 hosts failed (100% > --max-fail-percentage 0%)" in doc["stop_reason"]
    bad = doc["hosts"][0]
    assert bad["failed_step"] == "02_swap_certificate" and bad["run_id"] and bad["exit_code"] == 1
    assert "opslib: fleet: canary batch 1/2: bad01" in console
    assert "opslib: fleet: bad01: FAILED (exit 1) at 02_swap_certificate" in console
    assert not [n for n in SCENARIOS if f"opslib: fleet: {n}: started" in console]
    # Nothing was sent to the other servers: their state and what they serve are as before.
    assert {n: fleet.served(n) for n in SCENARIOS} == before
    assert all(fleet.rehearsals[n].host.state() == states[n] for n in SCENARIOS)
    assert fleet.served(BAD) == normalize_thumbprint(bad["old_thumbprint"])  # the failed swap restored itself


def test_ctrl_c_lets_running_hosts_finish_and_starts_no_other(fleet: Fleet) -> None:
    names = list(SCENARIOS)
    started = threading.Event()

    def interrupt_when_started() -> None:
        logs = fleet.root / "fleets"
        end = time.monotonic() + 120
        while time.monotonic() < end:
            if any(p.stat().st_size for p in logs.glob("*_week/logs/*.log")):
                os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C in the terminal sends the fleet process
                started.set()
                return
            time.sleep(0.05)

    threading.Thread(target=interrupt_when_started, daemon=True).start()
    result, console = fleet.run(*names, name="week", serial=(2,), forks=2)
    assert started.is_set()
    assert result.exit_code == 130 and result.result == "interrupted"
    doc = fleet_doc(result)
    assert statuses(doc) == {**dict.fromkeys(names[:2], "renewed"), **dict.fromkeys(names[2:], "not started")}
    assert re.search(
        r"Ctrl-C: starting no further host; waiting for the [12] running to finish their runs", console
    )
    assert not [n for n in names[2:] if f"opslib: fleet: {n}: started" in console]
    for name in names[:2]:  # the running hosts finished their whole run: serving the new certificate
        assert fleet.served(name) == fleet.new_certificate(name)
    for name in names[2:]:
        assert fleet.served(name) != fleet.new_certificate(name)


def test_a_later_batch_over_max_fail_percentage_stops_the_rollout(fleet: Fleet) -> None:
    result, console = fleet.run(
        "web03", BAD, "web04", "web05", name="mixed", serial=(1, 2), max_fail_percentage=40
    )
    assert result.exit_code == 1 and result.result == "stopped"
    doc = fleet_doc(result)
    assert doc["batches"] == [["web03"], [BAD, "web04"], ["web05"]]
    assert statuses(doc) == {"web03": "renewed", BAD: "failed", "web04": "renewed", "web05": "not started"}
    assert doc["stop_reason"].startswith("batch 2: 1 of 2 hosts failed (50% > --max-fail-percentage 40%)")
    assert "opslib: fleet: canary batch 1/3: web03" in console
    assert fleet.served("web05") != fleet.new_certificate("web05")


def test_running_the_fleet_again_skips_renewed_hosts_and_renews_the_rest(fleet: Fleet) -> None:
    names = list(SCENARIOS)
    earlier = sorted((fleet.root / "fleets").glob("*_week"))[-1]
    result, console = fleet.run(*names, name="week", serial=(1, "100%"), forks=3)
    assert result.exit_code == 0 and result.result == "completed", console
    doc = fleet_doc(result)
    assert statuses(doc) == {
        **dict.fromkeys(names[:4], "already renewed"),
        **dict.fromkeys(names[4:], "renewed"),
    }
    assert doc["continues"]["fleet_id"] == earlier.name
    assert doc["batches"] == [["web05"], ["web06"]]  # the canary is the first host still to renew
    runs_before = {h["name"]: h["run_id"] for h in fleet_doc_of(earlier)["hosts"] if h["run_id"]}
    by_name = {h["name"]: h for h in doc["hosts"]}
    assert by_name["web01"]["renewed_by"] == runs_before["web01"]
    assert "opslib: fleet: web01: already renewed by run" in console
    # Every host of the fleet serves the certificate its parameters name, and the record says so.
    for name in names:
        assert (
            fleet.served(name)
            == fleet.new_certificate(name)
            == normalize_thumbprint(by_name[name]["new_thumbprint"])
        )
        assert (
            by_name[name]["old_thumbprint"]
            and by_name[name]["old_thumbprint"] != by_name[name]["new_thumbprint"]
        )
    assert (result.fleet_dir / "fleet_report.html").is_file()
    report = (result.fleet_dir / "fleet_report.html").read_text(encoding="utf-8")
    for name in names[4:]:  # each renewed host's row links its run's own report
        assert f'href="../../{by_name[name]["run_id"]}/report.html"' in report
    assert (
        "フリート更新の記録 / Fleet renewal record" in report
        and "更新済み（以前の実行） / already renewed" in report
    )


def fleet_doc_of(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "fleet.json").read_text(encoding="utf-8"))


def test_the_fleet_records_verify_and_name_a_host_whose_run_changed(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    newest = record.fleet_dirs(fleet.root)[-1]
    assert cli.main(["evidence", "verify", str(newest)]) == 0
    assert cli.main(["evidence", "verify", "--root", str(fleet.root)]) == 0
    out = capsys.readouterr().out
    assert "fleet records in" in out
    assert cli.main(["evidence", "list", "--root", str(fleet.root)]) == 0
    listing = capsys.readouterr().out
    assert "fleets" in listing and "_week" in listing and "completed" in listing and "interrupted" in listing
    host = next(h for h in fleet_doc_of(newest)["hosts"] if h["name"] == "web05")
    run_json = fleet.root / host["run_dir"] / "run.json"
    original = run_json.read_bytes()
    run_json.write_bytes(original.replace(b'"succeeded"', b'"succeeded" ', 1))
    try:
        assert cli.main(["evidence", "verify", str(newest)]) == 1
        out = capsys.readouterr().out
        assert (
            f"host web05: run {host['run_id']}'s run.json changed after the fleet record was written" in out
        )
    finally:
        run_json.write_bytes(original)
    fleet_json = newest / "fleet.json"
    original = fleet_json.read_bytes()
    fleet_json.write_bytes(original.replace(b'"status": "renewed"', b'"status": "failed"', 1))
    try:
        assert cli.main(["evidence", "verify", "--root", str(fleet.root)]) == 1
        out = capsys.readouterr().out
        assert "the host list no longer matches hosts_sha256" in out
    finally:
        fleet_json.write_bytes(original)


def test_fleet_record_from_run_folders_matches_the_rollout(
    fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    newest = fleet_doc_of(record.fleet_dirs(fleet.root)[-1])
    run_dirs = [str(fleet.root / h["run_dir"]) for h in newest["hosts"]]
    assert (
        cli.main(["fleet", "record", "--evidence-root", str(fleet.root), "--name", "ansible", *run_dirs]) == 0
    )
    made = fleet_doc_of(record.fleet_dirs(fleet.root)[-1])
    assert made["name"] == "ansible" and made["result"] == "recorded"
    mine = {h["name"]: (h["run_id"], h["run_json_sha256"], h["new_thumbprint"]) for h in made["hosts"]}
    theirs = {h["name"]: (h["run_id"], h["run_json_sha256"], h["new_thumbprint"]) for h in newest["hosts"]}
    assert mine == theirs
    assert cli.main(["evidence", "verify", "--root", str(fleet.root)]) == 0
    # The kit does not seal what it did not write: an edited run.json, or a folder from elsewhere, is refused.
    run_json = Path(run_dirs[0]) / "run.json"
    original = run_json.read_bytes()
    run_json.write_bytes(original + b" ")  # one byte more: its hash no longer matches
    count = len(record.fleet_dirs(fleet.root))
    try:
        args = ["fleet", "record", "--evidence-root", str(fleet.root), "--name", "laundered", *run_dirs]
        assert cli.main(args) == 2
        assert "the run's evidence does not verify" in capsys.readouterr().err
    finally:
        run_json.write_bytes(original)
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(run_dirs[0], elsewhere / Path(run_dirs[0]).name)
    args = ["fleet", "record", "--evidence-root", str(fleet.root), "--name", "laundered"]
    assert cli.main([*args, str(elsewhere / Path(run_dirs[0]).name)]) == 2
    assert "not a run folder of the evidence root" in capsys.readouterr().err
    assert len(record.fleet_dirs(fleet.root)) == count, "nothing was recorded"


def test_nothing_the_fleet_wrote_holds_a_secret(fleet: Fleet) -> None:
    assert record.fleet_dirs(fleet.root)
    assert_no_secrets(fleet.root, fleet.secrets)
    params = next((record.fleet_dirs(fleet.root)[0] / "params").glob("*.yaml")).read_text(encoding="utf-8")
    assert f"env:{PASSWORD_ENV}" in params


def test_the_fleet_record_signed_with_a_key_verifies_only_with_it(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    newest = fleet_doc_of(record.fleet_dirs(fleet.root)[-1])
    run_dirs = [str(fleet.root / h["run_dir"]) for h in newest["hosts"]]
    with conftest.random_secrets("OPSLIB_FLEET_TEST_HMAC", "OPSLIB_FLEET_TEST_OTHER"):
        args = ["fleet", "record", "--evidence-root", str(fleet.root), "--name", "signed"]
        assert cli.main([*args, "--hmac-key", "env:OPSLIB_FLEET_TEST_HMAC", *run_dirs]) == 0
        signed = record.fleet_dirs(fleet.root)[-1]
        assert "hmac" in fleet_doc_of(signed)
        assert cli.main(["evidence", "verify", str(signed), "--hmac-key", "env:OPSLIB_FLEET_TEST_HMAC"]) == 0
        assert cli.main(["evidence", "verify", str(signed), "--hmac-key", "env:OPSLIB_FLEET_TEST_OTHER"]) == 1
        assert "HMAC mismatch: fleet.json changed, or the key is wrong" in capsys.readouterr().out


def test_the_fleet_review_notebook_reads_the_record(fleet: Fleet, tmp_path: Path) -> None:
    import nbformat
    import papermill

    folder = record.fleet_dirs(fleet.root)[-1]
    out = tmp_path / "fleet_review.ipynb"
    papermill.execute_notebook(
        str(Path(__file__).resolve().parents[1] / "notebooks" / "fleet_review.ipynb"),
        str(out),
        parameters={"evidence_root": str(fleet.root), "fleet_id": folder.name},
        kernel_name="python3",
        cwd=str(tmp_path),
        progress_bar=False,
    )
    nb = nbformat.read(out, as_version=4)
    text = "\n".join(
        str(o.get("text", "")) + "".join(str(v) for v in o.get("data", {}).values())
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )
    doc = fleet_doc_of(folder)
    plain = "\n".join(
        str(o.get("data", {}).get("text/plain", ""))
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )
    assert folder.name in text, plain
    assert "integrity not provable without the HMAC key" in text, plain
    assert all(h["new_thumbprint"] in text for h in doc["hosts"])
    assert any("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    assert_no_secrets(tmp_path, fleet.secrets)


# --- the command line over an inventory (opslib rehearse fleet's) ------------------------------------------


@pytest.fixture(scope="module")
def inventory_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from opslib.rehearsal.fleet import start_fleet

    with start_fleet(2, ("default", "iis10"), workdir=tmp_path_factory.mktemp("inventory-fleet")) as running:
        saved = {k: os.environ.get(k) for k in running.env}
        os.environ.update(running.env)  # as the operator exports them before a run
        try:
            yield running
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def test_fleet_run_over_an_inventory_from_the_command_line(
    inventory_fleet: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory, root = str(inventory_fleet.inventory_path), tmp_path / "evidence"
    assert cli.main(["fleet", "run", inventory, "--evidence-root", str(root)]) == 2
    assert "give --yes (or --dry-run" in capsys.readouterr().err and not root.exists()
    assert (
        cli.main(["fleet", "run", inventory, "--yes", "--serial", "1,0", "--evidence-root", str(root)]) == 2
    )
    assert "--serial '1,0': '0' is not a host count" in capsys.readouterr().err and not root.exists()
    config = ("registry", "sites", "web_sites", "app_pools", "keys")  # stores, bindings, metabase, keys
    states = {m.name: {k: inventory_fleet.state(m.name)[k] for k in config} for m in inventory_fleet.hosts}
    code = cli.main(
        ["fleet", "run", inventory, "--dry-run", "--forks", "2", "--evidence-root", str(root), "--verbose"]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    folder = record.fleet_dirs(root)[-1]
    doc = fleet_doc_of(folder)
    assert doc["name"] == Path(inventory).stem and doc["settings"]["dry_run"] is True
    assert {h["status"] for h in doc["hosts"]} == {"dry run"} and len(doc["hosts"]) == 2
    assert all(h["new_thumbprint"] and h["old_thumbprint"] for h in doc["hosts"])
    assert re.search(r"opslib: fleet: \S+: \[\d+/\d+\] 00 ", err)  # --verbose: each host's step lines
    # A dry run changes nothing on the servers.
    assert {
        m.name: {k: inventory_fleet.state(m.name)[k] for k in config} for m in inventory_fleet.hosts
    } == states
    assert cli.main(["evidence", "verify", str(folder)]) == 0
    assert_no_secrets(root, [v for v in inventory_fleet.env.values() if len(v) >= 4])
    # The same record from run folders, with the inventory: its host without a run is "not started".
    first = doc["hosts"][0]
    argv = ["fleet", "record", "--evidence-root", str(root), "--name", "ansible", "--inventory", inventory]
    assert cli.main([*argv, str(root / first["run_dir"])]) == 0
    made = fleet_doc_of(record.fleet_dirs(root)[-1])
    assert {h["name"]: h["status"] for h in made["hosts"]} == {
        first["name"]: "dry run",
        doc["hosts"][1]["name"]: "not started",
    }
    assert cli.main(["evidence", "verify", "--root", str(root)]) == 0


def test_a_killed_fleet_process_leaves_its_running_host_to_finish(
    inventory_fleet: Any, tmp_path: Path
) -> None:
    """SIGKILL of `opslib fleet run` (no Ctrl-C, no record): the host's own `opslib run` goes on to its end,
    its run folder complete; `opslib fleet record` writes the record from it afterwards."""
    import subprocess
    import sys

    host, root = inventory_fleet.hosts[0].name, tmp_path / "evidence"
    argv = [sys.executable, "-m", "opslib", "fleet", "run", str(inventory_fleet.inventory_path), "--yes"]
    argv += ["--limit", host, "--evidence-root", str(root)]
    with (tmp_path / "fleet.log").open("wb") as out:
        fleet_proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    try:
        end = time.monotonic() + 180
        while not list(root.glob(f"*_{host}_*/run.json")) and time.monotonic() < end:
            time.sleep(0.05)  # the host's run folder exists: its renewal is under way
        fleet_proc.kill()
        assert fleet_proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        fleet_proc.kill()
    run_json = next(root.glob(f"*_{host}_*/run.json"))
    end = time.monotonic() + 240
    while json.loads(run_json.read_bytes()).get("status") == "running" and time.monotonic() < end:
        time.sleep(0.2)
    while run_json.parent.name not in {e.run_id for e in read_heads(root)} and time.monotonic() < end:
        time.sleep(0.2)  # finalized: its head entry is the last thing it writes
    doc = json.loads(run_json.read_bytes())
    assert doc["status"] == "succeeded" and doc["finished_utc"] and not doc["dry_run"]
    assert not list((root / "fleets").glob("*/fleet.json"))  # killed: no record
    assert (
        cli.main(["fleet", "record", "--evidence-root", str(root), "--name", "killed", str(run_json.parent)])
        == 0
    )
    made = fleet_doc_of(record.fleet_dirs(root)[-1])
    assert [(h["name"], h["status"]) for h in made["hosts"]] == [(doc["host"], "renewed")]
    assert cli.main(["evidence", "verify", "--root", str(root)]) == 0
