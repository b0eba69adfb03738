"""Command line: argument parsing and all console printing; every command calls one verb of the library.

Exit codes: 0 success, 1 the operation failed (message says what and where), 2 bad usage/parameters.

``parser`` builds the argument parser (without importing the emulator or anything heavy); one module per
command group holds its handler and console text: ``runs`` (run, resume, rollback), ``inspect``,
``evidence`` (list, show, verify, report), ``rehearse`` (serve, fleet, demo), ``lab`` (capture, compare),
``fleet`` (plan; run and record in ``fleet_run``). A handler's module is imported when its command runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from ..credentials import redact
from ..errors import OpsError
from ..text import escape_lines
from .parser import build as _parser


def _run(a: argparse.Namespace) -> int:
    from .runs import run

    return run(a)


def _request(a: argparse.Namespace) -> int:
    from .runs import request

    return request(a)


def _resume(a: argparse.Namespace) -> int:
    from .runs import resume

    return resume(a)


def _rollback(a: argparse.Namespace) -> int:
    from .runs import rollback

    return rollback(a)


def _inspect(a: argparse.Namespace) -> int:
    from .inspect import command

    return command(a)


def _evidence(a: argparse.Namespace) -> int:
    from .evidence import command

    return command(a)


def _rehearse(a: argparse.Namespace) -> int:
    from .rehearse import command

    return command(a)


def _fleet(a: argparse.Namespace) -> int:
    if a.fleet_command == "host-params":  # the Ansible role's
        from .fleet_ansible import host_params

        return host_params(a)
    from .fleet import command

    return command(a)


def _lab(a: argparse.Namespace) -> int:
    from .lab import command

    return command(a)


def _calendar(a: argparse.Namespace) -> int:
    from .calendar import command

    return command(a)


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": _run,
    "request": _request,
    "resume": _resume,
    "rollback": _rollback,
    "inspect": _inspect,
    "evidence": _evidence,
    "rehearse": _rehearse,
    "lab": _lab,
    "fleet": _fleet,
    "calendar": _calendar,
}


def _show_cell_detail() -> None:
    """``--verbose``: papermill's cell-by-cell log (its progress bar is switched on by the runner)."""
    import logging

    logger = logging.getLogger("papermill")
    if not any(getattr(h, "_opslib", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("papermill: %(message)s"))
        handler._opslib = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if getattr(args, "verbose", False):
        _show_cell_detail()
    try:
        return _COMMANDS[args.command](args)
    except OpsError as exc:
        # Certificate, server and file-name text reaches the terminal escaped (opslib.text.escape_lines).
        print(f"opslib: error: {escape_lines(redact(str(exc)))}", file=sys.stderr)
        # After a failed run: what production serves now, what changed, the exact next command.
        for line in getattr(exc, "recovery", ()):
            print(escape_lines(redact(line)), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("opslib: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`opslib evidence show RUN | head`): no traceback; what is left of the output
        # goes nowhere, and the exit status is a SIGPIPE-killed process's, as for other shell tools.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + 13


__all__ = ["main"]
