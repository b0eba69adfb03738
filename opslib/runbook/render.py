"""What the runner does to an executed notebook: mask registered secrets, render it to HTML.

Renders run in one background thread (in step order) while the next kernel starts; the runner
waits for them before it finalizes the evidence.
"""

from __future__ import annotations

import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .. import credentials

_EXPORTER: Any = None
_POOL: ThreadPoolExecutor | None = None


def redact_notebook(path: Path) -> int:
    """Mask any registered secret in an executed notebook (defence in depth); returns how many cells changed."""
    if not path.exists() or not credentials.registered():
        return 0
    text = path.read_text(encoding="utf-8")
    clean = credentials.redact(text)
    if clean == text:
        return 0
    path.write_text(clean, encoding="utf-8")
    return max(1, clean.count(credentials.MASK) - text.count(credentials.MASK))


def render_later(notebook: Path, html: Path) -> Future[None]:
    """Render ``notebook`` to ``html`` in the background (one worker: in order, beside the kernels)."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opslib-render")
    return _POOL.submit(render, notebook, html)


def render(notebook: Path, html: Path) -> None:
    """nbconvert's HTML of an executed notebook, secrets masked; a render failure is written as a note."""
    if not notebook.exists():
        return
    html.parent.mkdir(exist_ok=True)
    try:
        with warnings.catch_warnings():  # the facts MIME type has no HTML form; the table beside it does
            warnings.filterwarnings("ignore", message=".*is not able to be represented", category=UserWarning)
            body = _exporter().from_filename(str(notebook))[0]
    except Exception as exc:  # a render failure must not hide the step's own result
        body = f"<p>nbconvert could not render {notebook.name}: {type(exc).__name__}</p>"
    html.write_text(credentials.redact(body), encoding="utf-8")


def _exporter() -> Any:
    global _EXPORTER
    if _EXPORTER is None:
        from nbconvert import HTMLExporter

        _EXPORTER = HTMLExporter()
    return _EXPORTER
