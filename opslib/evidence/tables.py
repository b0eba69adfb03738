"""A step notebook's tables: shown whole, and recorded as data for the report.

:func:`show` is what a step notebook calls where it would show a ``pandas.DataFrame``: it displays one
output holding the table three ways — ``text/html`` (every row and every value whole, headings from
:mod:`.glossary` in Japanese and English), ``text/plain``, and :data:`TABLE_MIME` (the columns and the
rows as JSON), which :mod:`.report_steps` renders. Nothing goes through pandas' display options, so
neither the executed notebook, nor its ``html/`` render, nor the report cuts a value short.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from .glossary import WORDS, bool_word, heading, unchanged
from .manifest import plain, redacted_doc

TABLE_MIME = "application/vnd.opslib.table+json"
CHANGE_COLUMNS = ("target", "field", "before", "after")


def table_data(rows: Any, columns: Sequence[str] | None = None) -> dict[str, Any]:
    """``{"columns": [...], "rows": [[...], ...]}`` from mappings (one per row), one mapping, or
    sequences under ``columns``; values as plain JSON, secrets masked. A plan's rows
    (``target``/``field``/``before``/``after``) get a ``change`` column: changed or unchanged."""
    items = [rows] if isinstance(rows, Mapping) else list(rows or [])
    if columns is None:
        names: list[str] = list(dict.fromkeys(str(k) for r in items if isinstance(r, Mapping) for k in r))
    else:
        names = [str(c) for c in columns]
    body: list[list[Any]] = []
    for r in items:
        if isinstance(r, Mapping):
            body.append([r.get(c) for c in names])
        else:
            body.append(list(r)[: len(names)])
    data = redacted_doc(plain({"columns": names, "rows": body}, "table"))
    if set(CHANGE_COLUMNS) <= set(names):
        before, after = names.index("before"), names.index("after")
        data["columns"].append("change")
        for row in data["rows"]:
            row.append("unchanged" if unchanged(row[before], row[after]) else "changed")
    return dict(data)


def cell_plain(value: Any, column: str | None = None) -> str:
    """One value as whole text: booleans as words, lists one item a line, mappings as ``key: value``."""
    if isinstance(value, bool):
        ja, en = WORDS[bool_word(column, value)]
        return f"{ja} / {en}"
    if value is None:
        return ""
    if isinstance(value, Mapping):
        return "\n".join(f"{heading(str(k))}: {cell_plain(v, str(k))}" for k, v in value.items())
    if isinstance(value, list):
        return "\n".join(cell_plain(v, column) for v in value)
    return str(value)


def table_html(data: Mapping[str, Any]) -> str:
    """The notebook's HTML of a table: every row, every value whole and wrapped."""
    columns = list(data.get("columns") or [])
    head = "".join(f"<th>{html.escape(heading(c))}</th>" for c in columns)
    body = "".join(
        "<tr>"
        + "".join(
            '<td style="white-space:pre-wrap;overflow-wrap:anywhere;text-align:left">'
            + html.escape(_cell(v, c))
            + "</td>"
            for c, v in zip(columns, row, strict=False)
        )
        + "</tr>"
        for row in data.get("rows") or []
    )
    return f'<table class="opslib-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def table_text(data: Mapping[str, Any]) -> str:
    """The plain-text form: one block per row, ``heading: value`` lines."""
    columns = list(data.get("columns") or [])
    rows = data.get("rows") or []
    if not rows:
        return " | ".join(heading(c) for c in columns) + "\n(none)"
    blocks = [
        "\n".join(f"{heading(c)}: {_cell(v, c)}" for c, v in zip(columns, row, strict=False)) for row in rows
    ]
    return "\n\n".join(blocks)


def _cell(value: Any, column: str) -> str:
    if column == "change" and value in WORDS:
        ja, en = WORDS[value]
        return f"{ja} / {en}"
    return cell_plain(value, column)


def show(rows: Any, columns: Sequence[str] | None = None) -> None:
    """Display a table in a notebook: whole (``text/html``, ``text/plain``) and as data (:data:`TABLE_MIME`)."""
    from IPython.display import display

    data = table_data(rows, columns)
    display({"text/html": table_html(data), "text/plain": table_text(data), TABLE_MIME: data}, raw=True)
