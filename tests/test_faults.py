"""Fault matrix (issue 7 part 1): every remote command of steps 0–3 × the rehearsal host's faults.

1. A clean renewal against a fresh host enumerates the remote commands (``host.history``): for each,
   its step and its ``PROGRAM#N`` ordinal counted from the start of the step (faults are set there).
2. Matrix: for each command and each fault of :data:`FAULTS`, the host is put back into the clean
   run's state at the start of that step, the fault is set, and the step's notebook runs as the
   runbook's ``inprocess`` step engine runs it (papermill, the cells in this process, the parameters the
   runbook would pass — no kernel). Then: the
   error is an ``OpsError`` naming the cause; the production site holds the old or the new certificate,
   fully bound and with its key; the faults are cleared and the steps from the failed one run again
   (what ``opslib resume`` does) and the renewal completes; no kit temp folder is left behind.
   By default each *kind* of command runs (same step, same command line up to temp names, same
   number of changes made before it in the step); ``OPSLIB_FAULTS_FULL=1`` runs every command.
   Each (command, fault) is its own test (``-k "02-cscript-3 and after-drop"``). Pytest needs the ids at
   collection, so the clean run's commands are committed in :data:`COMMANDS_FILE`;
   ``test_the_committed_commands_are_the_clean_runs`` checks them against the clean run
   (``OPSLIB_FAULTS_WRITE=1`` rewrites the file). The waits are short: the swap journal is polled every
   :data:`JOURNAL_POLL_S` for :data:`JOURNAL_WAIT_S` (the rehearsal helper writes it before it answers),
   the WinRM deadlines are short (:data:`FAST`).
3. Runbook level (papermill; the in-process step engine, as every test of this tier unless marked kernel):
   one case per step and a production site that will not start after the swap — exit 1, run.json, the
   failed notebook, the secret scan, ``resume``.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import conftest
import papermill
import pytest
import yaml
from papermill.exceptions import PapermillExecutionError
from secretscan import assert_no_secrets

from opslib import certs, cli, evidence, params, rehearsal, runbook
from opslib.errors import OpsError
from opslib.rehearsal import cmd
from opslib.rehearsal.host import STARTED, STOPPED, Host
from opslib.runbook import inprocess
from opslib.server import regfile, stores
from opslib.winrm import stale_temp_dirs

ROOT = Path(__file__).resolve().parent.parent
STEPS = [s for s in runbook.RENEW_STEPS if s.changes_server]
FAULTS = ("before:{}:drop", "after:{}:drop", "after:{}:timeout", "after:{}:fault500", "before:{}:fail")
FULL = os.environ.get("OPSLIB_FAULTS_FULL") == "1"
# Short deadlines (whole seconds; the read timeout must exceed the OperationTimeout): a timed-out command
# costs ~2 s (OperationTimeout 1 s, command cap 2 s). A 1 s cap was the smallest the parameters file
# accepts, but a loaded 2-core machine let the emulated certutil -exportPFX run past it (a false failure).
FAST = {"operation_timeout_s": 1, "read_timeout_s": 3, "command_timeout_s": 2}
RELAXED = {"operation_timeout_s": 5, "read_timeout_s": 30, "command_timeout_s": 60}
# The swap's journal wait after a lost connection (opslib.iis.iis6_swap): the kit polls every 1 s for the
# whole swap deadline (180 s); the rehearsal's helper has written its journal before it answers, so a
# journal that does not say "ended" at the first read never will (``before:cscript#N:drop``).
JOURNAL_POLL_S = 0.05
JOURNAL_WAIT_S = 1
_THUMB = re.compile(r"\b[0-9A-F]{40}\b")
COMMANDS_FILE = ROOT / "tests" / "golden" / "fault_commands.txt"
WRITE = os.environ.get("OPSLIB_FAULTS_WRITE") == "1"
# What a fault's cause looks like in the error message.
CAUSES = {
    "drop": r"connection failed or dropped|connection dropped",
    "timeout": r"did not finish within|timed out|TimedOut",
    "fault500": r"injected fault|cannot process the request",
    "fail": r"exited with 5 |exit code 5\b|ADSI|did not|reads back|no JSON|not a usable|does not|no longer",
}
# What the matrix ran, in pytest's terminal summary (added up over xdist workers by tests/conftest.py).
COUNTS = conftest.summary_counts(
    "fault matrix",
    "fault matrix: {commands} remote commands enumerated, {cases} faults injected in-process ({failed} stopped "
    "the step, {tolerated} tolerated), {resumed} resumes completed; runbook level: {runbook_cases} cases, "
    "{runbook_resumes} resumes" + (" (full matrix)" if FULL else ""),
    ("commands", "cases", "failed", "tolerated", "resumed", "runbook_cases", "runbook_resumes"),
    same=("commands",),  # every worker's clean run enumerates the same commands
)
_MUTATING = re.compile(
    r"^(certutil (-\S+ )*-(repairstore|addstore|exportPFX)|certutil -p |certreq -accept |cscript .* (set-cert|clear-cert|start|stop|swap) )",
    re.I,
)


# --- running the step notebooks in-process ------------------------------------------------------


def _ops_error_names() -> set[str]:
    """The class names of every :class:`OpsError` (what a failed cell's ``ename`` must be)."""
    names, todo = set(), [OpsError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names


@dataclass
class StepError(Exception):
    """A step's notebook failed: the cell papermill names, and the error as the notebook recorded it."""

    step: str
    cell: int | None
    ename: str
    evalue: str


class Notebooks:
    """The step notebooks run as the runbook's ``inprocess`` step engine runs them: papermill with the
    in-process engine (:mod:`opslib.runbook.inprocess`), the parameters the runbook would pass (only the
    declared ones), the facts read from the executed notebook, a failed cell's connections closed as a
    dying kernel's ``atexit`` closes them."""

    def __init__(self) -> None:
        self.engine = inprocess.register()
        self.declared = {
            s.name: list(runbook.declared_parameters(ROOT / "notebooks" / s.notebook)) for s in STEPS
        }

    def run_step(self, step: runbook.Step, values: dict[str, Any], facts: dict[str, Any]) -> dict[str, Any]:
        """Run one step as the runbook would; return its recorded facts (:class:`StepError` on a failure)."""
        passed = runbook.notebook_parameters(step, self.declared[step.name], values, facts)
        output = Path(str(values["run_dir"])) / step.notebook
        try:
            papermill.execute_notebook(
                str(ROOT / "notebooks" / step.notebook),
                str(output),
                parameters=passed,
                engine_name=self.engine,
                kernel_name="python3",
                progress_bar=False,
                request_save_on_cell_execute=False,
            )
        except PapermillExecutionError as exc:
            raise StepError(step.name, exc.exec_count, exc.ename, exc.evalue) from None
        return evidence.read_facts(output)

    def run(self, values: dict[str, Any], facts: dict[str, Any], start: int = 0) -> dict[str, Any]:
        """Steps ``start``…3 in order; facts accumulate as the runbook passes them on."""
        facts = dict(facts)
        for step in STEPS[start:]:
            facts.update(self.run_step(step, values, facts))
        return facts


# --- the host: snapshots at step boundaries -------------------------------------------------------

_STATE = ("registry", "registry_case", "files", "file_case", "dirs", "sites", "extra", "env")


def snapshot(host: Host) -> dict[str, Any]:
    with host.lock:
        snap = {name: copy.deepcopy(getattr(host, name)) for name in _STATE}
        snap["keys"] = dict(host.keys)  # KeyPair values are never changed in place
    return snap


def without_run_folders(snap: dict[str, Any]) -> None:
    """Drop the kit's temp folders (and their files) from a snapshot."""
    folders = {d for d in snap["dirs"] if re.search(r"\\opslib-[0-9a-f]{12}$", d)}
    snap["dirs"] = {d for d in snap["dirs"] if d not in folders}
    for name in ("files", "file_case"):
        snap[name] = {k: v for k, v in snap[name].items() if k.rsplit("\\", 1)[0] not in folders}


def end_of_run(values: dict[str, Any]) -> None:
    """What the runner does at a run's end besides the lock: remove the run's temp folder, read back."""
    from opslib.winrm import connect_params

    with connect_params(
        dict(values["winrm"]), host=str(values["host"]), run_dir=str(values["run_dir"])
    ) as conn:
        conn.finish_run()


def restore(host: Host, snap: dict[str, Any]) -> None:
    """Put the host back into a state the clean run had (as a fresh host after steps 0…k-1 would be)."""
    with host.lock:
        for name in _STATE:
            setattr(host, name, copy.deepcopy(snap[name]))
        host.keys = dict(snap["keys"])
        host.history.clear()
    host.save_state()


def kit_temp_dirs(host: Host) -> list[str]:
    return sorted(d for d in host.dirs if re.search(r"\\opslib-[0-9a-f]{12}$", d))


# --- the clean run ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Remote:
    """One remote command of the clean run."""

    step: int
    program: str
    nth: int  # ordinal of this program's commands within the step (faults are set at the step's start)
    line: str
    shape: str  # the line without temp names, base64 and the PFX password
    changes_before: int  # mutating commands run earlier in the same step

    @property
    def target(self) -> str:
        return f"{self.program}#{self.nth}"

    def __str__(self) -> str:
        return f"step {STEPS[self.step].name[:2]} {self.target}: {self.shape[:90]}"


def _shape(line: str) -> str:
    line = re.sub(r'"?[A-Za-z]:\\[^"&]*\\opslib-[0-9a-f]{12}[^"& ]*"?', "<tmp>", line)
    line = re.sub(r"echo [A-Za-z0-9+/=]{16,}", "echo <base64>", line)
    return re.sub(r"-p \S+", "-p <password>", line)


@dataclass
class Clean:
    reh: rehearsal.Rehearsal
    values: dict[str, Any]
    snapshots: list[dict[str, Any]]  # host state at the start of each step (and after step 3)
    facts: list[dict[str, Any]]  # facts known at the start of each step
    commands: list[Remote]
    secrets: list[str]
    base: Path
    cases: Iterator[int] = field(default_factory=lambda: iter(range(1, 1_000_000)))

    @property
    def host(self) -> Host:
        return self.reh.host

    def new_values(self, name: str) -> dict[str, Any]:
        """Notebook values for a fresh run folder (each case has its own transcript)."""
        run_dir = self.base / "runs" / f"{next(self.cases):04d}_{name}"
        run_dir.mkdir(parents=True)
        return {
            **self.values,
            "run_dir": str(run_dir),
            "backup_directory": str(self.base / "backups" / run_dir.name),  # outside the evidence root
        }


@pytest.fixture(scope="module")
def _env() -> Iterator[list[str]]:
    with conftest.random_secrets("OPSLIB_FX_WINRM", "OPSLIB_FX_PFX") as values:
        yield values


def _params(reh: rehearsal.Rehearsal, base: Path, *, fast: bool) -> dict[str, Any]:
    data = reh.params(
        password_env="OPSLIB_FX_WINRM", pfx_password_env="OPSLIB_FX_PFX", backup_dir=str(base / "backups")
    )
    if fast:
        data["winrm"].update(FAST)
    return data


@pytest.fixture(scope="module")
def notebooks() -> Notebooks:
    """The one place the step notebooks run for the matrix (the runbook's in-process step engine)."""
    return Notebooks()


@pytest.fixture(scope="module", autouse=True)
def _short_waits() -> Iterator[None]:
    """The swap's journal wait in this process (the in-process steps): :data:`JOURNAL_POLL_S`, :data:`JOURNAL_WAIT_S`."""
    from opslib.iis import iis6_swap

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(iis6_swap, "_JOURNAL_POLL_S", JOURNAL_POLL_S)
        mp.setattr(iis6_swap, "SWAP_COMMAND_TIMEOUT_S", JOURNAL_WAIT_S)
        yield


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory, _env: list[str], notebooks: Notebooks) -> Iterator[Clean]:
    base = tmp_path_factory.mktemp("faults")
    reh = rehearsal.start(scenario="iis6-ja", password=_env[0], workdir=base / "host")
    try:
        data = _params(reh, base, fast=True)
        p = params.validate(data, source="faults", base_dir=base)
        values = {**p.notebook_values(), "dry_run": False}
        clean = Clean(reh, values, [], [], [], _env, base)
        run_values = clean.new_values("clean")
        facts: dict[str, Any] = {}
        for k, step in enumerate(STEPS):
            clean.snapshots.append(snapshot(reh.host))
            clean.facts.append(dict(facts))
            reh.host.history.clear()
            facts.update(notebooks.run_step(step, run_values, facts))
            counts: dict[str, int] = {}
            changes = 0
            for entry in reh.host.history:
                line = str(entry["command"])
                program = cmd.program_name(line)
                counts[program] = counts.get(program, 0) + 1
                shape = _shape(line)
                clean.commands.append(Remote(k, program, counts[program], line, shape, changes))
                changes += bool(_MUTATING.match(shape))
        end_of_run(run_values)
        clean.snapshots.append(snapshot(reh.host))
        clean.facts.append(facts)
        assert_renewed(clean, facts, where="the clean run")
        # A case starts a new run at step k (as `opslib resume` does): the clean run's own temp folder,
        # which its steps shared, is not on the host then (the clean run's end removed it).
        shared = kit_temp_dirs(reh.host)
        assert not shared, f"the clean run's end left {shared}"
        for snap in clean.snapshots:
            without_run_folders(snap)
        COUNTS["commands"] = len(clean.commands)
        yield clean
    finally:
        reh.stop()


# --- what must hold -------------------------------------------------------------------------------


def production_problems(host: Host, *, old: str, new: str, message: str = "") -> list[str]:
    """The invariant: production holds the old or the new certificate, fully bound, with its key."""
    site = host.sites[1]
    problems = []
    thumb = site.ssl_cert_hash.upper()
    if thumb not in (old, new):
        problems.append(f"production bound to {thumb or '(none)'}")
    if site.ssl_store_name.upper() != "MY" or not site.secure_bindings:
        problems.append(
            f"production half-bound: store {site.ssl_store_name!r}, bindings {site.secure_bindings}"
        )
    key = rf"{stores.STORE_KEYS['MY']}\Certificates\{thumb}"
    blob = host.reg_get(key, "Blob") if thumb else None
    if blob is None:
        problems.append(f"{thumb} is not in MY")
    else:
        props, _ = regfile.parse_blob(blob[2])
        container = (
            regfile.key_prov_info(props[regfile.KEY_PROV_INFO])[0] if regfile.KEY_PROV_INFO in props else ""
        )
        if container not in host.keys:
            problems.append(f"MY\\{thumb} has no private key on the host (container {container!r})")
    if site.state != STARTED and not re.search(r"DOWN|not start|did not start", message):
        problems.append(f"production is stopped (state {site.state}) and the message does not say so")
    return problems


def assert_renewed(clean: Clean, facts: dict[str, Any], *, where: str) -> None:
    host = clean.host
    new = host.extra["new_thumbprint"]
    production, work = host.sites[1], host.sites[2]
    assert (production.ssl_cert_hash.upper(), production.state) == (new, STARTED), where
    assert work.state == STOPPED, where
    assert not production_problems(host, old=new, new=new), where
    backup = Path(facts["backup_file"])
    bundle = certs.load_pkcs12(backup.read_bytes(), clean.secrets[1], source=backup.name)
    assert bundle.leaf is not None and certs.thumbprint(bundle.leaf) == new, where
    assert certs.key_matches(bundle.leaf, bundle.private_key), where


# --- the matrix -----------------------------------------------------------------------------------


def _selected_kinds(commands: list[Remote]) -> list[Remote]:
    """The default matrix's commands (``OPSLIB_FAULTS_FULL=1`` runs every command): the ones around each
    change: the run's first command, the last command of each step, every mutating command and the command
    right after it (its reply lost or its read-back failing is where a step must recognise its own work)."""
    out = []
    for n, c in enumerate(commands):
        first = n == 0  # connecting is the same code in every step
        last = n + 1 == len(commands) or commands[n + 1].step != c.step
        after_change = (
            n > 0 and commands[n - 1].step == c.step and commands[n - 1].changes_before < c.changes_before
        )
        if first or last or after_change or _MUTATING.match(c.shape):
            out.append(c)
    return out


def _case(clean: Clean, notebooks: Notebooks, command: Remote, template: str) -> list[str]:
    """One injected fault; returns the broken promises (empty = all held)."""
    spec = template.format(command.target)
    action = spec.rsplit(":", 1)[1]
    host, k = clean.host, command.step
    old, new = host.extra["current_thumbprint"], host.extra["new_thumbprint"]
    restore(host, clean.snapshots[k])
    values = clean.new_values(f"{STEPS[k].name[:2]}_{command.target}_{action}".replace("#", "-"))
    clean.reh.set_faults([spec])
    COUNTS["cases"] += 1
    broken: list[str] = []
    failure: StepError | None = None
    try:
        notebooks.run_step(STEPS[k], values, clean.facts[k])
    except StepError as exc:
        failure = exc
    finally:
        fired = clean.reh._server._fault_counts.get(clean.reh.faults[0], 0) >= command.nth
        clean.reh.set_faults([])
    if not fired:
        broken.append("the fault did not fire (the step ran other commands than in the clean run)")
    if failure is None:
        COUNTS["tolerated"] += 1  # the kit carried on (e.g. a best-effort cleanup that failed)
    else:
        COUNTS["failed"] += 1
        message = failure.evalue
        if failure.ename not in _ops_error_names():
            broken.append(f"not an OpsError: {failure.ename}: {message[:300]}")
        elif not re.search(CAUSES[action], message):
            broken.append(f"the message does not name the cause: {message[:400]}")
        if any(s in message for s in clean.secrets):
            broken.append("a secret in the message")
        broken += production_problems(host, old=old, new=new, message=message)
        left = kit_temp_dirs(host)
        known = {d.lower() for d in stale_temp_dirs(Path(values["run_dir"]) / "transcript.jsonl")}
        if any(d not in known for d in left):
            broken.append(f"a temp folder the run's transcript does not name: {left}")
    # Resume: the failed step and the rest, no faults.
    start = k if failure is not None else k + 1
    # The resume with the parameters file's usual deadlines (an operator may raise them on resume): only
    # the faulted run needs the short ones.
    relaxed = {**values, "winrm": {**values["winrm"], **RELAXED}}
    try:
        facts = notebooks.run(relaxed, {**clean.facts[k], **({} if failure else clean.facts[k + 1])}, start)
    except StepError as exc:
        return [
            *broken,
            f"resume failed in {exc.step} cell {exc.cell}: {exc.ename}: {exc.evalue}",
        ]
    if start == len(STEPS):
        facts = clean.facts[-1]
    try:
        if failure is not None or start < len(STEPS):
            assert_renewed(clean, facts, where="after the resume")
            COUNTS["resumed"] += 1
        else:
            assert_renewed(clean, clean.facts[-1], where="after the run")
    except AssertionError as exc:
        broken.append(f"not renewed after the resume: {exc}")
    try:
        end_of_run(values)
    except OpsError as exc:
        broken.append(f"the run's end failed: {exc}")
    if kit_temp_dirs(host):
        broken.append(f"temp folders left after the resume: {kit_temp_dirs(host)}")
    return broken


def command_lines(commands: list[Remote]) -> list[str]:
    """The committed form of the clean run's commands: ``step<TAB>target<TAB>selected<TAB>shape``, the
    shape with the host's thumbprints numbered in order of first appearance."""
    selected = {id(c) for c in _selected_kinds(commands)}
    seen: dict[str, str] = {}
    lines = []
    for c in commands:
        shape = _THUMB.sub(lambda m: seen.setdefault(m.group(0), f"<THUMB{len(seen) + 1}>"), c.shape)
        lines.append(f"{c.step}\t{c.target}\t{int(id(c) in selected)}\t{shape}")
    return lines


def committed_commands() -> list[tuple[int, str, bool]]:
    """(step, target, selected) of every command the committed clean run ran (read at collection)."""
    out = []
    for line in COMMANDS_FILE.read_text(encoding="utf-8").splitlines():
        step, target, selected, _shape_text = line.split("\t", 3)
        out.append((int(step), target, selected == "1"))
    return out


def _matrix() -> list[Any]:
    cases = []
    for step, target, selected in committed_commands():
        if not (selected or FULL):
            continue
        for template in FAULTS:
            when, _, action = template.split(":")
            case_id = f"{step:02d}-{target.replace('#', '-')}-{when}-{action}"
            cases.append(pytest.param(step, target, template, id=case_id))
    return cases


def test_the_committed_commands_are_the_clean_runs(clean: Clean) -> None:
    """The matrix's cases (collected from :data:`COMMANDS_FILE`) are the clean run's commands."""
    lines = command_lines(clean.commands)
    if WRITE:
        COMMANDS_FILE.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    committed = COMMANDS_FILE.read_text(encoding="utf-8").splitlines()
    assert lines == committed, (
        f"the clean run's remote commands differ from {COMMANDS_FILE.name}; "
        "if the change is meant, rewrite it with OPSLIB_FAULTS_WRITE=1 and review the diff"
    )


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("step", "target", "template"), _matrix())
def test_the_command_survives_the_fault(
    clean: Clean, notebooks: Notebooks, step: int, target: str, template: str
) -> None:
    (command,) = [c for c in clean.commands if (c.step, c.target) == (step, target)]
    broken = _case(clean, notebooks, command, template)
    assert not broken, f"{template.format(command.target)} ({command}):\n    " + "\n    ".join(broken)


def test_the_clean_run_enumerates_commands_of_every_step(clean: Clean) -> None:
    per_step = [sum(1 for c in clean.commands if c.step == k) for k in range(len(STEPS))]
    assert all(per_step), per_step
    mutating = {c.shape for c in clean.commands if _MUTATING.match(c.shape)}
    assert any("repairstore" in m for m in mutating) and any("certreq -accept" in m for m in mutating)
    assert any("set-cert" in m for m in mutating) and any("exportPFX" in m for m in mutating)
    assert any(" swap " in m for m in mutating)  # step 2's server-side transaction


# --- runbook level: papermill, the in-process step engine ---------------------------------------------------------


def test_a_production_site_that_will_not_start_is_rolled_back_and_resume_finishes(
    tmp_path: Path, _env: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    reh = rehearsal.start(scenario="iis6-ja", password=_env[0], workdir=tmp_path / "host")
    try:
        old, new = reh.host.extra["current_thumbprint"], reh.host.extra["new_thumbprint"]
        reh.host.extra["fail_start_thumbprints"] = [new]  # IIS will not start the site with the new one
        params_file = tmp_path / "params" / "web01.yaml"
        params_file.parent.mkdir()
        params_file.write_text(
            yaml.safe_dump(_params(reh, tmp_path, fast=False), sort_keys=False), encoding="utf-8"
        )
        root = tmp_path / "evidence"
        COUNTS["runbook_cases"] += 1
        assert cli.main(["run", str(params_file), "--evidence-root", str(root), "--yes"]) == 1
        err = capsys.readouterr().err
        (run_dir,) = [d for d in root.iterdir() if (d / "run.json").is_file()]
        assert re.search(r"step 02_swap_certificate failed, cell \d+: VerificationFailed: ", err)
        assert f"(notebook: {run_dir / '02_swap_certificate.ipynb'})" in err
        assert re.search(rf"rolled back to the previous certificate {old}", err)
        m = evidence_manifest(run_dir)
        assert (m["status"], m["failed_step"]) == ("failed", "02_swap_certificate")
        assert (run_dir / "02_swap_certificate.ipynb").is_file()
        production = reh.host.sites[1]
        assert (production.ssl_cert_hash, production.state) == (old, STARTED)
        assert not production_problems(reh.host, old=old, new=new)
        assert_no_secrets(run_dir, _env)

        reh.host.extra["fail_start_thumbprints"] = []  # the cause is fixed
        assert cli.main(["resume", str(run_dir), "--yes"]) == 0
        COUNTS["runbook_resumes"] += 1
        run_dir = max(d for d in root.iterdir() if (d / "run.json").is_file())  # the resume's own folder
        m = evidence_manifest(run_dir)
        assert m["mode"] == "resume"
        assert (m["status"], m["failed_step"]) == ("succeeded", None)
        assert (production.ssl_cert_hash, production.state) == (new, STARTED)
        assert reh.host.sites[2].state == STOPPED
        assert not kit_temp_dirs(reh.host), "a kit temp folder is left on the server"
        assert_no_secrets(run_dir, _env)
    finally:
        reh.stop()


def evidence_manifest(run_dir: Path) -> dict[str, Any]:
    import json

    return dict(json.loads((run_dir / "run.json").read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def full_run(clean: Clean, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """A whole clean run through the runbook (``opslib run --yes``, the in-process step engine) on the
    matrix's host: every command line in order, the runner's own (the server lock, its checks before each
    change, the run's end) included — what a fault position counted from the run's start counts."""
    base = tmp_path_factory.mktemp("full-run")
    restore(clean.reh.host, clean.snapshots[0])
    params_file = base / "web01.yaml"
    params_file.write_text(yaml.safe_dump(_params(clean.reh, base, fast=True), sort_keys=False), "utf-8")
    saved = os.environ.get(conftest.STEP_ENGINE_ENV)
    os.environ[conftest.STEP_ENGINE_ENV] = "inprocess"
    try:
        code = cli.main(["run", str(params_file), "--evidence-root", str(base / "evidence"), "--yes"])
    finally:
        if saved is None:
            os.environ.pop(conftest.STEP_ENGINE_ENV, None)
        else:
            os.environ[conftest.STEP_ENGINE_ENV] = saved
    assert code == 0
    lines = [str(entry["command"]) for entry in clean.reh.host.history]
    restore(clean.reh.host, clean.snapshots[0])
    return lines


def position_in_run(clean: Clean, full_run: list[str], target: Remote) -> str:
    """``PROGRAM#N`` of ``target`` counted from the run's start: the same-shaped command of the whole run
    (the runner's commands between the steps included), found by how many commands of that shape the
    steps ran before it."""
    earlier = sum(1 for c in clean.commands[: clean.commands.index(target)] if c.shape == target.shape)
    seen = 0
    for n, line in enumerate(full_run):
        if _shape(line) == target.shape:
            if seen == earlier:
                ordinal = sum(1 for x in full_run[: n + 1] if cmd.program_name(x) == target.program)
                return f"{target.program}#{ordinal}"
            seen += 1
    raise AssertionError(f"the whole run never sent {target.shape!r} (#{earlier + 1})")


RUNBOOK_CASES = [  # (step, the first command of the step whose shape matches, fault)
    (0, "-repairstore", "after:{}:drop"),
    (1, "certreq -accept -q", "after:{}:timeout"),
    (2, " swap ", "before:{}:fail"),  # the one server-side swap refused before it ran: nothing changed
    (3, "-exportPFX MY", "before:{}:fail"),
]


@pytest.mark.parametrize(
    "case", RUNBOOK_CASES, ids=lambda c: f"{c[0]:02d}-{c[2].split(':')[0]}-{c[2].split(':')[2]}"
)
def test_a_fault_stops_the_runbook_and_resume_completes(
    case: tuple[int, str, str],
    clean: Clean,
    full_run: list[str],
    tmp_path: Path,
    _env: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    k, needle, template = case
    target = next(c for c in clean.commands if c.step == k and needle in c.shape)
    spec = template.format(position_in_run(clean, full_run, target))  # counted from the run's start
    reh = rehearsal.start(scenario="iis6-ja", password=_env[0], workdir=tmp_path / "host", faults=[spec])
    try:
        old, new = reh.host.extra["current_thumbprint"], reh.host.extra["new_thumbprint"]
        params_file = tmp_path / "params" / "web01.yaml"
        params_file.parent.mkdir()
        params_file.write_text(
            yaml.safe_dump(_params(reh, tmp_path, fast=True), sort_keys=False), encoding="utf-8"
        )
        root = tmp_path / "evidence"
        COUNTS["runbook_cases"] += 1
        assert cli.main(["run", str(params_file), "--evidence-root", str(root), "--yes"]) == 1, spec
        err = capsys.readouterr().err
        (run_dir,) = [d for d in root.iterdir() if (d / "run.json").is_file()]
        step = STEPS[k].name
        assert re.search(rf"step {step} failed, cell \d+: \w+: ", err), err[-2000:]
        assert f"(notebook: {run_dir / STEPS[k].notebook})" in err
        m = evidence_manifest(run_dir)
        assert (m["status"], m["failed_step"]) == ("failed", step)
        assert (run_dir / STEPS[k].notebook).is_file()
        assert not production_problems(reh.host, old=old, new=new, message=str(m["error"]))
        assert_no_secrets(run_dir, _env)

        reh.set_faults([])
        assert cli.main(["resume", str(run_dir), "--yes"]) == 0
        COUNTS["runbook_resumes"] += 1
        run_dir = max(d for d in root.iterdir() if (d / "run.json").is_file())  # the resume's own folder
        m = evidence_manifest(run_dir)
        assert m["mode"] == "resume"
        assert (m["status"], m["failed_step"]) == ("succeeded", None)
        production = reh.host.sites[1]
        assert (production.ssl_cert_hash, production.state) == (new, STARTED)
        assert reh.host.sites[2].state == STOPPED
        assert m["facts"]["served_leaf_no_sni"] == new
        assert not kit_temp_dirs(reh.host), "a kit temp folder is left on the server"
        assert_no_secrets(run_dir, _env)
    finally:
        reh.stop()
