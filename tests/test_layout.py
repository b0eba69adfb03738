"""The package layout: every opslib module imports, and imports point down only.

The layers, top to bottom (a module may import its own layer's package and anything below):
cli/rehearsal → runbook → preflight/ops → server → iis → the rest (transport, certs, evidence, errors, …).
``server`` sits above ``iis`` because :class:`opslib.server.Server` builds its IIS backend; the IIS
backends need only a connection. The import graph between opslib packages must also be acyclic.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "opslib"
SHIMS: set[str] = set()
# Rank of each top-level unit (a package or a module of opslib); higher may import lower, never up.
RANKS = {
    "__main__": 7,
    "cli": 6,
    "rehearsal": 6,  # the emulated host; its demo drives the runbook, nothing below imports it
    "runbook": 5,
    "lab": 6,  # the lab check: drives the step modules on a throw-away certificate; compare starts a rehearsal host
    "preflight": 4,
    "ops": 4,
    "server": 3,
    "iis": 2,
}
BOTTOM = 1  # winrm, certs, evidence, errors, winerror, credentials, backup, tls, params, inspection…


def _modules() -> list[str]:
    names = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path, module: str) -> set[str]:
    """The opslib modules ``path`` imports (absolute names), at any depth of the file."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("opslib"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if not target.startswith("opslib"):
                continue
            found.add(target)
            for alias in node.names:  # "from . import certs" imports the module opslib.certs
                if (ROOT.parent / (target.replace(".", "/") + "/" + alias.name)).exists() or (
                    ROOT.parent / (target.replace(".", "/") + "/" + alias.name + ".py")
                ).exists():
                    found.add(f"{target}.{alias.name}")
    return found


def _graph() -> dict[str, set[str]]:
    """Unit → the other units it imports (the opslib package itself and the shims left out)."""
    graph: dict[str, set[str]] = {}
    for module in _modules():
        unit = _unit(module)
        if unit in SHIMS or unit == "__init__":
            continue
        rel = Path(*module.split("."))
        path = (
            ROOT.parent / rel / "__init__.py" if (ROOT.parent / rel).is_dir() else ROOT.parent / f"{rel}.py"
        )
        targets = {_unit(t) for t in _imports(path, module) if t != "opslib"}
        graph.setdefault(unit, set()).update(t for t in targets if t != unit and t not in SHIMS)
    return graph


@pytest.mark.parametrize("module", [m for m in _modules() if m != "opslib.__main__"])
def test_every_module_imports(module: str) -> None:
    importlib.import_module(module)


def test_imports_point_down_only() -> None:
    upward = [
        f"{unit} imports {target}"
        for unit, targets in _graph().items()
        for target in sorted(targets)
        if RANKS.get(target, BOTTOM) > RANKS.get(unit, BOTTOM)
    ]
    assert not upward, "imports pointing up a layer: " + "; ".join(upward)


def test_no_import_circle_between_packages() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(unit: str) -> list[str] | None:
        state[unit] = 1
        path.append(unit)
        for target in sorted(graph.get(unit, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        path.pop()
        state[unit] = 2
        return None

    for unit in sorted(graph):
        if unit not in state:
            circle = visit(unit)
            assert circle is None, "import circle: " + " → ".join(circle)


def test_server_and_iis_modules_stay_small() -> None:
    for package in ("server", "iis", "ops"):
        for path in (ROOT / package).glob("*.py"):
            assert len(path.read_text(encoding="utf-8").splitlines()) <= 620, path.name


# --- the command line: `opslib.cli` -------------------------------------------------------------------------

# Imported by no command's argument parsing: `opslib --help` and every command's usage errors stay fast.
HEAVY_FOR_THE_PARSER = (
    "opslib.rehearsal",
    "opslib.runbook",
    "opslib.evidence",
    "pandas",
    "cryptography",
    "winrm",
)


def test_building_the_cli_parser_imports_nothing_heavy() -> None:
    # In a fresh interpreter: the other tests of this session have imported everything already.
    probe = (
        "import json, sys\n"
        "import opslib.cli\n"
        "opslib.cli._parser().parse_args(['rehearse', 'serve', '--scenario', 'iis7'])\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT.parent), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env, cwd=ROOT.parent
    ).stdout
    loaded = json.loads(out)
    assert "opslib.cli.parser" in loaded
    heavy = [h for h in HEAVY_FOR_THE_PARSER if any(m == h or m.startswith(h + ".") for m in loaded)]
    assert not heavy, f"building the parser imported {heavy}"


def test_the_parser_knows_every_rehearsal_scenario() -> None:
    from opslib.cli.parser import REHEARSAL_SCENARIOS
    from opslib.rehearsal.scenarios import SCENARIOS

    assert REHEARSAL_SCENARIOS == tuple(sorted(SCENARIOS)), (
        "update REHEARSAL_SCENARIOS in opslib/cli/parser.py"
    )


def test_an_unknown_scenario_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    from opslib import cli

    with pytest.raises(SystemExit) as exited:
        cli.main(["rehearse", "serve", "--scenario", "nope"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "argument --scenario: invalid choice: 'nope' (choose from 'b64-locked', " in err
    assert "'iis7', " in err


@pytest.mark.parametrize("flag", ["--yes", "--json", "--verbose", "--break-lock", "--evidence-root"])
def test_a_shared_cli_option_is_defined_once(flag: str) -> None:
    defined = [
        f"{path.name}:{node.lineno}"
        for path in sorted((ROOT / "cli").glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call)
        and any(isinstance(a, ast.Constant) and a.value == flag for a in node.args)
    ]
    assert len(defined) == 1, f"{flag} is defined at {defined}; define it once in opslib/cli/parser.py"
