"""What a renewal sends on the wire, made comparable between two runs (``tests/test_wire.py``).

A clean run's remote command lines, in order, with what differs from run to run replaced by stable
placeholders: the kit's random names (``opslib-<id>``, ``t0001-<id>``), thumbprints, random one-time
passwords and GUIDs (numbered in order of first appearance, so "the same value again" stays visible),
and the content of upload chunks (``echo <base64>``: the certificates are generated per host). Lines
that only carry upload chunks are folded into one ``<upload …>`` line per file, since the number of
chunks follows the size of the data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_RANDOM_NAME = re.compile(r"\b(opslib|t\d{4})-[0-9a-f]{8,12}\b")
_NUMBERED = (
    ("THUMB", re.compile(r"\b[0-9A-F]{40}\b")),
    ("SECRET", re.compile(r"(?<=-p )[0-9a-f]{32}\b")),
    ("GUID", re.compile(r"\{[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}")),
)
_CHUNK = re.compile(r'(>>?"?[^"&>]+\.b64"?) echo (?!-----)[A-Za-z0-9+/=]+')
_REPEATED_CHUNK = re.compile(r'(>>?"?[^"&>]+\.b64"? echo <data>)(?:&&\1)+')
_UPLOAD_ONLY = re.compile(r'^>>"?[^"&]+\.b64"? echo <data>$')


def normalize(lines: Iterable[str]) -> list[str]:
    """``lines`` (command lines as the host ran them, with ``\\t<exit code>``) made run-independent."""
    seen: dict[str, dict[str, str]] = {kind: {} for kind, _ in _NUMBERED}
    out: list[str] = []
    for line in lines:
        line = _REPEATED_CHUNK.sub(r"\1", _CHUNK.sub(r"\1 echo <data>", line))
        line = _RANDOM_NAME.sub(lambda m: f"{m.group(1)[:1]}-<id>", line)
        for kind, pattern in _NUMBERED:
            table = seen[kind]
            line = pattern.sub(
                lambda m, t=table, k=kind: t.setdefault(m.group(0), f"<{k}{len(t) + 1}>"), line
            )
        command, _, code = line.rpartition("\t")
        if _UPLOAD_ONLY.match(command) and out and out[-1] == line:
            continue  # one more chunk of the same file
        out.append(line)
    return out


def history_lines(history: Iterable[dict[str, object]]) -> list[str]:
    """The rehearsal host's ``history`` as ``command<TAB>exit code`` lines."""
    return [f"{h['command']}\t{h['exit_code']}" for h in history]
