"""The auditor's report (``report.html``) of real rehearsal runs, read in a real browser.

Two runs through the real stack (papermill kernels, pywinrm over HTTP, the rehearsal host): a
renewal that succeeds and one whose swap fails. Their reports are opened in headless Chromium from
the OS packages (``/usr/bin/chromium``; ``make test`` installs it as root), driven by the playwright
package (no ``playwright install``): the page renders without console errors, fetches nothing, its
summary fits the 1280×800 viewport, and it holds no code, no traceback, no value cut short.
``OPSLIB_WRITE_DOCS=1`` also writes the summary picture ``docs/report-summary.png``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_notebooks import Setup, _env, _run, _start  # noqa: F401 (_env is a fixture)

from opslib import cli

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 800}
CONSOLE: dict[str, str] = {}  # what the failed run printed (stdout and stderr)
DOCS_PNG = Path(__file__).resolve().parent.parent / "docs" / "report-summary.png"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, _env: list[str]) -> Iterator[tuple[Setup, Path, Path]]:  # noqa: F811
    """A successful renewal and a renewal whose swap (step 2) fails, each on its own rehearsal host."""
    good = _start(tmp_path_factory.mktemp("report-ok"), _env)
    bad = _start(tmp_path_factory.mktemp("report-failed"), _env)
    try:
        assert _run(good, "--yes") == 0
        bad.reh.set_faults(["before:swap:fail"])  # step 2's server-side swap (IIS 6 helper), by its name
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            assert _run(bad, "--yes") == 1
        CONSOLE["failed"] = out.getvalue() + err.getvalue()
        (ok_dir,) = good.run_dirs()
        (failed_dir,) = bad.run_dirs()
        bad.reh.set_faults([])
        yield good, ok_dir, failed_dir
    finally:
        good.reh.stop()
        bad.reh.stop()


def _manifest(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "run.json").read_text(encoding="utf-8"))


def _browser() -> Any:
    """playwright's Chromium, launched from the OS package; missing: skipped, or failed under CI."""
    missing = ""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "the playwright package is not installed (pip install -e '.[dev]')"
    if not missing and not os.access(CHROMIUM, os.X_OK):
        missing = (
            f"chromium is not installed ({CHROMIUM}); make test installs it as root: apt-get install chromium"
        )
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"{missing} — CI is set, so this is a failure, not a skip")
        pytest.skip(missing)
    return sync_playwright()


def _open(report: Path, *, screenshot: Path | None = None) -> dict[str, Any]:
    """Load ``report`` in Chromium; what a reader sees: text, console errors, requests, the summary box."""
    seen: dict[str, Any] = {"errors": [], "requests": []}
    with _browser() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: seen["errors"].append(str(e)))
            page.on("request", lambda r: seen["requests"].append(r.url))
            page.goto(report.as_uri(), wait_until="load")
            seen["text"] = page.inner_text("body")
            seen["summary_text"] = page.inner_text("#summary")
            seen["box"] = page.locator("#summary").bounding_box()
            seen["scroll_width"] = page.evaluate("document.documentElement.scrollWidth")
            seen["cells"] = page.eval_on_selector_all("td, th", "cells => cells.map(c => c.innerText)")
            seen["steps"] = page.eval_on_selector_all(
                "section.step",
                """sections => sections.map(s => ({
                    id: s.id,
                    tables: s.querySelectorAll(':scope > table, :scope > .facts > table').length,
                    prose: Array.from(s.querySelectorAll('.prose')).map(
                        d => Array.from(d.querySelectorAll('p, li')).map(p => p.innerText)),
                }))""",
            )
            seen["checks"] = page.eval_on_selector_all(
                "#summary table.checks > tbody > tr",
                "rows => rows.map(r => Array.from(r.children).map(c => c.innerText))",
            )
            if page.locator("#what-happened").count():
                seen["what_happened"] = page.eval_on_selector(
                    "#what-happened",
                    """d => ({ja: d.querySelector('p[lang=ja]').innerText, en: d.querySelector('p[lang=en]').innerText,
                             commands: Array.from(d.querySelectorAll('li')).map(li => li.innerText),
                             text: d.innerText})""",
                )
            seen["changes"] = page.eval_on_selector_all(
                "#summary .grid > div:nth-child(2) table > tbody > tr",
                "rows => rows.map(r => Array.from(r.children).map(c => c.innerText))",
            )
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), clip=seen["box"])
            # Printed to A4 (Chromium's PDF): the summary alone takes one page, and it comes first.
            seen["pdf_pages"] = _pages(page.pdf(format="A4", prefer_css_page_size=True))
            page.evaluate(
                "() => { const s = document.querySelector('#summary'); while (s.nextSibling) s.nextSibling.remove(); }"
            )
            seen["summary_pdf_pages"] = _pages(page.pdf(format="A4", prefer_css_page_size=True))
        finally:
            browser.close()
    return seen


def _pages(pdf: bytes) -> int:
    """The number of pages of a PDF that Chromium wrote (its page objects are not compressed)."""
    return len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf))


JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


def _assert_complete(seen: dict[str, Any], run_dir: Path) -> None:
    """Everything the notebooks recorded is in the report: no table left out, none cut, every table of
    every executed step, Japanese and English prose in every step, labels (not field names) in the
    summary, and the summary on the first A4 page."""
    import nbformat

    from opslib import evidence

    text = seen["text"]
    assert "left out" not in text and "省略" not in text, "no table is left out"
    cut = re.findall(r".{0,40}(?:…|\S\.\.\.(?:\s|$)).{0,40}", text)
    assert cut == [], f"a value is cut short: {cut}"
    m = _manifest(run_dir)
    sections = {s["id"]: s for s in seen["steps"]}
    for step in m["steps"]:
        notebook = run_dir / str(step.get("notebook") or "")
        if not notebook.is_file():
            continue
        nb = nbformat.read(notebook, as_version=4)
        recorded = sum(
            1
            for c in nb.cells
            if c.cell_type == "code"
            for o in c.get("outputs", [])
            if {evidence.TABLE_MIME, evidence.FACTS_MIME} & set(o.get("data") or {})
        )
        section = sections[f"step-{step['name']}"]
        assert recorded > 0 and section["tables"] == recorded, (step["name"], section["tables"], recorded)
        assert section["prose"], step["name"]
        for paragraphs in section["prose"]:
            english = [p for p in paragraphs if not JAPANESE.search(p) and re.search(r"[A-Za-z]{4,}", p)]
            japanese = [p for p in paragraphs if JAPANESE.search(p)]
            assert english and japanese, (step["name"], paragraphs)
    summary = seen["summary_text"]
    names = set(m["facts"]) | {k for s in m["steps"] for k in (s.get("facts") or {})}
    leaked = sorted(n for n in names if "_" in n and n in summary)
    assert leaked == [], f"internal field names in the summary: {leaked}"
    assert not re.search(r"\b(True|False|None)\b", summary), "booleans are words"
    assert seen["summary_pdf_pages"] == 1 and seen["pdf_pages"] > 1, "the summary fills the first A4 page"


def _assert_readable(seen: dict[str, Any], report: Path) -> None:
    assert seen["errors"] == [], "console errors"
    assert seen["requests"] == [report.as_uri()], "the page fetches nothing but itself"
    box = seen["box"]
    assert box["x"] >= 0 and box["y"] >= 0
    assert box["x"] + box["width"] <= VIEWPORT["width"] and box["y"] + box["height"] <= VIEWPORT["height"], (
        f"the summary does not fit the viewport without scrolling: {box}"
    )
    assert seen["scroll_width"] <= VIEWPORT["width"], "no horizontal scrolling"
    text = seen["text"]
    cut = [c for c in seen["cells"] if "…" in c or re.search(r"\S\.\.\.(\s|$)", c)]
    assert cut == [], "a value is cut short"
    assert "…" not in seen["summary_text"]
    assert "Traceback" not in text and 'File "' not in text and "---------" not in text
    assert "opslib.connect(" not in text and "# Parameters" not in text, "no code, no parameters cell"
    assert "概要" in text and "Summary" in text, "both languages"
    markup = report.read_text(encoding="utf-8")
    assert "<script" not in markup and "<link" not in markup and "http://" not in markup.split("<body>")[0]


def test_the_runner_writes_the_report_into_the_evidence(runs: tuple[Setup, Path, Path]) -> None:
    _, ok_dir, failed_dir = runs
    for run_dir in (ok_dir, failed_dir):
        assert "report.html" in _manifest(run_dir)["files"], "hashed with the rest of the run"
        assert cli.main(["evidence", "verify", str(run_dir)]) == 0


def test_the_report_of_a_renewal_in_a_real_browser(runs: tuple[Setup, Path, Path]) -> None:
    setup, ok_dir, _ = runs
    report = ok_dir / "report.html"
    shot = DOCS_PNG if os.environ.get("OPSLIB_WRITE_DOCS") == "1" else None
    seen = _open(report, screenshot=shot)
    _assert_readable(seen, report)
    _assert_complete(seen, ok_dir)
    m = _manifest(ok_dir)
    facts = m["facts"]
    summary = seen["summary_text"]
    for value in (
        m["host"],
        m["site"],
        m["operator"],
        facts["old_thumbprint"],
        facts["new_thumbprint"],
        facts["backup_file"],  # the full path, wrapped rather than cut
        facts["backup_sha256"],
        "JST",
        "UTC",
        "合格 / passed",
        "確定前に作成 / written before finalizing",  # the runner writes it just before finalizing
        f"opslib evidence verify {ok_dir}",
    ):
        assert value in summary or value.replace("\\", "") in summary.replace("\n", ""), value
    assert setup.reh.host.sites[1].ssl_cert_hash == facts["new_thumbprint"]
    # What changed: every row's before differs from its after; the swap's certificate change is there.
    changes = [row for row in seen["changes"] if len(row) == 5]
    assert changes and all(row[3] != row[4] for row in changes)
    assert [
        "02",
        'W3SVC/1 "www1.example.jp"',
        "SSLCertHash",
        facts["old_thumbprint"],
        facts["new_thumbprint"],
    ] in [[c.replace("\n", "") for c in row] for row in changes]
    # One section per step, with the notebook's prose and the recorded facts in full.
    text = seen["text"]
    for step in m["steps"]:
        assert step["name"].split("_")[0] + " — " in text
    assert "How to undo it." in text and "記録された事実 / Recorded facts" in text
    assert facts["key_container"] in text and facts["chain"] in text


def test_a_failed_step_reads_as_its_message(runs: tuple[Setup, Path, Path], tmp_path: Path) -> None:
    _, _, failed_dir = runs
    m = _manifest(failed_dir)
    assert m["failed_step"] == "02_swap_certificate"
    seen = _open(failed_dir / "report.html")
    _assert_readable(seen, failed_dir / "report.html")
    _assert_complete(seen, failed_dir)
    assert (
        "失敗 / failed" in seen["summary_text"]
        and "この手順はここで失敗しました / This step failed here" in seen["text"]
    )
    error = next(s["error"] for s in m["steps"] if s["name"] == "02_swap_certificate")
    assert error and error in seen["text"].replace("\n", " ")
    # It opens with what happened, in plain words in each language: what failed, what production serves
    # now (the read-only handshake and its time), what changed so far, the next commands the console printed.
    now = m["production_now"]
    happened = seen["what_happened"]
    japanese, english = happened["ja"], happened["en"]
    assert "手順 02 (サーバIDの入替え) が失敗しました" in japanese
    assert "Step 02 (Swap the production certificate) failed" in english
    assert now["thumbprint"] == m["facts"]["production_thumbprint_before"] and not now["unreachable"]
    handshake_at = re.search(r"at (\S+)T(\S+)Z", now["source"])
    assert handshake_at and f"{handshake_at[1]} {handshake_at[2]} UTC" in english
    assert (
        f"serves the old certificate {now['thumbprint']}" in english
        and "読み取り専用の TLS ハンドシェイク" in japanese
    )
    assert (
        "Before that, steps 00 and 01 changed the server" in english
        and "手順 00 と 01 がサーバを変更しました" in japanese
    )
    assert m["next_commands"] and happened["commands"] == m["next_commands"]
    assert any(f"opslib resume {failed_dir}" in c for c in happened["commands"])
    assert "Traceback" not in happened["text"] and "VerificationFailed" not in seen["summary_text"]
    # The failed check's detail: the problem, with the exit code and what the server said.
    failed_row = next(row for row in seen["checks"] if "失敗 / failed" in row[1])
    assert "what failed" in failed_row[2] and "exited with 5" in failed_row[2], failed_row
    assert "未実行 / not run" in seen["summary_text"], "the steps after the failure"

    # The command writes a fresh one, outside the run folder; English only on request.
    out = tmp_path / "failed.html"
    assert cli.main(["evidence", "report", str(failed_dir), "--lang", "en", "--out", str(out)]) == 0
    english = out.read_text(encoding="utf-8")
    assert 'lang="ja"' not in english and "This step failed here" in english and "概要" not in english
    assert re.search(
        r"integrity not provable without the HMAC key</span></span></td><td><span lang=\"en\">\d+ files match "
        r"their SHA-256",
        english,
    ), "verified now; unsigned, so not called intact"
    assert cli.main(["evidence", "verify", str(failed_dir)]) == 0, "the run folder is untouched"


def test_a_failure_is_printed_once_with_the_hint_that_fits(runs: tuple[Setup, Path, Path]) -> None:
    """The failed swap's console: the error once, one spelling of the next commands, "wrote rollback.yaml"
    once, and for "access denied" (exit 5) a hint about the account's rights, not the connection."""
    _, _, failed_dir = runs
    console = CONSOLE["failed"]
    assert console.count("opslib: error: ") == 1 and console.count("the IIS helper printed no JSON") == 1, (
        console
    )
    assert console.count(f"wrote {failed_dir / 'rollback.yaml'}") == 1
    assert "exit 5 is access denied: the WinRM account lacks the rights to change IIS" in console
    assert "check the connection" not in console
    assert "opslib resume RUN" not in console and "--params FILE" not in console, (
        "one spelling: the next lines"
    )
    assert console.count(f"opslib resume {failed_dir} --yes") == 1
    assert "failed: step 02_swap_certificate — the error and what to do next follow" in console


def test_the_expected_failure_of_the_sha256_probe_is_no_nonzero_exit(
    runs: tuple[Setup, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Server 2003's certutil cannot hash with SHA-256: the run's first try is a probe, not a failure."""
    _, ok_dir, _ = runs
    rows = [
        json.loads(line) for line in (ok_dir / "transcript.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    hashing = [r for r in rows if "-hashfile" in str(r.get("command_line")) and r.get("exit_code")]
    assert hashing and all(r["exit_code"] == -2146893816 for r in hashing), (
        "NTE_BAD_ALGID: no SHA-256 on 2003"
    )
    assert _manifest(ok_dir)["commands"]["nonzero_exits"] == 0
    assert cli.main(["evidence", "list", "--root", str(ok_dir.parent)]) == 0
    (line,) = [row for row in capsys.readouterr().out.splitlines() if row.startswith(ok_dir.name)]
    assert re.search(r"\s0 \(\+\d+ probes\)$", line), line


def test_a_missing_chromium_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setenv("CI", "1")
    with pytest.raises(
        pytest.fail.Exception, match="chromium is not installed .* CI is set, so this is a failure"
    ):
        _browser()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="chromium is not installed"):
        _browser()


def test_a_fresh_report_goes_into_the_run_folder_outside_the_sealed_record(
    runs: tuple[Setup, Path, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    _, ok_dir, _ = runs
    sealed = (ok_dir / "run.json").read_bytes()
    assert json.loads(sealed)["not_sealed"] == "regenerated/", "run.json says what is not sealed"
    # Among the sealed files: refused, nothing written.
    assert cli.main(["evidence", "report", str(ok_dir), "--out", str(ok_dir / "again.html")]) == 2
    assert "among the run folder's sealed files" in capsys.readouterr().err
    assert not (ok_dir / "again.html").exists()
    # By default it goes into the run folder's regenerated/ subfolder, wherever the command runs.
    monkeypatch.chdir(tmp_path)
    assert cli.main(["evidence", "report", str(ok_dir), "--lang", "ja"]) == 0
    (written,) = (ok_dir / "regenerated").iterdir()
    assert capsys.readouterr().out.strip() == str(written)
    assert re.fullmatch(r"report-\d{8}T\d{6}Z-ja\.html", written.name)
    assert list(tmp_path.iterdir()) == [], "nothing in the current folder"
    japanese = written.read_text(encoding="utf-8")
    assert 'lang="en"' not in japanese and "概要" in japanese
    assert "HMAC 鍵がないため完全性を証明できません" in japanese and "問題なし" not in japanese
    # The sealed record is unchanged; verify stays clean and lists the new file apart.
    assert (ok_dir / "run.json").read_bytes() == sealed
    for args in ([str(ok_dir)], ["--root", str(ok_dir.parent)]):
        assert cli.main(["evidence", "verify", *args]) == 0
        out = capsys.readouterr().out
        assert out.startswith("ok: ")
        assert f"{written}: not part of the sealed record (made from the run later, never hashed)" in out
    assert cli.main(["evidence", "verify", str(ok_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["runs"][0]["not_sealed"] == [str(written)]
    # --out outside the run folder writes there; show lists only the sealed renders.
    assert cli.main(["evidence", "report", str(ok_dir), "--out", str(tmp_path / "copy.html")]) == 0
    assert (tmp_path / "copy.html").is_file() and capsys.readouterr().out.strip() == str(
        tmp_path / "copy.html"
    )
    assert cli.main(["evidence", "show", str(ok_dir)]) == 0
    assert "regenerated/" not in capsys.readouterr().out, "show's renders are the sealed ones"
    written.unlink()
    (ok_dir / "regenerated").rmdir()


def test_the_inspect_notebook_reads_several_sources_with_sni_and_a_ca_file(
    runs: tuple[Setup, Path, Path], tmp_path: Path
) -> None:
    """The inspect notebook (not the report, but the same live rehearsal host): the mailed certificate
    and the production endpoint together, with the SNI name and the CA file of the parameters."""
    import nbformat
    import papermill
    import yaml

    setup, ok_dir, _ = runs
    params = yaml.safe_load(setup.params_file.read_text(encoding="utf-8"))
    verify = params["verify"]
    out = tmp_path / "inspect.ipynb"
    papermill.execute_notebook(
        str(Path(__file__).resolve().parent.parent / "notebooks" / "inspect_certificate.ipynb"),
        str(out),
        parameters={
            "source": "",
            "sources": [params["certificate_file"], verify["endpoint"]],
            "servername": verify["servername"],
            "ca_file": verify["ca_file"],
            "expected_hostnames": [verify["servername"]],
        },
        kernel_name="python3",
        cwd=str(tmp_path),
        progress_bar=False,
    )
    nb = nbformat.read(out, as_version=4)
    first = json.dumps(nb.cells[3].get("outputs", []))  # the sources table, after the injected parameters
    for source in (params["certificate_file"], verify["endpoint"], verify["ca_file"]):
        assert source in first, f"{source} is one of the sources read"
    served = _manifest(ok_dir)["facts"]["new_thumbprint"]
    text = json.dumps([c.get("outputs", []) for c in nb.cells])
    assert served in text, "the endpoint, reached with the SNI name, serves the renewed certificate"
    chains = json.dumps(
        next(c for c in nb.cells if c.source.startswith('pd.DataFrame(report["chains"]')).outputs
    )
    assert "True" in chains, "a complete chain to a root of the CA file"


def test_the_reports_of_a_dry_run_and_a_rollback(runs: tuple[Setup, Path, Path]) -> None:
    """Last in this module: it adds a dry run and a rollback to the failed run's host and evidence."""
    _, _, failed_dir = runs
    root = failed_dir.parent
    params_file = next(p for p in (failed_dir.parent.parent / "params").glob("*.yaml"))
    assert cli.main(["run", str(params_file), "--evidence-root", str(root), "--dry-run"]) == 0
    assert cli.main(["run", str(failed_dir / "rollback.yaml"), "--yes"]) == 0
    dry_dir, rollback_dir = sorted(
        p for p in root.iterdir() if (p / "run.json").is_file() and p != failed_dir
    )
    assert _manifest(dry_dir)["dry_run"] and _manifest(rollback_dir)["mode"] == "rollback"

    dry = _open(dry_dir / "report.html")
    _assert_readable(dry, dry_dir / "report.html")
    _assert_complete(dry, dry_dir)
    assert "ドライラン / dry run" in dry["summary_text"]
    planned = [row for row in dry["changes"] if len(row) == 5]
    assert planned and not any("unchanged" in row[4] or "already" in row[4] for row in planned), (
        "a no-op of the plan is not a change"
    )
    assert (
        "変更予定 (ドライラン: 何も変更していません) / Planned changes (dry run: nothing was changed)"
        in dry["summary_text"]
    )

    back = _open(rollback_dir / "report.html")
    _assert_readable(back, rollback_dir / "report.html")
    _assert_complete(back, rollback_dir)
    assert "what_happened" not in back and "what_happened" not in dry, (
        "a run that passed opens with its summary"
    )
    m = _manifest(rollback_dir)
    assert "ロールバック / rollback" in back["summary_text"] and "合格 / passed" in back["summary_text"]
    assert "戻した証明書 / Certificate put back" in back["summary_text"]
    assert m["facts"]["restored_thumbprint"] in back["summary_text"]


def test_a_server_without_sha256_is_named_beside_the_host(runs: tuple[Setup, Path, Path]) -> None:
    """Server 2003 has no certutil -hashfile SHA256: every transfer was checked by size, and the report
    says so once, beside the host (run.json: server_has_sha256 false, size_only_checks names why)."""
    _, ok_dir, _ = runs
    m = _manifest(ok_dir)
    assert m["server_has_sha256"] is False
    assert any("no certutil -hashfile SHA256" in line for line in m["size_only_checks"])
    html_text = (ok_dir / "report.html").read_text(encoding="utf-8")
    assert "no SHA-256, transfers by size" in html_text and "SHA-256 なし、転送はサイズで確認" in html_text
    assert "SHA-256 failed, checked by size" not in html_text  # no transfer failed on a server that has it
