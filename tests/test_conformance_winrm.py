"""The WinRM conformance corpus (tests/conformance/winrm/): real servers' WS-Management answers.

(a) the kit decides correctly on the real bytes (pywinrm parses them as it parses any answer; the kit
decides by code and subcode); (b) the rehearsal host answers the same request with the same
decision-relevant shape (HTTP 500, code, subcode, FaultDetail; CommandState Running before Done); and the
kit's behaviour on it: a live shell that forgot a command is kept, never a second shell.
"""

from __future__ import annotations

import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import corpus
import pytest
import winrm
from conftest import REHEARSAL_PASSWORD
from winrm.exceptions import WinRMTransportError, WSManFaultError

from opslib import rehearsal
from opslib import winrm as transport
from opslib.errors import WSManFault
from opslib.winrm.wsman import ERROR_WSMAN_SHELL_NOT_FOUND, is_invalid_selectors

ENTRIES = {e.id: e for e in corpus.load("winrm")}
NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "f": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
}
ENVELOPE = (
    f'<s:Envelope xmlns:s="{NS["s"]}" xmlns:w="{NS["w"]}" xmlns:rsp="{NS["rsp"]}" '
    'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"><s:Header/><s:Body>{body}</s:Body></s:Envelope>'
)
STATE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/"


def _protocol(r: rehearsal.Rehearsal) -> winrm.protocol.Protocol:
    return winrm.protocol.Protocol(
        r.url,
        transport="basic",
        username=r.user,
        password=REHEARSAL_PASSWORD,
        server_cert_validation="ignore",
    )


def _replayed(answers: list[tuple[int, str]]) -> winrm.protocol.Protocol:
    """pywinrm's own Protocol whose transport hands back recorded answers, in order (real bytes in)."""
    p = winrm.protocol.Protocol("http://recorded.invalid:5985/wsman", username="u", password="p")
    queue = list(answers)

    def send_message(message: str | bytes) -> str:
        status, body = queue.pop(0)
        if status != 200:
            raise WinRMTransportError("http", status, ENVELOPE.format(body=body))
        return ENVELOPE.format(body=body)

    p.transport.send_message = send_message  # type: ignore[method-assign]
    return p


def _shape(fault_xml: str) -> tuple[int, str, str]:
    """(code, subcode, FaultDetail) of a SOAP fault: the decision-relevant part (no text)."""
    root = ET.fromstring(
        fault_xml if fault_xml.startswith("<s:Envelope") else ENVELOPE.format(body=fault_xml)
    )
    fault = root.find(".//s:Fault", NS)
    assert fault is not None
    code = fault.find("s:Detail/f:WSManFault", NS)
    assert code is not None
    return (
        int(code.get("Code", "0")),
        fault.findtext("s:Code/s:Subcode/s:Value", "", NS),
        fault.findtext("s:Detail/w:FaultDetail", "", NS),
    )


@pytest.fixture
def endpoint_and_shell(endpoint: rehearsal.Rehearsal) -> Iterator[tuple[rehearsal.Rehearsal, str]]:
    p = _protocol(endpoint)
    shell = p.open_shell()
    yield endpoint, shell
    p.close_shell(shell)


def test_every_winrm_entry_names_its_rows_and_source() -> None:
    assert set(ENTRIES) >= {"winrs-bad-cmd-id", "winrs-shell-gone", "receive-running-then-done"}
    for e in ENTRIES.values():
        assert "pypsrp" in e.source and re.search(r"/blob/[0-9a-f]{40}/", e.source)


# --- (a) the kit on the real bytes -----------------------------------------------------------------------


@pytest.mark.parametrize("entry", ["winrs-bad-cmd-id", "winrs-shell-gone"])
def test_the_real_fault_is_read_as_invalid_selectors_by_code_and_subcode(entry: str) -> None:
    e = ENTRIES[entry]
    p = _replayed([(500, e.output.strip())])
    with pytest.raises(WSManFaultError) as info:
        p.get_command_output_raw(
            "CCF84E0D-D0B5-4CFB-95B5-BCF3BFE15F36", "87E77BEB-6761-4C48-9D70-A00266B8459A"
        )
    assert (info.value.wsman_fault_code, info.value.fault_subcode) == (
        e.extra["fault_code"],
        "w:InvalidSelectors",
    )
    assert is_invalid_selectors(info.value.wsman_fault_code, info.value.fault_subcode)
    # The two real answers differ only in text: the kit cannot (and does not) tell them apart by the fault.
    assert _shape(e.output.strip())[:2] == (ERROR_WSMAN_SHELL_NOT_FOUND, "w:InvalidSelectors")


def test_other_codes_or_subcodes_are_not_invalid_selectors() -> None:
    assert not is_invalid_selectors(ERROR_WSMAN_SHELL_NOT_FOUND, "w:InvalidParameter")
    assert not is_invalid_selectors(2150858845, "w:InvalidSelectors")
    assert not is_invalid_selectors(None, None)


def test_the_real_running_answer_is_partial_output_and_not_done() -> None:
    e = ENTRIES["receive-running-then-done"]
    first, last = (line for line in e.output.strip().splitlines())
    p = _replayed([(200, first), (200, last)])
    cid = "D644AE56-61E5-4C1A-A135-E599B76B3035"
    out1, err1, _, done1 = p.get_command_output_raw("S", cid)
    out2, err2, code2, done2 = p.get_command_output_raw("S", cid)
    assert (out1, done1) == (b"hi\n", False)
    assert (out2, err1 + err2, code2, done2) == (b"hi again\n", b"", 0, True)
    assert out1 + out2 == e.extra["stdout"].encode()


# --- (b) the rehearsal host answers the same requests the same way -----------------------------------------


def test_rehearsal_answers_an_unknown_command_id_on_a_live_shell_as_the_recording(
    endpoint_and_shell: tuple[rehearsal.Rehearsal, str],
) -> None:
    endpoint, shell = endpoint_and_shell
    p = _protocol(endpoint)
    p.run_command(shell, "echoargs", ["x"])  # the shell has a command; another id is unknown
    with pytest.raises(WSManFaultError) as info:
        p.get_command_output_raw(shell, "87E77BEB-6761-4C48-9D70-A00266B8459A")
    assert info.value.code == 500
    assert _shape(info.value.response) == _shape(ENTRIES["winrs-bad-cmd-id"].output.strip())


def test_rehearsal_answers_a_gone_shell_as_the_recording(endpoint: rehearsal.Rehearsal) -> None:
    p = _protocol(endpoint)
    shell = p.open_shell()
    p.close_shell(shell)
    p = _protocol(endpoint)
    with pytest.raises(WSManFaultError) as info:
        p.run_command(shell, "ver")
    assert info.value.code == 500
    assert _shape(info.value.response) == _shape(ENTRIES["winrs-shell-gone"].output.strip())


def test_rehearsal_streams_running_with_partial_output_before_done(
    endpoint_and_shell: tuple[rehearsal.Rehearsal, str],
) -> None:
    endpoint, shell = endpoint_and_shell
    p = _protocol(endpoint)
    quick = p.run_command(shell, "echo one&echo two")
    assert p.get_command_output_raw(shell, quick) == (b"one\r\ntwo\r\n", b"", 0, True)  # Done at once
    cid = p.run_command(shell, "ping -n 2 127.0.0.1")  # about a second
    answers = []
    while True:
        out, _, code, done = p.get_command_output_raw(shell, cid)
        answers.append((out, done))
        if done:
            break
    assert answers[0] == (b"\r\n", False)  # State Running with partial output
    assert b"".join(o for o, _ in answers).count(b"Reply from 127.0.0.1") == 2 and code == 0


# --- the kit on the rehearsal host: shell handling as Windows means it ---------------------------------------


def _connect(r: rehearsal.Rehearsal) -> transport.Connection:
    return transport.connect(
        r.url,
        transport="basic",
        username=r.user,
        password=REHEARSAL_PASSWORD,
        host_label="web01",
        allow_unencrypted_basic=True,
        operation_timeout_s=1,  # one Receive a second while a command runs
    )


def test_a_live_shell_that_forgot_the_command_is_kept_and_no_second_shell_is_opened(
    endpoint: rehearsal.Rehearsal,
) -> None:
    with _connect(endpoint) as conn:
        conn.run(["echoargs", "first"])
        shells = list(endpoint._server.shells)
        assert len(shells) == 1
        endpoint.set_faults(["after:echoargs:forget"])
        with pytest.raises(
            WSManFault, match=r"2150858843.*alive but no longer knows the command.*unknown"
        ) as info:
            conn.run(["echoargs", "forgotten"])
        assert "no second shell was opened" in str(info.value)
        assert list(endpoint._server.shells) == shells  # the same one shell, still there
        endpoint.set_faults([])
        assert conn.run(["echoargs", "after"]).stdout == b'["after"]\r\n'
        assert list(endpoint._server.shells) == shells
        ran = [h["command"] for h in endpoint.host.history]
        assert "echoargs forgotten" in ran  # it did run: "outcome unknown" was the honest answer


class _Shells(dict):  # type: ignore[type-arg]
    """The server's shells, remembering the most that existed at once."""

    most = 0

    def __setitem__(self, key: object, value: object) -> None:
        super().__setitem__(key, value)
        self.most = max(self.most, len(self))


def _count_shells(endpoint: rehearsal.Rehearsal) -> _Shells:
    shells = _Shells(endpoint._server.shells)
    endpoint._server.shells = shells
    return shells


def test_a_command_refused_after_it_ran_is_resent_once_never_beside_the_old_shell(
    endpoint: rehearsal.Rehearsal,
) -> None:
    """W-WINRM-SHELL-GONE, the opposite of the belief injected: the server runs the command, then refuses the
    Command with 2150859174 (its shell still exists). The kit deletes that shell before it opens another and
    sends the command once more; it ran twice — the row's known consequence, the steps' read-backs are the
    guard — and the kit never says it did not run."""
    with _connect(endpoint) as conn:
        conn.run(["echoargs", "first"])
        shells = _count_shells(endpoint)
        endpoint.set_faults(["after:echoargs#1:refuse"])
        assert conn.run(["echoargs", "twice"]).stdout == b'["twice"]\r\n'
        assert [h["command"] for h in endpoint.host.history].count("echoargs twice") == 2
        assert (shells.most, len(shells)) == (1, 1)  # the old shell went before the new one came


def test_a_command_refused_twice_may_have_run_and_the_kit_says_so(endpoint: rehearsal.Rehearsal) -> None:
    with _connect(endpoint) as conn:
        conn.run(["echoargs", "first"])
        shells = _count_shells(endpoint)
        endpoint.set_faults(["after:echoargs:refuse"])
        with pytest.raises(
            WSManFault, match=r"2150859174.*refused the command twice.*may or may not have run"
        ) as info:
            conn.run(["echoargs", "refused"])
        message = str(info.value)
        assert (
            "never ran" not in message
            and "did not run" not in message
            and "not run" not in message.replace("may or may not have run", "")
        )
        assert "check the server's state" in message
        assert [h["command"] for h in endpoint.host.history].count("echoargs refused") == 2  # it did run
        assert shells.most == 1  # never a second shell beside the first
        endpoint.set_faults([])
        assert conn.run(["echoargs", "after"]).exit_code == 0
        assert shells.most == 1


def test_a_shell_gone_during_receive_is_replaced_by_the_next_command_only(
    endpoint: rehearsal.Rehearsal,
) -> None:
    with _connect(endpoint) as conn:
        conn.run(["echoargs", "first"])
        endpoint.set_faults(["before:echoargs:timeout"])
        # The server drops the shell (a restart, its idle timeout) while the kit waits for the command.
        threading.Timer(1.5, endpoint._server.shells.clear).start()
        with pytest.raises(WSManFault, match="2150858843"):
            conn.run(["echoargs", "lost"], timeout_s=10)
        assert not endpoint._server.shells  # nothing opened behind the failure
        endpoint.set_faults([])
        assert conn.run(["echoargs", "next"]).exit_code == 0
        assert len(endpoint._server.shells) == 1
