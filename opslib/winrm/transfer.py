"""File upload and download over a WinRS shell, with certutil.

certutil -encode/-decode/-hashfile:
https://learn.microsoft.com/en-us/windows-server/administration/windows-commands/certutil

Upload: base64 lines echoed into a staging file, ``certutil -f -decode``; download: ``certutil -f
-encode`` to a staging file, ``type``, decode locally. Both compare the size and, where the server's
certutil can, the SHA-256. Staging files live in the connection's temp folder; a download's staging
copy is deleted in the ``type`` line, an upload's in the decode line; the folder's removal at close is
read back and names a copy that stayed.
``del`` and ``rmdir`` exit 0 whether or not anything went (docs/windows-behaviour.md W-DEL, W-DEL-STAGE,
W-RMDIR-SQ-LOCKED), so absence is proven only by :func:`~opslib.winrm.quoting.gone_check`
(W-IF-EXIST): :meth:`Transfers.remove_file`, :meth:`Transfers.remove_folder`. What could not be
removed is listed in :attr:`Transfers.remote_left` (with what to do: :func:`leftover_advice`).
:class:`Transfers` is mixed into :class:`~opslib.winrm.shell.Connection`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..errors import OpsError, VerificationFailed
from .quoting import (
    CMD_LINE_MAX,
    ECHO_CHUNK_MAX,
    Raw,
    check_argument,
    cmdline,
    delete_and_check,
    gone_check,
    join_commands,
    size_command,
)
from .transcript import CommandResult, Transfer

PEM_BEGIN = "-----BEGIN CERTIFICATE-----"
PEM_END = "-----END CERTIFICATE-----"


class Transfers:
    """Upload and download for :class:`~opslib.winrm.shell.Connection` (which provides the members below)."""

    host: str
    commands_run: int
    _stage: int
    _hashfile_ok: bool | None  # probed on first use: certutil -hashfile SHA256

    if TYPE_CHECKING:

        @property
        def temp_dir(self) -> str: ...

        def run(
            self,
            argv: Sequence[str],
            *,
            timeout_s: float = 60,
            check: bool = True,
            what: str = "",
            names: Sequence[str] | None = None,
        ) -> CommandResult: ...

        def run_line(
            self,
            line: str,
            *,
            timeout_s: float = 60,
            check: bool = True,
            what: str = "",
            log_data: bool = True,
        ) -> CommandResult: ...

        def _execute(
            self,
            line: str,
            *,
            argv: list[str] | None,
            timeout_s: float,
            check: bool,
            stdin: bytes | None,
            what: str,
            log_data: bool = True,
            log_line: str | None = None,
        ) -> CommandResult: ...

        def _record(self, entry: dict[str, Any]) -> None: ...

        def require_confidential(self, what: str) -> None: ...

        @property
        def shares_temp_dir(self) -> bool: ...

        def run_state(self) -> dict[str, Any]: ...

        def reading(self) -> contextlib.AbstractContextManager[None]: ...

        def _save_state(self, **fields: Any) -> None: ...

    # --- staging files, and what stays on the server ---
    def _stage_name(self, suffix: str) -> str:
        # Fresh per name, not per connection: the run's connections may share one temp folder.
        self._stage += 1
        name = f"{self.temp_dir}\\t{self._stage:04d}-{uuid.uuid4().hex[:8]}.{suffix}"
        self.note_remote_file(name)
        return name

    @property
    def remote_left(self) -> list[str]:
        """Files and folders this connection wrote and could not prove removed (read back), in order."""
        left: list[str] = self.__dict__.setdefault("_remote_left", [])
        return left

    def note_remote_file(self, path: str) -> None:
        """Remember a file the kit writes in the temp folder (checked one by one if the folder stays)."""
        written: list[str] = self.__dict__.setdefault("_remote_files", [])
        if path not in written:
            written.append(path)

    def _note_left(self, path: str) -> None:
        if path not in self.remote_left:
            self.remote_left.append(path)

    def _remove_checked(self, argv: list[str], path: str, *, what: str, kind: str) -> bool:
        """Run ``argv`` (a ``del``/``rmdir`` of ``path``) and prove ``path`` gone in the same line
        (W-IF-EXIST: exit 0 = absent, 1 = still there); once more when it stays. True only when read back."""
        line = delete_and_check(argv, path, names=[*[""] * (len(argv) - 1), kind])
        for attempt in (1, 2):
            try:
                result = self._execute(
                    line,
                    argv=[*argv, "&", "if", "exist", path, "(exit /b 1) else (exit /b 0)"],
                    timeout_s=30,
                    check=False,
                    stdin=None,
                    what=what if attempt == 1 else f"{what} (second try)",
                )
            except OpsError:
                continue
            if result.exit_code == 0:
                return True
        return False

    def remove_file(self, path: str, *, what: str = "") -> bool:
        """``del /f /q F`` and read it back; retried once. False (and F in :attr:`remote_left`) when F stays."""
        check_argument(path, "remote path")
        gone = self._remove_checked(
            ["del", "/f", "/q", path], path, what=what or f"delete {path} and check it is gone", kind="file"
        )
        if not gone:
            self._note_left(path)
        return gone

    def remove_folder(self, folder: str, *, what: str) -> bool:
        """``rmdir /s /q D`` and read it back; retried once. When D stays, each file the kit wrote in it
        is checked (``if exist``) and the ones still there go to :attr:`remote_left`, then D itself."""
        check_argument(folder, "temp folder")
        if self._remove_checked(["rmdir", "/s", "/q", folder], folder, what=what, kind="temp folder"):
            return True
        prefix = folder.rstrip("\\").lower() + "\\"
        for path in self.__dict__.get("_remote_files", []):
            if not path.lower().startswith(prefix):
                continue
            try:
                still = self._execute(
                    gone_check(path),
                    argv=["if", "exist", path, "(exit /b 1) else (exit /b 0)"],
                    timeout_s=30,
                    check=False,
                    stdin=None,
                    what=f"is {path} still on the server?",
                )
            except OpsError:
                self._note_left(path)
                continue
            if still.exit_code != 0:
                self._note_left(path)
        self._note_left(folder)
        return False

    # --- file transfer ---
    def _remote_size(self, path: str, output: bytes) -> int | None:
        lines = [x.strip() for x in output.decode("ascii", "replace").splitlines() if x.strip()]
        if lines and lines[-1].isdigit():
            return int(lines[-1])
        return None

    def _remote_sha256(self, path: str) -> str | None:
        """SHA-256 by ``certutil -hashfile FILE SHA256`` where the server can (probed once).

        https://learn.microsoft.com/en-us/windows-server/administration/windows-commands/certutil#-hashfile
        Output: a line of 64 hex digits (Windows 7/2008 R2 space-separated pairs). Unverified on
        Server 2003 → when it fails, this connection falls back to the size check only.
        """
        if self._hashfile_ok is None:
            known = self.run_state().get("hashfile_sha256")
            self._hashfile_ok = known if isinstance(known, bool) else None
        if self._hashfile_ok is False:
            return None
        result = self.run(
            ["certutil", "-hashfile", path, "SHA256"],
            check=False,
            what=f"hash {path} on the server (certutil -hashfile SHA256)",
            names=["certutil", "", "remote path", ""],
        )
        if result.exit_code == 0:
            for raw in result.stdout.decode("ascii", "replace").splitlines():
                compact = raw.replace(" ", "").strip().lower()
                if re.fullmatch(r"[0-9a-f]{64}", compact):
                    self._hashfile_ok = True
                    self._save_state(hashfile_sha256=True)
                    return compact
        # No SHA-256 here (Server 2003: NTE_BAD_ALGID): the run's later connections skip the try.
        self._hashfile_ok = False
        self._save_state(hashfile_sha256=False)
        return None

    def upload(
        self, data: bytes, remote_path: str, *, what: str = "", timeout_s: float = 60, secret: bool = False
    ) -> Transfer:
        """Write ``data`` to ``remote_path`` (overwriting it) and check size (and SHA-256 where possible).

        ``secret=True`` (key material, a PFX): only over a confidential channel (``require_confidential``).

        base64 with BEGIN/END lines, ``>>"f.b64" echo <chunk>`` of ≤7,900 characters, then
        ``certutil -f -decode`` (docs/windows-behaviour.md W-ECHO-CHUNK, W-CERTUTIL-DECODE; certutil:
        https://learn.microsoft.com/en-us/windows-server/administration/windows-commands/certutil#-decode).
        A faster stdin path (one Command + Send) is not used: that a cmd program copies WinRS stdin
        to a file on Server 2003 is unverified (assumed, so not used).
        """
        what = what or f"upload {remote_path}"
        check_argument(remote_path, "remote path")
        if secret:
            self.require_confidential(what)
        stage = self._stage_name("b64")
        text = base64.b64encode(data).decode("ascii")
        size_cmd = size_command(remote_path)
        decode = cmdline(
            ["certutil", "-f", "-decode", stage, remote_path],
            names=["certutil", "", "", "staging file", "remote path"],
        )
        begin = cmdline(["echo", PEM_BEGIN], redirect=("write", stage))
        end = cmdline(["echo", PEM_END], redirect=("append", stage))
        overhead = len(cmdline(["echo", "x"], redirect=("append", stage))) - 1
        first_room = CMD_LINE_MAX - len(begin) - 2 - overhead
        chunk = min(ECHO_CHUNK_MAX, CMD_LINE_MAX - overhead) // 4 * 4
        pieces: list[str] = []
        pos = 0
        while pos < len(text):
            size = min(chunk, first_room // 4 * 4) if not pieces else chunk
            pieces.append(text[pos : pos + size])
            pos += size
        lines: list[str] = []
        for i, piece in enumerate(pieces):
            parts = [begin] if i == 0 else []
            parts.append(cmdline(["echo", piece], redirect=("append", stage)))
            lines.append(join_commands(parts))
        # The staging copy is deleted in the same line as soon as it is decoded (no extra round trip).
        # That del's exit code proves nothing (W-DEL-STAGE): the close's rmdir + read-back of the whole
        # folder does, and names a copy that stays.
        remove_stage = cmdline(["del", "/f", "/q", stage], names=["del", "", "", "staging file"])
        tail = [end, decode, remove_stage, size_cmd]
        if not lines:
            lines.append(begin)
        if len(lines[-1]) + sum(len(t) + 2 for t in tail) <= CMD_LINE_MAX:
            lines[-1] = join_commands([lines[-1], *tail])
        else:
            lines.append(join_commands(tail))
        commands = 0
        result: CommandResult | None = None
        for n, line in enumerate(lines, 1):
            is_last = n == len(lines)
            summary = f"[upload chunk {n}/{len(lines)} of {remote_path}: {len(line)} characters]"
            result = self._execute(
                line,
                argv=None,
                timeout_s=timeout_s,
                check=True,
                stdin=None,
                what=(
                    f"write base64 part {n}/{len(lines)} of {remote_path} to {stage} (echo)"
                    + (", decode it (certutil -decode), delete it (del) and read the size" if is_last else "")
                ),
                log_line=(summary + (" … " + " && ".join(tail) if is_last else "")),
            )
            commands += 1
        assert result is not None
        remote_size = self._remote_size(remote_path, result.stdout)
        if remote_size != len(data):
            raise VerificationFailed(
                self.host,
                f"{remote_path} holds {remote_size if remote_size is not None else 'no file'} bytes after the upload, expected {len(data)}",
                hint="run again; if it repeats, check free space and permissions on the server",
            )
        local_sha = hashlib.sha256(data).hexdigest()
        before = self.commands_run
        remote_sha = self._remote_sha256(remote_path)
        commands += self.commands_run - before
        if remote_sha is not None and remote_sha != local_sha:
            raise VerificationFailed(
                self.host,
                f"{remote_path}: SHA-256 after upload differs from the local file",
                hint="run again",
            )
        transfer = Transfer(
            remote_path, len(data), local_sha, "size+sha256" if remote_sha else "size", commands
        )
        self._record_transfer("upload", transfer, what)
        return transfer

    def upload_once(self, data: bytes, remote_path: str, *, what: str = "") -> Transfer:
        """:meth:`upload`, unless an earlier connection of this run put the same bytes at ``remote_path``
        in the run's shared temp folder: then one command reads the server's copy back (``certutil -f
        -encode`` + ``type``, compared byte for byte — Server 2003's certutil has no SHA-256) and the file
        is uploaded again when it differs or cannot be read."""
        sha = hashlib.sha256(data).hexdigest()
        uploaded = self.run_state().get("uploaded") or {}
        if self.shares_temp_dir and isinstance(uploaded, dict) and uploaded.get(remote_path) == sha:
            if self._read_back(remote_path) == data:
                transfer = Transfer(
                    remote_path, len(data), sha, "read back (uploaded earlier in this run)", 1
                )
                self._record_transfer("reuse", transfer, what or f"reuse {remote_path}")
                return transfer
        transfer = self.upload(data, remote_path, what=what)
        if self.shares_temp_dir:
            now = self.run_state().get("uploaded") or {}
            self._save_state(uploaded={**(now if isinstance(now, dict) else {}), remote_path: sha})
        return transfer

    def _read_back(self, remote_path: str) -> bytes | None:
        """The bytes of ``remote_path`` in one command (``certutil -f -encode`` to a staging file,
        ``type``, ``del``), or None when anything fails. For comparing a file the kit wrote; not for
        secrets (use :meth:`download`)."""
        stage = self._stage_name("b64")
        line = join_commands(
            [
                join_commands(
                    [
                        cmdline(
                            ["certutil", "-f", "-encode", remote_path, stage, Raw(">nul"), Raw("2>&1")],
                            names=["certutil", "", "", "remote path", "staging file"],
                        ),
                        cmdline(["type", stage], names=["type", "staging file"]),
                    ]
                ),
                cmdline(
                    ["del", "/f", "/q", stage, Raw(">nul"), Raw("2>&1")],
                    names=["del", "", "", "staging file"],
                ),
            ],
            op="&",
        )
        try:
            with self.reading():  # a read: earlier registry reads stay valid
                result = self.run_line(
                    line,
                    check=False,
                    what=f"read back {remote_path} (certutil -encode, type)",
                    log_data=False,
                )
        except OpsError:
            return None
        body = b"".join(
            x.strip() for x in result.stdout.splitlines() if x.strip() and not x.strip().startswith(b"-----")
        )
        try:
            return base64.b64decode(body, validate=True) if body else None
        except (binascii.Error, ValueError):
            return None

    def download(
        self, remote_path: str, *, what: str = "", timeout_s: float = 120, secret: bool = False
    ) -> bytes:
        """Read ``remote_path`` as bytes: ``certutil -f -encode`` to a staging file, ``type`` it, decode locally.

        The staging file's BEGIN/END lines are stripped (W-CERTUTIL-ENCODE). The size (and SHA-256
        where the server can) is compared with the remote file. The data is not written to the
        transcript (only its size and SHA-256): downloads may be key backups. ``secret=True`` (a PFX):
        only over a confidential channel (``require_confidential``).
        """
        what = what or f"download {remote_path}"
        check_argument(remote_path, "remote path")
        if secret:
            self.require_confidential(what)
        stage = self._stage_name("b64")
        encode = cmdline(
            ["certutil", "-f", "-encode", remote_path, stage],
            names=["certutil", "", "", "remote path", "staging file"],
        )
        first = self.run_line(
            join_commands([encode, size_command(remote_path)]),
            timeout_s=timeout_s,
            what=f"encode {remote_path} to base64 in {stage} (certutil -encode) and read its size",
        )
        remote_size = self._remote_size(remote_path, first.stdout)
        # type: https://learn.microsoft.com/en-us/windows-server/administration/windows-commands/type
        # The base64 copy (of a PFX, maybe) is deleted in the same line; its exit code proves nothing
        # (W-DEL-STAGE): the close's rmdir + read-back does, and names it when it stays.
        typed = self.run_line(
            join_commands(
                [
                    cmdline(["type", stage], names=["type", "staging file"]),
                    cmdline(["del", "/f", "/q", stage], names=["del", "", "", "staging file"]),
                ]
            ),
            timeout_s=timeout_s,
            what=f"read the base64 copy {stage} (type), then delete it (del)",
            log_data=False,
        )
        if secret:
            # A base64 copy of key material is proven gone now (W-IF-EXIST), not only when the temp
            # folder goes: with a run-wide folder that is the run's end. What stays is in remote_left.
            self.remove_file(stage, what=f"check the base64 copy {stage} is gone (del, if exist)")
        body = b"".join(
            line.strip()
            for line in typed.stdout.splitlines()
            if line.strip() and not line.strip().startswith(b"-----")
        )
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise VerificationFailed(
                self.host, f"{remote_path}: the server's base64 could not be decoded", hint="run again"
            ) from None
        if remote_size is None or remote_size != len(data):
            raise VerificationFailed(
                self.host,
                f"{remote_path}: downloaded {len(data)} bytes, the server reports {remote_size}",
                hint="run again",
            )
        remote_sha = self._remote_sha256(remote_path)
        local_sha = hashlib.sha256(data).hexdigest()
        if remote_sha is not None and remote_sha != local_sha:
            raise VerificationFailed(
                self.host,
                f"{remote_path}: SHA-256 of the download differs from the server's",
                hint="run again",
            )
        transfer = Transfer(
            remote_path, len(data), local_sha, "size+sha256" if remote_sha else "size", 3 if remote_sha else 2
        )
        self._record_transfer("download", transfer, what)
        return data

    def _record_transfer(self, kind: str, transfer: Transfer, what: str) -> None:
        """One transcript line per transfer: sizes and SHA-256 only, never the data (it may be a PFX)."""
        entry = {"time_utc": datetime.now(UTC).isoformat(), "host": self.host, "what": what}
        self._record({**entry, kind: transfer.__dict__})


def leftover_advice(path: str) -> str:
    """What the operator does about a file or folder the kit could not remove from the server."""
    lower = path.lower()
    if lower.endswith(".pfx") or lower.endswith(".b64"):
        what = "a PFX" if lower.endswith(".pfx") else "a base64 copy of a file the kit moved (maybe a PFX)"
        return (
            f'{path} ({what}) is still on the server — delete it by hand: del /f "{path}"; '
            "it holds the private key, protected by the one-time password, which was never recorded"
        )
    if "." not in lower.rsplit("\\", 1)[-1]:
        return (
            f'the temp folder {path} is still on the server — delete it by hand: rmdir /s /q "{path}" '
            "(files in it may hold the private key, protected by a one-time password that was never recorded)"
        )
    return f'{path} is still on the server — delete it by hand: del /f "{path}"'
