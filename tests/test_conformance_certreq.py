"""The certreq conformance corpus (tests/conformance/certreq/): Microsoft's documented ``certreq -new``.

(a) the kit's INF uses the documented forms where the target supports them (the subjectAltName's
``2.5.29.17 = "{text}"`` + ``_continue_ = "dns=…&"``, ``HashAlgorithm``) and always says
``MachineKeySet = TRUE`` (documented default: false); (b) the rehearsal host, given those forms, makes
what the documents say: a request pending on the computer (2003 too), with the documented names, and a
request that is not the machine's when ``MachineKeySet`` is left at its default
(W-CERTREQ-NEW-2003, W-CERTREQ-NEW-2008).
"""

from __future__ import annotations

import conftest
import corpus

from opslib import certs
from opslib.ops import request as request_ops
from opslib.rehearsal import cmd
from opslib.rehearsal.host import Host
from opslib.rehearsal.programs import register_all, stores

ENTRIES = {e.id: e for e in corpus.load("certreq")}
EXTENSIONS = ENTRIES["new-inf-extensions-documented"]
PENDING = ENTRIES["new-pending-2003-documented"]


def _before(windows_version: str) -> request_ops.Before:
    return request_ops.Before(
        "", "CN=www1.example.jp", ("www1.example.jp", "www.example.jp"), (), windows_version
    )


def _host(windows_version: str) -> Host:
    host = conftest.make_bare_host(windows_version=windows_version)
    register_all(host)
    return host


def _new(host: Host, inf: str) -> int:
    host.write_file(r"C:\t\r.inf", inf.encode("ascii"))
    return cmd.execute(host, r"certreq -new -q C:\t\r.inf C:\t\r.csr", codepage=437).exit_code


def test_the_kits_inf_uses_the_documented_forms_where_the_target_has_them() -> None:
    assert "2.5.29.17 = {text}" in EXTENSIONS.output and "DNS=host.domain.com&" in EXTENSIONS.output
    assert "The default is false" in EXTENSIONS.output
    modern = request_ops.plan(_before("10.0.17763"), host="web01").inf.splitlines()
    assert '2.5.29.17 = "{text}"' in modern
    assert [line for line in modern if line.startswith("_continue_")] == [
        '_continue_ = "dns=www1.example.jp&"',
        '_continue_ = "dns=www.example.jp&"',
    ]
    assert "HashAlgorithm = sha256" in modern
    old = request_ops.plan(_before("5.2.3790"), host="web01").inf.splitlines()
    assert not [
        line for line in old if "2.5.29.17" in line or "HashAlgorithm" in line or "_continue_" in line
    ]
    assert "MachineKeySet = TRUE" in modern and "MachineKeySet = TRUE" in old


def test_the_rehearsal_host_makes_the_documented_request() -> None:
    host = _host("6.1.7601")
    inf = "[NewRequest]\r\nSubject = CN=host.domain.com\r\nMachineKeySet = true\r\nHashAlgorithm = sha256\r\n"
    inf += '[Extensions]\r\n2.5.29.17 = "{text}"\r\n_continue_ = "DNS=host.domain.com&"\r\n'
    assert _new(host, inf) == 0
    csr = certs.load_certificates(host.read_file(r"C:\t\r.csr") or b"", source="csr").csrs[0]
    seen = certs.request_facts(csr)
    assert (seen.dns_names, seen.signature_hash, seen.signature_valid) == (
        ("host.domain.com",),
        "sha256",
        True,
    )
    (entry,) = stores.certificates(host, "REQUEST")  # pending on the computer
    assert stores.key_for(host, entry) is not None and certs.key_matches(entry.cert, csr)


def test_the_default_machinekeyset_is_not_the_machines_request() -> None:
    host = _host("6.1.7601")
    assert _new(host, "[NewRequest]\r\nSubject = CN=host.domain.com\r\n") == 0
    assert stores.certificates(host, "REQUEST") == []  # the user's store: the kit would find nothing


def test_the_2003_host_leaves_the_request_pending_on_the_computer() -> None:
    assert "remains in a pending state on your computer" in PENDING.output
    host = _host("5.2.3790")
    inf = request_ops.plan(_before("5.2.3790"), host="web01").inf
    assert _new(host, inf) == 0
    (entry,) = stores.certificates(host, "REQUEST")
    key = stores.key_for(host, entry)
    assert key is not None and key.exportable and key.provider == request_ops.PROVIDER
