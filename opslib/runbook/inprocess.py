"""A papermill engine that runs a notebook's code cells in one IPython shell of this process.

Registered in papermill's own registry (``papermill.engines.papermill_engines``) as
:data:`PAPERMILL_ENGINE` by :func:`register`; the ``inprocess`` step engine (:mod:`.engines`) calls
``papermill.execute_notebook(..., engine_name=PAPERMILL_ENGINE)``, so parameter injection, the
executed ``.ipynb``, papermill's cell metadata, its error cells and ``PapermillExecutionError`` (naming
the failing cell) are papermill's own. What a kernel would send, this writes as nbformat outputs:

* ``stream`` — what the cell writes to ``sys.stdout`` / ``sys.stderr`` (consecutive writes to one
  stream make one output, as a kernel's buffered stream does);
* ``display_data`` — every MIME type IPython's display formatter produced (``text/html`` tables, the
  kit's facts ``application/vnd.opslib.facts+json``), through the shell's display publisher;
* ``execute_result`` — the value of a cell's last expression, through the shell's display hook;
* ``error`` — ``ename`` / ``evalue`` / ``traceback`` as ipykernel sends them; the cell is marked failed
  (papermill's ``cell_exception``) and the notebook stops there, as ``NBClientEngine`` does.

``input()`` and ``getpass()`` are refused as in papermill's kernels (no stdin channel).

The shell is IPython's singleton (``IPython.display.display`` publishes through it), reset at the start
of every notebook. After a failed cell this does what stopping a failed step's kernel does: the
kernel's ``atexit`` handlers close the :class:`opslib.winrm.Connection` objects the notebook left open
(the same remote effect: the shell deleted, the HTTP session closed; the run's shared temp folder
stays for :meth:`~opslib.winrm.Connection.finish_run`); then the namespace is dropped.

There is no cell timeout here (the cells run on the caller's thread).
"""

from __future__ import annotations

import builtins
import contextlib
import getpass
import json
import platform
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from ..winrm import Connection, open_connections

PAPERMILL_ENGINE = "opslib-inprocess"

# What ipykernel reports as the notebook's language (nbconvert picks its lexer from it).
LANGUAGE_INFO = {
    "codemirror_mode": {"name": "ipython", "version": 3},
    "file_extension": ".py",
    "mimetype": "text/x-python",
    "name": "python",
    "nbconvert_exporter": "python",
    "pygments_lexer": "ipython3",
    "version": platform.python_version(),
}

_REGISTERED: list[type] = []


def register() -> str:
    """Register the engine with papermill (once); returns its name for ``engine_name=``."""
    if not _REGISTERED:
        from papermill.engines import papermill_engines

        engine = _engine_class()
        papermill_engines.register(PAPERMILL_ENGINE, engine)
        _REGISTERED.append(engine)
    return PAPERMILL_ENGINE


def close_left_open(before: list[Connection]) -> None:
    """What a failed step's kernel does as it exits: ``atexit`` closes each connection it opened and
    left open (:func:`opslib.winrm.open_connections`: held by that registration, as in a kernel; not a
    scan of every object in the process, which cost 0.1 s per notebook in a test worker)."""
    known = {id(c) for c in before}
    for conn in open_connections():
        if id(conn) not in known:
            conn.close()


def _reset(shell: Any, *, new_session: bool) -> None:
    """``shell.reset`` without its output-cache flush, which ends in a full ``gc.collect()`` (IPython's own
    comment: "Is this really needed?"): two per notebook, 0.1–0.3 s of CPU each in a test worker's heap.
    Nothing is lost: the shell's own display hook never holds a result here (each cell's ``ResultHook``
    does, and goes with the cell), and ``reset`` itself clears the namespaces and the output history; the
    notebook's objects are freed by reference counting now, and any cycles by the collector later."""
    hook = shell.displayhook
    full, hook.do_full_cache = hook.do_full_cache, False
    try:
        shell.reset(new_session=new_session)
    finally:
        hook.do_full_cache = full


def _timestamp() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _json_plain(data: dict[str, Any]) -> dict[str, Any]:
    """Display data as it arrives from a kernel: through the Jupyter message JSON (dates as ISO text)."""
    from jupyter_client.jsonutil import json_default

    return dict(json.loads(json.dumps(data, default=json_default)))


@contextlib.contextmanager
def _as_in_a_kernel() -> Iterator[None]:
    """Library settings that differ in a kernel: pandas shows up to 20 columns there (wrapped at
    ``display.width``), but fits a frame to the terminal (``display.max_columns`` 0) elsewhere."""
    import pandas as pd

    if pd.get_option("display.max_columns") != 0:
        yield
        return
    with pd.option_context("display.max_columns", 20):
        yield


def _engine_class() -> type:
    """The papermill engine (built on first use: papermill and IPython load slowly)."""
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.error import StdinNotImplementedError
    from IPython.core.interactiveshell import InteractiveShell
    from nbformat.v4 import new_output
    from papermill.engines import Engine
    from papermill.log import logger
    from traitlets.config import Config

    class Outputs:
        """One cell's outputs, in the order the cell produced them."""

        def __init__(self, cell: Any, *, log_output: bool) -> None:
            self.cell = cell
            self.log_output = log_output

        def stream(self, name: str, text: str) -> None:
            if not text:
                return
            last = self.cell.outputs[-1] if self.cell.outputs else None
            if last is not None and last.output_type == "stream" and last.name == name:
                last.text += text
            else:
                self.cell.outputs.append(new_output("stream", name=name, text=text))
            if self.log_output:
                (logger.info if name == "stdout" else logger.warning)(text)

        def rich(
            self, output_type: str, data: dict[str, Any], metadata: dict[str, Any] | None, **more: Any
        ) -> None:
            out = new_output(
                output_type, data=_json_plain(data), metadata=_json_plain(metadata or {}), **more
            )
            self.cell.outputs.append(out)
            if self.log_output and "text/plain" in out.data:
                logger.info(out.data["text/plain"])

        def error(self, etype: type[BaseException], evalue: BaseException, stb: list[str]) -> None:
            sys.stdout.flush()
            sys.stderr.flush()
            self.cell.outputs.append(
                new_output("error", ename=str(etype.__name__), evalue=str(evalue), traceback=list(stb))
            )

    class Stream:
        """``sys.stdout`` / ``sys.stderr`` while a cell runs."""

        encoding = "utf-8"

        def __init__(self, outputs: Outputs, name: str) -> None:
            self.outputs, self.name = outputs, name

        def write(self, text: str) -> int:
            self.outputs.stream(self.name, str(text))
            return len(text)

        def writelines(self, lines: list[str]) -> None:
            for line in lines:
                self.write(line)

        def flush(self) -> None:
            pass

        def isatty(self) -> bool:
            return False

    class Publisher(DisplayPublisher):  # type: ignore[misc]
        """``display(...)``: one ``display_data`` output with every MIME type formatted."""

        def __init__(self, outputs: Outputs, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.outputs = outputs

        def publish(self, data: Any, metadata: Any = None, *args: Any, **kwargs: Any) -> None:
            self.outputs.rich("display_data", data, metadata)

        def clear_output(self, wait: bool = False) -> None:
            self.outputs.cell.outputs.clear()

    class ResultHook(DisplayHook):  # type: ignore[misc]
        """A cell's last expression: one ``execute_result`` output (no ``Out[n]:`` text)."""

        def __init__(self, outputs: Outputs, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.outputs = outputs

        def write_output_prompt(self) -> None:
            pass

        def write_format_data(self, format_dict: Any, md_dict: Any = None) -> None:
            self.outputs.rich(
                "execute_result", format_dict, md_dict, execution_count=self.outputs.cell.execution_count
            )

        def finish_displayhook(self) -> None:
            pass

    def no_stdin(prompt: object = "", stream: Any = None) -> str:
        """``input()`` / ``getpass()`` in a cell: refused as ipykernel refuses them without a stdin channel."""
        raise StdinNotImplementedError(
            "raw_input was called, but this frontend does not support input requests."
        )

    def run_cell(shell: Any, cell: Any, *, log_output: bool) -> bool:
        """One code cell, its outputs written into ``cell``; True when it raised nothing."""
        cell.outputs = []
        cell.execution_count = shell.execution_count
        timing = cell.metadata.setdefault("execution", {})
        timing["iopub.status.busy"] = timing["iopub.execute_input"] = _timestamp()
        outputs = Outputs(cell, log_output=log_output)
        hook = ResultHook(outputs, shell=shell, cache_size=shell.cache_size)
        saved = (sys.stdout, sys.stderr, shell.display_pub, shell.displayhook, shell.display_trap.hook)
        sys.stdout, sys.stderr = Stream(outputs, "stdout"), Stream(outputs, "stderr")
        shell.display_pub, shell.displayhook, shell.display_trap.hook = (
            Publisher(outputs, shell=shell),
            hook,
            hook,
        )
        shell._showtraceback = outputs.error  # ipykernel's hook: the traceback as an error message
        asking = (builtins.input, getpass.getpass)
        builtins.input = getpass.getpass = no_stdin  # type: ignore[assignment]  # papermill's kernels: no stdin
        try:
            result = shell.run_cell(cell.source, store_history=True)
        finally:
            sys.stdout, sys.stderr, shell.display_pub, shell.displayhook, shell.display_trap.hook = saved
            builtins.input, getpass.getpass = asking
            del shell._showtraceback
        timing["shell.execute_reply"] = timing["iopub.status.idle"] = _timestamp()
        return bool(result.success)

    def run_cells(shell: Any, nb_man: Any, *, log_output: bool) -> bool:
        """The notebook's cells in order, as ``PapermillNotebookClient.papermill_execute_cells`` does
        (papermill's cell metadata, saved per cell); stops at the first error. True when none failed."""
        for index, cell in enumerate(nb_man.nb.cells):
            ok = True
            try:
                nb_man.cell_start(cell, index)
                if cell.cell_type == "code" and cell.source.strip():
                    ok = run_cell(shell, cell, log_output=log_output)
                    if not ok:
                        nb_man.cell_exception(nb_man.nb.cells[index], cell_index=index)
            finally:
                nb_man.cell_complete(nb_man.nb.cells[index], cell_index=index)
            if not ok:
                return False
        return True

    class InProcessNotebookEngine(Engine):  # type: ignore[misc]
        """papermill's engine for :mod:`opslib.runbook.inprocess` (as ``NBClientEngine``, in this process)."""

        @classmethod
        def execute_managed_notebook(
            cls, nb_man: Any, kernel_name: str, log_output: bool = False, **kwargs: Any
        ) -> Any:
            if not InteractiveShell.initialized():  # no history file: nothing of a run is kept on disk
                InteractiveShell.instance(config=Config({"HistoryManager": {"enabled": False}}))
            shell = InteractiveShell.instance()
            _reset(shell, new_session=True)  # as a fresh kernel: an empty namespace, the first cell is [1]
            before = open_connections()
            failed = True  # until every cell has run without an error
            try:
                with _as_in_a_kernel():
                    failed = not run_cells(shell, nb_man, log_output=log_output)
            finally:
                nb_man.nb.metadata["language_info"] = dict(LANGUAGE_INFO)
                if failed:  # also when the runner itself was stopped meanwhile
                    close_left_open(before)  # as the failed step's kernel exits
                _reset(shell, new_session=False)  # drop the notebook's objects now
                # The last traceback's frames hold the notebook's objects too.
                sys.last_type = sys.last_value = sys.last_traceback = None
                with contextlib.suppress(AttributeError):  # Python 3.12+
                    delattr(sys, "last_exc")
            return nb_man.nb

    return InProcessNotebookEngine
