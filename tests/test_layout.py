"""The package layout: every opslib module imports, and imports point down only.

The layers, top to bottom (a module may import its own layer's package and anything below):
cli/rehearsal → runbook → preflight/ops → server → iis → the rest (transport, certs, evidence, errors, …).
``server`` sits above ``iis`` because :class:`opslib.server.Server` builds its IIS backend; the IIS
backends need only a connection. The import graph between opslib packages must also be acyclic.
"""

from __future__ import annotations

import ast
import importlib
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
