"""The WinRM transport: one WinRS shell per connection, the one quoting function, transfers, transcript.

* :mod:`.quoting` — :func:`cmdline` (the one quoting function), :func:`join_commands`, :class:`Raw`, :func:`codec`.
* :mod:`.shell` — :class:`Connection` (the only module that imports pywinrm), :func:`connect_params`.
* :mod:`.transfer` — upload/download with certutil, size and SHA-256 checks, staging files.
* :mod:`.transcript` — :class:`CommandResult`, :class:`Transfer`, the JSON-lines :class:`Transcript`.

Inside this package ``import winrm`` is absolute, so :mod:`.shell` gets pywinrm, not this package.
"""

from __future__ import annotations

from .quoting import (
    CMD_LINE_MAX,
    CODEPAGE_CODECS,
    ECHO_CHUNK_MAX,
    Raw,
    check_argument,
    cmdline,
    codec,
    join_commands,
)
from .shell import (
    ACTION_CREATE,
    ERROR_WINRS_SHELL_GONE_WIN32,
    ERROR_WSMAN_OPERATION_TIMEDOUT,
    ERROR_WSMAN_QUOTA_MAX_COMMANDS,
    ERROR_WSMAN_SHELL_NOT_FOUND,
    RECEIVE_NETWORK_RETRIES,
    RESOURCE_URI_CMD,
    SHELL_GONE_CODES,
    TRANSPORTS,
    Connection,
    connect,
    connect_params,
)
from .transcript import (
    CREATE_TEMP,
    REMOVE_STALE_TEMP,
    REMOVE_TEMP,
    CommandResult,
    Transcript,
    Transfer,
    stale_temp_dirs,
)
from .transfer import PEM_BEGIN, PEM_END, Transfers

__all__ = [
    "ACTION_CREATE",
    "CMD_LINE_MAX",
    "CODEPAGE_CODECS",
    "CREATE_TEMP",
    "ECHO_CHUNK_MAX",
    "ERROR_WINRS_SHELL_GONE_WIN32",
    "ERROR_WSMAN_OPERATION_TIMEDOUT",
    "ERROR_WSMAN_QUOTA_MAX_COMMANDS",
    "ERROR_WSMAN_SHELL_NOT_FOUND",
    "PEM_BEGIN",
    "PEM_END",
    "RECEIVE_NETWORK_RETRIES",
    "REMOVE_STALE_TEMP",
    "REMOVE_TEMP",
    "RESOURCE_URI_CMD",
    "SHELL_GONE_CODES",
    "TRANSPORTS",
    "CommandResult",
    "Connection",
    "Raw",
    "Transcript",
    "Transfer",
    "Transfers",
    "check_argument",
    "cmdline",
    "codec",
    "connect",
    "connect_params",
    "join_commands",
    "stale_temp_dirs",
]
