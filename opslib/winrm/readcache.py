"""Reads kept per connection until a command that may change the server runs (mixed into
:class:`opslib.winrm.Connection`).

Every command counts (:attr:`ReadCache.commands_run`); a command run outside :meth:`ReadCache.reading`
may have changed the server, so reads made before it are stale (:attr:`ReadCache.last_change`).
``opslib.server.remote.export_keys`` is the reader that uses it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


class ReadCache:
    """The read cache's state and verbs; :meth:`count_command` is called once per command run."""

    def init_read_cache(self) -> None:
        self.commands_run = 0
        self.last_change = 0
        self._reading = 0
        self.read_cache: dict[str, tuple[int, Any]] = {}

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Commands in this block only read the server (and clean up after themselves): they do not
        make earlier reads stale. Everything else does — the safe default for caching reads."""
        self._reading += 1
        try:
            yield
        finally:
            self._reading -= 1

    def count_command(self) -> None:
        """One more command ran; outside :meth:`reading` it may have changed the server."""
        self.commands_run += 1
        if not self._reading:
            self.last_change = self.commands_run  # earlier reads are stale

    def cached_read(self, key: str) -> tuple[bool, Any]:
        """(True, value) when ``key`` was read and no command outside :meth:`reading` ran since."""
        hit = self.read_cache.get(key)
        if hit is not None and hit[0] >= self.last_change:
            return True, hit[1]
        return False, None

    def remember_read(self, key: str, value: Any, *, started_at: int) -> None:
        """Keep a read made by the commands after ``started_at`` (a :attr:`commands_run` value)."""
        self.read_cache[key] = (started_at, value)
