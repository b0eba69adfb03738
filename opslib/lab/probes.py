"""The fixed, versioned set of lab probes: what each sends, which behaviour rows it can verify, and what
in its result the kit decides on.

Each probe is a function ``fn(rec) -> decision``: it runs its commands through :class:`Recorder` (which
keeps the exact command line, exit code, raw stdout/stderr bytes, code page and duration of each) and
returns the *decision-relevant* facts as a small JSON mapping — exit codes, the presence and shape of the
bytes the kit parses (the 64-hex line of ``certutil -hashfile``, the UTF-16LE ``.reg`` header, the IIS
helper's JSON keys), WinRM fault codes. Message text is cosmetic: it is kept in the bundle but never part
of a decision (localized text is never parsed, docs/windows-behaviour.md).

Change the probe set → bump :data:`PROBE_SET_VERSION` (compare refuses bundles of another version).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import credentials, winerror
from ..errors import OpsError
from ..iis.iis6_helper import helper_script
from ..server import regfile, remote, stores
from ..winrm import CommandResult, Connection, Raw, cmdline, join_commands
from ..winrm.identify import create_fault, identify, receive_timeout_fault
from ..winrm.quoting import size_command
from .belief_probes import BELIEF_IF_DIFFERENT, BELIEF_PROBES
from .httpsys_probes import HTTPSYS_IF_DIFFERENT, HTTPSYS_PROBES

PROBE_SET_VERSION = "4"  # 2: cmd.chain-markers (the batched registry read); 3: httpsys.*; 4: issue 24 beliefs

REG_HEADER = "Windows Registry Editor Version 5.00"  # regedit 5 format (W-REG-EXPORT)
UTF16LE_BOM = b"\xff\xfe"
UNKNOWN_RESOURCE_URI = "http://schemas.microsoft.com/wbem/wsman/1/windows/opslib-lab-no-such-resource"
# A command that prints nothing for ~5 s: `ping -n 6` waits about a second between echoes
# (https://learn.microsoft.com/en-us/windows-server/administration/windows-commands/ping); its output goes
# to nul, so a Receive with a 1 s OperationTimeout has nothing to return.
SLOW_ARGV = ["ping", "-n", "6", "127.0.0.1"]
CERTUTIL_HELP_VERBS = ("exportPFX", "repairstore", "hashfile")
CERTREQ_HELP_OPTIONS = ("accept", "machine", "q")
HELP_PROBE_ROWS = {
    "exportPFX": ("W-CERTUTIL-PROBE-EXPORTPFX",),
    "repairstore": ("W-CERTUTIL-PROBE-REPAIRSTORE",),
    "hashfile": ("W-CERTUTIL-PROBE-HASHFILE",),
}


class Recorder:
    """Runs a probe's commands and keeps every result (bytes in files under the bundle)."""

    def __init__(self, conn: Connection, folder: Path) -> None:
        self.conn = conn
        self.folder = folder
        self.commands: list[dict[str, Any]] = []
        self.facts: dict[str, Any] = {}  # recorded, shown when they differ, never decided on
        self.probe_id = ""
        self.scratch: dict[str, Any] = {}  # shared between probes of one capture (IIS version, Identify)

    def begin(self, probe_id: str) -> None:
        self.probe_id = probe_id
        self.commands = []
        self.facts = {}

    def _save(self, name: str, data: bytes) -> dict[str, Any]:
        rel = Path("probes") / self.probe_id / name
        path = self.folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        clean = credentials.redact_bytes(data)
        path.write_bytes(clean)
        return {"file": rel.as_posix(), "size": len(clean), "sha256": hashlib.sha256(clean).hexdigest()}

    def keep(self, label: str, result: CommandResult) -> CommandResult:
        n = len(self.commands) + 1
        self.commands.append(
            {
                "label": label,
                "command_line": result.command_line,
                "exit_code": result.exit_code,
                "codepage": result.codepage,
                "duration_s": result.duration_s,
                "stdout": self._save(f"{n:02d}-{label}.stdout", result.stdout),
                "stderr": self._save(f"{n:02d}-{label}.stderr", result.stderr),
            }
        )
        return result

    def run(
        self,
        label: str,
        argv: Sequence[str],
        *,
        timeout_s: float = 60,
        redirect: tuple[str, str] | None = None,
        names: Sequence[str] | None = None,
        secret_values: Sequence[str] = (),
    ) -> CommandResult:
        result = self.conn.run(
            argv,
            check=False,
            timeout_s=timeout_s,
            redirect=redirect,
            names=names,
            secrets=secret_values,
            what=f"lab probe {self.probe_id}: {label}",
        )
        return self.keep(label, result)

    def run_line(self, label: str, line: str, *, timeout_s: float = 60) -> CommandResult:
        """A line built by :func:`cmdline` (or ``size_command``)."""
        result = self.conn.run_line(
            line, check=False, timeout_s=timeout_s, what=f"lab probe {self.probe_id}: {label}"
        )
        return self.keep(label, result)

    def note(self, label: str, facts: dict[str, Any]) -> None:
        """A WS-Management exchange that is not a command (Identify, a fault): its facts as a record."""
        self.commands.append({"label": label, "wsman": facts})

    def attach(self, name: str, data: bytes) -> dict[str, Any]:
        return self._save(name, data)

    def temp(self, suffix: str) -> str:
        return str(self.conn.temp_dir).rstrip("\\") + f"\\lab-{uuid.uuid4().hex[:10]}{suffix}"


@dataclass(frozen=True)
class Probe:
    id: str
    tier: str  # "read-only" | "reversible"
    rows: tuple[str, ...]  # docs/windows-behaviour.md rows this probe can verify
    what: str  # one line: the commands it sends
    fn: Callable[[Recorder], dict[str, Any]]


# --- decision helpers ----------------------------------------------------------------------------


def reg_shape(data: bytes | None) -> dict[str, Any]:
    """What the kit parses in a ``reg export`` file: UTF-16LE BOM, the regedit-5 header, parseable."""
    if data is None:
        return {"file": False}
    header = data[2:].decode("utf-16-le", "replace").splitlines()[0].strip() if len(data) > 2 else ""
    try:
        parsed = regfile.parse_reg_export(data)
        parses = True
    except ValueError:
        parsed, parses = {}, False
    blobs = [v["Blob"] for v in parsed.values() if "Blob" in v]
    return {
        "file": True,
        "utf16le_bom": data.startswith(UTF16LE_BOM),
        "regedit5_header": header == REG_HEADER,
        "parses": parses,
        "blobs_are_binary": all(b[0] == "REG_BINARY" for b in blobs),
    }


def _exported(rec: Recorder, label: str, key: str) -> tuple[int, bytes | None]:
    """``reg export KEY FILE`` (W-REG-EXPORT) into the connection's temp folder, bring it back, delete it."""
    path = rec.temp(".reg")
    result = rec.run(label, ["reg", "export", key, path])
    if result.exit_code != 0:
        return result.exit_code, None
    try:
        data = rec.conn.download(path, what=f"lab probe {rec.probe_id}: bring the export back")
    finally:
        rec.run(f"{label}-del", ["del", "/f", "/q", path])
    rec.attach(f"{label}.reg", data)
    return 0, data


# --- read-only probes ----------------------------------------------------------------------------


def _ver(rec: Recorder) -> dict[str, Any]:
    r = rec.run("ver", ["ver"])
    return {"exit_code": r.exit_code, "version_digits": bool(re.search(rb"\d+\.\d+\.\d+", r.stdout))}


def _chcp(rec: Recorder) -> dict[str, Any]:
    r = rec.run("chcp", ["chcp"])
    return {"exit_code": r.exit_code, "trailing_digits": bool(re.search(rb"(\d+)\D*$", r.stdout))}


def _temp(rec: Recorder) -> dict[str, Any]:
    r = rec.run("echo-temp", ["echo", Raw("%TEMP%")])
    last = r.stdout.strip().splitlines()[-1].strip() if r.stdout.strip() else b""
    return {"exit_code": r.exit_code, "drive_path": bool(re.match(rb"^[A-Za-z]:\\", last))}


def _inetstp(rec: Recorder) -> dict[str, Any]:
    code, data = _exported(rec, "export-inetstp", r"HKLM\SOFTWARE\Microsoft\InetStp")
    shape = reg_shape(data)
    values = regfile.parse_reg_export(data).get(r"HKLM\SOFTWARE\Microsoft\InetStp", {}) if data else {}
    major, minor = values.get("MajorVersion"), values.get("MinorVersion")
    # The IIS version decides the site-list probe (as the kit's probe decides the backend).
    rec.scratch["iis_major"] = int(major[1]) if major and major[0] == "REG_DWORD" else 0
    rec.scratch["iis_minor"] = int(minor[1]) if minor and minor[0] == "REG_DWORD" else 0
    return {"exit_code": code, **shape, "major_is_dword": bool(major and major[0] == "REG_DWORD")}


def _admin(rec: Recorder) -> dict[str, Any]:
    return {"exit_code": rec.run("reg-query-hku", ["reg", "query", r"HKU\S-1-5-19"]).exit_code}


def _not_recognized(rec: Recorder) -> dict[str, Any]:
    return {"exit_code": rec.run("no-such-program", ["opslib-lab-no-such-program"]).exit_code}


def _exit_chain(rec: Recorder) -> dict[str, Any]:
    """W-CMD-EXITCODE: the status of a ``&`` chain whose last command sets none after a failed first one."""
    folder = rec.temp("-absent")
    first = rec.run_line(
        "nosuch-then-echo",
        join_commands([cmdline(["opslib-lab-no-such-program"]), cmdline(["echo", "x"])], op="&"),
    )
    second = rec.run_line(
        "rmdir-absent-then-if-exist",
        join_commands(
            [
                cmdline(["rmdir", "/s", "/q", folder]),
                cmdline([Raw("if"), Raw("exist"), folder, Raw("(exit"), Raw("/b"), Raw("1)")]),
            ],
            op="&",
        ),
    )
    return {"nosuch_then_echo": first.exit_code, "rmdir_absent_then_if_exist": second.exit_code}


def _presence(rec: Recorder) -> dict[str, Any]:
    cscript = rec.run("cscript", ["cscript", "//nologo"]).exit_code
    ps = rec.run(
        "powershell",
        ["powershell", "-NoProfile", "-NonInteractive", "-InputFormat", "None", "-Command", "exit 0"],
    ).exit_code
    return {
        "cscript_present": cscript != winerror.NOT_RECOGNIZED,
        "powershell_present": ps != winerror.NOT_RECOGNIZED,
    }


def _help(program: str, option: str) -> Callable[[Recorder], dict[str, Any]]:
    def fn(rec: Recorder) -> dict[str, Any]:
        return {"exit_code": rec.run(f"{option}-help", [program, f"-{option}", "-?"]).exit_code}

    return fn


def _unknown_verb(rec: Recorder) -> dict[str, Any]:
    code = rec.run("unknown-verb", ["certutil", "-opslibLabNoSuchVerb"]).exit_code
    return {"exit_code_nonzero": code != 0}


def _store_export(store: str) -> Callable[[Recorder], dict[str, Any]]:
    def fn(rec: Recorder) -> dict[str, Any]:
        key = stores.STORE_KEYS[store]
        code, data = _exported(rec, f"export-{store.lower()}", key)
        out: dict[str, Any] = {"exit_code": code, **reg_shape(data)}
        if code != 0:
            # W-REG-QUERY-ABSENT: a failed export of an absent key; reg query exits 1.
            out["query_exit_code"] = rec.run(f"query-{store.lower()}", ["reg", "query", key]).exit_code
        else:
            entries = stores.store_entries(store, key, data)
            out["every_entry_has_certificate"] = all(e.certificate is not None for e in entries)
        return out

    return fn


def _chain_markers(rec: Recorder) -> dict[str, Any]:
    """W-CMD-CHAIN-MARKERS: the kit's batched read line (``opslib.server.remote``) over a key every
    Windows has (the CA store) and an absent one, run as the kit runs it; its bytes against a plain
    ``reg export`` of the same key (W-REG-EXPORT)."""
    present, absent = stores.STORE_KEYS["CA"], r"HKLM\SOFTWARE\opslib-lab-absent-key"
    reg = rec.temp(".reg")
    batch = [(1, present, reg, reg[: -len(".reg")] + ".b64"), (2, absent, rec.temp(".reg"), rec.temp(".b64"))]
    result = rec.run_line("batch-read", remote.batch_line(batch))
    try:
        got: dict[str, Any] = remote.parse_batch(rec.conn, result, batch, what="lab probe")
        parsed = True
    except OpsError:
        got, parsed = {}, False
    _code, single = _exported(rec, "export-ca-alone", present)
    return {
        "markers_add_up": parsed,
        "present_key_read": got.get(present) is not None,
        "absent_key_is_none": parsed and got.get(absent, b"") is None,
        "same_bytes_as_a_plain_export": got.get(present) == single,
    }


def _certutil_store(store: str) -> Callable[[Recorder], dict[str, Any]]:
    options, name = stores.CERTUTIL_STORE[store]

    def fn(rec: Recorder) -> dict[str, Any]:
        # certutil -store: only the exit code decides (its text is localized).
        return {
            "exit_code": rec.run(f"store-{store.lower()}", ["certutil", *options, "-store", name]).exit_code
        }

    return fn


def _sites(rec: Recorder) -> dict[str, Any]:
    iis_major = int(rec.scratch.get("iis_major") or 0)
    if iis_major == 6:
        path = rec.temp(".js")
        rec.conn.upload(helper_script(), path, what="lab probe: upload the IIS 6 helper")
        try:
            r = rec.run("helper-list", ["cscript", "//nologo", "//E:jscript", path, "list"])
        finally:
            rec.run("helper-del", ["del", "/f", "/q", path])
        try:
            payload = json.loads(r.stdout.decode("ascii").strip().splitlines()[-1])
        except (UnicodeDecodeError, ValueError, IndexError):
            return {"backend": "iis6-helper", "exit_code": r.exit_code, "json": False}
        sites = payload.get("sites", []) if isinstance(payload, dict) else []
        return {
            "backend": "iis6-helper",
            "exit_code": r.exit_code,
            "json": True,
            "ascii_only": r.stdout.isascii(),
            "top_keys": sorted(payload) if isinstance(payload, dict) else [],
            "site_keys": sorted({k for s in sites for k in s}),
        }
    if iis_major >= 7:
        appcmd = Raw(r"%windir%\system32\inetsrv\appcmd.exe")
        r = rec.run("appcmd-list-site", [appcmd, "list", "site", "/xml"])
        return {
            "backend": "appcmd",
            "exit_code": r.exit_code,
            "xml": r.stdout.lstrip().startswith(b"<?xml") and b"<appcmd" in r.stdout,
        }
    return {"backend": "none"}


def _hashfile(rec: Recorder) -> dict[str, Any]:
    data = b"opslib lab check: a file whose SHA-256 the server must print\r\n"
    path = rec.temp(".txt")
    rec.conn.upload(data, path, what="lab probe: upload a small file")
    try:
        r = rec.run("hashfile", ["certutil", "-hashfile", path, "SHA256"])
    finally:
        rec.run("del", ["del", "/f", "/q", path])
    # Read as the transport reads it (W-CERTUTIL-HASHFILE): a line of 64 hex digits once spaces are removed.
    lines = [x.replace(" ", "").strip().lower() for x in r.stdout.decode("ascii", "replace").splitlines()]
    digest = next((x for x in lines if re.fullmatch(r"[0-9a-f]{64}", x)), "")
    return {
        "exit_code": r.exit_code,
        "hex64_line": bool(digest),
        "digest_matches": digest == hashlib.sha256(data).hexdigest(),
    }


def _last_line_digits(output: bytes) -> bool:
    """W-FOR-SIZE as the transport reads it: the last non-empty line is all digits."""
    lines = [x.strip() for x in output.decode("ascii", "replace").splitlines() if x.strip()]
    return bool(lines) and lines[-1].isdigit()


def _files(rec: Recorder) -> dict[str, Any]:
    """mkdir/del/if exist/rmdir on a folder and a file this probe creates in its own temp folder."""
    folder = rec.temp("")
    file = folder + "\\probe.txt"

    def exists(label: str, path: str) -> int:
        # if exist "F" (exit /b 7): 7 = present (W-IF-EXIST)
        return rec.run(label, [Raw("if"), Raw("exist"), path, Raw("(exit"), Raw("/b"), Raw("7)")]).exit_code

    out: dict[str, Any] = {}
    out["mkdir"] = rec.run("mkdir", ["mkdir", folder]).exit_code
    out["mkdir_again"] = rec.run("mkdir-again", ["mkdir", folder]).exit_code != 0
    out["create"] = rec.run("create", ["echo", "opslib-lab"], redirect=("write", file)).exit_code
    size = rec.run_line("size", size_command(file))
    out["size_digits"] = _last_line_digits(size.stdout)
    out["type_bytes"] = rec.run("type", ["type", file]).stdout.startswith(b"opslib-lab")
    out["exists_before"] = exists("exists-before", file)
    out["del"] = rec.run("del", ["del", "/f", "/q", file]).exit_code
    out["exists_after_del"] = exists("exists-after-del", file)
    out["del_missing"] = rec.run("del-missing", ["del", "/f", "/q", file]).exit_code
    out["del_nopath"] = rec.run("del-nopath", ["del", "/f", "/q", folder + "\\nodir\\x.txt"]).exit_code
    missing_size = rec.run_line("size-missing", size_command(file))
    out["size_missing_digits"] = _last_line_digits(missing_size.stdout)
    out["rmdir"] = rec.run("rmdir", ["rmdir", "/s", "/q", folder]).exit_code
    out["exists_after_rmdir"] = exists("exists-after-rmdir", folder)
    out["rmdir_missing_ok"] = rec.run("rmdir-missing", ["rmdir", "/s", "/q", folder]).exit_code in (0, 2)
    return out


def _identify(rec: Recorder) -> dict[str, Any]:
    facts = identify(rec.conn)
    rec.note("identify", facts)
    rec.scratch["identify"] = facts
    version = facts.get("ProductVersion", "")
    return {
        "vendor": facts.get("ProductVendor", ""),
        "product_version_shape": bool(re.fullmatch(r"OS: [\d.]+ SP: [\d.]+ Stack: [\d.]+", version)),
    }


def _unknown_uri(rec: Recorder) -> dict[str, Any]:
    outcome = create_fault(rec.conn, UNKNOWN_RESOURCE_URI)
    rec.note("create-unknown-uri", outcome)
    return {"fault_code": outcome.get("fault_code")}


def _receive_timeout(rec: Recorder) -> dict[str, Any]:
    line = cmdline(SLOW_ARGV, redirect=("write", "nul"))
    outcome = receive_timeout_fault(rec.conn, line, operation_timeout_s=1)
    rec.note("receive-timeout", {"command_line": line, **outcome})
    return {k: v for k, v in outcome.items() if k != "waited_s"}


READ_ONLY: tuple[Probe, ...] = (
    Probe("winrm.identify", "read-only", (), "wsmid:Identify", _identify),
    Probe("cmd.ver", "read-only", ("W-VER",), "ver", _ver),
    Probe("cmd.chcp", "read-only", ("W-CODEPAGE-CHCP",), "chcp", _chcp),
    Probe("cmd.temp", "read-only", ("W-ECHO-TEMP", "W-CMD-PERCENT"), "echo %TEMP%", _temp),
    Probe(
        "cmd.not-recognized",
        "read-only",
        ("W-CMD-NOT-RECOGNIZED",),
        "opslib-lab-no-such-program",
        _not_recognized,
    ),
    Probe(
        "cmd.exit-chain",
        "read-only",
        ("W-CMD-EXITCODE",),
        'opslib-lab-no-such-program & echo x; rmdir /s /q "D" & if exist "D" (exit /b 1) with D absent',
        _exit_chain,
    ),
    Probe(
        "cmd.chain-markers",
        "read-only",
        ("W-CMD-CHAIN-MARKERS", "W-REG-QUERY-ABSENT"),
        r"one line: reg export CA + an absent key, certutil -encode, type, framed by echoed markers",
        _chain_markers,
    ),
    Probe(
        "cmd.presence",
        "read-only",
        ("W-CMD-NOT-RECOGNIZED",),
        'cscript //nologo; powershell -NoProfile -NonInteractive -InputFormat None -Command "exit 0"',
        _presence,
    ),
    Probe("reg.admin", "read-only", ("W-REG-QUERY-ADMIN",), r"reg query HKU\S-1-5-19", _admin),
    Probe(
        "reg.inetstp",
        "read-only",
        ("W-REG-EXPORT",),
        r"reg export HKLM\SOFTWARE\Microsoft\InetStp F.reg; download; del",
        _inetstp,
    ),
    *(
        Probe(
            f"certutil.help.{verb}",
            "read-only",
            HELP_PROBE_ROWS[verb],
            f"certutil -{verb} -?",
            _help("certutil", verb),
        )
        for verb in CERTUTIL_HELP_VERBS
    ),
    *(
        Probe(
            f"certreq.help.{opt}",
            "read-only",
            ("W-CERTREQ-PROBE",),
            f"certreq -{opt} -?",
            _help("certreq", opt),
        )
        for opt in CERTREQ_HELP_OPTIONS
    ),
    Probe(
        "certutil.unknown-verb",
        "read-only",
        ("W-CERTUTIL-UNKNOWN-VERB", "W-CERTUTIL-EXITCODE"),
        "certutil -opslibLabNoSuchVerb",
        _unknown_verb,
    ),
    *(
        Probe(
            f"reg.export.{store}",
            "read-only",
            ("W-REG-EXPORT", "W-REG-STORE-LAYOUT", "W-REG-QUERY-ABSENT", "W-TYPE", "W-CERTUTIL-ENCODE"),
            f"reg export {key} F.reg; download; del (reg query {key} when it fails)",
            _store_export(store),
        )
        for store, key in stores.STORE_KEYS.items()
    ),
    *(
        Probe(
            f"certutil.store.{store}",
            "read-only",
            ("W-CERTUTIL-EXITCODE",),
            " ".join(
                [
                    "certutil",
                    *stores.CERTUTIL_STORE[store][0],
                    "-store",
                    stores.CERTUTIL_STORE[store][1],
                ]
            ),
            _certutil_store(store),
        )
        for store in stores.CERTUTIL_STORE
    ),
    Probe(
        "iis.sites",
        "read-only",
        ("W-CSCRIPT-HELPER", "W-IIS6-ADSI-LIST", "W-IIS6-SSLCERTHASH-UNSET"),
        "IIS 6: cscript //nologo //E:jscript iis6.js list; IIS 7+: appcmd list site /xml",
        _sites,
    ),
    Probe(
        "certutil.hashfile",
        "read-only",
        (
            "W-CERTUTIL-HASHFILE",
            "W-CERTUTIL-HASHFILE-2003",
            "W-ECHO-CHUNK",
            "W-CERTUTIL-DECODE",
            "W-DEL-STAGE",
        ),
        "upload F; certutil -hashfile F SHA256; del F",
        _hashfile,
    ),
    Probe(
        "files.del-rmdir",
        "read-only",
        (
            "W-MKDIR",
            "W-CMD-ECHO-SPACE",
            "W-FOR-SIZE",
            "W-FOR-SIZE-MISSING",
            "W-TYPE",
            "W-DEL",
            "W-DEL-MISSING",
            "W-DEL-NOPATH",
            "W-IF-EXIST",
            "W-RMDIR-SQ",
        ),
        'mkdir D; >"D\\probe.txt" echo; for %I …%~zI; type; del /f /q; if exist "F" (exit /b 7); rmdir /s /q D',
        _files,
    ),
    Probe("winrm.unknown-uri", "read-only", (), "Create with an unknown resource URI", _unknown_uri),
    Probe(
        "winrm.receive-timeout",
        "read-only",
        ("W-WINRM-TIMEOUT-FAULT",),
        '>"nul" ping -n 6 127.0.0.1; one Receive with OperationTimeout PT1S; Signal terminate',
        _receive_timeout,
    ),
)


# HTTP.sys (issue 23): what a real IIS 7–10 server can settle (:mod:`.httpsys_probes`).
READ_ONLY += tuple(Probe(i, "read-only", rows, what, fn) for i, rows, what, fn in HTTPSYS_PROBES)
# Issue 24's beliefs a real server can settle (:mod:`.belief_probes`); the reversible one is in REVERSIBLE.
READ_ONLY += tuple(Probe(*spec) for spec in BELIEF_PROBES if spec[1] == "read-only")


def probe_error(exc: OpsError) -> dict[str, Any]:
    """A probe that could not finish: the error class decides, its message is cosmetic."""
    return {"error": type(exc).__name__}


# What a decision-relevant difference of a probe means for a renewal on that host (longest prefix wins).
IF_DIFFERENT: dict[str, str] = {
    "winrm.identify": "the WinRM service answers Identify differently: check the WinRM version before anything else",
    "cmd.ver": "the kit reads the Windows version from `ver`: the capability probe may misjudge this host",
    "cmd.chcp": "code page `auto` cannot read the console code page: set winrm.codepage explicitly",
    "cmd.temp": "the kit cannot find its temp folder (%TEMP%): every transfer and step stops",
    "cmd.not-recognized": "a missing program is not told apart by exit 9009: the presence probes misjudge cscript/PowerShell",
    "cmd.exit-chain": "a `&` chain ends with another status: a read-back line the kit builds may be misread",
    "cmd.chain-markers": "the batched registry read does not behave as the kit expects: every store read stops (nothing is changed) — report it",
    "cmd.presence": "cscript or PowerShell presence differs from the rehearsal: the IIS 6 helper or export fallback may be unavailable",
    "reg.admin": "the administrator check answers otherwise: the kit may refuse (or try) store changes wrongly",
    "reg.inetstp": "the IIS version is not read from InetStp as expected: the backend choice may be wrong",
    "certutil.help.exportPFX": "step 3 may pick the wrong export route (certutil vs IIS.CertObj); export by hand if it fails",
    "certutil.help.repairstore": "step 0 may not be able to disable the root with certutil -repairstore",
    "certutil.help.hashfile": "transfers are checked by size only, not SHA-256",
    "certreq.help": "step 1 (certreq -accept) may refuse or fail on this host",
    "certutil.unknown-verb": "an unknown certutil verb does not fail: capability answers cannot be trusted",
    "reg.export.": "the certificate stores cannot be read the way the kit reads them: steps 0, 1 and 3 would stop",
    "certutil.store.": "certutil cannot open this store: steps that change it would fail",
    "iis.sites": "the site list cannot be read: steps 1 and 2 (bind, swap) would stop before any change",
    "certutil.hashfile": "uploads and downloads are verified differently (size only, or not at all)",
    "files.del-rmdir": "deletes and their read-back behave otherwise: a PFX copy could stay on the server unnoticed",
    "winrm.unknown-uri": "the WinRM fault codes differ: error messages may name a wrong cause",
    "winrm.receive-timeout": "long commands end with another fault: the kit's Receive loop may stop early or never",
    **HTTPSYS_IF_DIFFERENT,
    **BELIEF_IF_DIFFERENT,
    "store.throwaway": "adding, disabling, restoring, exporting or deleting a certificate does not behave as the kit "
    "expects: do not run steps 0–3 on this host",
}


def meaning(probe_id: str) -> str:
    keys = [k for k in IF_DIFFERENT if probe_id.startswith(k)]
    return IF_DIFFERENT[max(keys, key=len)] if keys else "a belief of the kit does not hold on this host"
