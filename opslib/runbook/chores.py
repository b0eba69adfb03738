"""What the runner does on the server around the steps, and what it knows of what a run left there.

* the server's renewal lock (:mod:`opslib.server.renewal_lock`) held for the whole run (:func:`hold_server_lock`);
* the run's temp folder removed (read back) at the run's end when a connection of the run left one
  (:func:`finish_run_folder`);
* ``<run_dir>/connection.json`` — what the run's connections share (:mod:`opslib.winrm` writes it): the
  runbook reads it only here (:func:`connection_state`), and writes it only here, once, for a resume
  (:func:`inherit_leftovers`: the temp folders the resumed run left, which the new run's first
  connection removes);
* a resume reuses the probe of the run it continues (:func:`reuse_probe`);
* what a run could not prove removed from the server (:func:`left_on_server`), with what to do.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .. import evidence
from ..errors import OpsError, RunLocked
from ..server import renewal_lock as server_lock
from ..server.session import CAPABILITIES_FILE
from ..text import escape_text
from ..winrm import STATE_FILE, Connection, Raw, connect_params
from ..winrm.transcript import stale_temp_dirs
from ..winrm.transfer import leftover_advice


def connection_state(run_dir: Path) -> dict[str, Any]:
    """``<run_dir>/connection.json`` (what the run's connections share; {} when absent or unreadable)."""
    try:
        state = json.loads((run_dir / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def size_only_checks(run_dir: Path) -> list[str]:
    """The run's file transfers checked by size only, and why (``connection.json``; docs/windows-behaviour.md
    W-CERTUTIL-HASHFILE): run.json ``size_only_checks``, the console and the report say so."""
    state = connection_state(run_dir)
    out: list[str] = []
    if state.get("hashfile_sha256") is False:
        out.append(
            "every file transfer was checked by size only: this server has no certutil -hashfile SHA256 "
            f"({state.get('hashfile_absent') or 'its exit code said so'})"
        )
    entries = state.get("size_only_transfers")
    for e in entries if isinstance(entries, list) else []:
        if isinstance(e, dict):
            out.append(f"{e.get('direction')} {e.get('path')}: checked by size only — {e.get('reason')}")
    return out


def inherit_leftovers(earlier: Path, run_dir: Path, *, url: str) -> None:
    """The temp folders the resumed run left on the server (its transcript: created, never read back as
    removed): the new run's first connection removes them (``connection.json`` ``inherited_folders``)."""
    folders = stale_temp_dirs(earlier / "transcript.jsonl")
    if folders and url:
        state = {"url": url, "inherited_folders": folders}
        (run_dir / STATE_FILE).write_text(
            json.dumps(state, indent=1, sort_keys=True) + "\n", encoding="utf-8"
        )


def reuse_probe(earlier: Path, run_dir: Path) -> dict[str, Any]:
    """Copy the capabilities an earlier run of the same server probed (a resume, same connection
    parameters): the steps read them instead of probing again (``Server`` still checks the URL)."""
    source = earlier / CAPABILITIES_FILE
    if not source.is_file():
        return {}
    (run_dir / CAPABILITIES_FILE).write_bytes(source.read_bytes())
    return {"capabilities_from": {"run_id": earlier.name, "sha256": evidence.sha256_file(source)}}


def left_on_server(run_dir: Path, facts: dict[str, Any]) -> list[str]:
    """What the run could not prove removed from the server: the facts' ``remote_left``, the temp
    folders the transcript shows created and never read back as gone, and the resumed run's folders
    this run could not remove; each with what to do."""
    left = [str(p) for p in facts.get("remote_left") or [] if isinstance(p, str)]
    left += stale_temp_dirs(run_dir / "transcript.jsonl")
    left += inherited_left(run_dir)
    return [leftover_advice(p) for p in dict.fromkeys(left)]


def inherited_left(run_dir: Path) -> list[str]:
    """The resumed run's folders this run could not prove removed (``connection.json``)."""
    folders = connection_state(run_dir).get("inherited_folders")
    return [f for f in folders or [] if isinstance(f, str) and f] if isinstance(folders, list) else []


def connector(winrm: dict[str, Any], *, host: str, run_dir: Path) -> Callable[[], Connection]:
    """Opens one more connection of the run (its transcript, its ``connection.json``)."""
    return lambda: connect_params(winrm, host=host, run_dir=str(run_dir))


def hold_server_lock(
    connect: Callable[[], Connection],
    *,
    host: str,
    run_dir: Path,
    operator: str,
    break_lock: bool,
    resumes: str = "",
    hmac_key: bytes | None = None,
) -> contextlib.AbstractContextManager[Any]:
    """The server's renewal lock (:mod:`opslib.server.renewal_lock`) for the run; taken and released on short
    connections of ``connect``, recorded in run.json."""
    return server_lock.hold(
        connect,
        host=host,
        run_dir=run_dir,
        operator=operator,
        break_lock=break_lock,
        resumes=resumes,
        record=lambda **fields: _record_lock(run_dir, hmac_key, fields),
        on_broken=lambda previous, conn: inherit_from_broken(run_dir, previous, url=conn.url, conn=conn),
    )


def inherit_from_broken(
    run_dir: Path, previous: dict[str, Any], *, url: str, conn: Connection | None = None
) -> list[str]:
    """A run that broke another run's lock: the temp folders the broken run's transcript shows it left
    (its evidence folder, when this machine can read it) join what this run's lock connection removes and
    reads back (``connection.json`` ``inherited_folders``; the PFX copies a dead step 3 left are in them);
    what stays is named in this run's summary. When that run's evidence is not on this machine (another
    control machine's run, or a lock without a holder file), ``conn`` lists the server's kit temp folders
    instead (:func:`kit_temp_folders`). Returns the folders found."""
    if not url:
        return []
    evidence_dir = previous.get("evidence")
    transcript = (
        Path(evidence_dir) / "transcript.jsonl" if isinstance(evidence_dir, str) and evidence_dir else None
    )
    if transcript is not None and transcript.is_file():
        folders = stale_temp_dirs(transcript)
    elif conn is not None:
        folders = kit_temp_folders(conn)
    else:
        return []
    if folders:
        state = connection_state(run_dir)
        if state.get("url") not in (None, url):
            state = {}
        known = [f for f in state.get("inherited_folders") or [] if isinstance(f, str)]
        state.update(url=url, inherited_folders=list(dict.fromkeys([*known, *folders])))
        (run_dir / STATE_FILE).write_text(
            json.dumps(state, indent=1, sort_keys=True) + "\n", encoding="utf-8"
        )
    return folders


def kit_temp_folders(conn: Connection) -> list[str]:
    """The kit's temp folders on the server (``dir /b /ad "%TEMP%\\opslib-*"``, W-DIR-BARE: bare folder
    names, ASCII, no localized text; exit 1 = none), this run's own folder and the lock excepted."""
    own = {
        str(conn.run_state().get("work_dir") or "").lower(),
        str(getattr(conn, "_temp_dir", None) or "").lower(),
    }
    base = conn.run(["echo", Raw("%TEMP%")], what="find the remote temp folder", timeout_s=30)
    temp = base.stdout_text.strip().splitlines()[-1].strip() if base.stdout.strip() else ""
    if not re.match(r"^[A-Za-z]:\\", temp) or "%" in temp:
        return []
    listing = conn.run(
        ["dir", "/b", "/ad", temp.rstrip("\\") + "\\opslib-*"],
        check=False,
        what="list the kit's temp folders a broken run may have left",
        timeout_s=30,
    )
    if listing.exit_code != 0:
        return []
    names = listing.stdout.decode("ascii", errors="replace").splitlines()
    folders = [
        temp.rstrip("\\") + "\\" + name.strip()
        for name in names
        if re.fullmatch(r"opslib-[0-9a-f]{12}", name.strip())
    ]
    return [f for f in folders if f.lower() not in own]


def _record_lock(run_dir: Path, hmac_key: bytes | None, fields: dict[str, Any]) -> None:
    """run.json's ``server_lock``; a full or read-only disk never keeps the lock from being released
    (the run's own next write stops the run with the one message)."""
    with contextlib.suppress(OSError):
        evidence.update_run(run_dir, hmac_key=hmac_key, **fields)


def refuse_if_locked(winrm: dict[str, Any], *, host: str, break_lock: bool, resumes: str = "") -> None:
    """Before the run folder exists: a run the server's lock would refuse is refused here, on a short
    connection of its own (no failed run folder that would suggest resuming itself; the message names
    the run that holds the lock). Taking the lock later stays the atomic step."""
    try:
        with connect_params(winrm, host=host) as conn:
            server_lock.ServerLock(conn, host=host).check_free(break_lock=break_lock, resumes=resumes)
    except RunLocked:
        raise
    except OpsError:  # unreachable, refused …: the run's own first connection meets it, on the record
        return


def check_lock(connect: Callable[[], Connection], *, host: str, run_dir: Path) -> None:
    """Before a step that changes the server: the server's renewal lock is still this run's (a run
    whose lock another run broke stops here, naming who broke it)."""
    with connect() as conn:
        server_lock.check_held(conn, host=host, run_id=run_dir.name)


@contextlib.contextmanager
def finish_run_folder(connect: Callable[[], Connection], run_dir: Path) -> Iterator[None]:
    """At the end of the run, remove the run's temp folder on the server (read back) when a
    connection of the run left one (``connection.json``: a dry run, or a failed lock release); the
    lock release removes it on its own connection otherwise."""
    try:
        yield
    finally:
        named = connection_state(run_dir).get("work_dir")
        if named:
            try:
                with connect() as conn:
                    conn.finish_run()
            except OpsError as exc:  # named in run.json's left_on_server (no read-back in the transcript)
                print(
                    escape_text(f"opslib: could not remove the run's temp folder {named} ({exc})"), flush=True
                )
