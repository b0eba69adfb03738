"""A :class:`~opslib.winrm.shell.Connection` from the parameters file's ``winrm`` mapping (what notebooks call
as ``opslib.connect(winrm, host=host, run_dir=run_dir)``): the password is a secret reference, resolved
here; with ``run_dir`` the connection appends to the run's transcript and shares ``connection.json``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import credentials as _secrets
from ..errors import ParameterError
from .shell import STATE_FILE, Connection, connect
from .transcript import Transcript


def connect_params(
    winrm: dict[str, Any], *, host: str, run_dir: str = "", env: Mapping[str, str] | None = None
) -> Connection:
    """Open a connection from the parameters file's ``winrm`` mapping (the password is a reference;
    ``env``: this host's own environment for an ``env:NAME`` reference, see ``credentials.resolve``)."""
    if not isinstance(winrm, dict) or not winrm.get("url"):
        raise ParameterError(
            "winrm.url", "missing", hint="give the WS-Management URL, e.g. https://web01:443/wsman"
        )
    reference = str(winrm.get("password") or "")
    password = _secrets.resolve(reference, purpose="WinRM password", env=env)
    transcript = Transcript(Path(run_dir) / "transcript.jsonl") if run_dir else None
    state_file = Path(run_dir) / STATE_FILE if run_dir else None
    return connect(
        str(winrm["url"]),
        transport=str(winrm.get("transport") or "ntlm"),
        username=str(winrm.get("username") or ""),
        password=password,
        host_label=host,
        codepage=winrm.get("codepage") or "auto",
        ca_trust_path=str(winrm.get("ca_trust_path") or "") or None,
        server_cert_validation=str(winrm.get("server_cert_validation") or "validate"),
        allow_unencrypted_basic=bool(winrm.get("allow_unencrypted_basic", False)),
        tls=str(winrm.get("tls") or "default"),
        message_encryption=str(winrm.get("message_encryption") or "auto"),
        allow_cleartext_secrets=bool(winrm.get("allow_cleartext_secrets", False)),
        operation_timeout_s=int(winrm.get("operation_timeout_s", 20)),
        read_timeout_s=int(winrm.get("read_timeout_s", 30)),
        transcript=transcript,
        command_timeout_s=float(winrm.get("command_timeout_s") or 0) or None,
        state_file=state_file,
    )
