"""The remote temp folder of a connection, and what a run's connections share (``connection.json``).

:class:`RunFolder` is mixed into :class:`~opslib.winrm.shell.Connection` (which provides the members
declared below): the temp folder under the remote %TEMP% (the connection's, or with a ``state_file`` the
run's one folder, shared by its connections and removed by :meth:`RunFolder.finish_run`), the folders a
resumed run or an earlier connection left, and the state file itself.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import VerificationFailed
from .quoting import Raw
from .transcript import (
    CREATE_TEMP,
    REMOVE_STALE_TEMP,
    REMOVE_TEMP,
    CommandResult,
    Transcript,
    stale_temp_dirs,
)

REMOVE_INHERITED_TEMP = "remove a temp folder the resumed run left (rmdir /s /q) and check it is gone"


class RunFolder:
    """The temp folder and the run's shared state for :class:`~opslib.winrm.shell.Connection`."""

    url: str
    host: str
    _temp_dir: str | None
    _system_root: str | None = None  # %SystemRoot%, once read (or known from connection.json)
    _state_file: Path | None
    _transcript: Transcript | None

    if TYPE_CHECKING:

        def run(
            self,
            argv: Sequence[str],
            *,
            timeout_s: float = 60,
            check: bool = True,
            what: str = "",
            names: Sequence[str] | None = None,
        ) -> CommandResult: ...

        def remove_folder(self, folder: str, *, what: str) -> bool: ...

    # --- temp folder ---
    @property
    def temp_dir(self) -> str:
        """A folder under the remote %TEMP%, created on first use: this connection's (removed at close),
        or with a ``state_file`` the run's (shared by its connections, removed by :meth:`finish_run`)."""
        if self._temp_dir is None:
            shared = self.run_state().get("work_dir")
            if isinstance(shared, str) and shared:
                self._temp_dir = shared  # created by an earlier connection of this run; not removed at close
                return shared
            # `echo %TEMP%` prints the logon's temp folder (the kit's own command; docs/windows-behaviour.md W-CMD-LINE-8191).
            result = self.run(["echo", Raw("%TEMP%")], what="find the remote temp folder", timeout_s=30)
            base = result.stdout_text.strip().splitlines()[-1].strip() if result.stdout.strip() else ""
            if not re.match(r"^[A-Za-z]:\\", base) or "%" in base:
                raise VerificationFailed(self.host, f"the remote %TEMP% is not a usable folder ({base!r})")
            folder = f"{base}\\opslib-{uuid.uuid4().hex[:12]}"
            # mkdir: https://learn.microsoft.com/en-us/windows-server/administration/windows-commands/mkdir
            self.run(
                ["mkdir", folder],
                what=CREATE_TEMP,
                timeout_s=30,
                names=["mkdir", "temp folder"],
            )
            self._temp_dir = folder
            if self._state_file is not None:
                self._save_state(work_dir=folder, uploaded={})
        return self._temp_dir

    @property
    def system_root(self) -> str:
        """The remote Windows folder (``echo %SystemRoot%``, W-ECHO-SYSTEMROOT), read once per run: with a
        ``state_file`` it is kept in ``connection.json`` (``system_root``) for the run's later connections,
        as the code page is — a server's Windows folder is where Windows was installed and does not move
        while a run lasts. Raises :class:`VerificationFailed` when the answer is not a usable folder."""
        if self._system_root is None:
            known = self.run_state().get("system_root")
            if isinstance(known, str) and re.match(r"^[A-Za-z]:\\", known) and "%" not in known:
                self._system_root = known
                return known
            result = self.run(["echo", Raw("%SystemRoot%")], what="find the Windows folder", timeout_s=30)
            root = result.stdout_text.strip()
            if not root or "%" in root or not root[1:3] == ":\\":
                raise VerificationFailed(
                    self.host, f"the remote %SystemRoot% is not a usable folder ({root!r})"
                )
            self._system_root = root.rstrip("\\")
            self._save_state(system_root=self._system_root)
        return self._system_root

    @property
    def shares_temp_dir(self) -> bool:
        """True when the temp folder is the run's (kept at close for the run's next connection)."""
        return self._temp_dir is not None and self._temp_dir == self.run_state().get("work_dir")

    def finish_run(self) -> bool:
        """Remove the run's shared temp folder (``rmdir /s /q`` + read-back) and forget it; True when
        it is gone (or there was none). What stays is in :attr:`remote_left` and the transcript."""
        folder = self.run_state().get("work_dir")
        if not isinstance(folder, str) or not folder:
            return True
        gone = self.remove_folder(folder, what=REMOVE_TEMP)
        if gone:
            self._save_state(work_dir="", uploaded={})
            if self._temp_dir == folder:
                self._temp_dir = None
        return gone

    def remove_inherited(self) -> list[str]:
        """Remove the temp folders the run this one resumes left on the server (``connection.json``
        ``inherited_folders``, written by the runner), each read back; returns the ones that stay (kept
        in the list, so the run's summary names them). Called once the server's lock is held: the
        resumed run is over (its lock was taken over), so nothing uses them."""
        inherited = [f for f in self.run_state().get("inherited_folders") or [] if isinstance(f, str) and f]
        if not inherited:
            return []
        left = [f for f in inherited if not self.remove_folder(f, what=REMOVE_INHERITED_TEMP)]
        self._save_state(inherited_folders=left)
        return left

    # --- what the run's earlier connections learnt (state_file) ---
    def run_state(self) -> dict[str, Any]:
        """What earlier connections of this run to this URL recorded ({} without a state file)."""
        if self._state_file is None or not self._state_file.is_file():
            return {}
        try:
            data = json.loads(self._state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) and data.get("url") == self.url else {}

    def _save_state(self, **fields: Any) -> None:
        if self._state_file is None or not self._state_file.parent.is_dir():
            return
        data = {**self.run_state(), **fields, "url": self.url}
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        tmp.replace(self._state_file)

    def _remove_stale_temp_dirs(self) -> None:
        """Remove the temp folders earlier connections of this run left on the server.

        A step that fails keeps its connection open until its kernel is stopped, and a dropped
        connection cannot run ``rmdir``: such a folder (it may hold a staging copy) is named in the
        run's transcript (``mkdir`` without a later ``rmdir`` that ended with exit code 0 or 2, "not
        found" [I]). Only folders this run's own transcript names are touched: runs on one host and
        site are serialized by the runbook's lock, and the steps of a run are sequential, so no other
        live connection uses them. Best effort; a folder that stays is named again next time.

        The folders a resumed run left are :meth:`remove_inherited`'s (only once the lock is held).
        """
        if self._transcript is None:
            return
        shared = self.run_state().get("work_dir")
        for folder in stale_temp_dirs(self._transcript.path):
            if folder == shared:
                continue  # the run's own folder, in use by the run: finish_run removes it
            # rmdir /s /q + read-back (W-RMDIR-SQ, W-IF-EXIST); a folder that stays is named again.
            self.remove_folder(folder, what=REMOVE_STALE_TEMP)
