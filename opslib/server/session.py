"""One server: its connection, what the probe found about it, and its IIS backend.

A notebook opens it in one line and closes it with the ``with`` block::

    with opslib.open_server(winrm, host=host, run_dir=run_dir) as server:
        ...

``server.conn`` is the transport :class:`~opslib.winrm.Connection`; ``server.capabilities`` is
probed once per run: on first use, kept on this object and written to ``capabilities.json`` in the
run folder, where the next step's :class:`Server` (another kernel, same run) reads it instead of
probing again — about 16 commands per step (``server.probe(refresh=True)`` probes again);
``server.iis`` is the backend :func:`opslib.iis.backend_for` chose from the probed IIS version (built
once, so the IIS 6 helper is uploaded once per server).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..iis import backend_for
from ..winrm import connect_params
from .probe import Capabilities, probe
from .regfile import parse_reg_export
from .remote import export_key

if TYPE_CHECKING:
    from ..iis import IISBackend
    from ..winrm import Connection

__all__ = ["Server", "open_server"]


class Server:
    """One connection and its probed facts (a context manager that closes the connection)."""

    def __init__(self, conn: Connection, *, capabilities_file: str | os.PathLike[str] | None = None) -> None:
        self.conn = conn
        self._capabilities: Capabilities | None = None
        self._iis: IISBackend | None = None
        self._cache = Path(capabilities_file) if capabilities_file else None

    @property
    def host(self) -> str:
        return str(getattr(self.conn, "host", "") or getattr(self.conn, "url", "") or "server")

    def probe(self, *, refresh: bool = False) -> Capabilities:
        """The server's capabilities: probed on first use (or with ``refresh``), then kept here."""
        if self._capabilities is None and not refresh:
            self._capabilities = self._cached()
        if self._capabilities is None or refresh:
            with self.conn.reading():  # the probes change nothing
                self._capabilities = probe(self.conn)
            self._iis = None
            self._remember(self._capabilities)
        return self._capabilities

    def _cached(self) -> Capabilities | None:
        """The capabilities an earlier step of this run probed (``None``: none, unreadable, or another
        server's, or written by a kit whose probe had other fields — then the probe runs again)."""
        if self._cache is None or not self._cache.is_file():
            return None
        try:
            data = json.loads(self._cache.read_text(encoding="utf-8"))
            if data.pop("url", None) != getattr(self.conn, "url", None):
                return None
            tuples = {f.name for f in dataclasses.fields(Capabilities) if "tuple" in str(f.type)}
            values: dict[str, Any] = {k: tuple(v) if k in tuples else v for k, v in data.items()}
            return Capabilities(**values)
        except (OSError, ValueError, TypeError):
            return None

    def _remember(self, caps: Capabilities) -> None:
        if self._cache is None or not self._cache.parent.is_dir():
            return
        data = {"url": getattr(self.conn, "url", None), **dataclasses.asdict(caps)}
        tmp = self._cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        tmp.replace(self._cache)

    @property
    def capabilities(self) -> Capabilities:
        return self.probe()

    @property
    def iis(self) -> IISBackend:
        """The IIS backend for this server; :class:`~opslib.errors.CapabilityMissing` when the kit has
        none for its IIS version (raised before anything changes)."""
        if self._iis is None:
            self._iis = backend_for(self.capabilities, self.conn, read_registry=self.read_registry)
        return self._iis

    def read_registry(self, key: str) -> dict[str, dict[str, tuple[str, Any]]] | None:
        """``reg export`` of ``key`` (with its subkeys), parsed; None when the key is absent. The IIS 7–10
        backend reads the HTTP.sys bindings with it (the iis package does not import this layer)."""
        data = export_key(self.conn, key, what=f"read {key}")
        return None if data is None else parse_reg_export(data)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Server({self.host!r})"


CAPABILITIES_FILE = "capabilities.json"


def open_server(
    winrm: dict[str, Any], *, host: str, run_dir: str = "", env: Mapping[str, str] | None = None
) -> Server:
    """Connect from the parameters file's ``winrm`` mapping (the password is a reference) and wrap
    the connection in a :class:`Server`. Nothing is probed until something needs it; with ``run_dir``
    the probe's answer is shared by every step of the run (``capabilities.json``)."""
    cache = Path(run_dir) / CAPABILITIES_FILE if run_dir else None
    return Server(connect_params(winrm, host=host, run_dir=run_dir, env=env), capabilities_file=cache)
