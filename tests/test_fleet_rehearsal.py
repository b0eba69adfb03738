"""``opslib rehearse fleet``: N emulated servers in their own process tree, each on its own loopback address
with its own certificates and expiry, and an Ansible inventory that ``load_inventory`` reads back."""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from opslib.cli import main
from opslib.fleet.inventory import FleetHost, load_inventory
from opslib.rehearsal.fleet import DEFAULT_SCENARIOS, RehearsalFleet, start_fleet
from opslib.winrm import connect_params


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RehearsalFleet]:
    with start_fleet(6, workdir=tmp_path_factory.mktemp("fleet")) as running:
        saved = {k: os.environ.get(k) for k in running.env}
        os.environ.update(running.env)  # as the operator exports them before a run
        try:
            yield running
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@pytest.fixture(scope="module")
def hosts(fleet: RehearsalFleet) -> list[FleetHost]:
    return load_inventory(fleet.inventory_path)


def test_the_fleet_runs_in_its_own_process_tree_with_a_mix_of_scenarios_and_expiries(
    fleet: RehearsalFleet,
) -> None:
    assert fleet.pid != os.getpid() and os.getsid(fleet.pid) == fleet.pid
    assert [h.scenario for h in fleet.hosts] == [*DEFAULT_SCENARIOS, *DEFAULT_SCENARIOS[:2]]
    assert len({h.address for h in fleet.hosts}) == 6
    assert all(
        h.address.startswith("127.0.") and h.url.startswith(f"http://{h.address}:") for h in fleet.hosts
    )
    assert len({h.current_not_after_utc[:10] for h in fleet.hosts}) == 6  # the calendar needs different days
    # The inventory is what operators keep: the YAML file, group_vars/ and host_vars/, secrets as references.
    folder = fleet.inventory_path.parent
    assert (folder / "group_vars" / "all.yml").is_file() and len(
        list((folder / "host_vars").glob("*.yml"))
    ) == 6
    for file in folder.rglob("*.y*ml"):
        assert fleet.password not in file.read_text(encoding="utf-8"), file


def test_the_inventory_it_writes_is_read_back_host_by_host(
    fleet: RehearsalFleet, hosts: list[FleetHost]
) -> None:
    assert [h.name for h in hosts] == [m.name for m in fleet.hosts]
    for host, member in zip(hosts, fleet.hosts, strict=True):
        assert host.params["winrm"]["url"] == member.url
        assert host.params["winrm"]["password"] == "env:OPSLIB_REHEARSAL_PASSWORD"
        assert (
            host.params["backup"]["pfx_password"] == "env:OPSLIB_PFX_PASSWORD"
        )  # from the base parameters file
        assert host.params["verify"]["endpoint"].startswith(member.address + ":")
        assert Path(host.params["certificate_file"]).is_relative_to(member.workdir)
        assert host.private_pki is True and host.env == {}
        assert f"scenario_{member.scenario.replace('-', '_')}" in host.groups
    by_iis = {h.name: h.params["winrm"]["transport"] for h in hosts}
    assert by_iis["web01"] == "basic" and by_iis["web03"] == "ntlm"  # each Windows's WinRM as shipped


def _hostname(host: FleetHost) -> str:
    with connect_params(host.params["winrm"], host=host.label) as conn:
        return conn.run(["hostname"], what="host name").stdout_text.strip()


def _served_thumbprint(endpoint: str, servername: str) -> str:
    address, port = endpoint.rsplit(":", 1)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((address, int(port)), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=servername) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha1(der).hexdigest().upper()  # noqa: S324 - the certificate's thumbprint, not a security hash


def test_every_host_answers_over_winrm_and_serves_its_own_certificate(
    fleet: RehearsalFleet, hosts: list[FleetHost]
) -> None:
    with ThreadPoolExecutor(max_workers=6) as pool:
        names = list(pool.map(_hostname, hosts))
    assert names == [h.name.upper() for h in hosts]
    for host, member in zip(hosts, fleet.hosts, strict=True):
        served = _served_thumbprint(host.params["verify"]["endpoint"], host.params["verify"]["servername"])
        assert served == member.current_thumbprint
    assert len({m.current_thumbprint for m in fleet.hosts}) == 6
    counts = fleet.request_counts()
    assert all(counts[m.name] > 0 for m in fleet.hosts)


def test_a_bad_fleet_request_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(
        ["rehearse", "fleet", "--hosts", "2", "--scenarios", "iis10,nosuch", "--workdir", str(tmp_path)]
    )
    assert code == 2
    assert "unknown scenario nosuch" in capsys.readouterr().err
    assert not (tmp_path / "inventory.yml").exists()
