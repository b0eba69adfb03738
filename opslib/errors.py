"""The kit's one error tree.

Every error the kit raises on purpose derives from :class:`OpsError`. Subclasses carry data and
set ``where`` (the host, file, key …) and ``problem`` (the short "what failed" text);
:meth:`OpsError.__str__` is the one place that formats ``where: problem — hint`` (what failed,
where, and what to do next). Third-party errors
are wrapped only at the edges (transport, loaders): ``raise ConnectionFailed(...) from exc``.

Exit codes for the command line: :class:`UsageError` (and its subclasses) → 2, every other
:class:`OpsError` → 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar


class OpsError(Exception):
    """Base of every error the kit raises on purpose."""

    exit_code: int = 1
    # True: raised only before anything on the server changed (a refusal) — what a failed step records
    # as ``server_changed: false`` (:func:`raised_before_any_change`), and the advice then reads.
    before_any_change: ClassVar[bool] = False
    where: str = ""  # the host, file, key or value the problem is about ("" = none)
    problem: str = ""  # what failed, short
    hint: str = ""  # what to do next

    def __init__(self, message: str = "", *, hint: str = "", where: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.problem = message
        self.hint = hint
        self.where = where

    def __str__(self) -> str:
        """``where: problem — hint``, leaving out the parts that are empty."""
        text = ": ".join(part for part in (self.where, self.problem) if part)
        if self.hint:
            text = f"{text} — {self.hint}" if text else self.hint
        return text


class UsageError(OpsError):
    """Bad command-line usage or bad parameters (exit code 2)."""

    exit_code = 2


class ParameterError(UsageError):
    """A parameters file or value is wrong; ``key`` names the key path (e.g. ``winrm.url``)."""

    before_any_change = True

    def __init__(self, key: str, problem: str, *, source: str = "", hint: str = "") -> None:
        super().__init__(problem, hint=hint, where=f"{source}: {key}" if source else key)
        self.key = key
        self.source = source


class UnsafeArgument(UsageError):
    """A value cmd.exe cannot carry safely; refused before anything is sent."""

    def __init__(self, value_name: str, reason: str) -> None:
        super().__init__(reason, hint="choose a value without it", where=value_name)
        self.value_name = value_name
        self.reason = reason
        self.problem = f"{reason}; cmd.exe cannot carry it safely, so nothing was sent"


class SecretUnavailable(UsageError):
    """A secret reference (``env:NAME``, ``keyring:service/user``, ``prompt``) could not be resolved."""

    def __init__(self, reference: str, problem: str) -> None:
        super().__init__(problem, where=f"secret {reference}")
        self.reference = reference


class CertificateError(OpsError):
    """A certificate source could not be read or fails a check. ``source`` names the file/endpoint."""

    before_any_change = True

    def __init__(self, source: str, problem: str, *, hint: str = "") -> None:
        super().__init__(problem, hint=hint, where=source)
        self.source = source


class EndpointError(CertificateError):
    """A TLS endpoint could not be reached or did not complete a handshake."""


# --- transport -----------------------------------------------------------------------------------


class TransportError(OpsError):
    """Base of the WinRM transport errors. ``host`` is the endpoint URL (never with credentials)."""

    def __init__(self, host: str, problem: str = "", *, hint: str = "") -> None:
        super().__init__(problem, hint=hint, where=host)
        self.host = host


class ConnectionFailed(TransportError):
    """The endpoint could not be reached, or the connection dropped mid-conversation."""


class AuthenticationFailed(TransportError):
    """The server refused the credentials (HTTP 401)."""


@dataclass(frozen=True)
class WSManFaultInfo:
    code: int | None
    reason: str
    subcode: str = ""


class WSManFault(TransportError):
    """The server answered with a WS-Management SOAP fault. ``code`` is the WSManFault Code number."""

    def __init__(self, host: str, code: int | None, reason: str, *, hint: str = "") -> None:
        number = f" {code} (0x{code:08X})" if code is not None else ""
        super().__init__(host, f"WS-Management fault{number}: {reason}", hint=hint)
        self.code = code
        self.reason = reason


class CommandTimedOut(TransportError):
    """A remote command did not finish before its deadline; it was terminated."""

    def __init__(self, host: str, command: str, timeout_s: float) -> None:
        super().__init__(host, f"command timed out after {timeout_s:g} s: {command}")
        self.command = command
        self.timeout_s = timeout_s
        self.hint = "the command was terminated; check the server, then run again (or resume)"


@dataclass
class RemoteCommandFailed(OpsError):
    """A remote command exited non-zero. ``command`` is the redacted command line.

    ``remote_exit_code`` is the remote command's exit code; ``exit_code`` stays the CLI's (1), so a remote
    code such as 256 or 9009 never becomes the process's exit status."""

    host: str
    command: str
    remote_exit_code: int
    stderr: str = ""
    stdout: str = ""
    what: str = ""
    hint: str = ""  # type: ignore[assignment]
    argv: Sequence[str] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        Exception.__init__(self, self.command)
        self.message = self.what
        self.where = self.host
        what = f"{self.what}: " if self.what else ""
        detail = " ".join(line.strip() for line in (self.stderr or self.stdout).strip().splitlines())
        tail = f"; the server said: {detail[:400]}" if detail else ""
        self.problem = (
            f"{what}`{self.command}` exited with {self.remote_exit_code} "
            f"(0x{self.remote_exit_code & 0xFFFFFFFF:08X}){tail}"
        )


# --- server state / operations -------------------------------------------------------------------


class CapabilityMissing(OpsError):
    """The target lacks something a verb needs (a certutil verb, cscript, admin rights …)."""

    def __init__(self, host: str, capability: str, *, hint: str = "") -> None:
        super().__init__(f"the server lacks {capability}", hint=hint, where=host)
        self.host = host
        self.capability = capability
        self.problem = f"the server lacks {capability}; nothing was changed"


class PreconditionFailed(OpsError):
    """The server is not in a state the step can start from. Nothing was changed."""

    before_any_change = True

    def __init__(self, host: str, problem: str, *, hint: str = "") -> None:
        super().__init__(problem, hint=hint, where=host)
        self.host = host


class SiteNotFound(PreconditionFailed):
    """A site name matched no site, or several."""


class VerificationFailed(OpsError):
    """A read-back after a change did not show the expected state."""

    def __init__(self, host: str, problem: str, *, hint: str = "") -> None:
        super().__init__(problem, hint=hint, where=f"{host}: check failed")
        self.host = host


# --- runbook / evidence --------------------------------------------------------------------------


class StepFailed(OpsError):
    """A runbook step's notebook raised. Names the step, the failing cell and the notebook path."""

    def __init__(
        self,
        step: str,
        notebook: str,
        cause: str,
        *,
        cell: int | None = None,
        hint: str = "",
        server_changed: bool | None = None,
    ) -> None:
        at_cell = f", cell {cell}" if cell is not None else ""
        super().__init__(cause, hint=hint, where=f"step {step} failed{at_cell}")
        self.step = step
        self.notebook = notebook
        self.cause = cause
        self.cell = cell
        self.problem = f"{cause} (notebook: {notebook})"
        # False: the step's error was one raised before anything on the server changed; None: unknown.
        self.server_changed = server_changed


def raised_before_any_change(error_class: str) -> bool:
    """Whether ``error_class`` (an exception's class name, e.g. a Jupyter error output's ``ename``)
    names one of the kit's errors raised only before anything on the server changed."""
    pending: list[type[OpsError]] = [OpsError]
    while pending:
        cls = pending.pop()
        if cls.__name__ == error_class:
            return cls.before_any_change
        pending.extend(cls.__subclasses__())
    return False


class EvidenceError(OpsError):
    """An evidence folder is missing, unreadable, or fails its integrity check."""

    def __init__(self, path: str, problem: str, *, hint: str = "") -> None:
        super().__init__(problem, hint=hint, where=path)
        self.path = path


class RunLocked(OpsError):
    """Another run holds the lock for the same host and site."""

    def __init__(self, lock_path: str, holder: str) -> None:
        super().__init__(f"another run holds {lock_path} ({holder})")
        self.lock_path = lock_path
        self.holder = holder
        self.hint = "wait for it to finish, or remove the lock file if that run is dead"
