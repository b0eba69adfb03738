"""Text that came from outside (a certificate field, a server's answer) made safe to print.

:func:`escape_text` escapes every control character — C0 (including CR, LF, TAB and ESC, which
starts terminal escape sequences), DEL, C1 — and the Unicode bidirectional overrides and isolates
(which reorder what a terminal shows, CVE-2021-42574 "Trojan Source") as ``\\xNN`` / ``\\uNNNN``.
Everything else, Japanese included, is kept as it is. A backslash is doubled, so the escaped text
reads back unambiguously. :func:`escape_json` is the same escape for JSON output: the same characters
as ``\\uNNNN`` escapes, so the text stays valid JSON that decodes to the original value.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["escape_json", "escape_lines", "escape_text"]

# C0, DEL, C1; the bidi embeddings/overrides U+202A–U+202E and isolates U+2066–U+2069; the
# line/paragraph separators U+2028/U+2029 (line breaks for some terminals and editors).
_DEL_C1_BIDI = r"\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(rf"[\\\x00-\x1f{_DEL_C1_BIDI}]")
# json.dumps escapes the backslash and C0 inside strings itself; its own line breaks (indent) stay.
_UNSAFE_IN_JSON = re.compile(rf"[\x00-\x09\x0b-\x1f{_DEL_C1_BIDI}]")


def _escape(match: re.Match[str]) -> str:
    ch = match.group(0)
    if ch == "\\":
        return "\\\\"
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_text(value: object, *, limit: int = 0) -> str:
    """``str(value)`` with control characters escaped; cut to ``limit`` characters (0: no limit)."""
    text = _UNSAFE.sub(_escape, str(value))
    if limit and len(text) > limit:
        text = text[: max(0, limit - 1)] + "…"
    return text


def escape_json(value: Any, *, indent: int | None = 2) -> str:
    """``json.dumps(value, ensure_ascii=False)`` with every character :func:`escape_text` escapes written
    as ``\\uNNNN`` (json.dumps leaves DEL, C1 and the bidi controls raw): safe on a terminal, same data."""
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)


def escape_lines(text: str) -> str:
    """``text`` for a console: each line escaped (:func:`escape_text`) piece by piece between backslashes,
    so Windows paths and store names keep their single backslashes; the line breaks stay."""
    return "\n".join("\\".join(escape_text(piece) for piece in line.split("\\")) for line in text.split("\n"))
