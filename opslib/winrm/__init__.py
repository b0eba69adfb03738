"""The WinRM transport: one WinRS shell per connection, the one quoting function, transfers, transcript.

* :mod:`.quoting` — :func:`cmdline` (the one quoting function), :func:`join_commands`, :class:`Raw`, :func:`codec`.
* :mod:`.shell` — :class:`Connection` (the only module that imports pywinrm); :mod:`.from_params` —
  :func:`connect_params` (a connection from the parameters file's ``winrm`` mapping).
* :mod:`.transfer` — upload/download with certutil, size and SHA-256 checks, staging files.
* :mod:`.channel` — ``winrm.tls`` (a TLS context per connection), the channel facts, the cleartext guard.
* :mod:`.runfolder` — the remote temp folder and what a run's connections share (``connection.json``).
* :mod:`.wsman` — WS-Management fault codes, the cmd resource URI, the Create action.
* :mod:`.transcript` — :class:`CommandResult`, :class:`Transfer`, the JSON-lines :class:`Transcript`.

Inside this package ``import winrm`` is absolute, so :mod:`.shell` gets pywinrm, not this package.
"""

from __future__ import annotations

from .channel import MESSAGE_ENCRYPTION, TLS_SETTINGS, ChannelAdapter, legacy_context
from .from_params import connect_params
from .quoting import (
    CMD_LINE_MAX,
    CODEPAGE_CODECS,
    ECHO_CHUNK_MAX,
    Bare,
    Raw,
    check_argument,
    cmdline,
    codec,
    join_commands,
)
from .shell import (
    RECEIVE_NETWORK_RETRIES,
    STATE_FILE,
    TRANSPORTS,
    Connection,
    connect,
    open_connections,
)
from .transcript import (
    CREATE_TEMP,
    REMOVE_STALE_TEMP,
    REMOVE_TEMP,
    CommandResult,
    Transcript,
    Transfer,
    channels,
    cleartext_acceptances,
    stale_temp_dirs,
)
from .transfer import PEM_BEGIN, PEM_END, Transfers
from .wsman import (
    ACTION_CREATE,
    ERROR_WINRS_SHELL_GONE_WIN32,
    ERROR_WSMAN_OPERATION_TIMEDOUT,
    ERROR_WSMAN_QUOTA_MAX_COMMANDS,
    ERROR_WSMAN_SHELL_NOT_FOUND,
    RESOURCE_URI_CMD,
    SHELL_GONE_CODES,
)

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
    "MESSAGE_ENCRYPTION",
    "PEM_BEGIN",
    "PEM_END",
    "RECEIVE_NETWORK_RETRIES",
    "REMOVE_STALE_TEMP",
    "REMOVE_TEMP",
    "RESOURCE_URI_CMD",
    "SHELL_GONE_CODES",
    "TLS_SETTINGS",
    "TRANSPORTS",
    "ChannelAdapter",
    "CommandResult",
    "Connection",
    "Bare",
    "Raw",
    "Transcript",
    "Transfer",
    "Transfers",
    "channels",
    "check_argument",
    "cleartext_acceptances",
    "cmdline",
    "codec",
    "connect",
    "STATE_FILE",
    "connect_params",
    "join_commands",
    "legacy_context",
    "open_connections",
    "stale_temp_dirs",
]
