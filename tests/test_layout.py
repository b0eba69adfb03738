"""The package layout: every opslib module imports, imports point down only, no circles, small modules.

The layers, top to bottom (a module may import its own layer's package and anything below):
cli/rehearsal → runbook → preflight/ops → server → iis → the rest (transport, certs, evidence, errors, …).
``server`` sits above ``iis`` because :class:`opslib.server.Server` builds its IIS backend; the IIS
backends need only a connection. The import graph between opslib packages must also be acyclic, and so
must the graph between the modules of one package. Imports inside functions and under
``if TYPE_CHECKING:`` count: they are dependencies too.

A module does not import another module's ``_private`` name (neither ``from .x import _y`` nor ``x._y``
through an imported module): what another module needs is public. Every module has at most
``SIZE_CAP`` lines, except those in ``OVERSIZE`` (the same list as CONTRIBUTING.md's).

``PENDING_CIRCLES`` and ``PENDING_PRIVATE_IMPORTS`` hold the violations that were in the tree when these
checks were written (each is being fixed in its package); a test fails when an entry no longer occurs,
so the lists only shrink — remove the entry with the fix.
"""

from __future__ import annotations

import ast
import functools
import importlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
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
    "fleet": 5,  # the fleet (issue 27) and the renewal calendar (issue 28): beside runbook; only cli imports it
    "lab": 6,  # the lab check: drives the step modules on a throw-away certificate; compare starts a rehearsal host
    "preflight": 4,
    "ops": 4,
    "server": 3,
    "iis": 2,
}
BOTTOM = 1  # winrm, certs, evidence, errors, winerror, credentials, backup, tls, params, inspection…

SIZE_CAP = 620
# Module (path under opslib/) → why it is over SIZE_CAP. Each is the next clean-up; CONTRIBUTING.md lists
# the same modules ("Modules over the cap").
OVERSIZE = {
    "rehearsal/cmd.py": (
        "the cmd.exe interpreter: parsing, redirection and the built-ins share one parser state"
    ),
    "rehearsal/server.py": "the WS-Management endpoint",
    "rehearsal/pki.py": "one factory per chain shape",
    "rehearsal/programs/certutil.py": "one program and its verbs",
}

# Import circles between the modules of one package that were in the tree when the check was written,
# each as the sorted modules of the circle. Being fixed in its package; remove the entry with the fix.
PENDING_CIRCLES: set[tuple[str, ...]] = set()

# Imports of another module's private name that were in the tree when the check was written, as
# "importer: module.name". Being fixed in its package (make the name public, or move it); remove the entry
# with the fix.
PENDING_PRIVATE_IMPORTS: set[str] = set()


# --- the modules and what they import -----------------------------------------------------------------------


@functools.cache
def _module_paths() -> dict[str, Path]:
    """Every opslib module (a package by its own name, for its ``__init__.py``) → its file."""
    paths = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        paths[".".join(parts)] = path
    return paths


def _modules() -> list[str]:
    return list(_module_paths())


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _package(module: str) -> str:
    """The package a module belongs to (a package's ``__init__`` belongs to the package itself)."""
    return module if _module_paths()[module].name == "__init__.py" else module.rsplit(".", 1)[0]


@functools.cache
def _tree(module: str) -> ast.Module:
    return ast.parse(_module_paths()[module].read_text(encoding="utf-8"))


def _from_target(node: ast.ImportFrom, module: str) -> str:
    """The absolute name of the module ``from … import`` reads from."""
    if not node.level:
        return node.module or ""
    base = _package(module).split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _is_opslib(name: str) -> bool:
    return name == "opslib" or name.startswith("opslib.")


def _imported_names(module: str) -> Iterator[tuple[str, str | None, int]]:
    """Each opslib import of ``module``, at any depth of the file: (module read from, name or None, line).

    ``import opslib.x`` gives ("opslib.x", None); ``from .x import y`` gives ("opslib….x", "y").
    """
    for node in ast.walk(_tree(module)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _is_opslib(alias.name):
                    yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            target = _from_target(node, module)
            if _is_opslib(target):
                for alias in node.names:
                    yield target, alias.name, node.lineno


def _imports(module: str) -> set[str]:
    """The opslib modules ``module`` imports: ``from . import certs`` imports the module opslib.certs,
    ``from .base import Site`` the module opslib….base. The facade ``opslib`` itself is left out (its
    ``__getattr__`` imports on first use only)."""
    found = set()
    for target, name, _ in _imported_names(module):
        found.add(f"{target}.{name}" if f"{target}.{name}" in _module_paths() else target)
    return found - {"opslib", module}


def _graph() -> dict[str, set[str]]:
    """Unit → the other units it imports (the opslib package itself and the shims left out)."""
    graph: dict[str, set[str]] = {}
    for module in _modules():
        unit = _unit(module)
        if unit in SHIMS or unit == "__init__":
            continue
        targets = {_unit(t) for t in _imports(module)}
        graph.setdefault(unit, set()).update(t for t in targets if t != unit and t not in SHIMS)
    return graph


def _circles(graph: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """The strongly connected parts of ``graph`` with more than one node, each sorted (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[tuple[str, ...]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            part = []
            while True:
                top = stack.pop()
                part.append(top)
                if top == node:
                    break
            if len(part) > 1:
                found.append(tuple(sorted(part)))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _private_uses(module: str) -> set[str]:
    """``module``'s uses of another opslib module's private name, as "module: other.name".

    Seen: ``from .x import _y`` / ``from opslib.x import _y``, and ``x._y`` where ``x`` is a module this
    file imported (``from . import x [as z]``, ``import opslib.x``). A private module imported within its
    own package is the package's business and allowed.
    """
    paths = _module_paths()
    uses = set()
    bound: dict[str, str] = {}  # local name → the opslib module it is bound to
    for node in ast.walk(_tree(module)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _is_opslib(alias.name):
                    bound[alias.asname or "opslib"] = alias.name if alias.asname else "opslib"
        elif isinstance(node, ast.ImportFrom):
            target = _from_target(node, module)
            if not _is_opslib(target):
                continue
            for alias in node.names:
                if f"{target}.{alias.name}" in paths:  # a module
                    bound[alias.asname or alias.name] = f"{target}.{alias.name}"
                    if _is_private(alias.name) and _package(module) != target:
                        uses.add(f"{module}: {target}.{alias.name}")
                elif _is_private(alias.name):
                    uses.add(f"{module}: {target}.{alias.name}")
    for node in ast.walk(_tree(module)):
        if isinstance(node, ast.Attribute) and _is_private(node.attr):
            chain = []
            value: ast.expr = node.value
            while isinstance(value, ast.Attribute):
                chain.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in bound:
                owner = ".".join([bound[value.id], *reversed(chain)])
                if owner in paths and owner != module:
                    uses.add(f"{module}: {owner}.{node.attr}")
    return uses


def _lines(module: str) -> int:
    return len(_module_paths()[module].read_text(encoding="utf-8").splitlines())


def _relative(module: str) -> str:
    return _module_paths()[module].relative_to(ROOT).as_posix()


# --- the tests ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", [m for m in _modules() if not m.endswith(".__main__")])
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
    circles = _circles(_graph())
    assert not circles, "import circles between packages: " + "; ".join(" ↔ ".join(c) for c in circles)


def _module_circles() -> list[tuple[str, ...]]:
    return _circles({m: _imports(m) for m in _modules() if m != "opslib"})


def test_no_import_circle_between_modules() -> None:
    new = [c for c in _module_circles() if c not in PENDING_CIRCLES]
    assert not new, "import circles between modules: " + "; ".join(" ↔ ".join(c) for c in new)


def test_every_pending_circle_still_occurs() -> None:
    gone = PENDING_CIRCLES - set(_module_circles())
    assert not gone, (
        f"no longer a circle (remove from PENDING_CIRCLES in tests/test_layout.py): {sorted(gone)}"
    )


def _private_imports() -> set[str]:
    return {use for module in _modules() for use in _private_uses(module)}


def test_no_module_uses_another_modules_private_name() -> None:
    new = sorted(_private_imports() - PENDING_PRIVATE_IMPORTS)
    assert not new, "private names used by another module (make them public, or move them): " + "; ".join(new)


def test_every_pending_private_import_still_occurs() -> None:
    gone = sorted(PENDING_PRIVATE_IMPORTS - _private_imports())
    assert not gone, f"fixed (remove from PENDING_PRIVATE_IMPORTS in tests/test_layout.py): {gone}"


def test_every_module_stays_under_the_size_cap() -> None:
    big = [f"{_relative(m)} ({_lines(m)} lines)" for m in _modules() if _lines(m) > SIZE_CAP]
    unlisted = [b for b in big if b.split(" ")[0] not in OVERSIZE]
    assert not unlisted, f"over {SIZE_CAP} lines (split it, or list it with a reason in OVERSIZE): {unlisted}"


def test_every_oversize_module_is_still_over_the_cap() -> None:
    sizes = {_relative(m): _lines(m) for m in _modules()}
    missing = sorted(path for path in OVERSIZE if path not in sizes)
    assert not missing, f"OVERSIZE lists modules that do not exist: {missing}"
    small = sorted(f"{path} ({sizes[path]} lines)" for path in OVERSIZE if sizes[path] <= SIZE_CAP)
    assert not small, f"under the cap now: remove from OVERSIZE and from CONTRIBUTING.md: {small}"


def test_contributing_lists_the_oversize_modules() -> None:
    text = (ROOT.parent / "CONTRIBUTING.md").read_text(encoding="utf-8")
    paragraph = re.search(r"^Modules over the cap.*?(?=\n\n)", text, flags=re.MULTILINE | re.DOTALL)
    assert paragraph, "CONTRIBUTING.md: the paragraph 'Modules over the cap …' is missing"
    listed = {p for p in re.findall(r"`([\w/]+\.py)`", paragraph.group(0)) if not p.startswith("tests/")}
    assert listed == set(OVERSIZE), (
        f"CONTRIBUTING.md lists {sorted(listed - set(OVERSIZE))} that OVERSIZE does not, "
        f"and leaves out {sorted(set(OVERSIZE) - listed)}"
    )


# --- the command line: `opslib.cli` -------------------------------------------------------------------------

# Imported by no command's argument parsing: `opslib --help` and every command's usage errors stay fast.
HEAVY_FOR_THE_PARSER = (
    "opslib.rehearsal",
    "opslib.runbook",
    "opslib.fleet",
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
