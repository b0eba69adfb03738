"""Named fault points: the kit's server-changing operations, by name instead of by count.

``--fault before:swap:fail`` fails the kit's swap however many ``cscript`` commands ran before it;
``before:cscript#10:fail`` (``PROGRAM#N``) still counts. A point name is an operation (``roots``,
``install``, ``swap``, ``export``, ``preflight``) — all its commands — or one kind of command inside it
(``swap.add``, ``install.accept``, …); as with ``PROGRAM``, ``NAME#N`` is the N-th such command and a
name without ``#N`` fires on each. Each command the host runs is
named from its command line (:func:`name_of`) and from what the host saw before it: the certificate
export of the pre-flight (before any request was completed) is ``preflight.export``, step 3's is
``export``; ``netsh http add sslcert`` binds the work site (``install.add``) until the swap deleted the
production binding (``swap.delete`` → ``swap.add``). The names follow the kit's order of operations
on this host since it started.

``opslib rehearse faults`` lists the names with their positions (``PROGRAM#N``) in a clean renewal.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

OPERATIONS = ("roots", "install", "swap", "export", "preflight")


@dataclass(frozen=True)
class _Rule:
    name: str
    program: str
    pattern: re.Pattern[str]


def _rule(name: str, program: str, pattern: str) -> _Rule:
    return _Rule(name, program, re.compile(pattern, re.I))


# Checked in order; a probe (``-?``) is never a point.
_RULES = (
    _rule("roots.disable", "certutil", r"\s-repairstore\s"),
    _rule("restore.roots", "reg", r"^\S*reg(\.exe)?\s+import\s"),
    _rule("install.ca", "certutil", r"\s-addstore\s"),
    _rule("install.accept", "certreq", r"\s-accept\s"),
    _rule("request.new", "certreq", r"\s-new\s"),  # opslib request (not part of a renewal)
    _rule("request.key", "certutil", r"\s-key\s"),  # its cleanup's read-back of the key container
    _rule("install.bind", "cscript", r"iis6\.js\"?\s+set-cert\s"),
    _rule("swap", "cscript", r"iis6\.js\"?\s+swap\s"),
    _rule("export.certobj", "cscript", r"iis6\.js\"?\s+export-pfx\s"),
    _rule("export.pfx", "certutil", r"\s-exportpfx\s"),
    _rule("swap.update", "netsh", r"\bhttp\s+update\s+sslcert\b"),
    _rule("swap.delete", "netsh", r"\bhttp\s+delete\s+sslcert\b"),
    _rule("swap.add", "netsh", r"\bhttp\s+add\s+sslcert\b"),
    _rule("install.site", "appcmd", r"\bset\s+site\b"),
)


def name_of(program: str, command_line: str, seen: Sequence[str]) -> str:
    """The point name of one command (``""``: none — a read-only probe, ``certutil -VERB -?`` or
    ``netsh http update sslcert /?``); ``seen``: the names of the host's earlier commands."""
    if re.search(r"\s[-/]\?(\s|$)", command_line):
        return ""
    for rule in _RULES:
        if rule.program == program and rule.pattern.search(command_line):
            name = rule.name
            if name.startswith("export.") and "install.accept" not in seen:
                return "preflight.export"
            if name == "swap.add" and "swap.delete" not in seen:
                return "install.add"
            return name
    return ""


def matches(point: str, name: str) -> bool:
    """Whether a command named ``name`` is one of ``point`` (an operation names all its commands)."""
    return bool(name) and (name == point or name.startswith(point + "."))


NAMES = tuple(sorted({*OPERATIONS, *(r.name for r in _RULES), "preflight.export", "install.add", "request"}))


def is_point(word: str) -> bool:
    """Whether a fault spec's middle word is a point name (not a program)."""
    return word.lower() in NAMES
