"""Kernels for the steps: one fresh kernel per step, the next one booting while the current step runs.

Kernels are reached over Unix sockets in a private folder (POSIX) rather than loopback TCP ports
(:func:`kernel_manager_options`), and import :data:`_PRELOAD` while they boot.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import shutil
from pathlib import Path
from typing import Any

KERNEL = "python3"
# What every step imports, loaded while the kernel boots (before the previous step has finished).
# The notebooks still import what they use themselves; this only makes those imports instant.
_PRELOAD = "import pandas, opslib, opslib.winrm, opslib.certs, opslib.evidence, opslib.iis, opslib.tls, opslib.server, opslib.ops"

_IPC_FOLDER: str | None = None
_KERNEL_NUMBER = itertools.count(1)


def kernel_manager_options() -> dict[str, Any]:
    """How kernels are reached: Unix sockets in a private folder (POSIX), not loopback TCP ports.

    jupyter_client picks free TCP ports and the kernel binds them a moment later; with other
    processes picking ports meanwhile, a kernel sometimes dies with "Address already in use". IPC
    sockets in a folder of our own cannot collide (and are not reachable by other local users).
    Windows has no IPC transport: there the default (TCP) stays.
    """
    global _IPC_FOLDER
    if os.name != "posix":
        return {}
    if _IPC_FOLDER is None:
        import tempfile

        _IPC_FOLDER = tempfile.mkdtemp(prefix="opslib-k-")  # 0700
        atexit.register(shutil.rmtree, _IPC_FOLDER, True)
    # One prefix per kernel: jupyter_client picks IPC "ports" by looking for existing socket files,
    # and a kernel started a moment ago may not have created its files yet.
    return {"transport": "ipc", "ip": os.path.join(_IPC_FOLDER, f"k{next(_KERNEL_NUMBER)}")}


class Kernels:
    """One fresh kernel per step; the next one is started while the current step runs.

    Starting a kernel returns at once; the kernel process boots (and imports :data:`_PRELOAD`) in
    parallel with the step running in the previous kernel, so the steps do not wait for it.
    """

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.ready: Any = None

    def __enter__(self) -> Kernels:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.ready is not None:
            self.stop(self.ready)
            self.ready = None

    def start(self) -> Any:
        from jupyter_client.manager import AsyncKernelManager
        from jupyter_core.utils import run_sync

        km = AsyncKernelManager(kernel_name=KERNEL, **kernel_manager_options())
        run_sync(km.start_kernel)(cwd=str(self.cwd), extra_arguments=[f"--IPKernelApp.exec_lines={_PRELOAD}"])
        return km

    def prestart(self) -> None:
        self.ready = self.start()

    def take(self) -> Any:
        km, self.ready = self.ready, None
        return km if km is not None else self.start()

    @staticmethod
    def stop(km: Any, *, graceful: bool = False) -> None:
        from jupyter_core.utils import run_sync

        with contextlib.suppress(Exception):  # already dead, or never started
            if run_sync(km.is_alive)():
                run_sync(km.shutdown_kernel)(now=not graceful)
        with contextlib.suppress(Exception):
            run_sync(km.cleanup_resources)()
