"""Security checks: the evidence scan itself, TLS validation of WinRM, Basic over HTTP, the backup's
permissions and the remote temp folder.

Every evidence folder any test of the session produces is scanned at the end of the session
(``tests/conftest.py``: ``pytest_sessionfinish``); the first test here proves that scan finds what it
must find.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets as random
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from secretscan import scan_runs

from opslib import cli, rehearsal
from opslib import winrm as transport
from opslib.errors import ParameterError
from opslib.rehearsal.pki import make_pki

WINRM_ENV, PFX_ENV = "OPSLIB_SEC_WINRM", "OPSLIB_SEC_PFX"


@pytest.fixture
def passwords(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    values = [f"W{random.token_urlsafe(15)}", f"P{random.token_urlsafe(15)}"]
    monkeypatch.setenv(WINRM_ENV, values[0])
    monkeypatch.setenv(PFX_ENV, values[1])
    return values


def test_the_session_scan_finds_secrets_and_key_material(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    pki = make_pki(now_utc=datetime(2026, 1, 1, tzinfo=UTC))
    secret = "Sc4n-Me-If-You-Can"
    pkcs8_der = base64.b64decode(b"".join(pki.key_pem(pki.new_key).splitlines()[1:-1]))
    planted = {
        "pem-key/notes.txt": pki.key_pem(pki.new_key),
        "pkcs8-in-json/run.json": json.dumps({"blob": base64.b64encode(pkcs8_der[4:900]).decode()}).encode(),
        "pfx/backup.bin": pki.pkcs12_bundle(b"Pfx-Pa55word-x"),
        "secret-utf16/out.txt": f"password={secret}".encode("utf-16-le"),
        "secret-base64/t.jsonl": base64.b64encode(secret.encode()),
        "clean/html/x.html": pki.pem(pki.new_leaf, pki.intermediate),
    }
    base = tmp_path / "planted"
    try:
        for rel, data in planted.items():
            path = base / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            (base / rel.split("/")[0] / "run.json").touch(exist_ok=True)
        folders, findings = scan_runs(base, [secret])
        assert len(folders) == len(planted)
        kinds: dict[str, str] = {}
        for f in findings:
            folder = f.split("/planted/")[1].split("/")[0]
            kinds[folder] = kinds.get(folder, "") + f + "\n"
        assert set(kinds) == {"pem-key", "pkcs8-in-json", "pfx", "secret-utf16", "secret-base64"}
        assert "PEM private-key header" in kinds["pem-key"]
        assert "PKCS#8 RSA private key" in kinds["pkcs8-in-json"]
        assert "PKCS#12" in kinds["pfx"]
        assert all(secret not in f for f in findings), "a finding must never show the secret"
    finally:
        shutil.rmtree(base)  # planted on purpose: keep it out of the session's own scan


@pytest.fixture
def https_host(tmp_path: Path, passwords: list[str]) -> Iterator[tuple[rehearsal.Rehearsal, Path]]:
    state = tmp_path / "state.json"
    with rehearsal.start(
        scenario="no-g5", https=True, password=passwords[0], workdir=tmp_path / "host", state_file=state
    ) as reh:
        yield reh, state


def _params(reh: rehearsal.Rehearsal, folder: Path, **winrm: object) -> Path:
    data = reh.params(password_env=WINRM_ENV, pfx_password_env=PFX_ENV, backup_dir=str(folder / "backups"))
    data["winrm"].update(winrm)
    path = folder / "params" / "web01.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_https_certificate_validation_is_on_by_default(
    https_host: tuple[rehearsal.Rehearsal, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reh, state = https_host
    assert reh.url.startswith("https://")
    path = _params(reh, tmp_path, ca_trust_path="")  # the system CAs do not know the rehearsal's CA
    before = state.read_bytes()
    code = cli.main(["run", str(path), "--yes", "--evidence-root", str(tmp_path / "ev"), "--steps", "0"])
    err = capsys.readouterr().err
    assert code == 1
    assert re.search(
        r"https://127\.0\.0\.1:\d+/wsman: the server's TLS certificate could not be validated", err
    )
    assert "winrm.ca_trust_path" in err
    assert state.read_bytes() == before and reh.host.history == []
    (run_dir,) = (tmp_path / "ev").glob("*_web01_*")
    assert json.loads((run_dir / "run.json").read_text(encoding="utf-8"))["tls_validation"] == "validate"


def test_an_explicit_opt_out_proceeds_and_is_recorded(
    https_host: tuple[rehearsal.Rehearsal, Path], tmp_path: Path
) -> None:
    reh, _ = https_host
    path = _params(reh, tmp_path, ca_trust_path="", server_cert_validation="ignore")
    code = cli.main(["run", str(path), "--dry-run", "--evidence-root", str(tmp_path / "ev"), "--steps", "0"])
    assert code == 0 and reh.host.history, "the run reached the host over HTTPS"
    (run_dir,) = (tmp_path / "ev").glob("*_web01_*")
    manifest = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    assert (manifest["status"], manifest["tls_validation"]) == ("succeeded", "ignore")


def test_basic_over_plain_http_is_refused_by_the_transport_too() -> None:
    with pytest.raises(
        ParameterError, match=r"winrm\.allow_unencrypted_basic: Basic authentication over plain HTTP"
    ):
        transport.connect(
            "http://127.0.0.1:9/wsman",
            transport="basic",
            username="u",
            password="Not-Sent-123",
            host_label="h",
        )


def test_a_renewal_leaves_an_owner_only_backup_and_no_temp_folder(
    tmp_path: Path, passwords: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """One full renewal over HTTPS with the CA bundle: an existing 0755 backup folder is left as the
    operator made it (the kit never changes a folder it did not create), the PFX is 0600, and no kit
    temp folder is left on the server."""
    state = tmp_path / "state.json"
    with rehearsal.start(
        scenario="default", https=True, password=passwords[0], workdir=tmp_path / "host", state_file=state
    ) as reh:
        path = _params(reh, tmp_path)
        backups = tmp_path / "backups"
        backups.mkdir(mode=0o755)
        os.chmod(backups, 0o755)
        code = cli.main(["run", str(path), "--yes", "--evidence-root", str(tmp_path / "ev")])
        capsys.readouterr()
        assert code == 0
        dirs = json.loads(state.read_text(encoding="utf-8"))["dirs"]
    assert not [d for d in dirs if "opslib-" in d], "a remote temp folder was left"
    (pfx,) = backups.glob("*.pfx")
    assert stat.S_IMODE(backups.stat().st_mode) == 0o755
    assert stat.S_IMODE(pfx.stat().st_mode) == 0o600
    (run_dir,) = (tmp_path / "ev").glob("*_web01_*")
    assert json.loads((run_dir / "run.json").read_text(encoding="utf-8"))["tls_validation"] == "validate"
    assert not list(run_dir.rglob("*.pfx"))


def test_a_failed_step_leaves_no_temp_folder(tmp_path: Path, passwords: list[str]) -> None:
    """Step 1 fails after it uploaded files (certreq -accept refused): the temp folder is still removed."""
    state = tmp_path / "state.json"
    with rehearsal.start(
        scenario="no-g5", password=passwords[0], workdir=tmp_path / "host", state_file=state
    ) as reh:
        reh.set_faults(["before:certreq#4:fail"])
        path = _params(reh, tmp_path)
        code = cli.main(
            ["run", str(path), "--yes", "--evidence-root", str(tmp_path / "ev"), "--steps", "0,1"]
        )
        assert code == 1
        created = [
            h["command"] for h in reh.host.history if "mkdir" in h["command"] and "opslib-" in h["command"]
        ]
        dirs = json.loads(state.read_text(encoding="utf-8"))["dirs"]
    assert created, "the failed step had made a temp folder"
    assert not [d for d in dirs if "opslib-" in d], "a remote temp folder was left after the failure"
