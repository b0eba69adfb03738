"""Where IIS 6 SSLCertHash values come from: ``opslib/scripts/sslinherit.js`` (read-only) on one connection.

SSLCertHash is INHERIT from ``/LM/W3SVC`` (ms525719; docs/windows-behaviour.md W-IIS6-SSLCERTHASH-INHERIT).
The script reports the service-level value and, per site, the effective value (ADSI ``Get``),
``GetPropertyAttribObj("SSLCertHash").IsInherit`` and whether the site holds its own value
(``W3SVC.GetDataPaths("SSLCertHash", 0)``: only the nodes where the property is set — IMSAdminBase::GetDataPaths,
https://learn.microsoft.com/en-us/previous-versions/iis/6.0-sdk/ms525329(v=vs.90)). The rollback of a site that
inherited its certificate reads it before clearing the site's own value; the lab probe
``iis6.sslcerthash-inherit`` runs the same script.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

from ..errors import RemoteCommandFailed
from .iis6_helper import parse_json

if TYPE_CHECKING:
    from ..winrm import Connection

SCRIPT = "sslinherit.js"


def inherit_script() -> bytes:
    """The packaged ``sslinherit.js``, byte for byte as it is uploaded."""
    return (resources.files("opslib") / "scripts" / SCRIPT).read_bytes()


@dataclass(frozen=True)
class Inheritance:
    service_thumbprint: str  # SSLCertHash set on /LM/W3SVC ("" when none)
    own_value: dict[int, bool]  # site id -> the site holds its own SSLCertHash (GetDataPaths)
    is_inherit: dict[int, bool]  # site id -> GetPropertyAttribObj("SSLCertHash").IsInherit


def read_inheritance(conn: Connection, *, host: str, what: str) -> Inheritance:
    """Upload (once per connection or run) and run ``sslinherit.js``; its JSON as :class:`Inheritance`."""
    path = str(conn.temp_dir).rstrip("\\") + "\\" + SCRIPT
    conn.upload_once(inherit_script(), path, what=f"upload {SCRIPT} ({what})")
    with conn.reading():  # the script reads the metabase only
        result = conn.run(["cscript", "//nologo", "//E:jscript", path], check=False, what=what)
    payload = parse_json(result.stdout)
    service = payload.get("service") if payload else None
    sites = payload.get("sites") if payload else None
    if result.exit_code != 0 or not isinstance(service, dict) or not isinstance(sites, list):
        raise RemoteCommandFailed(
            host=host,
            command=result.command_line,
            remote_exit_code=result.exit_code,
            stdout=result.stdout_text,
            stderr=result.stderr_text,
            what=f"{what}: {SCRIPT} gave no answer the kit can read",
            hint="nothing was changed; run the same cscript command on the server and look at its output",
        )
    return Inheritance(
        service_thumbprint=str(service.get("hash") or "").upper(),
        own_value={int(s["id"]): bool(s.get("own")) for s in sites if isinstance(s, dict) and "id" in s},
        is_inherit={
            int(s["id"]): s.get("is_inherit") is True for s in sites if isinstance(s, dict) and "id" in s
        },
    )
