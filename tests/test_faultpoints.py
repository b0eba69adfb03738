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


def test_rehearse_faults_on_iis10_names_the_swap_and_never_a_probe(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """IIS 7–10: the swap's netsh command is ``swap.update`` (the names test_iis7_e2e fails by); the
    read-only verb probes (``netsh http update sslcert /?``, steps 0 and 2) are no fault point."""
    assert cli.main(["rehearse", "faults", "--scenario", "iis10"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("named fault points of a clean renewal on the iis10 host")
    rows = dict(re.findall(r"^  (\S+#\d+)\s+(\w+#\d+)$", out, flags=re.M))
    swaps = [name for name in rows if name.startswith("swap")]
    assert swaps == ["swap.update#1"], rows
    assert re.fullmatch(r"netsh#\d+", rows["install.add#1"]) and re.fullmatch(
        r"netsh#\d+", rows["swap.update#1"]
    )
    # netsh's earlier commands are the probes (not named) and the work site's binding.
    assert int(rows["swap.update#1"].split("#")[1]) > int(rows["install.add#1"].split("#")[1]) + 1
