"""WS-Management facts the transport decides by: fault codes, the cmd shell's resource URI, the Create
action (DSP0226, MS-WSMV). No pywinrm here: :mod:`.shell` is the only module that imports it."""

from __future__ import annotations

ERROR_WSMAN_OPERATION_TIMEDOUT = (
    2150858793  # w:TimedOut (docs/windows-behaviour.md W-WINRM-TIMEOUT-FAULT, W-WINRM-TIMEOUT-FAULT)
)
ERROR_WSMAN_SHELL_NOT_FOUND = (
    2150858843  # shell gone (docs/windows-behaviour.md W-WINRM-SHELL-GONE, W-WINRM-TIMEOUT-FAULT)
)
ERROR_WSMAN_QUOTA_MAX_COMMANDS = (
    2150859174  # too many commands per shell (docs/windows-behaviour.md W-WINRM-SHELL-GONE)
)
ERROR_WINRS_SHELL_GONE_WIN32 = (
    2147943418  # 0x800703FA, reset by the Ruby gem (docs/windows-behaviour.md W-WINRM-SHELL-GONE)
)
SHELL_GONE_CODES = frozenset(
    {ERROR_WSMAN_SHELL_NOT_FOUND, ERROR_WSMAN_QUOTA_MAX_COMMANDS, ERROR_WINRS_SHELL_GONE_WIN32}
)
RESOURCE_URI_CMD = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"
ACTION_CREATE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create"
