"""Nothing changes on the wire unnoticed: every scenario's clean run sends the recorded command lines.

For each rehearsal scenario, one renewal with the default parameters (``opslib run … --yes``) against a
fresh host; the host's command history (every command line, in order, with its exit code), normalized
by :mod:`wirelines`, must equal ``tests/golden/wire/<scenario>.txt`` line for line, and the run must end
with the recorded exit code. The records were captured before the runbook was split into step engines;
a change that means to change what the kit sends re-records them (``OPSLIB_WIRE_RECORD=1``) and says
why in its commit.
"""

from __future__ import annotations

import difflib
import os
import secrets as random
from pathlib import Path

import pytest
import yaml
from wirelines import history_lines, normalize

from opslib import cli, rehearsal
from opslib.rehearsal.scenarios import SCENARIOS

GOLDEN = Path(__file__).resolve().parent / "golden" / "wire"
RECORD = os.environ.get("OPSLIB_WIRE_RECORD") == "1"


def test_every_scenario_has_a_record() -> None:
    assert sorted(p.stem for p in GOLDEN.glob("*.txt")) == sorted(SCENARIOS)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_a_clean_run_sends_the_recorded_command_lines(
    scenario: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSLIB_WIRE_WINRM", f"W{random.token_urlsafe(15)}")
    monkeypatch.setenv("OPSLIB_WIRE_PFX", f"P{random.token_urlsafe(15)}")
    with rehearsal.start(
        scenario=scenario, password=os.environ["OPSLIB_WIRE_WINRM"], workdir=tmp_path / "host"
    ) as reh:
        data = reh.params(
            password_env="OPSLIB_WIRE_WINRM",
            pfx_password_env="OPSLIB_WIRE_PFX",
            backup_dir=str(tmp_path / "b"),
        )
        params_file = tmp_path / "params.yaml"
        params_file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        code = cli.main(["run", str(params_file), "--evidence-root", str(tmp_path / "evidence"), "--yes"])
        sent = [f"# exit {code}", *normalize(history_lines(reh.host.history))]
    path = GOLDEN / f"{scenario}.txt"
    if RECORD:
        path.write_text("\n".join(sent) + "\n", encoding="utf-8")
    recorded = path.read_text(encoding="utf-8").splitlines()
    diff = list(difflib.unified_diff(recorded, sent, "recorded", "sent now", lineterm="", n=1))
    assert not diff, f"{scenario}: the command lines changed:\n" + "\n".join(d[:240] for d in diff[:60])
