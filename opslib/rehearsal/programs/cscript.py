"""``cscript`` on the rehearsal host: runs the kit's own IIS 6 helper, nothing else.

``cscript //nologo //E:jscript <path>\\iis6.js VERB ARGS`` is accepted when ``<path>`` exists in the
host's file system *and* is byte-identical to the packaged ``opslib/scripts/iis6.js``. The verbs are
then performed against ``host.sites`` (the IIS 6 metabase model) with the same JSON and exit codes
the real script produces — ``tests/test_iis.py`` runs the real script under Node with ADSI stubs and
compares both outputs byte for byte.

Windows Script Host behaviour emulated (WSH 5.6 ships with Windows Server 2003):
* without ``//nologo`` the banner is printed first [I: WSH 5.6 banner text];
* a script file that does not exist: ``Input Error: Can not find script file "<path>".`` and exit
  code 1 [I: message text seen quoted in public scripts that test for it; exit code and stream U];
* host options are ``//`` switches before the script name; an unknown one is an input error [I].

IIS 6 behaviour emulated (sources in ``opslib/scripts/iis6.js`` and in the comments below):
* ``Start()`` on a site whose SecureBindings IP:port (or a ServerBindings entry) equals that of
  another *started* site returns, but the site stays stopped (ServerState 4). Real IIS 6 logs W3SVC
  event 1007 "Cannot register the URL prefix … The necessary network binding may already be in use.
  The site has been deactivated." with data ``b7 00 07 80`` (0x800700B7, ERROR_ALREADY_EXISTS)
  (captured event quoted at http://w3-4u.blogspot.com/2006/11/howto-change-id-of-iis-website.html).
  [U] whether ADSI ``Start()`` itself also returns that HRESULT synchronously; the helper handles
  both (it catches, then polls ServerState). [U] whether a wildcard IP and a specific IP on the same
  port conflict; only identical IP:port pairs conflict here.
* ``Site.fail_start`` (or the site's SSLCertHash listed in ``host.extra["fail_start_thumbprints"]``):
  ``Start()`` throws 0x80070020 (ERROR_SHARING_VIOLATION, "The process cannot
  access the file because it is being used by another process."), what IIS reports when another
  process holds the port (https://blog.andornot.com/blog/iis-and-skype-web-site-won't-start/) [I].
* SSLCertHash is a plain BINARY property: ADSI does not check that the certificate exists or has a
  private key [I]. A site bound to a certificate without a private key in MY still starts but cannot
  complete a TLS handshake (Schannel needs the key; see ``opslib/rehearsal/tlsserve.py``) [U].
* ``export-pfx SITEID PATH PASSWORD`` (``IIS.CertObj``: ``InstanceName = "W3SVC/n"``,
  ``Export(path, password, true, true, false)``; W-IIS6-CERTOBJ-EXPORT, MS-IMSA ExportToBlob): the
  certificate the site is bound to (SSLCertHash in SSLStoreName) with its private key and the chain
  CryptoAPI builds from this host's stores (root included [U]), as a PFX made by the certutil
  emulation's builder (3DES/SHA-1 [U for IIS.CertObj]). Failures, in this order [U: the order and
  the HRESULTs on a real 2003]: no SSLCertHash → MD_ERROR_DATA_NOT_FOUND 0x800CC801 (checked by the
  helper itself); the certificate is not in the store → CRYPT_E_NOT_FOUND 0x80092004; not an
  administrator → E_ACCESSDENIED; no key → NTE_BAD_KEYSET 0x80090016; a key created non-exportable →
  NTE_BAD_KEY_STATE 0x8009000B; the folder does not exist → 0x80070003. An existing file is
  overwritten [U].
* ``swap SITEID HASH STORE SECUREBINDING STOPIDS TIMEOUT_S`` runs the whole step-2 transaction in
  this one command, in the WS-Management server's worker thread: a client that drops the
  connection, times out or is killed does not stop it (``--fault after:cscript#N:drop``: the effect
  happens, the client never learns). Real WinRM keeps a command's process running when the client
  disappears without deleting the shell, until the shell's idle timeout (W-WINRS-ORPHAN, assumed
  for 2003's WinRM 1.1). The journal goes to ``%SystemRoot%\\Temp\\opslib-swap-N.json`` (FSO,
  ``GetSpecialFolder(0)``), written before the first change and after each phase.
  Rehearsal knob ``host.extra["swap_start_delay_s"]``: ``Start()`` of the swapped site takes that
  long (a slow start on a loaded server), while the site is stopped with the new certificate set —
  the window the interruption tests aim at; the host lock is not held meanwhile.
* COM error descriptions come from the system message table in the UI language (Japanese on a
  Japanese server) [I]; the kit reads only the numbers.
"""

from __future__ import annotations

import re
import time
from importlib import resources
from typing import Any

from .. import cmd
from ..cmd import resolve_path
from ..host import STARTED, STOPPED, Host, Invocation, Site
from . import certutil, sslinherit, stores
from .sslinherit import effective_cert

EXIT_OK, EXIT_ADSI, EXIT_USAGE, EXIT_STATE, EXIT_DOWN = 0, 1, 2, 3, 4
CTL_E_PERMISSIONDENIED = 0x800A0046  # FSO "Permission denied" (a read-only journal file) [I]
E_INVALIDARG = 0x80070057
E_FAIL = 0x80004005
E_PATH_NOT_FOUND = 0x80070003
E_SHARING_VIOLATION = 0x80070020
MD_ERROR_DATA_NOT_FOUND = 0x800CC801
_PATH = re.compile(r'[A-Za-z]:\\[^"*?<>|]+')  # the helper's PATH check, same pattern

_BANNER = (
    "Microsoft (R) Windows Script Host Version 5.6\r\n"
    "Copyright (C) Microsoft Corporation 1996-2001. All rights reserved.\r\n\r\n"
)
_HOST_OPTIONS = re.compile(r"^//(nologo|logo|b|i|d|x|u|s|t:\d+|e:\w+|h:\w+|job:\w+)$", re.IGNORECASE)


def helper_bytes() -> bytes:
    """The packaged helper, exactly as the kit uploads it."""
    return (resources.files("opslib") / "scripts" / "iis6.js").read_bytes()


def folderage_bytes() -> bytes:
    """The packaged ``folderage.js`` (a folder's creation time), exactly as the kit uploads it."""
    return (resources.files("opslib") / "scripts" / "folderage.js").read_bytes()


def _folderage(inv: Invocation, args: list[str]) -> int:
    """``folderage.js FOLDER``: FileSystemObject ``GetFolder(p).DateCreated`` as ms since 1970 UTC,
    ASCII digits (``host.dir_created``, set by mkdir); exit 1 and no output when the folder is not there."""
    host = inv.host
    if len(args) != 1:
        return 1
    path = resolve_path(host, args[0])
    if not host.is_dir(path):
        return 1
    created = host.dir_created.get(Host.norm(path), int(time.time() * 1000))
    inv.write(f"{created}\r\n")
    return 0


# --- the helper's JSON writer, mirrored (quote()/toJson() in iis6.js) -------------------------------


def _quote(text: str) -> str:
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif code < 32 or code > 126:
            # JScript strings are UTF-16: a character outside the BMP is two code units.
            for unit in ch.encode("utf-16-be").hex(" ", 2).split():
                out.append("\\u" + unit)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def to_json(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(_quote(k) + ":" + to_json(v) for k, v in value.items()) + "}"
    raise TypeError(f"cannot serialise {type(value).__name__}")


class _Failure(Exception):
    def __init__(self, code: int, number: int, description: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.number = number
        self.description = description
        self.extra = extra or {}


def describe(site: Site, host: Host | None = None) -> dict[str, Any]:
    """What ``describe(site)`` in iis6.js returns for this site (same field order)."""
    cert_hash, store_name, inherited = effective_cert(site, host)
    return {
        "id": site.id,
        "name": site.comment,
        "state": site.state,
        "bindings": list(site.server_bindings),
        "secure_bindings": list(site.secure_bindings),
        "cert_hash": cert_hash,
        "cert_hash_inherited": inherited,
        "store_name": store_name,
    }


def _endpoints(site: Site) -> set[str]:
    secure = {"s|" + ":".join(b.split(":")[:2]) for b in site.secure_bindings}
    return secure | {"h|" + b for b in site.server_bindings}


def conflicting_site(host: Host, site: Site) -> Site | None:
    """Another started site that already holds one of ``site``'s bindings (see the module doc)."""
    mine = _endpoints(site)
    for other in host.sites.values():
        if other.id != site.id and other.state == STARTED and mine & _endpoints(other):
            return other
    return None


def _fail_thumbprints(host: Host) -> set[str]:
    """Scenario fault ``host.extra["fail_start_thumbprints"]``: Start() fails while the site is bound
    to one of these certificates (a site that will not start with the *new* certificate only)."""
    return {str(t).upper() for t in host.extra.get("fail_start_thumbprints", ())}


def _error_body(exc: _Failure) -> dict[str, Any]:
    return {"number": f"0x{exc.number & 0xFFFFFFFF:08X}", "description": exc.description}


class _Helper:
    def __init__(self, inv: Invocation) -> None:
        self.host = inv.host

    def _site_id(self, arg: str) -> int:
        if not re.fullmatch(r"[0-9]{1,10}", arg):
            raise _Failure(EXIT_USAGE, E_INVALIDARG, f"SITEID must be the number n of W3SVC/n, got: {arg}")
        return int(arg)

    def _open(self, site_id: int) -> Site:
        site = self.host.sites.get(site_id)
        if site is None:
            # GetObject("IIS://localhost/W3SVC/n") for a missing node: ERROR_PATH_NOT_FOUND [I].
            raise _Failure(
                EXIT_ADSI,
                E_PATH_NOT_FOUND,
                self.host.text(
                    "The system cannot find the path specified.", "指定されたパスが見つかりません。"
                ),
            )
        return site

    def list_sites(self, args: list[str]) -> dict[str, Any]:
        if args:
            raise _Failure(EXIT_USAGE, E_INVALIDARG, "usage: list")
        return {"verb": "list", "sites": [describe(s, self.host) for _, s in sorted(self.host.sites.items())]}

    def set_cert(self, args: list[str]) -> dict[str, Any]:
        if len(args) != 4:
            raise _Failure(EXIT_USAGE, E_INVALIDARG, "usage: set-cert SITEID HASH STORE SECUREBINDING")
        site_id = self._site_id(args[0])
        thumb = args[1].upper()
        if not re.fullmatch(r"[0-9A-F]{40}", thumb):
            raise _Failure(EXIT_USAGE, E_INVALIDARG, "HASH must be 40 hexadecimal digits (SHA-1 thumbprint)")
        if not re.fullmatch(r"[A-Za-z]{1,32}", args[2]):
            raise _Failure(EXIT_USAGE, E_INVALIDARG, "STORE must be a store name such as MY")
        if not re.fullmatch(r"[0-9.]*:[0-9]{1,5}:", args[3]):
            raise _Failure(EXIT_USAGE, E_INVALIDARG, "SECUREBINDING must look like IP:PORT: (e.g. :443:)")
        site = self._open(site_id)
        before = describe(site, self.host)
        with self.host.lock:
            site.ssl_cert_hash = thumb
            site.ssl_store_name = args[2]
            site.secure_bindings = [args[3]]
        return {"verb": "set-cert", "before": before, "site": describe(site, self.host)}

    def clear_cert(self, args: list[str]) -> dict[str, Any]:
        if len(args) != 1:
            raise _Failure(EXIT_USAGE, E_INVALIDARG, "usage: clear-cert SITEID")
        site = self._open(self._site_id(args[0]))
        before = describe(site, self.host)
        with self.host.lock:
            site.ssl_cert_hash = ""
            site.ssl_store_name = ""
        return {"verb": "clear-cert", "before": before, "site": describe(site, self.host)}

    def control(self, verb: str, args: list[str]) -> dict[str, Any]:
        if len(args) != 1:
            raise _Failure(EXIT_USAGE, E_INVALIDARG, f"usage: {verb} SITEID")
        site = self._open(self._site_id(args[0]))
        wanted = STARTED if verb == "start" else STOPPED
        before = site.state
        changed = False
        call_error: tuple[int, str] | None = None
        if before != wanted:
            changed = True
            with self.host.lock:
                if verb == "stop":
                    site.state = STOPPED
                elif site.fail_start or site.ssl_cert_hash.upper() in _fail_thumbprints(self.host):
                    call_error = (
                        E_SHARING_VIOLATION,
                        self.host.text(
                            "The process cannot access the file because it is being used by another process.",
                            "プロセスはファイルにアクセスできません。別のプロセスが使用中です。",
                        ),
                    )
                elif conflicting_site(self.host, site) is None:
                    site.state = STARTED
                # else: W3SVC event 1007, the site is deactivated and stays stopped (module doc).
        state = site.state
        now = describe(site, self.host)
        if state != wanted:
            prefix = f"{call_error[1]}; " if call_error else ""
            raise _Failure(
                EXIT_ADSI if call_error else EXIT_STATE,
                call_error[0] if call_error else E_FAIL,
                f"{prefix}W3SVC/{site.id} ServerState is {state}, not {wanted} after {verb} "
                "(see the System event log, source W3SVC)",
                {"state": state, "site": now},
            )
        return {"verb": verb, "changed": changed, "before_state": before, "site": now}

    def _com_error(self, hresult: int) -> _Failure:
        """A failing COM call, as the helper's fail() reports it (exit 1, system message text)."""
        _, en, ja = certutil.MESSAGES[hresult]
        return _Failure(EXIT_ADSI, hresult, self.host.text(en, ja))

    def export_pfx(self, args: list[str]) -> dict[str, Any]:
        if len(args) != 3:
            raise _Failure(EXIT_USAGE, E_INVALIDARG, "usage: export-pfx SITEID PATH PASSWORD")
        site_id = self._site_id(args[0])
        path, password = args[1], args[2]
        if not _PATH.fullmatch(path):
            raise _Failure(EXIT_USAGE, E_INVALIDARG, "PATH must be an absolute file path such as C:\\x.pfx")
        if password == "":
            raise _Failure(EXIT_USAGE, E_INVALIDARG, "PASSWORD must not be empty")
        site = self._open(site_id)
        thumb, store_name, _ = effective_cert(site, self.host)  # Get() reads an inherited value too
        if not thumb:
            raise _Failure(
                EXIT_ADSI,
                MD_ERROR_DATA_NOT_FOUND,
                f"W3SVC/{site.id} has no server certificate (SSLCertHash is not set); nothing to export",
            )
        # IIS.CertObj.Export: the certificate from the site's store, its key, the chain (module doc).
        host = self.host
        entry = stores.find_certificate(host, store_name or "MY", thumb)
        if entry is None:
            raise self._com_error(certutil.CRYPT_E_NOT_FOUND)
        if not host.is_admin:
            raise self._com_error(certutil.E_ACCESSDENIED)
        pair = stores.key_for(host, entry)
        if pair is None:
            raise self._com_error(certutil.NTE_BAD_KEYSET)
        if not pair.exportable:
            raise self._com_error(certutil.NTE_BAD_KEY_STATE)
        if not host.parent_exists(path):
            raise self._com_error(certutil.ERROR_PATH_NOT_FOUND)
        chain = certutil.build_chain(host, entry.cert)[1:]
        host.write_file(path, certutil.build_pfx(entry, pair, password, chain=chain))
        return {"verb": "export-pfx", "exported": path, "site": site.id, "cert_hash": thumb}

    # --- swap: one server-side transaction (verbSwap in iis6.js) -----------------------------------

    def _journal_path(self, site_id: int) -> str:
        # FSO GetSpecialFolder(0): the Windows folder, %SystemRoot%.
        root = next((v for k, v in self.host.env.items() if k.upper() == "SYSTEMROOT"), "C:\\WINDOWS")
        return f"{root}\\Temp\\opslib-swap-{site_id}.json"

    def _write_journal(self, path: str, record: dict[str, Any]) -> None:
        if path.lower() in {str(p).lower() for p in self.host.extra.get("read_only_files", ())}:
            raise _Failure(EXIT_ADSI, CTL_E_PERMISSIONDENIED, "Permission denied")
        if not self.host.parent_exists(path):
            raise _Failure(EXIT_ADSI, 0x800A004C, "Path not found")  # CTL_E_PATHNOTFOUND [I]
        self.host.write_file(path, (to_json(record) + "\r\n").encode("ascii"))
        self.host.save_state()  # the journal is on disk before the next phase begins

    def _try_journal(self, path: str, record: dict[str, Any]) -> None:
        try:
            self._write_journal(path, record)
        except _Failure as exc:
            record["journal_error"] = _error_body(exc)

    def _put_binding(self, site: Site, thumb: str, store: str, bindings: list[str]) -> None:
        with self.host.lock:
            site.ssl_cert_hash = thumb
            site.ssl_store_name = (store or "MY") if thumb else ""
            site.secure_bindings = list(bindings[:1])
        self.host.save_state()

    def _stop_site(self, site: Site) -> None:
        with self.host.lock:
            site.state = STOPPED
        self.host.save_state()

    def _start_site(self, site: Site, *, delay_s: float = 0.0) -> None:
        if delay_s > 0:
            time.sleep(delay_s)  # a slow Start(): the site is stopped meanwhile (module doc)
        with self.host.lock:
            if site.fail_start or site.ssl_cert_hash.upper() in _fail_thumbprints(self.host):
                raise _Failure(
                    EXIT_ADSI,
                    E_SHARING_VIOLATION,
                    self.host.text(
                        "The process cannot access the file because it is being used by another process.",
                        "プロセスはファイルにアクセスできません。別のプロセスが使用中です。",
                    ),
                )
            if conflicting_site(self.host, site) is None:
                site.state = STARTED
        self.host.save_state()
        if site.state != STARTED:
            raise _Failure(
                EXIT_STATE,
                E_FAIL,
                f"W3SVC/{site.id} ServerState is {site.state}, not {STARTED} after start "
                "(see the System event log, source W3SVC)",
            )

    def swap(self, args: list[str]) -> tuple[int, dict[str, Any]]:
        if len(args) != 6:
            raise _Failure(
                EXIT_USAGE, E_INVALIDARG, "usage: swap SITEID HASH STORE SECUREBINDING STOPIDS TIMEOUT_S"
            )
        site_id = self._site_id(args[0])
        thumb = args[1].upper()
        if not re.fullmatch(r"[0-9A-F]{40}", thumb):
            raise _Failure(EXIT_USAGE, E_INVALIDARG, "HASH must be 40 hexadecimal digits (SHA-1 thumbprint)")
        if not re.fullmatch(r"[A-Za-z]{1,32}", args[2]):
            raise _Failure(EXIT_USAGE, E_INVALIDARG, "STORE must be a store name such as MY")
        if not re.fullmatch(r"[0-9.]*:[0-9]{1,5}:", args[3]):
            raise _Failure(EXIT_USAGE, E_INVALIDARG, "SECUREBINDING must look like IP:PORT: (e.g. :443:)")
        if not re.fullmatch(r"-|[0-9]{1,10}(,[0-9]{1,10})*", args[4]):
            raise _Failure(EXIT_USAGE, E_INVALIDARG, "STOPIDS must be - or site ids separated by commas")
        if not re.fullmatch(r"[0-9]{1,4}", args[5]) or int(args[5]) < 1:
            raise _Failure(EXIT_USAGE, E_INVALIDARG, "TIMEOUT_S must be a number of seconds from 1 to 9999")
        site = self._open(site_id)
        before = describe(site, self.host)
        others = [self._open(self._site_id(x)) for x in ([] if args[4] == "-" else args[4].split(","))]
        journal = self._journal_path(site_id)
        record: dict[str, Any] = {
            "verb": "swap",
            "ok": False,
            "restored": False,
            "phase": "swapping",
            "new_hash": thumb,
            "before": before,
            "stopped": [],
            "site": None,
            "cause": None,
            "journal": journal,
        }
        self._write_journal(journal, record)  # no journal, no change
        delay_s = float(self.host.extra.get("swap_start_delay_s", 0) or 0)
        stopped: list[dict[str, Any]] = []
        try:
            for other in others:
                self._stop_site(other)
                stopped.append(describe(other, self.host))
            record["stopped"] = stopped
            self._put_binding(site, thumb, args[2], [args[3]])
            self._stop_site(site)
            self._start_site(site, delay_s=delay_s)
            record.update(ok=True, phase="done", site=describe(site, self.host))
            self._try_journal(journal, record)
            return EXIT_OK, record
        except _Failure as exc:
            cause = _error_body(exc)
        record.update(cause=cause, phase="restoring")
        self._try_journal(journal, record)
        restored = False
        after: dict[str, Any] | None
        try:
            old_hash = "" if before["cert_hash_inherited"] else before["cert_hash"]
            self._put_binding(site, old_hash, before["store_name"], before["secure_bindings"])
            self._stop_site(site)
            self._start_site(site)
            after = describe(site, self.host)
            restored = (after["cert_hash"], after["cert_hash_inherited"]) == (
                before["cert_hash"],
                before["cert_hash_inherited"],
            )
        except _Failure as again:
            record["restore_error"] = _error_body(again)
            after = describe(site, self.host)
        record.update(restored=restored, phase="restored" if restored else "failed", site=after)
        self._try_journal(journal, record)
        return (EXIT_STATE if restored else EXIT_DOWN), record

    def journal(self, args: list[str]) -> dict[str, Any]:
        if len(args) != 1:
            raise _Failure(EXIT_USAGE, E_INVALIDARG, "usage: journal SITEID")
        site_id = self._site_id(args[0])
        path = self._journal_path(site_id)
        data = self.host.read_file(path)
        text = None if data is None else data.decode("ascii", errors="replace")
        return {"verb": "journal", "site": site_id, "path": path, "journal": text}

    def run(self, argv: list[str]) -> tuple[int, str]:
        verb = argv[0] if argv else ""
        args = argv[1:]
        try:
            if verb == "list":
                result = self.list_sites(args)
            elif verb == "set-cert":
                result = self.set_cert(args)
            elif verb == "clear-cert":
                result = self.clear_cert(args)
            elif verb in ("start", "stop"):
                result = self.control(verb, args)
            elif verb == "export-pfx":
                result = self.export_pfx(args)
            elif verb == "swap":
                code, result = self.swap(args)
                return code, to_json(result)
            elif verb == "journal":
                result = self.journal(args)
            else:
                raise _Failure(
                    EXIT_USAGE,
                    E_INVALIDARG,
                    f"unknown verb '{verb}'; use list, set-cert, clear-cert, start, stop, export-pfx, swap or journal",
                )
        except _Failure as exc:
            body: dict[str, Any] = {
                "verb": verb,
                "number": f"0x{exc.number & 0xFFFFFFFF:08X}",
                "description": exc.description,
            }
            body.update(exc.extra)
            return exc.code, to_json({"error": body})
        return EXIT_OK, to_json(result)


def cscript(inv: Invocation) -> int:
    host = inv.host
    args = inv.argv[1:]
    logo = True
    engine = ""
    while args and args[0].startswith("//"):
        option = args.pop(0)
        if not _HOST_OPTIONS.match(option):
            inv.say(
                f'Input Error: Unknown option "{option}" specified.',
                f'入力エラー: 不明なオプション "{option}" が指定されました。',
                err=True,
            )
            return 1
        low = option.lower()
        if low == "//nologo":
            logo = False
        elif low == "//logo":
            logo = True
        elif low.startswith("//e:"):
            engine = low[4:]
    if logo:
        inv.write(_BANNER)
    if not args:
        inv.say(
            "Usage: CScript scriptname.extension [option...] [arguments...]",
            "使用法: CScript scriptname.extension [option...] [arguments...]",
        )
        return 1
    script, script_args = resolve_path(host, args[0]), args[1:]
    data = host.read_file(script)
    if data is None or host.is_dir(script):
        inv.say(
            f'Input Error: Can not find script file "{script}".',
            f'入力エラー: スクリプト ファイル "{script}" が見つかりません。',
            err=True,
        )
        return 1
    if data == folderage_bytes() and engine in ("", "jscript"):
        return _folderage(inv, script_args)
    if data == sslinherit.sslinherit_bytes() and engine in ("", "jscript"):
        return sslinherit.sslinherit(inv, script_args)  # the lab check's read-only probe
    if data != helper_bytes() or engine not in ("", "jscript"):
        inv.write_err(
            f"opslib rehearsal: {script} is not the kit's iis6.js helper (or not run as JScript); "
            "the rehearsal host only runs the kit's own helper\r\n"
        )
        return 1
    code, line = _Helper(inv).run(script_args)
    inv.write(line + "\r\n")
    return code


def register(host: Host) -> None:
    host.programs["cscript"] = cscript
    # %SystemRoot%\Temp, where the swap journal goes, exists on every Windows installation [I].
    root = next((v for k, v in host.env.items() if k.upper() == "SYSTEMROOT"), "")
    if root:
        cmd.make_dirs(host, root + "\\Temp")
