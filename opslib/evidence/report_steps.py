"""The report's step sections: each step notebook's prose and tables in cell order, from what it
recorded as data — the tables of :func:`.tables.show` (:data:`.tables.TABLE_MIME`) and the facts of
:func:`.folder.record` — with no code, no parameters cell and no traceback (a failure reads as the
step's ``where: problem — hint``). A notebook from before :data:`.tables.TABLE_MIME` existed has only
pandas' HTML: its tables are re-rendered from their cell text, and one that pandas shortened is
replaced by a note pointing at the recorded facts.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Mapping
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from .glossary import Lang
from .manifest import FACTS_MIME
from .report_parts import Markup, badge, kv, table, value_html
from .tables import TABLE_MIME

SKIP_TAGS = {"parameters", "injected-parameters", "papermill-error-cell-tag"}


class _Tables(HTMLParser):
    """The tables of a ``text/html`` output as rows of (is header, text); everything else is dropped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[list[list[tuple[bool, str]]]] = []
        self._cell: list[str] | None = None
        self._header = False
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script"):
            self._skip += 1
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th") and self.tables and self.tables[-1]:
            self._cell, self._header = [], tag == "th"

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script"):
            self._skip = max(0, self._skip - 1)
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append((self._header, " ".join("".join(self._cell).split())))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None and not self._skip:
            self._cell.append(data)


def _is_cut(text: str) -> bool:
    return text.endswith("...") or "…" in text


def _old_output_table(markup: str, t: Lang) -> str:
    """An older notebook's pandas ``text/html`` re-rendered from its cell text (its markup is dropped)."""
    parser = _Tables()
    parser.feed(markup)
    out = []
    for rows in parser.tables:
        rows = [r for r in rows if r]
        if not rows:
            continue
        if any(_is_cut(text) for row in rows for _, text in row):
            out.append(f'<p class="note">{t("cut")}</p>')
            continue
        head, body = rows[0], rows[1:]
        index = not head[0][1] and all(r and r[0][0] for r in body)  # pandas' row index: drop it
        cut = 1 if index else 0
        names = [text for _, text in head[cut:]]
        out.append(
            table(
                [t.field(n) for n in names], [[text for _, text in r[cut:]] for r in body], t=t, fields=names
            )
        )
    return "".join(out)


def data_table(data: Any, t: Lang) -> str:
    """A table recorded by :func:`.tables.show`: labelled headings, every row, every value whole."""
    doc = json.loads(data) if isinstance(data, str) else data
    if not isinstance(doc, Mapping):
        return ""
    columns = [str(c) for c in doc.get("columns") or []]
    rows = [list(r) for r in doc.get("rows") or []]
    if not rows:
        headers = "".join(f"<th>{t.field(c)}</th>" for c in columns)
        return f'<table><thead><tr>{headers}</tr></thead></table><p class="note">{t("empty")}</p>'
    if "change" in columns:  # the word, not its key
        at = columns.index("change")
        rows = [[*r[:at], Markup(t.word(str(r[at]))), *r[at + 1 :]] for r in rows]
    return table([t.field(c) for c in columns], rows, t=t, fields=columns)


def _markdown(source: str) -> str:
    import mistune

    render = mistune.create_markdown(escape=True, plugins=["table", "strikethrough"])
    return f'<div class="prose">{render(source)}</div>'


def _facts_table(value: Any, t: Lang) -> str:
    data = json.loads(value) if isinstance(value, str) else value
    if not isinstance(data, Mapping):
        return ""
    return kv((t.field(str(k)), value_html(v, t, str(k))) for k, v in data.items())


def _title(nb: Any, step: Mapping[str, Any]) -> tuple[str, int]:
    """The step's title — the run's record of it, else its notebook's first heading without "Step N —"
    — and the index of the markdown cell that heading came from (-1: none)."""
    for index, cell in enumerate(nb.cells if nb is not None else []):
        if set(cell.get("metadata", {}).get("tags", [])) & SKIP_TAGS:
            continue
        if cell.cell_type == "markdown":
            first = cell.source.lstrip().splitlines()[0] if cell.source.strip() else ""
            if first.startswith("# "):
                heading = re.sub(r"^Step \w+ — ", "", first[2:].strip())
                return str(step.get("title") or heading), index
            break
    return str(step.get("title") or step.get("name")), -1


def _outputs_html(outputs: list[Any], t: Lang) -> list[str]:
    parts: list[str] = []
    has_data = any({FACTS_MIME, TABLE_MIME} & set(o.get("data") or {}) for o in outputs)
    for o in outputs:
        data = o.get("data") or {}
        if FACTS_MIME in data:
            parts.append(f"<h3>{t('facts')}</h3>{_facts_table(data[FACTS_MIME], t)}")
        elif TABLE_MIME in data:
            parts.append(data_table(data[TABLE_MIME], t))
        elif "text/html" in data and not has_data:
            parts.append(_old_output_table(str(data["text/html"]), t))
        elif "image/png" in data:
            png = base64.b64decode(str(data["image/png"]))  # re-encoded: only base64 reaches the page
            parts.append(f'<img alt="" src="data:image/png;base64,{base64.b64encode(png).decode()}">')
        elif o.get("output_type") == "stream" and o.get("name") == "stdout":
            parts.append(f'<pre class="out">{html.escape(str(o.get("text", "")))}</pre>')
    return parts


def step_html(t: Lang, run_dir: Path, step: Mapping[str, Any], *, detail: str = "") -> str:
    """One step: its prose and tables in cell order; a failure as its message (and ``detail``, the
    failed check's detail as HTML), then nothing more; no code, no traceback."""
    import nbformat

    name = str(step.get("name"))
    status = str(step.get("status") or "not run")
    took = step.get("duration_s")
    path = run_dir / str(step.get("notebook") or f"{name}.ipynb")
    nb = nbformat.read(str(path), as_version=4) if path.exists() else None
    title, heading_cell = _title(nb, step)
    head = (
        f'<section class="step" id="step-{html.escape(name)}"><h2>{html.escape(name.split("_")[0])} — {t.split(title)}</h2>'
        f"<p>{t('result')}: {badge(t, {'succeeded': 'passed'}.get(status, status))}"
        + (f" · {t('duration')}: {took:.1f} s" if isinstance(took, int | float) else "")
        + "</p>"
    )
    failure = (
        f'<div class="failure"><strong>{t("failed_here")}</strong><br>{html.escape(str(step.get("error") or ""))}'
        + (f"<br>{detail}" if detail else "")
    )
    if nb is None:
        if status == "failed":
            return head + failure + "</div></section>"
        note = "" if status == "succeeded" else f'<p class="note">{t("not_run_step")}</p>'
        return head + note + "</section>"
    parts: list[str] = []
    for index, cell in enumerate(nb.cells):
        tags = set(cell.get("metadata", {}).get("tags", []))
        if tags & SKIP_TAGS:
            continue
        if cell.cell_type == "markdown":  # the heading is the section's title already
            source = cell.source.lstrip().partition("\n")[2] if index == heading_cell else cell.source
            parts.append(_markdown(source))
            continue
        if cell.cell_type != "code":
            continue
        outputs = cell.get("outputs", [])
        if any(o.get("output_type") == "error" for o in outputs):
            parts.extend(_outputs_html([o for o in outputs if o.get("output_type") != "error"], t))
            parts.append(f"{failure}<br>{t('rest_not_run')}</div>")
            break
        parts.extend(_outputs_html(outputs, t))
    else:
        if status == "failed":  # failed outside a cell (the kernel died, a timeout)
            parts.append(failure + "</div>")
    return head + "".join(parts) + "</section>"
