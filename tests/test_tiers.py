"""Every test module has a tier (tests/conftest.py), and the tiers are the markers pyproject.toml registers."""

from __future__ import annotations

import tomllib
from pathlib import Path

import conftest

ROOT = Path(__file__).resolve().parent.parent


def test_every_test_module_has_a_tier() -> None:
    modules = {p.stem for p in (ROOT / "tests").glob("test_*.py")}
    assert sorted(modules - set(conftest.TIER_OF_MODULE)) == [], (
        "add these to TIER_OF_MODULE in tests/conftest.py"
    )
    assert sorted(set(conftest.TIER_OF_MODULE) - modules) == [], (
        "TIER_OF_MODULE names modules that do not exist"
    )
    assert conftest.SLOW_MODULES <= modules
    for key in [*conftest.TIER_OF_TEST, *conftest.SLOW]:
        module, _, test = key.partition("::")
        assert f"def {test}(" in (ROOT / "tests" / f"{module}.py").read_text(encoding="utf-8"), key


def test_every_tier_is_a_registered_marker() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    registered = {m.split(":")[0].strip() for m in config["tool"]["pytest"]["ini_options"]["markers"]}
    used = set(conftest.TIER_OF_MODULE.values()) | set(conftest.TIER_OF_TEST.values())
    assert used <= set(conftest.TIERS)
    assert {*conftest.TIERS, "slow"} <= registered
