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
# Real servers answer 2150858843 with subcode w:InvalidSelectors both for a shell that is gone and for a
# command id the live shell does not know (pypsrp's recordings test_psrp_is_alive_invalid_selectors and
# test_winrs_bad_cmd_id; docs/windows-behaviour.md W-WINRM-SHELL-GONE, W-WINRM-UNKNOWN-COMMAND). Code and
# subcode cannot tell the two apart on a Receive; a Command on the shell can (it names no command id).
SUBCODE_INVALID_SELECTORS = "InvalidSelectors"


def is_invalid_selectors(code: int | None, subcode: str | None) -> bool:
    """2150858843 with subcode w:InvalidSelectors (any prefix): a selector — the shell or the command id —
    names nothing on the server. Decided by code and subcode, never by the fault's text."""
    return (
        code == ERROR_WSMAN_SHELL_NOT_FOUND
        and (subcode or "").rpartition(":")[2] == SUBCODE_INVALID_SELECTORS
    )


RESOURCE_URI_CMD = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"
ACTION_CREATE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create"
