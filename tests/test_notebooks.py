"""The step notebooks, run by the runbook under papermill against the rehearsal host.

Tests marked ``kernel`` (papermill and notebook-level checks, and the shared IIS 6 renewal) run on real
kernels; the others take the in-process step engine once it lands (tests/conftest.py).

One full renewal is shared by several tests (module-scoped fixture: five kernels); the dry run, the
failure + resume and the rollback each get their own rehearsal host. Every evidence folder goes
through the secret scan (``tests/secretscan.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets as random
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import conftest
import nbformat
import papermill
import pytest
import yaml
from conftest import on_real_kernels
from secretscan import assert_no_secrets

from opslib import certs, cli, evidence, params, rehearsal, runbook
from opslib.rehearsal.host import STARTED, STOPPED
from opslib.server import regfile, stores

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
STEP_NOTEBOOKS = sorted(NOTEBOOKS.glob("0*_*.ipynb"))
SEED_TITLES = {
    "00": "事前確認として有効なG5ルートがないことを確認する",
    "01": "更新申請作業用仮想サイトにサーバIDをインストールする",
    "02": "更新対象のサーバIDと、更新取得したサーバIDを入替える",
    "03": "キーペア(秘密鍵と証明書)ファイルのバックアップ",
}


# --- the notebooks as committed ----------------------------------------------------------------


def _parameters_cell(nb: Any) -> Any:
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one cell tagged parameters"
    return cells[0]


@pytest.mark.kernel
@pytest.mark.parametrize("path", STEP_NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_clean_and_thin(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{path.name}: committed with outputs"
            assert not re.search(r"^\s*(def|class|async def) ", cell.source, flags=re.M), (
                "logic belongs in opslib"
            )
    first = nb.cells[0]
    assert first.cell_type == "markdown"
    heading = first.source.splitlines()[0]
    assert re.match(r"^# Step [0-9R] — \S.* / \S", heading), heading
    number = path.name[:2]
    if number in SEED_TITLES:
        assert SEED_TITLES[number] in heading
    for word in ("**Purpose.**", "**Preconditions.**", "**What it changes.**", "**How to undo it.**"):
        assert word in first.source
    if number in (
        "00",
        "01",
        "02",
        "03",
        "04",
        "05",
    ):  # the step notebooks: the same in Japanese, for auditors
        for word in ("**目的.**", "**前提条件.**", "**変更内容.**", "**元に戻す方法.**"):
            assert word in first.source, f"{path.name}: no Japanese {word}"
    # papermill inspects every line (a line with a second "=" would be skipped silently).
    cell = _parameters_cell(nb)
    lines = [line for line in cell.source.splitlines() if line.strip() and not line.startswith("#")]
    declared = papermill.inspect_notebook(str(path))
    assert len(declared) == len(lines)
    assert all(p["help"] and p["inferred_type_name"] != "None" for p in declared.values())
    assert {"host", "run_dir", "dry_run"} <= set(declared)
    # Secrets are never parameters: only references may appear as defaults.
    for name, p in declared.items():
        if "password" in name:
            assert p["default"].strip("\"'").startswith(("env:", "keyring:", "prompt")), name
    # The last cell records the facts.
    assert "opslib.evidence.record(" in nb.cells[-1].source


@pytest.mark.kernel
def test_every_key_of_the_parameter_files_reaches_a_notebook(tmp_path: Path) -> None:
    request_nb = NOTEBOOKS / "request_certificate.ipynb"  # opslib request reads the renewal's file too
    declared = {p.stem: set(papermill.inspect_notebook(str(p))) for p in [*STEP_NOTEBOOKS, request_nb]}
    for path in sorted((ROOT / "parameters").glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        p = params.validate(data, source=str(path), base_dir=path.parent, check_files=False)
        values = p.notebook_values()
        steps = [*runbook.steps_for(p.mode), *(runbook.REQUEST_STEPS if p.mode == "renew" else ())]
        names = set().union(*(declared[s.name] for s in steps))
        unused = set(values) - names - {"mode"}
        assert not unused, f"{path.name}: keys no notebook declares: {sorted(unused)}"
        for step in runbook.steps_for(p.mode):
            passed = runbook.notebook_parameters(step, sorted(declared[step.name]), values, {})
            assert set(passed) <= declared[step.name]


# --- the rehearsal -----------------------------------------------------------------------------


@dataclass
class Setup:
    reh: rehearsal.Rehearsal
    params_file: Path
    evidence_root: Path
    backup_dir: Path
    secrets: list[str]
    state_file: Path

    def run_dirs(self) -> list[Path]:
        return sorted(p for p in self.evidence_root.iterdir() if (p / "run.json").is_file())

    def manifest(self, run_dir: Path) -> dict[str, Any]:
        return json.loads((run_dir / "run.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def _env() -> Iterator[list[str]]:
    # Each module gets its own passwords (random, never literals in files), put in the environment
    # as an operator would. ``_check_password`` refuses a leading "-", so start with a letter.
    names = ("OPSLIB_NB_WINRM", "OPSLIB_NB_PFX", "OPSLIB_NB_HMAC")
    with conftest.random_secrets(*names) as values:
        yield values


def _start(base: Path, secrets_: list[str], *, scenario: str = "iis6-ja", hmac: bool = False) -> Setup:
    base.mkdir(parents=True, exist_ok=True)
    state = base / "state.json"
    reh = rehearsal.start(scenario=scenario, password=secrets_[0], workdir=base / "host", state_file=state)
    data = reh.params(
        password_env="OPSLIB_NB_WINRM", pfx_password_env="OPSLIB_NB_PFX", backup_dir=str(base / "backups")
    )
    if hmac:
        data["evidence"] = {"hmac_key": "env:OPSLIB_NB_HMAC"}  # the runner signs run.json with it
    path = base / "params" / "web01.yaml"
    path.parent.mkdir()
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return Setup(reh, path, base / "evidence", base / "backups", secrets_, state)


def _run(setup: Setup, *extra: str) -> int:
    return cli.main(["run", str(setup.params_file), "--evidence-root", str(setup.evidence_root), *extra])


@pytest.fixture(scope="module")
def renewal(tmp_path_factory: pytest.TempPathFactory, _env: list[str]) -> Iterator[tuple[Setup, Path, dict]]:
    """One full renewal (steps 0–4, --yes) on a Japanese IIS 6 rehearsal host; evidence signed (HMAC)."""
    setup = _start(tmp_path_factory.mktemp("renewal"), _env, hmac=True)
    try:
        with on_real_kernels():  # the IIS 6 renewal on real kernels (its tests are marked kernel)
            code = _run(setup, "--yes")
        assert code == 0
        (run_dir,) = setup.run_dirs()
        yield setup, run_dir, setup.reh.host.state()
    finally:
        setup.reh.stop()


@pytest.mark.kernel
def test_a_full_run_renews_the_certificate_on_the_server(renewal: tuple[Setup, Path, dict]) -> None:
    setup, run_dir, state = renewal
    extra = state["extra"]
    m = setup.manifest(run_dir)
    assert (m["status"], m["failed_step"], m["error"], m["dry_run"]) == ("succeeded", None, None, False)
    assert [s["name"] for s in m["steps"]] == [s.name for s in runbook.RENEW_STEPS]
    assert all(s["status"] == "succeeded" and s["duration_s"] > 0 for s in m["steps"])
    # Every step recorded the facts the step table says it records (later steps and rollback.yaml rely on them).
    for step, record in zip(runbook.RENEW_STEPS, m["steps"], strict=True):
        assert set(step.records) <= set(record["facts"]), (
            step.name,
            set(step.records) - set(record["facts"]),
        )
    facts = m["facts"]
    assert facts["old_thumbprint"] == extra["current_thumbprint"]
    assert facts["new_thumbprint"] == extra["new_thumbprint"]
    assert facts["new_not_after_utc"] > facts["old_not_after_utc"]
    assert facts["old_secure_bindings"] == [":443:"]
    # What the server now holds: production started with the new certificate, the work site stopped.
    production, work = state["sites"]["1"], state["sites"]["2"]
    assert (production["ssl_cert_hash"], production["state"]) == (extra["new_thumbprint"], STARTED)
    assert (work["ssl_cert_hash"], work["state"]) == (extra["new_thumbprint"], STOPPED)
    # Step 0 disabled both G5 roots (the rehearsal's, listed in forbidden_roots, and the real one).
    for store, thumb in (("ROOT", extra["forbidden_roots"][0]), ("AuthRoot", certs.G5_THUMBPRINT)):
        key = rf"{stores.STORE_KEYS[store]}\Certificates\{thumb}"
        props, _ = regfile.parse_blob(setup.reh.host.reg_get(key, "Blob")[2])
        assert props[regfile.ENHKEY_USAGE] == regfile.EMPTY_EKU
        assert (run_dir / f"root-backup_{store}_{thumb}.reg").is_file()
    # Step 4 saw the new certificate with the intermediate and the cross certificate, with and without SNI.
    assert facts["served_leaf_sni"] == facts["served_leaf_no_sni"] == extra["new_thumbprint"]
    assert facts["chain_ok"] is True and facts["verify_problems"] == []


@pytest.mark.kernel
def test_the_backup_is_owner_only_outside_the_evidence_and_opens(renewal: tuple[Setup, Path, dict]) -> None:
    setup, run_dir, state = renewal
    facts = setup.manifest(run_dir)["facts"]
    backup = Path(facts["backup_file"])
    assert backup.parent == setup.backup_dir.resolve()
    name = f"web01_www1.example.jp_{state['extra']['new_thumbprint'][:8]}_"
    assert backup.name.startswith(name) and backup.suffix == ".pfx"
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert stat.S_IMODE(backup.parent.stat().st_mode) == 0o700
    data = backup.read_bytes()
    assert hashlib.sha256(data).hexdigest() == facts["backup_sha256"]
    bundle = certs.load_pkcs12(data, setup.secrets[1], source=backup.name)
    assert bundle.leaf is not None and certs.thumbprint(bundle.leaf) == facts["backup_thumbprint"]
    assert certs.key_matches(bundle.leaf, bundle.private_key)
    assert facts["pfx_has_intermediate"] and facts["pfx_has_cross"]
    assert not list(setup.evidence_root.rglob("*.pfx"))


@pytest.mark.kernel
def test_the_evidence_folder_is_complete_and_verifies(
    renewal: tuple[Setup, Path, dict], capsys: pytest.CaptureFixture[str]
) -> None:
    setup, run_dir, _ = renewal
    m = setup.manifest(run_dir)
    names = [s.name for s in runbook.RENEW_STEPS]
    for name in names:
        assert (run_dir / f"{name}.ipynb").is_file()
        html = (run_dir / "html" / f"{name}.html").read_text(encoding="utf-8")
        assert "<html" in html and name.split("_", 1)[1].split("_")[0] in html.lower()
    assert (run_dir / "transcript.jsonl").stat().st_size > 0
    assert set(m["files"]) == {
        p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file()
    } - {"run.json"}
    assert cli.main(["evidence", "verify", str(run_dir)]) == 0
    assert "ok:" in capsys.readouterr().out
    # The parameters keep references only; the lock is gone.
    assert m["parameters"]["winrm"]["password"] == "env:OPSLIB_NB_WINRM"
    assert m["parameters"]["backup"]["pfx_password"] == "env:OPSLIB_NB_PFX"
    assert not list((setup.evidence_root / ".locks").iterdir())


@pytest.mark.kernel
def test_the_evidence_is_signed_with_the_hmac_key(
    renewal: tuple[Setup, Path, dict], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    setup, run_dir, _ = renewal
    m = setup.manifest(run_dir)
    assert re.fullmatch(r"[0-9a-f]{64}", m["hmac"])
    assert m["parameters"]["evidence"]["hmac_key"] == "env:OPSLIB_NB_HMAC"  # the reference, never the key
    capsys.readouterr()
    assert cli.main(["evidence", "verify", str(run_dir), "--hmac-key", "env:OPSLIB_NB_HMAC"]) == 0
    assert capsys.readouterr().out.strip() == f"ok: {run_dir} (file hashes, chain, HMAC)"
    monkeypatch.setenv("OPSLIB_NB_WRONG_KEY", "not-the-evidence-key")
    assert cli.main(["evidence", "verify", str(run_dir), "--hmac-key", "env:OPSLIB_NB_WRONG_KEY"]) == 1
    out = capsys.readouterr().out
    assert f"{run_dir / 'run.json'}: hmac: HMAC mismatch" in out
    assert "not-the-evidence-key" not in out and setup.secrets[2] not in out
    # No notebook was given the key, not even its reference.
    for step in runbook.RENEW_STEPS:
        passed = nbformat.read(run_dir / step.notebook, as_version=4).metadata["papermill"]["parameters"]
        assert "evidence" not in passed and "hmac_key" not in json.dumps(passed)


@pytest.mark.kernel
def test_each_notebook_got_only_what_it_declares(renewal: tuple[Setup, Path, dict]) -> None:
    setup, run_dir, _ = renewal
    facts = setup.manifest(run_dir)["facts"]
    for step in runbook.RENEW_STEPS:
        executed = nbformat.read(run_dir / step.notebook, as_version=4)
        passed = executed.metadata["papermill"]["parameters"]
        declared = set(papermill.inspect_notebook(str(NOTEBOOKS / step.notebook)))
        assert set(passed) <= declared, step.name
        assert {"host", "run_dir", "dry_run"} <= set(passed)
        assert evidence.read_facts(run_dir / step.notebook), f"{step.name} recorded no facts"
        # The facts the step consumes arrived with the values the earlier steps recorded.
        assert {name: passed.get(name) for name in step.consumes} == {
            name: facts[name] for name in step.consumes
        }
    assert any("new_thumbprint" in step.consumes for step in runbook.RENEW_STEPS)


@pytest.mark.kernel
def test_no_secret_in_the_renewal_evidence(renewal: tuple[Setup, Path, dict]) -> None:
    setup, run_dir, _ = renewal
    assert_no_secrets(run_dir, setup.secrets)
    assert all(s["redacted"] == 0 for s in setup.manifest(run_dir)["steps"]), "a notebook printed a secret"


@pytest.mark.kernel
def test_rollback_yaml_puts_the_old_certificate_back(
    renewal: tuple[Setup, Path, dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    setup, run_dir, state = renewal
    rollback = run_dir / "rollback.yaml"
    text = rollback.read_text(encoding="utf-8")
    assert "mode: rollback" in text and state["extra"]["current_thumbprint"] in text
    setup.reh.host.sites[2].state = STARTED  # someone started the work site meanwhile
    assert cli.main(["run", str(rollback), "--yes"]) == 0
    production = setup.reh.host.sites[1]
    assert (production.ssl_cert_hash, production.state) == (state["extra"]["current_thumbprint"], STARTED)
    assert setup.reh.host.sites[2].state == STOPPED
    # The rollback's evidence sits next to the renewal's, chained to it.
    later = [d for d in setup.run_dirs() if d != run_dir]
    assert len(later) == 1
    m = setup.manifest(later[0])
    assert m["status"] == "succeeded" and m["parameters"]["mode"] == "rollback"
    assert [s["name"] for s in m["steps"]] == [s.name for s in runbook.ROLLBACK_STEPS]
    assert m["facts"]["served_leaf_no_sni"] == state["extra"]["current_thumbprint"]
    assert m["previous_run"]["run_id"] == run_dir.name
    assert cli.main(["evidence", "verify", str(later[0]), "--hmac-key", "env:OPSLIB_NB_HMAC"]) == 0
    assert_no_secrets(later[0], setup.secrets)


@pytest.mark.kernel
def test_the_review_notebook_reads_two_real_rehearsal_runs(
    renewal: tuple[Setup, Path, dict], tmp_path: Path
) -> None:
    setup, run_dir, state = renewal
    if len(setup.run_dirs()) < 2:  # run alone: make the second run (the rollback) here
        assert cli.main(["run", str(run_dir / "rollback.yaml"), "--yes"]) == 0
    runs = setup.run_dirs()
    out = tmp_path / "review.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOKS / "review_evidence.ipynb"),
        str(out),
        parameters={"evidence_root": str(setup.evidence_root), "host": "web01"},
        kernel_name="python3",
        cwd=str(tmp_path),
        progress_bar=False,
    )
    nb = nbformat.read(out, as_version=4)
    text = "\n".join(
        str(o.get("text", "")) + "".join(str(v) for v in o.get("data", {}).values())
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )
    assert f"{len(runs)} of {len(runs)} runs selected; 0 of {len(runs)} runs have integrity problems" in text
    assert all(r.name in text for r in runs)
    assert state["extra"]["new_thumbprint"] in text and state["extra"]["current_thumbprint"] in text
    assert any("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    assert_no_secrets(tmp_path, setup.secrets)  # the review itself leaks nothing either


# --- dry run -----------------------------------------------------------------------------------


def test_dry_run_changes_nothing_and_records_the_plan(
    tmp_path: Path, _env: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = _start(tmp_path, _env)
    monkeypatch.chdir(tmp_path)  # a relative evidence root, as an operator types it
    relative = setup.evidence_root.relative_to(tmp_path)
    try:
        before = setup.state_file.read_bytes()
        # no --yes needed: nothing changes
        assert cli.main(["run", str(setup.params_file), "--evidence-root", str(relative), "--dry-run"]) == 0
        assert setup.state_file.read_bytes() == before
        assert setup.state_file.read_bytes() == before
    finally:
        setup.reh.stop()
    (run_dir,) = setup.run_dirs()
    m = setup.manifest(run_dir)
    assert (m["status"], m["dry_run"]) == ("succeeded", True)
    # Every step rendered, although papermill changes the working directory while a step runs.
    assert sorted(p.name for p in (run_dir / "html").iterdir()) == [
        f"{s.name}.html" for s in runbook.RENEW_STEPS
    ]
    facts = m["facts"]
    assert len(facts["forbidden_roots_planned"]) == 2
    assert facts["forbidden_roots_disabled"] == []
    assert facts["new_thumbprint"] == setup.reh.host.extra["new_thumbprint"]
    assert {c["field"] for c in facts["swap_plan"]} >= {"SSLCertHash"}
    assert facts["backup_file"] == "" and not setup.backup_dir.exists()
    assert not (run_dir / "rollback.yaml").exists()
    # The G5 short-circuit is still there: reported, not raised, in a dry run.
    assert any("cross certificate is not sent" in p for p in facts["verify_problems"])
    assert_no_secrets(run_dir, setup.secrets)


# --- failure and resume ------------------------------------------------------------------------


def test_a_failure_mid_run_stops_and_resume_finishes_in_a_new_chained_folder(
    tmp_path: Path, _env: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    setup = _start(tmp_path, _env)
    try:
        # The 10th cscript command of a run is step 2's one server-side "swap" (IIS 6 helper): refused before it runs.
        setup.reh.set_faults(["before:swap:fail"])
        assert _run(setup, "--yes") == 1
        err = capsys.readouterr().err
        (run_dir,) = setup.run_dirs()
        assert re.search(r"step 02_swap_certificate failed, cell \d+: VerificationFailed: ", err)
        assert f"(notebook: {run_dir / '02_swap_certificate.ipynb'})" in err
        assert f"opslib resume {run_dir}" in err
        m = setup.manifest(run_dir)
        assert (m["status"], m["failed_step"]) == ("failed", "02_swap_certificate")
        assert [s["status"] for s in m["steps"]] == ["succeeded", "succeeded", "failed"]
        assert m["files"], "a failed run is finalized too"
        # The failed step's message names rollback.yaml as the undo, so it is there (from step 0's facts).
        rollback = yaml.safe_load((run_dir / "rollback.yaml").read_text(encoding="utf-8"))
        assert rollback["rollback"]["old_thumbprint"] == setup.reh.host.extra["current_thumbprint"]
        # The swap put the old certificate back itself.
        assert setup.reh.host.sites[1].ssl_cert_hash == setup.reh.host.extra["current_thumbprint"]

        setup.reh.set_faults([])
        before = (run_dir / "run.json").read_bytes()
        assert cli.main(["resume", str(run_dir), "--yes"]) == 0
    finally:
        setup.reh.stop()
    first, resumed = setup.run_dirs()
    assert first == run_dir and (run_dir / "run.json").read_bytes() == before, (
        "a finalized run is never rewritten"
    )
    m = setup.manifest(resumed)
    assert (m["mode"], m["status"], m["failed_step"], m["error"]) == ("resume", "succeeded", None, None)
    assert m["resumes"]["run_id"] == run_dir.name
    assert [s["name"] for s in m["steps"]] == [
        "02_swap_certificate",
        "03_backup_keypair",
        "04_verify_endpoint",
    ]
    assert [s["status"] for s in m["steps"]] == ["succeeded"] * 3
    assert setup.reh.host.sites[1].ssl_cert_hash == setup.reh.host.extra["new_thumbprint"]
    assert (resumed / "rollback.yaml").is_file()
    assert cli.main(["evidence", "verify", "--root", str(setup.evidence_root)]) == 0
    assert_no_secrets(resumed, setup.secrets)


# --- a server the kit has no backend for -------------------------------------------------------


def test_an_iis7_server_without_the_named_sites_is_refused_in_step_0_before_anything_changes(
    tmp_path: Path, _env: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """The `iis7` scenario: IIS 7.5 in the registry but no site by the names in the parameters. The IIS 7
    backend is chosen, finds no such site, and step 0 stops before it disables anything."""
    setup = _start(tmp_path, _env, scenario="iis7")
    try:
        before = setup.reh.host.state()
        assert _run(setup, "--yes") == 1
        after = setup.reh.host.state()
    finally:
        setup.reh.stop()
    err = capsys.readouterr().err
    assert re.search(
        r"step 00_precheck_root_store failed, cell \d+: SiteNotFound: .*www1\.example\.jp", err
    ), err
    # The forbidden roots are still enabled, the sites and keys untouched.
    assert (after["registry"], after["sites"], after["keys"]) == (
        before["registry"],
        before["sites"],
        before["keys"],
    )
    (run_dir,) = setup.run_dirs()
    m = setup.manifest(run_dir)
    assert (m["status"], m["failed_step"]) == ("failed", "00_precheck_root_store")
    assert [s["name"] for s in m["steps"]] == ["00_precheck_root_store"]
    assert not (run_dir / "rollback.yaml").exists()


# --- the demo ----------------------------------------------------------------------------------


def test_the_demo_renews_and_prints_a_summary_without_passwords(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from opslib.rehearsal import demo

    monkeypatch.delenv(demo.WINRM_ENV, raising=False)
    monkeypatch.setenv(demo.PFX_ENV, f"P{random.token_urlsafe(15)}")
    monkeypatch.chdir(tmp_path)  # relative folders, as `make demo` gives them
    code = cli.main(["rehearse", "demo"])
    out, err = capsys.readouterr()
    assert code == 0
    generated = os.environ[demo.WINRM_ENV]  # a random one was put into the environment
    for secret in (generated, os.environ[demo.PFX_ENV]):
        assert secret not in out and secret not in err
    assert re.search(r"run \S+_web01_www1\.example\.jp: succeeded", out)
    for step in runbook.RENEW_STEPS:
        assert re.search(rf"{step.name}\s+succeeded\s+\d+\.\d s", out)
    assert re.search(r"certificate: [0-9A-F]{40} \(until 20\d\d-.*\n\s+→ [0-9A-F]{40} \(until ", out)
    assert f"backup: {(tmp_path / 'backups').resolve()}" in out
    (run_dir,) = [p for p in (tmp_path / "evidence").iterdir() if not p.name.startswith(".")]
    assert f"evidence: {run_dir.resolve()}" in out
    # How a newcomer gets `opslib` on the PATH after `make demo` (the virtual environment it ran from).
    venv = Path(sys.prefix)
    assert sys.prefix == sys.base_prefix or re.search(
        rf"opslib on your PATH: \. \S*{re.escape(venv.name)}/bin/activate  \(or type \S*{re.escape(venv.name)}/bin/opslib",
        out,
    ), out
    assert_no_secrets(run_dir, [generated, os.environ[demo.PFX_ENV]])
    assert sorted(p.name for p in (run_dir / "html").iterdir()) == [
        f"{s.name}.html" for s in runbook.RENEW_STEPS
    ]
    (backup,) = (tmp_path / "backups").iterdir()  # beside the evidence, not in a temporary folder
    assert backup.suffix == ".pfx" and stat.S_IMODE(backup.stat().st_mode) == 0o600
