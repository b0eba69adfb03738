"""Text that came from outside (a certificate field, a server's answer) made safe to print.

:func:`escape_text` escapes every control character — C0 (including CR, LF, TAB and ESC, which
starts terminal escape sequences), DEL, C1 — and the Unicode bidirectional overrides and isolates
(which reorder what a terminal shows, CVE-2021-42574 "Trojan Source") as ``\\xNN`` / ``\\uNNNN``.
Everything else, Japanese included, is kept as it is. A backslash is doubled, so the escaped text
reads back unambiguously.
"""

from __future__ import annotations

import re

__all__ = ["escape_text"]

# C0, DEL, C1; the bidi embeddings/overrides U+202A–U+202E and isolates U+2066–U+2069; the
# line/paragraph separators U+2028/U+2029 (line breaks for some terminals and editors).
_UNSAFE = re.compile(r"[\\\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


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
