"""Console text shared by the commands' printing."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from ..errors import OpsError
from ..text import escape_text


def table(headers: list[str], rows: Iterable[list[str]]) -> str:
    """Left-aligned columns two spaces apart, a header line first; trailing blanks cut. Every cell goes
    through :func:`opslib.text.escape_text` (cells hold names and values read from run folders)."""
    headers = [escape_text(h) for h in headers]
    rows = [[escape_text(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


@contextmanager
def escaped_errors() -> Iterator[None]:
    """An error raised inside reaches the error line with its parts escaped: a file name, a certificate
    field or a run.json value in ``where``/``problem``/``hint`` cannot drive the terminal."""
    try:
        yield
    except OpsError as exc:
        exc.where, exc.problem, exc.hint = (escape_text(v) for v in (exc.where, exc.problem, exc.hint))
        exc.message = exc.problem
        raise
