"""`opslib inspect` as a user runs it: exit codes, the one-line errors, the text and JSON reports,
and the inspect_certificate notebook under papermill."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from opslib import certs
from opslib.cli import main
from opslib.rehearsal.pki import Pki, make_pki

ROOT = Path(__file__).parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki(now_utc=NOW)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["inspect", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_inspect_japanese_mail_finds_the_certificate(
    tmp_path: Path, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    mail = tmp_path / "2026cert.txt"
    mail.write_bytes(pki.notification_mail(charset="iso-2022-jp"))
    code, out, err = run(capsys, str(mail), "--hostname", "www1.example.jp")
    assert code == 0 and err == ""
    assert f"SHA-1      {certs.thumbprint(pki.new_leaf)}" in out
    assert "www1.example.jp  (leaf)" in out
    assert "INCOMPLETE: www1.example.jp → Rehearsal Secure Server CA - G4 → ?" in out
    assert "! chain_incomplete: no complete chain for www1.example.jp" in out


def test_inspect_eml_pooled_with_roots_gives_both_chains(
    tmp_path: Path, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    mail = tmp_path / "mail.eml"
    mail.write_bytes(pki.notification_mail(charset="utf-8", as_eml=True))
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(pki.pem(pki.cross, pki.old_root, pki.g5_root))
    code, out, _ = run(capsys, str(mail), str(bundle), "--json")
    assert code == 0
    report = json.loads(out)
    leaf = certs.thumbprint(pki.new_leaf)
    paths = [c["path"] for c in report["chains"] if c["leaf"] == leaf]
    assert [
        leaf,
        certs.thumbprint(pki.intermediate),
        certs.thumbprint(pki.cross),
        certs.thumbprint(pki.old_root),
    ] in paths
    roles = {c["sha1"]: c["role"] for c in report["certificates"]}
    assert roles[certs.thumbprint(pki.cross)] == "cross"
    assert report["warnings"] == []


def test_inspect_json_schema(tmp_path: Path, pki: Pki, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "current.pem"
    src.write_bytes(pki.pem(pki.current_leaf, pki.intermediate, pki.g5_root))
    code, out, _ = run(
        capsys,
        str(src),
        "--json",
        "--forbidden-root",
        pki.forbidden_thumbprints[0],
        "--hostname",
        "other.example.com",
    )
    assert code == 0
    report = json.loads(out)
    assert set(report) >= {"certificates", "chains", "warnings"}
    for c in report["certificates"]:
        assert len(c["sha1"]) == 40 and c["sha1"] == c["sha1"].upper()
        assert c["not_after_utc"].endswith("Z")
    for ch in report["chains"]:
        assert set(ch) >= {"path", "anchor", "complete"}
        assert all(len(t) == 40 for t in ch["path"])
        assert ch["anchor"] is None or len(ch["anchor"]) == 40
        assert isinstance(ch["complete"], bool)
    codes = {w["code"] for w in report["warnings"]}
    assert codes == {"expires_soon", "forbidden_root_in_chain", "hostname_mismatch"}
    for w in report["warnings"]:
        assert set(w) == {"code", "message", "certificate"}
        assert w["code"] in certs.WARNING_CODES
    doc = (ROOT / "docs" / "inspect-json.md").read_text(encoding="utf-8")
    for key in ("path", "anchor", "complete", "code", "message", "certificate", "sha1", "not_after_utc"):
        assert f"`{key}`" in doc


def test_inspect_recognises_real_g5_root_and_cross_from_catalogue(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(FIXTURES / "real_g5_root_and_cross.pem"), "--json")
    assert code == 0
    report = json.loads(out)
    by_sha1 = {c["sha1"]: c for c in report["certificates"]}
    g5 = by_sha1["4EB6D578499B1CCF5F581EAD56BE3D9B6744A5E5"]
    cross = by_sha1["32F30882622B87CF8856C63DB873DF0853B4DD27"]
    assert g5["forbidden_root"] and g5["role"] == "root"
    assert g5["known_as"] == "VeriSign Class 3 Public Primary Certification Authority - G5"
    assert (
        cross["role"] == "cross" and not cross["forbidden_root"] and cross["known_as"].startswith("VeriSign")
    )
    found = {(w["code"], w["certificate"]) for w in report["warnings"]}
    assert ("forbidden_root_in_chain", g5["sha1"]) in found
    assert ("expired", cross["sha1"]) in found


def test_inspect_pfx_with_password_env(
    tmp_path: Path, pki: Pki, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pfx = tmp_path / "backup.pfx"
    pfx.write_bytes(pki.pkcs12_bundle(b"Backup-Pa55-inspect"))
    monkeypatch.setenv("TEST_PFX_PW", "Backup-Pa55-inspect")
    code, out, _ = run(capsys, str(pfx), "--password-env", "TEST_PFX_PW")
    assert code == 0
    assert f"from {pfx}: {certs.thumbprint(pki.new_leaf)}" in out
    assert "Backup-Pa55-inspect" not in out


def test_inspect_pfx_wrong_password_exit_1(
    tmp_path: Path, pki: Pki, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pfx = tmp_path / "backup.pfx"
    pfx.write_bytes(pki.pkcs12_bundle(b"Backup-Pa55-inspect"))
    monkeypatch.setenv("TEST_PFX_PW", "not-the-password")
    code, out, err = run(capsys, str(pfx), "--password-env", "TEST_PFX_PW")
    assert code == 1 and out == ""
    assert (
        err
        == f"opslib: error: {pfx}: could not open the PKCS#12 (PFX) file: wrong password or damaged file — check the password the environment variable holds\n"
    )


def test_inspect_password_env_unset_is_usage_error(
    tmp_path: Path, pki: Pki, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_PFX_UNSET", raising=False)
    code, _, err = run(
        capsys, str(FIXTURES / "real_g5_root_and_cross.pem"), "--password-env", "TEST_PFX_UNSET"
    )
    assert code == 2 and "environment variable TEST_PFX_UNSET is not set" in err


def test_inspect_bad_forbidden_root_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, str(FIXTURES / "real_g5_root_and_cross.pem"), "--forbidden-root", "1234")
    assert code == 2 and "is not a SHA-1 thumbprint" in err


def test_inspect_no_source_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["inspect"])
    assert exc.value.code == 2


@pytest.mark.parametrize(
    ("fixture", "problem"),
    [
        ("garbage.bin", "no certificate found: neither a PEM block"),
        ("truncated.pem", "the PEM block 'CERTIFICATE' starting on line 1 has no END line (truncated?)"),
        ("empty.pem", "the file is empty"),
        ("utf16_no_pem.txt", "UTF-16 text without a PEM block"),
        ("pkcs7_no_certificates.p7b", "the PKCS#7 block holds no certificates"),
    ],
)
def test_inspect_bad_file_one_line_exit_1(
    fixture: str, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = FIXTURES / fixture
    code, out, err = run(capsys, str(path))
    assert code == 1 and out == ""
    assert err.startswith(f"opslib: error: {path}: {problem}")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_inspect_utf16_file_holding_pem_is_decoded(
    tmp_path: Path, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "unicode.txt"
    src.write_bytes(pki.pem(pki.new_leaf).decode().encode("utf-16"))
    code, out, _ = run(capsys, str(src))
    assert code == 0 and certs.thumbprint(pki.new_leaf) in out


def test_inspect_directory_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, str(tmp_path))
    assert code == 1 and err == f"opslib: error: {tmp_path}: is a directory, not a certificate file\n"


def test_inspect_missing_file_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.pem"
    code, _, err = run(capsys, str(missing))
    assert code == 1 and err.startswith(f"opslib: error: {missing}: no such file")


def test_inspect_unreachable_endpoint_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        code, _, err = run(capsys, f"127.0.0.1:{port}")
    assert code == 1 and err.startswith(f"opslib: error: 127.0.0.1:{port}: cannot connect:")


def test_inspect_csr_and_request_placeholder_key_match(
    tmp_path: Path, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    from cryptography.hazmat.primitives import serialization

    csr = tmp_path / "request.csr"
    csr.write_bytes(pki.csr().public_bytes(serialization.Encoding.PEM))
    leaf = tmp_path / "leaf.cer"
    leaf.write_bytes(pki.der(pki.new_leaf))
    placeholder = tmp_path / "request-store.cer"
    placeholder.write_bytes(pki.der(pki.request_placeholder()))
    code, out, _ = run(capsys, str(csr), str(leaf), str(placeholder), "--json")
    assert code == 0
    report = json.loads(out)
    assert report["csrs"][0]["matches"] == [
        certs.thumbprint(pki.new_leaf),
        certs.thumbprint(pki.request_placeholder()),
    ]
    by_sha1 = {c["sha1"]: c for c in report["certificates"]}
    assert by_sha1[certs.thumbprint(pki.new_leaf)]["same_key_as"] == [
        certs.thumbprint(pki.request_placeholder())
    ]


@pytest.mark.kernel
def test_notebook_inspect_certificate_runs_under_papermill(tmp_path: Path, pki: Pki) -> None:
    import nbformat
    import papermill

    src = tmp_path / "current.pem"
    src.write_bytes(pki.pem(pki.current_leaf, pki.intermediate, pki.g5_root))
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(
        str(ROOT / "notebooks" / "inspect_certificate.ipynb"),
        str(out),
        parameters={"source": str(src), "expected_hostnames": ["www1.example.jp"], "warn_days": 30},
        kernel_name="python3",
        cwd=str(tmp_path),
        progress_bar=False,
    )
    nb = nbformat.read(out, as_version=4)
    text = json.dumps([c.get("outputs", []) for c in nb.cells])
    assert certs.thumbprint(pki.current_leaf) in text
    assert "expires_soon" in text
    assert "image/png" in text  # the validity timeline


def test_notebook_committed_without_outputs_and_thin() -> None:
    nb = json.loads((ROOT / "notebooks" / "inspect_certificate.ipynb").read_text(encoding="utf-8"))
    assert nb["cells"][0]["cell_type"] == "markdown"
    assert "証明書の確認 / Inspect a certificate" in "".join(nb["cells"][0]["source"])
    params = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
            src = "".join(cell["source"])
            assert "def " not in src and "class " not in src


def test_inspect_a_ca_download_page_bundle_without_a_leaf(
    tmp_path: Path, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    # What a CA's download page offers: an intermediate (here the PKI factory's, under a G5-like root),
    # the real G5 root, its real cross certificate (expired 2021-11-07) and the real Class 3 PCA root —
    # a self-signed version-1 certificate without basicConstraints.
    data = Path(certs.__file__).parent.parent / "data"
    real = b"".join(
        (data / name).read_bytes()
        for name in (
            "verisign_class3_g5_root.pem",
            "verisign_class3_g5_cross_2021.pem",
            "verisign_class3_pca_g1_root.pem",
        )
    )
    bundle = tmp_path / "ca-download.pem"
    bundle.write_bytes(pki.pem(pki.intermediate, pki.g5_root) + real)
    code, out, _ = run(capsys, str(bundle), "--json")
    assert code == 0
    report = json.loads(out)
    by_sha1 = {c["sha1"]: c for c in report["certificates"]}
    pca = by_sha1["A1DB6393916F17E4185509400415C70240B0AE6B"]
    cross = by_sha1["32F30882622B87CF8856C63DB873DF0853B4DD27"]
    intermediate = by_sha1[certs.thumbprint(pki.intermediate)]
    assert (pca["role"], cross["role"], intermediate["role"]) == ("root", "cross", "intermediate")
    assert pca["is_ca"] and by_sha1[certs.G5_THUMBPRINT]["role"] == "root"
    # A chain is built from the intermediate (it issued none of the others), to its G5-like root.
    (chain,) = [c for c in report["chains"] if c["leaf"] == certs.thumbprint(pki.intermediate)]
    assert chain["complete"] and chain["path"][-1] == certs.thumbprint(pki.g5_root)
    # No end-entity warning for a root or CA certificate; the expired one is named apart from its root.
    end_entity = {"no_san", "self_signed_leaf", "hostname_mismatch", "hostname_cn_only", "weak_key"}
    assert not [w for w in report["warnings"] if w["code"] in end_entity], report["warnings"]
    (expired,) = [w for w in report["warnings"] if w["code"] == "expired"]
    assert expired["certificate"] == cross["sha1"]
    assert expired["message"].startswith(
        "VeriSign Class 3 Public Primary Certification Authority - G5 "
        "(cross certificate issued by Class 3 Public Primary Certification Authority) expired on 2021-11-07"
    )


def test_expected_chain_with_the_real_g5_cross_names_which_certificate(pki: Pki) -> None:
    # The real certificates (no leaf under the real G5 can be made here): the real cross certificate's own
    # path ends at the real Class 3 PCA root; the messages tell the G5 root and its cross certificate apart.
    known = {e.role: e.certificate for e in certs.KNOWN.entries}
    expected = certs.expect_chain(
        known["cross"],
        stores=[certs.Source(known["root"], "ROOT"), certs.Source(known["forbidden_root"], "AuthRoot")],
        now_utc=NOW,
    )
    # The cross certificate is the "leaf" here: its issuer, the Class 3 PCA root, is trusted and valid.
    assert expected.ok and expected.thumbprints[-1] == "A1DB6393916F17E4185509400415C70240B0AE6B"
    rows = expected.rows()
    assert rows[-1]["role"] == "root" and rows[-1]["found_in"] == "ROOT"
    assert certs.describe_certificate(known["cross"]).startswith(
        'cross certificate "VeriSign Class 3 Public Primary Certification Authority - G5" issued by '
        '"Class 3 Public Primary Certification Authority" (32F30882'
    )
    assert certs.describe_certificate(known["forbidden_root"]).startswith(
        'root "VeriSign Class 3 Public Primary Certification Authority - G5" (self-signed, 4EB6D578'
    )


@pytest.mark.kernel
def test_notebook_inspect_shows_what_the_ca_sees_in_a_csr(tmp_path: Path, pki: Pki) -> None:
    import nbformat
    import papermill

    src = tmp_path / "request.csr"
    src.write_bytes(pki.csr().public_bytes(serialization.Encoding.PEM))
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(
        str(ROOT / "notebooks" / "inspect_certificate.ipynb"),
        str(out),
        parameters={"source": str(src)},
        kernel_name="python3",
        cwd=str(tmp_path),
        progress_bar=False,
    )
    text = json.dumps([c.get("outputs", []) for c in nbformat.read(out, as_version=4).cells])
    seen = certs.request_facts(pki.csr())
    assert seen.key_sha256 in text and "sha256" in text and "www1.example.jp" in text
