"""One renewal per server, enforced on the server itself: a lock folder created atomically by ``mkdir``.

``%SystemRoot%\\Temp\\opslib-renewal.lock`` is created with cmd's ``mkdir``, which fails (exit 1) when
the folder exists (W-MKDIR-LOCK: CreateDirectory is one atomic file-system operation that fails with
ERROR_ALREADY_EXISTS, so of two runs exactly one creates it). Inside, ``holder.json`` (ASCII JSON,
uploaded through the one quoting function) names the run id, the operator, the control machine, the
evidence folder and the start time.

* A second run — from any control machine, any evidence root, any ``host:`` alias of the same server —
  is refused (:class:`~opslib.errors.RunLocked`) naming who holds the lock.
* ``opslib resume`` (a new run that continues an earlier one) takes the lock over only when the run it
  resumes holds it.
* A lock older than :data:`STALE_AFTER_H` hours is stale (the kit cannot see another machine's
  evidence to know that run ended): it is broken, and the breaking is recorded in ``run.json``
  (``server_lock.broken``). ``--break-lock`` breaks a younger one too, also recorded. A lock without a
  readable holder file (a kill between ``mkdir`` and the holder write) ages from its folder's own
  creation time, read by ``opslib/scripts/folderage.js`` (W-FSO-DATECREATED: ms since 1970 UTC, ASCII).
* At the end of the run, success or failure, the folder is removed and the removal read back
  (``if exist … (exit /b 1)``, W-IF-EXIST). A lock that another run broke and took meanwhile is left alone.

The runner holds the lock across all its steps (:func:`hold`, through its own short connection), so
it survives between the step kernels. The local lock (:mod:`opslib.runbook.evidence_lock`) still guards the
evidence folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import OpsError, PreconditionFailed, RunLocked, VerificationFailed
from ..text import escape_text
from ..winrm import Raw

if TYPE_CHECKING:
    from ..winrm import Connection

__all__ = [
    "LOCK_NAME",
    "STALE_AFTER_H",
    "ServerLock",
    "alive_here",
    "check_held",
    "describe",
    "hold",
    "process_started",
]

LOCK_NAME = "opslib-renewal.lock"
HOLDER = "holder.json"
FOLDERAGE = "folderage.js"  # opslib/scripts: a folder's creation time, language-neutral
STALE_AFTER_H = 6.0


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def describe(holder: dict[str, Any]) -> str:
    """``run R by OPERATOR on MACHINE since T (evidence E)`` — who holds a lock."""
    if not set(holder) - {"broken_because", "age_h", "taken_over_by"}:  # what the kit added is not a holder
        return "an unknown run (the lock holds no readable holder.json)"

    def field(name: str) -> str:  # what another machine wrote: escaped, bounded
        return escape_text(holder.get(name, "?"), limit=200)

    pid = f", pid {field('pid')}" if "pid" in holder else ""
    return (
        f"run {field('run_id')} by {field('operator')} on {field('control_machine')}{pid} "
        f"since {field('started_utc')} (evidence {field('evidence')})"
    )


def started_utc(holder: dict[str, Any], now_utc: datetime) -> tuple[datetime | None, str]:
    """When the holder says it took the lock, or None and why not (never raises on what another
    machine wrote: a time without a zone, a date in the future, garbage)."""
    text = holder.get("started_utc")
    if not isinstance(text, str) or not text:
        return None, "the holder file gives no start time"
    try:
        started = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None, f"the holder file's start time {escape_text(text, limit=60)!s} is not a time"
    if started.tzinfo is None:
        return None, f"the holder file's start time {escape_text(text, limit=60)} has no time zone"
    if started > now_utc + timedelta(minutes=5):
        return None, f"the holder file's start time {escape_text(text, limit=60)} is in the future"
    return started, ""


def age_h(holder: dict[str, Any], now_utc: datetime) -> float | None:
    """How old the lock is by its holder file (None when that cannot be told: :func:`started_utc`)."""
    started, _ = started_utc(holder, now_utc)
    return None if started is None else (now_utc - started) / timedelta(hours=1)


def process_started() -> str:
    """This process's start, as the kernel counts it (Linux ``/proc/self/stat`` field 22, in clock ticks
    since boot, with the boot id): a pid reused by another process has another start. "" elsewhere."""
    return _process_started("self")


def _process_started(pid: str) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        return ""
    fields = stat.rpartition(")")[2].split()
    return f"{boot}:{fields[19]}" if len(fields) > 19 else ""


def alive_here(holder: dict[str, Any]) -> bool:
    """Whether the holder is a process still running on this machine (same pid, same start)."""
    pid = holder.get("pid")
    if holder.get("control_machine") != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        pass  # it exists (another user's process)
    recorded = holder.get("process_started")
    now = _process_started(str(pid))
    return not (isinstance(recorded, str) and recorded and now and recorded != now)


def _locked(where: str, holder: str, *, hint: str) -> RunLocked:
    refused = RunLocked(where, holder)
    refused.hint = hint
    return refused


class ServerLock:
    """The lock folder on one server, through one connection."""

    def __init__(self, conn: Connection, *, host: str) -> None:
        self.conn = conn
        self.host = host
        self._folder: str | None = None

    @property
    def folder(self) -> str:
        """``%SystemRoot%\\Temp\\opslib-renewal.lock``, with %SystemRoot% read from the server once per run
        (:attr:`opslib.winrm.Connection.system_root`)."""
        if self._folder is None:
            self._folder = self.conn.system_root + "\\Temp\\" + LOCK_NAME
        return self._folder

    def _mkdir(self) -> bool:
        # W-MKDIR-LOCK: exit 0 = this call created it; 1 = it exists (another run holds the lock).
        result = self.conn.run(
            ["mkdir", self.folder], check=False, what="take the renewal lock on the server"
        )
        return result.exit_code == 0

    def read_holder(self) -> bytes:
        """``holder.json``'s bytes in one command: ``type`` prints a file's bytes unchanged (W-TYPE) and the
        kit writes the holder as ASCII JSON (a download would cost an encode and a read). Raises
        :class:`OpsError` when it cannot be read (missing: ``type`` exits 1)."""
        result = self.conn.run(
            ["type", self.folder + "\\" + HOLDER], what="read the renewal lock", timeout_s=30
        )
        return result.stdout

    def holder(self) -> dict[str, Any]:
        """What ``holder.json`` says ({} when it is missing or unreadable)."""
        try:
            data = json.loads(self.read_holder())
        except (OpsError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _write(self, holder: dict[str, Any]) -> None:
        text = json.dumps(holder, ensure_ascii=True, sort_keys=True) + "\r\n"
        self.conn.upload(text.encode("ascii"), self.folder + "\\" + HOLDER, what="write the renewal lock")

    def _remove(self) -> None:
        # rmdir /s /q, then read back: W-RMDIR-SQ, W-IF-EXIST (exit 1 exactly when it is still there).
        self.conn.run(["rmdir", "/s", "/q", self.folder], check=False, what="remove the renewal lock")
        still = self.conn.run(
            ["if", "exist", self.folder, Raw("(exit /b 1)")], check=False, what="read back the lock removal"
        )
        if still.exit_code != 0:
            raise VerificationFailed(
                self.host,
                f"the renewal lock {self.folder} is still there after rmdir",
                hint=f"remove it by hand on the server: rmdir /s /q {self.folder}",
            )

    def acquire(
        self,
        holder: dict[str, Any],
        *,
        break_lock: bool = False,
        resumes: str = "",
        stale_after_h: float = STALE_AFTER_H,
    ) -> dict[str, Any] | None:
        """Take the lock for ``holder`` (run_id, operator, control_machine, evidence, started_utc).

        Returns the previous holder when a lock was broken (or taken over by a resume), else None.
        ``resumes`` is the run id a resume continues: a lock that run left behind is taken over.
        Raises :class:`RunLocked` naming who holds it.
        """
        if self._mkdir():
            self._write_read_back(holder)
            return None
        other = self.holder()
        if resumes and other.get("run_id") == resumes:
            return self._take_over(holder, other, resumes)
        stale, age = self.refuse(other, break_lock=break_lock, stale_after_h=stale_after_h)
        self._remove()
        if not self._mkdir():  # another run took it between our rmdir and mkdir
            raise RunLocked(self.host + ":" + self.folder, describe(self.holder()))
        self._write_read_back(holder)
        why = f"older than {stale_after_h:g} h" if stale else "--break-lock"
        return {**other, "broken_because": why, "age_h": round(age, 2) if age is not None else None}

    def folder_age_h(self) -> tuple[float | None, str]:
        """The lock folder's age by its own creation time (a lock without a readable holder file: a kill
        between mkdir and the holder write), read language-neutrally: ``folderage.js`` (FileSystemObject
        ``DateCreated`` as ms since 1970 UTC, ASCII digits; W-FSO-DATECREATED), uploaded into the
        connection's temp folder. (None, why) when it cannot be told."""
        script = (resources.files("opslib") / "scripts" / FOLDERAGE).read_bytes()
        try:
            path = str(self.conn.temp_dir).rstrip("\\") + "\\" + FOLDERAGE
            self.conn.upload_once(script, path, what=f"upload {FOLDERAGE}")
            result = self.conn.run(
                ["cscript", "//nologo", "//E:jscript", path, self.folder],
                check=False,
                what="read the renewal lock folder's creation time",
            )
        except OpsError as exc:
            return None, f"its folder's creation time could not be read: {escape_text(str(exc), limit=120)}"
        digits = result.stdout.decode("ascii", errors="replace").strip()
        if result.exit_code != 0 or not digits.isdigit():
            return None, f"its folder's creation time could not be read (cscript exit {result.exit_code})"
        created = datetime.fromtimestamp(int(digits) / 1000, UTC)
        if created > _now() + timedelta(minutes=5):
            return None, "its folder's creation time is in the future"
        return (_now() - created) / timedelta(hours=1), ""

    def refuse(
        self, other: dict[str, Any], *, break_lock: bool, stale_after_h: float = STALE_AFTER_H
    ) -> tuple[bool, float | None]:
        """Whether the lock ``other`` holds may be broken: returns (stale, age in hours) or raises
        :class:`RunLocked` naming the holder and the run to resume (a refused run changes nothing).
        A lock without a readable holder file ages from its folder's creation time (:meth:`folder_age_h`)."""
        if other:
            why_unknown = started_utc(other, _now())[1]
            age = age_h(other, _now())
        else:
            age, why_unknown = self.folder_age_h()
        stale = age is not None and age > stale_after_h
        if break_lock and alive_here(other):
            raise _locked(
                f"{self.host}:{self.folder}",
                f"{describe(other)}; that process is still running on this machine",
                hint="--break-lock does not break the lock of a live run: wait for it, or stop it first",
            )
        if not (stale or break_lock):
            by = "" if other else " by its folder's creation time"
            young = f"{age:.1f} h old{by}" if age is not None else f"of unknown age ({why_unknown})"
            refused = RunLocked(f"{self.host}:{self.folder}", f"{describe(other)}; the lock is {young}")
            holder_dir = escape_text(other.get("evidence") or "", limit=300)
            resume = f"resume it (opslib resume {holder_dir}) or " if holder_dir else ""
            refused.hint = (
                f"one renewal per server: wait for that run to finish; if it is dead, {resume}run again "
                f"with --break-lock (a lock older than {stale_after_h:g} h is broken by itself); "
                "nothing was changed"
            )
            raise refused
        return stale, age

    def check_free(self, *, break_lock: bool, resumes: str = "") -> None:
        """Read-only, before a run folder exists: raises :class:`RunLocked` when :meth:`acquire` would
        (W-IF-EXIST: exit 1 exactly when the lock folder is there)."""
        there = self.conn.run(
            ["if", "exist", self.folder, Raw("(exit /b 1)")], check=False, what="look at the renewal lock"
        )
        if there.exit_code == 0:
            return
        other = self.holder()
        if resumes and other.get("run_id") == resumes:
            return
        self.refuse(other, break_lock=break_lock)

    def _write_read_back(self, holder: dict[str, Any]) -> None:
        self._write(holder)
        if self.holder() != holder:
            raise RunLocked(
                f"{self.host}:{self.folder}", f"the holder file reads back as {describe(self.holder())}"
            )

    def _take_over(self, holder: dict[str, Any], other: dict[str, Any], resumes: str) -> dict[str, Any]:
        """A resume takes over the lock its run left: ``mkdir takeover-<run id>`` inside the lock folder
        (W-MKDIR-LOCK: only one resume of that run can create it), then the holder file, read back."""
        marker = self.folder + "\\takeover-" + resumes
        made = self.conn.run(["mkdir", marker], check=False, what="take over the renewal lock")
        if made.exit_code != 0:
            raise _locked(
                f"{self.host}:{self.folder}",
                f"another resume of run {escape_text(resumes, limit=200)} took the lock over first "
                f"(it now belongs to {describe(self.holder())})",
                hint="one renewal per server: wait for that resume to finish; nothing was changed",
            )
        self._write_read_back(holder)
        return {**other, "taken_over_by": f"resume {holder.get('run_id')}"}

    def check_held(self, run_id: str) -> None:
        """Before a server change: the lock is still this run's (:class:`RunLocked` naming who broke it).

        A holder file that cannot be read (the connection, a failed command) is not taken for a broken
        lock: the run stops before its next change and says the lock could not be read."""
        try:
            raw = self.read_holder()
        except OpsError as exc:
            raise PreconditionFailed(
                self.host,
                f"could not read this run's lock {self.folder}\\{HOLDER} ({escape_text(str(exc), limit=300)})",
                hint="this run stopped before its next change; check the connection to the server, "
                "then resume the run (opslib resume RUN)",
            ) from None
        try:
            other = json.loads(raw)
        except ValueError:
            other = {}
        other = other if isinstance(other, dict) else {}
        if other.get("run_id") != run_id:
            raise _locked(
                f"{self.host}:{self.folder}",
                f"this run's lock was broken: it now belongs to {describe(other)}",
                hint="this run stopped before its next change; the other run holds the server now",
            )

    def release(self, run_id: str) -> str:
        """Remove the lock when it is still this run's; returns what happened (for run.json)."""
        other = self.holder()
        if other and other.get("run_id") != run_id:
            return f"left in place: it now belongs to {describe(other)}"
        self._remove()
        return "removed (read back)"


def check_held(conn: Connection, *, host: str, run_id: str) -> None:
    """Before a server change: the server's lock is still ``run_id``'s (:meth:`ServerLock.check_held`)."""
    ServerLock(conn, host=host).check_held(run_id)


@contextlib.contextmanager
def hold(
    conn_factory: Any,
    *,
    host: str,
    run_dir: Path,
    operator: str,
    break_lock: bool = False,
    resumes: str = "",
    record: Any = None,
    on_broken: Any = None,
) -> Iterator[dict[str, Any]]:
    """Hold the server's renewal lock while the block runs (the runner wraps all its steps in it).

    ``conn_factory()`` opens a short connection (used for taking and for releasing); ``record(**fields)``
    writes into ``run.json`` (``server_lock``: the folder, who took it, what was broken, how it ended).
    ``on_broken(previous, conn)``: after breaking another run's lock, before ``remove_inherited`` — the
    runner adds the temp folders the broken run left (its transcript, or, when its evidence is not on
    this machine, the server's listing of the kit's temp folders) to what this connection removes.
    """
    run_id = run_dir.name
    holder = {
        "run_id": run_id,
        "operator": operator,
        "control_machine": socket.gethostname(),
        "evidence": str(run_dir),
        "started_utc": _iso(_now()),
        "pid": os.getpid(),  # with its start: --break-lock refuses a holder alive on its machine
        "process_started": process_started(),
    }
    with conn_factory() as conn:
        lock = ServerLock(conn, host=host)
        previous = lock.acquire(holder, break_lock=break_lock, resumes=resumes)
        folder = lock.folder
        if previous is not None and "broken_because" in previous and on_broken is not None:
            on_broken(previous, conn)
        conn.remove_inherited()  # what the resumed or broken run left in %TEMP% (it is over: we hold its lock)
    info: dict[str, Any] = {"folder": folder, "holder": holder}
    if previous is not None:
        info["broken" if "broken_because" in previous else "taken_over"] = previous
        if "broken_because" in previous:
            print(f"opslib: broke the server's renewal lock held by {describe(previous)}", flush=True)
    if record is not None:
        record(server_lock=info)
    try:
        yield info
    finally:
        try:
            with conn_factory() as conn:
                info["released"] = ServerLock(conn, host=host).release(run_id)
                conn.finish_run()  # the run's temp folder, on the same connection (read back)
        except OpsError as exc:
            info["released"] = f"not removed: {exc}"
            print(
                f"opslib: could not remove the server's renewal lock {folder} ({exc}); "
                f"remove it by hand: rmdir /s /q {folder}",
                flush=True,
            )
        if record is not None:
            record(server_lock=info)
