"""WS-Management questions the lab check asks besides running commands (``opslib.lab``).

* :func:`identify` — ``wsmid:Identify`` (DSP0226 §11,
  https://www.dmtf.org/standards/published_documents/DSP0226_1.1.pdf): ProtocolVersion, ProductVendor,
  ProductVersion (``OS: 6.1.7601 SP: 1.0 Stack: 2.0`` as ``winrm id`` prints it).
* :func:`create_fault` — the fault a Create for a resource URI the host has no plug-in for draws
  (https://learn.microsoft.com/en-us/windows/win32/winrm/windows-remote-management-error-constants).
* :func:`receive_timeout_fault` — the fault a Receive draws when a command prints nothing within a short
  ``w:OperationTimeout`` (MS-WSMV 3.1.4.1.6 OperationTimeout,
  https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-wsmv/).
* :func:`unknown_command_fault` — the fault a Receive / Signal for a command id the live shell does not know
  draws, and whether that shell lives on (docs/windows-behaviour.md W-WINRM-UNKNOWN-COMMAND).

Kept apart from :mod:`.shell` on purpose: these use the connection's pywinrm protocol object
(:attr:`Connection.protocol`, :meth:`Connection.start_command`) but are no part of the renewal path.
"""

from __future__ import annotations

import time
import uuid
from typing import Any
from xml.etree import ElementTree as ET

import xmltodict

from ..errors import WSManFault
from .quoting import cmdline
from .shell import Connection, WinRMOperationTimeoutError, WSManFaultError
from .wsman import ACTION_CREATE, ERROR_WSMAN_OPERATION_TIMEDOUT, is_invalid_selectors

NS_WSMID = "http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd"
NS_SOAP = "http://www.w3.org/2003/05/soap-envelope"


def identify(conn: Connection) -> dict[str, str]:
    """The host's IdentifyResponse fields (authenticated, so 2008+ disclose the OS version)."""
    envelope = (
        f'<s:Envelope xmlns:s="{NS_SOAP}" xmlns:wsmid="{NS_WSMID}"><s:Header/>'
        "<s:Body><wsmid:Identify/></s:Body></s:Envelope>"
    )
    with conn.mapped("identify the WS-Management service"):
        reply = conn.protocol.send_message(envelope)
    root = ET.fromstring(reply)
    facts: dict[str, str] = {}
    for name in ("ProtocolVersion", "ProductVendor", "ProductVersion", "SecurityProfiles"):
        node = root.find(f".//{{{NS_WSMID}}}{name}")
        if node is not None:
            facts[name] = "".join(node.itertext()).strip()
    return facts


def create_fault(conn: Connection, resource_uri: str) -> dict[str, Any]:
    """Ask for a shell of ``resource_uri``: ``{"fault_code": N, "subcode": …}``, or ``{"created": True}``
    when the host has such a plug-in (the shell is then deleted at once, best effort)."""
    p = conn.protocol
    req = {"env:Envelope": p.build_wsman_header(resource_uri=resource_uri, action=ACTION_CREATE)}
    shell = req["env:Envelope"].setdefault("env:Body", {}).setdefault("rsp:Shell", {})
    shell["rsp:InputStreams"] = "stdin"
    shell["rsp:OutputStreams"] = "stdout stderr"
    try:
        reply = p.send_message(xmltodict.unparse(req))
    except WSManFaultError as exc:
        return {"fault_code": int(exc.wsman_fault_code or 0), "subcode": str(exc.fault_subcode or "")}
    shell_id = next((str(n.text) for n in ET.fromstring(reply).iter() if n.get("Name") == "ShellId"), "")
    if shell_id:
        try:
            p.close_shell(shell_id)
        except Exception:
            pass
    return {"created": True}


def receive_timeout_fault(conn: Connection, line: str, *, operation_timeout_s: int = 1) -> dict[str, Any]:
    """Start ``line`` (built by ``cmdline``; it must print nothing for a while) and Receive once with a
    short OperationTimeout; report the fault code (or how the command ended), then terminate it."""
    p = conn.protocol
    t0 = time.monotonic()
    try:
        with conn.mapped("start the timeout probe"):
            shell_id, command_id = conn.start_command(line)
    except WSManFault as exc:  # refused at Command: the fault is the answer
        return {"fault_code": exc.code, "at": "Command", "waited_s": round(time.monotonic() - t0, 3)}
    saved = p.operation_timeout_sec
    outcome: dict[str, Any] = {}
    try:
        p.operation_timeout_sec = operation_timeout_s
        try:
            _o, _e, code, done = p.get_command_output_raw(shell_id, command_id)
            outcome = {"finished": bool(done), "exit_code": int(code) if done else None}
        except WinRMOperationTimeoutError:
            outcome = {"fault_code": ERROR_WSMAN_OPERATION_TIMEDOUT, "at": "Receive"}
        except WSManFaultError as exc:
            outcome = {"fault_code": int(exc.wsman_fault_code or 0), "at": "Receive"}
    finally:
        p.operation_timeout_sec = saved
        conn.terminate(shell_id, command_id)
    outcome["waited_s"] = round(time.monotonic() - t0, 3)
    return outcome


def unknown_command_fault(conn: Connection) -> dict[str, Any]:
    """Receive and Signal naming a made-up command id on the connection's live shell (W-WINRM-UNKNOWN-COMMAND):
    each one's fault code and subcode (or that it was accepted), then whether the same shell still takes a
    Command (``ver``, W-VER). Nothing runs but ``ver``; no second shell is opened."""
    p = conn.protocol
    with conn.mapped("start ver on the shell"):
        shell_id, command_id = conn.start_command(cmdline(["ver"]))
    conn.terminate(shell_id, command_id)
    made_up = str(uuid.uuid4()).upper()
    outcome: dict[str, Any] = {}
    for verb, send in (
        ("receive", lambda: p.get_command_output_raw(shell_id, made_up)),
        ("signal", lambda: p.cleanup_command(shell_id, made_up)),
    ):
        try:
            send()
            outcome[verb] = {"accepted": True}
        except WinRMOperationTimeoutError:
            outcome[verb] = {"fault_code": ERROR_WSMAN_OPERATION_TIMEDOUT, "subcode": "TimedOut"}
        except WSManFaultError as exc:
            outcome[verb] = {
                "fault_code": int(exc.wsman_fault_code or 0),
                "subcode": str(exc.fault_subcode or "").rpartition(":")[2],
                "invalid_selectors": is_invalid_selectors(exc.wsman_fault_code, exc.fault_subcode),
            }
    try:
        with conn.mapped("start ver on the same shell"):
            again, second = conn.start_command(cmdline(["ver"]))
        conn.terminate(again, second)
        outcome["shell_alive_after"] = True
        outcome["same_shell_after"] = again == shell_id
    except WSManFault as exc:
        outcome["shell_alive_after"] = False
        outcome["same_shell_after"] = False
        outcome["command_fault_code"] = exc.code
    return outcome
