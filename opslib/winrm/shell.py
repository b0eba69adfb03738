"""One WinRS shell per connection: the only module that imports pywinrm.

One command costs Command + Receive(×k) + Signal (docs/windows-behaviour.md W-WINRM-ENVELOPE, W-WINRM-ENVELOPE). What this adds to pywinrm:

* our own Receive loop with a deadline (pywinrm's ``get_command_output`` retries the TimedOut fault
  forever, docs/windows-behaviour.md W-WINRM-TIMEOUT-FAULT); on the deadline the command is terminated (Signal) and
  :class:`~opslib.errors.CommandTimedOut` is raised. Only Receive is retried, never Command or Send.
* the shell is reopened once when the server says it is gone (2150858843, 2150859174, 2147943418 —
  as the Ruby WinRM gem does, docs/windows-behaviour.md W-WINRM-SHELL-GONE); a Command refused that way never ran, so it is re-sent
  on the new shell once.
* the code page: ``auto`` opens the shell without ``WINRS_CODEPAGE`` (the host's console default,
  as pypsrp does, docs/windows-behaviour.md W-CODEPAGE-DECODE) and reads the digits of ``chcp``; output stays bytes and is decoded
  with that code page.
* errors mapped to :mod:`opslib.errors`; the per-connection temp folder, removed on close.
* with a ``state_file`` (``<run_dir>/connection.json``), what one connection of a run learnt is kept
  for the next ones of the same run (the same URL): the code page, and one temp folder for the whole
  run, created once and removed (and read back) by :meth:`Connection.finish_run` at the run's end —
  so a step's connection runs no set-up command at all, and a helper uploaded by one step is reused by
  the next after it is read back byte for byte (:meth:`Transfers.upload_once`).
"""

from __future__ import annotations

import atexit
import contextlib
import re
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from xml.etree import ElementTree as ET

import requests
import urllib3
import winrm
import xmltodict
from winrm.exceptions import (
    InvalidCredentialsError,
    WinRMError,
    WinRMOperationTimeoutError,
    WinRMTransportError,
    WSManFaultError,
)

from .. import credentials as _secrets
from ..errors import (
    AuthenticationFailed,
    CommandTimedOut,
    ConnectionFailed,
    OpsError,
    ParameterError,
    RemoteCommandFailed,
    VerificationFailed,
    WSManFault,
)
from . import channel as _channel
from .quoting import cmdline, codec
from .readcache import ReadCache
from .runfolder import RunFolder
from .transcript import (
    REMOVE_TEMP,
    CommandResult,
    Transcript,
    digest,
    redacted_b64,
)
from .transfer import Transfers
from .wsman import (
    ACTION_CREATE,
    ERROR_WSMAN_OPERATION_TIMEDOUT,
    RESOURCE_URI_CMD,
    SHELL_GONE_CODES,
    is_invalid_selectors,
)

STATE_FILE = "connection.json"  # in the run folder: what the run's connections share (see the module doc)
RECEIVE_NETWORK_RETRIES = 2  # a Receive lost on the network is asked again (pypsrp retries 5×)
TRANSPORTS = ("ntlm", "kerberos", "credssp", "basic", "certificate", "plaintext", "ssl")
# The connections of this process that are open (registered for their atexit close), by id.
_OPEN: dict[int, Connection] = {}


def open_connections() -> list[Connection]:
    """Every :class:`Connection` of this process that is open: registered for its ``atexit`` close (which
    holds it alive, as in a kernel), from the end of its set-up to its :meth:`~Connection.close`."""
    return list(_OPEN.values())


class Connection(_channel.Channels, ReadCache, Transfers, RunFolder):
    """One WinRS shell on one host. Use as a context manager; :meth:`close` removes the temp folder."""

    def __init__(
        self,
        url: str,
        *,
        transport: str = "ntlm",
        username: str,
        password: str,
        host_label: str,
        codepage: str | int = "auto",
        ca_trust_path: str | None = None,
        server_cert_validation: str = "validate",
        allow_unencrypted_basic: bool = False,
        tls: str = "default",
        message_encryption: str = "auto",
        allow_cleartext_secrets: bool = False,
        operation_timeout_s: int = 20,
        read_timeout_s: int = 30,
        transcript: Transcript | str | Path | None = None,
        command_timeout_s: float | None = None,
        state_file: str | Path | None = None,
    ) -> None:
        self.url = url
        self._state_file = Path(state_file) if state_file else None
        self.host = host_label
        self.username = username  # named in messages (never the password)
        self._tls = tls
        self._allow_cleartext = bool(allow_cleartext_secrets)
        self._adapter: _channel.ChannelAdapter | None = None
        self._transcript = (
            transcript if isinstance(transcript, Transcript) or transcript is None else Transcript(transcript)
        )
        self._operation_timeout_s = int(operation_timeout_s)
        # The longest any one command may take (caps each verb's own deadline); None = the verbs' own.
        self._command_cap = float(command_timeout_s) if command_timeout_s else None
        self._temp_dir: str | None = None
        self._stage = 0
        self._hashfile_ok: bool | None = None  # probed on first use: certutil -hashfile SHA256
        self.size_only_transfers: list[str] = []  # what this connection checked by size only, and why
        self._shell_id: str | None = None
        self._closed = False
        self.init_read_cache()  # server.remote.export_keys: reads kept until a command may change the server
        _secrets.register(password)
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ParameterError(
                "winrm.url", f"not an http(s) WS-Management URL: {url!r}", hint="e.g. https://web01:443/wsman"
            )
        if parsed.username or parsed.password:
            raise ParameterError(
                "winrm.url", "the URL must not hold credentials", hint="use username/password"
            )
        if transport not in TRANSPORTS:
            raise ParameterError(
                "winrm.transport", f"unknown transport {transport!r}", hint="one of " + ", ".join(TRANSPORTS)
            )
        basic = transport in ("basic", "plaintext")
        if basic and parsed.scheme == "http" and not allow_unencrypted_basic:
            raise ParameterError(
                "winrm.allow_unencrypted_basic",
                "Basic authentication over plain HTTP would send the password readable on the network",
                hint="use an https:// URL, or set allow_unencrypted_basic: true for a lab/rehearsal host",
            )
        if server_cert_validation not in ("validate", "ignore"):
            raise ParameterError(
                "winrm.server_cert_validation", f"must be validate or ignore, not {server_cert_validation!r}"
            )
        _channel.check_setting(tls, url=url)
        if message_encryption not in _channel.MESSAGE_ENCRYPTION:
            raise ParameterError(
                "winrm.message_encryption",
                f"must be one of {', '.join(_channel.MESSAGE_ENCRYPTION)}; got {message_encryption!r}",
            )
        if codepage == "auto":
            self._requested_cp: int | None = None
        else:
            try:
                self._requested_cp = int(codepage)
                "".encode(codec(self._requested_cp))
            except (TypeError, ValueError, LookupError):
                raise ParameterError(
                    "winrm.codepage", f"unknown code page {codepage!r}", hint="auto, 437, 932 or 65001"
                ) from None
        self.codepage: int = self._requested_cp or 437
        try:
            # ca_trust_path None = the system CAs (pywinrm's "legacy_requests" default would read
            # REQUESTS_CA_BUNDLE instead; docs/windows-behaviour.md W-WINRM-ENVELOPE).
            options: dict[str, Any] = {
                "transport": transport,
                "server_cert_validation": server_cert_validation,
                "ca_trust_path": ca_trust_path or None,
                "message_encryption": message_encryption,
            }
            self._protocol = winrm.protocol.Protocol(
                url,
                username=username,
                password=password,
                operation_timeout_sec=self._operation_timeout_s,
                read_timeout_sec=int(read_timeout_s),
                **options,
            )
            self._mount_channel(ca_trust_path=ca_trust_path, validate=server_cert_validation == "validate")
        except WinRMError as exc:
            raise ParameterError("winrm", _secrets.redact(str(exc))) from None
        with self._mapped("open a shell"):
            self._shell_id = self._open_shell()
        self._record({**self._entry(_channel.CHANNEL), "channel": self.channel})
        if self._requested_cp is None:
            known = self.run_state().get("codepage")
            if isinstance(known, int) and known > 0:
                self.codepage = known  # an earlier connection of this run read it (same host, same account)
            else:
                self.codepage = self._detect_codepage()
                self._save_state(codepage=self.codepage)
        self._remove_stale_temp_dirs()
        # A step whose cell fails never reaches its conn.close(); the runner then shuts the kernel down
        # gracefully, and this removes the temp folder as the interpreter exits (unregistered on close).
        atexit.register(self.close)
        _OPEN[id(self)] = self

    # --- shell ---
    def _open_shell(self) -> str:
        if self._requested_cp is not None:
            return str(self._protocol.open_shell(codepage=self._requested_cp))
        # No WINRS_CODEPAGE: the shell keeps the host's console code page (pypsrp does the same,
        # docs/windows-behaviour.md W-CODEPAGE-DECODE). Built with pywinrm's public build_wsman_header.
        req = {
            "env:Envelope": self._protocol.build_wsman_header(
                resource_uri=RESOURCE_URI_CMD, action=ACTION_CREATE
            )
        }
        req["env:Envelope"]["env:Header"]["w:OptionSet"] = {
            "w:Option": [{"@Name": "WINRS_NOPROFILE", "#text": "FALSE"}]
        }
        shell = req["env:Envelope"].setdefault("env:Body", {}).setdefault("rsp:Shell", {})
        shell["rsp:InputStreams"] = "stdin"
        shell["rsp:OutputStreams"] = "stdout stderr"
        root = ET.fromstring(self._protocol.send_message(xmltodict.unparse(req)))
        return next(str(node.text) for node in root.iter() if node.get("Name") == "ShellId")

    def _detect_codepage(self) -> int:
        # `chcp` with no argument prints the active code page ("Active code page: 437",
        # ja "現在のコード ページ: 932"); only the ASCII digits are read — in cp932 the second byte of
        # a double-byte character is never 0x30–0x39 (https://ss64.com/nt/chcp.html).
        result = self.run(["chcp"], what="detect the console code page", timeout_s=30)
        m = re.search(rb"(\d+)\D*$", result.stdout)
        if not m:
            raise VerificationFailed(
                self.host, "chcp printed no code page number", hint="set winrm.codepage explicitly"
            )
        return int(m.group(1))

    @contextmanager
    def _mapped(self, doing: str) -> Iterator[None]:
        """Turn pywinrm/requests errors into the kit's errors (messages redacted)."""
        try:
            yield
        except OpsError:
            raise
        except InvalidCredentialsError:  # HTTP 401 (W-WINRM-401): the user is named, never the password
            raise AuthenticationFailed(
                self.url,
                f"the server refused the credentials of winrm.username {self.username!r} (HTTP 401)",
                hint="check the account (DOMAIN\\user or a local user, an administrator of the server), the "
                "value winrm.password refers to, and winrm.transport (Basic is off on WinRM 2.0 and later: use ntlm)",
            ) from None
        except WinRMOperationTimeoutError:
            raise WSManFault(
                self.url, ERROR_WSMAN_OPERATION_TIMEDOUT, f"the server timed out while trying to {doing}"
            ) from None
        except WSManFaultError as exc:
            raise WSManFault(
                self.url,
                exc.wsman_fault_code,
                _secrets.redact(str(exc.reason)),
                hint=f"while trying to {doing}",
            ) from None
        except WinRMTransportError as exc:
            hint = "check the URL and the WinRM listener"
            if exc.code == 415 and self._protocol.transport.encryption is not None:
                # A WinRM 1.1 (Server 2003) listener has no message encryption (W-WINRM-11-NO-SEALING).
                hint = (
                    "a Server 2003 (WinRM 1.1) HTTP listener cannot decrypt WinRM message encryption: use its "
                    "HTTPS listener with winrm.tls: legacy-tls1.0, or winrm.message_encryption: never"
                )
            raise ConnectionFailed(self.url, f"HTTP {exc.code} while trying to {doing}", hint=hint) from None
        except requests.exceptions.SSLError as exc:
            raise _channel.tls_failure(exc, url=self.url, tls=self._tls) from None
        except requests.exceptions.Timeout:
            raise ConnectionFailed(
                self.url, f"no answer in time while trying to {doing}", hint="check the host and the network"
            ) from None
        except requests.exceptions.ConnectionError as exc:
            reason = type(exc.__context__ or exc).__name__
            inner = exc.args[0] if exc.args else None
            never_sent = isinstance(getattr(inner, "reason", inner), urllib3.exceptions.NewConnectionError)
            raise ConnectionFailed(
                self.url,
                f"the connection failed or dropped while trying to {doing} ({reason})",
                hint="check that the host is up and WinRM listens on that port; "
                + (
                    "no connection was made, so nothing reached the server"
                    if never_sent
                    else "a change may or may not have been made"
                ),
            ) from None
        except WinRMError as exc:
            raise ConnectionFailed(self.url, f"{_secrets.redact(str(exc))} while trying to {doing}") from None

    # --- commands ---
    def run(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float = 60,
        check: bool = True,
        stdin: bytes | None = None,
        what: str = "",
        redirect: tuple[str, str] | None = None,
        secrets: Sequence[str] = (),
        names: Sequence[str] | None = None,
        secret: bool = False,
    ) -> CommandResult:
        """Run one command (built by :func:`cmdline`) and wait for it, at most ``timeout_s`` seconds.

        ``check=True`` raises :class:`RemoteCommandFailed` on a non-zero exit code. ``secrets`` are
        registered for redaction (transcript, result, messages). A command line that carries
        ``secrets`` (a password) or is marked ``secret`` runs only over a confidential channel
        (:meth:`require_confidential`).
        """
        for value in secrets:
            _secrets.register(value)
        if secrets or secret:
            self.require_confidential(what or "run a command that carries a password")
        line = cmdline(argv, names=names, redirect=redirect)
        shown_argv = [_secrets.redact(str(a)) for a in argv]
        return self._execute(line, argv=shown_argv, timeout_s=timeout_s, check=check, stdin=stdin, what=what)

    def run_line(
        self, line: str, *, timeout_s: float = 60, check: bool = True, what: str = "", log_data: bool = True
    ) -> CommandResult:
        """Run a line already built by :func:`cmdline`/:func:`join_commands` (kit-internal)."""
        return self._execute(
            line, argv=None, timeout_s=timeout_s, check=check, stdin=None, what=what, log_data=log_data
        )

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
    ) -> CommandResult:
        if self._closed:
            raise ConnectionFailed(self.url, "the connection is closed")
        if self._command_cap is not None:
            timeout_s = min(timeout_s, self._command_cap)
        self.count_command()  # outside reading(): earlier reads are stale
        shown = _secrets.redact(log_line or line)
        started_utc = datetime.now(UTC)
        t0 = time.monotonic()
        deadline = t0 + timeout_s
        entry: dict[str, Any] = {
            "time_utc": started_utc.isoformat(),
            "host": self.host,
            "url": self.url,
            "what": what,
            "codepage": self.codepage,
        }
        if argv is not None:
            entry["argv"] = argv
        entry["command_line"] = shown
        try:
            stdout, stderr, code = self._roundtrip(line, stdin, deadline, shown, timeout_s)
        except OpsError as exc:
            entry.update(duration_s=round(time.monotonic() - t0, 3), error=_secrets.redact(str(exc)))
            self._record(entry)
            raise
        result = CommandResult(shown, code, stdout, stderr, round(time.monotonic() - t0, 3), self.codepage)
        entry.update(
            exit_code=code,
            duration_s=result.duration_s,
            bytes_out=len(line.encode("utf-8")) + (len(stdin) if stdin else 0),
            bytes_in=len(stdout) + len(stderr),
        )
        if stdin:
            entry["stdin"] = digest(stdin)
        if log_data:
            entry.update(stdout_b64=redacted_b64(stdout), stderr_b64=redacted_b64(stderr))
        else:
            entry.update(stdout=digest(stdout), stderr_b64=redacted_b64(stderr))
        self._record(entry)
        if check and code != 0:
            raise RemoteCommandFailed(
                host=self.host,
                command=shown,
                remote_exit_code=code,
                stderr=_secrets.redact(result.stderr_text),
                stdout=_secrets.redact(result.stdout_text) if log_data else "",
                what=what,
                argv=tuple(argv or ()),
            )
        return result

    def _record(self, entry: dict[str, Any]) -> None:
        if self._transcript is not None:
            self._transcript.write(entry)

    def _roundtrip(
        self, line: str, stdin: bytes | None, deadline: float, shown: str, timeout_s: float
    ) -> tuple[bytes, bytes, int]:
        p = self._protocol
        command_id = self._start_command(line)
        assert self._shell_id is not None
        shell_id = self._shell_id
        if stdin is not None:
            with self._mapped("send input"):
                p.send_command_input(shell_id, command_id, stdin, end=True)  # bytes: no cp437 re-encoding
        out: list[bytes] = []
        err: list[bytes] = []
        network_retries = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._terminate(shell_id, command_id)
                raise CommandTimedOut(self.url, shown, timeout_s)
            # Ask the server to wait no longer than our deadline (whole seconds, at least 1).
            p.operation_timeout_sec = max(1, min(self._operation_timeout_s, int(remaining + 0.999)))
            try:
                o, e, code, done = p.get_command_output_raw(shell_id, command_id)
            except WinRMOperationTimeoutError:
                continue  # the server's OperationTimeout: no output yet, ask again until our deadline
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout):
                # A Receive lost on the network is asked again (Receive only; output of the lost
                # response may be missing, so the result is then not trusted: see below).
                network_retries += 1
                if network_retries > RECEIVE_NETWORK_RETRIES:
                    with self._mapped("receive the output of the command"):
                        raise
                continue
            except WSManFaultError as exc:
                self._after_receive_fault(exc, shell_id, command_id, shown)
                with self._mapped("receive the output of the command"):
                    raise
            except Exception:
                with self._mapped("receive the output of the command"):
                    raise
                raise
            finally:
                p.operation_timeout_sec = self._operation_timeout_s
            out.append(o)
            err.append(e)
            if done:
                break
        # Signal terminate after Done, as MS-WSMV asks (docs/windows-behaviour.md W-WINRM-RECEIVE-LOST); failures here do not change the result.
        try:
            p.cleanup_command(shell_id, command_id)
        except Exception:
            pass
        if network_retries:
            # A lost ReceiveResponse may have carried output (WinRM 1.1 has no Receive SequenceId to
            # ask for it again), so the output is not trusted: fail safe, but say how it ended.
            raise ConnectionFailed(
                self.url,
                f"the connection dropped while receiving output; the command finished with exit code {code} "
                "but its output may be incomplete",
                hint="check the server's state before running it again",
            )
        return b"".join(out), b"".join(err), code

    def _start_command(self, line: str) -> str:
        for attempt in (1, 2):
            if self._shell_id is None:
                with self._mapped("reopen the shell"):
                    self._shell_id = self._open_shell()
            try:
                # pywinrm sends the line as rsp:Command (arguments joined unquoted: we pass none).
                return str(self._protocol.run_command(self._shell_id, line))
            except WSManFaultError as exc:
                if exc.wsman_fault_code in SHELL_GONE_CODES and attempt == 1:
                    # The server refused the Command: we believe it never ran (W-WINRM-SHELL-GONE, assumed)
                    # and resend it once on a new shell. The old shell is deleted first — for InvalidSelectors
                    # too (it should be gone; a Delete of a gone shell only faults): never two shells at once.
                    self._delete_shell(self._shell_id)
                    self._shell_id = None
                    continue
                if exc.wsman_fault_code in SHELL_GONE_CODES:
                    # Refused twice: whether either attempt ran is not known — never say it did not run.
                    raise WSManFault(
                        self.url,
                        exc.wsman_fault_code,
                        "the server refused the command twice (on the old shell and on a new one); it may "
                        "or may not have run",
                        hint="check the server's state before running it again",
                    ) from None
                with self._mapped("start the command"):
                    raise
            except Exception:
                with self._mapped("start the command"):
                    raise
                raise
        raise AssertionError("unreachable")

    def _after_receive_fault(self, exc: WSManFaultError, shell_id: str, command_id: str, shown: str) -> None:
        """A Receive faulted. 2150858843 + w:InvalidSelectors means the shell is gone *or* the live shell
        does not know the command id (docs/windows-behaviour.md W-WINRM-SHELL-GONE, W-WINRM-UNKNOWN-COMMAND):
        a Command on the shell tells which. A live shell is kept (no second shell is opened) and the
        command's outcome is reported unknown; a shell that is gone is replaced by the next command."""
        if is_invalid_selectors(exc.wsman_fault_code, exc.fault_subcode):
            if self._shell_alive(shell_id):
                raise WSManFault(
                    self.url,
                    exc.wsman_fault_code,
                    f"the server's shell is alive but no longer knows the command it was running ({shown}); "
                    "whether the command finished, and with what result, is unknown",
                    hint="check the server's state before running it again (the same shell is kept; no second "
                    "shell was opened)",
                ) from None
            self._shell_id = None  # the shell is gone: the next command opens one
        elif exc.wsman_fault_code in SHELL_GONE_CODES:
            self._delete_shell(shell_id)  # it may still exist: delete it before another is opened
            self._shell_id = None

    def _shell_alive(self, shell_id: str) -> bool:
        """Start ``ver`` (W-VER, read-only) on the shell: refused with InvalidSelectors = the shell is gone.
        Any other answer counts as alive, so a second shell is never opened on a guess."""
        try:
            probe = str(self._protocol.run_command(shell_id, cmdline(["ver"])))
        except WSManFaultError as exc:
            return not is_invalid_selectors(exc.wsman_fault_code, exc.fault_subcode)
        except Exception:
            return True
        self._terminate(shell_id, probe)
        return True

    def _delete_shell(self, shell_id: str | None) -> None:
        """Delete a shell the kit gives up (best effort: a shell that is gone faults, which is the answer)."""
        if shell_id is None:
            return
        try:
            self._protocol.close_shell(shell_id, close_session=False)  # keep the HTTP session (NTLM)
        except Exception:
            pass

    def _terminate(self, shell_id: str, command_id: str) -> None:
        """Signal terminate (…/signal/terminate, docs/windows-behaviour.md W-WINRM-RECEIVE-LOST); best effort."""
        p = self._protocol
        p.operation_timeout_sec = max(1, min(self._operation_timeout_s, 5))
        try:
            p.cleanup_command(shell_id, command_id)
        except Exception:
            pass
        finally:
            p.operation_timeout_sec = self._operation_timeout_s

    # --- for WS-Management questions besides running commands (opslib.winrm.identify, the lab check) ---
    @property
    def protocol(self) -> winrm.protocol.Protocol:
        """This connection's pywinrm protocol object (its HTTP session, credentials and encryption)."""
        return self._protocol

    def mapped(self, doing: str) -> contextlib.AbstractContextManager[None]:
        """A block whose pywinrm/requests errors are raised as the kit's errors, as a command's are."""
        return self._mapped(doing)

    def start_command(self, line: str) -> tuple[str, str]:
        """Start ``line`` (built by ``cmdline``) without reading its output: (shell id, command id)."""
        command_id = self._start_command(line)
        assert self._shell_id is not None
        return self._shell_id, command_id

    def terminate(self, shell_id: str, command_id: str) -> None:
        """Signal terminate a command started by :meth:`start_command` (best effort)."""
        self._terminate(shell_id, command_id)

    # --- closing ---
    def close(self) -> None:
        """Remove the temp folder (``rmdir /s /q``), delete the shell, close the HTTP session. Idempotent."""
        if self._closed:
            return
        try:
            if self._temp_dir is not None and self._shell_id is not None and not self.shares_temp_dir:
                # rmdir /s /q, then proven gone by `if exist` in the same line (its exit 0 proves nothing:
                # docs/windows-behaviour.md W-RMDIR-SQ-LOCKED, W-IF-EXIST), once more if it stays. What
                # stays is in self.remote_left and the transcript; the run's next connection tries again.
                self.remove_folder(self._temp_dir, what=REMOVE_TEMP)
            if self._shell_id is not None:
                try:
                    self._protocol.close_shell(self._shell_id)
                except Exception:
                    pass
        finally:
            self._closed = True
            self._shell_id = None
            atexit.unregister(self.close)
            _OPEN.pop(id(self), None)
            try:
                self._protocol.transport.close_session()
            except Exception:
                pass

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Connection({self.host!r}, {self.url!r}, codepage={self.codepage})"


# ``connect(url, *, username, password, host_label, ...)`` opens one WinRS shell (a context manager);
# ``password`` is the value, not a reference. It is the class itself: one signature, not two.
connect = Connection
