"""``opslib rehearse faults``: the named fault points of a clean renewal on the demo host, with the
position (``PROGRAM#N``) each one has in that run — what ``--fault before:swap:fail`` resolves to."""

from __future__ import annotations

import re

import pytest

from opslib import cli


def test_rehearse_faults_lists_the_names_and_positions_of_a_clean_run(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["rehearse", "faults"]) == 0
    out = capsys.readouterr().out
    rows = dict(re.findall(r"^  (\S+#\d+)\s+(\w+#\d+)$", out, flags=re.M))
    assert rows, out
    # The kit's server-changing operations, in a clean renewal's order, each at its program's count.
    assert re.fullmatch(r"certutil#\d+", rows["preflight.export#1"])
    assert re.fullmatch(r"certutil#\d+", rows["roots.disable#1"])
    assert re.fullmatch(r"certreq#\d+", rows["install.accept#1"])
    assert re.fullmatch(r"cscript#\d+", rows["install.bind#1"])
    assert re.fullmatch(r"cscript#\d+", rows["swap#1"])
    assert re.fullmatch(r"certutil#\d+", rows["export.pfx#1"])
    names = [name.split("#")[0] for name in rows]
    assert names.index("install.accept") < names.index("swap") < names.index("export.pfx")
    count = lambda position: int(position.split("#")[1])  # noqa: E731
    assert count(rows["preflight.export#1"]) < count(rows["roots.disable#1"]) < count(rows["export.pfx#1"])
    assert "--fault before|after:NAME[#N]" in out and "opslib: run folder" not in out, (
        "the run itself is quiet"
    )
