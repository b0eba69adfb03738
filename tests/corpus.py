"""The conformance corpus (``tests/conformance/``): public real Windows output, one YAML file per entry."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent / "conformance"
BEHAVIOUR = Path(__file__).resolve().parents[1] / "docs" / "windows-behaviour.md"
REQUIRED = ("id", "row", "source", "kind", "windows", "command", "output", "decides")


@dataclass(frozen=True)
class Entry:
    """One real output: where it was published, what it decides, and the bytes as published."""

    id: str
    rows: tuple[str, ...]
    source: str
    kind: str
    windows: str
    command: str
    output: str
    decides: str
    exit_code: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    path: Path = Path()


def load(area: str) -> list[Entry]:
    """Every entry of ``tests/conformance/<area>/`` (sorted by id), each checked for its fields."""
    entries = []
    for path in sorted((ROOT / area).glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        missing = [k for k in REQUIRED if k not in data]
        assert not missing, f"{path}: missing {missing}"
        assert data["id"] == path.stem, f"{path}: id {data['id']!r} is not the file's stem"
        assert data["kind"] in ("excerpt", "reconstruction"), f"{path}: kind {data['kind']!r}"
        assert re.match(r"^https://\S+$", data["source"]), f"{path}: source must be an https URL"
        rows = tuple(data["row"]) if isinstance(data["row"], list) else (data["row"],)
        known = set(re.findall(r"\| (W-[A-Z0-9-]+) \|", BEHAVIOUR.read_text(encoding="utf-8")))
        assert set(rows) <= known, f"{path}: rows not in the behaviour table: {set(rows) - known}"
        rest = {k: v for k, v in data.items() if k not in (*REQUIRED, "exit_code")}
        entries.append(
            Entry(
                data["id"],
                rows,
                data["source"],
                data["kind"],
                str(data["windows"]),
                str(data["command"]),
                str(data["output"]),
                str(data["decides"]),
                data.get("exit_code"),
                rest,
                path,
            )
        )
    return entries


def areas() -> list[str]:
    return sorted(p.name for p in ROOT.iterdir() if p.is_dir())
