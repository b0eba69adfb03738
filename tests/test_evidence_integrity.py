"""Evidence the kit will not launder: every forgery is named alike by ``opslib evidence verify``,
``opslib evidence show``, the report's integrity line and the review notebook's table; the head record
of a root stays one chain when many runs finalize at once; a resume refuses a run that was finalized
and set back to ``running``. And console output that carries outside text (certificate fields, file
names, run.json values) never reaches the terminal with its control characters raw."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from test_evidence import STEPS, T0, _notebook, make_run

from opslib import evidence
from opslib.cli import main
from opslib.errors import EvidenceError, OpsError
from opslib.evidence.heads import HEADS_DIR, check_heads
from opslib.evidence.report import render_report
from opslib.evidence.review import integrity_by_run, integrity_reports, integrity_summary, problems_table

KEY = b"operator-evidence-key"
KEY_ENV = "OPSLIB_TEST_EVIDENCE_KEY"
UNPROVEN = "integrity not provable without the HMAC key"
UNPROVEN_JA = "HMAC 鍵がないため完全性を証明できません"


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY.decode())


def _chain(root: Path, *, hmac_key: bytes | None) -> list[Path]:
    return [
        make_run(
            root,
            started_utc=T0 + dt.timedelta(hours=h),
            old=f"{h}1" * 20,
            new=f"{h}2" * 20,
            hmac_key=hmac_key,
        )
        for h in range(3)
    ]


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _edit(run_dir: Path, **fields: object) -> None:
    path = run_dir / "run.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc.update(fields)
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")


def _forge_running(run_dir: Path) -> None:
    """The forgery of the issue: rewrite the operator and the backup hash, strip what finalizing wrote
    and set the run back to running, so that a resume would finalize it again."""
    doc = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    doc["facts"]["backup_sha256"] = "ee" * 32
    for step in doc["steps"]:
        if "backup_sha256" in step["facts"]:
            step["facts"]["backup_sha256"] = "ee" * 32
    doc.update(operator="mallory", status="running", finished_utc=None, files={}, previous_run=None)
    for key in ("hmac", "commands"):
        doc.pop(key, None)
    (run_dir / "run.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")


def _every_reader(
    capsys: pytest.CaptureFixture[str], root: Path, run_dir: Path, *, keyed: bool
) -> dict[str, str]:
    """What verify (root and run), show, the report and the review table say about ``run_dir``."""
    key_args = ["--hmac-key", f"env:{KEY_ENV}"] if keyed else []
    seen: dict[str, str] = {}
    code, out, _ = cli(capsys, "evidence", "verify", "--root", str(root), *key_args)
    seen["verify root"] = f"{code}\n{out}"
    code, out, _ = (
        cli(capsys, "evidence", "verify", str(run_dir), *key_args) if run_dir.exists() else (1, "", "")
    )
    seen["verify run"] = f"{code}\n{out}"
    if run_dir.exists():
        code, out, _ = cli(capsys, "evidence", "show", str(run_dir), *key_args)
        seen["show"] = next(line for line in out.splitlines() if line.startswith("integrity "))
        seen["show"] += "\n" + out
        page = render_report(run_dir, lang="en", hmac_key=KEY if keyed else None)
        seen["report"] = re.sub(r"<[^>]+>", " ", page[page.index("Evidence integrity") :][:4000])
    reports = integrity_reports(root, f"env:{KEY_ENV}" if keyed else "")
    seen["review"] = json.dumps(integrity_by_run(reports)) + "\n" + problems_table(reports).to_string()
    seen["review summary"] = integrity_summary(reports)
    return seen


# --- a clean chain: intact only with the key ------------------------------------------------------


def test_a_clean_chain_reads_intact_only_with_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keyed: None
) -> None:
    root = tmp_path / "evidence"
    runs = _chain(root, hmac_key=KEY)
    plain = _every_reader(capsys, root, runs[-1], keyed=False)
    assert plain["verify root"].startswith(f"0\nok: 3 runs in {root} (file hashes, chain) — {UNPROVEN}")
    assert plain["show"].startswith(f"integrity {UNPROVEN} (10 files, chain, head record)")
    assert "files hashed; carries an HMAC (checked only with --hmac-key)" in plain["show"]
    assert UNPROVEN in plain["report"] and "intact" not in plain["report"]
    assert json.loads(plain["review"].splitlines()[0]) == {r.name: UNPROVEN for r in runs}
    assert plain["review summary"] == f"0 of 3 runs have integrity problems ({UNPROVEN})"
    assert UNPROVEN_JA in render_report(runs[-1], lang="ja")

    signed = _every_reader(capsys, root, runs[-1], keyed=True)
    assert signed["verify root"].startswith(f"0\nok: 3 runs in {root} (file hashes, chain, HMAC)\n")
    assert signed["show"].startswith("integrity intact (10 files, chain, head record, HMAC)")
    assert "intact" in signed["report"] and UNPROVEN not in signed["report"]
    assert json.loads(signed["review"].splitlines()[0]) == {r.name: "intact" for r in runs}
    assert "問題なし" in render_report(runs[-1], lang="ja", hmac_key=KEY)
    assert KEY.decode() not in json.dumps(signed)


# --- the forgeries, named by every reader -----------------------------------------------------------


@pytest.mark.parametrize("with_key", [False, True], ids=["no key", "HMAC key"])
def test_an_edited_finalized_run_set_back_to_running_is_named_altered_everywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keyed: None, with_key: bool
) -> None:
    root = tmp_path / "evidence"
    runs = _chain(root, hmac_key=KEY if with_key else None)
    _forge_running(runs[-1])
    run_json = runs[-1] / "run.json"
    seen = _every_reader(capsys, root, runs[-1], keyed=with_key)
    for reader in ("verify root", "verify run"):
        assert seen[reader].startswith("1\n"), reader
        assert (
            f"{run_json}: altered: the head record (entry 3) shows this run was finalized, but its run.json now "
            "says status 'running'" in seen[reader]
        ), reader
        assert "do not resume" in seen[reader]
        assert "never finalized" not in seen[reader] and "unfinalized" not in seen[reader], reader
        assert "finalized and then altered or removed" in seen[reader].splitlines()[-1]
    assert seen["show"].startswith("integrity PROBLEMS: 1 altered"), seen["show"]
    assert "altered" in seen["report"] and "it was altered after finalizing" in seen["report"]
    assert json.loads(seen["review"].splitlines()[0])[runs[-1].name] == "1 altered"
    assert seen["review summary"].startswith("1 of 3 runs have integrity problems")
    problems = evidence.verify_for_resume(runs[-1], hmac_key=KEY if with_key else None)
    assert {p.kind for p in problems} == ({"altered", "hmac"} if with_key else {"altered"})
    assert "do not resume it" in problems[0].detail
    assert f"{STEPS[3]}'s facts in run.json differ from those its notebook recorded" in problems[-1].detail


def test_a_forgery_that_keeps_what_finalizing_wrote_is_named_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "evidence"
    runs = _chain(root, hmac_key=None)
    shutil.rmtree(root / HEADS_DIR)  # no head record (a root written before it existed)
    _edit(runs[-1], status="running")
    code, out, _ = cli(capsys, "evidence", "verify", str(runs[-1]))
    assert code == 1
    assert (
        "altered: status 'running' but run.json carries what only finalizing writes (finished_utc, files, "
        "previous_run, commands): the run was finalized and then set back" in out
    )
    assert [p.kind for p in evidence.verify_for_resume(runs[-1], hmac_key=None)] == ["altered"]


def test_the_newest_run_deleted_is_named_everywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keyed: None
) -> None:
    root = tmp_path / "evidence"
    runs = _chain(root, hmac_key=KEY)
    shutil.rmtree(runs[-1])
    removed = (
        f"{runs[-1]}: removed: the head record (entry 3) lists this run as finalized, but its folder is gone"
    )
    seen = _every_reader(capsys, root, runs[1], keyed=True)
    for reader in ("verify root", "verify run"):
        assert seen[reader].startswith("1\n") and removed in seen[reader], reader
    assert seen["show"].startswith("integrity PROBLEMS: 1 removed"), seen["show"]
    assert "removed" in seen["report"] and "its folder is gone" in seen["report"]
    assert json.loads(seen["review"].splitlines()[0])[runs[-1].name] == "1 removed"
    assert seen["review summary"].startswith("1 of 3 runs have integrity problems")


def test_a_removed_head_entry_in_the_middle_is_a_gap(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "evidence"
    _chain(root, hmac_key=None)
    (root / HEADS_DIR / "00000002.json").unlink()
    code, out, _ = cli(capsys, "evidence", "verify", "--root", str(root))
    assert code == 1
    assert f"{root / HEADS_DIR / '00000003.json'}: head: head entries before number 3 are missing" in out


@pytest.mark.parametrize("with_key", [False, True], ids=["no key", "HMAC key"])
def test_an_edited_notebook_is_named_everywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keyed: None, with_key: bool
) -> None:
    root = tmp_path / "evidence"
    runs = _chain(root, hmac_key=KEY if with_key else None)
    nb = runs[-1] / f"{STEPS[3]}.ipynb"
    nb.write_text(nb.read_text(encoding="utf-8").replace("cdcdcdcd", "efefefef"), encoding="utf-8")
    seen = _every_reader(capsys, root, runs[-1], keyed=with_key)
    for reader in ("verify root", "verify run"):
        assert seen[reader].startswith("1\n") and f"{nb}: edited: SHA-256 " in seen[reader], reader
        assert "the evidence changed after it was finalized" in seen[reader]
    assert seen["show"].startswith("integrity PROBLEMS: 1 edited")
    assert f"{nb}: edited" in seen["report"]
    assert json.loads(seen["review"].splitlines()[0])[runs[-1].name] == "1 edited"


def test_an_edited_run_json_with_and_without_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keyed: None
) -> None:
    """Without the key a forger who also rewrites the newest head entry goes unseen — and no reader
    says intact; with the key the run.json and the entry's HMAC give it away."""
    root = tmp_path / "evidence"
    runs = _chain(root, hmac_key=KEY)
    _edit(runs[-1], operator="mallory")
    seen = _every_reader(capsys, root, runs[-1], keyed=False)
    assert "altered: SHA-256" in seen["verify run"] and "the head record (entry 3)" in seen["verify run"]
    assert seen["show"].startswith("integrity PROBLEMS: 1 altered")

    # Rewrite the newest head entry to match: only the key can tell.
    entry = root / HEADS_DIR / "00000003.json"
    head = json.loads(entry.read_text(encoding="utf-8"))
    head["run_json_sha256"] = hashlib.sha256((runs[-1] / "run.json").read_bytes()).hexdigest()
    entry.write_text(json.dumps(head, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    seen = _every_reader(capsys, root, runs[-1], keyed=False)
    assert seen["verify run"].startswith(f"0\nok: {runs[-1]} (file hashes, chain) — {UNPROVEN}")
    assert seen["show"].startswith(f"integrity {UNPROVEN}") and UNPROVEN in seen["report"]
    assert json.loads(seen["review"].splitlines()[0])[runs[-1].name] == UNPROVEN

    seen = _every_reader(capsys, root, runs[-1], keyed=True)
    run_json = runs[-1] / "run.json"
    for reader in ("verify root", "verify run"):
        assert f"{run_json}: hmac: HMAC mismatch: run.json changed after it was signed" in seen[reader]
        assert f"{entry}: hmac: HMAC mismatch: head entry changed" in seen[reader]
    assert seen["show"].startswith("integrity PROBLEMS: 2 hmac")
    assert "HMAC mismatch" in seen["report"]
    assert json.loads(seen["review"].splitlines()[0])[runs[-1].name] == "2 hmac"
    assert KEY.decode() not in json.dumps(seen)


def test_the_review_refuses_a_key_instead_of_a_reference(tmp_path: Path) -> None:
    root = tmp_path / "evidence"
    _chain(root, hmac_key=KEY)
    with pytest.raises(
        EvidenceError, match="hmac_key: a notebook cannot prompt for the HMAC key — pass a reference"
    ):
        integrity_reports(root, "prompt")
    with pytest.raises(OpsError, match="reference") as raised:
        integrity_reports(root, KEY.decode())
    assert KEY.decode() not in str(raised.value)


# --- the head record under concurrency --------------------------------------------------------------


def test_many_runs_finalizing_at_once_leave_one_chain(tmp_path: Path) -> None:
    root = tmp_path / "evidence"
    count = 24
    dirs = [
        evidence.new_run(
            root, host=f"web{i:02d}", site="www", parameters={}, operator="fleet", dry_run=False, now_utc=T0
        )
        for i in range(count)
    ]
    for run_dir in dirs:
        evidence.update_run(run_dir, status="succeeded")
    start = threading.Barrier(count)
    errors: list[BaseException] = []

    def finalize(run_dir: Path) -> None:
        try:
            start.wait()
            evidence.finalize_run(run_dir, now_utc=T0 + dt.timedelta(minutes=5), hmac_key=KEY)
        except BaseException as exc:  # noqa: BLE001 — reported below
            errors.append(exc)

    threads = [threading.Thread(target=finalize, args=(d,)) for d in dirs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    heads = evidence.read_heads(root)
    assert [h.seq for h in heads] == list(range(1, count + 1))
    assert sorted(h.run_id for h in heads) == sorted(d.name for d in dirs)
    assert check_heads(heads, hmac_key=KEY) == []
    for before, after in zip(heads, heads[1:], strict=False):
        assert after.doc is not None and after.doc["previous_entry_sha256"] == before.sha256
    assert sorted(p.name for p in (root / HEADS_DIR).iterdir()) == [
        f"{n:08d}.json" for n in range(1, count + 1)
    ]
    assert all(r.ok and r.hmac_checked for r in evidence.verify_root(root, hmac_key=KEY))


# --- before a resume -------------------------------------------------------------------------------


def _interrupted(root: Path, *, hmac_key: bytes | None = None) -> Path:
    """A run interrupted after two steps, written the way the runner writes it (never finalized)."""
    run_dir = evidence.new_run(
        root,
        host="web01",
        site="www1",
        parameters={},
        operator="alice",
        dry_run=False,
        now_utc=T0,
        hmac_key=hmac_key,
    )
    for i, step in enumerate(STEPS[:2]):
        facts = {"step": i, "thumbprint": f"{i}A" * 20}
        (run_dir / f"{step}.ipynb").write_text(_notebook(step, facts), encoding="utf-8")
        evidence.update_run(
            run_dir,
            hmac_key=hmac_key,
            steps=[{"name": step, "notebook": f"{step}.ipynb", "status": "succeeded", "facts": facts}],
            facts=facts,
        )
    evidence.update_run(
        run_dir,
        hmac_key=hmac_key,
        steps=[{"name": STEPS[2], "notebook": f"{STEPS[2]}.ipynb", "status": "running"}],
    )
    return run_dir


def test_verify_for_resume_accepts_an_interrupted_run_and_refuses_an_edited_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "evidence"
    make_run(root, started_utc=T0 - dt.timedelta(hours=1))
    run_dir = _interrupted(root)
    assert evidence.verify_for_resume(run_dir, hmac_key=None) == []
    code, out, _ = cli(capsys, "evidence", "verify", str(run_dir))
    assert (
        code == 1 and "unfinalized: status 'running' and no file hashes: the run was never finalized" in out
    )
    last = out.splitlines()[-1]
    assert "never finalized (interrupted, or still running) is not damaged" in last
    assert "changed after it was finalized" not in last and "restore" not in last

    code, out, _ = cli(capsys, "evidence", "show", str(run_dir))
    assert code == 0
    assert (
        f"integrity never finalized (interrupted, or still running): resume it with `opslib resume {run_dir}`"
        in out
    )

    # Beside a finalized run that was altered, each is called what it is.
    _forge_running(root / sorted(p.name for p in root.iterdir() if not p.name.startswith("."))[0])
    code, out, _ = cli(capsys, "evidence", "verify", "--root", str(root))
    assert code == 1 and ": altered: the head record (entry 1) shows this run was finalized" in out
    assert f"{run_dir / 'run.json'}: unfinalized: status 'running'" in out
    assert out.splitlines()[-1].endswith(
        "the head record shows runs that were finalized and then altered or removed: do not resume them; find "
        "out who changed what, and restore them from your backup copy; a run that was never finalized "
        "(interrupted, or still running) is not damaged: finish it with `opslib resume RUN_DIR`"
    )

    # The run's facts edited while it waited for its resume: they no longer match what the notebooks recorded.
    doc = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    doc["facts"]["thumbprint"] = "FF" * 20
    doc["steps"][0]["facts"]["step"] = 7
    (run_dir / "run.json").write_text(json.dumps(doc), encoding="utf-8")
    details = [p.detail for p in evidence.verify_for_resume(run_dir, hmac_key=None)]
    assert details == [
        f"step {STEPS[0]}'s facts in run.json differ from those its notebook recorded (step): run.json was edited",
        "the run's facts differ from those its steps recorded (thumbprint): run.json was edited",
    ]

    # An older run.json put back over a run that went further: a notebook it does not name, a report.
    (run_dir / "04_verify_endpoint.ipynb").write_text(_notebook("04_verify_endpoint", {}), encoding="utf-8")
    (run_dir / "report.html").write_text("<html></html>", encoding="utf-8")
    problems = evidence.verify_for_resume(run_dir, hmac_key=None)
    assert [(p.kind, Path(p.path).name) for p in problems] == [
        ("altered", "run.json"),
        ("added", "04_verify_endpoint.ipynb"),
        ("altered", "report.html"),
        ("altered", "run.json"),
    ]
    assert "the runner names a step before it runs it" in problems[1].detail

    # A finalized run is held to every check.
    finalized = make_run(root, started_utc=T0 + dt.timedelta(hours=3), hmac_key=KEY)
    assert evidence.verify_for_resume(finalized, hmac_key=KEY) == []
    (finalized / "rollback.yaml").write_text("changed\n", encoding="utf-8")
    assert [p.kind for p in evidence.verify_for_resume(finalized, hmac_key=KEY)] == ["edited"]


# --- escaping ------------------------------------------------------------------------------------

HOSTILE = "\x1b[2J\x1b]0;owned\x07\u202egnp.exe\x9b31m"
RAW = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _hostile_certificate(path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"www1.example.jp{HOSTILE}"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"Example{HOSTILE}"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(T0 - dt.timedelta(days=1))
        .not_valid_after(T0 + dt.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("www1.example.jp")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _assert_escaped(code: int, out: str, err: str, what: str) -> None:
    assert not RAW.search(out), f"{what}: raw control character on stdout: {out!r}"
    assert not RAW.search(err), f"{what}: raw control character on stderr: {err!r}"
    assert code in (0, 1, 2), what


def test_no_control_character_reaches_the_console(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A certificate whose subject carries terminal sequences, in a file whose name carries them too.
    folder = tmp_path / f"certs{HOSTILE}"
    folder.mkdir()
    pem = folder / f"leaf{HOSTILE}.pem"
    _hostile_certificate(pem)
    code, out, err = cli(capsys, "inspect", str(pem))
    _assert_escaped(code, out, err, "inspect")
    assert code == 0 and "www1.example.jp\\x1b[2J\\x1b]0;owned\\x07\\u202egnp.exe\\x9b31m" in out
    code, out, err = cli(capsys, "inspect", str(pem), "--json")
    _assert_escaped(code, out, err, "inspect --json")
    assert json.loads(out)["certificates"][0]["common_name"] == f"www1.example.jp{HOSTILE}"
    code, out, err = cli(capsys, "inspect", str(folder / f"missing{HOSTILE}.pem"))
    _assert_escaped(code, out, err, "inspect error")
    assert code == 1 and "missing\\x1b[2J" in err

    # A run whose run.json fields and file names carry them.
    root = tmp_path / "evidence"
    run_dir = make_run(root, started_utc=T0, host=f"web01{HOSTILE}", site="www1", new="CC" * 20)
    path = run_dir / "run.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["operator"] = f"alice{HOSTILE}"
    doc["steps"][1]["facts"]["chain"] = [f"Intermediate{HOSTILE}"]
    doc["steps"][1]["error"] = f"boom{HOSTILE}"
    path.write_text(json.dumps(doc), encoding="utf-8")
    (run_dir / "html" / f"{HOSTILE}.html").write_text("added", encoding="utf-8")
    for argv in (
        ("evidence", "show", str(run_dir)),
        ("evidence", "show", str(run_dir), "--json"),
        ("evidence", "list", "--root", str(root)),
        ("evidence", "list", "--root", str(root), "--json"),
        ("evidence", "verify", str(run_dir)),
        ("evidence", "verify", "--root", str(root)),
        ("evidence", "verify", "--root", str(root), "--json"),
        ("evidence", "show", str(root / f"gone{HOSTILE}")),
        ("evidence", "list", "--root", str(root / f"gone{HOSTILE}")),
    ):
        code, out, err = cli(capsys, *argv)
        _assert_escaped(code, out, err, " ".join(argv[:2]))
        assert "\\x1b[2J" in out + err or "\\u001b[2J" in out + err, argv
    code, out, _ = cli(capsys, "evidence", "show", str(run_dir))
    assert "operator  alice\\x1b[2J\\x1b]0;owned\\x07" in out
    assert "html/\\x1b[2J\\x1b]0;owned\\x07" in out


def test_with_the_key_a_resume_refuses_what_the_runner_did_not_sign(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keyed: None
) -> None:
    """The issue's forgery in full, head entry removed too: with the key the resume still refuses it,
    because the runner signs every write of an unfinished run.json (progress_hmac)."""
    root = tmp_path / "evidence"
    interrupted = _interrupted(root, hmac_key=KEY)
    assert evidence.verify_for_resume(interrupted, hmac_key=KEY) == []
    assert json.loads((interrupted / "run.json").read_text(encoding="utf-8"))["progress_hmac"]

    runs = _chain(root, hmac_key=KEY)
    _forge_running(runs[-1])
    (root / HEADS_DIR / "00000003.json").unlink()  # the newest entry: its removal leaves no gap
    nb = runs[-1] / f"{STEPS[3]}.ipynb"  # and the notebook made to agree with the forged facts
    nb.write_text(nb.read_text(encoding="utf-8").replace("cd" * 32, "ee" * 32), encoding="utf-8")
    assert evidence.verify_for_resume(runs[-1], hmac_key=None) == [], "without the key: not detectable"
    (problem,) = evidence.verify_for_resume(runs[-1], hmac_key=KEY)
    assert (
        problem.kind == "hmac" and "the unfinished run.json is not signed with the HMAC key" in problem.detail
    )

    # An unfinished run.json rewritten without the key: its progress signature no longer checks.
    _edit(interrupted, operator="mallory")
    (problem,) = evidence.verify_for_resume(interrupted, hmac_key=KEY)
    assert problem.kind == "hmac" and "rewritten by someone other than the runner" in problem.detail
    code, out, _ = cli(capsys, "evidence", "verify", str(interrupted), "--hmac-key", f"env:{KEY_ENV}")
    assert code == 1 and f"{interrupted / 'run.json'}: hmac: HMAC mismatch: the unfinished run.json" in out
