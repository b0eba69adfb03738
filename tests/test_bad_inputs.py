"""The bad-input corpus (``tests/bad_inputs/``, one README line per case) through the real command line.

Every case runs ``opslib run PARAMS --yes --evidence-root …`` against one shared rehearsal host
(default scenario: the G5 root is enabled, so step 0 *would* change the server) and must end with
the README's exit code, a message naming the key path or file and the problem, no traceback, and
nothing changed: the host's state file byte-identical (reading may leave nothing behind, not even
the remote temp folder) and no mutating command in ``host.history`` or the run's transcript.

Most cases are refused by the runner before a run folder or a kernel exists; the server-side ones
(sites, the pending request) are refused by step 0's read-only checks, before it disables a root.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets as random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from opslib import cli, preflight, rehearsal
from opslib.rehearsal.host import Site
from opslib.rehearsal.pki import Pki, make_pki

HERE = Path(__file__).resolve().parent / "bad_inputs"
WINRM_ENV, PFX_ENV = "OPSLIB_BAD_WINRM", "OPSLIB_BAD_PFX"
# Programs and verbs that change a Windows host (docs/windows-behaviour.md): none may reach it.
MUTATING = re.compile(
    r"certreq(\.exe)?\"?\s+.*-accept|certutil(\.exe)?\"?\s+.*-(addstore|repairstore|exportpfx|delstore|importpfx)"
    r"|\breg(\.exe)?\"?\s+(add|import|delete|restore)\b|iis6\.js\"?\s+(set-cert|clear-cert|start|stop|swap)\b"
    r"|\bnetsh(\.exe)?\"?\s+http\s+(add|update|delete)\b|appcmd(\.exe)?\"?\s+(start|stop|set|add|delete)\b",
    re.IGNORECASE,
)


def mutating(command: str) -> bool:
    """A command that changes the host (``VERB -?`` is the probe's usage check, not a change)."""
    return bool(MUTATING.search(command)) and not command.rstrip().endswith("-?")


@dataclass(frozen=True)
class Case:
    exit_code: int
    message: str  # regex over stderr
    cert: str | Callable[[Pki], bytes] | None = None  # a file in certificates/, or made at test time
    params: str | None = None  # an overlay in parameters/
    on_server: bool = False  # refused by step 0's read-only checks (a kernel runs)


def _pem(*names: str) -> Callable[[Pki], bytes]:
    return lambda pki: pki.pem(*(getattr(pki, n) for n in names))


def _leaf_with_another_key(pki: Pki) -> x509.Certificate:
    """A valid certificate for the right names from the right CA, but for a key this server never requested."""
    return (
        x509.CertificateBuilder()
        .subject_name(pki.new_leaf.subject)
        .issuer_name(pki.intermediate.subject)
        .public_key(pki.broken_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(pki.now_utc - timedelta(days=1))
        .not_valid_after(pki.now_utc + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in pki.hostnames]), critical=False)
        .sign(pki.intermediate_key, hashes.SHA256())
    )


# name → case. The README lists exactly these names (test_the_readme_lists_every_case).
CASES: dict[str, Case] = {
    # --- certificate files (exit 1, the file named; refused before anything starts) ---
    "key-matches-no-request": Case(
        1,
        r"step 00_precheck_root_store failed.*this server holds no pending request for the key of [0-9A-F]{40}",
        cert=lambda pki: pki.pem(_leaf_with_another_key(pki), pki.intermediate),
        on_server=True,
    ),
    "current-certificate-again": Case(
        1,
        r"step 00_precheck_root_store failed.*current-certificate-again\.pem holds [0-9A-F]{40}, the certificate "
        r"W3SVC/1 .*already serves — not a renewal",
        cert=_pem("current_leaf", "intermediate"),
        on_server=True,
    ),
    "expired": Case(1, r"expired\.pem: www1\.example\.jp expired on ", cert=_pem("expired", "intermediate")),
    "not-yet-valid": Case(
        1,
        r"not-yet-valid\.pem: www1\.example\.jp is not valid before ",
        cert=_pem("not_yet_valid", "intermediate"),
    ),
    "wrong-hostnames": Case(
        1,
        r"wrong-hostnames\.pem: other\.example\.com does not cover www1\.example\.jp",
        cert=_pem("wrong_host", "intermediate"),
    ),
    "sha1-signed": Case(
        1,
        r"sha1-signed\.pem: www1\.example\.jp is signed with SHA-1",
        cert=_pem("sha1_signed", "intermediate"),
    ),
    "weak-key": Case(1, r"weak-key\.pem: .*RSA 1024-bit key", cert=_pem("weak_key", "intermediate")),
    "self-signed": Case(1, r"self-signed\.pem: .*is self-signed", cert=_pem("self_signed_leaf")),
    "chain-missing-intermediate": Case(
        1,
        r"chain-missing-intermediate\.pem: the CA certificate that issued it \(.*Rehearsal Secure Server CA.*\) is not in the file",
        cert=_pem("new_leaf"),
    ),
    "pkcs7-without-leaf": Case(
        1,
        r"pkcs7-without-leaf\.p7b: holds no server certificate \(only CA certificates\)",
        cert=lambda pki: pki.pkcs7_bundle(pki.intermediate, pki.cross, encoding="DER"),
    ),
    "several-leaves": Case(
        1,
        r"several-leaves\.pem: holds 2 server certificates: .*the kit installs exactly one",
        cert=_pem("new_leaf", "wrong_host", "intermediate"),
    ),
    "der-named-pem": Case(
        1, r"der-named-pem\.pem: www1\.example\.jp expired on ", cert=lambda pki: pki.der(pki.expired)
    ),
    "private-key-inside": Case(
        1,
        r"private-key-inside\.pem: holds a private key",
        cert=lambda pki: pki.pem(pki.new_leaf, pki.intermediate) + pki.key_pem(pki.new_key),
    ),
    "pfx-as-certificate": Case(
        1,
        r"pfx-as-certificate\.pfx: PKCS#12 \(PFX\) file is password-protected — certificate_file must be what the CA sent",
        cert=lambda pki: pki.pkcs12_bundle(b"Pfx-Pa55word-x"),
    ),
    "utf16-without-pem": Case(
        1,
        r"utf16-mail-without-certificate\.txt: UTF-16 text without a PEM block",
        cert="utf16-mail-without-certificate.txt",
    ),
    "truncated-pem": Case(
        1,
        r"truncated\.pem: the PEM block 'CERTIFICATE' starting on line 1 has no END line",
        cert="truncated.pem",
    ),
    "truncated-der": Case(1, r"truncated-der\.cer: damaged or truncated DER data", cert="truncated-der.cer"),
    "binary-garbage": Case(1, r"binary-garbage\.cer: no certificate found", cert="binary-garbage.cer"),
    "empty-file": Case(1, r"empty\.pem: the file is empty", cert="empty.pem"),
    "login-page": Case(1, r"login-page-saved-as\.p7b: no certificate found", cert="login-page-saved-as.p7b"),
    # --- parameter files (exit 2, the key path named; nothing contacted) ---
    "unknown-key": Case(
        2, r"web01\.yaml: ssl_prot: unknown key — did you mean ssl_port\?", params="unknown-key"
    ),
    "unknown-nested-key": Case(
        2, r"winrm\.usrname: unknown key — did you mean winrm\.username\?", params="unknown-nested-key"
    ),
    "wrong-type": Case(2, r"ssl_port: expected an integer, got a string \('443'\)", params="wrong-type"),
    "wrong-type-list": Case(
        2, r"expected_hostnames: expected a list of strings, got a string", params="wrong-type-list"
    ),
    "literal-password": Case(2, r"winrm\.password: is a literal value", params="literal-password"),
    "url-with-credentials": Case(
        2, r"winrm\.url: must not hold a user name or password", params="url-with-credentials"
    ),
    "basic-over-http": Case(
        2,
        r"winrm\.transport: Basic authentication over plain HTTP .*winrm\.allow_unencrypted_basic",
        params="basic-over-http",
    ),
    "backup-not-writable": Case(
        2, r"backup\.directory: .*a-file is not a writable folder", params="backup-not-writable"
    ),
    "backup-inside-evidence": Case(
        2, r"backup\.directory: .* is inside the evidence root", params="backup-inside-evidence"
    ),
    "pfx-password-control": Case(
        2,
        r"backup\.pfx_password: .*cannot be used: .*control character .* every character must be printable",
        params="pfx-password-control",
    ),
    "pfx-password-short": Case(
        2, r"backup\.pfx_password: .*cannot be used: .*at least 8 characters", params="pfx-password-short"
    ),
    "host-label-traversal": Case(2, r"host: expected a host name of letters", params="host-label-traversal"),
    "certificate-file-missing": Case(
        2,
        r"certificate_file: file not found: \.\./nope/\.\./\.\./missing-2026cert\.txt",
        params="certificate-file-missing",
    ),
    "certificate-file-traversal": Case(
        1, r"etc/passwd: no certificate found", params="certificate-file-traversal"
    ),
    "very-long-site-name": Case(
        2, r"production_site: is 5000 characters long; at most 1024", params="very-long-site-name"
    ),
    "very-long-hostname": Case(
        2, r"expected_hostnames: an item is 5011 characters long", params="very-long-hostname"
    ),
    "invalid-yaml": Case(2, r"web01\.yaml: \(file\): not valid YAML at line \d+", params="invalid-yaml"),
    # --- sites, checked on the server by step 0 before anything changes (exit 1) ---
    "site-does-not-exist": Case(
        1,
        r"no IIS site is named 'www9\.example\.jp'; the sites are: ",
        params="site-does-not-exist",
        on_server=True,
    ),
    "site-matches-two": Case(
        1, r"2 IIS sites are named 'www1\.example\.jp'", params="site-matches-two", on_server=True
    ),
    "same-site-twice": Case(
        1,
        r"production_site 'W3SVC/2' and work_site 'renew\.www1\.example\.jp' are the same site",
        params="same-site-twice",
        on_server=True,
    ),
    "site-cmd-metacharacters": Case(
        1,
        r"no IIS site is named 'www1\.example\.jp & shutdown /s'",
        params="site-cmd-metacharacters",
        on_server=True,
    ),
    "site-percent-variable": Case(
        1, r"no IIS site is named '%COMPUTERNAME%'", params="site-percent-variable", on_server=True
    ),
    "site-non-ascii": Case(1, r"no IIS site is named '本番サイト'", params="site-non-ascii", on_server=True),
}


@dataclass
class Shared:
    reh: rehearsal.Rehearsal
    state_file: Path
    pki: Pki
    secrets: list[str]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    base = tmp_path_factory.mktemp("bad-inputs-host")
    values = {
        WINRM_ENV: f"W{random.token_urlsafe(15)}",
        PFX_ENV: f"P{random.token_urlsafe(15)}",
        "OPSLIB_BAD_PFX_CONTROL": f"P{random.token_urlsafe(9)}\tx",
        "OPSLIB_BAD_PFX_SHORT": "Pw3x",
    }
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    state = base / "state.json"
    reh = rehearsal.start(
        scenario="default", password=values[WINRM_ENV], workdir=base / "host", state_file=state
    )
    try:
        clock = datetime.fromisoformat(str(reh.host.extra["now_utc"]))
        pki = make_pki(now_utc=clock, hostnames=tuple(reh.host.extra["hostnames"]))
        yield Shared(reh, state, pki, [values[WINRM_ENV], values[PFX_ENV], values["OPSLIB_BAD_PFX_CONTROL"]])
    finally:
        reh.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _merge(base: dict[str, Any], overlay: dict[str, Any]) -> None:
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _write_case(name: str, case: Case, shared: Shared, folder: Path) -> tuple[Path, Path]:
    """The case's parameters file (and certificate file); returns (parameters file, evidence root)."""
    evidence_root = folder / "evidence"
    cert_file = Path(str(shared.reh.host.extra["certificate_file"]))
    if isinstance(case.cert, str):
        cert_file = HERE / "certificates" / case.cert
    elif case.cert is not None:
        data = case.cert(shared.pki)
        suffix = {"pkcs7-without-leaf": ".p7b", "pfx-as-certificate": ".pfx"}.get(name, ".pem")
        cert_file = folder / f"{name}{suffix}"
        cert_file.write_bytes(data)
    data = shared.reh.params(
        password_env=WINRM_ENV,
        pfx_password_env=PFX_ENV,
        backup_dir=str(folder / "backups"),
        certificate_file="",
    )
    data["certificate_file"] = (
        os.path.relpath(cert_file, folder / "params") if isinstance(case.cert, str) else str(cert_file)
    )
    raw = ""
    if case.params:
        text = (HERE / "parameters" / f"{case.params}.yaml").read_text(encoding="utf-8")
        text = text.replace("{tmp}", str(folder)).replace("{evidence}", str(evidence_root))
        text = text.replace("{long}", "w" * 5000)
        if text.startswith("{raw}"):
            raw = text.removeprefix("{raw}")
        else:
            _merge(data, yaml.safe_load(text))
    (folder / "a-file").write_text("not a folder\n", encoding="utf-8")
    path = folder / "params" / "web01.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True) + raw, encoding="utf-8")
    return path, evidence_root


@contextlib.contextmanager
def _extra_site(host: Any, wanted: bool) -> Iterator[None]:
    """For ``site-matches-two``: a second site with the production site's ServerComment."""
    if not wanted:
        yield
        return
    host.sites[3] = Site(
        id=3, comment="www1.example.jp", state=0, server_bindings=[":8080:"], secure_bindings=[]
    )
    host.save_state()
    yield
    del host.sites[3]
    host.save_state()


@pytest.mark.parametrize("name", sorted(CASES, key=lambda n: (CASES[n].on_server, n)))
def test_bad_input_is_refused_and_nothing_changes(
    name: str, shared: Shared, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    case = CASES[name]
    host = shared.reh.host
    with _extra_site(host, name == "site-matches-two"):
        params_file, evidence_root = _write_case(name, case, shared, tmp_path)
        before, seen = shared.state_file.read_bytes(), len(host.history)
        code = cli.main(["run", str(params_file), "--yes", "--evidence-root", str(evidence_root)])
        out, err = capsys.readouterr()
        after, commands = shared.state_file.read_bytes(), [h["command"] for h in host.history[seen:]]
    assert (code, bool(re.search(case.message, err))) == (case.exit_code, True), err
    assert "Traceback" not in err + out
    assert err.count("opslib: error: ") == 1
    for secret in shared.secrets:
        assert secret not in err + out
    assert after == before, "the rehearsal host's state changed"
    assert not [c for c in commands if mutating(c)], "a mutating command reached the host"
    runs = (
        sorted(p for p in evidence_root.glob("*") if (p / "run.json").is_file())
        if evidence_root.exists()
        else []
    )
    if not case.on_server:
        assert commands == [] and runs == [], "refused before anything was contacted or recorded"
        return
    # Refused by step 0's read-only checks: the run is recorded as failed, its transcript reads only.
    (run_dir,) = runs
    manifest = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    assert (manifest["status"], manifest["failed_step"]) == ("failed", "00_precheck_root_store")
    lines = (run_dir / "transcript.jsonl").read_text(encoding="utf-8").splitlines()
    argvs = [" ".join(json.loads(line).get("argv") or []) for line in lines if line.strip()]
    assert argvs and not [a for a in argvs if mutating(a)]
    assert commands and not any("opslib-" in d for d in json.loads(after)["dirs"]), "temp folder left"


def test_the_readme_lists_every_case_and_every_file_is_used() -> None:
    text = (HERE / "README.md").read_text(encoding="utf-8")
    listed = re.findall(r"^\* `([a-z0-9-]+)` — .+ — exit (\d)", text, flags=re.M)
    assert sorted(n for n, _ in listed) == sorted(CASES)
    assert {n: int(c) for n, c in listed} == {n: c.exit_code for n, c in CASES.items()}
    assert len(CASES) >= 30
    used_files = {c.cert for c in CASES.values() if isinstance(c.cert, str)}
    assert used_files == {p.name for p in (HERE / "certificates").iterdir()}
    used_params = {c.params for c in CASES.values() if c.params}
    assert used_params == {p.stem for p in (HERE / "parameters").glob("*.yaml")}


def test_what_the_preflight_accepts(shared: Shared, tmp_path: Path) -> None:
    """Not bad inputs: formats are read by content (a PKCS#7 in DER named .pem, the mail, UTF-16 PEM)."""
    pki = shared.pki
    good = {
        "p7b-der-named.pem": pki.pkcs7_bundle(encoding="DER"),
        "mail.txt": Path(str(shared.reh.host.extra["certificate_file"])).read_bytes(),
        "utf16.pem": b"\xff\xfe" + pki.pem(pki.new_leaf, pki.intermediate).decode().encode("utf-16-le"),
    }
    for file_name, data in good.items():
        path = tmp_path / file_name
        path.write_bytes(data)
        bundle = preflight.check_certificate_file(path, source=file_name, hostnames=["www1.example.jp"])
        assert bundle.leaf == pki.new_leaf, file_name


def test_a_wrong_pfx_password_is_named_by_inspect(
    shared: Shared, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pfx = tmp_path / "backup.pfx"
    pfx.write_bytes(shared.pki.pkcs12_bundle(b"Right-Pa55word"))
    monkeypatch.setenv("OPSLIB_BAD_INSPECT_PW", "Wrong-Pa55word")
    code = cli.main(["inspect", str(pfx), "--password-env", "OPSLIB_BAD_INSPECT_PW"])
    err = capsys.readouterr().err
    assert code == 1
    assert re.search(
        r"backup\.pfx: could not open the PKCS#12 \(PFX\) file: wrong password or damaged file", err
    )
    assert "Wrong-Pa55word" not in err and "Traceback" not in err
