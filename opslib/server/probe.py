"""What the server offers, found by read-only probes: :class:`Capabilities` and :func:`probe`.

Every answer comes from exit codes and registry values, never localized text. :class:`opslib.server.Server`
probes once and keeps the answer on itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import winerror
from ..errors import CapabilityMissing
from .regfile import parse_reg_export
from .remote import export_key, failed, host_of

if TYPE_CHECKING:
    from ..winrm import Connection

__all__ = ["Capabilities", "probe", "require_admin"]

_PROBED_CERTUTIL_VERBS = ("exportPFX", "repairstore", "hashfile")


@dataclass(frozen=True)
class Capabilities:
    """What :func:`probe` found on the server (read-only probes; nothing is changed)."""

    host: str
    windows_version: str  # "5.2.3790" from ``ver``; "" when unreadable
    iis_major: int  # HKLM\SOFTWARE\Microsoft\InetStp MajorVersion; 0 when IIS is absent
    iis_minor: int
    codepage: int
    cscript: bool
    powershell: bool
    is_admin: bool
    certutil_verbs: tuple[str, ...]  # the probed verbs that exist, e.g. ("exportPFX", "hashfile")
    certreq_accept: bool
    certreq_machine: bool
    certreq_quiet: bool

    @property
    def windows_major(self) -> int:
        head = self.windows_version.split(".")[0]
        return int(head) if head.isdigit() else 0

    def has_certutil(self, verb: str) -> bool:
        return verb.lower() in {v.lower() for v in self.certutil_verbs}

    def row(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "windows_version": self.windows_version,
            "iis": f"{self.iis_major}.{self.iis_minor}" if self.iis_major else "absent",
            "codepage": self.codepage,
            "administrator": self.is_admin,
            "cscript": self.cscript,
            "powershell": self.powershell,
            "certutil_verbs": ", ".join(self.certutil_verbs),
            "certreq_accept": self.certreq_accept,
            "certreq_machine": self.certreq_machine,
        }


def probe(conn: Connection) -> Capabilities:
    """What the server offers. Read-only; every call probes (:class:`opslib.server.Server` keeps the answer)."""

    def runs(argv: list[str], what: str) -> int:
        result = conn.run(argv, check=False, what=what)
        if result.exit_code == winerror.ERROR_ACCESS_DENIED:
            # cmd could not start the program at all ("Access is denied", exit 5): the probe has no
            # answer, so it must not be read as "absent" (a wrong cause in the message) [I].
            raise failed(
                conn, result, what, hint="the probe itself failed; nothing was changed — run it again"
            )
        return result.exit_code

    # ver: "Microsoft Windows [Version 5.2.3790]" — only the digits are read (the words are not localized
    # on en/ja, but nothing depends on them). cmd built-in:
    # https://learn.microsoft.com/en-us/windows-server/administration/windows-commands/ver
    ver = conn.run(["ver"], check=False, what="read the Windows version")
    m = re.search(r"(\d+)\.(\d+)\.(\d+)", ver.stdout_text)
    windows_version = m.group(0) if m else ""

    # IIS version: HKLM\SOFTWARE\Microsoft\InetStp MajorVersion/MinorVersion (DWORDs written by IIS setup [I];
    # the key's absence means IIS is not installed).
    iis_major = iis_minor = 0
    inetstp = r"HKLM\SOFTWARE\Microsoft\InetStp"
    export = export_key(conn, inetstp, what="read the IIS version")
    if export is not None:
        values = parse_reg_export(export).get(inetstp, {})
        major, minor = values.get("MajorVersion"), values.get("MinorVersion")
        iis_major = int(major[1]) if major and major[0] == "REG_DWORD" else 0
        iis_minor = int(minor[1]) if minor and minor[0] == "REG_DWORD" else 0

    # Presence of a program: cmd answers exit 9009 for an unknown command (CONTRIBUTING, cmd emulation);
    # any other exit code means the program started. cscript //nologo with no script prints its usage.
    cscript = runs(["cscript", "//nologo"], "is cscript.exe present?") != winerror.NOT_RECOGNIZED
    # -InputFormat None: powershell.exe otherwise waits for stdin under WinRS [I].
    powershell = (
        runs(
            ["powershell", "-NoProfile", "-NonInteractive", "-InputFormat", "None", "-Command", "exit 0"],
            "is PowerShell present?",
        )
        != winerror.NOT_RECOGNIZED
    )

    # Administrator: the LocalService profile hive HKU\S-1-5-19 is readable only by administrators and
    # SYSTEM, so `reg query` exits 0 only for them [I] (a common batch-file probe; the documented
    # alternative `net session` works the same way: https://tutorialreference.pages.dev/batch-scripting/examples/faq/batch-script-how-to-check-for-administrator-privileges).
    is_admin = runs(["reg", "query", r"HKU\S-1-5-19"], "does the account have administrator rights?") == 0

    # certutil VERB -? prints the verb's usage and exits 0 when the verb exists; an unknown verb fails.
    # Only a first guess (docs/windows-behaviour.md W-CERTUTIL-PROBE-EXPORTPFX, -HASHFILE): the export
    # route is proven by use (opslib.ops.export_route.prove_export_route, before step 2) and -hashfile by the
    # transport's own use (W-CERTUTIL-HASHFILE).
    verbs = tuple(
        v
        for v in _PROBED_CERTUTIL_VERBS
        if runs(["certutil", f"-{v}", "-?"], f"does certutil know -{v}?") == 0
    )
    # certreq -accept / -machine / -q: same rule; -machine on 2003 is [U] (W-CERTREQ-PROBE).
    certreq_accept = runs(["certreq", "-accept", "-?"], "does certreq know -accept?") == 0
    certreq_machine = (
        certreq_accept and runs(["certreq", "-machine", "-?"], "does certreq know -machine?") == 0
    )
    certreq_quiet = certreq_accept and runs(["certreq", "-q", "-?"], "does certreq know -q?") == 0

    caps = Capabilities(
        host=host_of(conn),
        windows_version=windows_version,
        iis_major=iis_major,
        iis_minor=iis_minor,
        codepage=int(getattr(conn, "codepage", 0) or 0),
        cscript=cscript,
        powershell=powershell,
        is_admin=is_admin,
        certutil_verbs=verbs,
        certreq_accept=certreq_accept,
        certreq_machine=certreq_machine,
        certreq_quiet=certreq_quiet,
    )
    return caps


def require_admin(caps: Capabilities, action: str) -> None:
    if not caps.is_admin:
        raise CapabilityMissing(
            caps.host,
            "administrator rights for this account",
            hint=f"{action} writes LocalMachine certificate stores; connect with an account in the local "
            "Administrators group",
        )
