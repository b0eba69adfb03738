"""opslib.iis (the IIS 6 backend), the IIS 6 helper (opslib/scripts/iis6.js) and its rehearsal emulation (cscript).

Three layers, each able to fail on its own:
* the real helper file runs under Node with ADSI stubs (tests/js/run_iis6.js) — its JSON, exit
  codes and the ADSI calls it makes;
* the rehearsal's cscript emulation must answer byte for byte as the helper does under those stubs;
* opslib.iis over real pywinrm + the rehearsal WS-Management endpoint, in en/437 and ja/932, checked
  against what the emulated server holds afterwards (its state file).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from opslib import certs
from opslib.rehearsal import cmd
from opslib.rehearsal.host import STARTED, STOPPED, Host, Site
from opslib.rehearsal.pki import Pki, make_pki
from opslib.rehearsal.programs import cscript, stores

ROOT = Path(__file__).resolve().parent.parent
HELPER = ROOT / "opslib" / "scripts" / "iis6.js"
HARNESS = ROOT / "tests" / "js" / "run_iis6.js"
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(
    NODE is None, reason="node (Node.js) is not installed; the JScript helper cannot be run"
)

HASH_A = "D023F988BB2A96D628E975A52F96AEA83FDC829F"
HASH_B = "00112233445566778899AABBCCDDEEFF00112233"
CLOCK = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def _sites() -> list[Site]:
    return [
        Site(1, "www1.example.jp", STARTED, [":80:www1.example.jp"], [":443:"], HASH_A, "MY"),
        Site(2, "renew.www1.example.jp", STOPPED, [":80:renew.www1.example.jp"], [], "", ""),
        Site(3, "intranet ポータル", STOPPED, [":8080:"], [], "", ""),
    ]


def run_node(
    sites: list[Site],
    argv: list[str],
    tmp_path: Path,
    *,
    certs: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    assert NODE is not None
    case = tmp_path / "case.json"
    data = {"sites": [asdict(s) for s in sites], "argv": argv, "certs": certs or {}, **extra}
    case.write_text(json.dumps(data), encoding="utf-8")
    proc = subprocess.run(
        [NODE, str(HARNESS), str(HELPER), str(case)], capture_output=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr.decode()
    out: dict[str, Any] = json.loads(proc.stdout)
    assert out["exit_code"] != 99, "the helper threw outside its own error handling"
    return out


def emulated_host(sites: list[Site], *, locale: str = "en", codepage: int = 437) -> Host:
    host = Host(locale=locale, codepage=codepage)
    cmd.prepare_host(host)
    cscript.register(host)
    for s in sites:
        host.sites[s.id] = Site(**asdict(s))
    cmd.make_dirs(host, r"C:\kit")
    host.write_file(r"C:\kit\iis6.js", HELPER.read_bytes())
    return host


def run_emulated(host: Host, argv: list[str]) -> tuple[int, bytes, bytes]:
    line = r"cscript //nologo //E:jscript C:\kit\iis6.js " + " ".join(f'"{a}"' for a in argv)
    result = cmd.execute(host, line, codepage=host.default_codepage)
    return result.exit_code, result.stdout, result.stderr


# --- the helper file itself ---------------------------------------------------------------------------


def test_helper_is_plain_es3_and_ascii() -> None:
    text = HELPER.read_bytes().decode("ascii")  # raises if a non-ASCII byte crept in
    code = re.sub(r"//[^\n]*", "", text)  # comments may mention anything
    forbidden = {
        r"\bJSON\.": "JSON object (ES5)",
        r"\.forEach\(|\.map\(|\.filter\(|\.indexOf\(": "ES5 array methods",
        r"Object\.(keys|create|defineProperty)": "ES5 Object functions",
        r"Array\.isArray": "Array.isArray (ES5)",
        r"\.trim\(": "String.prototype.trim (ES5)",
        r"\b(let|const|class)\s": "ES2015 declarations",
        r"=>": "arrow functions",
        r"`": "template literals",
        r",\s*[}\]]": "trailing commas (JScript 5.x rejects them in object literals)",
    }
    for pattern, what in forbidden.items():
        assert not re.search(pattern, code), f"iis6.js uses {what}"


@needs_node
def test_helper_lists_sites_with_ascii_json(tmp_path: Path) -> None:
    out = run_node(_sites(), ["list"], tmp_path)
    assert out["exit_code"] == 0
    line = out["stdout"]
    assert line.endswith("\r\n") and line.isascii()
    assert "\\u30dd\\u30fc\\u30bf\\u30eb" in line  # ポータル escaped
    data = json.loads(line)
    assert [s["id"] for s in data["sites"]] == [1, 2, 3]
    assert data["sites"][0] == {
        "id": 1,
        "name": "www1.example.jp",
        "state": 2,
        "bindings": [":80:www1.example.jp"],
        "secure_bindings": [":443:"],
        "cert_hash": HASH_A,
        "cert_hash_inherited": False,
        "store_name": "MY",
    }
    assert data["sites"][2]["name"] == "intranet ポータル"
    assert "GetObject IIS://localhost/W3SVC" in out["calls"]


@needs_node
def test_helper_says_whether_the_certificate_is_the_sites_own_or_inherited(tmp_path: Path) -> None:
    """W-IIS6-SSLCERTHASH-INHERIT: Get() reads /LM/W3SVC's value on a site without its own, and
    GetPropertyAttribObj("SSLCertHash").IsInherit (GetPropertyAttribObj ms525702, IISPropertyAttribute ms524823) says so in ``cert_hash_inherited``."""
    sites = _sites()
    sites[0].ssl_cert_hash, sites[0].ssl_store_name = "", ""
    out = run_node(sites, ["list"], tmp_path, service_cert_hash=HASH_A)
    listed = json.loads(out["stdout"])["sites"]
    assert [(s["cert_hash"], s["cert_hash_inherited"]) for s in listed] == [(HASH_A, True)] * 3
    assert "GetPropertyAttribObj 1 SSLCertHash" in out["calls"]
    # set-cert gives the site its own value and reads it back as own
    out = run_node(sites, ["set-cert", "1", HASH_B, "MY", ":443:"], tmp_path, service_cert_hash=HASH_A)
    answer = json.loads(out["stdout"])
    assert out["exit_code"] == 0
    assert (answer["before"]["cert_hash_inherited"], answer["site"]["cert_hash_inherited"]) == (True, False)
    assert (answer["site"]["cert_hash"], out["sites"][0]["ssl_cert_hash"]) == (HASH_B, HASH_B)
    # clear-cert exposes the inherited value again
    out = run_node(_sites(), ["clear-cert", "1"], tmp_path, service_cert_hash=HASH_B)
    answer = json.loads(out["stdout"])
    assert (answer["site"]["cert_hash"], answer["site"]["cert_hash_inherited"]) == (HASH_B, True)
    # without a service-level value nothing is inherited
    out = run_node(_sites(), ["list"], tmp_path)
    assert [s["cert_hash_inherited"] for s in json.loads(out["stdout"])["sites"]] == [False] * 3


@needs_node
def test_helper_swap_of_an_inheriting_site_sets_its_own_value(tmp_path: Path) -> None:
    sites = _swap_sites()
    sites[0].ssl_cert_hash, sites[0].ssl_store_name = "", ""
    out = run_node(sites, SWAP, tmp_path, service_cert_hash=HASH_A)
    record = json.loads(out["stdout"])
    assert out["exit_code"] == 0 and record["ok"]
    assert (record["before"]["cert_hash"], record["before"]["cert_hash_inherited"]) == (HASH_A, True)
    assert (record["site"]["cert_hash"], record["site"]["cert_hash_inherited"]) == (HASH_B, False)
    assert out["sites"][0]["ssl_cert_hash"] == HASH_B


@needs_node
def test_helper_restores_an_inheriting_site_to_inheriting(tmp_path: Path) -> None:
    """A failed swap clears the site's own value again rather than writing the inherited one as its own."""
    sites = _swap_sites()
    sites[0].ssl_cert_hash, sites[0].ssl_store_name = "", ""
    out = run_node(sites, SWAP, tmp_path, service_cert_hash=HASH_A, fail_start_thumbprints=[HASH_B])
    record = json.loads(out["stdout"])
    assert (out["exit_code"], record["restored"]) == (3, True)
    assert (record["site"]["cert_hash"], record["site"]["cert_hash_inherited"]) == (HASH_A, True)
    assert out["sites"][0]["ssl_cert_hash"] == ""


@needs_node
def test_helper_set_cert_packs_hash_like_the_sdk_example(tmp_path: Path) -> None:
    out = run_node(_sites(), ["set-cert", "2", HASH_B.lower(), "MY", ":443:"], tmp_path)
    assert out["exit_code"] == 0, out["stdout"]
    row = out["sites"][1]
    # The stub decodes the 10 UTF-16 code units little-endian, as ms524780 packs d0 23 -> 0x23d0.
    assert (row["ssl_cert_hash"], row["ssl_store_name"], row["secure_bindings"]) == (HASH_B, "MY", [":443:"])
    assert "SetInfo 2" in out["calls"]
    assert json.loads(out["stdout"])["site"]["cert_hash"] == HASH_B


@needs_node
@pytest.mark.parametrize(
    ("argv", "code", "number", "text"),
    [
        (["set-cert", "2", "XYZ", "MY", ":443:"], 2, "0x80070057", "HASH must be 40 hexadecimal"),
        (["set-cert", "2", HASH_B, "MY", "443"], 2, "0x80070057", "SECUREBINDING must look like"),
        (["start", "W3SVC/2"], 2, "0x80070057", "SITEID must be the number"),
        (["start", "9"], 1, "0x80070003", "cannot find the path"),
        (["frobnicate"], 2, "0x80070057", "unknown verb 'frobnicate'"),
        ([], 2, "0x80070057", "unknown verb ''"),
    ],
)
def test_helper_reports_bad_input_as_json(
    tmp_path: Path, argv: list[str], code: int, number: str, text: str
) -> None:
    out = run_node(_sites(), argv, tmp_path)
    assert out["exit_code"] == code
    error = json.loads(out["stdout"])["error"]
    assert error["number"] == number
    assert text in error["description"]


@needs_node
def test_helper_start_polls_until_started(tmp_path: Path) -> None:
    sites = _sites()
    sites[0].state = STOPPED
    out = run_node(sites, ["start", "1"], tmp_path)
    assert out["exit_code"] == 0
    assert json.loads(out["stdout"])["site"]["state"] == STARTED
    assert out["calls"].count("GetInfo 1") >= 1  # ServerState re-read from the metabase, not the cache


@needs_node
def test_helper_reports_a_site_that_stays_stopped(tmp_path: Path) -> None:
    sites = _sites()
    sites[1].secure_bindings = [":443:"]  # the work site clashes with the started production site
    out = run_node(sites, ["start", "2"], tmp_path)
    assert out["exit_code"] == 3
    error = json.loads(out["stdout"])["error"]
    assert (error["verb"], error["number"], error["state"]) == ("start", "0x80004005", STOPPED)
    assert "ServerState is 4, not 2" in error["description"]


@needs_node
def test_helper_reports_start_failure_hresult(tmp_path: Path) -> None:
    sites = _sites()
    sites[0].state, sites[0].fail_start = STOPPED, True
    out = run_node(sites, ["start", "1"], tmp_path)
    assert out["exit_code"] == 1
    error = json.loads(out["stdout"])["error"]
    assert error["number"] == "0x80070020"
    assert error["site"]["state"] == STOPPED


PARITY_CASES = [
    ["list"],
    ["set-cert", "2", HASH_B, "MY", ":443:"],
    ["set-cert", "1", HASH_B.lower(), "MY", "10.0.0.5:8443:"],
    ["clear-cert", "1"],
    ["stop", "1"],
    ["start", "1"],
    ["start", "3"],
    ["stop", "2"],
    ["start", "x"],
    ["start", "42"],
    ["set-cert", "2"],
    ["dance"],
]


@needs_node
@pytest.mark.parametrize("argv", PARITY_CASES, ids=lambda a: " ".join(a))
@pytest.mark.parametrize("variant", ["plain", "conflict", "fail_start", "inherited"])
def test_emulation_answers_as_the_real_helper(tmp_path: Path, argv: list[str], variant: str) -> None:
    sites = _sites()
    extra: dict[str, Any] = {}
    if variant == "conflict":
        sites[1].secure_bindings = [":443:"]
        argv = ["start", "2"] if argv == ["start", "1"] else argv
    if variant == "fail_start":
        sites[0].state, sites[0].fail_start = STOPPED, True
    if variant == "inherited":  # W-IIS6-SSLCERTHASH-INHERIT: site 1 serves /LM/W3SVC's value
        sites[0].ssl_cert_hash, sites[0].ssl_store_name = "", ""
        extra["service_cert_hash"] = HASH_A
    node = run_node(sites, argv, tmp_path, **extra)
    host = emulated_host(sites)
    host.extra["w3svc_ssl_cert_hash"] = extra.get("service_cert_hash", "")
    code, stdout, _ = run_emulated(host, argv)
    assert (code, stdout.decode("ascii")) == (node["exit_code"], node["stdout"])
    assert [asdict(s) for _, s in sorted(host.sites.items())] == node["sites"]


# --- swap: one server-side transaction, and its journal -------------------------------------------------

JOURNAL = r"C:\WINDOWS\Temp\opslib-swap-1.json"
SWAP = ["swap", "1", HASH_B, "MY", ":443:", "2", "30"]


def _swap_sites() -> list[Site]:
    sites = _sites()
    sites[1].state, sites[1].secure_bindings = STARTED, [":443:"]  # the work site holds :443:
    sites[0].state = STOPPED
    return sites


@needs_node
def test_helper_swap_sets_restarts_and_journals(tmp_path: Path) -> None:
    out = run_node(_swap_sites(), SWAP, tmp_path)
    assert out["exit_code"] == 0, out["stdout"]
    answer = json.loads(out["stdout"])
    assert (answer["ok"], answer["restored"], answer["phase"]) == (True, False, "done")
    assert answer["before"]["cert_hash"] == HASH_A and answer["site"]["cert_hash"] == HASH_B
    assert answer["site"]["state"] == STARTED and [s["id"] for s in answer["stopped"]] == [2]
    prod, work = out["sites"][0], out["sites"][1]
    assert (prod["state"], prod["ssl_cert_hash"], work["state"]) == (STARTED, HASH_B, STOPPED)
    # The journal is written before the first change (CreateTextFile precedes every Stop/Put) and
    # holds the final answer afterwards.
    calls = out["calls"]
    first_change = min(i for i, c in enumerate(calls) if c.startswith(("Stop", "Put", "Start")))
    assert calls.index(f"CreateTextFile {JOURNAL}") < first_change
    assert json.loads(out["files"][JOURNAL]) == answer
    assert out["files"][JOURNAL].endswith("\r\n")


@needs_node
def test_helper_swap_restores_the_old_binding_when_the_site_will_not_start(tmp_path: Path) -> None:
    out = run_node(_swap_sites(), SWAP, tmp_path, fail_start_thumbprints=[HASH_B])
    assert out["exit_code"] == 3
    answer = json.loads(out["stdout"])
    assert (answer["ok"], answer["restored"], answer["phase"]) == (False, True, "restored")
    assert answer["cause"]["number"] == "0x80070020"
    prod = out["sites"][0]
    assert (prod["state"], prod["ssl_cert_hash"], prod["secure_bindings"]) == (STARTED, HASH_A, [":443:"])
    assert json.loads(out["files"][JOURNAL])["phase"] == "restored"


@needs_node
def test_helper_swap_reports_a_site_that_stays_down(tmp_path: Path) -> None:
    sites = _swap_sites()
    sites[0].fail_start = True
    out = run_node(sites, SWAP, tmp_path)
    assert out["exit_code"] == 4
    answer = json.loads(out["stdout"])
    assert (answer["ok"], answer["restored"], answer["phase"]) == (False, False, "failed")
    assert answer["restore_error"]["number"] == "0x80070020"
    assert out["sites"][0]["ssl_cert_hash"] == HASH_A  # the old binding is back even so


@needs_node
def test_helper_swap_without_a_journal_changes_nothing(tmp_path: Path) -> None:
    out = run_node(_swap_sites(), SWAP, tmp_path, read_only=[JOURNAL])
    assert out["exit_code"] == 1
    error = json.loads(out["stdout"])["error"]
    assert (error["verb"], error["number"]) == ("swap", "0x800A0046")
    assert out["sites"] == [asdict(s) for s in _swap_sites()]
    assert not [c for c in out["calls"] if c.startswith(("Stop", "Put", "Start", "SetInfo"))]


SWAP_PARITY_CASES = [
    SWAP,
    ["swap", "1", HASH_B, "MY", ":443:", "-", "5"],
    ["swap", "2", HASH_B, "MY", ":443:", "1", "5"],
    ["swap", "1", HASH_B, "MY", ":443:", "9", "5"],
    ["swap", "1", HASH_B, "MY", ":443:", "2", "0"],
    ["swap", "1", "xyz", "MY", ":443:", "2", "5"],
    ["swap", "1", HASH_B, "MY", ":443:", "2;x", "5"],
    ["swap", "1"],
    ["journal", "1"],
    ["journal", "x"],
]


@needs_node
@pytest.mark.parametrize("argv", SWAP_PARITY_CASES, ids=lambda a: " ".join(a[:2] + a[5:]))
@pytest.mark.parametrize(
    "variant",
    ["plain", "fail_new", "down", "journal_present", "read_only", "inherited", "inherited_fail_new"],
)
def test_emulated_swap_answers_as_the_real_helper(tmp_path: Path, argv: list[str], variant: str) -> None:
    sites = _swap_sites()
    extra: dict[str, Any] = {}
    if variant.startswith("inherited"):  # production inherits HASH_A from /LM/W3SVC
        sites[0].ssl_cert_hash, sites[0].ssl_store_name = "", ""
        extra["service_cert_hash"] = HASH_A
    if variant == "inherited_fail_new":
        extra["fail_start_thumbprints"] = [HASH_B]
    if variant == "fail_new":
        extra["fail_start_thumbprints"] = [HASH_B]
    if variant == "down":
        sites[0].fail_start = True
    if variant == "journal_present":
        extra["files"] = {JOURNAL: '{"verb":"swap","phase":"swapping"}\r\n'}
    if variant == "read_only":
        extra["read_only"] = [JOURNAL]
    node = run_node(sites, argv, tmp_path, **extra)
    host = emulated_host(sites)
    host.extra["w3svc_ssl_cert_hash"] = extra.get("service_cert_hash", "")
    host.extra["fail_start_thumbprints"] = extra.get("fail_start_thumbprints", [])
    host.extra["read_only_files"] = extra.get("read_only", [])
    for path, text in extra.get("files", {}).items():
        host.write_file(path, text.encode("ascii"))
    code, stdout, _ = run_emulated(host, argv)
    assert (code, stdout.decode("ascii")) == (node["exit_code"], node["stdout"])
    assert [asdict(s) for _, s in sorted(host.sites.items())] == node["sites"]
    for path, text in node["files"].items():
        assert host.read_file(path) == text.encode("ascii")
    assert host.read_file(JOURNAL) is None or JOURNAL in node["files"]


# --- export-pfx (IIS.CertObj) ----------------------------------------------------------------------------

PFX_PASSWORD = "Helper-Pfx-Pa55word"
OUT = r"C:\kit\out.pfx"


@needs_node
def test_helper_export_pfx_calls_iis_certobj_like_the_public_scripts(tmp_path: Path) -> None:
    out = run_node(_sites(), ["export-pfx", "1", OUT, PFX_PASSWORD], tmp_path, certs={HASH_A: "exportable"})
    assert out["exit_code"] == 0, out["stdout"]
    assert json.loads(out["stdout"]) == {
        "verb": "export-pfx",
        "exported": OUT,
        "site": 1,
        "cert_hash": HASH_A,
    }
    assert PFX_PASSWORD not in out["stdout"]
    # InstanceName "W3SVC/1", Export(path, password, bPrivateKey=true, bCertChain=true, bRemoveCert=false).
    assert out["exports"] == [
        {
            "instance": "W3SVC/1",
            "path": OUT,
            "password": PFX_PASSWORD,
            "private_key": True,
            "chain": True,
            "remove": False,
            "cert_hash": HASH_A,
        }
    ]
    assert "ActiveXObject IIS.CertObj" in out["calls"]


@needs_node
@pytest.mark.parametrize(
    ("argv", "key", "code", "number", "text"),
    [
        (["export-pfx", "1", OUT, PFX_PASSWORD], "not-exportable", 1, "0x8009000B", "Key not valid"),
        (["export-pfx", "1", OUT, PFX_PASSWORD], "no-key", 1, "0x80090016", "Keyset does not exist"),
        (["export-pfx", "1", OUT, PFX_PASSWORD], None, 1, "0x80092004", "Cannot find object"),
        (["export-pfx", "2", OUT, PFX_PASSWORD], "exportable", 1, "0x800CC801", "W3SVC/2 has no server cert"),
        (["export-pfx", "9", OUT, PFX_PASSWORD], "exportable", 1, "0x80070003", "cannot find the path"),
        (
            ["export-pfx", "1", "out.pfx", PFX_PASSWORD],
            "exportable",
            2,
            "0x80070057",
            "PATH must be an absolute",
        ),
        (["export-pfx", "1", OUT, ""], "exportable", 2, "0x80070057", "PASSWORD must not be empty"),
        (["export-pfx", "1", OUT], "exportable", 2, "0x80070057", "usage: export-pfx SITEID PATH PASSWORD"),
    ],
)
def test_helper_export_pfx_failures_are_json(
    tmp_path: Path, argv: list[str], key: str | None, code: int, number: str, text: str
) -> None:
    out = run_node(_sites(), argv, tmp_path, certs={HASH_A: key} if key else {})
    assert out["exit_code"] == code
    error = json.loads(out["stdout"])["error"]
    assert (error["verb"], error["number"]) == ("export-pfx", number)
    assert text in error["description"]
    assert out["exports"] == []
    assert PFX_PASSWORD not in out["stdout"]


def _export_host(key: str, *, locale: str = "en", codepage: int = 437) -> tuple[Host, list[Site], str, Pki]:
    """An emulated host whose site 1 is bound to a real certificate in MY with a key in state ``key``
    (exportable, not-exportable, no-key, absent = not in the store), plus the CA certificates."""
    pki = make_pki(now_utc=CLOCK)
    thumb = certs.thumbprint(pki.current_leaf)
    sites = _sites()
    sites[0].ssl_cert_hash = thumb
    host = emulated_host(sites, locale=locale, codepage=codepage)
    stores.init_stores(host)
    stores.add_certificate(host, "ROOT", pki.old_root)
    for ca in (pki.intermediate, pki.cross):
        stores.add_certificate(host, "CA", ca)
    if key != "absent":
        stores.add_certificate(
            host, "MY", pki.current_leaf, key=pki.current_key, exportable=key == "exportable"
        )
        if key == "no-key":
            host.keys.clear()
    return host, sites, thumb, pki


@needs_node
@pytest.mark.parametrize("key", ["exportable", "not-exportable", "no-key", "absent"])
@pytest.mark.parametrize("site", ["1", "2", "9", "x"])
def test_emulated_export_answers_as_the_real_helper(tmp_path: Path, key: str, site: str) -> None:
    host, sites, thumb, _ = _export_host(key)
    argv = ["export-pfx", site, OUT, PFX_PASSWORD]
    node = run_node(sites, argv, tmp_path, certs={} if key == "absent" else {thumb: key})
    code, stdout, _ = run_emulated(host, argv)
    assert (code, stdout.decode("ascii")) == (node["exit_code"], node["stdout"])
    assert (host.read_file(OUT) is not None) == bool(node["exports"])


def test_emulated_export_writes_a_3des_pfx_with_key_and_chain() -> None:
    host, _, thumb, pki = _export_host("exportable")
    code, stdout, _ = run_emulated(host, ["export-pfx", "1", OUT, PFX_PASSWORD])
    assert code == 0, stdout
    data = host.read_file(OUT)
    assert data is not None
    check = certs.check_pfx(
        data, PFX_PASSWORD, source="out.pfx", expected_thumbprint=thumb, anchors=[pki.g5_root, pki.old_root]
    )
    assert check.key_matches and check.has_intermediate
    assert check.encryption == ("pbeWithSHAAnd3-KeyTripleDES-CBC",)
    inside = set(check.certificates)
    assert {certs.thumbprint(pki.intermediate), certs.thumbprint(pki.old_root)} <= inside


def test_emulated_export_of_a_non_exportable_key_in_japanese() -> None:
    host, _, _, _ = _export_host("not-exportable", locale="ja", codepage=932)
    code, stdout, _ = run_emulated(host, ["export-pfx", "1", OUT, PFX_PASSWORD])
    assert code == 1 and stdout.isascii()
    error = json.loads(stdout)["error"]
    assert (error["number"], error["description"]) == (
        "0x8009000B",
        "キーは指定された状態で使用するのに有効ではありません。",
    )
    assert host.read_file(OUT) is None


# --- cscript as the rehearsal host runs it ------------------------------------------------------------


def test_cscript_refuses_a_missing_or_foreign_script() -> None:
    host = emulated_host(_sites())
    result = cmd.execute(host, r"cscript //nologo C:\kit\nothere.js list", codepage=437)
    assert result.exit_code == 1
    assert b'Input Error: Can not find script file "C:\\kit\\nothere.js".' in result.stderr
    host.write_file(r"C:\kit\iis6.js", HELPER.read_bytes() + b"\r\n// tampered\r\n")
    result = cmd.execute(host, r"cscript //nologo //E:jscript C:\kit\iis6.js list", codepage=437)
    assert result.exit_code == 1
    assert b"only runs the kit's own helper" in result.stderr
    assert result.stdout == b""


def test_cscript_prints_its_banner_without_nologo() -> None:
    host = emulated_host(_sites())
    result = cmd.execute(host, r"cscript C:\kit\iis6.js list", codepage=437)
    assert result.exit_code == 0
    assert result.stdout.startswith(b"Microsoft (R) Windows Script Host Version 5.6\r\n")
    assert json.loads(result.stdout.splitlines()[-1])["verb"] == "list"


def test_cscript_ja_error_text_is_escaped_ascii() -> None:
    host = emulated_host(_sites(), locale="ja", codepage=932)
    code, stdout, _ = run_emulated(host, ["start", "42"])
    assert code == 1 and stdout.isascii()
    assert json.loads(stdout)["error"]["description"] == "指定されたパスが見つかりません。"
    result = cmd.execute(host, r"cscript //nologo C:\kit\gone.js", codepage=932)
    assert "スクリプト ファイル" in result.stderr.decode("cp932")


# --- opslib.iis over real pywinrm and the rehearsal WS-Management endpoint ------------------------------

LOCALES = [pytest.param(("en", 437), id="en-437"), pytest.param(("ja", 932), id="ja-932")]


@pytest.fixture(params=LOCALES)
def server(request: pytest.FixtureRequest, tmp_path: Path, shared_endpoints: Any) -> Any:
    """The session's endpoint of the locale's IIS 6 scenario, put back as it started (tests/conftest.py)."""
    locale, codepage = request.param
    return shared_endpoints.get(
        "iis6-ja" if locale == "ja" else "default",
        locale=locale,
        codepage=codepage,
        state_file=tmp_path / "state.json",
    )


@pytest.fixture
def conn(server: Any) -> Iterator[Any]:
    from opslib import winrm as transport

    with transport.connect(
        server.url,
        transport="basic",
        username=server.user,
        password=server.password,
        host_label="web01",
        allow_unencrypted_basic=True,
        allow_cleartext_secrets=True,  # a Basic/HTTP lab host: accepted explicitly
    ) as c:
        yield c


@pytest.fixture
def backend(conn: Any) -> Any:
    """The IIS 6 backend on the connection (what ``opslib.server.Server(conn).iis`` builds on IIS 6)."""
    from opslib.iis import IIS6Backend

    return IIS6Backend(conn, host="web01")


def state(server: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(server.host.state_file).read_text(encoding="utf-8"))
    return data


def site_state(server: Any, site_id: int) -> dict[str, Any]:
    row: dict[str, Any] = state(server)["sites"][str(site_id)]
    return row


def new_thumbprint(server: Any) -> str:
    return str(server.host.extra["new_thumbprint"])


def install_new_certificate(server: Any) -> str:
    """Put the new certificate (with its key) into MY, as seed step 1 (opslib.ops.install) would."""
    pki = make_pki(
        now_utc=datetime.fromisoformat(server.host.extra["now_utc"]), hostnames=("www1.example.jp",)
    )
    return stores.add_certificate(server.host, "MY", pki.new_leaf, key=pki.new_key)


def test_sites_lists_the_metabase(server: Any, conn: Any, backend: Any) -> None:

    found = backend.sites()
    assert [(s.path, s.name, s.state_name) for s in found] == [
        ("W3SVC/1", "www1.example.jp", "started"),
        ("W3SVC/2", "renew.www1.example.jp", "stopped"),
    ]
    assert found[0].cert_thumbprint == server.host.extra["current_thumbprint"]
    assert found[0].secure_bindings == (":443:",) and found[0].store_name == "MY"
    row = found[0].row()
    assert row["site"] == "W3SVC/1" and row["expires_utc"] == ""
    # The helper is uploaded once per connection, into its temp folder, and run from there.
    backend.sites()
    commands = [str(h["command"]) for h in server.host.history]
    runs = [c for c in commands if c.startswith("cscript") and "iis6.js" in c]
    assert len(runs) == 2
    assert all(f'"{conn.temp_dir}\\iis6.js" list' in c for c in runs)
    assert len([c for c in commands if "-decode" in c and "iis6.js" in c]) == 1


def test_find_site_by_name_or_path_and_errors(server: Any, conn: Any, backend: Any) -> None:
    from opslib import iis
    from opslib.errors import SiteNotFound

    server.host.sites[2].comment = "更新作業用 renew.www1.example.jp"  # non-ASCII travels as \\uXXXX
    found = backend.sites()
    assert iis.find_site(found, "更新作業用 renew.www1.example.jp").id == 2
    assert iis.find_site(found, "w3svc/1").name == "www1.example.jp"
    assert iis.find_site(found, "WWW1.EXAMPLE.JP").id == 1
    with pytest.raises(
        SiteNotFound, match=r'web01: no IIS site is named \'www9\'; the sites are: W3SVC/1 "www1'
    ):
        iis.find_site(found, "www9", host="web01")
    with pytest.raises(SiteNotFound, match=r"no IIS site is named 'W3SVC/5'"):
        iis.find_site(found, "W3SVC/5")
    twins = [found[0], iis.Site(7, "www1.example.jp", 4, "stopped", (), (), "", "")]
    with pytest.raises(
        SiteNotFound,
        match=r"2 IIS sites are named 'www1.example.jp': .*W3SVC/7.* by its path instead \(W3SVC/n\)",
    ):
        iis.find_site(twins, "www1.example.jp")


def test_bind_certificate_on_the_work_site(server: Any, conn: Any, backend: Any) -> None:

    thumb = install_new_certificate(server)
    plan = backend.plan_bind("renew.www1.example.jp", thumb)
    assert [(c.field, c.after) for c in plan] == [
        ("SSLCertHash", thumb),
        ("SSLStoreName", "MY"),
        ("SecureBindings", ":443:"),
    ]
    site = backend.bind("renew.www1.example.jp", thumb.lower())
    assert (site.cert_thumbprint, site.store_name, site.secure_bindings, site.state_name) == (
        thumb,
        "MY",
        (":443:",),
        "stopped",
    )
    work = site_state(server, 2)
    assert (work["ssl_cert_hash"], work["ssl_store_name"], work["secure_bindings"]) == (
        thumb,
        "MY",
        [":443:"],
    )
    assert backend.plan_bind("W3SVC/2", thumb) == []


def test_bad_thumbprint_is_a_usage_error(conn: Any, backend: Any) -> None:
    from opslib.errors import ParameterError

    with pytest.raises(ParameterError, match="not a SHA-1 thumbprint"):
        backend.bind("W3SVC/2", "12345")


def test_plans_leave_the_server_unchanged(server: Any, conn: Any, backend: Any) -> None:

    thumb = install_new_certificate(server)
    backend.sites()  # upload the helper first (an upload changes the temp folder, not IIS)
    before = Path(server.host.state_file).read_bytes()
    bind_plan = backend.plan_bind("W3SVC/2", thumb)
    swap_plan = backend.plan_swap(production_site="www1.example.jp", new_thumbprint=thumb)
    assert Path(server.host.state_file).read_bytes() == before
    assert bind_plan and ("SSLCertHash", server.host.extra["current_thumbprint"], thumb) in [
        (c.field, c.before, c.after) for c in swap_plan
    ]


def test_swap_puts_the_new_certificate_on_production(server: Any, conn: Any, backend: Any) -> None:

    thumb = install_new_certificate(server)
    backend.bind("renew.www1.example.jp", thumb)
    server.host.sites[2].state = 2  # someone started the work site; it holds :443: now
    server.host.sites[1].state = 4
    server.host.save_state()
    result = backend.swap(production_site="www1.example.jp", new_thumbprint=thumb)
    assert not result.already_done
    assert result.old_thumbprint == server.host.extra["current_thumbprint"]
    assert result.old_secure_bindings == (":443:",)
    assert [s.path for s in result.stopped_sites] == ["W3SVC/2"]
    assert result.production.started and result.production.cert_thumbprint == thumb
    prod, work = site_state(server, 1), site_state(server, 2)
    assert (prod["state"], prod["ssl_cert_hash"], prod["ssl_store_name"]) == (2, thumb, "MY")
    assert work["state"] == 4
    again = backend.swap(production_site="www1.example.jp", new_thumbprint=thumb)
    assert again.already_done and again.changes == ()
    assert backend.plan_swap(production_site="W3SVC/1", new_thumbprint=thumb) == []


def test_swap_rolls_itself_back_when_production_will_not_start(server: Any, conn: Any, backend: Any) -> None:
    from opslib.errors import VerificationFailed

    thumb = install_new_certificate(server)
    old = server.host.extra["current_thumbprint"]
    server.host.extra["fail_start_thumbprints"] = [thumb]  # the site starts only with the old certificate
    with pytest.raises(
        VerificationFailed,
        match=rf"did not come back with the new certificate {thumb}.*rolled back to the previous certificate {old} and the site is started again",
    ):
        backend.swap(production_site="www1.example.jp", new_thumbprint=thumb)
    prod = site_state(server, 1)
    assert (prod["state"], prod["ssl_cert_hash"]) == (2, old)


def test_swap_says_when_the_site_stays_down(server: Any, conn: Any, backend: Any) -> None:
    from opslib.errors import VerificationFailed

    thumb = install_new_certificate(server)
    server.host.sites[1].fail_start = True
    server.host.save_state()
    with pytest.raises(
        VerificationFailed,
        match="rolled back to the previous certificate .* but the site did not start again .*DOWN",
    ):
        backend.swap(production_site="www1.example.jp", new_thumbprint=thumb)
    prod = site_state(server, 1)
    assert (prod["state"], prod["ssl_cert_hash"]) == (4, server.host.extra["current_thumbprint"])


def test_a_swap_command_refused_before_it_ran_changes_nothing_and_says_so(
    server: Any, conn: Any, backend: Any
) -> None:
    from opslib.errors import VerificationFailed

    thumb = install_new_certificate(server)
    old = server.host.extra["current_thumbprint"]
    server.set_faults(["before:cscript#2:fail"])  # the swap verb answers "access denied", no JSON
    with pytest.raises(
        VerificationFailed,
        match=rf"printed no JSON: .* exited with 5 .*; the swap did not start on the server .*still serves {old}.*"
        r"nothing was changed",
    ):
        backend.swap(production_site="www1.example.jp", new_thumbprint=thumb)
    assert (site_state(server, 1)["state"], site_state(server, 1)["ssl_cert_hash"]) == (2, old)


@pytest.mark.parametrize("when", ["after", "before"])
def test_a_swap_whose_connection_drops_completes_on_the_server(
    server: Any, conn: Any, backend: Any, when: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The swap verb is one server-side transaction: a connection dropped after the command ran (the
    client never learns) still ends with the new certificate served, read back from the journal; one
    dropped before the command started changes nothing and says so."""
    from opslib.errors import VerificationFailed

    thumb = install_new_certificate(server)
    old = server.host.extra["current_thumbprint"]
    backend.sites()  # cscript #1
    server.set_faults(
        [f"{when}:cscript#2:drop"]
    )  # counted from here: #1 is swap's own list, #2 the swap verb
    if when == "after":
        result = backend.swap(production_site="www1.example.jp", new_thumbprint=thumb)
        assert result.production.started and result.production.cert_thumbprint == thumb
        journal = backend.swap_journal("W3SVC/1")
        assert journal is not None and (journal["phase"], journal["before"]["cert_hash"]) == ("done", old)
        assert (site_state(server, 1)["state"], site_state(server, 1)["ssl_cert_hash"]) == (2, thumb)
    else:
        from opslib.iis import iis6_swap

        # The journal never says this swap ended: poll it every 0.05 s for 1 s, not every 1 s for the whole
        # command deadline (the emulated helper writes its journal before it answers).
        monkeypatch.setattr(iis6_swap, "SWAP_COMMAND_TIMEOUT_S", 1)
        monkeypatch.setattr(iis6_swap, "_JOURNAL_POLL_S", 0.05)
        with pytest.raises(
            VerificationFailed,
            match=rf"connection failed or dropped.*; the swap did not start on the server .*still serves {old}.*nothing was changed",
        ):
            backend.swap(production_site="www1.example.jp", new_thumbprint=thumb)
        assert (site_state(server, 1)["state"], site_state(server, 1)["ssl_cert_hash"]) == (2, old)


def test_the_swap_journal_tells_a_later_reader_what_happened(server: Any, conn: Any, backend: Any) -> None:
    from opslib.errors import VerificationFailed

    thumb = install_new_certificate(server)
    old = server.host.extra["current_thumbprint"]
    assert backend.swap_journal("W3SVC/1") is None
    server.host.extra["fail_start_thumbprints"] = [thumb]
    with pytest.raises(VerificationFailed, match="rolled back to the previous certificate"):
        backend.swap(production_site="www1.example.jp", new_thumbprint=thumb)
    journal = backend.swap_journal("www1.example.jp")
    assert journal is not None
    assert (journal["ok"], journal["restored"], journal["phase"], journal["new_hash"]) == (
        False,
        True,
        "restored",
        thumb,
    )
    assert journal["site"]["cert_hash"] == old and journal["cause"]["number"] == "0x80070020"


def test_rollback_puts_the_old_certificate_back(server: Any, conn: Any, backend: Any) -> None:

    thumb = install_new_certificate(server)
    old = server.host.extra["current_thumbprint"]
    backend.swap(production_site="www1.example.jp", new_thumbprint=thumb)
    assert site_state(server, 1)["ssl_cert_hash"] == thumb
    result = backend.rollback(
        production_site="www1.example.jp", old_thumbprint=old, secure_bindings=[":443:"]
    )
    assert result.production.started and result.production.cert_thumbprint == old
    assert (site_state(server, 1)["state"], site_state(server, 1)["ssl_cert_hash"]) == (2, old)
    assert backend.rollback(
        production_site="www1.example.jp", old_thumbprint=old, secure_bindings=":443:"
    ).already_done


def test_a_rollback_that_fails_is_undone_by_the_same_transaction(
    server: Any, conn: Any, backend: Any
) -> None:
    """IIS will not start the site with the old certificate: the helper's swap transaction puts back the
    certificate production served before the rollback and starts it; the message says so plainly."""
    from opslib.errors import VerificationFailed

    thumb = install_new_certificate(server)
    old = server.host.extra["current_thumbprint"]
    backend.swap(production_site="www1.example.jp", new_thumbprint=thumb)
    server.host.extra["fail_start_thumbprints"] = [old]
    with pytest.raises(
        VerificationFailed,
        match=rf"the rollback of W3SVC/1 .* to the previous certificate {old} failed \(ADSI 0x80070020: .*\); "
        rf"the rollback was undone: W3SVC/1 .* serves {thumb} again, started \(read back\)",
    ):
        backend.rollback(production_site="www1.example.jp", old_thumbprint=old, secure_bindings=[":443:"])
    assert (site_state(server, 1)["state"], site_state(server, 1)["ssl_cert_hash"]) == (2, thumb)
    journal = backend.swap_journal("W3SVC/1")  # the rollback is the swap transaction, with its journal
    assert journal is not None and (journal["new_hash"], journal["phase"]) == (old, "restored")
    # Neither certificate starts: not undone, and the message says what the site reads back.
    server.host.extra["fail_start_thumbprints"] = [old, thumb]
    with pytest.raises(
        VerificationFailed, match=rf"putting back {thumb} .* failed too .* reads back {thumb}, stopped"
    ):
        backend.rollback(production_site="www1.example.jp", old_thumbprint=old, secure_bindings=[":443:"])
    server.host.extra["fail_start_thumbprints"] = []
    back = backend.rollback(production_site="www1.example.jp", old_thumbprint=old, secure_bindings=[":443:"])
    assert back.production.started and back.production.cert_thumbprint == old


@pytest.mark.parametrize("old_starts", [True, False], ids=["old-starts", "old-fails"])
def test_a_rollback_whose_connection_drops_ends_on_the_server(
    server: Any, conn: Any, backend: Any, old_starts: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rollback is the swap transaction: a connection dropped after the command ran still ends on the
    server — with the old certificate, or undone (the new one again, started) — read back from the journal."""
    from opslib.errors import VerificationFailed
    from opslib.iis import iis6_swap

    monkeypatch.setattr(iis6_swap, "_JOURNAL_POLL_S", 0.05)
    waits: list[str] = []
    real_wait = iis6_swap.wait_for_journal

    def wait(*args: Any, **kwargs: Any) -> Any:
        waits.append(kwargs["new"])
        return real_wait(*args, **kwargs)

    monkeypatch.setattr(iis6_swap, "wait_for_journal", wait)
    thumb = install_new_certificate(server)
    old = server.host.extra["current_thumbprint"]
    backend.swap(production_site="www1.example.jp", new_thumbprint=thumb)
    assert waits == []
    server.host.extra["fail_start_thumbprints"] = [] if old_starts else [old]
    server.set_faults(["after:cscript#2:drop"])  # #1 is the rollback's own list, #2 the swap verb
    if old_starts:
        back = backend.rollback(
            production_site="www1.example.jp", old_thumbprint=old, secure_bindings=[":443:"]
        )
        assert back.production.started and back.production.cert_thumbprint == old
    else:
        with pytest.raises(
            VerificationFailed, match=rf"the rollback was undone: .* serves {thumb} again, started"
        ):
            backend.rollback(production_site="www1.example.jp", old_thumbprint=old, secure_bindings=[":443:"])
    server.set_faults([])
    server.host.extra["fail_start_thumbprints"] = []
    assert waits == [old]  # the answer was read back from the server's journal
    expected = old if old_starts else thumb
    assert (site_state(server, 1)["state"], site_state(server, 1)["ssl_cert_hash"]) == (2, expected)


def test_start_and_stop_site(server: Any, conn: Any, backend: Any) -> None:
    from opslib.errors import VerificationFailed

    assert backend.stop("www1.example.jp").state_name == "stopped"
    assert site_state(server, 1)["state"] == 4
    assert backend.start("W3SVC/1").started
    backend.bind("W3SVC/2", server.host.extra["current_thumbprint"])
    with pytest.raises(
        VerificationFailed,
        match=r'W3SVC/2 "renew.www1.example.jp" did not start: ServerState is stopped.*event 1007',
    ):
        backend.start("renew.www1.example.jp")


def test_served_chain_follows_the_swap_and_the_g5_root(server: Any, conn: Any, backend: Any) -> None:
    from opslib import tls
    from opslib.rehearsal.programs import stores

    endpoint = server.host.extra["verify_endpoint"]
    hostname, port = tls.parse_endpoint(endpoint)
    before = tls.fetch_chain(hostname, port, servername="www1.example.jp")
    assert before.thumbprints[0] == server.host.extra["current_thumbprint"]
    thumb = install_new_certificate(server)
    backend.swap(production_site="www1.example.jp", new_thumbprint=thumb)
    after = tls.fetch_chain(hostname, port, servername=None)
    assert after.thumbprints[0] == thumb and len(after.thumbprints) == 2
    g5 = server.host.extra["forbidden_roots"][0]
    stores.set_eku(server.host, "ROOT", g5, [])
    backend.sites()  # any command: the host applies its changes after each one
    crossed = tls.fetch_chain(hostname, port, servername="www1.example.jp")
    assert len(crossed.thumbprints) == 3 and crossed.thumbprints != after.thumbprints


# --- read-back checks (notebooks 01, 02 and 05 call these) ----------------------------------------------

NEW = HASH_B


def _after_swap(**changes: dict[str, Any]) -> list[Any]:
    """Sites as read back after a swap: production started with NEW, the work site stopped.
    ``s1={...}`` changes fields of site 1."""
    from dataclasses import replace

    from opslib import iis

    found = {
        1: iis.Site(1, "www1.example.jp", 2, "started", (":80:www1",), (":443:",), NEW, "MY"),
        2: iis.Site(2, "renew.www1.example.jp", 4, "stopped", (), (":443:",), NEW, "MY"),
        3: iis.Site(3, "intranet", 2, "started", (":8080:",), (), "", ""),
    }
    for key, fields in changes.items():
        found[int(key[1:])] = replace(found[int(key[1:])], **fields)
    return list(found.values())


def test_check_swap_passes_and_returns_one_row_per_check() -> None:
    from opslib import iis

    rows = iis.check_swap(
        _after_swap(),
        production_site="www1.example.jp",
        work_site="W3SVC/2",
        new_thumbprint=NEW.lower(),
        host="web01",
    )
    assert [(r["check"], r["ok"]) for r in rows] == [
        ("production site started", True),
        ("production certificate", True),
        ("work site stopped", True),
        ("no other started site on the secure binding", True),
    ]
    assert rows[1]["actual"] == NEW


def test_check_swap_names_every_failure_and_the_rollback_file() -> None:
    from opslib import iis
    from opslib.errors import VerificationFailed

    sites_after = _after_swap(
        s1={"state": 4, "state_name": "stopped", "cert_thumbprint": HASH_A},
        s2={"state": 2, "state_name": "started"},
    )
    with pytest.raises(
        VerificationFailed,
        match=(
            r'^web01: check failed: W3SVC/1 "www1.example.jp" is stopped, not started; '
            rf'W3SVC/1 "www1.example.jp" serves {HASH_A}, not {NEW}; '
            r'W3SVC/2 "renew.www1.example.jp" is started, not stopped; '
            r'other started sites share the secure binding :443:: W3SVC/2 "renew.www1.example.jp" '
            r"— look at the sites in IIS Manager; to undo: opslib run /ev/run1/rollback.yaml$"
        ),
    ):
        iis.check_swap(
            sites_after,
            production_site="W3SVC/1",
            work_site="W3SVC/2",
            new_thumbprint=NEW,
            host="web01",
            run_dir="/ev/run1/",
        )
    # A dry run changed nothing: the same failures are only reported.
    rows = iis.check_swap(
        sites_after,
        production_site="W3SVC/1",
        work_site="W3SVC/2",
        new_thumbprint=NEW,
        host="web01",
        dry_run=True,
    )
    assert [r["ok"] for r in rows] == [False, False, False, False]


def test_check_swap_for_a_rollback_has_its_own_advice() -> None:
    from opslib import iis
    from opslib.errors import ParameterError, SiteNotFound, VerificationFailed

    with pytest.raises(
        VerificationFailed, match=rf"serves {NEW}, not {HASH_A} — put the old certificate back"
    ):
        iis.check_swap(
            _after_swap(),
            production_site="www1.example.jp",
            new_thumbprint=HASH_A,
            host="web01",
            hint="put the old certificate back in IIS Manager",
        )
    with pytest.raises(ParameterError, match="new_thumbprint: '' is not a SHA-1 thumbprint"):
        iis.check_swap(_after_swap(), production_site="W3SVC/1", new_thumbprint="", host="web01")
    with pytest.raises(SiteNotFound, match="web01: no IIS site is named 'www9'"):
        iis.check_swap(_after_swap(), production_site="www9", new_thumbprint=NEW, host="web01")


def test_check_bound_reads_back_the_install_and_the_binding() -> None:
    from opslib import iis
    from opslib.errors import VerificationFailed
    from opslib.ops.install import InstallResult

    installed = InstallResult(NEW, HASH_A, "key-1", (), (), False, "W3SVC/2", ())
    work = _after_swap()[1]
    rows = iis.check_bound(work, thumbprint=NEW, installed=installed, host="web01")
    assert [r["ok"] for r in rows] == [True, True]
    unbound = iis.Site(2, "renew.www1.example.jp", 4, "stopped", (), (), "", "")
    with pytest.raises(
        VerificationFailed,
        match=rf'after the install: in MY with its key True, W3SVC/2 "renew.www1.example.jp" bound to \(none\) '
        rf"\(expected {NEW}\) — look at the MY store",
    ):
        iis.check_bound(unbound, thumbprint=NEW, installed=installed, host="web01")
    rows = iis.check_bound(unbound, thumbprint=NEW, installed=None, host="web01", dry_run=True)
    assert [(r["actual"], r["ok"]) for r in rows] == [("(none)", False), ("(none)", False)]


# --- IIS 7+: refused before anything changes -------------------------------------------------------------


def _capabilities(major: int, minor: int = 0) -> Any:
    from opslib.server import Capabilities

    return Capabilities("web01", "6.1.7601", major, minor, 437, True, True, True, (), True, True, True)


def test_the_server_probes_once_and_holds_its_iis6_backend(server: Any, conn: Any) -> None:
    from opslib.iis import IIS6Backend
    from opslib.server import Server

    with Server(conn) as srv:
        assert isinstance(srv.iis, IIS6Backend) and srv.iis is srv.iis
        assert srv.capabilities is srv.capabilities and srv.capabilities.iis_major == 6
        srv.iis.sites()
        srv.iis.sites()
        commands = [str(h["command"]) for h in server.host.history]
        assert len([c for c in commands if c.startswith("ver")]) == 1  # probed once
        assert len([c for c in commands if "-decode" in c and "iis6.js" in c]) == 1  # helper uploaded once
        assert srv.probe(refresh=True).iis_major == 6
        assert len([c for c in (str(h["command"]) for h in server.host.history) if c.startswith("ver")]) == 2


def test_the_backend_checks_read_the_sites_back(server: Any, backend: Any) -> None:
    from opslib.errors import VerificationFailed
    from opslib.ops.install import InstallResult

    thumb = install_new_certificate(server)
    backend.bind("W3SVC/2", thumb)
    installed = InstallResult(thumb, "", "key-1", (), (), False, "W3SVC/2", ())
    rows = backend.check_bound("renew.www1.example.jp", thumbprint=thumb, installed=installed)
    assert [r["ok"] for r in rows] == [True, True]
    with pytest.raises(VerificationFailed, match=rf'W3SVC/1 "www1.example.jp" serves .*, not {thumb}'):
        backend.check_swap(production_site="www1.example.jp", work_site="W3SVC/2", new_thumbprint=thumb)
    backend.swap(production_site="www1.example.jp", new_thumbprint=thumb)
    rows = backend.check_swap(production_site="www1.example.jp", work_site="W3SVC/2", new_thumbprint=thumb)
    assert all(r["ok"] for r in rows)


def test_ssl_binding_is_data_in_iis_text_form() -> None:
    from opslib.errors import ParameterError
    from opslib.iis import Site, SslBinding

    assert SslBinding.parse(":443:") == SslBinding("", 443, "", "", "MY")
    sni = SslBinding.parse("*:8443:www1.example.jp", thumbprint=HASH_A)
    assert (sni.ip, sni.port, sni.host_header, sni.thumbprint, sni.text) == (
        "",
        8443,
        "www1.example.jp",
        HASH_A,
        ":8443:www1.example.jp",
    )
    assert SslBinding.parse("192.0.2.1:443").text == "192.0.2.1:443:"
    site = Site(1, "www1.example.jp", 2, "started", (), (":443:",), HASH_A, "MY")
    assert site.ssl_bindings == (SslBinding("", 443, "", HASH_A, "MY"),)
    with pytest.raises(ParameterError, match="expected a secure binding such as :443:"):
        SslBinding.parse("443")
    with pytest.raises(ParameterError, match="expected a secure binding"):
        SslBinding.parse(":70000:")


def test_the_iis6_backend_refuses_an_sni_binding_before_anything_changes(server: Any, backend: Any) -> None:
    from opslib.errors import CapabilityMissing

    thumb = install_new_certificate(server)
    before = Path(server.host.state_file).read_bytes()
    with pytest.raises(
        CapabilityMissing, match=r"^web01: the server lacks an SSL host header \(www1.example.jp\)"
    ):
        backend.bind("W3SVC/2", thumb, host_header="www1.example.jp")
    assert Path(server.host.state_file).read_bytes() == before
