"""The IIS 7–10 sites of the rehearsal scenarios (``iis75-ja``, ``iis85``, ``iis10``, ``iis10-sni``,
``iis10-dualstack``, ``iis10-dualstack-foreign``).

Same seed situation as the IIS 6 scenarios (:mod:`opslib.rehearsal.scenarios`): the production site
serves the current certificate, the stopped work site is where the renewal CSR was made (its key
in the REQUEST store). On IIS 7+ the certificate sits in the HTTP.sys binding (registry), not in the
site (:mod:`opslib.rehearsal.iis7`). ``iis10-sni`` adds a second SNI site with its own certificate
and a non-SNI site that holds the ``0.0.0.0:443`` binding (the fallback for clients without SNI).
"""

from __future__ import annotations

from typing import Any

from cryptography import x509

from .. import certs
from . import iis7
from . import pki as pki_module
from .host import AppPool, Host, WebBinding
from .pki import Pki
from .programs import stores

PRODUCTION_SITE = "www1.example.jp"
WORK_SITE = "renew.www1.example.jp"
SECOND_SNI_SITE = "www2.example.jp"
NON_SNI_SITE = "legacy.example.jp"


def _other_leaf(pki: Pki, hostname: str) -> tuple[x509.Certificate, Any]:
    """A certificate for another host name from the same rehearsal CA (valid for a year)."""
    key = pki_module.rsa_key(f"iis7-{hostname}")
    now = pki.now_utc
    cert = pki_module.make_leaf(  # the PKI's own leaf builder: same profile as the seed's certificates
        common_name=hostname,
        sans=[hostname],
        key=key,
        issuer=pki.intermediate.subject,
        issuer_key=pki.intermediate_key,
        not_before_utc=now - pki_module.DAY,
        not_after_utc=now + 364 * pki_module.DAY,
        serial=pki_module.serial_number(f"iis7-{hostname}", now),
    )
    return cert, key


# An AppId that is not IIS's: a self-hosted service bound on [::]:443 (scenario iis10-dualstack-foreign).
FOREIGN_APP_ID = "{a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d}"


def populate(host: Host, pki: Pki, *, sni: bool, dualstack: str = "") -> dict[str, Any]:
    """Sites, application pools and HTTP.sys bindings; returns facts for ``host.extra``."""
    current = certs.thumbprint(pki.current_leaf)
    iis7.ensure_http_keys(host)
    https_prod = WebBinding("https", f"*:443:{PRODUCTION_SITE}", 1) if sni else WebBinding("https", "*:443:")
    iis7.add_site(
        host,
        1,
        PRODUCTION_SITE,
        [WebBinding("http", f"*:80:{PRODUCTION_SITE}"), https_prod],
        state=iis7.STARTED,
        app_pool=PRODUCTION_SITE,
    )
    # The work site: CSR made here with IIS Manager; no https binding yet, stopped.
    iis7.add_site(host, 2, WORK_SITE, [WebBinding("http", f"*:80:{WORK_SITE}")], app_pool=WORK_SITE)
    host.app_pools[WORK_SITE].state = iis7.STOPPED
    host.app_pools.setdefault("DefaultAppPool", AppPool("DefaultAppPool"))
    if host.iis_major == 7:
        # IIS 7.5 on 2008 R2 creates pools for .NET 2.0 by default [I].
        for pool in host.app_pools.values():
            pool.runtime_version = "v2.0"
    facts: dict[str, Any] = {"iis_sites": [PRODUCTION_SITE, WORK_SITE]}
    if not sni:
        iis7.set_ssl_binding(host, "ipport", "0.0.0.0:443", thumbprint=current)
        if dualstack:
            # IPv6 clients: [::]:443 beside 0.0.0.0:443, as real `netsh http show sslcert` lists them
            # (win-acme issue 198; W-IIS7-HTTPSYS-DUALSTACK).
            app_id = iis7.IIS_APP_ID if dualstack == "iis" else FOREIGN_APP_ID
            iis7.set_ssl_binding(host, "ipport", "[::]:443", thumbprint=current, app_id=app_id)
        return facts
    iis7.set_ssl_binding(host, "hostnameport", f"{PRODUCTION_SITE}:443", thumbprint=current)
    thumbs: dict[str, str] = {}
    for site_id, name, binding in (
        (3, SECOND_SNI_SITE, WebBinding("https", f"*:443:{SECOND_SNI_SITE}", 1)),
        (4, NON_SNI_SITE, WebBinding("https", "*:443:")),
    ):
        cert, key = _other_leaf(pki, name)
        thumbs[name] = stores.add_certificate(host, "MY", cert, key=key, friendly_name=name)
        iis7.add_site(
            host,
            site_id,
            name,
            [WebBinding("http", f"*:80:{name}"), binding],
            state=iis7.STARTED,
            app_pool=name,
        )
        if binding.ssl_flags & 1:
            iis7.set_ssl_binding(host, "hostnameport", f"{name}:443", thumbprint=thumbs[name])
        else:
            iis7.set_ssl_binding(host, "ipport", "0.0.0.0:443", thumbprint=thumbs[name])
    facts["iis_sites"] = [PRODUCTION_SITE, WORK_SITE, SECOND_SNI_SITE, NON_SNI_SITE]
    facts["other_thumbprints"] = thumbs
    return facts
