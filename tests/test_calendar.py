"""``opslib calendar`` (issue 28 item 3): when every certificate must be renewed, read-only.

One module-scoped fleet of rehearsal hosts whose current certificates expire on different days (each
host built with its own clock: the scenario's certificate expires 10 days after it), looked at through
the command line with a fixed ``--now``: the order by renew-by date, the renew-by dates and days left
(expected from the rehearsal PKI's own certificates), the pending request read from each server, the
SC-081 lifetime of the next certificate, public vs private. The servers' state is compared before and
after: the calendar changes nothing. An iCalendar file is parsed back with ``icalendar`` (two runs, the
same UIDs); an unreachable host is stated, not fatal; after a renewal the evidence root alone says what
is served, naming the run; the notebook runs under papermill.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import icalendar
import papermill
import pytest
import yaml
from conftest import random_secrets
from secretscan import assert_no_secrets

from opslib import certs, cli, rehearsal
from opslib.certs.trust import Trust, chain_trust, public_roots
from opslib.fleet.calendar import Entry, RequestState, Served, Target
from opslib.fleet.lifetimes import BALLOT_URL, max_lifetime
from opslib.rehearsal import scenarios
from opslib.rehearsal.fleet import RehearsalFleet, start_fleet
from opslib.rehearsal.pki import make_pki

ROOT = Path(__file__).resolve().parents[1]
WINRM_ENV, PFX_ENV = "OPSLIB_CALENDAR_WINRM", "OPSLIB_CALENDAR_PFX"
# (host, scenario, days its clock is shifted): the certificates expire 10 days after each clock.
FLEET = (("web-a", "default", 0), ("web-b", "iis10", -40), ("web-c", "iis75-ja", -100))
LEAD = 30


@dataclass
class Fleet:
    now_utc: datetime  # the --now every test passes
    params: dict[str, Path]  # host → parameters file
    hosts: dict[str, rehearsal.Rehearsal]
    clocks: dict[str, datetime]
    secrets: list[str]
    folder: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_params(folder: Path, name: str, data: dict[str, Any]) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    folder = tmp_path_factory.mktemp("calendar")
    # The emulated servers' own files (the rehearsal CA's key among them) live apart: the secret scans
    # cover what the calendar and the kit write, not the servers' state.
    servers = tmp_path_factory.mktemp("calendar-servers")
    now = datetime.now(UTC).replace(microsecond=0)
    with random_secrets(WINRM_ENV, PFX_ENV) as secrets:
        started: dict[str, rehearsal.Rehearsal] = {}
        params: dict[str, Path] = {}
        clocks: dict[str, datetime] = {}
        try:
            for name, scenario, shift in FLEET:
                clocks[name] = now + timedelta(days=shift)
                work = servers / name
                host = scenarios.build_host(scenario, workdir=work, now_utc=clocks[name])
                r = rehearsal.start(host, password=secrets[0], workdir=work, auth="negotiate")
                started[name] = r
                data = r.params(
                    password_env=WINRM_ENV, pfx_password_env=PFX_ENV, backup_dir=str(folder / "bk")
                )
                data["host"] = name
                params[name] = _write_params(folder, name, data)
            yield Fleet(now, params, started, clocks, secrets, folder)
        finally:
            for r in started.values():
                r.stop()


def _calendar(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = cli.main(["calendar", *args, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if code == 0 else {}


def _expiry(fleet: Fleet, name: str) -> datetime:
    """What the rehearsal PKI made the host's current certificate expire (not read through the kit)."""
    return make_pki(
        now_utc=fleet.clocks[name], hostnames=scenarios.HOSTNAMES
    ).current_leaf.not_valid_after_utc


def _iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the rules --------------------------------------------------------------------------------------------


def test_sc081_limits_the_next_certificate_by_its_issuance_date() -> None:
    day = timedelta(days=1)
    for start, before, after in [
        (datetime(2026, 3, 15, tzinfo=UTC), 398, 200),
        (datetime(2027, 3, 15, tzinfo=UTC), 200, 100),
        (datetime(2029, 3, 15, tzinfo=UTC), 100, 47),
    ]:
        assert max_lifetime(start - day).max_days == before
        assert max_lifetime(start).max_days == after
    assert "cabforum.org" in BALLOT_URL and "sc081" in BALLOT_URL
    with pytest.raises(ValueError, match="timezone"):
        max_lifetime(datetime(2027, 1, 1))


def test_a_chain_at_a_certifi_root_is_public_and_the_rehearsal_pki_is_private() -> None:
    public = next(iter(public_roots().by_thumbprint.values()))  # a root of certifi's bundle
    assert chain_trust([public]).public
    pki = make_pki(now_utc=datetime(2026, 12, 1, tzinfo=UTC), hostnames=scenarios.HOSTNAMES)
    verdict = chain_trust([pki.current_leaf, pki.intermediate])
    assert not verdict.public and "certifi" in verdict.reason


# --- the fleet ---------------------------------------------------------------------------------------------


def test_the_calendar_orders_the_fleet_by_renew_by_date_and_changes_nothing(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {name: r.host.state() for name, r in fleet.hosts.items()}
    files = [str(p) for p in fleet.params.values()]
    code, doc = _calendar(capsys, *files, "--now", _iso(fleet.now_utc), "--lead-days", str(LEAD))
    assert code == 0
    after = {name: r.host.state() for name, r in fleet.hosts.items()}
    assert after == before  # read-only: registry, files, folders, sites, keys as they were

    entries = doc["entries"]
    expected_order = sorted(fleet.hosts, key=lambda n: _expiry(fleet, n))
    assert [e["host"] for e in entries] == expected_order == ["web-c", "web-b", "web-a"]
    for e in entries:
        expiry = _expiry(fleet, e["host"])
        assert e["served"]["how"] == "handshake" and "read-only TLS handshake" in e["served"]["detail"]
        assert e["served"]["not_after_utc"] == _iso(expiry)
        assert e["renew_by_utc"] == _iso(expiry - timedelta(days=LEAD))
        assert e["days_left"] == (expiry - fleet.now_utc) // timedelta(days=1)
        assert e["renew_now"] == (expiry - timedelta(days=LEAD) <= fleet.now_utc)
        assert e["request"]["state"] == "pending", e["request"]
        assert e["request"]["pending"][0]["names"] == ["www1.example.jp"]
        assert e["pki"] == "private" and e["next_certificate"]["sc081_applies"] is False
    assert [e["days_left"] for e in entries] == [-90, -30, 10]
    assert_no_secrets(fleet.folder, fleet.secrets)


def test_a_public_site_must_renew_more_often_as_the_sc081_schedule_shrinks() -> None:
    public = Trust(True, "Some Public Root", "the chain ends at Some Public Root, a root of certifi")
    target = Target(host="web01", site="www1.example.jp", source="t")
    for expiry, lifetime in [
        (datetime(2026, 6, 1, tzinfo=UTC), 200),
        (datetime(2028, 1, 1, tzinfo=UTC), 100),
        (datetime(2029, 6, 1, tzinfo=UTC), 47),
    ]:
        served = Served("handshake", "", "", thumbprint="AB" * 20, not_after_utc=expiry, trust=public)
        entry = Entry(target, served, RequestState("none", ""), LEAD, datetime(2026, 1, 1, tzinfo=UTC))
        nxt = entry.to_json()["next_certificate"]
        assert entry.pki == "public" and nxt["sc081_applies"] is True
        assert nxt["sc081_max_days"] == lifetime and nxt["renew_every_days"] == lifetime - LEAD
        assert nxt["assumed_issued_utc"] == _iso(expiry - timedelta(days=LEAD))
    unknown = Entry(
        target, Served("evidence", "", "", not_after_utc=expiry), RequestState("none", ""), LEAD, expiry
    )
    assert unknown.pki == "unknown" and unknown.to_json()["next_certificate"]["text"].startswith(
        "if publicly"
    )


def test_a_site_said_private_says_so_and_sc081_does_not_apply(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    data = yaml.safe_load(fleet.params["web-a"].read_text(encoding="utf-8"))
    data["private_pki"] = True
    said = _write_params(fleet.folder, "web-a-private", data)
    now = datetime(2027, 2, 1, tzinfo=UTC)
    code, doc = _calendar(capsys, str(said), "--now", _iso(now), "--no-requests")
    assert code == 0
    (entry,) = doc["entries"]
    assert entry["pki"] == "private" and "private_pki: true" in entry["pki_reason"]
    assert entry["request"]["state"] == "not checked"
    # the lifetime the next certificate would have if it were public: issued now (renew-by passed) → 200
    assert entry["next_certificate"]["sc081_max_days"] == 200
    assert entry["next_certificate"]["renew_every_days"] is None


def test_the_ics_file_parses_back_with_stable_uids(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(p) for p in fleet.params.values()]
    uids = []
    for n in (1, 2):
        ics = fleet.folder / f"calendar{n}.ics"
        assert (
            cli.main(["calendar", *files, "--now", _iso(fleet.now_utc), "--no-requests", "--ics", str(ics)])
            == 0
        )
        out = capsys.readouterr().out
        assert f"iCalendar: {ics} (3 event(s))" in out and "renew by" in out
        parsed = icalendar.Calendar.from_ical(ics.read_bytes())
        events = list(parsed.walk("VEVENT"))
        assert len(events) == 3
        by_uid = {str(ev["UID"]): ev for ev in events}
        for name in fleet.hosts:
            renew_by = (_expiry(fleet, name) - timedelta(days=LEAD)).date()
            (ev,) = [e for e in events if str(e["X-OPSLIB-HOST"]) == name]
            assert ev.decoded("DTSTART") == renew_by
            assert "更新" in str(ev["SUMMARY"]) and "Renew the certificate" in str(ev["SUMMARY"])
        uids.append(sorted(by_uid))
    assert uids[0] == uids[1] and len(set(uids[0])) == 3
    assert_no_secrets(fleet.folder, fleet.secrets)


def test_an_unreachable_host_is_stated_and_the_others_still_listed(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    data = yaml.safe_load(fleet.params["web-a"].read_text(encoding="utf-8"))
    data["host"] = "web-gone"
    data["winrm"]["url"] = f"http://127.0.0.1:{_free_port()}/wsman"
    data["verify"]["endpoint"] = f"127.0.0.1:{_free_port()}"
    gone = _write_params(fleet.folder, "web-gone", data)
    code = cli.main(["calendar", str(gone), str(fleet.params["web-b"]), "--now", _iso(fleet.now_utc)])
    out = capsys.readouterr().out
    assert code == 0
    assert "web-b" in out and "web-gone" in out
    assert "problem : the read-only TLS handshake failed" in out
    assert "the server could not be asked" in out
    code, doc = _calendar(capsys, str(gone), "--now", _iso(fleet.now_utc))
    (entry,) = doc["entries"]
    assert entry["served"]["how"] == "unknown" and entry["renew_by_utc"] == ""
    assert entry["request"]["state"] == "not checked"


def test_bad_input_is_refused_before_any_server_is_contacted(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["calendar", str(fleet.params["web-a"]), "--now", "2026-12-01T00:00:00"]) == 2
    assert "give a time zone" in capsys.readouterr().err
    assert cli.main(["calendar", str(fleet.folder / "missing.yaml")]) == 2
    assert "missing.yaml: no such file" in capsys.readouterr().err
    assert cli.main(["calendar"]) == 2
    assert "--evidence-root" in capsys.readouterr().err
    bad = _write_params(fleet.folder, "bad", {"host": "x", "winrm": {"url": "http://h:5985/wsman"}})
    assert cli.main(["calendar", str(bad)]) == 2
    assert "bad.yaml" in capsys.readouterr().err


@pytest.mark.timeout(600)
def test_after_a_renewal_the_evidence_says_what_is_served(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "evidence"
    with random_secrets(WINRM_ENV, PFX_ENV) as secrets:
        work = tmp_path / "host"
        host = scenarios.build_host("default", workdir=work)
        with rehearsal.start(host, password=secrets[0], workdir=work, auth="negotiate") as r:
            data = r.params(password_env=WINRM_ENV, pfx_password_env=PFX_ENV, backup_dir=str(tmp_path / "bk"))
            data["host"] = "web-renewed"
            params = _write_params(tmp_path, "web-renewed", data)
            assert cli.main(["run", str(params), "--evidence-root", str(root), "--yes"]) == 0
            capsys.readouterr()
            (run_dir,) = [p for p in root.iterdir() if (p / "run.json").is_file()]
            new = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))["facts"]["new_thumbprint"]

            code, doc = _calendar(capsys, "--evidence-root", str(root))
            assert code == 0
            (entry,) = doc["entries"]
            assert entry["served"]["how"] == "evidence"
            assert entry["served"]["thumbprint"] == new
            assert f"the latest evidence: run {run_dir.name}" in entry["served"]["detail"]
            assert entry["request"]["state"] == "not checked"
            leaf = certs.load_certificates((work / "2026cert.txt").read_bytes(), source="mail").leaf
            assert leaf is not None and certs.thumbprint(leaf) == new
            assert entry["served"]["not_after_utc"] == _iso(leaf.not_valid_after_utc)

            # parameters input whose handshake fails: the latest evidence, saying so and why
            data["verify"]["endpoint"] = f"127.0.0.1:{_free_port()}"
            blind = _write_params(tmp_path, "web-blind", data)
            code, doc = _calendar(capsys, str(blind), "--evidence-root", str(root), "--no-requests")
            (entry,) = doc["entries"]
            assert entry["served"]["how"] == "evidence" and entry["served"]["thumbprint"] == new
            assert entry["problems"][0].startswith("the read-only TLS handshake failed")
        assert_no_secrets(root, secrets)
        assert not any(secret in json.dumps(doc) for secret in secrets)


def test_the_renewal_calendar_notebook_runs_under_papermill(fleet: Fleet, tmp_path: Path) -> None:
    out = tmp_path / "renewal_calendar.ipynb"
    papermill.execute_notebook(
        str(ROOT / "notebooks" / "renewal_calendar.ipynb"),
        str(out),
        parameters={
            "inputs": [str(p) for p in fleet.params.values()],
            "evidence_root": "",
            "lead_days": LEAD,
            "now": _iso(fleet.now_utc),
            "check_requests": True,
        },
        cwd=str(ROOT / "notebooks"),
        progress_bar=False,
        kernel_name="python3",
    )
    nb = json.loads(out.read_text(encoding="utf-8"))
    outputs = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs), "the timeline was not drawn"
    html = "".join("".join(o.get("data", {}).get("text/html", "")) for o in outputs)
    assert html.index("web-c") < html.index("web-b") < html.index("web-a")
    assert "3 entries" in "".join("".join(o.get("text", "")) for o in outputs)
    assert_no_secrets(tmp_path, fleet.secrets)


# --- an Ansible inventory: `opslib rehearse fleet` (its own process tree) -------------------------------


@pytest.fixture(scope="module")
def rehearsal_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RehearsalFleet]:
    with start_fleet(3, workdir=tmp_path_factory.mktemp("calendar-fleet")) as running:
        yield running


def test_the_calendar_of_an_inventory_orders_its_hosts_and_changes_nothing(
    rehearsal_fleet: RehearsalFleet, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in rehearsal_fleet.env.items():  # as the operator exports them
        monkeypatch.setenv(name, value)
    members = rehearsal_fleet.hosts
    before = {m.name: rehearsal_fleet.state(m.name) for m in members}
    now = datetime.now(UTC).replace(microsecond=0)
    code, doc = _calendar(
        capsys, str(rehearsal_fleet.inventory_path), "--now", _iso(now), "--lead-days", "20"
    )
    assert code == 0
    assert {m.name: rehearsal_fleet.state(m.name) for m in members} == before  # read-only

    expiry = {m.name: datetime.fromisoformat(m.current_not_after_utc.replace("Z", "+00:00")) for m in members}
    assert len(set(expiry.values())) == len(members)  # different expiries
    entries = doc["entries"]
    assert [e["host"] for e in entries] == sorted(expiry, key=lambda n: expiry[n])
    for e in entries:
        member = rehearsal_fleet.host(e["host"])
        assert e["served"]["how"] == "handshake" and e["served"]["thumbprint"] == member.current_thumbprint
        assert e["renew_by_utc"] == _iso(expiry[e["host"]] - timedelta(days=20))
        assert e["days_left"] == (expiry[e["host"]] - now) // timedelta(days=1)
        assert e["input"].startswith(str(rehearsal_fleet.inventory_path))
        # each scenario's work site holds the pending request for www1.example.jp (the renewal CSR)
        assert e["request"]["state"] == "pending", e["request"]
        assert e["pki"] == "private" and "opslib_private_pki" in e["pki_reason"]
    assert not any(v in json.dumps(doc) for v in rehearsal_fleet.env.values())
