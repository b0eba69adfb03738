"""``%windir%\\system32\\inetsrv\\appcmd.exe`` of the rehearsal host (IIS 7–10).

Supported: ``list site [NAME] [/xml]``, ``list apppool [NAME] [/xml]``, ``start|stop site NAME``
(or ``/site.name:NAME``), ``start|stop apppool NAME`` (or ``/apppool.name:NAME``), and
``set site NAME /+bindings.[protocol='https',bindingInformation='*:443:host',sslFlags='1']`` /
``/-bindings.[protocol='https',bindingInformation='*:443:host']``. Sources:

* syntax, ``/xml`` ("Generate output in XML format") and the text form ``SITE "Default Web Site"
  (id:1,bindings:http/*:80:,state:Started)``:
  https://learn.microsoft.com/en-us/iis/get-started/getting-started-with-iis/getting-started-with-appcmdexe ;
* the XML shape ``<appcmd><SITE SITE.NAME="…" SITE.ID="…" bindings="http/*:80:,https/*:443:" state="Started" />``
  and ``<APPPOOL APPPOOL.NAME="…" PipelineMode="Integrated" RuntimeVersion="v4.0" state="Started" />``:
  the same page plus many public parsers of captured output [I: attribute order, indentation];
* ``/+bindings.[protocol='https',bindingInformation='…']``: the ``set site`` examples in
  https://learn.microsoft.com/en-us/iis/configuration/system.applicationhost/sites/site/bindings/binding ;
  ``sslFlags`` exists from IIS 8 on (same page); on IIS 7.x it is an unknown attribute [I];
* exit codes are Win32 error codes: "The errorlevels returned by AppCmd.exe are listed in the
  winerror.h file" and 183 when the entry already exists
  (https://msdn.microsoft.com/library/azure/hh974418.aspx); an unknown site 1168 ERROR_NOT_FOUND [I];
  start/stop failures as :mod:`opslib.rehearsal.iis7` describes;
* messages ``ERROR ( message:Cannot find SITE object with identifier "X". )``, ``"X" successfully
  started.``, ``SITE object "X" changed`` (quoted by many public scripts that match on them) [I];
  ``ERROR ( hresult:800700b7, message:Command execution failed. … )`` for a failing start [I].
  Japanese wording [U]; the kit decides by exit code and XML only.
* ``appcmd`` reads applicationHost.config, which only administrators may read: otherwise
  ``ERROR ( message:Cannot read configuration file due to insufficient permissions )``, exit 5 [I].
* output encoding: written in the console code page like other tools [U: whether appcmd writes
  the XML as UTF-8 as its declaration says]. Site and pool names of the scenarios are ASCII.
"""

from __future__ import annotations

import re

from .. import iis7
from ..host import Host, Invocation, WebBinding, WebSite

ERROR_ACCESS_DENIED = 5
ERROR_INVALID_PARAMETER = 87
_HRESULT_TEXT = {
    iis7.ERROR_ALREADY_EXISTS: (
        "Cannot create a file when that file already exists.",
        "既に存在するファイルを作成することはできません。",
    ),
    iis7.ERROR_SERVICE_ALREADY_RUNNING: (
        "An instance of the service is already running.",
        "サービスのインスタンスは既に実行されています。",
    ),
    iis7.ERROR_SERVICE_NOT_ACTIVE: ("The service has not been started.", "サービスは開始されていません。"),
    iis7.ERROR_SHARING_VIOLATION: (
        "The process cannot access the file because it is being used by another process.",
        "プロセスはファイルにアクセスできません。別のプロセスが使用中です。",
    ),
}


def _xml_attr(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _error(inv: Invocation, en: str, ja: str, code: int) -> int:
    inv.say(f"ERROR ( message:{en} )", f"エラー ( message:{ja} )")
    return code


def _not_found(inv: Invocation, kind: str, name: str) -> int:
    return _error(
        inv,
        f'Cannot find {kind} object with identifier "{name}".',
        f'識別子 "{name}" の {kind} オブジェクトが見つかりません。',
        iis7.ERROR_NOT_FOUND,
    )


def _bindings_text(site: WebSite) -> str:
    return ",".join(f"{b.protocol}/{b.binding_information}" for b in site.bindings)


def _identifier(args: list[str], kind: str) -> tuple[str | None, list[str]]:
    """The object named positionally or by ``/site.name:`` / ``/apppool.name:``; the other switches."""
    name: str | None = None
    rest: list[str] = []
    prefix = f"/{kind.lower()}.name:"
    for arg in args:
        if arg.lower().startswith(prefix):
            name = arg[len(prefix) :]
        elif not arg.startswith(("/", "-")) and name is None:
            name = arg
        else:
            rest.append(arg)
    return name, rest


def _list(inv: Invocation, kind: str, args: list[str]) -> int:
    host = inv.host
    name, switches = _identifier(args, kind)
    xml = any(s.lower() == "/xml" for s in switches)
    lines: list[str] = []
    if kind == "SITE":
        sites = [s for _, s in sorted(host.web_sites.items())]
        if name is not None:
            sites = [s for s in sites if s.name.lower() == name.lower()]
            if not sites:
                return _not_found(inv, kind, name)
        for s in sites:
            if xml:
                lines.append(
                    f'    <SITE SITE.NAME="{_xml_attr(s.name)}" SITE.ID="{s.id}" '
                    f'bindings="{_xml_attr(_bindings_text(s))}" state="{s.state}" />'
                )
            else:
                lines.append(f'SITE "{s.name}" (id:{s.id},bindings:{_bindings_text(s)},state:{s.state})')
    else:
        pools = [p for _, p in sorted(host.app_pools.items())]
        if name is not None:
            pools = [p for p in pools if p.name.lower() == name.lower()]
            if not pools:
                return _not_found(inv, kind, name)
        for p in pools:
            if xml:
                lines.append(
                    f'    <APPPOOL APPPOOL.NAME="{_xml_attr(p.name)}" PipelineMode="{p.pipeline_mode}" '
                    f'RuntimeVersion="{p.runtime_version}" state="{p.state}" />'
                )
            else:
                lines.append(
                    f'APPPOOL "{p.name}" (MgdVersion:{p.runtime_version},MgdMode:{p.pipeline_mode},state:{p.state})'
                )
    if xml:
        lines = ['<?xml version="1.0" encoding="UTF-8"?>', "<appcmd>", *lines, "</appcmd>"]
    inv.write("".join(line + "\r\n" for line in lines))
    return 0


def _control(inv: Invocation, verb: str, kind: str, args: list[str]) -> int:
    host = inv.host
    name, _ = _identifier(args, kind)
    if name is None:
        return _error(
            inv,
            f"Must specify the {kind} object to {verb}.",
            f"{verb} する {kind} オブジェクトを指定する必要があります。",
            ERROR_INVALID_PARAMETER,
        )
    if kind == "SITE":
        site = iis7.find_site(host, name)
        if site is None:
            return _not_found(inv, kind, name)
        code = iis7.start_site(host, site) if verb == "start" else iis7.stop_site(host, site)
        shown = site.name
    else:
        pool = iis7.find_pool(host, name)
        if pool is None:
            return _not_found(inv, kind, name)
        wanted = iis7.STARTED if verb == "start" else iis7.STOPPED
        if pool.state == wanted:
            code = iis7.ERROR_SERVICE_ALREADY_RUNNING if verb == "start" else iis7.ERROR_SERVICE_NOT_ACTIVE
        else:
            with host.lock:
                pool.state = wanted
            code = 0
        shown = pool.name
    if code:
        en, ja = _HRESULT_TEXT[code]
        hresult = f"{0x80070000 | code:08x}"
        inv.say(
            f"ERROR ( hresult:{hresult}, message:Command execution failed.\r\n{en}\r\n )",
            f"エラー ( hresult:{hresult}, message:コマンドの実行に失敗しました。\r\n{ja}\r\n )",
        )
        return code
    done = "started" if verb == "start" else "stopped"
    inv.say(
        f'"{shown}" successfully {done}.',
        f'"{shown}" が正常に{"開始" if verb == "start" else "停止"}されました。',
    )
    return 0


_BINDING_EDIT = re.compile(r"^[/-]([+-])bindings\.\[(.*)\]$", re.IGNORECASE)
_ATTR = re.compile(r"(\w+)\s*=\s*'([^']*)'")


def _set_site(inv: Invocation, args: list[str]) -> int:
    host = inv.host
    name, switches = _identifier(args, "SITE")
    if name is None:
        return _error(
            inv,
            "Must specify the SITE object to set.",
            "set する SITE オブジェクトを指定する必要があります。",
            87,
        )
    site = iis7.find_site(host, name)
    if site is None:
        return _not_found(inv, "SITE", name)
    edits: list[tuple[str, dict[str, str]]] = []
    for switch in switches:
        m = _BINDING_EDIT.match(switch)
        if not m:
            return _error(
                inv,
                f'Unknown attribute "{switch.lstrip("/-")}".  Replace with -? for help.',
                f'不明な属性 "{switch.lstrip("/-")}" です。ヘルプを表示するには -? を指定してください。',
                ERROR_INVALID_PARAMETER,
            )
        attrs = {k.lower(): v for k, v in _ATTR.findall(m.group(2))}
        unknown = set(attrs) - {"protocol", "bindinginformation", "sslflags"}
        if "sslflags" in attrs and host.iis_major < 8:
            unknown.add("sslFlags")
        if unknown or "protocol" not in attrs or "bindinginformation" not in attrs:
            bad = sorted(unknown)[0] if unknown else "bindingInformation"
            return _error(
                inv,
                f'Unknown attribute "{bad}".  Replace with -? for help.',
                f'不明な属性 "{bad}" です。ヘルプを表示するには -? を指定してください。',
                ERROR_INVALID_PARAMETER,
            )
        edits.append((m.group(1), attrs))
    with host.lock:
        bindings = list(site.bindings)
        for op, attrs in edits:
            key = (attrs["protocol"].lower(), attrs["bindinginformation"].lower())
            index = next(
                (
                    i
                    for i, b in enumerate(bindings)
                    if (b.protocol.lower(), b.binding_information.lower()) == key
                ),
                None,
            )
            if op == "+":
                if index is not None:
                    return _error(
                        inv,
                        "Cannot add duplicate collection entry of type 'binding' with combined key attributes "
                        f"'protocol, bindingInformation' respectively set to '{attrs['protocol']}, "
                        f"{attrs['bindinginformation']}'\r\n.",
                        "種類 'binding' の重複するコレクション エントリを追加できません。",
                        iis7.ERROR_ALREADY_EXISTS,
                    )
                flags = attrs.get("sslflags", "0")
                bindings.append(
                    WebBinding(
                        attrs["protocol"], attrs["bindinginformation"], int(flags) if flags.isdigit() else 0
                    )
                )
            else:
                if index is None:
                    return _error(
                        inv,
                        "Cannot find requested collection element.",
                        "要求されたコレクション要素が見つかりません。",
                        iis7.ERROR_NOT_FOUND,
                    )
                del bindings[index]
        site.bindings = bindings
    inv.say(f'SITE object "{site.name}" changed', f'SITE オブジェクト "{site.name}" が変更されました')
    return 0


def appcmd(inv: Invocation) -> int:
    host = inv.host
    args = inv.argv[1:]
    if len(args) < 2 or args[0] in ("/?", "-?"):
        inv.write(
            "General purpose IIS command line administration tool.\r\n\r\n"
            "APPCMD (command) (object-type) <identifier> </parameter1:value1 ...>\r\n"
        )
        return 0 if args[:1] in (["/?"], ["-?"]) else ERROR_INVALID_PARAMETER
    if not host.is_admin:
        return _error(
            inv,
            "Cannot read configuration file due to insufficient permissions",
            "アクセス許可が不十分なため、構成ファイルを読み取れません",
            ERROR_ACCESS_DENIED,
        )
    verb, kind, rest = args[0].lower(), args[1].upper(), args[2:]
    if kind in ("SITES", "APPPOOLS"):
        kind = kind[
            :-1
        ]  # appcmd accepts the plural forms [I: "appcmd list sites" in the getting-started page]
    if kind not in ("SITE", "APPPOOL"):
        return _error(
            inv, f'Unknown object type "{args[1]}".', f'不明なオブジェクトの種類 "{args[1]}" です。', 87
        )
    if verb == "list":
        return _list(inv, kind, rest)
    if verb in ("start", "stop"):
        return _control(inv, verb, kind, rest)
    if verb == "set" and kind == "SITE":
        return _set_site(inv, rest)
    return _error(
        inv,
        f'The command "{args[0]}" is not supported on object "{args[1]}".',
        f'コマンド "{args[0]}" はオブジェクト "{args[1]}" ではサポートされていません。',
        ERROR_INVALID_PARAMETER,
    )


def register(host: Host) -> None:
    """appcmd.exe exists from IIS 7 on; a 2003 / IIS 6 host does not have it."""
    if host.iis_major >= 7:
        host.programs["appcmd"] = appcmd
