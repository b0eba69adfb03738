"""opslib.server (stores, probe) and opslib.ops (roots, install, export) against the rehearsal host, over real pywinrm, in en/437 and ja/932.

What a user sees is asserted: exit codes, messages, what the emulated server holds afterwards (its
registry, files and keys, read through the emulation's own store helpers), and the evidence files.
"""

from __future__ import annotations

import json
import secrets as random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from secretscan import assert_no_secrets

from opslib import certs, cli, credentials, rehearsal
from opslib.errors import CapabilityMissing, PreconditionFailed
from opslib.ops import export, install, roots
from opslib.rehearsal import scenarios
from opslib.rehearsal.host import Host
from opslib.rehearsal.pki import Pki, make_pki
from opslib.rehearsal.programs import reg as reg_program
from opslib.rehearsal.programs import stores
from opslib.server import Server as OpsServer
from opslib.server import regfile
from opslib.server import stores as server_stores
from opslib.winrm import Connection, connect

CLOCK = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
PASSWORD = "Windows-Test-Pa55"  # WinRM password of the rehearsal endpoint (test-only literal)
PFX_PASSWORD = "Backup-Pfx-Pa55word"
LOCALES = [pytest.param(("en", 437), id="en-437"), pytest.param(("ja", 932), id="ja-932")]


@dataclass
class Server:
    host: Host
    conn: Connection
    pki: Pki
    state_file: Path
    transcript: Path
    server: OpsServer

    def state(self) -> bytes:
        return self.state_file.read_bytes()

    def thumbs(self, store: str, *, physical: str | None = None) -> set[str]:
        return {c.thumbprint for c in stores.certificates(self.host, store, physical=physical)}


@pytest.fixture(params=LOCALES)
def locale(request: pytest.FixtureRequest) -> tuple[str, int]:
    return request.param  # type: ignore[no-any-return]


@contextmanager
def serve(
    tmp_path: Path, locale: tuple[str, int], scenario: str = "default", **extra: object
) -> Iterator[Server]:
    lang, codepage = locale
    state_file = tmp_path / "state.json"
    host = scenarios.build_host(
        scenario,
        locale=lang,
        codepage=codepage,
        state_file=state_file,
        workdir=tmp_path / "work",
        now_utc=CLOCK,
    )
    host.extra.update(extra)
    pki = make_pki(now_utc=CLOCK, hostnames=scenarios.HOSTNAMES)
    transcript = tmp_path / "transcript.jsonl"
    with rehearsal.start(host, password=PASSWORD) as r:
        with connect(
            r.url,
            transport="basic",
            username=r.user,
            password=PASSWORD,
            host_label="web01",
            allow_unencrypted_basic=True,
            allow_cleartext_secrets=True,  # a Basic/HTTP lab host: accepted explicitly
            codepage=codepage,
            transcript=transcript,
        ) as conn:
            yield Server(host, conn, pki, state_file, transcript, OpsServer(conn))


def _bundle(pki: Pki, *extra: certs.Certificate) -> certs.Bundle:
    data = pki.pkcs7_bundle(pki.new_leaf, pki.intermediate, pki.cross, *extra)
    return certs.load_certificates(data, source="2026cert.p7b")


def _forbidden(srv: Server) -> list[server_stores.StoreEntry]:
    return server_stores.forbidden_entries(
        server_stores.trusted_roots(srv.conn), srv.host.extra["forbidden_roots"]
    )


# --- local parsers, cross-checked against the emulation's independent writers --------------------------


def test_parse_blob_reads_what_the_emulated_store_writes() -> None:
    pki = make_pki(now_utc=CLOCK)
    host = Host()
    thumb = stores.add_certificate(
        host,
        "REQUEST",
        pki.request_placeholder(),
        key=pki.new_key,
        key_container="{ABC}",
        friendly_name="renew",
    )
    stores.set_eku(host, "REQUEST", thumb, ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"])
    blob = stores.find_certificate(host, "REQUEST", thumb).blob  # type: ignore[union-attr]
    props, der = regfile.parse_blob(blob)
    assert der == certs.encode_der(pki.request_placeholder())
    assert props[regfile.SHA1_HASH].hex().upper() == thumb
    assert regfile.key_prov_info(props[regfile.KEY_PROV_INFO]) == (
        "{ABC}",
        "Microsoft RSA SChannel Cryptographic Provider",
    )
    assert regfile.der_oids(props[regfile.ENHKEY_USAGE]) == ("1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2")
    with pytest.raises(ValueError, match="runs past the end"):
        regfile.parse_blob(blob[:-5])


def test_reg_export_format_is_regedit5_and_parses_back() -> None:
    pki = make_pki(now_utc=CLOCK)
    host = Host()
    thumb = stores.add_certificate(host, "ROOT", pki.g5_root)
    key = stores.STORE_KEYS["ROOT"]
    data = b"\xff\xfe" + reg_program.export_text(host, key).encode("utf-16-le")
    text = data[2:].decode("utf-16-le")
    assert text.startswith("Windows Registry Editor Version 5.00\r\n\r\n[HKEY_LOCAL_MACHINE\\SOFTWARE")
    lines = text.split("\r\n")
    blob_line = next(i for i, line in enumerate(lines) if line.startswith('"Blob"=hex:'))
    assert lines[blob_line].endswith(",\\") and len(lines[blob_line]) == 78  # 22 bytes, then wrapped
    assert lines[blob_line + 1].startswith("  ") and len(lines[blob_line + 1]) == 78  # 25 bytes a line
    parsed = regfile.parse_reg_export(data)
    entry = parsed[f"{key}\\Certificates\\{thumb}"]["Blob"]
    assert entry == ("REG_BINARY", stores.find_certificate(host, "ROOT", thumb).blob)  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="not a registry export"):
        regfile.parse_reg_export(b"hello")


# --- probe ---------------------------------------------------------------------------------------------


def test_probe_reads_versions_and_capabilities(tmp_path: Path, locale: tuple[str, int]) -> None:
    with serve(tmp_path, locale) as srv:
        srv.server.probe()  # creates the connection's temp folder
        before = srv.state()
        caps = srv.server.probe(refresh=True)
        assert srv.state() == before  # read-only
    assert caps.windows_version == "5.2.3790" and caps.windows_major == 5
    assert (caps.iis_major, caps.iis_minor) == (6, 0)
    assert caps.codepage == locale[1]
    assert caps.is_admin and caps.cscript and not caps.powershell
    assert caps.certutil_verbs == ("exportPFX", "repairstore", "hashfile")
    assert caps.certreq_accept and caps.certreq_quiet and not caps.certreq_machine
    assert caps.row()["iis"] == "6.0"


def test_probe_sees_missing_verbs_machine_option_and_no_admin(
    tmp_path: Path, locale: tuple[str, int]
) -> None:
    with serve(tmp_path, locale, certutil_missing_verbs=["exportPFX"], certreq_machine=True) as srv:
        srv.host.is_admin = False
        caps = srv.server.probe()
    assert caps.certutil_verbs == ("repairstore", "hashfile")
    assert caps.certreq_machine
    assert not caps.is_admin


# --- emulated programs as the kit meets them (exit codes, localized messages) ----------------------------


def test_certutil_verb_probe_and_unknown_verb(tmp_path: Path, locale: tuple[str, int]) -> None:
    with serve(tmp_path, locale, certutil_missing_verbs=["repairstore"]) as srv:
        ok = srv.conn.run(["certutil", "-exportPFX", "-?"], check=False)
        missing = srv.conn.run(["certutil", "-repairstore", "-?"], check=False)
    assert ok.exit_code == 0 and "-exportPFX" in ok.stdout_text
    assert missing.exit_code & 0xFFFFFFFF == 0x80070057
    assert "Unknown arg: -repairstore" in missing.stdout_text


def test_certutil_store_not_found_and_outfile(tmp_path: Path, locale: tuple[str, int]) -> None:
    with serve(tmp_path, locale) as srv:
        g5 = certs.thumbprint(srv.pki.g5_root)
        out = srv.conn.temp_dir + "\\g5.cer"
        found = srv.conn.run(["certutil", "-store", "Root", g5.lower(), out], check=False)
        absent = srv.conn.run(["certutil", "-store", "Root", "00" * 20], check=False)
        written = srv.host.read_file(out)
    assert found.exit_code == 0
    assert written == certs.encode_der(srv.pki.g5_root)
    assert absent.exit_code & 0xFFFFFFFF == 0x80092004
    if locale[0] == "ja":
        assert "オブジェクトまたはプロパティが見つかりません。" in absent.stdout_text
    else:
        assert "Cannot find object or property." in absent.stdout_text


def test_mutating_commands_are_denied_without_admin(tmp_path: Path, locale: tuple[str, int]) -> None:
    with serve(tmp_path, locale) as srv:
        srv.host.is_admin = False
        cer = srv.conn.temp_dir + "\\x.cer"
        srv.conn.upload(certs.encode_der(srv.pki.intermediate), cer)
        before = srv.state()
        added = srv.conn.run(["certutil", "-addstore", "CA", cer], check=False)
        reg_add = srv.conn.run(
            ["reg", "add", r"HKLM\SOFTWARE\Test", "/v", "x", "/t", "REG_BINARY", "/d", "00", "/f"],
            check=False,
        )
        admin = srv.conn.run(["reg", "query", r"HKU\S-1-5-19"], check=False)
        assert srv.state() == before
    assert added.exit_code & 0xFFFFFFFF == 0x80070005
    assert reg_add.exit_code == 1 and admin.exit_code == 1
    denied = "アクセスが拒否されました。" if locale[0] == "ja" else "Access is denied."
    assert denied in added.stdout_text and denied in reg_add.stderr_text


def test_certreq_refuses_a_new_root_and_reports_no_request(tmp_path: Path, locale: tuple[str, int]) -> None:
    with serve(tmp_path, locale) as srv:
        pki = srv.pki
        p7b = srv.conn.temp_dir + "\\with-root.p7b"
        # A root the server does not trust yet would make Windows prompt: the emulation refuses instead.
        stores.remove_certificate(srv.host, "ROOT", certs.thumbprint(pki.old_root))
        srv.conn.upload(pki.pkcs7_bundle(pki.new_leaf, pki.intermediate, pki.old_root, encoding="DER"), p7b)
        before = srv.state()
        prompted = srv.conn.run(["certreq", "-accept", p7b], check=False)
        assert srv.state() == before
        other = srv.conn.temp_dir + "\\other.cer"
        srv.conn.upload(certs.encode_der(pki.current_leaf), other)
        unmatched = srv.conn.run(["certreq", "-accept", other], check=False)
        machine = srv.conn.run(["certreq", "-accept", "-machine", other], check=False)
    assert prompted.exit_code & 0xFFFFFFFF == 0x800704C7
    assert unmatched.exit_code & 0xFFFFFFFF == 0x80092004
    assert "0x80092004" in unmatched.stderr_text
    assert machine.exit_code & 0xFFFFFFFF == 0x80070057  # -machine unknown on this (2003) certreq


# --- trusted roots (step 0) -----------------------------------------------------------------------------


def test_trusted_roots_reads_every_physical_store(tmp_path: Path, locale: tuple[str, int]) -> None:
    with serve(tmp_path, locale) as srv:
        srv.server.probe()
        before = srv.state()
        entries = server_stores.trusted_roots(srv.conn)
        assert srv.state() == before  # exports and staging files are removed again
        pki = srv.pki
    by_thumb = {e.thumbprint: e for e in entries}
    assert by_thumb[certs.thumbprint(pki.g5_root)].store == "ROOT"
    assert by_thumb[certs.thumbprint(pki.old_root)].store == "ROOT"
    real_g5 = certs.KNOWN.by_role("forbidden_root")[0].sha1
    assert by_thumb[real_g5].store == "AuthRoot" and by_thumb[real_g5].summary.known_as
    assert all(e.enabled and e.purposes is None for e in entries)
    assert {e.store for e in entries} == {"ROOT", "AuthRoot"}  # GroupPolicy/Enterprise: absent = empty
    assert entries[0].row()["purposes"] == "all"
    # The catalogue finds the real G5; the scenario's forbidden_roots add the rehearsal copy.
    assert [e.thumbprint for e in server_stores.forbidden_entries(entries)] == [real_g5]
    extra = srv.host.extra["forbidden_roots"]
    assert {e.thumbprint for e in server_stores.forbidden_entries(entries, extra)} == {
        real_g5,
        certs.thumbprint(pki.g5_root),
    }


def test_disable_roots_backs_up_disables_reads_back_and_restores(
    tmp_path: Path, locale: tuple[str, int]
) -> None:
    evidence = tmp_path / "evidence"
    with serve(tmp_path, locale) as srv:
        bad = _forbidden(srv)
        before = srv.state()
        plan = roots.plan_disable_roots(bad)
        assert srv.state() == before
        assert {c.after for c in plan} == {"disabled (no purposes)"}
        changes = roots.disable_roots(srv.server, bad, backup_dir=evidence)
        # The server now holds property 9 = empty EKU on both, read through the emulation's own parser.
        for e in bad:
            held = stores.find_certificate(srv.host, e.store, e.thumbprint, physical=e.store)
            assert held is not None and held.eku == b"\x30\x00"
        backups = sorted(evidence.glob("root-backup_*.reg"))
        assert len(backups) == 2
        for e in bad:
            saved = regfile.parse_reg_export(
                (evidence / f"root-backup_{e.store}_{e.thumbprint}.reg").read_bytes()
            )
            assert saved[e.registry_key]["Blob"] == ("REG_BINARY", e.blob)  # the state before the change
        assert [c.after for c in changes if c.field.startswith("purposes")] == ["disabled (no purposes)"] * 2
        after = _forbidden(srv)
        assert all(not e.enabled and e.purposes == () for e in after)
        assert after[0].row()["purposes"] == "none (disabled)"
        # Idempotent: already disabled → recorded, nothing sent.
        disabled_state = srv.state()
        again = roots.disable_roots(srv.server, after, backup_dir=evidence)
        assert srv.state() == disabled_state
        assert {(c.before, c.after) for c in again} == {("disabled", "disabled")}
        restored = roots.restore_roots(srv.server, backups)
        assert {c.after for c in restored} == {"all purposes"}
        for e in bad:
            held = stores.find_certificate(srv.host, e.store, e.thumbprint, physical=e.store)
            assert held is not None and held.blob == e.blob
        assert not [f for f in srv.host.files if f.endswith((".reg", ".inf", ".b64"))]


def test_disable_roots_in_enterprise_and_group_policy_stores(tmp_path: Path, locale: tuple[str, int]) -> None:
    with serve(tmp_path, locale, scenario="no-g5") as srv:
        g5 = srv.pki.g5_root
        stores.add_certificate(srv.host, "ROOT", g5, physical="Enterprise")
        stores.add_certificate(srv.host, "ROOT", g5, physical="GroupPolicy")
        bad = _forbidden(srv)
        assert sorted(e.store for e in bad) == ["Enterprise", "GroupPolicy"]
        changes = roots.disable_roots(srv.server, bad, backup_dir=tmp_path / "ev")
        lines = [json.loads(x) for x in srv.transcript.read_text(encoding="utf-8").splitlines()]
        for physical in ("Enterprise", "GroupPolicy"):
            held = stores.find_certificate(srv.host, "ROOT", certs.thumbprint(g5), physical=physical)
            assert held is not None and held.disabled
        assert srv.thumbs("ROOT", physical="ROOT") == {certs.thumbprint(srv.pki.old_root)}  # untouched
    commands = [str(x.get("command_line", "")) for x in lines]
    assert any(c.startswith("certutil -enterprise -repairstore Root") for c in commands)
    assert any(c.startswith("certutil -grouppolicy -repairstore Root") for c in commands)
    assert any("Group Policy refresh" in str(c.after) for c in changes)


def test_disable_roots_without_repairstore(tmp_path: Path, locale: tuple[str, int]) -> None:
    with serve(tmp_path, locale, certutil_missing_verbs=["repairstore"]) as srv:
        bad = _forbidden(srv)
        before = srv.state()
        with pytest.raises(CapabilityMissing, match=r"certutil -repairstore.*nothing was changed"):
            roots.disable_roots(srv.server, bad, backup_dir=tmp_path / "ev")
        assert srv.state() == before
        changes = roots.disable_roots(
            srv.server, bad, backup_dir=tmp_path / "ev", allow_registry_fallback=True
        )
        assert all(
            stores.find_certificate(srv.host, e.store, e.thumbprint, physical=e.store).disabled  # type: ignore[union-attr]
            for e in bad
        )
    assert len([c for c in changes if c.after == "disabled (no purposes)"]) == 2


def test_disable_roots_needs_admin(tmp_path: Path, locale: tuple[str, int]) -> None:
    with serve(tmp_path, locale) as srv:
        srv.host.is_admin = False
        bad = _forbidden(srv)
        before = srv.state()
        with pytest.raises(CapabilityMissing, match="administrator rights"):
            roots.disable_roots(srv.server, bad, backup_dir=tmp_path / "ev")
        assert srv.state() == before
    assert not (tmp_path / "ev").exists()


def test_restore_roots_refuses_a_foreign_backup(tmp_path: Path, locale: tuple[str, int]) -> None:
    foreign = tmp_path / "foreign.reg"
    host = Host()
    pki = make_pki(now_utc=CLOCK)
    thumb = stores.add_certificate(host, "ROOT", pki.intermediate)
    key = stores.STORE_KEYS["ROOT"] + "\\Certificates\\" + thumb
    foreign.write_bytes(b"\xff\xfe" + reg_program.export_text(host, key).encode("utf-16-le"))
    with serve(tmp_path, locale) as srv:
        srv.server.probe()
        before = srv.state()
        with pytest.raises(PreconditionFailed, match="not a certificate of this server's stores"):
            roots.restore_roots(srv.server, [foreign])
        assert srv.state() == before


# --- pending request and installation (step 1) ----------------------------------------------------------


def test_pending_request_matches_by_public_key(tmp_path: Path, locale: tuple[str, int]) -> None:
    with serve(tmp_path, locale) as srv:
        pending = server_stores.pending_requests(srv.conn)
        match = server_stores.match_pending_request(srv.conn, srv.pki.new_leaf)
        with pytest.raises(
            PreconditionFailed, match=r"no pending request for the key of .*nothing was changed"
        ):
            server_stores.match_pending_request(srv.conn, srv.pki.current_leaf)
    assert [p.thumbprint for p in pending] == [match.thumbprint]
    assert match.key_container and match.key_provider == "Microsoft RSA SChannel Cryptographic Provider"


def test_no_pending_request(tmp_path: Path, locale: tuple[str, int]) -> None:
    with serve(tmp_path, locale, scenario="no-pending-request") as srv:
        srv.server.probe()
        before = srv.state()
        bundle = _bundle(srv.pki)
        thumb = certs.thumbprint(srv.pki.new_leaf)
        with pytest.raises(PreconditionFailed, match=f"no pending request for the key of {thumb}"):
            install.plan_install(srv.server, bundle)
        with pytest.raises(
            PreconditionFailed, match="requested on another server or the request was deleted"
        ):
            install.install_certificate(srv.server, bundle)
        assert srv.state() == before


def test_install_certificate(tmp_path: Path, locale: tuple[str, int]) -> None:
    with serve(tmp_path, locale) as srv:
        pki = srv.pki
        bundle = _bundle(pki, pki.g5_root)  # the mail's PKCS#7 may carry a root: it is never sent
        placeholder = server_stores.match_pending_request(srv.conn, pki.new_leaf)
        before = srv.state()
        plan = install.plan_install(srv.server, bundle)
        assert srv.state() == before
        result = install.install_certificate(srv.server, bundle, work_site=scenarios.WORK_SITE)
        new = certs.thumbprint(pki.new_leaf)
        held = stores.find_certificate(srv.host, "MY", new)
        assert held is not None and held.key_container == placeholder.key_container
        assert stores.key_for(srv.host, held) is not None
        assert srv.thumbs("REQUEST") == set()
        assert {certs.thumbprint(pki.intermediate), certs.thumbprint(pki.cross)} <= srv.thumbs("CA")
        assert certs.thumbprint(pki.g5_root) not in srv.thumbs("CA")
        assert not [f for f in srv.host.files if f.endswith((".cer", ".b64", ".reg"))]
        # A lost reply: run again → recognised as done, nothing sent that changes the server.
        installed_state = srv.state()
        again = install.install_certificate(srv.server, bundle)
        assert srv.state() == installed_state
    assert result.thumbprint == new and result.request_thumbprint == placeholder.thumbprint
    assert result.skipped_roots == (certs.thumbprint(pki.g5_root),) and not result.already_installed
    assert result.work_site == scenarios.WORK_SITE
    assert any(c.target == f"MY\\{new}" for c in plan)
    assert any(c.after == "not sent (roots are never installed)" for c in plan)
    assert again.already_installed and again.thumbprint == new


def test_install_needs_certreq_accept(tmp_path: Path, locale: tuple[str, int]) -> None:
    with serve(tmp_path, locale, certreq_missing_verbs=["accept"]) as srv:
        srv.server.probe()
        before = srv.state()
        with pytest.raises(CapabilityMissing, match="certreq -accept"):
            install.install_certificate(srv.server, _bundle(srv.pki))
        assert srv.state() == before


def test_install_with_machine_option(tmp_path: Path, locale: tuple[str, int]) -> None:
    # A certreq that knows -machine and finds machine requests only with it.
    with serve(tmp_path, locale, certreq_machine=True, certreq_accept_finds_machine_request=False) as srv:
        result = install.install_certificate(srv.server, _bundle(srv.pki))
        lines = [json.loads(x) for x in srv.transcript.read_text(encoding="utf-8").splitlines()]
    assert result.thumbprint == certs.thumbprint(srv.pki.new_leaf)
    assert any(str(x.get("command_line", "")).startswith("certreq -accept -machine") for x in lines)


# --- PFX export (step 3) --------------------------------------------------------------------------------


def _installed(srv: Server) -> str:
    roots.disable_roots(srv.server, _forbidden(srv), backup_dir=srv.state_file.parent / "ev")
    return install.install_certificate(srv.server, _bundle(srv.pki)).thumbprint


def test_export_pfx(tmp_path: Path, locale: tuple[str, int]) -> None:
    with serve(tmp_path, locale) as srv:
        thumb = _installed(srv)
        before = srv.state()
        plan = export.plan_export(srv.server, thumb)
        assert srv.state() == before
        pfx = export.export_pfx(srv.server, thumb, password=PFX_PASSWORD)
        assert not [f for f in srv.host.files if f.endswith((".pfx", ".b64"))]  # server copies gone
        transcript = srv.transcript.read_text(encoding="utf-8")
    assert plan[0].target == f"MY\\{thumb}"
    assert isinstance(pfx, bytes) and pfx.remote_deleted and pfx.check.ok
    assert pfx.check.has_intermediate and pfx.check.has_cross and pfx.check.key_matches
    assert pfx.check.encryption == ("pbeWithSHAAnd3-KeyTripleDES-CBC",)
    assert pfx.facts()["pfx_sha256"] == pfx.sha256 and len(pfx.sha256) == 64
    bundle = certs.load_pkcs12(pfx.data, PFX_PASSWORD, source="backup.pfx")
    assert bundle.leaf is not None and certs.thumbprint(bundle.leaf) == thumb
    assert PFX_PASSWORD in credentials.registered()
    assert PFX_PASSWORD not in transcript and "-exportPFX" in transcript


def test_export_pfx_with_g5_still_enabled_lacks_the_cross(tmp_path: Path, locale: tuple[str, int]) -> None:
    # Exported while the rehearsal G5 is enabled, the PFX holds no cross certificate. That is a usable
    # backup as far as export_pfx knows (a path to an enabled root), but not the chain predicted with G5
    # forbidden: check_pfx names the missing cross certificate.
    with serve(tmp_path, locale) as srv:
        thumb = install.install_certificate(srv.server, _bundle(srv.pki)).thumbprint
        pfx = export.export_pfx(srv.server, thumb, password=PFX_PASSWORD)
        assert not [f for f in srv.host.files if f.endswith((".pfx", ".b64"))]
        pki = srv.pki
    assert not pfx.check.has_cross
    predicted = [certs.thumbprint(c) for c in (pki.new_leaf, pki.intermediate, pki.cross, pki.old_root)]
    check = certs.check_pfx(pfx.data, PFX_PASSWORD, source="backup.pfx", expected_chain=predicted)
    assert check.problems == (
        f"the expected chain is not inside: missing {certs.thumbprint(pki.cross)} (export with the whole chain)",
    )


def test_export_pfx_key_not_exportable(tmp_path: Path, locale: tuple[str, int]) -> None:
    with serve(tmp_path, locale, scenario="key-not-exportable") as srv:
        thumb = _installed(srv)
        with pytest.raises(PreconditionFailed, match="created non-exportable") as err:
            export.export_pfx(srv.server, thumb, password=PFX_PASSWORD)
        assert not [f for f in srv.host.files if f.endswith((".pfx", ".b64"))]
    assert PFX_PASSWORD not in str(err.value)


# --- PFX export without certutil -exportPFX: IIS.CertObj through the bound site ----------------------------

NO_EXPORTPFX = {"certutil_missing_verbs": ["exportPFX"]}


def _bound(srv: Server, site: str = "W3SVC/2") -> str:
    """Install the new certificate (step 1) and bind it to ``site`` (the work site, as step 1 does)."""
    thumb = _installed(srv)
    srv.server.iis.bind(site, thumb)
    return thumb


def _server_pfx_files(srv: Server) -> list[str]:
    return [f for f in srv.host.files if f.endswith((".pfx", ".b64"))]


def test_export_pfx_through_iis_certobj_when_certutil_lacks_the_verb(
    tmp_path: Path, locale: tuple[str, int]
) -> None:
    with serve(tmp_path, locale, **NO_EXPORTPFX) as srv:
        thumb = _bound(srv)
        assert not srv.server.probe().has_certutil("exportPFX")
        before = srv.state()
        plan = export.plan_export(srv.server, thumb)
        assert srv.state() == before
        pfx = export.export_pfx(srv.server, thumb, password=PFX_PASSWORD)
        assert not _server_pfx_files(srv)  # the server copy is gone
        assert srv.host.sites[2].ssl_cert_hash == thumb  # bRemoveCert false: still bound
        assert stores.find_certificate(srv.host, "MY", thumb) is not None
        transcript = srv.transcript.read_text(encoding="utf-8")
    assert plan[0].target == f"MY\\{thumb}" and plan[0].after.endswith("(IIS.CertObj via W3SVC/2)")
    assert pfx.route == "IIS.CertObj via W3SVC/2" and pfx.facts()["pfx_export_route"] == pfx.route
    assert pfx.remote_deleted and pfx.check.ok and pfx.chain
    assert pfx.check.key_matches and pfx.check.has_intermediate and pfx.check.has_cross
    assert pfx.check.encryption == ("pbeWithSHAAnd3-KeyTripleDES-CBC",)
    bundle = certs.load_pkcs12(pfx.data, PFX_PASSWORD, source="backup.pfx")
    assert bundle.leaf is not None and certs.thumbprint(bundle.leaf) == thumb
    commands = [json.loads(x).get("command_line", "") for x in transcript.splitlines()]
    assert any(" export-pfx 2 " in c and "[REDACTED]" in c for c in commands)
    assert not any(c.startswith("certutil -p ") for c in commands)
    assert PFX_PASSWORD in credentials.registered() and PFX_PASSWORD not in transcript


def test_export_pfx_prefers_the_started_site_and_honours_a_named_one(
    tmp_path: Path, locale: tuple[str, int]
) -> None:
    with serve(tmp_path, locale, **NO_EXPORTPFX) as srv:
        thumb = _bound(srv)
        srv.server.iis.swap(production_site="W3SVC/1", new_thumbprint=thumb)  # step 2: production started
        plan = export.plan_export(srv.server, thumb)
        named = export.export_pfx(srv.server, thumb, password=PFX_PASSWORD, site="renew.www1.example.jp")
        with pytest.raises(PreconditionFailed, match=r"W3SVC/1 .* is bound to MY\\[0-9A-F]{40}, not MY\\"):
            export.export_pfx(
                srv.server, certs.thumbprint(srv.pki.current_leaf), password=PFX_PASSWORD, site="W3SVC/1"
            )
    assert plan[0].after.endswith("(IIS.CertObj via W3SVC/1)")
    assert named.route == "IIS.CertObj via W3SVC/2" and named.check.ok


def test_export_pfx_through_iis_certobj_of_a_non_exportable_key(
    tmp_path: Path, locale: tuple[str, int]
) -> None:
    with serve(tmp_path, locale, scenario="key-not-exportable", **NO_EXPORTPFX) as srv:
        thumb = _bound(srv)
        with pytest.raises(
            PreconditionFailed, match=r"created non-exportable.*IIS\.CertObj: NTE_BAD_KEY_STATE 0x8009000B"
        ) as err:
            export.export_pfx(srv.server, thumb, password=PFX_PASSWORD)
        assert not _server_pfx_files(srv)
        transcript = srv.transcript.read_text(encoding="utf-8")
    assert "Mark the key as exportable" in str(err.value)
    assert PFX_PASSWORD not in str(err.value) and PFX_PASSWORD not in transcript


def test_export_pfx_without_the_verb_needs_a_bound_site(tmp_path: Path, locale: tuple[str, int]) -> None:
    with serve(tmp_path, locale, **NO_EXPORTPFX) as srv:
        thumb = _installed(srv)  # in MY with its key, but on no site
        assert thumb not in {s.cert_thumbprint for s in srv.server.iis.sites()}  # (uploads the helper)
        before = srv.state()
        with pytest.raises(PreconditionFailed, match=rf"no IIS site has MY\\{thumb} bound") as err:
            export.plan_export(srv.server, thumb)
        with pytest.raises(PreconditionFailed, match="IIS.CertObj cannot export it"):
            export.export_pfx(srv.server, thumb, password=PFX_PASSWORD)
        dry = export.plan_export(srv.server, thumb, installed=False)  # a dry run: nothing bound yet
        assert srv.state() == before
        transcript = srv.transcript.read_text(encoding="utf-8")
    assert "bind" in err.value.hint and "step 1" in err.value.hint
    assert "IIS.CertObj via the site it is bound to" in dry[0].after
    assert "export-pfx" not in transcript and PFX_PASSWORD not in transcript


def test_export_pfx_without_the_verb_nor_cscript(tmp_path: Path, locale: tuple[str, int]) -> None:
    with serve(tmp_path, locale, **NO_EXPORTPFX) as srv:
        del srv.host.programs["cscript"]
        thumb = certs.thumbprint(srv.pki.current_leaf)
        assert not srv.server.probe().cscript  # (makes the temporary folder)
        before = srv.state()
        with pytest.raises(CapabilityMissing, match=r"certutil -exportPFX, and cscript\.exe .*IIS\.CertObj"):
            export.plan_export(srv.server, thumb)
        with pytest.raises(CapabilityMissing, match="export the certificate with its private key by hand"):
            export.export_pfx(srv.server, thumb, password=PFX_PASSWORD)
        assert srv.state() == before


def test_export_pfx_through_iis_certobj_never_sends_the_operators_password(
    tmp_path: Path, locale: tuple[str, int]
) -> None:
    """Issue 12 item 6: the server sees a one-time password only, so even characters cmd could not
    carry are fine in the operator's password (the PFX is re-protected here)."""
    with serve(tmp_path, locale, **NO_EXPORTPFX) as srv:
        thumb = _bound(srv)
        bad = 'Pa55%wo"rd!x'
        pfx = export.export_pfx(srv.server, thumb, password=bad)
        assert pfx.check.ok and certs.load_pkcs12(pfx.data, bad, source="backup").private_key is not None
        assert not _server_pfx_files(srv)
        transcript = srv.transcript.read_text(encoding="utf-8")
    assert "export-pfx" in transcript and bad not in transcript


def test_a_full_run_backs_up_through_iis_certobj(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One renewal through the runbook (steps 0–4) on a Japanese 2003 whose certutil lacks -exportPFX."""
    winrm_pw, pfx_pw = f"W{random.token_urlsafe(15)}", f"P{random.token_urlsafe(15)}"
    monkeypatch.setenv("OPSLIB_WIN_E2E_WINRM", winrm_pw)
    monkeypatch.setenv("OPSLIB_WIN_E2E_PFX", pfx_pw)
    reh = rehearsal.start(
        scenario="iis6-ja", password=winrm_pw, workdir=tmp_path / "host", state_file=tmp_path / "state.json"
    )
    try:
        reh.host.extra.update(NO_EXPORTPFX)
        data = reh.params(
            password_env="OPSLIB_WIN_E2E_WINRM",
            pfx_password_env="OPSLIB_WIN_E2E_PFX",
            backup_dir=str(tmp_path / "backups"),
        )
        params_file = tmp_path / "params" / "web01.yaml"
        params_file.parent.mkdir()
        params_file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        code = cli.main(["run", str(params_file), "--evidence-root", str(tmp_path / "evidence"), "--yes"])
        new_thumb = reh.host.extra["new_thumbprint"]
        left = _pfx_files_of(reh.host)
    finally:
        reh.stop()
    assert code == 0
    (run_dir,) = [p for p in (tmp_path / "evidence").iterdir() if (p / "run.json").is_file()]
    manifest = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    assert manifest["status"] == "succeeded"
    facts = manifest["facts"]
    assert facts["pfx_export_route"] == "IIS.CertObj via W3SVC/1"  # production, started after step 2
    assert facts["pfx_thumbprint"] == new_thumb and facts["server_copy_deleted"] is True
    assert facts["pfx_has_intermediate"] and facts["pfx_has_cross"]
    backup = Path(facts["backup_file"])
    check = certs.check_pfx(backup.read_bytes(), pfx_pw, source=str(backup), expected_thumbprint=new_thumb)
    assert check.key_matches and check.has_intermediate
    assert not left
    transcript = (run_dir / "transcript.jsonl").read_text(encoding="utf-8")
    assert " export-pfx 1 " in transcript and "certutil -p " not in transcript
    assert_no_secrets(run_dir, [winrm_pw, pfx_pw])


def _pfx_files_of(host: Host) -> list[str]:
    return [f for f in host.files if f.endswith((".pfx", ".b64"))]


def test_export_pfx_takes_any_printable_password_of_8_or_more(
    tmp_path: Path, locale: tuple[str, int]
) -> None:
    """The one rule (credentials.PFX_PASSWORD_RULE): 8+ printable characters. Spaces, commas, quotes, %, !
    and a leading - are fine (the password never reaches the server); the PFX opens with it."""
    with serve(tmp_path, locale) as srv:
        thumb = certs.thumbprint(srv.pki.current_leaf)
        with pytest.raises(PreconditionFailed, match="at least 8 characters"):
            export.export_pfx(srv.server, thumb, password="short")
        with pytest.raises(PreconditionFailed, match="control character .* — nothing was sent"):
            export.export_pfx(srv.server, thumb, password="tab\there-x")
        assert not any("exportpfx" in str(c.get("command", "")).lower() for c in srv.host.history)
        odd = '-a b,c"%PATH%!x ü'
        result = export.export_pfx(srv.server, thumb, password=odd)
        assert result.thumbprint == thumb and result.remote_deleted
        checked = certs.check_pfx(result.data, odd, source="backup", expected_thumbprint=thumb)
        assert checked.opens and checked.key_matches


def test_export_pfx_of_a_missing_certificate(tmp_path: Path, locale: tuple[str, int]) -> None:
    with serve(tmp_path, locale) as srv:
        with pytest.raises(PreconditionFailed, match=r"holds no certificate 0{40}"):
            export.export_pfx(srv.server, "00" * 20, password=PFX_PASSWORD)


def test_step_0_accepts_a_certificate_an_interrupted_run_already_installed(
    tmp_path: Path, locale: tuple[str, int]
) -> None:
    # A run stopped after `certreq -accept` (its reply lost): the placeholder is gone and MY holds the
    # new certificate with its key. A fresh run's read-only server check must recognise that, as
    # step 1 does, instead of refusing with "no pending request".
    from opslib import preflight

    with serve(tmp_path, locale) as srv:
        install.install_certificate(srv.server, _bundle(srv.pki))
        mail = tmp_path / "2026cert.pem"
        mail.write_bytes(certs.encode_pem(srv.pki.new_leaf))
        srv.server.iis.sites()  # uploads the helper script to the connection's temp folder once
        before = srv.state()
        ready = preflight.check_server(
            srv.server,
            production_site=scenarios.PRODUCTION_SITE,
            work_site=scenarios.WORK_SITE,
            certificate_file=str(mail),
            host="web01",
        )
        assert ready.pending_request == certs.thumbprint(srv.pki.new_leaf)
        assert srv.state() == before


# --- the one table of Windows error codes ----------------------------------------------------------------


def test_winerror_describes_known_codes_and_shows_others_as_numbers() -> None:
    from opslib import winerror

    assert (
        winerror.describe(0x8009000B)
        == "NTE_BAD_KEY_STATE 0x8009000B (the private key was created non-exportable)"
    )
    assert winerror.describe(-2146885628) == winerror.describe(winerror.CRYPT_E_NOT_FOUND)  # signed exit code
    assert winerror.name(-2146885628) == "CRYPT_E_NOT_FOUND"
    assert winerror.describe(0x800B0109).startswith("CERT_E_UNTRUSTEDROOT 0x800B0109")
    assert winerror.describe(0x800B010A).startswith("CERT_E_CHAINING 0x800B010A")
    assert winerror.describe(9009).startswith("9009 (cmd.exe does not know the command")
    assert winerror.describe(0x80070057) == "E_INVALIDARG 0x80070057 (an unknown verb or a bad argument)"
    assert winerror.describe(0x8007000D) == "0x8007000D"  # a code the table does not name
    assert winerror.describe(42) == "42" and winerror.name(42) == ""
