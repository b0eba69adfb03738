"""The HTTP.sys entries of the conformance corpus (``tests/conformance/httpsys/``): for each real output,
(a) the kit decides correctly on it and (b) the rehearsal host answers the same command with the same
decision-relevant shape. The kit itself never reads ``netsh`` text (it reads the registry and exit codes);
the published text is read here only to build the server state it shows.
"""

from __future__ import annotations

import re
from pathlib import Path

import corpus
import pytest
from conftest import SharedEndpoints
from test_iis7 import serve

from opslib.errors import PreconditionFailed
from opslib.iis.httpsys import netsh_line
from opslib.rehearsal import cmd, scenarios
from opslib.rehearsal import iis7 as emulated

ENTRIES = {e.id: e for e in corpus.load("httpsys")}
_FIELD = re.compile(r"^ {4}(?P<label>\S.*?) +: (?P<value>.*)$")


def records(text: str) -> list[dict[str, str]]:
    """``netsh http show sslcert`` records as {label: value} (blank lines separate them)."""
    out: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.replace("\r\n", "\n").split("\n"):
        m = _FIELD.match(line)
        if m:
            current[m.group("label")] = m.group("value").strip()
        elif current:
            out.append(current)
            current = {}
    return out + ([current] if current else [])


def test_the_corpus_has_the_entries_the_behaviour_table_cites() -> None:
    assert set(ENTRIES) == {
        "netsh-update-missing-2012r2",
        "netsh-show-dualstack",
        "netsh-show-quoted-value-cmd",
    }


# --- netsh http update missing (Server 2012 R2) --------------------------------------------------------


def test_update_missing_the_kit_never_sends_update_where_netsh_lacks_it(
    shared_endpoints: SharedEndpoints, tmp_path: Path
) -> None:
    entry = ENTRIES["netsh-update-missing-2012r2"]
    # (b) The iis85 host answers the published command with the published answer and a failure.
    host = scenarios.build_host("iis85", workdir=tmp_path / "h")
    result = cmd.execute(host, entry.command, codepage=437)
    assert result.exit_code != 0
    assert result.stdout.decode().strip() == entry.extra["netsh_answer"]
    assert entry.extra["netsh_answer"] in entry.output
    # (a) The kit, on a server answering so, finds `update` absent (read-only) and swaps with delete + add.
    with serve(shared_endpoints, tmp_path / "s", "iis85") as env:
        assert env.backend.netsh_verbs()["update"] is False
        line = env.backend.swap_command(production_site="www1.example.jp", new_thumbprint=env.new)
        assert "netsh http update" not in line and "netsh http delete sslcert hostnameport=" in line


# --- [::]:443 beside 0.0.0.0:443 -------------------------------------------------------------------------


def test_dual_stack_listing_the_kit_stops_on_the_published_foreign_app_id(
    shared_endpoints: SharedEndpoints, tmp_path: Path
) -> None:
    entry = ENTRIES["netsh-show-dualstack"]
    published = records(entry.output)
    assert [r["IP:port"] for r in published] == ["0.0.0.0:443", "[::]:443"]
    # (b) The rehearsal host lists the same two endpoints, in the same field layout.
    host = scenarios.build_host("iis10-dualstack-foreign", workdir=tmp_path / "h")
    shown = records(cmd.execute(host, entry.command, codepage=437).stdout.decode())
    assert [r["IP:port"] for r in shown] == ["0.0.0.0:443", "[::]:443"]
    assert {"Certificate Hash", "Application ID", "Certificate Store Name"} <= set(shown[1])
    layout = re.compile(r"^ {4}IP:port {22}: ", re.M)
    assert len(layout.findall(entry.output)) == 2
    assert len(layout.findall(cmd.execute(host, entry.command, codepage=437).stdout.decode())) == 2
    # (a) The server state the listing shows (AppIds as published; the hashes were redacted, so the
    # host's own certificate stands in): the kit refuses before any change, naming [::]:443.
    with serve(shared_endpoints, tmp_path / "s", "iis10-dualstack") as env:
        for record in published:
            emulated.set_ssl_binding(
                env.host, "ipport", record["IP:port"], thumbprint=env.current, app_id=record["Application ID"]
            )
        env.host.save_state()
        with pytest.raises(PreconditionFailed, match=r"ipport=\[::\]:443 .*AppId \{ba195980-cd49-458b-9e23"):
            env.backend.plan_swap(production_site="www1.example.jp", new_thumbprint=env.new)
        # With IIS's AppId on both, both are in the plan.
        emulated.set_ssl_binding(env.host, "ipport", "[::]:443", thumbprint=env.current)
        env.host.save_state()
        plan = env.backend.plan_swap(production_site="www1.example.jp", new_thumbprint=env.new)
        assert [c.target for c in plan if c.field == "SslCertHash"] == [
            "HTTP.sys ipport=0.0.0.0:443",
            "HTTP.sys ipport=[::]:443",
        ]


# --- a quoted value typed at cmd ---------------------------------------------------------------------------


def test_quoted_value_from_cmd_is_the_same_argument_as_the_kits_bare_token(tmp_path: Path) -> None:
    entry = ENTRIES["netsh-show-quoted-value-cmd"]
    # (a) netsh gets the same argv from the published line and from the kit's bare line.
    kit = netsh_line("delete", "ipport", "0.0.0.0:55539").replace(" delete ", " show ")
    assert kit == "netsh http show sslcert ipport=0.0.0.0:55539"
    assert cmd.split_argv(entry.command) == cmd.split_argv(kit)
    # (b) The rehearsal host answers the published command for that binding, as the capture shows.
    host = scenarios.build_host("iis10", workdir=tmp_path)
    emulated.set_ssl_binding(
        host, "ipport", "0.0.0.0:55539", thumbprint=str(host.extra["current_thumbprint"])
    )
    result = cmd.execute(host, entry.command, codepage=437)
    assert result.exit_code == 0
    assert [r["IP:port"] for r in records(result.stdout.decode())] == ["0.0.0.0:55539"]
    assert [r["IP:port"] for r in records(entry.output)] == ["0.0.0.0:55539"]
