"""The kit's transport on each channel real Windows offers, against the rehearsal host as each ships it.

* Server 2008 R2+ (WinRM 2.0+): NTLM with WinRM message encryption over HTTP (Basic off, unencrypted refused).
* Server 2003 (WinRM 1.1): HTTPS with TLS 1.0 only, ``winrm.tls: legacy-tls1.0`` (a context for that
  connection only); without it the kit says what to set; without the AES update it names KB948963.
* Cleartext channels (Basic over HTTP, WinRM 1.1 HTTP): key material and passwords are refused unless
  ``winrm.allow_cleartext_secrets: true``, and then the transcript says so in plain words.
* A wrong password: the 401 names ``winrm.username`` and the URL, never the password.
"""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REHEARSAL_PASSWORD

from opslib import params, rehearsal
from opslib import winrm as transport
from opslib.errors import AuthenticationFailed, ConnectionFailed, ParameterError

W2003 = "5.2.3790"
W2019 = "10.0.17763"


def _connect(r: rehearsal.Rehearsal, **kw: Any) -> transport.Connection:
    opts: dict[str, Any] = {
        "transport": "ntlm",
        "username": r.user,
        "password": REHEARSAL_PASSWORD,
        "host_label": "web01",
        "ca_trust_path": str(r.ca_file) if r.ca_file else None,
    }
    opts.update(kw)
    return transport.connect(r.url, **opts)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def _round_trip(conn: transport.Connection, *, secret: bool) -> None:
    data = os.urandom(20_000)
    remote = conn.temp_dir + "\\key.pfx"
    transfer = conn.upload(data, remote, secret=secret)
    assert transfer.size == len(data)
    assert conn.download(remote, secret=secret) == data


@pytest.fixture
def iis10() -> Iterator[rehearsal.Rehearsal]:
    """Server 2019 / IIS 10 as shipped: WinRM 3.0, Negotiate only, AllowUnencrypted=false, HTTP."""
    with rehearsal.start(
        scenario="iis10", password=REHEARSAL_PASSWORD, **rehearsal.shipped_options(W2019)
    ) as r:  # type: ignore[arg-type]
        assert not r.https and r.auth == "negotiate"
        yield r


@pytest.fixture
def iis6_tls10() -> Iterator[rehearsal.Rehearsal]:
    """Japanese Server 2003 / IIS 6 as shipped: WinRM 1.1 behind an HTTPS listener with TLS 1.0 only."""
    with rehearsal.start(
        scenario="iis6-ja", password=REHEARSAL_PASSWORD, **rehearsal.shipped_options(W2003)
    ) as r:  # type: ignore[arg-type]
        assert r.https and r.url.startswith("https://")
        yield r


# --- NTLM with message encryption over HTTP (2008 R2 and later) -------------------------------------


def test_ntlm_sealed_http_runs_commands_and_moves_key_material(
    iis10: rehearsal.Rehearsal, tmp_path: Path
) -> None:
    transcript = tmp_path / "transcript.jsonl"
    with _connect(iis10, transcript=transcript) as conn:
        assert b"Microsoft Windows [Version 10.0.17763]" in conn.run(["ver"]).stdout
        assert conn.channel == {
            "scheme": "http",
            "tls": "default",
            "tls_version": None,
            "cipher": None,
            "auth": "ntlm",
            "message_encryption": True,
            "confidential": True,
        }
        conn.require_confidential("export a PFX")  # sealed: no refusal, nothing recorded
        _round_trip(conn, secret=True)
        conn.run(["echo", "-p", "Pfx-Sealed-771"], secrets=["Pfx-Sealed-771"], what="export")
    text = transcript.read_text(encoding="utf-8")
    assert "Pfx-Sealed-771" not in text and REHEARSAL_PASSWORD not in text
    assert transport.channels(transcript) == [conn.channel]
    assert transport.cleartext_acceptances(transcript) == []


def test_a_sealed_session_fails_cleanly_when_sealing_is_turned_off(iis10: rehearsal.Rehearsal) -> None:
    """AllowUnencrypted=false: NTLM without message encryption gets HTTP 500 from WinRM 2.0+."""
    with pytest.raises(ConnectionFailed, match="HTTP 500 while trying to open a shell"):
        _connect(iis10, message_encryption="never")


# --- Server 2003: HTTPS with TLS 1.0 -------------------------------------------------------------------


def test_tls10_with_legacy_setting_records_what_was_negotiated(
    iis6_tls10: rehearsal.Rehearsal, tmp_path: Path
) -> None:
    transcript = tmp_path / "transcript.jsonl"
    with _connect(iis6_tls10, tls="legacy-tls1.0", transcript=transcript) as conn:
        assert b"[Version 5.2.3790]" in conn.run(["ver"]).stdout
        channel = conn.channel
        assert (channel["scheme"], channel["tls"], channel["tls_version"]) == (
            "https",
            "legacy-tls1.0",
            "TLSv1",
        )
        assert channel["cipher"] in ("AES128-SHA", "AES256-SHA")
        assert (channel["message_encryption"], channel["confidential"]) == (False, True)
        _round_trip(conn, secret=True)
    (recorded,) = transport.channels(transcript)
    assert recorded == channel
    # Only that connection was downgraded: the process's default context still refuses TLS 1.0 …
    assert ssl.create_default_context().minimum_version >= ssl.TLSVersion.TLSv1_2
    # … and a connection without the setting to the same server is refused, with what to set.
    with pytest.raises(
        ConnectionFailed, match=r"offers only TLS 1\.0.*set winrm\.tls: legacy-tls1\.0"
    ) as info:
        _connect(iis6_tls10)
    assert iis6_tls10.url in str(info.value)


def test_legacy_tls_still_validates_the_certificate(iis6_tls10: rehearsal.Rehearsal) -> None:
    with pytest.raises(ConnectionFailed, match="could not be validated.*winrm.ca_trust_path"):
        _connect(iis6_tls10, tls="legacy-tls1.0", ca_trust_path=None)
    with _connect(
        iis6_tls10, tls="legacy-tls1.0", ca_trust_path=None, server_cert_validation="ignore"
    ) as conn:
        assert conn.channel["tls_version"] == "TLSv1"


def test_basic_over_tls10_https_works_where_basic_is_enabled() -> None:
    options = {**rehearsal.shipped_options(W2003), "allow_basic": True}
    with rehearsal.start(scenario="iis6-ja", password=REHEARSAL_PASSWORD, **options) as r:  # type: ignore[arg-type]
        with _connect(r, transport="basic", tls="legacy-tls1.0") as conn:
            assert conn.channel_confidential and conn.channel["auth"] == "basic"
            assert conn.run(["hostname"]).exit_code == 0


def test_server_2003_without_the_aes_update_names_kb948963() -> None:
    options = {**rehearsal.shipped_options(W2003), "tls": "tls1.0-no-aes"}
    with rehearsal.start(scenario="iis6-ja", password=REHEARSAL_PASSWORD, **options) as r:  # type: ignore[arg-type]
        with pytest.raises(ConnectionFailed, match=r"only RC4/3DES.*OpenSSL cannot use.*KB948963") as info:
            _connect(r, tls="legacy-tls1.0")
        assert "set winrm.tls" not in str(info.value)  # already set: the server is the one to change
        with pytest.raises(ConnectionFailed, match=r"set winrm\.tls: legacy-tls1\.0 first.*KB948963"):
            _connect(r)


def test_legacy_setting_against_a_modern_listener_says_to_remove_it() -> None:
    with rehearsal.start(scenario="iis10", password=REHEARSAL_PASSWORD, auth="negotiate", https=True) as r:
        with pytest.raises(ConnectionFailed, match=r"refused TLS 1\.0.*remove it"):
            _connect(r, tls="legacy-tls1.0")
        with _connect(r) as conn:  # the default context: TLS 1.2 or later, recorded as negotiated
            assert conn.channel["tls_version"] in ("TLSv1.2", "TLSv1.3")


def test_legacy_setting_needs_an_https_url(iis10: rehearsal.Rehearsal) -> None:
    before = iis10.request_count
    with pytest.raises(ParameterError, match=r"winrm\.tls: legacy-tls1\.0 applies to an https:// URL only"):
        _connect(iis10, tls="legacy-tls1.0")
    with pytest.raises(ParameterError, match=r"winrm\.tls: must be one of default, legacy-tls1\.0"):
        _connect(iis10, tls="tls1.0")
    assert iis10.request_count == before  # refused before anything was sent


# --- cleartext channels: the guard -------------------------------------------------------------------


def test_basic_over_http_refuses_secrets_and_names_the_parameter(tmp_path: Path) -> None:
    transcript = tmp_path / "transcript.jsonl"
    with rehearsal.start(scenario="iis6-ja", password=REHEARSAL_PASSWORD) as r:
        with _connect(r, transport="basic", allow_unencrypted_basic=True, transcript=transcript) as conn:
            assert conn.channel_confidential is False
            assert conn.run(["hostname"]).exit_code == 0  # ordinary commands still run
            before = r.request_count
            for attempt in (
                lambda: conn.require_confidential("export the PFX"),
                lambda: conn.run(["echo", "-p", "Pfx-Clear-552"], secrets=["Pfx-Clear-552"], what="export"),
                lambda: conn.download("C:\\x.pfx", what="bring the PFX back", secret=True),
                lambda: conn.upload(b"key", "C:\\x.pfx", what="upload the PFX", secret=True),
            ):
                with pytest.raises(ParameterError) as info:
                    attempt()
                message = str(info.value)
                assert message.startswith("winrm.allow_cleartext_secrets: refused to ")
                assert "not encrypted (Basic authentication over plain HTTP)" in message
                assert "would cross the network in clear text" in message
                assert "set winrm.allow_cleartext_secrets: true" in message
                assert "Pfx-Clear-552" not in message and info.value.exit_code == 2
            assert r.request_count == before  # refused before anything was sent
    assert "Pfx-Clear-552" not in transcript.read_text(encoding="utf-8")
    assert transport.cleartext_acceptances(transcript) == []


def test_allow_cleartext_secrets_proceeds_and_the_transcript_says_so(tmp_path: Path) -> None:
    transcript = tmp_path / "transcript.jsonl"
    with rehearsal.start(scenario="iis6-ja", password=REHEARSAL_PASSWORD) as r:
        with _connect(
            r,
            transport="basic",
            allow_unencrypted_basic=True,
            allow_cleartext_secrets=True,
            transcript=transcript,
        ) as conn:
            result = conn.run(["echo", "-p", "Pfx-Clear-553"], secrets=["Pfx-Clear-553"], what="export")
            assert result.exit_code == 0
            _round_trip(conn, secret=True)
    text = transcript.read_text(encoding="utf-8")
    assert "Pfx-Clear-553" not in text and REHEARSAL_PASSWORD not in text
    accepted = transport.cleartext_acceptances(transcript)
    assert len(accepted) == 3  # the command line with the password, the upload, the download
    assert accepted[0].startswith("The operator accepted (winrm.allow_cleartext_secrets: true) that 'export'")
    assert "in clear text (Basic authentication over plain HTTP)" in accepted[0]
    entries = [e for e in _lines(transcript) if e.get("what") == transport.channel.CLEARTEXT_ACCEPTED]
    assert [e["for"].split(" ")[0] for e in entries] == ["export", "upload", "download"]
    assert all(e["for"].endswith("\\key.pfx") for e in entries[1:])


def test_winrm11_http_authenticates_without_sealing_and_is_not_confidential() -> None:
    """WinRM 1.1 over HTTP: NTLM authenticates, the data is not encrypted (no message encryption in 1.1)."""
    with rehearsal.start(scenario="iis6-ja", password=REHEARSAL_PASSWORD, auth="negotiate") as r:
        with pytest.raises(
            ConnectionFailed, match=r"HTTP 415.*winrm\.tls: legacy-tls1\.0.*message_encryption: never"
        ):
            _connect(r)
        with _connect(r, message_encryption="never") as conn:
            assert b"5.2.3790" in conn.run(["ver"]).stdout
            assert conn.channel["message_encryption"] is False and conn.channel_confidential is False
            with pytest.raises(
                ParameterError, match=r"ntlm over plain HTTP without WinRM message encryption"
            ):
                conn.require_confidential("export the PFX")


# --- authentication failures --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["ntlm-sealed-http", "basic-tls10"])
def test_a_wrong_password_names_the_user_and_url_never_the_password(kind: str) -> None:
    wrong = "Wrong-Secret-Pw-991"
    if kind == "ntlm-sealed-http":
        ctx = rehearsal.start(
            scenario="iis10", password=REHEARSAL_PASSWORD, **rehearsal.shipped_options(W2019)
        )  # type: ignore[arg-type]
        kw: dict[str, Any] = {}
    else:
        options = {**rehearsal.shipped_options(W2003), "allow_basic": True}
        ctx = rehearsal.start(scenario="iis6-ja", password=REHEARSAL_PASSWORD, **options)  # type: ignore[arg-type]
        kw = {"transport": "basic", "tls": "legacy-tls1.0"}
    with ctx as r:
        with pytest.raises(AuthenticationFailed) as info:
            _connect(r, password=wrong, **kw)
    message = str(info.value)
    assert message.startswith(
        f"{r.url}: the server refused the credentials of winrm.username 'Administrator'"
    )
    assert "(HTTP 401)" in message and "winrm.password" in message and "winrm.transport" in message
    for text in (message, repr(info.value), info.value.hint, *map(str, info.value.args)):
        assert wrong not in text and REHEARSAL_PASSWORD not in text
    assert info.value.__cause__ is None and info.value.__suppress_context__


# --- the parameters a rehearsal host writes reach the transport ------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "windows_version", "expected"),
    [
        ("iis6-ja", W2003, {"transport": "ntlm", "tls": "legacy-tls1.0", "allow_cleartext_secrets": False}),
        ("iis10", W2019, {"transport": "ntlm", "tls": "default", "allow_cleartext_secrets": False}),
        ("iis6-ja", None, {"transport": "basic", "tls": "default", "allow_cleartext_secrets": True}),
    ],
)
def test_rehearsal_params_validate_and_connect(
    scenario: str,
    windows_version: str | None,
    expected: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    options = rehearsal.shipped_options(windows_version) if windows_version else {}
    monkeypatch.setenv("OPSLIB_TEST_CHANNEL_PW", REHEARSAL_PASSWORD)
    with rehearsal.start(scenario=scenario, password=REHEARSAL_PASSWORD, **options) as r:  # type: ignore[arg-type]
        data = r.params(password_env="OPSLIB_TEST_CHANNEL_PW")
        checked = params.validate(data, source="rehearsal.yaml", base_dir=tmp_path, check_files=False)
        winrm = checked.get("winrm")
        assert {k: winrm[k] for k in expected} == expected
        with transport.connect_params(winrm, host="web01", run_dir=str(tmp_path)) as conn:
            assert conn.run(["hostname"]).exit_code == 0
            assert conn.channel_confidential is (not expected["allow_cleartext_secrets"])
    (channel,) = transport.channels(tmp_path / "transcript.jsonl")
    assert channel["tls"] == expected["tls"]


# --- the legacy context itself ---------------------------------------------------------------------------


def test_legacy_context_accepts_a_2003_ca_signed_sha1_certificate_and_checks_the_name(tmp_path: Path) -> None:
    """A listener certificate signed with SHA-1 by a CA (as a 2003 CA issued them) needs security level 0."""
    import ipaddress
    import socket
    import threading
    import warnings
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    from opslib.rehearsal import tlsconfig

    now = datetime.now(UTC)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Example 2003 CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=3))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=3))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    sha1_leaf = x509.load_der_x509_certificate(
        tlsconfig._resign_sha1(leaf.public_bytes(serialization.Encoding.DER), ca_key)
    )
    assert isinstance(sha1_leaf.signature_hash_algorithm, hashes.SHA1)
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.pem").write_bytes(sha1_leaf.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "leaf.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    server_ctx = tlsconfig.server_context("tls1.0", tmp_path / "leaf.pem", tmp_path / "leaf.key")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                raw, _ = listener.accept()
            except OSError:
                return
            try:
                server_ctx.wrap_socket(raw, server_side=True).close()
            except (OSError, ssl.SSLError):
                raw.close()

    threading.Thread(target=serve, daemon=True).start()

    def handshake(ctx: ssl.SSLContext, name: str) -> tuple[str | None, str]:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname=name) as tls:
                cipher = tls.cipher()
                return tls.version(), cipher[0] if cipher else ""

    try:
        ctx = transport.legacy_context(ca_trust_path=str(tmp_path / "ca.pem"), validate=True)
        assert handshake(ctx, "127.0.0.1") == ("TLSv1", "AES128-SHA")
        with pytest.raises(ssl.SSLCertVerificationError, match="match"):
            handshake(
                transport.legacy_context(ca_trust_path=str(tmp_path / "ca.pem"), validate=True), "web02"
            )
        # The same context at security level 1 refuses the SHA-1 signature: level 0 is needed.
        level1 = transport.legacy_context(ca_trust_path=str(tmp_path / "ca.pem"), validate=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            level1.set_ciphers("AES128-SHA:AES256-SHA:@SECLEVEL=1")
        with pytest.raises(ssl.SSLCertVerificationError, match="too weak"):
            handshake(level1, "127.0.0.1")
    finally:
        listener.close()
