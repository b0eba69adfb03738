"""The certutil conformance corpus (tests/conformance/certutil/): Microsoft's documented -repairstore INF.

(a) the kit's read-back decides correctly on the bytes the documented EKU form stands for; (b) the rehearsal
host, given the documented INF, stores those bytes; and the lab check's throw-away probe records what a
server does with the documented form and with the kit's own form (W-CERTUTIL-REPAIRSTORE-INF).
"""

from __future__ import annotations

from pathlib import Path

import corpus

from opslib.lab.compare import capture_rehearsal
from opslib.lab.reversible import SERVER_AUTH_EKU_DER
from opslib.rehearsal import cmd, scenarios
from opslib.rehearsal.programs import stores
from opslib.server.regfile import EMPTY_EKU, der_oids

ENTRIES = {e.id: e for e in corpus.load("certutil")}
DOC = ENTRIES["repairstore-inf-eku-documented"]


def test_the_kits_read_back_decides_on_the_documented_forms_bytes() -> None:
    der = bytes.fromhex(DOC.extra["eku_der_expected"])
    assert der_oids(der) == ("1.3.6.1.5.5.7.3.2", "1.3.6.1.5.5.7.3.1")  # two purposes: not disabled
    assert der_oids(EMPTY_EKU) == ()  # the kit's form: no purpose at all = disabled


def test_the_rehearsal_host_stores_the_documented_inf_as_documented(tmp_path: Path) -> None:
    host = scenarios.build_host("default", workdir=tmp_path)
    thumb = str(host.extra["current_thumbprint"])
    assert cmd.execute(host, r"mkdir C:\lab", codepage=437).exit_code == 0
    host.write_file(r"C:\lab\doc.inf", DOC.output.encode("latin-1"))
    result = cmd.execute(host, rf"certutil -repairstore MY {thumb} C:\lab\doc.inf", codepage=437)
    assert result.exit_code == 0
    entry = stores.find_certificate(host, "MY", thumb)
    assert entry is not None
    assert entry.properties[stores.ENHKEY_USAGE].hex() == DOC.extra["eku_der_expected"]
    assert entry.properties[11].decode("utf-16-le").rstrip("\x00") == "Friendly Name"


def test_the_lab_check_runs_the_documented_form_and_the_kits_on_a_throwaway_certificate(
    tmp_path: Path,
) -> None:
    manifest = capture_rehearsal(tmp_path / "bundle", scenario="iis6-ja", tier="reversible")
    (probe,) = [p for p in manifest["probes"] if p["id"] == "store.throwaway"]
    facts = probe["facts"]
    assert probe["decision"]["disabled_read_back"] is True and probe["decision"]["restored_read_back"] is True
    assert facts["eku_property9_after_kit_inf"] == EMPTY_EKU.hex()
    assert facts["eku_documented_text_form_exit_code"] == 0
    assert facts["eku_property9_after_documented_text_inf"] == SERVER_AUTH_EKU_DER
    assert facts["eku_documented_text_form_as_documented"] is True
    assert probe["decision"]["absent_after_delete"] is True
