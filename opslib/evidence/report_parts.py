"""The report's HTML pieces: values (whole, wrapped, booleans as words, names as labels), tables,
two-column tables, outcome badges and times in UTC and JST. Used by :mod:`.report` (the summary) and
:mod:`.report_steps` (the steps' sections)."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, timedelta, timezone
from typing import Any

from .glossary import WORDS, Lang, bool_word, ordered, unchanged
from .manifest import parse_utc
from .verify import UNPROVEN

JST = timezone(timedelta(hours=9), "JST")  # Japan has no daylight saving time

OUTCOME_CLASS = {
    "passed": "ok",
    "ok": "ok",
    "failed": "ng",
    "not passed": "ng",
    "not run": "skip",
    "planned only": "warn",
    "pending": "warn",
    "changed": "warn",
    "size only": "warn",
    UNPROVEN: "warn",
}


def times(value: Any) -> str:
    """An ISO time as "YYYY-MM-DD HH:MM:SS UTC (… JST)"; "" when there is none."""
    moment = parse_utc(value)
    if moment is None:
        return ""
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%d %H:%M:%S} UTC ({utc.astimezone(JST):%Y-%m-%d %H:%M:%S} JST)"


class Markup(str):
    """A value that is HTML already (a glossary word): put on the page as it is."""


def value_html(value: Any, t: Lang | None = None, field: str | None = None) -> str:
    """One value as (escaped) HTML: nested mappings and lists of mappings become tables with labelled
    headings, booleans become words, nothing is shortened."""
    if isinstance(value, Markup):
        return str(value)
    if isinstance(value, bool):
        word = bool_word(field, value)
        return t.word(word) if t is not None else html.escape(" / ".join(WORDS[word]))
    if isinstance(value, Mapping):
        pairs = "".join(f"<tr><th>{_name(t, str(k))}</th>{td(v, t, str(k))}</tr>" for k, v in value.items())
        return f'<table class="kv inner"><tbody>{pairs}</tbody></table>'
    if isinstance(value, list):
        if value and all(isinstance(v, Mapping) for v in value):
            columns = ordered(list(dict.fromkeys(str(k) for v in value for k in v)))
            rows = [[v.get(c) for c in columns] for v in value]
            if t is not None and {"before", "after"} <= set(columns):  # a plan: changed or unchanged
                columns.append("change")
                for row, v in zip(rows, value, strict=True):
                    row.append(
                        Markup(
                            t.word("unchanged" if unchanged(v.get("before"), v.get("after")) else "changed")
                        )
                    )
            return table([_name(t, c) for c in columns], rows, t=t, fields=columns, inner=True)
        return "<br>".join(value_html(v, t, field) for v in value)
    if value is None:
        return ""
    return html.escape(str(value))


def _name(t: Lang | None, name: str) -> str:
    return t.field(name) if t is not None else html.escape(name)


def td(value: Any, t: Lang | None = None, field: str | None = None) -> str:
    text = value if isinstance(value, str) else ""
    mono = (text and " " not in text and len(text) >= 16) or "\\" in text  # thumbprints, keys, paths
    return (
        f'<td class="mono">{value_html(value, t, field)}</td>'
        if mono
        else f"<td>{value_html(value, t, field)}</td>"
    )


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    t: Lang | None = None,
    fields: Sequence[str] | None = None,
    inner: bool = False,
) -> str:
    """A table whose ``headers`` are HTML already; ``fields``: the column names (for booleans' words)."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    names: list[str | None] = list(fields) if fields else [None] * len(headers)
    body = "".join(
        "<tr>" + "".join(td(v, t, f) for v, f in zip(row, names, strict=False)) + "</tr>" for row in rows
    )
    opening = '<table class="inner">' if inner else "<table>"
    return f"{opening}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def kv(rows: Iterable[tuple[str, str]]) -> str:
    """A two-column table whose values are HTML already."""
    body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="kv"><tbody>{body}</tbody></table>'


def badge(t: Lang, outcome: str) -> str:
    return f'<span class="badge {OUTCOME_CLASS.get(outcome, "")}">{t.word(outcome)}</span>'
