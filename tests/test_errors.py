"""opslib.errors: one place formats every message as ``where: problem — hint``."""

from __future__ import annotations

import pytest

from opslib import errors


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (errors.OpsError("it broke", hint="run again"), "it broke — run again"),
        (errors.OpsError(hint="run again"), "run again"),
        (
            errors.ParameterError("winrm.url", "missing", source="p.yaml", hint="give it"),
            "p.yaml: winrm.url: missing — give it",
        ),
        (errors.ParameterError("winrm.url", "missing"), "winrm.url: missing"),
        (
            errors.UnsafeArgument("argument 1", "it contains a percent sign"),
            "argument 1: it contains a percent sign; cmd.exe cannot carry it safely, so nothing was sent "
            "— choose a value without it",
        ),
        (errors.SecretUnavailable("env:PW", "is not set"), "secret env:PW: is not set"),
        (
            errors.CertificateError("mail.eml", "holds no certificate", hint="give the mail"),
            "mail.eml: holds no certificate — give the mail",
        ),
        (errors.ConnectionFailed("https://web01/wsman"), "https://web01/wsman"),
        (
            errors.WSManFault("https://web01/wsman", 2150858843, "shell gone", hint="while trying to run"),
            "https://web01/wsman: WS-Management fault 2150858843 (0x8033805B): shell gone — while trying to run",
        ),
        (
            errors.CommandTimedOut("u", "certutil -store", 2),
            "u: command timed out after 2 s: certutil -store — the command was terminated; "
            "check the server, then run again (or resume)",
        ),
        (
            errors.RemoteCommandFailed(
                host="web01",
                command="reg query X",
                remote_exit_code=1,
                stderr="ERROR:\n not found",
                what="read",
            ),
            "web01: read: `reg query X` exited with 1 (0x00000001); the server said: ERROR: not found",
        ),
        (
            errors.CapabilityMissing("web01", "cscript", hint="install WSH"),
            "web01: the server lacks cscript; nothing was changed — install WSH",
        ),
        (errors.VerificationFailed("web01", "binding not set"), "web01: check failed: binding not set"),
        (
            errors.StepFailed("01", "01.ipynb", "boom", cell=4, hint="resume"),
            "step 01 failed, cell 4: boom (notebook: 01.ipynb) — resume",
        ),
        (errors.EvidenceError("ev/run", "run.json is damaged"), "ev/run: run.json is damaged"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, errors.OpsError) else "",
)
def test_message_is_where_problem_hint(error: errors.OpsError, text: str) -> None:
    assert str(error) == text
    assert error.problem in text


def test_hint_set_later_still_shows() -> None:
    exc = errors.PreconditionFailed("web01", "no pending request")
    exc.hint = "run certreq -new first"
    assert str(exc) == "web01: no pending request — run certreq -new first"


# --- the CLI's exit code is the kit's, never a remote program's ------------------------------------------


def _every_ops_error() -> list[type[errors.OpsError]]:
    import importlib
    import pkgutil

    import opslib

    for info in pkgutil.walk_packages(opslib.__path__, "opslib."):
        if not info.name.endswith(".__main__"):  # running it would start the command line
            importlib.import_module(info.name)
    found: list[type[errors.OpsError]] = []
    todo = [errors.OpsError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(set(found), key=lambda c: f"{c.__module__}.{c.__qualname__}")


def _instance(cls: type[errors.OpsError]) -> errors.OpsError:
    """``cls`` built with placeholder arguments: every int is 256 (a remote exit code that is 0 mod 256)."""
    import inspect

    kwargs: dict[str, object] = {}
    for name, param in list(inspect.signature(cls).parameters.items()):
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or param.default is not param.empty:
            continue
        annotation = str(param.annotation)
        kwargs[name] = (
            256
            if "int" in annotation
            else 2.0
            if "float" in annotation
            else ()
            if "Sequence" in annotation
            else errors.StepFailed("02_swap", "02.ipynb", "cause")
            if "StepFailed" in annotation
            else "x"
        )
    return cls(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("cls", _every_ops_error(), ids=lambda c: c.__qualname__)
def test_every_ops_error_leaves_the_cli_with_1_or_2(
    cls: type[errors.OpsError], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from opslib import cli
    from opslib.runbook.signals import Interrupted

    error = _instance(cls)

    def fail(args: object) -> int:
        raise error

    monkeypatch.setitem(cli._COMMANDS, "inspect", fail)
    code = cli.main(["inspect", "x"])
    if isinstance(error, Interrupted):
        assert code == 128 + error.signum  # the shell's convention for "killed by signal N"
    else:
        assert code == (2 if isinstance(error, errors.UsageError) else 1), cls
    assert capsys.readouterr().err.startswith("opslib: error: ")


def test_a_remote_exit_code_of_256_is_named_and_the_cli_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from opslib import cli

    def fail(args: object) -> int:
        raise errors.RemoteCommandFailed(host="web01", command="echo %SystemRoot%", remote_exit_code=256)

    monkeypatch.setitem(cli._COMMANDS, "inspect", fail)
    assert cli.main(["inspect", "x"]) == 1
    assert "`echo %SystemRoot%` exited with 256 (0x00000100)" in capsys.readouterr().err


def test_the_error_line_escapes_what_came_from_outside(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A certificate subject or a server's answer in an error reaches the terminal escaped; a Windows path
    keeps its single backslashes."""
    from opslib import cli

    def fail(args: object) -> int:
        raise errors.CertificateError(
            r"C:\certs\mail.eml", "subject CN=\x1b[2J\x1b]0;owned\x07www1 \u202egnp.exe", hint="give the mail"
        )

    monkeypatch.setitem(cli._COMMANDS, "inspect", fail)
    assert cli.main(["inspect", "x"]) == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err and "\u202e" not in err
    assert r"\x1b[2J\x1b]0;owned\x07www1 \u202egnp.exe" in err
    assert err.startswith("opslib: error: C:\\certs\\mail.eml: subject CN=")


def test_which_errors_are_refusals_before_any_change() -> None:
    """The typed field a failed step records (``server_changed: false``) comes from the error's class,
    its name taken from the kernel's error output — never from the message text."""
    refusals = ["PreconditionFailed", "SiteNotFound", "CertificateError", "EndpointError", "ParameterError"]
    assert all(errors.raised_before_any_change(name) for name in refusals)
    others = ["VerificationFailed", "StepFailed", "OpsError", "RemoteCommandFailed", "ValueError", ""]
    assert not any(errors.raised_before_any_change(name) for name in others)
    failed = errors.StepFailed(
        "02_swap_certificate", "x.ipynb", "VerificationFailed: … PreconditionFailed: …"
    )
    assert failed.server_changed is None, "a message naming a refusal is not one"


def test_a_reader_that_goes_away_ends_the_output_without_a_traceback() -> None:
    """`opslib inspect FILE | head`: the pipe's reader is gone before the kit writes; no traceback, exit
    141 (128 + SIGPIPE) as other shell tools."""
    import subprocess
    import sys
    from pathlib import Path

    pem = Path(__file__).parent / "fixtures" / "real_g5_root_and_cross.pem"
    proc = subprocess.Popen(
        [sys.executable, "-m", "opslib", "inspect", str(pem)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the child has imported anything: its first write finds no reader
    err = proc.stderr.read().decode("utf-8", "replace")
    assert proc.wait(timeout=60) == 141, err
    assert "Traceback" not in err, err
