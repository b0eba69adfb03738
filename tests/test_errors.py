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
                host="web01", command="reg query X", exit_code=1, stderr="ERROR:\n not found", what="read"
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
