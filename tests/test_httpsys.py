"""HTTP.sys as Windows ships it (issue 23): cmd's ``&&``/``||``/``&``/``( )`` as Wine's tests recorded them on
Windows, the swap line that restores from any state, ``netsh http update`` missing on Server 2012 R2
(scenario ``iis85``), dual-stack ``0.0.0.0:443`` + ``[::]:443`` (``iis10-dualstack``, and a foreign AppId on
``[::]:443``), and the bare ``key=value`` tokens netsh gets. Every assertion reads what the emulated server
holds afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import SharedEndpoints
from test_iis7 import IPPORT, SNI, Env, reg_hash, serve

from opslib.errors import PreconditionFailed, UnsafeArgument, VerificationFailed
from opslib.rehearsal import cmd, scenarios
from opslib.rehearsal.host import Host, Invocation
from opslib.winrm import Bare, cmdline

PROD_KEY = {
    "iis75-ja": IPPORT + r"\0.0.0.0:443",
    "iis85": SNI + r"\www1.example.jp:443",
    "iis10": IPPORT + r"\0.0.0.0:443",
}


# --- cmd: the evaluation the restore depends on, checked against Wine's recorded expectations ---------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # test_builtins.bat "--- success/failure for TYPE command" (`!errorlevel!` dropped: not emulated):
        # `(type NUL &&echo SUCCESS||echo FAILURE)` → SUCCESS, a missing file → FAILURE (.bat.exp).
        ("echo x & (type NUL &&echo SUCCESS||echo FAILURE)", ["x", "SUCCESS"]),
        ("echo x & (type i\\dont\\exist\\at\\all.txt &&echo SUCCESS||echo FAILURE)", ["x", "FAILURE"]),
        # "--- success/failure for external command": `(Idontexist.exe && … || …)` → FAILURE.
        ("(Idontexist.exe &&echo SUCCESS||echo FAILURE)", ["FAILURE"]),
        # "--- success/failure for MKDIR,MD command": the second mkdir of the same name → FAILURE.
        ("mkdir abc &&echo SUCCESS||echo FAILURE", ["SUCCESS"]),
        ("mkdir abc &&echo SUCCESS||echo FAILURE", ["FAILURE"]),
        # The swap line's shape: a failure anywhere in the && chain runs the block after ||, all of it.
        ("type NUL && Idontexist.exe && echo NOT || (echo R1 & Idontexist.exe & echo R2)", ["R1", "R2"]),
        # ... and after a success the block does not run at all (not even its last command).
        ("type NUL && echo A || (echo R1 & echo R2)", ["A"]),
    ],
)
def test_cmd_operators_as_wine_recorded_them_on_windows(
    tmp_path: Path, line: str, expected: list[str]
) -> None:
    host = scenarios.build_host("iis10", workdir=tmp_path)
    if expected == ["FAILURE"] and line.startswith("mkdir"):
        cmd.execute(host, "mkdir abc", codepage=437)
    result = cmd.execute(host, line, codepage=437)
    assert [w.strip() for w in result.stdout.decode().splitlines() if w.strip()] == expected


# --- the swap line: every command failing in turn, the client gone after the line --------------------


@contextmanager
def failing_at(host: Host, k: int, *, with_effect: bool) -> Iterator[list[str]]:
    """The k-th netsh/appcmd run from now exits 1 — before doing anything, or after doing its work."""
    originals = {name: host.programs[name] for name in ("netsh", "appcmd")}
    seen: list[str] = []

    def wrap(name: str) -> Callable[[Invocation], int]:
        def program(inv: Invocation) -> int:
            seen.append(" ".join(inv.argv[1:3]))
            if len(seen) == k:
                if with_effect:
                    originals[name](inv)
                return 1
            return originals[name](inv)

        return program

    for name in originals:
        host.programs[name] = wrap(name)
    try:
        yield seen
    finally:
        host.programs.update(originals)


def snapshot(host: Host) -> str:
    """The emulated registry, deep (a later change cannot alias it)."""
    return json.dumps(host.state()["registry"], sort_keys=True, default=str)


def _reset(env: Env, scenario: str) -> None:
    kind, _, endpoint = PROD_KEY[scenario].rpartition("\\")
    from opslib.rehearsal import iis7 as emulated

    emulated.set_ssl_binding(
        env.host, "hostnameport" if "Sni" in kind else "ipport", endpoint, thumbprint=env.current
    )
    env.host.web_sites[1].state = "Started"
    env.host.save_state()


@pytest.mark.parametrize("scenario", ["iis75-ja", "iis85", "iis10"])
def test_the_swap_line_restores_from_any_state(
    shared_endpoints: SharedEndpoints, tmp_path: Path, scenario: str
) -> None:
    with serve(shared_endpoints, tmp_path, scenario) as env:
        line = env.backend.swap_command(production_site="www1.example.jp", new_thumbprint=env.new)
        chain = line.split(" || (")[0]
        commands = chain.count("&&") + 1
        assert (
            commands == {"iis75-ja": 4, "iis85": 4, "iis10": 3}[scenario]
        )  # delete, add | update; stop, start
        for k in range(1, commands + 2):  # k = commands + 1: nothing fails
            for with_effect in (False, True):
                _reset(env, scenario)
                with failing_at(env.host, k, with_effect=with_effect) as seen:
                    env.server.conn.run_line(line, check=False, what="the swap line")
                # No second command: what the line alone left is what production serves.
                served = reg_hash(env.host, PROD_KEY[scenario])
                expected = env.new if k > commands else env.current
                assert served == expected, (k, with_effect, seen)
                assert env.host.web_sites[1].state == "Started", (k, with_effect, seen)


def test_a_certificate_missing_from_my_leaves_the_old_one_bound_by_the_line_alone(
    shared_endpoints: SharedEndpoints, tmp_path: Path
) -> None:
    # The reproduction: on 2008 R2 `add NEW` fails (1312) after `delete` succeeded.
    with serve(shared_endpoints, tmp_path, "iis75-ja") as env:
        line = env.backend.swap_command(production_site="www1.example.jp", new_thumbprint="AB" * 20)
        env.server.conn.run_line(line, check=False, what="the swap line")
        assert reg_hash(env.host, PROD_KEY["iis75-ja"]) == env.current
        assert env.host.web_sites[1].state == "Started"


# --- netsh verbs: found, not assumed ----------------------------------------------------------------


@pytest.mark.parametrize(("scenario", "update"), [("iis75-ja", False), ("iis85", False), ("iis10", True)])
def test_the_netsh_verbs_are_found_read_only_and_the_swap_uses_them(
    shared_endpoints: SharedEndpoints, tmp_path: Path, scenario: str, update: bool
) -> None:
    with serve(shared_endpoints, tmp_path, scenario) as env:
        before = snapshot(env.host)
        assert env.backend.netsh_verbs() == {"update": update, "delete": True, "add": True}
        assert snapshot(env.host) == before  # the probe changed nothing
        line = env.backend.swap_command(production_site="www1.example.jp", new_thumbprint=env.new)
        assert (" update sslcert " in line) is update and " delete sslcert " in line
        port = 8443 if scenario == "iis75-ja" else 443
        env.backend.bind("renew.www1.example.jp", env.new, port=port)
        result = env.backend.swap(production_site="www1.example.jp", new_thumbprint=env.new)
        assert result.production.cert_thumbprint == env.new
        assert reg_hash(env.host, PROD_KEY[scenario]) == env.new


def test_a_verb_probe_that_says_present_for_a_missing_update_leaves_the_old_certificate(
    shared_endpoints: SharedEndpoints,
    tmp_path: Path,
) -> None:
    # W-IIS7-NETSH-VERBS's opposite: `update sslcert /?` exits 0 on a server without `update`.
    with serve(shared_endpoints, tmp_path, "iis85") as env:
        env.host.extra["netsh_probe_lies"] = ["update"]
        env.host.save_state()
        env.backend.bind("renew.www1.example.jp", env.new)
        assert env.backend.netsh_verbs()["update"] is True  # the wrong answer
        with pytest.raises(
            VerificationFailed, match=r"rolled back to the previous certificate \w+ and the site is started"
        ):
            env.backend.swap(production_site="www1.example.jp", new_thumbprint=env.new)
        assert reg_hash(env.host, PROD_KEY["iis85"]) == env.current
        assert env.host.web_sites[1].state == "Started"


# --- dual stack --------------------------------------------------------------------------------------


def test_dual_stack_swaps_and_reads_back_both_endpoints(
    shared_endpoints: SharedEndpoints, tmp_path: Path
) -> None:
    v4, v6 = IPPORT + r"\0.0.0.0:443", IPPORT + r"\[::]:443"
    with serve(shared_endpoints, tmp_path, "iis10-dualstack") as env:
        assert reg_hash(env.host, v6) == env.current
        env.backend.bind("renew.www1.example.jp", env.new)
        plan = env.backend.plan_swap(production_site="www1.example.jp", new_thumbprint=env.new)
        assert [c.target for c in plan if c.field == "SslCertHash"] == [
            "HTTP.sys ipport=0.0.0.0:443",
            "HTTP.sys ipport=[::]:443",
        ]
        env.backend.swap(production_site="www1.example.jp", new_thumbprint=env.new)
        assert (reg_hash(env.host, v4), reg_hash(env.host, v6)) == (env.new, env.new)
        back = env.backend.rollback(
            production_site="www1.example.jp", old_thumbprint=env.current, secure_bindings=[":443:"]
        )
        assert back.production.cert_thumbprint == env.current
        assert (reg_hash(env.host, v4), reg_hash(env.host, v6)) == (env.current, env.current)
        # A failure at the IPv6 endpoint's add: the line alone puts the old one back on both.
        line = env.backend.swap_command(production_site="www1.example.jp", new_thumbprint=env.new)
        with failing_at(env.host, 2, with_effect=False):
            env.server.conn.run_line(line, check=False, what="the swap line")
        assert (reg_hash(env.host, v4), reg_hash(env.host, v6)) == (env.current, env.current)


def test_a_foreign_app_id_on_the_ipv6_endpoint_stops_before_any_change(
    shared_endpoints: SharedEndpoints, tmp_path: Path
) -> None:
    with serve(shared_endpoints, tmp_path, "iis10-dualstack-foreign") as env:
        before = snapshot(env.host)
        with pytest.raises(
            PreconditionFailed,
            match=r"HTTP.sys ipport=\[::\]:443 serves W3SVC/1 .*belongs to another application.*nothing was changed",
        ):
            env.backend.plan_swap(production_site="www1.example.jp", new_thumbprint=env.new)
        with pytest.raises(PreconditionFailed, match=r"ipport=\[::\]:443"):
            env.backend.swap(production_site="www1.example.jp", new_thumbprint=env.new)
        assert snapshot(env.host) == before


# --- bare tokens -------------------------------------------------------------------------------------


def test_netsh_tokens_travel_bare_and_anything_unsafe_is_refused() -> None:
    line = cmdline(
        ["netsh", "http", "add", "sslcert", Bare("ipport=[::]:443"), Bare("appid={4dc3e181-e14b}")]
    )
    assert line == "netsh http add sslcert ipport=[::]:443 appid={4dc3e181-e14b}"
    for bad in ("hostnameport=a b:443", "certhash=AB&echo", "x=1|2", "=1", 'certstorename=MY"x'):
        with pytest.raises(UnsafeArgument, match="bare key=value token"):
            cmdline(["netsh", Bare(bad)])


# --- binding conflicts in the pre-flight ------------------------------------------------------------


def test_the_preflight_finds_binding_conflicts_and_names_endpoints_and_verbs(
    shared_endpoints: SharedEndpoints, tmp_path: Path
) -> None:
    from opslib import preflight

    with serve(shared_endpoints, tmp_path, "iis75-ja") as env:
        before = snapshot(env.host)
        mail = str(env.host.extra["certificate_file"])
        kwargs = dict(
            production_site="www1.example.jp", work_site="renew.www1.example.jp", certificate_file=mail
        )
        # ssl_port 443 on IIS 7.5: step 1 would refuse (one certificate per IP:port); found before step 0.
        with pytest.raises(PreconditionFailed, match=r"would change the certificate of W3SVC/1.*ssl_port"):
            preflight.check_server(env.server, host="web01", ssl_port=443, **kwargs)  # type: ignore[arg-type]
        ready = preflight.check_server(env.server, host="web01", ssl_port=8443, **kwargs)  # type: ignore[arg-type]
        row = ready.row()
        assert row["swap_endpoints"] == "HTTP.sys ipport=0.0.0.0:443"
        assert row["work_binding"] == "HTTP.sys ipport=0.0.0.0:8443"
        assert row["netsh_verbs"] == "delete, add (no `update sslcert` here)"
        assert snapshot(env.host) == before
