"""A real WS-Management (WinRS) endpoint in front of the emulated host.

Unmodified pywinrm and pypsrp talk to it over HTTP/1.1 keep-alive (optionally TLS), as to WinRM
(MS-WSMV, https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-wsmv/):

* authentication (``wsauth.py``/``ntlm.py``): ``auth="basic"`` checks Basic on every POST (401,
  ``WWW-Authenticate: Basic realm="WSMAN"``, empty body) — the historical rehearsal default;
  ``auth="negotiate"`` is WinRM as shipped: NTLM under Negotiate per connection, message encryption
  over HTTP, Basic and unencrypted SOAP refused unless allowed; TLS modes of Server 2003 in ``tlsconfig.py``;
* ``wsmid:Identify`` (also unauthenticated on 2008+); Create only for the cmd shell resource URI;
  ``rsp:Environment``/``rsp:WorkingDirectory``; ``cmd /c X`` as the program runs X;
* dispatch on ``a:Action``: Create, Command, Send, Receive, Signal, Delete; every response carries
  ``a:RelatesTo`` = the request's ``a:MessageID``;
* ``w:Selector Name="ShellId"``, per-shell ``WINRS_CODEPAGE``, ``WINRS_SKIP_CMD_SHELL``;
* ``w:OperationTimeout``: a Receive with no output yet waits up to it, then answers the
  ``w:TimedOut`` fault (2150858793);
* Receive returns base64 streams in chunks so that each response stays below the request's
  ``w:MaxEnvelopeSize``, then ``CommandState …/Done`` with ``rsp:ExitCode``;
* SOAP faults as HTTP 500 with ``f:WSManFault Code`` (named constants below).

A Windows Server 2003 host (WinRM 1.1) answers Create in the v1 form (anonymous ``a:Address``,
``uuid:`` ShellId, no ``rsp:Shell``; https://github.com/WinRb/WinRM tests/spec/stubs/responses/open_shell_v1.xml);
newer hosts add ``rsp:Shell`` as WinRM 2.0 does.

Fault injection (``FaultSpec``): ``before:PROGRAM[#N]:ACTION`` / ``after:PROGRAM[#N]:ACTION``.
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
import logging
import re
import socket
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape

from ..errors import UsageError
from . import cmd, faultpoints, tlsconfig
from .host import CommandResult, Host
from .ntlm import channel_bindings_for, write_user_file
from .wsauth import AuthHandler

log = logging.getLogger(__name__)

# --- names and codes ------------------------------------------------------------------------------

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "x": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "p": "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "f": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
}
NS_WSMID = "http://schemas.dmtf.org/wbem/wsman/identity/1/wsmanidentity.xsd"
RESOURCE_URI_CMD = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"
ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
ACTION_CREATE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create"
ACTION_DELETE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete"
ACTION_COMMAND = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command"
ACTION_SEND = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Send"
ACTION_RECEIVE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive"
ACTION_SIGNAL = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Signal"
ACTION_FAULT = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"
STATE_DONE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done"
STATE_RUNNING = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Running"

# WSManFault codes (winerror/wsmerror.h; values as published in windows-docs-rs RemoteManagement).
ERROR_WSMAN_OPERATION_TIMEDOUT = 2150858793  # 0x80338029, subcode w:TimedOut
# 0x8033805B, subcode w:InvalidSelectors, for a shell that is gone *and* for a command id the live shell does
# not know: pypsrp's recordings of real servers, tests/responses/test_winrs_bad_cmd_id.yml and
# test_psrp_is_alive_invalid_selectors.yml (https://github.com/jborean93/pypsrp; W-WINRM-SHELL-GONE,
# W-WINRM-UNKNOWN-COMMAND, tests/conformance/winrm/).
ERROR_WSMAN_UNEXPECTED_SELECTORS = 2150858843
ERROR_WSMAN_SCHEMA_VALIDATION = 2150858817  # 0x80338041, subcode w:SchemaValidationError
ERROR_WSMAN_ACTION_NOT_SUPPORTED = 2150858771  # 0x80338013, subcode a:ActionNotSupported
ERROR_WSMAN_OPTIONS_NOT_SUPPORTED = 2150858833  # 0x80338051: e.g. a code page the host lacks
ERROR_WSMAN_HTTP_STATUS_SERVER_ERROR = 2150859120  # 0x80338170: used for injected "fault500"
ERROR_FILE_NOT_FOUND_HRESULT = 2147942402  # 0x80070002: skip_cmd_shell and no such program
# 0x8033803B, subcode w:DestinationUnreachable: Create for a resource URI this host has no plug-in for
# (https://learn.microsoft.com/en-us/windows/win32/winrm/windows-remote-management-error-constants)
ERROR_WSMAN_INVALID_RESOURCE_URI = 2150858811

FAULT_DETAIL_UNEXPECTED_SELECTORS = (
    "http://schemas.dmtf.org/wbem/wsman/1/wsman/faultDetail/UnexpectedSelectors"
)

AUTH_MODES = ("basic", "ntlm", "negotiate")
WINRM_VERSIONS = ("1.1", "2.0", "3.0")
# What each emulated Windows ships (the lead's defaults table; start() keeps Basic/HTTP unless asked):
# Server 2003 R2 + KB936059: WinRM 1.1, Basic off, AllowUnencrypted off; HTTP "authenticates but does not
# encrypt", so the operator's listener is HTTPS on 443 with Schannel TLS 1.0
# (https://learn.microsoft.com/en-us/windows/win32/winrm/installation-and-configuration-for-windows-remote-management).
# Server 2008 R2+: WinRM 2.0/3.0, Basic=false, AllowUnencrypted=false: Negotiate (NTLM) with message
# encryption over HTTP 5985, or HTTPS 5986 (same page, "default settings").
WINDOWS_DEFAULTS: dict[str, dict[str, Any]] = {
    "5.2": {"winrm_version": "1.1", "auth": "negotiate", "https": True, "tls": "tls1.0"},
    "6.1": {"winrm_version": "2.0", "auth": "negotiate", "https": False, "tls": "modern"},
    "10.0": {"winrm_version": "3.0", "auth": "negotiate", "https": False, "tls": "modern"},
}
# wsmid:ProductVersion "OS: <version> SP: <sp> Stack: <winrm>" as `winrm id` prints it, e.g.
# "OS: 6.1.7601 SP: 1.0 Stack: 2.0" (https://github.com/PowerShell/psl-omi-provider/issues/113).
SERVICE_PACKS = {"5.2": "2.0", "6.1": "1.0"}


def default_winrm_version(windows_version: str) -> str:
    major_minor = ".".join(windows_version.split(".")[:2])
    if major_minor.startswith("5."):
        return "1.1"
    return "2.0" if major_minor in ("6.0", "6.1") else "3.0"


MAX_ENVELOPE_DEFAULT = 153600  # pywinrm's w:MaxEnvelopeSize; WinRM 1.1's MaxEnvelopeSizekb 150
ENVELOPE_OVERHEAD = 4096  # room for the SOAP header and stream tags in a ReceiveResponse
OPERATION_TIMEOUT_DEFAULT_S = 60.0  # MaxTimeoutms 60000 (W-WINRM-TIMEOUT-FAULT)
OPERATION_TIMEOUT_MAX_S = 60.0
STREAM_AFTER_S = 0.5  # a command that ran this long streams its output (State Running first)  # the server clamps larger values silently (MS-WSMV 3.1.4.1.6)

# --- fault injection ------------------------------------------------------------------------------

# forget: the command runs, then the shell no longer knows its id (a Receive gets W-WINRM-UNKNOWN-COMMAND).
# refuse: the Command is answered with 2150859174 (too many commands; the shell still exists) — "after": once
# the command ran, the opposite of the kit's belief that a refused Command never ran (W-WINRM-SHELL-GONE).
FAULT_ACTIONS = ("drop", "timeout", "fault500", "fail", "forget", "refuse")
ERROR_WSMAN_QUOTA_MAX_COMMANDS = 2150859174  # 0x803381A6 (W-WINRM-SHELL-GONE); subcode w:QuotaLimit [I]
_FAULT = re.compile(
    r"^(?P<when>before|after):(?P<program>[^:#]+)(?:#(?P<nth>\d+))?:(?P<action>[a-z0-9]+)$", re.I
)


@dataclass(frozen=True)
class FaultSpec:
    """``before|after:PROGRAM[#N]:ACTION`` — PROGRAM is a lower-case command name, ``*``, or a named
    fault point (:mod:`.faultpoints`: ``swap``, ``export``, ``swap.add``, …)."""

    when: str
    program: str
    nth: int | None
    action: str

    @classmethod
    def parse(cls, spec: str) -> FaultSpec:
        m = _FAULT.match(spec.strip())
        if not m or m.group("action").lower() not in FAULT_ACTIONS:
            raise UsageError(
                f"bad fault spec {spec!r}",
                hint="use before:PROGRAM[#N]:ACTION or after:PROGRAM[#N]:ACTION with ACTION one of "
                + ", ".join(FAULT_ACTIONS)
                + " (e.g. after:certutil#2:drop)",
            )
        nth = int(m.group("nth")) if m.group("nth") else None
        if nth is not None and nth < 1:
            raise UsageError(f"bad fault spec {spec!r}", hint="#N counts from 1")
        if "." in m.group("program") and not faultpoints.is_point(m.group("program")):
            raise UsageError(
                f"bad fault spec {spec!r}: no fault point {m.group('program')!r}",
                hint="the names: " + ", ".join(faultpoints.NAMES) + " (opslib rehearse faults lists them)",
            )
        return cls(m.group("when").lower(), m.group("program").lower(), nth, m.group("action").lower())

    def __str__(self) -> str:
        nth = f"#{self.nth}" if self.nth else ""
        return f"{self.when}:{self.program}{nth}:{self.action}"


# --- shells and commands --------------------------------------------------------------------------


@dataclass
class _Command:
    id: str
    command_line: str
    program: str
    skip_cmd_shell: bool
    fault: FaultSpec | None = None
    stdin: bytearray = field(default_factory=bytearray)
    stdin_closed: bool = False
    started: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    result: CommandResult | None = None
    out_pos: int = 0
    err_pos: int = 0
    received: int = 0  # ReceiveResponses sent: the first one of a slow command's output streams State Running
    ran_s: float = 0.0  # how long the command ran (a slow one streams its output, see _receive)
    cancelled: threading.Event = field(default_factory=threading.Event)  # Signal terminate


@dataclass
class _Shell:
    id: str
    codepage: int
    commands: dict[str, _Command] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)  # rsp:Environment
    cwd: str = ""  # rsp:WorkingDirectory


class SoapFault(Exception):
    """Answered as HTTP 500 with a SOAP/WS-Management fault."""

    def __init__(
        self, code: int, subcode: str, reason: str, *, sender: bool = False, detail: str = ""
    ) -> None:
        super().__init__(reason)
        self.code = code
        self.subcode = subcode
        self.reason = reason
        self.sender = sender
        self.detail = detail  # w:FaultDetail URI, when Windows sends one


class _Drop(Exception):
    """Close the TCP connection without answering (fault injection ``drop``)."""


def _shell_gone(shell_id: str) -> SoapFault:
    return SoapFault(
        ERROR_WSMAN_UNEXPECTED_SELECTORS,
        "w:InvalidSelectors",
        f"The request for the Windows Remote Shell with ShellId {shell_id} failed because the shell was not "
        "found on the server. Possible causes are: the specified ShellId is incorrect or the shell no longer "
        "exists on the server. Provide the correct ShellId or create a new shell and retry the operation.",
        sender=True,
        detail=FAULT_DETAIL_UNEXPECTED_SELECTORS,
    )


def _unknown_command() -> SoapFault:
    """A command id the live shell does not know, as recorded (W-WINRM-UNKNOWN-COMMAND)."""
    return SoapFault(
        ERROR_WSMAN_UNEXPECTED_SELECTORS,
        "w:InvalidSelectors",
        "The Windows Remote Shell received a request to perform an operation on a command identifier "
        "that does not exist. Either the command has completed execution or the client specified an "
        "invalid command identifier.",
        sender=True,
        detail=FAULT_DETAIL_UNEXPECTED_SELECTORS,
    )


def _timed_out() -> SoapFault:
    return SoapFault(
        ERROR_WSMAN_OPERATION_TIMEDOUT,
        "w:TimedOut",
        "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.",
    )


def _duration_s(text: str | None) -> float | None:
    """xs:duration such as ``PT20S``, ``PT20.000S``, ``PT1M30S`` → seconds (None if unparsable)."""
    if not text:
        return None
    m = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d*)?)S)?)?", text.strip())
    if not m or text.strip() in ("P", "PT"):
        return None
    d, h, mi, s = m.groups()
    return int(d or 0) * 86400 + int(h or 0) * 3600 + int(mi or 0) * 60 + float(s or 0)


# --- the server -----------------------------------------------------------------------------------


class WSManServer(ThreadingHTTPServer):
    """The WS-Management endpoint. One instance serves one emulated host."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        host: Host,
        *,
        user: str,
        password: str,
        listen: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        faults: tuple[str, ...] | list[str] = (),
        auth: str = "basic",
        allow_basic: bool | None = None,
        allow_unencrypted: bool | None = None,
        winrm_version: str | None = None,
        tls: str = "modern",
        secrets_dir: Path | None = None,
        cert_file: Path | None = None,
        latency_ms: int = 0,
    ) -> None:
        """``auth="basic"`` is the historical rehearsal endpoint (Basic, unencrypted HTTP allowed).

        ``auth="ntlm"``/``"negotiate"`` (the same: NTLM under the Negotiate scheme) is WinRM as shipped:
        Basic only with ``allow_basic``, unencrypted SOAP over HTTP only with ``allow_unencrypted``.
        ``secrets_dir`` holds the NTLM account file (a private temporary folder by default);
        ``cert_file`` (the HTTPS listener's certificate) lets NTLM check channel binding tokens.
        ``latency_ms`` delays every request by that much before it is read, as one round trip of a
        slow link would (a WAN between an operations centre and a data centre: 50-100 ms).
        """
        if not 0 <= latency_ms <= 10_000:
            raise UsageError(f"latency {latency_ms} ms is out of range", hint="use 0 to 10000")
        self.latency_s = latency_ms / 1000.0
        if auth not in AUTH_MODES:
            raise UsageError(f"unknown auth {auth!r}", hint="use one of " + ", ".join(AUTH_MODES))
        if winrm_version is not None and winrm_version not in WINRM_VERSIONS:
            raise UsageError(
                f"unknown WinRM version {winrm_version!r}", hint="use one of " + ", ".join(WINRM_VERSIONS)
            )
        tlsconfig.check_mode(tls)
        if listen.lower() == "localhost":
            listen = "127.0.0.1"
        try:
            loopback = ipaddress.ip_address(listen).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise UsageError(
                f"refusing to listen on {listen}",
                hint="the rehearsal host listens on loopback only (127.0.0.1 or ::1)",
            )
        self.address_family = socket.AF_INET6 if ":" in listen else socket.AF_INET
        super().__init__((listen, port), _Handler)
        self.host = host
        self.user = user
        self._password = password
        self.ssl_context = ssl_context
        self.tls = tls
        self.negotiate = auth in ("ntlm", "negotiate")
        self.allow_basic = (not self.negotiate) if allow_basic is None else allow_basic
        self.allow_unencrypted = (not self.negotiate) if allow_unencrypted is None else allow_unencrypted
        self.winrm_version = winrm_version or default_winrm_version(host.windows_version)
        self._tmp: Any = None
        self.user_file: Path | None = None
        self.channel_bindings = (
            channel_bindings_for(cert_file.read_bytes()) if cert_file and ssl_context is not None else None
        )
        if self.negotiate:
            if secrets_dir is None:
                import tempfile

                self._tmp = tempfile.TemporaryDirectory(prefix="opslib-wsman-")
                secrets_dir = Path(self._tmp.name)
            self.user_file = write_user_file(
                Path(secrets_dir), user=user, password=password, hostname=host.hostname
            )
        self.shells: dict[str, _Shell] = {}
        self.lock = threading.Lock()
        self.request_count = 0
        self.faults: list[FaultSpec] = []
        self._point_names: list[str] = []  # the named fault points of the commands run so far
        self._program_counts: dict[str, int] = {}
        self.command_log: list[tuple[str, int, str]] = []  # (program, its N-th command, point name)
        self._fault_counts: dict[FaultSpec, int] = {}
        self.set_faults(faults)
        cmd.prepare_host(host)

    # --- TLS: wrap each accepted socket (the handshake runs in the handler thread) ---
    def get_request(self) -> tuple[Any, Any]:
        sock, addr = super().get_request()
        if self.ssl_context is not None and self.tls != "tls1.0-no-aes":
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def server_close(self) -> None:
        super().server_close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    @property
    def basic_offered(self) -> bool:
        """Basic needs Auth/Basic=true and, over HTTP, AllowUnencrypted=true (installation-and-configuration page)."""
        return self.allow_basic and (self.ssl_context is not None or self.allow_unencrypted)

    def challenges(self) -> list[str]:
        """The ``WWW-Authenticate`` values of a 401: one per enabled scheme, as WinRM sends them."""
        out = ["Negotiate"] if self.negotiate else []
        if self.basic_offered:
            out.append('Basic realm="WSMAN"')
        return out

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended with an error", client_address, exc_info=True)

    def set_faults(
        self, specs: tuple[str, ...] | list[str] | tuple[FaultSpec, ...] | list[FaultSpec]
    ) -> None:
        parsed = [s if isinstance(s, FaultSpec) else FaultSpec.parse(s) for s in specs]
        with self.lock:
            self.faults = parsed
            self._fault_counts = {}

    def check_auth(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        # Windows compares the user name case-insensitively; the password exactly.
        return hmac.compare_digest(user.lower().encode(), self.user.lower().encode()) & hmac.compare_digest(
            password.encode(), self._password.encode()
        )

    def match_fault(self, program: str, command_line: str = "") -> FaultSpec | None:
        """The first fault spec that fires for this command (counts every matching command); every
        command is logged in :attr:`command_log` as (program, its count, point name)."""
        hit: FaultSpec | None = None
        with self.lock:
            name = faultpoints.name_of(program, command_line, self._point_names)
            if name:
                self._point_names.append(name)
            self._program_counts[program] = self._program_counts.get(program, 0) + 1
            self.command_log.append((program, self._program_counts[program], name))
            for spec in self.faults:
                if faultpoints.is_point(spec.program):
                    if not faultpoints.matches(spec.program, name):
                        continue
                elif spec.program not in ("*", program):
                    continue
                count = self._fault_counts.get(spec, 0) + 1
                self._fault_counts[spec] = count
                if hit is None and (spec.nth is None or spec.nth == count):
                    hit = spec
        return hit


_SHELL_ACTIONS = (ACTION_COMMAND, ACTION_SEND, ACTION_RECEIVE, ACTION_SIGNAL, ACTION_DELETE)
# `cmd /c STRING` / `cmd.exe /s /c "STRING"` as the WinRS program: cmd strips the outer quotes of STRING
# (https://learn.microsoft.com/en-us/windows-server/administration/windows-commands/cmd, "processing quotation marks").
_CMD_C = re.compile(
    r'^\s*(?:"?(?:[a-z]:\\[^"]*\\)?cmd(?:\.exe)?"?)((?:\s+/[a-z](?::\S*)?)*?)\s+/[ck]\s*(?P<rest>.*)$',
    re.I | re.S,
)


def strip_cmd_c(command_line: str) -> str:
    """``cmd.exe /c X`` → ``X`` (the shell runs every line through ``cmd /c`` already); else unchanged."""
    m = _CMD_C.match(command_line)
    if not m:
        return command_line
    rest = m.group("rest").strip()
    if rest.startswith('"') and rest.count('"') >= 2:
        last = rest.rindex('"')
        rest = rest[1:last] + rest[last + 1 :]
    return rest


def _text(el: ET.Element | None) -> str:
    return (el.text or "").strip() if el is not None else ""


class _Handler(AuthHandler, BaseHTTPRequestHandler):
    server: WSManServer
    protocol_version = "HTTP/1.1"
    server_version = "Microsoft-HTTPAPI/2.0"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        log.debug("%s " + format, self.client_address[0], *args)

    def setup(self) -> None:
        super().setup()
        # One write per response is not guaranteed (headers, then body): avoid Nagle + delayed ACK stalls.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                self.connection.do_handshake()
            except (ssl.SSLError, OSError):
                self.close_connection = True
                raise

    def handle(self) -> None:
        if self.server.tls == "tls1.0-no-aes":
            tlsconfig.refuse_hello(self.connection)
            self.close_connection = True
            return
        try:
            super().handle()
        except (ConnectionError, ssl.SSLError, TimeoutError):
            pass

    def do_GET(self) -> None:
        self._plain(405, b"")

    def _plain(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        srv = self.server
        if srv.latency_s:
            time.sleep(srv.latency_s)  # one round trip of the emulated link, per request
        with srv.lock:
            srv.request_count += 1
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.path.split("?")[0].lower() != "/wsman":
            self._plain(404, b"")
            return
        if self._identify_unauthenticated(body):
            return
        if not self._authenticate():
            return
        if not body and self._negotiated:
            # pywinrm/pypsrp set up the security context with an empty authenticated POST before the
            # first encrypted message (winrm/transport.py setup_encryption); it needs a 2xx [assumed: 200].
            self._plain(200, b"", self._reply_headers)
            return
        soap = self._unwrap_body(body)
        if soap is None:
            return
        try:
            root = ET.fromstring(soap)
        except ET.ParseError:
            # A body that is not XML is a Sender fault, as any other invalid envelope (MS-WSMV 3.1.4,
            # https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-wsmv/) [assumed: the code]
            fault = SoapFault(
                ERROR_WSMAN_SCHEMA_VALIDATION,
                "w:SchemaValidationError",
                "The SOAP XML in the message does not match the corresponding XML schema definition.",
                sender=True,
            )
            self._soap(500, ACTION_FAULT, "", self._fault_body(fault))
            return
        header = root.find("s:Header", NS)
        message_id = _text(header.find("a:MessageID", NS)) if header is not None else ""
        body_el = root.find("s:Body", NS)
        if body_el is not None and body_el.find(f"{{{NS_WSMID}}}Identify") is not None:
            self._send_xml(200, self._identify())
            return
        try:
            reply_action, reply_body = self._dispatch(root)
        except _Drop:
            self.close_connection = True  # no response at all: the client sees the connection close
            return
        except SoapFault as fault:
            self._soap(500, ACTION_FAULT, message_id, self._fault_body(fault))
            return
        self._soap(200, reply_action, message_id, reply_body)

    def _identify_unauthenticated(self, body: bytes) -> bool:
        """An Identify with ``WSMANIDENTIFY: unauthenticated`` is answered without credentials (2008+).

        Without authentication no OS version is disclosed
        (https://learn.microsoft.com/en-us/windows/win32/winrm/detecting-whether-a-remote-computer-supports-ws-management-protocol);
        Windows then reports "OS: 0.0.0 SP: 0.0" [assumed from Test-WSMan output]. WinRM 1.1 predates
        Session.Identify (minimum server 2008: https://learn.microsoft.com/en-us/windows/win32/winrm/session-identify),
        so it asks for credentials as for anything else [assumed].
        """
        if (self.headers.get("WSMANIDENTIFY") or "").strip().lower() != "unauthenticated":
            return False
        if self.server.winrm_version == "1.1":
            return False
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            return False
        if root.find(f"s:Body/{{{NS_WSMID}}}Identify", NS) is None:
            return False
        self._reply_headers, self._encrypt_reply = {}, False
        self._send_xml(200, self._identify(authenticated=False))
        return True

    def _identify(self, *, authenticated: bool = True) -> str:
        """wsmid:IdentifyResponse (DSP0226 §11, https://www.dmtf.org/standards/published_documents/DSP0226_1.1.pdf)."""
        host = self.server.host
        major_minor = ".".join(host.windows_version.split(".")[:2])
        os_version, sp = (
            (host.windows_version, SERVICE_PACKS.get(major_minor, "0.0"))
            if authenticated
            else ("0.0.0", "0.0")
        )
        version = f"OS: {os_version} SP: {sp} Stack: {self.server.winrm_version}"
        return (
            f'<s:Envelope xmlns:s="{NS["s"]}" xmlns:wsmid="{NS_WSMID}"><s:Header/><s:Body>'
            f"<wsmid:IdentifyResponse><wsmid:ProtocolVersion>{NS['w']}</wsmid:ProtocolVersion>"
            "<wsmid:ProductVendor>Microsoft Corporation</wsmid:ProductVendor>"
            f"<wsmid:ProductVersion>{version}</wsmid:ProductVersion></wsmid:IdentifyResponse>"
            "</s:Body></s:Envelope>"
        )

    def _soap(self, status: int, action: str, relates_to: str, body: str) -> None:
        ns = " ".join(f'xmlns:{k}="{v}"' for k, v in NS.items())
        xml = (
            f'<s:Envelope xml:lang="en-US" {ns}><s:Header><a:Action>{action}</a:Action>'
            f"<a:MessageID>uuid:{str(uuid.uuid4()).upper()}</a:MessageID><a:To>{ANONYMOUS}</a:To>"
            f"<a:RelatesTo>{escape(relates_to)}</a:RelatesTo></s:Header><s:Body>{body}</s:Body></s:Envelope>"
        )
        self._send_xml(status, xml)

    def _fault_body(self, fault: SoapFault) -> str:
        code = "s:Sender" if fault.sender else "s:Receiver"
        reason = escape(fault.reason)
        detail = f"<w:FaultDetail>{fault.detail}</w:FaultDetail>" if fault.detail else ""
        return (
            f"<s:Fault><s:Code><s:Value>{code}</s:Value><s:Subcode><s:Value>{fault.subcode}</s:Value>"
            f'</s:Subcode></s:Code><s:Reason><s:Text xml:lang="en-US">{reason}</s:Text></s:Reason>'
            f'<s:Detail>{detail}<f:WSManFault Code="{fault.code}" Machine="{escape(self.server.host.hostname)}">'
            f"<f:Message>{reason}</f:Message></f:WSManFault></s:Detail></s:Fault>"
        )

    # --- operations ---
    def _dispatch(self, root: ET.Element) -> tuple[str, str]:
        header = root.find("s:Header", NS)
        body = root.find("s:Body", NS)
        if header is None or body is None:
            raise SoapFault(
                ERROR_WSMAN_SCHEMA_VALIDATION,
                "w:SchemaValidationError",
                "Missing SOAP header or body.",
                sender=True,
            )
        action = _text(header.find("a:Action", NS))
        timeout = _duration_s(_text(header.find("w:OperationTimeout", NS)))
        op_timeout = min(
            timeout if timeout is not None else OPERATION_TIMEOUT_DEFAULT_S, OPERATION_TIMEOUT_MAX_S
        )
        max_env = int(_text(header.find("w:MaxEnvelopeSize", NS)) or MAX_ENVELOPE_DEFAULT)
        options = {o.get("Name", "").upper(): _text(o) for o in header.findall("w:OptionSet/w:Option", NS)}
        shell_id = ""
        for sel in header.findall("w:SelectorSet/w:Selector", NS):
            if sel.get("Name") == "ShellId":
                shell_id = _text(sel)
        if action == ACTION_CREATE:
            resource_uri = _text(header.find("w:ResourceURI", NS))
            if resource_uri.lower() != RESOURCE_URI_CMD.lower():
                # A cmd-only host (no PowerShell plug-in, no WMI provider for this URI) refuses Create.
                raise SoapFault(
                    ERROR_WSMAN_INVALID_RESOURCE_URI,
                    "w:DestinationUnreachable",
                    f"The WS-Management service cannot process the request. The resource URI ({resource_uri}) "
                    "was not found in the WS-Management catalog. The catalog contains the metadata that "
                    "describes resources, or logical endpoints.",
                    sender=True,
                )
            return self._create(body, options)
        if action not in _SHELL_ACTIONS:
            # e.g. WS-Enumeration or WS-Transfer Get on a WMI resource: not a shell operation at all.
            raise SoapFault(
                ERROR_WSMAN_ACTION_NOT_SUPPORTED,
                "a:ActionNotSupported",
                f"The action is not supported by the service: {action}",
                sender=True,
            )
        with self.server.lock:
            shell = self.server.shells.get(shell_id)
        if shell is None:
            raise _shell_gone(shell_id)
        if action == ACTION_COMMAND:
            return self._command(shell, body, options)
        if action == ACTION_SEND:
            return self._send(shell, body)
        if action == ACTION_RECEIVE:
            return self._receive(shell, body, op_timeout, max_env)
        if action == ACTION_SIGNAL:
            return self._signal(shell, body)
        if action == ACTION_DELETE:
            with self.server.lock:
                self.server.shells.pop(shell.id, None)
            return ACTION_DELETE + "Response", ""
        raise SoapFault(
            ERROR_WSMAN_ACTION_NOT_SUPPORTED,
            "a:ActionNotSupported",
            f"The action is not supported by the service: {action}",
            sender=True,
        )

    def _create(self, body: ET.Element, options: dict[str, str]) -> tuple[str, str]:
        host = self.server.host
        idle = body.find("rsp:Shell/rsp:IdleTimeOut", NS)
        if idle is not None and _duration_s(_text(idle)) is None:
            # pywinrm passes idle_timeout verbatim: an int is a schema error (W-WINRM-ENVELOPE).
            raise SoapFault(
                ERROR_WSMAN_SCHEMA_VALIDATION,
                "w:SchemaValidationError",
                "The SOAP XML in the message does not match the corresponding XML schema definition.",
                sender=True,
            )
        cp_text = options.get("WINRS_CODEPAGE", "")
        codepage = int(cp_text) if cp_text.isdigit() else host.default_codepage
        try:
            "".encode(cmd.codec(codepage))
        except LookupError:
            raise SoapFault(
                ERROR_WSMAN_OPTIONS_NOT_SUPPORTED,
                "w:InvalidOptions",
                f"The code page {codepage} is not valid.",
            ) from None
        legacy = self.server.winrm_version == "1.1"  # WinRM 1.1 on Server 2003
        guid = str(uuid.uuid4()).upper()
        shell_id = f"uuid:{guid}" if legacy else guid
        # rsp:Environment / rsp:WorkingDirectory (MS-WSMV 2.2.4.37 Shell, "EnvironmentVariableList",
        # https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-wsmv/): every command of the shell
        # sees them.
        env = {
            v.get("Name", ""): v.text or ""
            for v in body.findall("rsp:Shell/rsp:Environment/rsp:Variable", NS)
            if v.get("Name")
        }
        cwd = _text(body.find("rsp:Shell/rsp:WorkingDirectory", NS))
        with self.server.lock:
            self.server.shells[shell_id] = _Shell(shell_id, codepage, env=env, cwd=cwd)
        port = self.server.server_address[1]
        scheme = "https" if self.server.ssl_context else "http"
        address = ANONYMOUS if legacy else f"{scheme}://{escape(host.hostname)}:{port}/wsman"
        xml = (
            f"<x:ResourceCreated><a:Address>{address}</a:Address><a:ReferenceParameters>"
            f"<w:ResourceURI>{RESOURCE_URI_CMD}</w:ResourceURI><w:SelectorSet>"
            f'<w:Selector Name="ShellId">{shell_id}</w:Selector></w:SelectorSet></a:ReferenceParameters>'
            "</x:ResourceCreated>"
        )
        if not legacy:
            user = escape(self.server.user)
            xml += (
                f"<rsp:Shell><rsp:ShellId>{shell_id}</rsp:ShellId><rsp:ResourceUri>{RESOURCE_URI_CMD}</rsp:ResourceUri>"
                f"<rsp:Owner>{escape(host.hostname)}\\{user}</rsp:Owner><rsp:ClientIP>{self.client_address[0]}</rsp:ClientIP>"
                "<rsp:IdleTimeOut>PT7200.000S</rsp:IdleTimeOut><rsp:InputStreams>stdin</rsp:InputStreams>"
                "<rsp:OutputStreams>stdout stderr</rsp:OutputStreams></rsp:Shell>"
            )
        return ACTION_CREATE + "Response", xml

    def _command(self, shell: _Shell, body: ET.Element, options: dict[str, str]) -> tuple[str, str]:
        line_el = body.find("rsp:CommandLine", NS)
        command = _text(line_el.find("rsp:Command", NS)) if line_el is not None else ""
        arguments = (
            [(a.text or "") for a in line_el.findall("rsp:Arguments", NS)] if line_el is not None else []
        )
        command_line = " ".join([command, *arguments]) if arguments else command
        skip = options.get("WINRS_SKIP_CMD_SHELL", "FALSE").upper() == "TRUE"
        inner = strip_cmd_c(command_line)
        if inner != command_line:
            command_line, skip = inner, False  # cmd.exe is the program: it runs X with cmd semantics
        if skip:
            argv = cmd.split_argv(command_line)
            program = cmd.program_key(argv[0]) if argv else ""
        else:
            program = cmd.program_name(command_line)
        fault = self.server.match_fault(program, command_line)
        if fault and fault.when == "before" and fault.action == "drop":
            log.info("fault %s: dropping the connection at Command %r", fault, command_line)
            raise _Drop()
        if fault and fault.when == "before" and fault.action == "fault500":
            raise SoapFault(
                ERROR_WSMAN_HTTP_STATUS_SERVER_ERROR,
                "w:InternalError",
                f"The WS-Management service cannot process the request (injected fault {fault}).",
            )
        host = self.server.host
        if fault and fault.action == "refuse":
            if fault.when == "after":  # it runs, then the Command is refused all the same
                _execute_in_shell(host, shell, _Command("refused", command_line, program, skip))
            raise SoapFault(
                ERROR_WSMAN_QUOTA_MAX_COMMANDS,
                "w:QuotaLimit",
                f"The WS-Management service cannot process the request (injected fault {fault}).",
            )
        if skip and program not in host.programs and program not in cmd.FALLBACK_PROGRAMS:
            raise SoapFault(
                ERROR_FILE_NOT_FOUND_HRESULT, "w:InternalError", "The system cannot find the file specified."
            )
        command_id = str(uuid.uuid4()).upper()
        with self.server.lock:
            shell.commands[command_id] = _Command(command_id, command_line, program, skip, fault)
        return (
            ACTION_COMMAND + "Response",
            f"<rsp:CommandResponse><rsp:CommandId>{command_id}</rsp:CommandId></rsp:CommandResponse>",
        )

    def _find_command(self, shell: _Shell, command_id: str) -> _Command:
        with self.server.lock:
            command = shell.commands.get(command_id)
        if command is None:
            raise _unknown_command()
        return command

    def _send(self, shell: _Shell, body: ET.Element) -> tuple[str, str]:
        for stream in body.findall("rsp:Send/rsp:Stream", NS):
            command = self._find_command(shell, stream.get("CommandId", ""))
            data = base64.b64decode(_text(stream)) if _text(stream) else b""
            with self.server.lock:
                # Data after the command has started is lost, as on a closed pipe [U: Windows may fault].
                if not command.started:
                    command.stdin.extend(data)
                if (stream.get("End") or "").lower() == "true":
                    command.stdin_closed = True
            if command.stdin_closed:
                self._start(shell, command)
        return ACTION_SEND + "Response", "<rsp:SendResponse/>"

    def _start(self, shell: _Shell, command: _Command) -> None:
        """Run the command once, in a worker thread (a Receive waits up to OperationTimeout for it)."""
        with self.server.lock:
            if command.started:
                return
            command.started = True
        if command.fault and command.fault.when == "before" and command.fault.action == "timeout":
            return  # never finishes: every Receive times out

        def work() -> None:
            host = self.server.host
            fault = command.fault
            t0 = time.monotonic()
            if command.program == "ping":
                # ping -n N takes about N-1 s (cmd.ping_count); waited here, outside the host's lock.
                command.cancelled.wait(max(0, cmd.ping_count(cmd.split_argv(command.command_line)) - 1))
            try:
                if fault and fault.when == "before" and fault.action == "fail":
                    result = _access_denied(host, shell.codepage)
                    with host.lock:
                        host.history.append(
                            {
                                "command": command.command_line,
                                "exit_code": result.exit_code,
                                "fault": str(fault),
                            }
                        )
                    host.save_state()
                else:
                    result = _execute_in_shell(host, shell, command)
                    if fault and fault.when == "after" and fault.action == "fail":
                        result = _access_denied(host, shell.codepage)
            except Exception:  # an emulation bug: report it as a failed command, keep serving
                log.exception("rehearsal command failed: %s", command.command_line)
                result = CommandResult(b"", b"[rehearsal host] internal error; see the server log\r\n", 1)
            command.result = result
            command.ran_s = time.monotonic() - t0
            if fault and fault.when == "after" and fault.action == "forget":
                with self.server.lock:
                    shell.commands.pop(command.id, None)
            command.done.set()

        threading.Thread(target=work, name=f"winrs-{command.id[:8]}", daemon=True).start()

    def _receive(self, shell: _Shell, body: ET.Element, op_timeout: float, max_env: int) -> tuple[str, str]:
        desired = body.find("rsp:Receive/rsp:DesiredStream", NS)
        command = self._find_command(shell, desired.get("CommandId", "") if desired is not None else "")
        self._start(shell, command)
        fault = command.fault
        if fault and fault.action == "timeout":
            # before: the command never starts; after: it runs, but the client is never told.
            deadline = time.monotonic() + op_timeout
            command.done.wait(op_timeout)
            time.sleep(max(0.0, deadline - time.monotonic()))
            raise _timed_out()
        if not command.done.wait(op_timeout):
            raise _timed_out()
        if fault and fault.when == "after" and fault.action == "forget":
            raise _unknown_command()  # it ran; the shell no longer knows its id
        if fault and fault.when == "after" and fault.action == "drop":
            log.info("fault %s: dropping the connection at Receive after %r ran", fault, command.command_line)
            raise _Drop()
        if fault and fault.when == "after" and fault.action == "fault500":
            raise SoapFault(
                ERROR_WSMAN_HTTP_STATUS_SERVER_ERROR,
                "w:InternalError",
                f"The WS-Management service cannot process the request (injected fault {fault}).",
            )
        result = command.result
        assert result is not None
        budget = max(1024, (max_env - ENVELOPE_OVERHEAD) * 3 // 4)
        first_line = result.stdout.find(b"\n", command.out_pos) + 1
        if command.received == 0 and command.ran_s >= STREAM_AFTER_S and 0 < first_line < len(result.stdout):
            # Real Receive streams a running command's output as it is written, CommandState Running
            # before Done (pypsrp's recordings; W-WINRM-RECEIVE-STREAM); a quick command answers Done at
            # once (test_winrs_standard). A slow command's first answer carries its first line only.
            budget = min(budget, first_line - command.out_pos)
        command.received += 1
        out = result.stdout[command.out_pos : command.out_pos + budget]
        budget -= len(out)
        err = result.stderr[command.err_pos : command.err_pos + budget] if budget > 0 else b""
        command.out_pos += len(out)
        command.err_pos += len(err)
        finished = command.out_pos >= len(result.stdout) and command.err_pos >= len(result.stderr)
        cid = command.id
        parts = ["<rsp:ReceiveResponse>"]
        if out:
            parts.append(
                f'<rsp:Stream Name="stdout" CommandId="{cid}">{base64.b64encode(out).decode()}</rsp:Stream>'
            )
        if err:
            parts.append(
                f'<rsp:Stream Name="stderr" CommandId="{cid}">{base64.b64encode(err).decode()}</rsp:Stream>'
            )
        if finished:
            parts.append(f'<rsp:Stream Name="stdout" CommandId="{cid}" End="true"/>')
            parts.append(f'<rsp:Stream Name="stderr" CommandId="{cid}" End="true"/>')
            parts.append(
                f'<rsp:CommandState CommandId="{cid}" State="{STATE_DONE}"><rsp:ExitCode>{result.exit_code}'
                "</rsp:ExitCode></rsp:CommandState>"
            )
        else:
            parts.append(f'<rsp:CommandState CommandId="{cid}" State="{STATE_RUNNING}"/>')
        parts.append("</rsp:ReceiveResponse>")
        return ACTION_RECEIVE + "Response", "".join(parts)

    def _signal(self, shell: _Shell, body: ET.Element) -> tuple[str, str]:
        signal = body.find("rsp:Signal", NS)
        command_id = signal.get("CommandId", "") if signal is not None else ""
        self._find_command(shell, command_id)
        with self.server.lock:
            # terminate / ctrl_c: the command is gone. A worker thread still running finishes in the
            # background (the model cannot kill it); its result is never read.
            gone = shell.commands.pop(command_id, None)
        if gone is not None:
            gone.cancelled.set()
        return ACTION_SIGNAL + "Response", "<rsp:SignalResponse/>"


def _execute_in_shell(host: Host, shell: _Shell, command: _Command) -> CommandResult:
    """Run the command with the shell's environment and working directory.

    cmd.execute starts in %USERPROFILE% with the host's environment; the shell's WorkingDirectory becomes a
    leading ``cd /d`` and its Environment is laid over the host's for the duration of the command
    (host.lock is re-entrant and held throughout, so no other command sees it).
    """
    line = command.command_line
    if shell.cwd and not command.skip_cmd_shell:
        line = f'cd /d "{shell.cwd}" && {line}'
    with host.lock:
        saved = dict(host.env)
        host.env.update(shell.env)
        try:
            return cmd.execute(
                host,
                line,
                codepage=shell.codepage,
                stdin=bytes(command.stdin),
                skip_cmd_shell=command.skip_cmd_shell,
            )
        finally:
            host.env.clear()
            host.env.update(saved)


def _access_denied(host: Host, codepage: int) -> CommandResult:
    text = host.text(*cmd.MSG_ACCESS_DENIED) + "\r\n"
    return CommandResult(b"", cmd.encode_text(text, codepage), cmd.ACCESS_DENIED_EXIT)
