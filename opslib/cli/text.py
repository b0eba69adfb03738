"""Console text shared by the commands' printing."""

from __future__ import annotations

from collections.abc import Iterable


def table(headers: list[str], rows: Iterable[list[str]]) -> str:
    """Left-aligned columns two spaces apart, a header line first; trailing blanks cut."""
    rows = list(rows)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)
