"""One Server per step, one probe per run: the capabilities a step probed are shared through the run folder."""

from __future__ import annotations

import json
from pathlib import Path

from opslib import rehearsal
from opslib.server import session

PASSWORD = "Session-Test-2026"


def _winrm(r: rehearsal.Rehearsal) -> dict[str, object]:
    return {
        "url": r.url,
        "transport": "basic",
        "username": r.user,
        "password": "env:OPSLIB_SESSION_TEST_PW",
        "allow_unencrypted_basic": True,
        "codepage": 437,
    }


def _probe_commands(run_dir: Path) -> int:
    lines = [json.loads(x) for x in (run_dir / "transcript.jsonl").read_text(encoding="utf-8").splitlines()]
    return sum(1 for r in lines if "argv" in r and str(r.get("what", "")).endswith("?"))


def test_the_second_step_of_a_run_reads_the_probe_instead_of_probing(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("OPSLIB_SESSION_TEST_PW", PASSWORD)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with rehearsal.start(scenario="default", password=PASSWORD, workdir=tmp_path / "host") as r:
        with session.open_server(_winrm(r), host="web01", run_dir=str(run_dir)) as first:
            caps = first.capabilities
        probed = _probe_commands(run_dir)
        assert probed >= 8  # cscript, PowerShell, admin, the certutil and certreq verbs …
        saved = json.loads((run_dir / session.CAPABILITIES_FILE).read_text(encoding="utf-8"))
        assert saved["url"] == r.url and saved["windows_version"] == caps.windows_version == "5.2.3790"
        with session.open_server(_winrm(r), host="web01", run_dir=str(run_dir)) as second:
            assert second.capabilities == caps
            assert second.iis.name  # the backend is chosen from the shared answer
        assert _probe_commands(run_dir) == probed  # not one probe more
        with session.open_server(_winrm(r), host="web01", run_dir=str(run_dir)) as third:
            assert third.probe(refresh=True) == caps
        assert _probe_commands(run_dir) == 2 * probed  # refresh probes again


def test_a_cache_of_another_server_or_an_unreadable_one_is_not_used(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("OPSLIB_SESSION_TEST_PW", PASSWORD)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cache = run_dir / session.CAPABILITIES_FILE
    with rehearsal.start(scenario="iis6-ja", password=PASSWORD, workdir=tmp_path / "host") as r:
        cache.write_text(json.dumps({"url": "http://elsewhere:5985/wsman", "windows_version": "10.0"}))
        with session.open_server(_winrm(r), host="web01", run_dir=str(run_dir)) as server:
            assert server.capabilities.windows_version == "5.2.3790"
        first = _probe_commands(run_dir)
        assert first > 0
        cache.write_text("{not json")
        with session.open_server(_winrm(r), host="web01", run_dir=str(run_dir)) as server:
            assert server.capabilities.iis_major == 6
        assert _probe_commands(run_dir) == 2 * first
        assert json.loads(cache.read_text(encoding="utf-8"))["url"] == r.url  # rewritten by the new probe


def test_a_store_read_is_reused_until_a_command_may_have_changed_the_server(
    tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from opslib.server import stores

    monkeypatch.setenv("OPSLIB_SESSION_TEST_PW", PASSWORD)
    with rehearsal.start(scenario="default", password=PASSWORD, workdir=tmp_path / "host") as r:
        with session.open_server(_winrm(r), host="web01", run_dir="") as server:
            conn = server.conn
            first = stores.read_store(conn, "ROOT")
            n = conn.commands_run
            assert (
                stores.read_store(conn, "ROOT") == first and conn.commands_run == n
            )  # read again: no command
            for root in r.host.extra["forbidden_roots"]:  # the server changes by a command the kit sends …
                conn.run(["certutil", "-f", "-repairstore", "Root", root], check=False, what="a change")
            from opslib.rehearsal.programs import stores as emulated

            for root in r.host.extra["forbidden_roots"]:
                emulated.set_eku(r.host, "ROOT", root, [])
            again = stores.read_store(conn, "ROOT")  # … so the next read goes to the server again
            assert conn.commands_run > n + 1
            disabled = {e.thumbprint for e in again if not e.enabled}
            assert disabled >= {t.upper() for t in r.host.extra["forbidden_roots"]}
