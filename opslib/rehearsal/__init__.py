"""The rehearsal host: an emulated Windows/IIS server behind a real WS-Management endpoint.

``start()`` runs the endpoint in a background thread (a context manager); ``serve_forever()`` is
the blocking form behind ``opslib rehearse serve``. The endpoint listens on loopback only.

    with rehearsal.start(host, password=pw) as r:
        conn = opslib.winrm.connect(r.url, transport="basic", username=r.user, password=pw,
                                         host_label="web01", allow_unencrypted_basic=True)
"""

from __future__ import annotations

import importlib
import os
import secrets as _random
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from ..credentials import register as _register_secret
from ..errors import UsageError
from . import tlsconfig
from .host import Host, HostSnapshot
from .server import WINDOWS_DEFAULTS, FaultSpec, WSManServer
from .tlsconfig import make_tls_files, server_ssl_context

__all__ = ["Rehearsal", "start", "serve_forever", "shipped_options", "stop_on_signals", "FaultSpec", "Host"]

POLL_S = 0.02  # serve_forever's poll: stop() returns within it


def shipped_options(windows_version: str) -> dict[str, object]:
    """``start()`` options for WinRM as this Windows ships it (``server.WINDOWS_DEFAULTS``).

    ``shipped_options("5.2.3790")`` → WinRM 1.1, Negotiate, HTTPS with TLS 1.0;
    ``shipped_options("6.1.7601")`` → WinRM 2.0, Negotiate with message encryption over HTTP.
    """
    major_minor = ".".join(windows_version.split(".")[:2])
    return dict(WINDOWS_DEFAULTS.get(major_minor, WINDOWS_DEFAULTS["10.0"]))


class Rehearsal:
    """A running rehearsal endpoint. ``url`` is ``http(s)://127.0.0.1:PORT/wsman``."""

    def __init__(
        self,
        host: Host,
        *,
        server: WSManServer,
        user: str,
        password: str,
        ca_file: Path | None,
        workdir: Path,
        cleanup: list[Any],
    ) -> None:
        self.host = host
        self.user = user
        self.password = password  # in-process only (tests, demo); never printed or written
        self.ca_file = ca_file
        self.workdir = workdir
        self._server = server
        self._cleanup = cleanup
        address, port = str(server.server_address[0]), int(server.server_address[1])
        scheme = "https" if server.ssl_context or server.tls != "modern" else "http"
        where = f"[{address}]" if ":" in address else address
        self.url = f"{scheme}://{where}:{port}/wsman"
        # A short poll: shutdown() waits for serve_forever to notice (the default 0.5 s, per stop()).
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": POLL_S}, name="rehearsal-wsman", daemon=True
        )
        self._thread.start()
        self._stopped = False

    @property
    def https(self) -> bool:
        return self._server.ssl_context is not None or self._server.tls != "modern"

    @property
    def auth(self) -> str:
        """``negotiate`` (NTLM, message encryption over HTTP) or ``basic``."""
        return "negotiate" if self._server.negotiate else "basic"

    @property
    def request_count(self) -> int:
        """HTTP requests served so far (the benchmark counts round trips with it)."""
        return self._server.request_count

    @property
    def faults(self) -> list[FaultSpec]:
        return list(self._server.faults)

    @property
    def command_log(self) -> list[tuple[str, int, str]]:
        """Every command run so far: (program, its N-th command, named fault point or "")."""
        return list(self._server.command_log)

    def set_faults(self, specs: Sequence[str]) -> None:
        """Replace the active fault specs (``[]`` clears them, e.g. before a ``resume``)."""
        self._server.set_faults(list(specs))

    def snapshot(self) -> HostSnapshot:
        """The host's state now (``Host.snapshot``), for :meth:`restore`."""
        return self.host.snapshot()

    def restore(self, snap: HostSnapshot) -> None:
        """Put the endpoint back as it was at ``snap``: no faults, no open shells, the host's state
        (tests that share one endpoint restore it before each test)."""
        self._server.set_faults([])
        with self._server.lock:
            self._server.shells.clear()
        self.host.restore(snap)

    def params(
        self,
        *,
        password_env: str = "OPSLIB_REHEARSAL_PASSWORD",
        pfx_password_env: str = "OPSLIB_PFX_PASSWORD",
        backup_dir: str = "~/ssl-backups",
        certificate_file: str | None = None,
    ) -> dict[str, Any]:
        """The parameters-file mapping (CONTRIBUTING.md) for a renewal against this host.

        Secrets appear only as references (``env:NAME``). Site names, the certificate file and the
        verify endpoint come from ``host.extra`` as the scenario set them.
        """
        extra = self.host.extra
        negotiate = self._server.negotiate
        # WinRM 1.1 (Server 2003) over HTTP authenticates but cannot encrypt: no message encryption.
        unsealed_http = negotiate and not self.https and self._server.winrm_version == "1.1"
        winrm: dict[str, Any] = {
            "url": self.url,
            "transport": "ntlm" if negotiate else "basic",
            "username": self.user,
            "password": f"env:{password_env}",
            "ca_trust_path": str(self.ca_file) if self.ca_file else "",
            "server_cert_validation": "validate",
            "codepage": "auto",
            "allow_unencrypted_basic": not self.https,
            # Server 2003's Schannel speaks TLS 1.0 only: a context for this connection only.
            "tls": "default" if self._server.tls == "modern" else "legacy-tls1.0",
            "message_encryption": "never" if unsealed_http else "auto",
            # A rehearsal host over an unencrypted channel (Basic/HTTP, WinRM 1.1 HTTP) is a lab: the
            # operator's acceptance is written into the file, and the transcript says so at each use.
            "allow_cleartext_secrets": not self.https and (not negotiate or unsealed_http),
        }
        verify_endpoint = str(extra.get("verify_endpoint", ""))
        hostnames = list(extra.get("expected_hostnames", [])) or (
            [str(extra["production_site"])] if "production_site" in extra else []
        )
        return {
            "host": str(extra.get("host_label", self.host.hostname.lower())),
            "winrm": winrm,
            "production_site": extra.get("production_site", ""),
            "work_site": extra.get("work_site", ""),
            "ssl_port": int(extra.get("ssl_port", 443)),
            "certificate_file": certificate_file
            if certificate_file is not None
            else extra.get("certificate_file", ""),
            "expected_hostnames": hostnames,
            "forbidden_roots": list(extra.get("forbidden_roots", [])),
            "warn_days": int(extra.get("warn_days", 30)),
            "backup": {"directory": backup_dir, "pfx_password": f"env:{pfx_password_env}"},
            "verify": {
                "endpoint": verify_endpoint,
                "servername": str(extra.get("verify_servername", hostnames[0] if hostnames else "")),
                "ca_file": str(extra.get("verify_ca_file", "")),
            },
        }

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        for item in reversed(self._cleanup):
            stop = getattr(item, "stop", None) or getattr(item, "cleanup", None)
            if stop:
                stop()

    def __enter__(self) -> Rehearsal:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start(
    host: Host | None = None,
    *,
    scenario: str = "default",
    https: bool = False,
    user: str = "Administrator",
    password: str | None = None,
    locale: str | None = None,
    codepage: int | None = None,
    faults: Sequence[str] = (),
    state_file: str | os.PathLike[str] | None = None,
    workdir: str | os.PathLike[str] | None = None,
    listen: str = "127.0.0.1",
    port: int = 0,
    auth: str = "basic",
    allow_basic: bool | None = None,
    allow_unencrypted: bool | None = None,
    tls: str = "modern",
    latency_ms: int = 0,
    winrm_version: str | None = None,
) -> Rehearsal:
    """Start the endpoint in a background thread; use as a context manager or call ``.stop()``.

    With ``host=None`` the scenario's host is built by ``opslib.rehearsal.scenarios.build_host``.
    ``password=None`` generates a random one (available as ``Rehearsal.password`` in-process).

    The defaults are the historical rehearsal endpoint (Basic over HTTP). WinRM as shipped:
    ``auth="negotiate"`` (NTLM; Basic and unencrypted HTTP refused unless ``allow_basic`` /
    ``allow_unencrypted``), ``tls="tls1.0"`` / ``"tls1.0-no-aes"`` (Server 2003 Schannel; implies HTTPS),
    ``winrm_version`` "1.1" | "2.0" | "3.0" (default: from the host's Windows version). See
    ``shipped_options``.
    """
    tlsconfig.check_mode(tls)
    cleanup: list[Any] = []
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="opslib-rehearsal-")
        cleanup.append(tmp)
        folder = Path(tmp.name)
    else:
        folder = Path(workdir)
        folder.mkdir(parents=True, exist_ok=True)
    if host is None:
        scenarios = importlib.import_module(".scenarios", __name__)  # written by server operations
        host = scenarios.build_host(  # an unknown scenario name raises UsageError
            scenario, locale=locale, codepage=codepage, state_file=state_file, workdir=str(folder)
        )
    else:
        if locale:
            host.locale = locale
        if codepage:
            host.default_codepage = codepage
        if state_file:
            host.state_file = Path(state_file)
    assert host is not None
    host.env.setdefault("USERNAME", user)
    secret = password or _random.token_urlsafe(18)
    _register_secret(secret)
    ctx = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    if tls != "modern":
        ca_file, cert_file, key_file = tlsconfig.make_2003_tls_files(folder)
        ctx = tlsconfig.server_context(tls, cert_file, key_file)
    elif https:
        ca_file, cert_file, key_file = make_tls_files(folder)
        ctx = server_ssl_context(cert_file, key_file)
    secrets_dir: Any = None
    if auth != "basic":
        secrets_dir = tempfile.TemporaryDirectory(prefix="opslib-wsman-")  # the NTLM account file, 0700
        cleanup.append(secrets_dir)
    server = WSManServer(
        host,
        user=user,
        password=secret,
        listen=listen,
        port=port,
        ssl_context=ctx,
        faults=list(faults),
        auth=auth,
        allow_basic=allow_basic,
        allow_unencrypted=allow_unencrypted,
        winrm_version=winrm_version,
        tls=tls,
        secrets_dir=Path(secrets_dir.name) if secrets_dir else None,
        cert_file=cert_file if ctx is not None else None,
        latency_ms=latency_ms,
    )
    try:
        tls_sites = importlib.import_module(".tlsserve", __name__)  # TLS endpoints of the started sites
    except ModuleNotFoundError:
        tls_sites = None
    if tls_sites is not None and hasattr(tls_sites, "start"):
        cleanup.append(tls_sites.start(host))
    host.save_state()
    return Rehearsal(
        host, server=server, user=user, password=secret, ca_file=ca_file, workdir=folder, cleanup=cleanup
    )


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` while inside (a serve loop ends cleanly); the old handlers after."""
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in old:
        signal.signal(s, lambda *_: stop.set())
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def serve_forever(
    *,
    listen: str = "127.0.0.1",
    port: int = 0,
    https: bool = False,
    user: str = "Administrator",
    password_env: str = "OPSLIB_REHEARSAL_PASSWORD",
    locale: str | None = None,
    codepage: int | None = None,
    scenario: str = "default",
    faults: Sequence[str] = (),
    state_file: str | None = None,
    params_out: str | None = None,
    workdir: str | None = None,
    auth: str | None = None,
    allow_basic: bool | None = None,
    allow_unencrypted: bool | None = None,
    tls: str = "modern",
    latency_ms: int = 0,
) -> int:
    """``opslib rehearse serve``: serve until SIGINT/SIGTERM. Prints where things are, never a password."""
    import yaml

    for spec in faults:
        FaultSpec.parse(spec)  # a bad spec is a usage error before anything starts
    if auth is None:  # the scenario's Windows as shipped: NTLM with message encryption from 2008 R2 on
        auth = importlib.import_module(".scenarios", __name__).shipped_auth(scenario)
    password = os.environ.get(password_env, "")
    generated = not password
    if generated:
        password = _random.token_urlsafe(18)
    folder = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="opslib-rehearsal-"))
    state = state_file or str(folder / "state.json")
    try:
        r = start(
            None,
            scenario=scenario,
            https=https,
            user=user,
            password=password,
            locale=locale,
            codepage=codepage,
            faults=faults,
            state_file=state,
            workdir=folder,
            listen=listen,
            port=port,
            auth=auth,
            allow_basic=allow_basic,
            allow_unencrypted=allow_unencrypted,
            tls=tls,
            latency_ms=latency_ms,
        )
    except OSError as exc:
        raise UsageError(f"cannot listen on {listen}:{port}: {exc.strerror or exc}") from None
    with r:
        params_path = Path(params_out) if params_out else folder / "rehearsal.yaml"
        params_path.write_text(
            yaml.safe_dump(r.params(password_env=password_env), sort_keys=False), encoding="utf-8"
        )
        print(f"rehearsal host {r.host.hostname} ({scenario}) listening on {r.url}")
        print(f"  user:        {user}")
        print(f"  auth:        {r.auth}{' (TLS ' + tls + ')' if tls != 'modern' else ''}")
        if generated:
            secret_file = folder / "password"
            secret_file.touch(mode=0o600)
            secret_file.write_text(password + "\n", encoding="utf-8")
            print(
                f"  password:    {password_env} was not set; a random password is in {secret_file} (mode 0600)."
            )
            print(f'               Set it before connecting: export {password_env}="$(cat {secret_file})"')
        else:
            print(f"  password:    from the environment variable {password_env}")
        if r.ca_file:
            print(f"  CA file:     {r.ca_file}")
        print(f"  state file:  {state}")
        print(f"  params file: {params_path}")
        if faults:
            print(f"  faults:      {', '.join(faults)}")
        print("Press Ctrl+C to stop.")
        sys.stdout.flush()
        stop = threading.Event()
        with stop_on_signals(stop):
            while not stop.wait(0.5):
                pass
    print("rehearsal host stopped")
    return 0
