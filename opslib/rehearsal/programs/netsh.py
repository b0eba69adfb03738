"""``netsh http … sslcert`` of the rehearsal host: the HTTP.sys SSL bindings in the registry.

Syntax (https://learn.microsoft.com/en-us/windows-server/networking/technologies/netsh/netsh-http):
``netsh http add sslcert ipport=IP:PORT | hostnameport=NAME:PORT certhash=HEX40 appid={GUID}
[certstorename=MY]`` (certstorename "Defaults to MY"), ``update sslcert`` (same parameters),
``delete sslcert ipport=… | hostnameport=…``, ``show sslcert [ipport=… | hostnameport=…]``.
The bindings are the registry keys described in :mod:`opslib.rehearsal.iis7`, so ``reg query`` /
``reg export`` of ``HKLM\\SYSTEM\\CurrentControlSet\\Services\\HTTP\\Parameters`` see every change.

Messages and exit codes:
* success: ``SSL Certificate successfully added`` / ``updated`` / ``deleted``, exit 0 [I];
* add over an existing binding: ``SSL Certificate add failed, Error: 183`` + ``Cannot create a file
  when that file already exists.`` (captured in Citrix CTX331603,
  https://support.citrix.com/external/article/CTX331603/error-while-renewing-certificate-on-clou.html ,
  and the Netwrix KB "Error: Cannot Create a File When That File Already Exists (SSL Certificate)");
* update/delete of a binding that does not exist: ``… failed, Error: 2`` + ``The system cannot find
  the file specified.`` [I];
* a certificate that is not in the store or has no private key: ``… failed, Error: 1312`` + ``A
  specified logon session does not exist. It may already have been terminated.`` [I: the error
  widely reported for a certificate without its key; for a missing certificate U];
* a malformed parameter (hash not 40 hex digits, appid not a GUID, unknown keyword):
  ``The parameter is incorrect.``
  (https://stackoverflow.com/questions/779228/the-parameter-is-incorrect-error-using-netsh-http-add-sslcert);
* every failure exits 1 [I: netsh returns 1 when its command fails];
* ``hostnameport`` (SNI) exists only from Windows Server 2012 / IIS 8 on; ``update sslcert`` is
  not in the Windows Server 2008 R2 netsh [I]: both answer as an unknown parameter / command there;
* Windows Server 2003 has no ``http`` context in netsh (httpcfg.exe instead) [I].
The Japanese wording is [U] (no captured output found); the kit never reads these texts.
"""

from __future__ import annotations

import re

from .. import iis7
from ..host import Host, Invocation
from . import stores

_GUID = re.compile(r"^\{[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}$")
_IPV4 = re.compile(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3}):(\d{1,5})$")
_IPV6 = re.compile(r"^\[[0-9a-fA-F:.]+\]:(\d{1,5})$")
_HOSTPORT = re.compile(r"^([A-Za-z0-9*](?:[A-Za-z0-9.\-*]*[A-Za-z0-9])?):(\d{1,5})$")

_WIN32 = {
    2: ("The system cannot find the file specified.", "指定されたファイルが見つかりません。"),
    5: ("Access is denied.", "アクセスが拒否されました。"),
    183: (
        "Cannot create a file when that file already exists.",
        "既に存在するファイルを作成することはできません。",
    ),
    1312: (
        "A specified logon session does not exist. It may already have been terminated.",
        "指定されたログオン セッションは存在しません。既に終了している可能性があります。",
    ),
}
_VERB_EN = {"add": "add", "update": "update", "delete": "deletion"}
_DONE_EN = {"add": "added", "update": "updated", "delete": "deleted"}
_DONE_JA = {"add": "追加", "update": "更新", "delete": "削除"}
PARAMETER_INCORRECT = ("The parameter is incorrect.", "パラメーターが間違っています。")


class _Incorrect(Exception):
    pass


def _valid_port(port: str) -> bool:
    return 0 < int(port) < 65536


def _endpoint(host: Host, params: dict[str, str]) -> tuple[str, str]:
    """("ipport"|"hostnameport", subkey name) from the parameters, or _Incorrect."""
    if "ipport" in params and "hostnameport" not in params:
        value = params["ipport"]
        m4, m6 = _IPV4.match(value), _IPV6.match(value)
        if m4 and all(int(x) < 256 for x in m4.groups()[:4]) and _valid_port(m4.group(5)):
            return "ipport", value
        if m6 and _valid_port(m6.group(1)):
            return "ipport", value.lower()
        raise _Incorrect
    if "hostnameport" in params and "ipport" not in params and iis7.supports_sni(host):
        m = _HOSTPORT.match(params["hostnameport"])
        if m and _valid_port(m.group(2)):
            return "hostnameport", params["hostnameport"]
    raise _Incorrect


def _params(args: list[str], allowed: set[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for arg in args:
        key, eq, value = arg.partition("=")
        key = key.strip().lower()
        if not eq or key not in allowed or key in out:
            raise _Incorrect
        out[key] = value.strip()
    return out


def _fail(inv: Invocation, verb: str, code: int) -> int:
    en, ja = _WIN32[code]
    inv.say(
        f"SSL Certificate {_VERB_EN[verb]} failed, Error: {code}",
        f"SSL 証明書の{_DONE_JA[verb]}に失敗しました。エラー: {code}",
    )
    inv.say(en, ja)
    inv.write("\r\n")
    return 1


def _ok(inv: Invocation, verb: str) -> int:
    inv.write("\r\n")
    inv.say(f"SSL Certificate successfully {_DONE_EN[verb]}", f"SSL 証明書を正常に{_DONE_JA[verb]}しました")
    inv.write("\r\n")
    return 0


def _change(inv: Invocation, verb: str, args: list[str]) -> int:
    host = inv.host
    keys = {"ipport", "hostnameport"}
    if verb != "delete":
        keys |= {"certhash", "appid", "certstorename"}
    params = _params(args, keys | _IGNORED_OPTIONS if verb != "delete" else keys)
    kind, endpoint = _endpoint(host, params)
    thumb = params.get("certhash", "").upper()
    app_id = params.get("appid", "")
    store = params.get("certstorename", "MY") or "MY"
    if verb != "delete" and (not re.fullmatch(r"[0-9A-F]{40}", thumb) or not _GUID.match(app_id)):
        raise _Incorrect
    if not host.is_admin:
        return _fail(inv, verb, 5)
    existing = iis7.ssl_binding(host, kind, endpoint)
    if verb == "add" and existing is not None:
        return _fail(inv, verb, 183)
    if verb != "add" and existing is None:
        return _fail(inv, verb, 2)
    if verb == "delete":
        iis7.delete_ssl_binding(host, kind, endpoint)
        return _ok(inv, verb)
    entry = stores.find_certificate(host, store, thumb)
    if entry is None or stores.key_for(host, entry) is None:
        return _fail(inv, verb, 1312)
    iis7.set_ssl_binding(host, kind, endpoint, thumbprint=thumb, store=store, app_id=app_id.lower())
    return _ok(inv, verb)


# Optional add/update parameters netsh documents; accepted and not modelled (the registry keeps
# their defaults) [U: what a real binding stores for each].
_IGNORED_OPTIONS = {
    "clientcertnegotiation",
    "verifyclientcertrevocation",
    "verifyrevocationwithcachedclientcertonly",
    "usagecheck",
    "revocationfreshnesstime",
    "urlretrievaltimeout",
    "sslctlidentifier",
    "sslctlstorename",
    "dsmapperusage",
}


def _show(inv: Invocation, args: list[str]) -> int:
    host = inv.host
    params = _params(args, {"ipport", "hostnameport"})
    bindings = iis7.ssl_bindings(host)
    if params:
        kind, endpoint = _endpoint(host, params)
        bindings = [b for b in bindings if b.kind == kind and b.endpoint.lower() == endpoint.lower()]
        if not bindings:
            # [U] the exact answer for a filter that matches nothing; the kit reads the registry.
            inv.say(*_WIN32[2])
            return 1
    inv.write("\r\n")
    inv.say("SSL Certificate bindings:", "SSL 証明書のバインド:")
    inv.write("-------------------------\r\n\r\n")
    for b in bindings:
        label = "IP:port" if b.kind == "ipport" else "Hostname:port"
        # Layout after the output quoted in the SNI post (kaushalp.github.io, module doc of iis7).
        inv.write(f"    {label:<29}: {b.endpoint}\r\n")
        inv.write(f"    {'Certificate Hash':<29}: {b.thumbprint.lower()}\r\n")
        inv.write(f"    {'Application ID':<29}: {b.app_id}\r\n")
        inv.write(f"    {'Certificate Store Name':<29}: {b.store}\r\n")
        inv.write("\r\n")
    return 0


def netsh(inv: Invocation) -> int:
    host = inv.host
    args = inv.argv[1:]
    words = [a.lower() for a in args[:3]]
    if host.windows_version.startswith("5.") and words[:1] == ["http"]:
        inv.say(
            f"The following command was not found: {' '.join(args)}.",
            f"次のコマンドが見つかりませんでした: {' '.join(args)}。",
        )
        return 1
    # ``update sslcert`` is missing on 2008 R2 [I] and, as reported, on Server 2012 R2 (scenario iis85:
    # host.extra["netsh_missing"], W-IIS7-NETSH-UPDATE); the answer is the reported one.
    missing = set(host.extra.get("netsh_missing", ())) | (set() if iis7.supports_sni(host) else {"update"})
    help_asked = [a.lower() for a in args[3:]] in (["/?"], ["?"], ["-?"])
    if help_asked and len(words) > 1 and words[1] in set(host.extra.get("netsh_probe_lies", ())):
        missing = set()  # opposite-behaviour switch: the help says "present" for a verb that is missing
    if len(words) < 3 or words[0] != "http" or words[2] != "sslcert" or words[1] in missing:
        inv.say(
            f"The following command was not found: {' '.join(args)}.",
            f"次のコマンドが見つかりませんでした: {' '.join(args)}。",
        )
        return 1
    if help_asked and words[1] in ("add", "update", "delete", "show"):
        # The verb's usage text [U: wording abridged; exit 0 assumed, W-IIS7-NETSH-VERBS].
        inv.write("\r\n")
        inv.write(f"Usage: {words[1]} sslcert [ipport=]IP Address:port | [hostnameport=]<name:port> ...\r\n")
        inv.write("\r\n")
        return 0
    try:
        if words[1] == "show":
            return _show(inv, args[3:])
        if words[1] in ("add", "update", "delete"):
            return _change(inv, words[1], args[3:])
    except _Incorrect:
        inv.write("\r\n")
        inv.say(*PARAMETER_INCORRECT)
        inv.write("\r\n")
        return 1
    inv.say(
        f"The following command was not found: {' '.join(args)}.",
        f"次のコマンドが見つかりませんでした: {' '.join(args)}。",
    )
    return 1


def register(host: Host) -> None:
    host.programs["netsh"] = netsh
