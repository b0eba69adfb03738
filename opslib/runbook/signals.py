"""Deferred signals: a step that changes the server is never cut in the middle by the operator's console.

While the runner is inside such a step (above all step 2, the production swap, which runs as one
transaction on the server), SIGINT (Ctrl-C), SIGHUP (the SSH session or terminal closed) and SIGTERM
are *recorded* instead of acted on: the first one prints one line saying what the runner waits for;
when the step's notebook has finished (its server-side transaction has ended) :meth:`DeferredSignals.check`
raises :class:`Interrupted`, and the runner finalizes ``run.json`` as ``interrupted`` and prints the
next command to type.

The kernels are not hit by these signals: jupyter_client starts each kernel in a new session
(``start_new_session=True`` in ``jupyter_client.launcher.launch_kernel``,
https://github.com/jupyter/jupyter_client/blob/main/jupyter_client/launcher.py), so a Ctrl-C or a
hang-up of the operator's terminal reaches the runner only.

Python runs signal handlers in the main thread only (https://docs.python.org/3/library/signal.html,
"Signals and threads"); elsewhere (a runner driven from a worker thread, e.g. a notebook) this is a
no-op and the default behaviour stays.
"""

from __future__ import annotations

import signal
import sys
import threading
from os import PathLike
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import OpsError

if TYPE_CHECKING:
    from .steps import Step

__all__ = ["DEFERRED", "DeferredSignals", "Interrupted", "guard_for", "next_command", "signal_name"]

DEFERRED: tuple[int, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGHUP", "SIGTERM") if hasattr(signal, name)
)
# The shell's convention for "ended by signal N": exit status 128 + N (SIGINT → 130).
_SIGNAL_EXIT_BASE = 128


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class Interrupted(OpsError):
    """The operator (or the system) asked the run to stop; it stopped at a safe point."""

    def __init__(self, signum: int, *, where: str = "", hint: str = "") -> None:
        super().__init__(f"interrupted by {signal_name(signum)}", hint=hint, where=where)
        self.signum = signum
        self.exit_code = _SIGNAL_EXIT_BASE + signum


class DeferredSignals:
    """``with DeferredSignals(message): ...`` — record SIGINT/SIGHUP/SIGTERM, act on them afterwards.

    ``received`` is the first signal number seen (None: none). ``message`` is printed once, on the
    first signal. Leaving the block restores the previous handlers; it does not raise by itself —
    call :meth:`check` at the safe point after the block.
    """

    def __init__(
        self, message: str, *, stream: TextIO | None = None, signals: tuple[int, ...] = DEFERRED
    ) -> None:
        self.message = message
        self.stream = stream
        self.signals = signals
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
            out = self.stream or sys.stderr
            try:
                print(f"opslib: {signal_name(signum)}: {self.message}", file=out, flush=True)
            except (OSError, ValueError):
                pass  # the terminal is gone (SIGHUP): the evidence still says what happened

    def __enter__(self) -> DeferredSignals:
        if threading.current_thread() is not threading.main_thread():
            return self
        for signum in self.signals:
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except (OSError, ValueError):
                continue
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for signum, previous in self._previous.items():
            try:
                signal.signal(signum, previous)
            except (OSError, ValueError):
                pass
        self._previous.clear()

    def check(self, *, where: str = "", hint: str = "") -> None:
        """Raise :class:`Interrupted` when a signal arrived inside the block."""
        if self.received is not None:
            raise Interrupted(self.received, where=where, hint=hint)


def waiting_message(step_name: str, *, swap: bool) -> str:
    """The one line printed on the first deferred signal."""
    if swap:
        return (
            "interrupt received — waiting for the production swap to finish on the server; "
            "it restores itself if it fails"
        )
    return f"interrupt received — waiting for step {step_name} to finish on the server, then stopping"


class _Unguarded:
    """A step that changes nothing: signals keep their default behaviour."""

    received: int | None = None

    def __enter__(self) -> _Unguarded:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def check(self, *, where: str = "", hint: str = "") -> None:
        return None


def guard_for(step: Step, *, dry_run: bool) -> DeferredSignals | _Unguarded:
    """Deferred signals for a step that changes the server (not in a dry run); else nothing."""
    if dry_run or not (step.changes_server or step.needs_confirmation):
        return _Unguarded()
    return DeferredSignals(waiting_message(step.name, swap=step.writes_rollback_before))


def next_command(run_dir: str | PathLike[str]) -> str:
    """What to type after an interrupted run."""
    text = f"the run stopped cleanly; continue with: opslib resume {run_dir}"
    undo = Path(run_dir) / "rollback.yaml"
    return f"{text} (or put the previous certificate back: opslib run {undo})" if undo.is_file() else text
