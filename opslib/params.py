"""The parameters file: load, validate, and turn into notebook parameters.

One YAML file describes one renewal (schema in ``CONTRIBUTING.md``; every key is documented in
``docs/parameters.md``). :func:`load` reads it and returns :class:`Parameters`; every problem
raises :class:`opslib.errors.ParameterError` naming the key path (``winrm.url``), what is wrong
and the file, so the command line exits with code 2 before anything is contacted.

Secrets are never in the file: ``winrm.password`` and ``backup.pfx_password`` must be references
(``env:NAME``, ``keyring:service/user``, ``prompt``); a literal is refused without echoing it.

``mode: rollback`` marks a parameter set written by the runner into a run folder
(``rollback.yaml``): it carries a ``rollback`` section (the old thumbprint and bindings recorded by
step 2) and makes the runner run only the rollback path.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import credentials
from .errors import ParameterError

RENEW, ROLLBACK = "renew", "rollback"
TRANSPORTS = ("ntlm", "kerberos", "credssp", "basic", "certificate")
CODEPAGES = ("auto", 437, 932, 65001)
TLS_SETTINGS = ("default", "legacy-tls1.0")  # opslib.winrm.channel.TLS_SETTINGS
MESSAGE_ENCRYPTION = ("auto", "always", "never")
_THUMBPRINT = re.compile(r"^[0-9A-Fa-f]{40}$")
_HOST_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_MISSING = object()

Check = Callable[[Any], str]  # returns "" when the value is fine, else the problem


MAX_TEXT = 1024  # longest string value (a site name, a path, a host name); more is a mistake or an attack


SHOW_MAX = 60  # characters of a value quoted in a message; the rest is cut (a value may be huge or hostile)
MAX_FILE_BYTES = 256 * 1024  # a parameters file is a page of YAML; more is a mistake or an attack


def _show(value: Any) -> str:
    """A value for a message: its repr (control characters escaped), cut to :data:`SHOW_MAX` characters."""
    text = repr(value)
    size = len(value) if isinstance(value, str) else len(text)
    return text if len(text) <= SHOW_MAX else f"{text[:SHOW_MAX]}… ({size} characters)"


def _too_long(value: str) -> str:
    if len(value) > MAX_TEXT:
        return (
            f"is {len(value)} characters long; at most {MAX_TEXT} are accepted (starts {_show(value[:40])})"
        )
    return ""


def _str(value: Any) -> str:
    return _too_long(value) if isinstance(value, str) else f"expected a string, got {_kind(value)}"


def _nonempty_str(value: Any) -> str:
    if not isinstance(value, str):
        return f"expected a string, got {_kind(value)}"
    return _too_long(value) or ("" if value.strip() else "must not be empty")


def _int_range(lo: int, hi: int) -> Check:
    def check(value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"expected an integer, got {_kind(value)}"
        return "" if lo <= value <= hi else f"must be between {lo} and {hi}, got {value}"

    return check


def _bool(value: Any) -> str:
    return "" if isinstance(value, bool) else f"expected true or false, got {_kind(value)}"


def _choice(*options: Any) -> Check:
    def check(value: Any) -> str:
        if isinstance(value, bool) or value not in options:
            return f"must be one of {', '.join(str(o) for o in options)}; got {_show(value)}"
        return ""

    return check


def _str_list(value: Any) -> str:
    if not isinstance(value, list):
        return f"expected a list of strings, got {_kind(value)}"
    bad = [v for v in value if not isinstance(v, str) or not v.strip()]
    if bad:
        return f"every item must be a non-empty string; got {_show(bad[0])}"
    return next((f"an item {p}" for p in map(_too_long, value) if p), "")


def _nonempty_str_list(value: Any) -> str:
    problem = _str_list(value)
    return problem or ("" if value else "must list at least one name")


def _thumbprint(value: Any) -> str:
    if not isinstance(value, str) or not _THUMBPRINT.match(value.replace(" ", "").replace(":", "")):
        return f"expected a SHA-1 thumbprint (40 hex digits), got {_show(value)}"
    return ""


def _thumbprint_list(value: Any) -> str:
    if not isinstance(value, list):
        return f"expected a list of SHA-1 thumbprints, got {_kind(value)}"
    for item in value:
        problem = _thumbprint(item)
        if problem:
            return problem
    return ""


def _reference(value: Any) -> str:
    if not isinstance(value, str) or not value:
        return "expected a secret reference such as env:NAME, keyring:service/user or prompt"
    if not credentials.is_reference(value):
        # Never echo the value: it may be the password itself.
        return (
            "is a literal value; secrets are never written into parameter files — "
            "use a reference such as env:NAME, keyring:service/user or prompt"
        )
    return ""


def _optional_reference(value: Any) -> str:
    return "" if value == "" else _reference(value)


def _url(value: Any) -> str:
    if not isinstance(value, str):
        return f"expected a URL string, got {_kind(value)}"
    if len(value) > MAX_TEXT:
        return _too_long(value)
    expected = (
        "expected http(s)://HOST[:PORT]/wsman (an IPv6 address in brackets: http://[fe80::1]:5985/wsman)"
    )
    if re.search(r"[\s\x00-\x1f\x7f]", value):
        return f"{expected}; it holds white space or a control character"
    try:
        parts = urllib.parse.urlsplit(value)
    except ValueError:
        return f"{expected}, got {_show(value)}"
    if "@" in parts.netloc:
        # Never echo it: the part before "@" may be a password.
        return "must not hold a user name or password (user:password@host); use winrm.username and winrm.password"
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return f"{expected}, got {_show(value)}"
    try:
        port = parts.port
    except ValueError:
        return f"the port must be a number from 1 to 65535; got {_show(parts.netloc)}"
    if port is not None and not 1 <= port <= 65535:
        return f"the port must be a number from 1 to 65535; got {port}"
    if not parts.path.startswith("/") or parts.query or parts.fragment:
        return f"{expected} (a path such as /wsman, no query), got {_show(value)}"
    return ""


def _normal_url(value: str) -> str:
    """The URL with its scheme and host in lower case (``HTTPS://Web01`` and ``https://web01`` are one server)."""
    parts = urllib.parse.urlsplit(value)
    netloc = parts.netloc.lower() if "@" not in parts.netloc else parts.netloc
    return urllib.parse.urlunsplit((parts.scheme.lower(), netloc, parts.path, "", ""))


def _endpoint(value: Any) -> str:
    if not isinstance(value, str):
        return f"expected HOST:PORT, got {_kind(value)}"
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return f"expected HOST:PORT (e.g. www1.example.jp:443), got {_show(value)}"
    return ""


def _host_label(value: Any) -> str:
    if not isinstance(value, str):
        return f"expected a string, got {_kind(value)}"
    if not _HOST_LABEL.match(value):
        return f"expected a host name of letters, digits, '.', '-', '_' (it names the evidence folder); got {_show(value)}"
    return ""


def _kind(value: Any) -> str:
    """What a value is, for messages (scalars shown, containers only named)."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    return f"{names.get(type(value), type(value).__name__)} ({_show(value)})"


@dataclass(frozen=True)
class Key:
    """One key of the parameters file."""

    path: str  # dotted key path, e.g. "winrm.url"
    check: Check
    default: Any = _MISSING  # _MISSING: required
    modes: tuple[str, ...] = (RENEW, ROLLBACK)  # where the key is allowed
    help: str = ""

    @property
    def required(self) -> bool:
        return self.default is _MISSING


# Sections (mappings) of the file; a key "a.b" lives in section "a".
SECTIONS: dict[str, tuple[str, ...]] = {
    "winrm": (RENEW, ROLLBACK),
    "backup": (RENEW,),
    "verify": (RENEW, ROLLBACK),
    "rollback": (ROLLBACK,),
    "evidence": (RENEW, ROLLBACK),
    "request": (RENEW,),
}

SCHEMA: tuple[Key, ...] = (
    Key("mode", _choice(RENEW, ROLLBACK), RENEW, help="renew (default) or rollback (written by the runner)"),
    Key("host", _host_label, help="name used in the evidence folder and run.json"),
    Key("winrm.url", _url, help="WinRM endpoint URL"),
    Key("winrm.transport", _choice(*TRANSPORTS), "ntlm", help="authentication"),
    Key("winrm.username", _nonempty_str, help="account on the server"),
    Key("winrm.password", _reference, "", help="secret reference of the password"),
    Key("winrm.ca_trust_path", _str, "", help="CA bundle for the WinRM HTTPS certificate"),
    Key("winrm.server_cert_validation", _choice("validate", "ignore"), "validate", help="TLS validation"),
    Key("winrm.codepage", _choice(*CODEPAGES), "auto", help="shell code page"),
    Key("winrm.allow_unencrypted_basic", _bool, False, help="allow Basic over plain HTTP"),
    Key(
        "winrm.tls", _choice(*TLS_SETTINGS), "default", help="legacy-tls1.0 for a Server 2003 HTTPS listener"
    ),
    Key(
        "winrm.message_encryption",
        _choice(*MESSAGE_ENCRYPTION),
        "auto",
        help="WinRM message encryption over HTTP (auto: NTLM/Kerberos/CredSSP seal over http://)",
    ),
    Key(
        "winrm.allow_cleartext_secrets",
        _bool,
        False,
        help="accept that the PFX and passwords cross an unencrypted channel (a lab only)",
    ),
    Key("winrm.operation_timeout_s", _int_range(1, 3600), 20, help="WS-Management OperationTimeout"),
    Key("winrm.read_timeout_s", _int_range(2, 3600), 30, help="HTTP read timeout"),
    Key(
        "winrm.command_timeout_s",
        _int_range(0, 3600),
        0,
        help="longest wait for any one remote command (0: each command's own limit)",
    ),
    Key("production_site", _nonempty_str, help="the production site (ServerComment or W3SVC/n)"),
    Key("work_site", _nonempty_str, help="the site holding the pending request"),
    Key("ssl_port", _int_range(1, 65535), 443, help="SSL port of the work site binding"),
    Key("certificate_file", _nonempty_str, modes=(RENEW,), help="the CA's mail, PEM, DER or PKCS#7"),
    Key(
        "expected_hostnames", _nonempty_str_list, modes=(RENEW,), help="names the new certificate must cover"
    ),
    Key("forbidden_roots", _thumbprint_list, [], help="extra forbidden root thumbprints"),
    Key("warn_days", _int_range(0, 3650), 30, help="warn when a certificate expires within N days"),
    Key(
        "private_pki",
        _bool,
        False,
        help="true: the site's certificate comes from a private CA (the calendar: SC-081 does not apply)",
    ),
    Key("backup.directory", _nonempty_str, modes=(RENEW,), help="folder for the PFX backup (0700)"),
    Key("backup.pfx_password", _reference, modes=(RENEW,), help="secret reference of the PFX password"),
    Key("verify.endpoint", _endpoint, help="HOST:PORT checked from outside in step 4"),
    Key("verify.servername", _str, "", help="SNI name"),
    Key("verify.ca_file", _str, "", help="extra trust anchors for the check"),
    Key(
        "evidence.hmac_key",
        _optional_reference,
        "",
        help="secret reference of a key that signs run.json (HMAC-SHA256); empty: unsigned",
    ),
    Key("request.subject", _str, "", modes=(RENEW,), help="opslib request: subject (default: production's)"),
    Key(
        "request.dns_names",
        _str_list,
        [],
        modes=(RENEW,),
        help="opslib request: names (default: production's)",
    ),
    Key("rollback.run_id", _nonempty_str, modes=(ROLLBACK,), help="the run being rolled back"),
    Key("rollback.old_thumbprint", _thumbprint, modes=(ROLLBACK,), help="the certificate to put back"),
    Key("rollback.old_not_after_utc", _str, "", modes=(ROLLBACK,), help="its expiry (for the reader)"),
    Key("rollback.old_secure_bindings", _str_list, [], modes=(ROLLBACK,), help="bindings to restore"),
    Key("rollback.replaced_thumbprint", _str, "", modes=(ROLLBACK,), help="the certificate taken off"),
    Key(
        "rollback.old_cert_source",
        _choice("", "own", "inherited", "none"),
        "",
        modes=(ROLLBACK,),
        help="IIS 6: where the old certificate came from (inherited = from W3SVC: inheritance is restored)",
    ),
)

# Keys whose value is a path relative to the parameters file's folder.
PATH_KEYS = ("certificate_file", "winrm.ca_trust_path", "verify.ca_file", "backup.directory")
SECRET_KEYS = ("winrm.password", "backup.pfx_password", "evidence.hmac_key")


@dataclass(frozen=True)
class Parameters:
    """A validated parameter set. ``data`` keeps secrets as references only."""

    data: dict[str, Any]
    source: str  # the file (or "run.json" of a resumed run), for messages
    base_dir: Path  # relative paths in ``data`` are relative to this folder

    @property
    def mode(self) -> str:
        return str(self.data["mode"])

    @property
    def host(self) -> str:
        return str(self.data["host"])

    @property
    def site(self) -> str:
        return str(self.data["production_site"])

    def get(self, path: str) -> Any:
        """The value at a dotted key path (``backup.directory``)."""
        node: Any = self.data
        for part in path.split("."):
            node = node[part]
        return node

    def path(self, key: str) -> Path:
        """A path-valued key, with ``~`` expanded and made absolute against :attr:`base_dir`."""
        return (self.base_dir / Path(os.path.expanduser(str(self.get(key))))).resolve()

    def secret_references(self) -> dict[str, str]:
        """``{key path: reference}`` of every secret the run needs."""
        out: dict[str, str] = {}
        for key in SECRET_KEYS:
            try:
                ref = self.get(key)
            except KeyError:
                continue
            if ref:
                out[key] = str(ref)
        return out

    def notebook_values(self) -> dict[str, Any]:
        """The values the runner may pass to notebooks, by notebook parameter name.

        Top-level keys keep their name; ``winrm`` stays one mapping (``opslib.connect`` takes it);
        ``backup.x`` and ``verify.x`` become ``backup_x`` / ``verify_x``; the ``rollback``
        section's keys keep their own names (they are the facts step 2 recorded); the ``evidence``
        section is the runner's own and reaches no notebook, nor does the calendar's ``private_pki``.
        """
        out: dict[str, Any] = {}
        for name, value in self.data.items():
            if name == "winrm":
                out[name] = dict(value)
            elif name == "rollback":
                out.update(value)
            elif name == "evidence":
                continue  # the runner's own (the HMAC key reference): no notebook receives it
            elif name == "private_pki":
                continue  # the calendar's own (whether SC-081 applies): no step decides on it
            elif name in ("backup", "verify", "request"):
                out.update({f"{name}_{k}": v for k, v in value.items()})
            else:
                out[name] = value
        return out


class _StrictLoader(yaml.SafeLoader):
    """YAML for a parameters file: no anchors or aliases, no explicit tags, no duplicate keys.

    Aliases let a few lines expand into gigabytes (an "alias bomb"); a duplicate key silently
    takes the last value; a tag changes what a value means. None of them has a use in a
    parameters file, so each is refused with the line it stands on.
    """

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        mark = event.start_mark
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(mark, f"an alias (*{event.anchor}): aliases are not accepted in a parameters file")
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            raise _Refused(mark, f"an anchor (&{anchor}): anchors and aliases are not accepted")
        tag = getattr(event, "tag", None)
        if tag not in (None, "!") and not (isinstance(event, yaml.ScalarEvent) and event.implicit[0]):
            raise _Refused(mark, f"a tag ({tag}): tags are not accepted; write the plain value")
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark.line)
            except TypeError:
                raise _Refused(key_node.start_mark, "a key that is not a plain value") from None
            if first != key_node.start_mark.line:
                raise _Refused(
                    key_node.start_mark,
                    f"the key {_show(key)} appears twice (first at line {first + 1}); keep one",
                )
        return super().construct_mapping(node, deep=deep)


class _Refused(Exception):
    def __init__(self, mark: Any, problem: str) -> None:
        super().__init__(problem)
        self.problem = f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark else problem


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a parameters file; ``ParameterError`` when it is missing or is not a YAML mapping."""
    p = Path(path)
    source = str(path)
    try:
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ParameterError(
                "(file)",
                f"is {size} bytes; a parameters file is at most {MAX_FILE_BYTES} bytes",
                source=source,
            )
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ParameterError("(file)", "parameters file not found", source=source) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ParameterError(
            "(file)", f"cannot read the file ({type(exc).__name__})", source=source
        ) from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except _Refused as exc:
        raise ParameterError("(file)", exc.problem, source=source) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ParameterError("(file)", f"not valid YAML{where}", source=source) from None
    if not isinstance(data, dict):
        raise ParameterError("(file)", f"expected a mapping of keys, got {_kind(data)}", source=source)
    return data


def load(path: str | os.PathLike[str], *, absent_ok: tuple[str, ...] = ()) -> Parameters:
    """Read and validate a parameters file (relative paths are relative to its folder). ``absent_ok``:
    path keys whose file need not exist yet (``opslib request``: the CA's mail comes later)."""
    data = read_yaml(path)
    return validate(data, source=str(path), base_dir=Path(path).resolve().parent, absent_ok=absent_ok)


def validate(
    data: Mapping[str, Any],
    *,
    source: str,
    base_dir: Path,
    check_files: bool = True,
    absent_ok: tuple[str, ...] = (),
) -> Parameters:
    """Check every key against :data:`SCHEMA`, fill defaults, and return :class:`Parameters`.

    Raises :class:`ParameterError` for the first problem: an unknown key, a wrong type, a missing
    required key, a literal secret, a file that does not exist (``check_files``).
    """

    def fail(key: str, problem: str, hint: str = "") -> ParameterError:
        return ParameterError(key, problem, source=source, hint=hint)

    mode = data.get("mode", RENEW)
    problem = _choice(RENEW, ROLLBACK)(mode)
    if problem:
        raise fail("mode", problem)
    known = {k.path for k in SCHEMA}
    # Unknown keys and misplaced sections first: a typo is the likeliest mistake.
    for name, value in data.items():
        if not isinstance(name, str):
            raise fail(str(name), "keys must be strings")
        if name in SECTIONS:
            if mode not in SECTIONS[name]:
                raise fail(name, f"not used when mode is {mode}; remove it")
            if not isinstance(value, dict):
                raise fail(name, f"expected a mapping, got {_kind(value)}")
            for sub in value:
                if f"{name}.{sub}" not in known:
                    raise fail(f"{name}.{sub}", "unknown key", _suggest(f"{name}.{sub}", known))
        elif name not in known:
            raise fail(name, "unknown key", _suggest(name, known))
    out: dict[str, Any] = {}
    for key in SCHEMA:
        section, _, leaf = key.path.rpartition(".")
        if mode not in key.modes:
            if section == "" and key.path in data:
                raise fail(key.path, f"not used when mode is {mode}; remove it")
            continue
        container: Mapping[str, Any] = data.get(section, {}) if section else data
        if section and section not in data and any(k.required and mode in k.modes for k in _section(section)):
            raise fail(section, "missing (a required section)", f"add the {section}: mapping")
        if leaf in container:
            value = container[leaf]
            problem = key.check(value)
            if problem:
                raise fail(key.path, problem)
        elif key.required:
            raise fail(key.path, "missing (a required key)")
        else:
            value = _copy(key.default)
        if key.path in ("rollback.old_thumbprint", "forbidden_roots"):
            value = _normal_thumbprints(value)
        if key.path == "winrm.url":
            value = _normal_url(value)
        target = out.setdefault(section, {}) if section else out
        target[leaf] = value
    _cross_checks(out, mode=mode, fail=fail)
    params = Parameters(data=out, source=source, base_dir=base_dir)
    if check_files:
        for path_key in PATH_KEYS:
            try:
                value = params.get(path_key)
            except KeyError:
                continue
            if not value or path_key == "backup.directory" or path_key in absent_ok:
                continue
            if not params.path(path_key).is_file():
                raise fail(
                    path_key, f"file not found: {value}", "paths are relative to the parameters file's folder"
                )
    return params


def _section(name: str) -> list[Key]:
    return [k for k in SCHEMA if k.path.startswith(name + ".")]


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


def _normal_thumbprints(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace(" ", "").replace(":", "").upper()
    return [_normal_thumbprints(v) for v in value]


def _cross_checks(out: dict[str, Any], *, mode: str, fail: Callable[..., ParameterError]) -> None:
    if out["production_site"].strip().lower() == out["work_site"].strip().lower():
        raise fail(
            "work_site",
            "must name a different site than production_site (the seed's 更新申請作業用仮想サイト)",
        )
    winrm = out["winrm"]
    if winrm["transport"] in ("ntlm", "basic", "credssp") and not winrm["password"]:
        raise fail("winrm.password", f"missing (transport {winrm['transport']} needs a password reference)")
    if (
        winrm["transport"] == "basic"
        and winrm["url"].startswith("http://")
        and not winrm["allow_unencrypted_basic"]
    ):
        raise fail(
            "winrm.transport",
            "Basic authentication over plain HTTP sends the password in clear",
            "use https://, or set winrm.allow_unencrypted_basic: true for a lab",
        )
    # winrm.tls: legacy-tls1.0 with an http:// URL is refused by the transport (before anything is sent).
    if winrm["message_encryption"] == "always" and winrm["transport"] not in ("ntlm", "kerberos", "credssp"):
        raise fail(
            "winrm.message_encryption",
            f"always needs a transport that can encrypt messages (ntlm, kerberos, credssp), not {winrm['transport']}",
        )


def _suggest(key: str, known: set[str]) -> str:
    import difflib

    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)
    return f"did you mean {close[0]}?" if close else "see docs/parameters.md for the keys"


def dump(data: Mapping[str, Any], *, header: str = "") -> str:
    """YAML text of a parameter mapping (key order kept), with an optional comment header."""
    body = yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True, default_flow_style=False)
    lines = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return lines + body
