"""``opslib rehearse demo`` / ``make demo``: a whole renewal against a fresh rehearsal host.

Starts a Japanese Windows Server 2003 / IIS 6 rehearsal host (scenario ``iis6-ja``: the G5 root
enabled, a pending request on the work site, the CA's mail with the new certificate) with WinRM as
Server 2003 ships it (``shipped_options``): WinRM 1.1 behind an HTTPS listener that speaks TLS 1.0 only
(Schannel on 2003, AES suites from KB948963) and Negotiate (NTLM) authentication, Basic off — WinRM 1.1
encrypts only over HTTPS; over HTTP it authenticates but sends the data in clear
(https://learn.microsoft.com/en-us/windows/win32/winrm/installation-and-configuration-for-windows-remote-management;
the HTTPS listener's authentication settings: MS-WSMAN 3.1.4.1.29,
https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-wsman/25ebdfd6-51b1-42de-a899-2775c7b31160).
The kit connects with ``winrm.transport: ntlm`` and ``winrm.tls: legacy-tls1.0``. It writes a
parameters file next to the CA's mail, runs the five step notebooks with ``yes=True`` and prints a
summary: each step with its status and duration, old → new thumbprint and expiry, the backup file,
the evidence folder.

Passwords come from ``OPSLIB_DEMO_WINRM_PASSWORD`` / ``OPSLIB_DEMO_PFX_PASSWORD`` when set;
otherwise random ones are put into this process's environment (the kernels inherit it). They are
never printed, and the parameters file holds only ``env:`` references to them.
"""

from __future__ import annotations

import os
import secrets as random
import sys
import tempfile
import time
from pathlib import Path

from .. import params, runbook
from ..credentials import redact, register
from ..errors import OpsError

SCENARIO = "iis6-ja"
WINDOWS_VERSION = "5.2.3790"  # Windows Server 2003 SP2, the scenario's emulated Windows
WINRM_ENV = "OPSLIB_DEMO_WINRM_PASSWORD"
PFX_ENV = "OPSLIB_DEMO_PFX_PASSWORD"


def _password(variable: str) -> str:
    """The password in ``variable``, or a new random one put there (never printed)."""
    value = os.environ.get(variable, "")
    if not value:
        # Any 8+ printable characters would do (credentials.PFX_PASSWORD_RULE); a letter first reads well.
        value = "D" + random.token_urlsafe(18)
        os.environ[variable] = value
    register(value)
    return value


def _activate_hint() -> str:
    """How to get ``opslib`` on the PATH in this shell: the virtual environment this runs from."""
    if sys.prefix == sys.base_prefix:
        return "it is already installed in this Python (pip install -e .)"
    venv = Path(sys.prefix)
    try:
        shown = f"{venv.relative_to(Path.cwd())}"
    except ValueError:
        shown = str(venv)
    return f". {shown}/bin/activate  (or type {shown}/bin/opslib instead of opslib)"


def run_demo(
    *,
    evidence_root: str | os.PathLike[str],
    backup_dir: str | os.PathLike[str] | None = None,
    command_log: list[tuple[str, int, str]] | None = None,
    scenario: str = SCENARIO,
) -> int:
    """Run the demo; returns the runbook's exit code (0 when the renewal succeeded). ``command_log``:
    filled with the host's commands (program, its N-th command, named fault point); ``scenario``:
    another rehearsal host than the demo's (``opslib rehearse faults --scenario``), WinRM as it ships."""
    from . import shipped_options, start

    winrm_password = _password(WINRM_ENV)
    _password(PFX_ENV)
    work = Path(tempfile.mkdtemp(prefix="opslib-demo-"))
    # The backup must outlive the demo (a PFX in a deleted temp folder would be a lost key pair):
    # by default it goes to ./backups, beside ./evidence, both ignored by git.
    # Absolute: the parameters file lives in a temporary folder, and relative paths in it would be
    # read relative to that folder.
    backups = Path(backup_dir or "backups").resolve()
    root = Path(evidence_root).resolve()
    before = {p.name for p in root.iterdir()} if root.is_dir() else set()
    t0 = time.monotonic()
    with start(
        scenario=scenario,
        password=winrm_password,
        workdir=work / "mail",
        state_file=work / "state.json",
        **(shipped_options(WINDOWS_VERSION) if scenario == SCENARIO else {}),  # type: ignore[arg-type]
    ) as reh:
        data = reh.params(password_env=WINRM_ENV, pfx_password_env=PFX_ENV, backup_dir=str(backups))
        params_file = work / "demo.yaml"
        params_file.write_text(
            params.dump(
                data,
                header=(
                    f"Demo parameters for a rehearsal host ({scenario}) at {reh.url}.\n"
                    "Passwords are references to environment variables set by `opslib rehearse demo`.\n"
                    "リハーサル用の模擬サーバに対するデモ用パラメータです。"
                ),
            ),
            encoding="utf-8",
        )
        print(
            f"opslib demo: rehearsal host {reh.host.hostname} ({scenario}"
            + (", IIS 6, code page 932" if scenario == SCENARIO else "")
            + f") at {reh.url}"
        )
        winrm = data["winrm"]
        print(
            f"  WinRM:       {winrm['transport']} over {reh.url.split(':', 1)[0].upper()}, winrm.tls: {winrm['tls']}"
        )
        print(f"  the CA's mail (サーバID発行通知メール): {data['certificate_file']}")
        print(f"  parameters:  {params_file}")
        print(f"  evidence:    {root.resolve()}")
        print(f"  backups:     {backups.resolve()}")
        sys.stdout.flush()
        try:
            code = runbook.run(params_file, evidence_root=root, yes=True)
        except OpsError as exc:
            print(f"opslib demo: {redact(str(exc))}", file=sys.stderr)
            code = exc.exit_code
        if command_log is not None:
            command_log.extend(reh.command_log)
        production = reh.host.sites.get(1)
        served = production.ssl_cert_hash if production else "?"
    runs = sorted(p for p in root.iterdir() if p.name not in before and (p / "run.json").is_file())
    if not runs:  # refused before a run folder existed; the runbook printed no summary
        print("opslib demo: no run folder was created")
    print(f"  the rehearsal host's production site now serves {served}")
    if runs:
        print(f"  review it: opslib evidence show {runs[-1]}")
    print(f"  opslib on your PATH: {_activate_hint()}")
    print(f"opslib demo: {'done' if code == 0 else 'FAILED'} in {time.monotonic() - t0:.1f} s")
    return code


def fault_points(*, scenario: str = SCENARIO) -> list[tuple[str, str]]:
    """The named fault points of a clean renewal on ``scenario`` (default: the demo's) and their
    positions: (``name#k``, ``PROGRAM#N``), every command of each name in order (``opslib rehearse
    faults [--scenario NAME]``)."""
    import contextlib
    import io

    log: list[tuple[str, int, str]] = []
    with (
        tempfile.TemporaryDirectory(prefix="opslib-faults-") as tmp,
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
    ):
        code = run_demo(
            evidence_root=Path(tmp) / "evidence",
            backup_dir=Path(tmp) / "backups",
            command_log=log,
            scenario=scenario,
        )
    if code != 0:
        raise OpsError(f"the clean renewal failed (exit {code})", where="opslib rehearse faults")
    counts: dict[str, int] = {}
    out = []
    for program, nth, name in log:
        if name:
            counts[name] = counts.get(name, 0) + 1
            out.append((f"{name}#{counts[name]}", f"{program}#{nth}"))
    return out
