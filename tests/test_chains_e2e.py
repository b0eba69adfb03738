"""The chains operators meet now, end to end: ``opslib run`` against each chain scenario of the rehearsal host.

Each run either renews the certificate (modern-chain, cross-to-older-root; the G5 case is the full
run of ``tests/test_notebooks.py``) or refuses before anything changes (expired-cross) with a message
that names the certificate and what to do. The emulated certreq builds the chain on accept by its
own code (``opslib.rehearsal.chainbuild``); the kit's prediction (``opslib.certs.expect``) is written
independently, so a misreading in one shows up against the other.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import conftest
import pytest
import yaml

from opslib import certs, cli, rehearsal
from opslib.rehearsal.host import STARTED, STOPPED
from opslib.rehearsal.pki import Pki, make_pki
from opslib.rehearsal.scenarios import HOSTNAMES

STEPS_BEFORE_SWAP = ("00_precheck_root_store", "01_install_certificate")


@pytest.fixture(scope="module")
def _env() -> Iterator[list[str]]:
    names = ("OPSLIB_CH_WINRM", "OPSLIB_CH_PFX")
    with conftest.random_secrets(*names) as values:
        yield values


def _run(base: Path, env: list[str], scenario: str, *extra: str) -> tuple[rehearsal.Rehearsal, Path, int]:
    """Start the scenario, write the parameters as an operator would, ``opslib run`` them (the host keeps running)."""
    base.mkdir(parents=True, exist_ok=True)
    reh = rehearsal.start(
        scenario=scenario, password=env[0], workdir=base / "host", state_file=base / "state.json"
    )
    data = reh.params(
        password_env="OPSLIB_CH_WINRM", pfx_password_env="OPSLIB_CH_PFX", backup_dir=str(base / "backups")
    )
    params_file = base / "params" / "web01.yaml"
    params_file.parent.mkdir(exist_ok=True)
    params_file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    code = cli.main(["run", str(params_file), "--evidence-root", str(base / "evidence"), *extra])
    return reh, base / "evidence", code


def _pki(extra: dict[str, Any], chain: str) -> Pki:
    """The scenario's PKI again (the factory is deterministic for one clock), to name what the host holds."""
    pki = make_pki(now_utc=datetime.fromisoformat(extra["now_utc"]), hostnames=HOSTNAMES, chain=chain)
    assert certs.thumbprint(pki.new_leaf) == extra["new_thumbprint"]
    return pki


def _manifest(evidence_root: Path) -> dict[str, Any]:
    runs = sorted(p for p in evidence_root.iterdir() if (p / "run.json").is_file())
    return json.loads((runs[-1] / "run.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("scenario", ["modern-chain", "cross-to-older-root", "default"])
def test_each_usable_chain_renews_end_to_end(tmp_path: Path, _env: list[str], scenario: str) -> None:
    reh, evidence_root, code = _run(tmp_path, _env, scenario, "--yes")
    try:
        state = reh.host.state()
    finally:
        reh.stop()
    m = _manifest(evidence_root)
    assert (code, m["status"], m["error"]) == (0, "succeeded", None)
    extra, facts = state["extra"], m["facts"]
    pki = _pki(extra, {"modern-chain": "modern", "default": "g5"}.get(scenario, scenario))
    production = state["sites"]["1"]
    assert (production["ssl_cert_hash"], production["state"]) == (extra["new_thumbprint"], STARTED)
    # The prediction is the path the CA's chain shape defines, and step 4 saw it served.
    shape = pki.chain
    expected = [certs.thumbprint(c) for c in (pki.new_leaf, pki.intermediate)]
    if shape.cross is not None:  # the G5 case and the cross to an older root: the path runs through it
        expected += [certs.thumbprint(shape.cross), certs.thumbprint(shape.server_roots[0])]
    else:
        expected += [certs.thumbprint(shape.server_roots[0])]
    assert facts["predicted_chain"] == expected
    # Called a cross certificate when its self-signed twin is known (G5); the newer root is absent everywhere.
    assert facts["predicted_needs_cross"] is (scenario == "default")
    assert facts["chain_ok"] is True and facts["verify_problems"] == []
    served = facts["served"]["no SNI"]
    assert served[: len(expected) - 1] == expected[:-1]
    # Only the certificates on the path were installed; nothing of the CA's file was ignored here.
    assert facts["ca_certificates_ignored"] == []
    assert set(expected[1:-1]) <= set(facts["ca_certificates_installed"]) | set(
        certs.thumbprint(c) for c in shape.server_cas
    )


def test_an_expired_cross_certificate_is_refused_before_any_change(tmp_path: Path, _env: list[str]) -> None:
    reh, evidence_root, code = _run(tmp_path / "dry", _env, "expired-cross", "--dry-run")
    try:
        dry_state = reh.host.state()
        cross = _pki(dry_state["extra"], "expired-cross").chain.cross
        assert cross is not None
        # The real run, same host: refused in step 0's preflight, before any root is disabled.
        before = reh.host.state()
        params_file = tmp_path / "dry" / "params" / "web01.yaml"
        real = cli.main(["run", str(params_file), "--evidence-root", str(tmp_path / "real"), "--yes"])
        after = reh.host.state()
    finally:
        reh.stop()
    dry = _manifest(evidence_root)
    assert (code, dry["status"], dry["failed_step"]) == (1, "failed", "00_precheck_root_store")
    assert real == 1
    m = _manifest(tmp_path / "real")
    assert m["failed_step"] in STEPS_BEFORE_SWAP and m["failed_step"] == "00_precheck_root_store"
    # The message names the certificate (which one of the two that share the G5 subject) and what to do.
    error = m["error"]
    tp = certs.thumbprint(cross)[:8]
    assert "cross certificate" in error and "expired on" in error and tp in error, error
    assert "issued by" in error and "ask the CA for its current chain" in error, error
    # Nothing changed on the host: the production binding, the stores, the pending request.
    assert after == before == dry_state
    production = after["sites"]["1"]
    assert (production["ssl_cert_hash"], production["state"]) == (
        after["extra"]["current_thumbprint"],
        STARTED,
    )
    assert after["sites"]["2"]["state"] == STOPPED


def test_a_failing_accept_names_the_hresult_and_changes_nothing_else(tmp_path: Path, _env: list[str]) -> None:
    # The kit's prediction and the server disagree (here: the prediction was made with the new intermediate,
    # but the file given to step 1 lacks it): the emulated certreq builds the chain itself and refuses.
    from opslib import open_server
    from opslib.errors import RemoteCommandFailed
    from opslib.ops import install, served_chain

    reh = rehearsal.start(
        scenario="modern-chain",
        password=_env[0],
        workdir=tmp_path / "host",
        state_file=tmp_path / "state.json",
    )
    try:
        extra = reh.host.extra
        pki = _pki(extra, "modern")
        winrm = reh.params(password_env="OPSLIB_CH_WINRM", pfx_password_env="OPSLIB_CH_PFX")["winrm"]
        server = open_server(winrm, host="web01", run_dir=str(tmp_path / "run"))
        try:
            expected = served_chain.predict(server, pki.new_leaf, supplied=[pki.intermediate])
            assert expected.ok
            leaf_only = certs.load_certificates(pki.pem(pki.new_leaf), source="leaf.pem")
            before = reh.host.state()
            with pytest.raises(RemoteCommandFailed) as err:
                install.install_certificate(server, leaf_only, expected=expected)
            after = reh.host.state()
        finally:
            server.close()
    finally:
        reh.stop()
    message = str(err.value.hint)
    assert "CERT_E_CHAINING 0x800B010A (no chain could be built to a trusted root)" in message, message
    assert "The request is still pending and nothing else changed" in message, message
    assert after["registry"] == before["registry"] and after["sites"] == before["sites"]


def test_only_the_chain_is_installed_and_the_rest_of_the_file_is_listed_as_ignored(
    tmp_path: Path, _env: list[str]
) -> None:
    # Issue 12 item 3: a CA file carrying an unrelated CA certificate (here another CA's intermediate).
    from opslib import open_server
    from opslib.ops import install, served_chain
    from opslib.server.stores import read_store

    reh = rehearsal.start(
        scenario="modern-chain",
        password=_env[0],
        workdir=tmp_path / "host",
        state_file=tmp_path / "state.json",
    )
    try:
        pki = _pki(reh.host.extra, "modern")
        unrelated = make_pki(
            now_utc=pki.now_utc, hostnames=HOSTNAMES, chain="cross-to-older-root"
        ).intermediate
        bundle = certs.load_certificates(pki.pem(pki.new_leaf, pki.intermediate, unrelated), source="ca.pem")
        winrm = reh.params(password_env="OPSLIB_CH_WINRM", pfx_password_env="OPSLIB_CH_PFX")["winrm"]
        server = open_server(winrm, host="web01", run_dir=str(tmp_path / "run"))
        try:
            expected = served_chain.predict(server, pki.new_leaf, supplied=bundle.others)
            plan = install.plan_install(server, bundle, expected)
            result = install.install_certificate(server, bundle, expected=expected)
            ca_store = {e.thumbprint for e in read_store(server.conn, "CA")}
        finally:
            server.close()
    finally:
        reh.stop()
    # Vendor order: the intermediate goes to CA before the request is completed.
    targets = [c.target for c in plan]
    assert targets.index(f"CA\\{certs.thumbprint(pki.intermediate)}") < targets.index(
        f"MY\\{certs.thumbprint(pki.new_leaf)}"
    )
    assert any(c.after.startswith("not sent: on no path of the new certificate") for c in plan)
    assert result.ignored == (certs.thumbprint(unrelated),)
    assert certs.thumbprint(pki.intermediate) in ca_store and certs.thumbprint(unrelated) not in ca_store


def test_a_ca_file_of_many_unrelated_cross_certificates_gives_one_warning_line(
    tmp_path: Path, _env: list[str], capfd: pytest.CaptureFixture[str]
) -> None:
    # Issue 24 item 7: a vendor bundle as certificate_file — the CA certificates on no path of the new
    # certificate are listed in run.json, and the console says so in one line, not one line each.
    from chain_shapes import branching

    reh = rehearsal.start(
        scenario="modern-chain",
        password=_env[0],
        workdir=tmp_path / "host",
        state_file=tmp_path / "state.json",
    )
    try:
        pki = _pki(reh.host.extra, "modern")
        _, unrelated = branching(6, 0, pki.now_utc)  # 30 cross certificates of another hierarchy
        ca_file = tmp_path / "vendor.pem"
        ca_file.write_bytes(certs.encode_pem(pki.new_leaf, pki.intermediate, *unrelated))
        data = reh.params(
            password_env="OPSLIB_CH_WINRM",
            pfx_password_env="OPSLIB_CH_PFX",
            backup_dir=str(tmp_path / "backups"),
            certificate_file=str(ca_file),
        )
        params_file = tmp_path / "web01.yaml"
        params_file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        capfd.readouterr()
        code = cli.main(["run", str(params_file), "--evidence-root", str(tmp_path / "evidence"), "--dry-run"])
    finally:
        reh.stop()
    err = capfd.readouterr().err
    assert code == 0, err
    lines = [line for line in err.splitlines() if "not on the new certificate's chain" in line]
    assert len(lines) == 1, lines
    assert lines[0].startswith("opslib: warning: 30 CA certificate(s) of the file not installed") and (
        "; and 27 more" in lines[0]
    )
    ignored = _manifest(tmp_path / "evidence")["facts"]["ca_certificates_ignored"]
    assert {i["thumbprint"] for i in ignored} == {certs.thumbprint(c) for c in unrelated}
