"""Promises of the project itself: dependency lists in step, notebooks thin and committed clean."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
STEP_NOTEBOOKS = [
    "00_precheck_root_store.ipynb",
    "01_install_certificate.ipynb",
    "02_swap_certificate.ipynb",
    "03_backup_keypair.ipynb",
    "04_verify_endpoint.ipynb",
]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_lists_the_same_dependencies_as_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    conda = {
        _name(d) for d in env["dependencies"] if isinstance(d, str) and _name(d) not in {"python", "pip"}
    }
    assert conda == {_name(d) for d in project["dependencies"]}
    assert "conda-forge" in env["channels"]


def test_the_design_cards_packages_are_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = {_name(d) for d in project["dependencies"]}
    assert {"jupyterlab", "papermill", "cryptography", "pandas", "pywinrm"} <= names


def test_the_top_level_layout_is_the_design_cards() -> None:
    for entry in ["notebooks", "opslib", "parameters", "tests", "environment.yml", "README.md"]:
        assert (ROOT / entry).exists(), entry


def test_every_step_notebook_exists() -> None:
    names = {p.name for p in NOTEBOOKS}
    assert set(STEP_NOTEBOOKS) <= names
    assert {"inspect_certificate.ipynb", "review_evidence.ipynb"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"{path.name}: a code cell has outputs"
            assert cell.get("execution_count") is None, f"{path.name}: a code cell has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_thin_and_bilingual(path: Path) -> None:
    nb = json.loads(path.read_text(encoding="utf-8"))
    first = nb["cells"][0]
    assert first["cell_type"] == "markdown"
    heading = "".join(first["source"]).splitlines()[0]
    assert heading.startswith("# "), heading
    assert re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", heading), f"{path.name}: heading has no Japanese title"
    assert re.search(r"[A-Za-z]{3,}", heading), f"{path.name}: heading has no English title"
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        tree = ast.parse("".join(cell["source"]))
        defs = [
            n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef)
        ]
        assert not defs, f"{path.name}: logic belongs in opslib, not in a notebook (def/class found)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_parameter_line_has_a_type_and_a_help_comment(path: Path) -> None:
    nb = json.loads(path.read_text(encoding="utf-8"))
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    for line in "".join(cell["source"]).splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        assert re.match(r"^\w+: [\w\[\], |]+ = .+  # \S", line), f"{path.name}: parameter line {line!r}"


def test_cli_help_runs_and_names_every_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "opslib", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ["run", "resume", "inspect", "evidence", "rehearse"]:
        assert command in out
