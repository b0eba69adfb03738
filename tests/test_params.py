"""The parameters file: what an operator sees when a key is wrong (exit 2, the key named)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from opslib import params
from opslib.errors import ParameterError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "parameters" / "example.yaml"


def _example() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))


def _validate(data: dict[str, Any], tmp_path: Path, *, check_files: bool = False) -> params.Parameters:
    return params.validate(data, source="p.yaml", base_dir=tmp_path, check_files=check_files)


def test_example_file_is_valid_and_fills_defaults(tmp_path: Path) -> None:
    p = _validate(_example(), tmp_path)
    assert p.mode == "renew"
    assert p.host == "web01.example.jp"
    assert p.site == "www1.example.jp"
    assert p.get("winrm.password") == "env:OPSLIB_WINRM_PASSWORD"
    assert p.secret_references() == {
        "winrm.password": "env:OPSLIB_WINRM_PASSWORD",
        "backup.pfx_password": "env:OPSLIB_PFX_PASSWORD",
    }


def test_defaults_are_filled_for_optional_keys(tmp_path: Path) -> None:
    data = _example()
    for key in ("ssl_port", "warn_days", "forbidden_roots"):
        del data[key]
    del data["winrm"]["codepage"]
    del data["verify"]["ca_file"]
    for key in ("tls", "message_encryption", "allow_cleartext_secrets"):
        data["winrm"].pop(key, None)
    p = _validate(data, tmp_path)
    assert (p.get("ssl_port"), p.get("warn_days"), p.get("forbidden_roots")) == (443, 30, [])
    assert p.get("winrm.codepage") == "auto"
    assert (p.get("winrm.tls"), p.get("winrm.message_encryption")) == ("default", "auto")
    assert p.get("winrm.allow_cleartext_secrets") is False
    assert p.get("verify.ca_file") == ""


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: d.__setitem__("ssl_prot", 443),
            r"p\.yaml: ssl_prot: unknown key — did you mean ssl_port\?",
        ),
        (
            lambda d: d["winrm"].__setitem__("usrname", "x"),
            r"winrm\.usrname: unknown key — did you mean winrm\.username",
        ),
        (
            lambda d: d.__setitem__("ssl_port", "443"),
            r"ssl_port: expected an integer, got a string \('443'\)",
        ),
        (lambda d: d.__setitem__("ssl_port", 70000), r"ssl_port: must be between 1 and 65535, got 70000"),
        (lambda d: d.__setitem__("warn_days", True), r"warn_days: expected an integer, got a boolean"),
        (lambda d: d.pop("work_site"), r"work_site: missing \(a required key\)"),
        (lambda d: d.pop("production_site"), r"production_site: missing"),
        (lambda d: d.__setitem__("work_site", "WWW1.example.jp"), r"work_site: must name a different site"),
        (lambda d: d.pop("backup"), r"backup: missing \(a required section\)"),
        (lambda d: d.__setitem__("verify", "www1:443"), r"verify: expected a mapping, got a string"),
        (
            lambda d: d["verify"].__setitem__("endpoint", "www1.example.jp"),
            r"verify\.endpoint: expected HOST:PORT",
        ),
        (lambda d: d["winrm"].__setitem__("transport", "digest"), r"winrm\.transport: must be one of ntlm"),
        (
            lambda d: d["winrm"].__setitem__("codepage", "932"),
            r"winrm\.codepage: must be one of auto, 437, 932",
        ),
        (lambda d: d["winrm"].__setitem__("url", "web01:5985"), r"winrm\.url: expected http\(s\)://HOST"),
        (
            lambda d: d.__setitem__("expected_hostnames", []),
            r"expected_hostnames: must list at least one name",
        ),
        (
            lambda d: d.__setitem__("expected_hostnames", "www1"),
            r"expected_hostnames: expected a list of strings",
        ),
        (
            lambda d: d.__setitem__("forbidden_roots", ["ABCD"]),
            r"forbidden_roots: expected a SHA-1 thumbprint",
        ),
        (lambda d: d.__setitem__("host", "web01/../x"), r"host: expected a host name"),
        (lambda d: d.__setitem__("mode", "swap"), r"mode: must be one of renew, rollback"),
        (lambda d: d.__setitem__("rollback", {}), r"rollback: not used when mode is renew"),
        (
            lambda d: d["winrm"].update(url="http://web01:5985/wsman", transport="basic"),
            r"winrm\.transport: Basic authentication over plain HTTP .*allow_unencrypted_basic",
        ),
        (
            lambda d: d["winrm"].__setitem__("tls", "tls1.0"),
            r"winrm\.tls: must be one of default, legacy-tls1\.0",
        ),
        (
            lambda d: d["winrm"].__setitem__("message_encryption", True),
            r"winrm\.message_encryption: must be one of auto, always, never",
        ),
        (
            lambda d: d["winrm"].update(transport="basic", message_encryption="always"),
            r"winrm\.message_encryption: always needs a transport that can encrypt messages",
        ),
        (
            lambda d: d["winrm"].__setitem__("allow_cleartext_secrets", "yes"),
            r"winrm\.allow_cleartext_secrets: expected true or false, got a string",
        ),
    ],
)
def test_a_wrong_key_is_named(tmp_path: Path, edit: Any, message: str) -> None:
    data = _example()
    edit(data)
    with pytest.raises(ParameterError, match=message) as info:
        _validate(data, tmp_path)
    assert info.value.exit_code == 2
    assert info.value.source == "p.yaml"


def test_a_literal_password_is_refused_without_echoing_it(tmp_path: Path) -> None:
    data = _example()
    data["winrm"]["password"] = "S3cret-Passw0rd"
    with pytest.raises(ParameterError, match=r"winrm\.password: is a literal value; .* env:NAME") as info:
        _validate(data, tmp_path)
    assert "S3cret-Passw0rd" not in str(info.value)
    data = _example()
    data["backup"]["pfx_password"] = "hunter2hunter2"
    with pytest.raises(ParameterError, match=r"backup\.pfx_password: is a literal value") as info:
        _validate(data, tmp_path)
    assert "hunter2hunter2" not in str(info.value)


def test_files_are_resolved_against_the_parameters_folder(tmp_path: Path) -> None:
    data = _example()
    with pytest.raises(ParameterError, match=r"certificate_file: file not found: mail/2026cert\.txt"):
        _validate(data, tmp_path, check_files=True)
    (tmp_path / "mail").mkdir()
    (tmp_path / "mail" / "2026cert.txt").write_text("mail", encoding="utf-8")
    data["winrm"]["ca_trust_path"] = ""
    p = _validate(data, tmp_path, check_files=True)
    assert p.path("certificate_file") == (tmp_path / "mail" / "2026cert.txt").resolve()
    assert p.path("backup.directory") == (Path.home() / "ssl-backups" / "www1.example.jp").resolve()


def test_missing_unreadable_or_malformed_file(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match=r"nope\.yaml: \(file\): parameters file not found"):
        params.load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("host: [unclosed\n", encoding="utf-8")
    with pytest.raises(ParameterError, match=r"\(file\): not valid YAML at line 2"):
        params.load(bad)
    bad.write_text("- a list\n", encoding="utf-8")
    with pytest.raises(ParameterError, match=r"\(file\): expected a mapping of keys, got a list"):
        params.load(bad)


def test_rollback_mode_needs_its_section_and_refuses_renewal_keys(tmp_path: Path) -> None:
    data = _example()
    for key in ("certificate_file", "expected_hostnames", "backup"):
        data.pop(key)
    data["mode"] = "rollback"
    with pytest.raises(ParameterError, match=r"rollback: missing \(a required section\)"):
        _validate(data, tmp_path)
    data["rollback"] = {"run_id": "r1", "old_thumbprint": "ab" * 20, "old_secure_bindings": [":443:"]}
    p = _validate(data, tmp_path)
    assert p.get("rollback.old_thumbprint") == "AB" * 20
    assert p.notebook_values()["old_secure_bindings"] == [":443:"]
    data["certificate_file"] = "x.pem"
    with pytest.raises(ParameterError, match=r"certificate_file: not used when mode is rollback"):
        _validate(data, tmp_path)


def test_notebook_values_flatten_sections_but_keep_winrm(tmp_path: Path) -> None:
    values = _validate(_example(), tmp_path).notebook_values()
    assert values["winrm"]["url"] == "https://web01.example.jp:443/wsman"
    assert values["backup_pfx_password"] == "env:OPSLIB_PFX_PASSWORD"
    assert values["verify_endpoint"] == "www1.example.jp:443"
    assert "backup" not in values and "verify" not in values


def test_every_key_is_documented() -> None:
    doc = (ROOT / "docs" / "parameters.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([a-z_.]+)` \|", doc, flags=re.M))
    assert {k.path for k in params.SCHEMA} <= documented
    assert documented - {k.path for k in params.SCHEMA} <= set(params.SECTIONS)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    return path


BOMB = """a: &a ["x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            BOMB,
            r"p\.yaml: \(file\): line 1, column 4: an anchor \(&a\): anchors and aliases are not accepted",
        ),
        ("host: web01\nwinrm: *x\n", r"line 2, column 8: an alias \(\*x\)"),
        (
            "host: web01\nwarn_days: 30\nhost: web02\n",
            r"line 3, column 1: the key 'host' appears twice \(first at line 1\); keep one",
        ),
        (
            "host: !!python/object:os.system x\n",
            r"line 1, column 7: a tag \(tag:yaml\.org,2002:python/object",
        ),
        ("warn_days: !!int '30'\n", r"a tag \(tag:yaml\.org,2002:int\): tags are not accepted"),
    ],
)
def test_yaml_aliases_duplicates_and_tags_are_refused_with_their_line(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ParameterError, match=message):
        params.read_yaml(_write(tmp_path, text))


def test_a_huge_parameters_file_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = _write(tmp_path, "host: web01\n" + "# padding\n" * 40_000)
    with pytest.raises(ParameterError, match=r"is 400012 bytes; a parameters file is at most 262144 bytes"):
        params.read_yaml(path)


@pytest.mark.parametrize(
    ("url", "stored"),
    [
        ("http://[fe80::1]:5985/wsman", "http://[fe80::1]:5985/wsman"),
        ("https://[2001:db8::10]/wsman", "https://[2001:db8::10]/wsman"),
        ("HTTPS://Web01.Example.JP:5986/wsman", "https://web01.example.jp:5986/wsman"),
        ("http://192.0.2.10:80/wsman", "http://192.0.2.10:80/wsman"),
    ],
)
def test_winrm_urls_accept_ipv6_and_any_scheme_case(tmp_path: Path, url: str, stored: str) -> None:
    data = _example()
    data["winrm"]["url"] = url
    assert _validate(data, tmp_path).get("winrm.url") == stored


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://web01:0/wsman", r"winrm\.url: the port must be a number from 1 to 65535; got 0"),
        (
            "https://web01:99999/wsman",
            r"winrm\.url: the port must be a number from 1 to 65535; got 'web01:99999'",
        ),
        ("ftp://web01/wsman", r"winrm\.url: expected http\(s\)://HOST\[:PORT\]/wsman"),
        ("https://web01/ws man", r"winrm\.url: .*white space or a control character"),
        ("https://[fe80::1/wsman", r"winrm\.url: expected http\(s\)://HOST\[:PORT\]/wsman"),
    ],
)
def test_bad_winrm_urls_are_named_before_anything_happens(tmp_path: Path, url: str, message: str) -> None:
    data = _example()
    data["winrm"]["url"] = url
    with pytest.raises(ParameterError, match=message):
        _validate(data, tmp_path)


def test_messages_never_quote_a_whole_huge_value(tmp_path: Path) -> None:
    data = _example()
    data["ssl_port"] = "4" * 5000 + "\x1b[2J"
    with pytest.raises(ParameterError) as info:
        _validate(data, tmp_path)
    text = str(info.value)
    assert len(text) < 300 and "\x1b" not in text and "(5004 characters)" in text
