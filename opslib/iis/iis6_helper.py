"""The IIS 6 helper ``opslib/scripts/iis6.js`` on one connection: upload, run, parse — one object that the
IIS 6 backend (:mod:`opslib.iis.iis6`) and its swap transaction (:mod:`opslib.iis.iis6_swap`) both take.

The helper (ADSI, ``IIS://localhost/W3SVC``) is uploaded once per connection into ``conn.temp_dir`` and
run with ``cscript //nologo //E:jscript``. It prints ASCII-only JSON and decides nothing by localized
text; this module reads only its JSON and exit codes (0 ok, 1 an ADSI call failed, 2 bad arguments,
3 the site did not reach the requested state).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any

from .. import winerror
from ..errors import CapabilityMissing, RemoteCommandFailed
from .base import STATE_NAMES, Site

if TYPE_CHECKING:
    from ..winrm import CommandResult, Connection

__all__ = [
    "EXIT_ADSI",
    "EXIT_STATE",
    "EXIT_USAGE",
    "HELPER",
    "HelperError",
    "IIS6Helper",
    "helper_script",
    "parse_json",
    "site_from",
]

HELPER = "iis6.js"
# Helper exit codes (see the header of opslib/scripts/iis6.js).
EXIT_ADSI, EXIT_USAGE, EXIT_STATE = 1, 2, 3


def helper_script() -> bytes:
    """The packaged IIS 6 helper, byte for byte as it is uploaded."""
    return (resources.files("opslib") / "scripts" / HELPER).read_bytes()


class HelperError(Exception):
    """The helper answered with its error JSON (exit 1/2/3)."""

    def __init__(self, exit_code: int, error: Mapping[str, Any], result: CommandResult) -> None:
        super().__init__(str(error.get("description", "")))
        self.exit_code = exit_code
        self.error = dict(error)
        self.result = result

    @property
    def number(self) -> str:
        return str(self.error.get("number", ""))

    @property
    def description(self) -> str:
        return str(self.error.get("description", ""))


def parse_json(stdout: bytes) -> dict[str, Any] | None:
    """The helper's answer: the last line of ``stdout`` that parses as a JSON object (None: no such line)."""
    # The helper writes one ASCII JSON line; take the last line that parses as an object.
    for line in reversed(stdout.decode("ascii", errors="replace").splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return None


def site_from(data: Mapping[str, Any]) -> Site:
    """One site of the helper's JSON (``list``, ``set-cert``, ``start`` … answers) as a :class:`Site`."""
    state = int(data.get("state", 0))
    return Site(
        id=int(data["id"]),
        name=str(data.get("name", "")),
        state=state,
        state_name=STATE_NAMES.get(state, f"unknown ({state})"),
        bindings=tuple(str(b) for b in data.get("bindings", ())),
        secure_bindings=tuple(str(b) for b in data.get("secure_bindings", ())),
        cert_thumbprint=str(data.get("cert_hash", "")).upper(),
        store_name=str(data.get("store_name", "")),
        cert_inherited=bool(data.get("cert_hash_inherited", False)),
    )


class IIS6Helper:
    """``iis6.js`` on one connection: uploaded once (on first use), then one cscript run per verb."""

    def __init__(self, conn: Connection, *, host: str) -> None:
        self.conn = conn
        self.host = host
        self._path: str | None = None

    def path(self) -> str:
        """Upload the helper once (into ``self.conn.temp_dir``; once per run when the run's connections
        share it, read back byte for byte by each later connection) and return its remote path."""
        if self._path is None:
            path = str(self.conn.temp_dir).rstrip("\\") + "\\" + HELPER
            self.conn.upload_once(helper_script(), path, what=f"upload the IIS 6 helper {HELPER}")
            self._path = path
        return self._path

    def run(
        self,
        verb: str,
        *args: str,
        what: str,
        secrets: Sequence[str] = (),
        names: Sequence[str] = (),
        timeout_s: float = 60,
    ) -> dict[str, Any]:
        """Run one helper verb; return its JSON, raise :class:`HelperError` for its error JSON.

        ``secrets`` (e.g. the PFX password of ``export-pfx``) are registered for redaction before the
        command is sent; ``names`` name the verb's arguments in a refused-argument message.
        """
        path = self.path()
        # cscript host options //nologo (no banner) and //E:jscript (engine), WSH 5.6 on 2003:
        # https://learn.microsoft.com/en-us/previous-versions/windows/it-pro/windows-server-2003/cc738482(v=ws.10)
        argv = ["cscript", "//nologo", "//E:jscript", path, verb, *args]
        result = self.conn.run(
            argv,
            check=False,
            what=what,
            timeout_s=timeout_s,
            secrets=secrets,
            names=["cscript", "", "", "helper", "verb", *names] if names else None,
        )
        payload = parse_json(result.stdout)
        if result.exit_code == winerror.NOT_RECOGNIZED:
            raise CapabilityMissing(self.host, "cscript.exe (Windows Script Host)", hint="install WSH 5.6")
        if payload is None:
            raise RemoteCommandFailed(
                host=self.host,
                command=result.command_line,
                remote_exit_code=result.exit_code,
                stdout=result.stdout_text,
                stderr=result.stderr_text,
                what=f"{what}: the IIS helper printed no JSON",
                hint="run the same cscript command on the server and look at its output; nothing was parsed",
            )
        if result.exit_code != 0:
            error = payload.get("error")
            if not isinstance(error, dict):
                # The swap verb's own answer (ok/restored) on exit 3/4, or a bare failure.
                error = (
                    payload
                    if "ok" in payload
                    else {"number": "", "description": "non-zero exit without an error object"}
                )
            raise HelperError(result.exit_code, error, result)
        return payload

    def command_failed(self, exc: HelperError, what: str, hint: str) -> RemoteCommandFailed:
        """The kit's error for a helper error answer: the command, the exit code, the ADSI error."""
        return RemoteCommandFailed(
            host=self.host,
            command=exc.result.command_line,
            remote_exit_code=exc.exit_code,
            stdout=f"ADSI error {exc.number}: {exc.description}",
            stderr="",
            what=what,
            hint=hint,
        )

    def run_read_only(self, verb: str, *args: str, what: str) -> dict[str, Any]:
        """Run a verb that changes nothing; its error answer becomes :class:`RemoteCommandFailed`."""
        try:
            return self.run(verb, *args, what=what)
        except HelperError as exc:
            raise self.command_failed(
                exc, what, "nothing was changed by the kit; check IIS on the server"
            ) from None

    def sites(self) -> list[Site]:
        """Every web site of the server (helper verb ``list``, a metabase read), ordered by id."""
        with self.conn.reading():  # the helper's `list` reads the metabase only
            payload = self.run_read_only("list", what="list IIS sites")
        return sorted((site_from(s) for s in payload.get("sites", [])), key=lambda s: s.id)
