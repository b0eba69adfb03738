"""The emulated Windows/IIS host behind the rehearsal WS-Management endpoint.

This module holds the *model*: registry, file system, IIS 6 metabase sites, IIS 7+ sites and
application pools (HTTP.sys SSL bindings live in the registry, see :mod:`opslib.rehearsal.iis7`),
private keys, and the
table of programs the cmd.exe-like interpreter (:mod:`opslib.rehearsal.cmd`) can start. Programs
(certutil, certreq, reg, cscript, …) live in :mod:`opslib.rehearsal.programs` and act on this
model only. The model is serialised to the ``--state-file`` after every command so that a test can
see what the "server" now holds.

Faithfulness rule: every behaviour follows what Windows does as documented in
``docs/windows-behaviour.md``; where Windows behaviour is unknown, the
implementing code says so in a comment. The emulation never bends to make the kit's checks pass.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# ServerState values of IIS 6 (https://learn.microsoft.com/en-us/previous-versions/iis/6.0-sdk/ms524905(v=vs.90))
STARTING, STARTED, STOPPING, STOPPED, PAUSING, PAUSED, CONTINUING = 1, 2, 3, 4, 5, 6, 7

HKLM_CERTS = r"HKLM\SOFTWARE\Microsoft\SystemCertificates"

# Host.snapshot(): what is not the host's state (the lock, the change hooks of its running endpoints,
# where it writes its state file), and what is copied one level deep only (KeyPair values are never
# changed in place and hold key objects; programs are functions).
_NOT_STATE = frozenset({"lock", "on_change", "state_file"})
_SHALLOW = frozenset({"keys", "programs"})


@dataclass
class Site:
    """One IIS 6 metabase web site, ``/LM/W3SVC/<id>``."""

    id: int
    comment: str  # ServerComment (the description shown in IIS Manager)
    state: int = STOPPED  # ServerState
    server_bindings: list[str] = field(default_factory=list)  # "IP:port:host"
    secure_bindings: list[str] = field(default_factory=list)  # "IP:port:" (IIS 6 has no SNI)
    ssl_cert_hash: str = ""  # SSLCertHash as 40 upper-case hex digits, "" when unset
    ssl_store_name: str = ""  # SSLStoreName, normally "MY"
    fail_start: bool = False  # scenario/fault: Start() leaves the site stopped


@dataclass
class WebBinding:
    """One ``<binding>`` of an IIS 7+ site in applicationHost.config.

    ``binding_information`` is ``"IP:port:host"`` (``*`` = all unassigned addresses); ``ssl_flags``
    bit 1 = SNI, IIS 8+ (https://learn.microsoft.com/en-us/iis/configuration/system.applicationhost/sites/site/bindings/binding).
    """

    protocol: str
    binding_information: str
    ssl_flags: int = 0


@dataclass
class WebSite:
    """One IIS 7+ site (``<site name id>`` in applicationHost.config) with its run-time state."""

    id: int
    name: str
    state: str = "Stopped"  # "Started" / "Stopped" as appcmd prints it
    bindings: list[WebBinding] = field(default_factory=list)
    app_pool: str = "DefaultAppPool"  # applicationPool of the root application "/"
    physical_path: str = r"%SystemDrive%\inetpub\wwwroot"
    fail_start: bool = False  # scenario/fault: start leaves the site stopped


@dataclass
class AppPool:
    """One IIS 7+ application pool."""

    name: str
    state: str = "Started"
    runtime_version: str = "v4.0"  # managedRuntimeVersion
    pipeline_mode: str = "Integrated"  # managedPipelineMode


@dataclass
class KeyPair:
    """A private key held by a CSP key container (the real key, made with `cryptography`)."""

    container: str
    pkcs8_pem: str  # unencrypted PKCS#8 PEM; never leaves the model except through PFX export
    exportable: bool = True
    provider: str = "Microsoft RSA SChannel Cryptographic Provider"


@dataclass
class CommandResult:
    stdout: bytes
    stderr: bytes
    exit_code: int


@dataclass
class Invocation:
    """What a program sees when the interpreter starts it.

    ``argv`` is the argument vector as CommandLineToArgvW would produce it (argv[0] the program
    name as typed). Programs write *text*; the interpreter encodes it in the shell's code page
    (characters the code page cannot hold become ``?`` as on Windows).
    """

    host: Host
    argv: list[str]
    stdin: bytes = b""
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)

    def write(self, text: str) -> None:
        self.out.append(text)

    def write_err(self, text: str) -> None:
        self.err.append(text)

    def say(self, en: str, ja: str, *, err: bool = False) -> None:
        """Write a localized message line (CRLF-terminated as Windows tools do)."""
        (self.err if err else self.out).append(self.host.text(en, ja) + "\r\n")


Program = Callable[[Invocation], int]


class Host:
    """One emulated Windows Server host. Thread-safe: every public mutation holds ``self.lock``."""

    def __init__(
        self,
        *,
        hostname: str = "WEB01",
        locale: str = "en",
        codepage: int = 437,
        windows_version: str = "5.2.3790",  # Windows Server 2003 SP2
        iis_major: int = 6,
        state_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self.hostname = hostname
        self.locale = locale  # "en" or "ja": the language of tool messages
        self.default_codepage = codepage  # the console's OEM code page (437 en-US, 932 ja-JP)
        self.windows_version = windows_version
        self.iis_major = iis_major
        self.state_file = Path(state_file) if state_file else None
        self.lock = threading.RLock()
        # Registry: upper-cased key path -> {upper-cased value name: (name, type, data)}.
        # data: str for REG_SZ/REG_EXPAND_SZ, int for REG_DWORD, bytes for REG_BINARY.
        self.registry: dict[str, dict[str, tuple[str, str, Any]]] = {}
        self.registry_case: dict[str, str] = {}  # upper-cased key path -> path as created
        # File system: lower-cased absolute Windows path -> bytes; directories as a set.
        self.files: dict[str, bytes] = {}
        self.file_case: dict[str, str] = {}
        self.dirs: set[str] = set()
        # A folder's creation time (lower-cased path -> ms since 1970 UTC), what FileSystemObject's
        # Folder.DateCreated answers (opslib/scripts/folderage.js); set by mkdir, tests may age it.
        self.dir_created: dict[str, int] = {}
        self.sites: dict[int, Site] = {}  # IIS 6 metabase
        self.web_sites: dict[int, WebSite] = {}  # IIS 7+ applicationHost.config (opslib.rehearsal.iis7)
        self.app_pools: dict[str, AppPool] = {}
        # Files another process holds open without FILE_SHARE_DELETE (an antivirus scan, a backup
        # agent): fnmatch patterns over the lower-cased path. Reads and writes work, deletes fail —
        # https://learn.microsoft.com/en-us/windows/win32/api/fileapi/nf-fileapi-createfilew (dwShareMode).
        self.locked_files: set[str] = set()
        # Files a running command line holds open for writing through a redirection (``>F``, ``>>F``,
        # ``9>>F``): cmd opens the target before the program starts and closes it when the program ends
        # (https://learn.microsoft.com/en-us/previous-versions/windows/it-pro/windows-xp/bb490982(v=technet.10),
        # handles 3-9 included). Not state: empty between command lines. Lower-cased path -> open count.
        self.open_for_write: dict[str, int] = {}
        self.keys: dict[str, KeyPair] = {}
        self.programs: dict[str, Program] = {}
        self.env: dict[str, str] = {}
        self.is_admin = True
        self.history: list[dict[str, Any]] = []  # every command line run, with its exit code
        self.extra: dict[str, Any] = {}  # scenario facts (e.g. TLS endpoint ports)
        self.on_change: list[Callable[[Host], None]] = []  # e.g. the TLS endpoint server

    # --- localisation -------------------------------------------------------------------------
    def text(self, en: str, ja: str) -> str:
        return ja if self.locale == "ja" else en

    # --- registry -------------------------------------------------------------------------------
    def reg_keys(self) -> list[str]:
        return [self.registry_case[k] for k in sorted(self.registry)]

    def reg_set(self, key: str, name: str, type_: str, data: Any) -> None:
        with self.lock:
            k = key.rstrip("\\").upper()
            self.registry.setdefault(k, {})
            self.registry_case.setdefault(k, key.rstrip("\\"))
            self.registry[k][name.upper()] = (name, type_, data)

    def reg_get(self, key: str, name: str) -> tuple[str, str, Any] | None:
        return self.registry.get(key.rstrip("\\").upper(), {}).get(name.upper())

    def reg_has_key(self, key: str) -> bool:
        return key.rstrip("\\").upper() in self.registry

    def reg_delete_key(self, key: str) -> bool:
        """Delete a key and its subkeys; False when it did not exist."""
        with self.lock:
            k = key.rstrip("\\").upper()
            doomed = [x for x in self.registry if x == k or x.startswith(k + "\\")]
            for x in doomed:
                del self.registry[x]
                self.registry_case.pop(x, None)
            return bool(doomed)

    def reg_subkeys(self, key: str) -> list[str]:
        """Immediate subkey names (as created) of ``key``."""
        k = key.rstrip("\\").upper() + "\\"
        names = {self.registry_case[x][len(k) :].split("\\")[0] for x in self.registry if x.startswith(k)}
        return sorted(names)

    # --- file system ----------------------------------------------------------------------------
    @staticmethod
    def norm(path: str) -> str:
        return path.replace("/", "\\").rstrip("\\").lower()

    def write_file(self, path: str, data: bytes, *, append: bool = False) -> None:
        with self.lock:
            k = self.norm(path)
            self.files[k] = (self.files.get(k, b"") + data) if append else data
            self.file_case.setdefault(k, path)

    def read_file(self, path: str) -> bytes | None:
        return self.files.get(self.norm(path))

    def delete_file(self, path: str) -> bool:
        with self.lock:
            k = self.norm(path)
            self.file_case.pop(k, None)
            return self.files.pop(k, None) is not None

    def exists(self, path: str) -> bool:
        k = self.norm(path)
        return k in self.files or k in self.dirs

    def is_locked(self, path: str) -> bool:
        """Whether a delete of ``path`` fails because another process holds it open (see ``locked_files``)."""
        k = self.norm(path)
        return any(fnmatch.fnmatchcase(k, pattern.lower()) for pattern in self.locked_files)

    def add_dir(self, path: str) -> None:
        """Create one folder (its parent must exist): recorded with its creation time (now)."""
        with self.lock:
            k = self.norm(path)
            if k not in self.dirs:
                self.dirs.add(k)
                self.dir_created[k] = int(time.time() * 1000)

    def is_dir(self, path: str) -> bool:
        return self.norm(path) in self.dirs

    def parent_exists(self, path: str) -> bool:
        parent = self.norm(path).rsplit("\\", 1)[0]
        return len(parent) <= 2 or parent in self.dirs  # "c:" is the drive root

    # --- snapshots (tests share one endpoint and put its host back between them) ------------------
    def snapshot(self) -> HostSnapshot:
        """Everything the host holds (registry, files, dirs, sites, web_sites, app_pools, keys,
        locked_files, env, history, extra, programs, locale, …) as a copy that later changes do not touch."""
        with self.lock:
            return HostSnapshot(
                {name: _copy(name, value) for name, value in vars(self).items() if name not in _NOT_STATE}
            )

    def restore(self, snap: HostSnapshot) -> None:
        """Put the host back to ``snap`` exactly (attributes added since are removed); then the change
        hooks run and the state file is written, as after a command."""
        with self.lock:
            for name in [n for n in vars(self) if n not in _NOT_STATE and n not in snap.values]:
                delattr(self, name)
            for name, value in snap.values.items():
                setattr(self, name, _copy(name, value))
        self.save_state()

    # --- state file -----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """A JSON-ready picture of what the host holds, for tests and operators."""
        with self.lock:
            return {
                "hostname": self.hostname,
                "locale": self.locale,
                "windows_version": self.windows_version,
                "iis_major": self.iis_major,
                "registry": {
                    self.registry_case[k]: {
                        n: {"type": t, "data": (d.hex().upper() if isinstance(d, bytes) else d)}
                        for n, t, d in sorted(v.values())
                    }
                    for k, v in sorted(self.registry.items())
                },
                "files": {self.file_case[k]: len(v) for k, v in sorted(self.files.items())},
                "dirs": sorted(self.dirs),
                "sites": {str(i): asdict(s) for i, s in sorted(self.sites.items())},
                "web_sites": {str(i): asdict(s) for i, s in sorted(self.web_sites.items())},
                "app_pools": {n: asdict(p) for n, p in sorted(self.app_pools.items())},
                "keys": {
                    c: {"exportable": k.exportable, "provider": k.provider}
                    for c, k in sorted(self.keys.items())
                },
                "extra": self.extra,
            }

    def save_state(self) -> None:
        """Rewrite the state file atomically (after every command)."""
        for hook in list(self.on_change):
            hook(self)
        if not self.state_file:
            return
        data = json.dumps(self.state(), indent=2, sort_keys=True, ensure_ascii=False)
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.state_file.parent, prefix=".state-")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(data)
        os.replace(tmp, self.state_file)


@dataclass(frozen=True)
class HostSnapshot:
    """What :meth:`Host.snapshot` took: attribute name → a private copy (restored by :meth:`Host.restore`)."""

    values: dict[str, Any]


def _copy(name: str, value: Any) -> Any:
    return dict(value) if name in _SHALLOW else copy.deepcopy(value)
