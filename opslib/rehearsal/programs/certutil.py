"""``certutil.exe`` of the rehearsal host: the store verbs the kit uses, plus the file verbs.

Syntax and semantics follow the certutil reference
(https://learn.microsoft.com/en-us/windows-server/administration/windows-commands/certutil, "[V syntax]" in
``docs/windows-behaviour.md``):

* ``certutil [-enterprise|-grouppolicy] -store [StoreName [CertId [OutputFile]]]`` — dumps a store; with
  OutputFile writes the matching certificate (DER) to it. CertId: "a serial number, an SHA-1 certificate …
  hash, a numeric cert index (0, 1, and so on), … a certificate subject Common Name, … a key container
  name" (same page). Not found → ``Cannot find object or property. 0x80092004 (-2146885628)``
  (CRYPT_E_NOT_FOUND; wording seen in KB842210).
* ``certutil [-f] [-enterprise|-grouppolicy] -addstore StoreName InFile`` — adds the certificates of
  InFile. Already present: "Certificate … already in store." and success [I]; ``-f`` replaces [I].
  PKCS#7 input is accepted by current certutil; whether the 2003 (V2) certutil accepts it is [U]
  (``host.extra["certutil_addstore_p7b"] = False`` makes this host refuse it).
* ``certutil [-enterprise|-grouppolicy] -delstore StoreName CertId``.
* ``certutil [-enterprise|-grouppolicy] -repairstore StoreName CertIdList [PropertyInfFile]`` — with an
  INF ``[Properties]`` section: ``ID = "{text}…"`` / ``ID = "{hex}…"`` with ``_continue_ = "…"`` lines,
  ``ID = Empty`` (property with no data), ``ID =`` (remove the property) — all [V] from the documented
  example. For property 9 (EKU) ``{text}`` holds comma-separated OIDs; an EKU with **no** OIDs (DER
  ``30 00``) as the meaning of "Disable all purposes" is [U] (W-EKU-EMPTY-DISABLES); whether the 2003
  certutil reads the INF argument at all is [U] (``host.extra["certutil_repairstore_inf"] = False``
  makes it refuse one). Without an INF on MY: relinks the private key (W-CERTUTIL-REPAIRSTORE-INF).
* ``certutil [-p Password] -exportPFX [StoreName] CertId PFXOutFile [Modifiers]`` — modifiers
  ``NoChain``, ``NoRoot`` [V]; the default includes the chain with the root [I]. A real PKCS#12 made
  with ``cryptography``, 3DES + SHA-1 MAC (readable by every Windows from 2003 to 2016). A key created
  non-exportable fails with NTE_BAD_KEY_STATE 0x8009000B "Key not valid for use in specified state."
  [U wording on 2003]. Presence of ``-exportPFX`` on 2003 is [U].
* ``certutil -decode|-encode|-hashfile`` — :mod:`.filecodec`.
* ``certutil VERB -?`` prints the verb's usage and exits 0; an unknown verb prints ``CertUtil: Unknown
  arg: -VERB`` and exits with E_INVALIDARG [I: behaviour of current builds; 2003 output U]. A scenario
  marks verbs absent with ``host.extra["certutil_missing_verbs"] = ["exportpfx", …]``.
* Probe injection (docs/windows-behaviour.md rows W-CERTUTIL-PROBE-*): the kit's capability probe reads
  the exit code of ``certutil -VERB -?``, a belief no Microsoft page states. Two host options make that
  probe lie, so tests can show what the kit does when the belief is wrong:
  ``host.extra["certutil_probe_lies"] = ["exportPFX", …]`` — ``-VERB -?`` prints the usage and exits 0,
  but every real use of the verb fails as an unknown verb (``CertUtil: Unknown arg: -VERB``, E_INVALIDARG
  0x80070057, the status certutil reports for a bad argument: ``CertUtil: -addstore command FAILED:
  0x80070057 (WIN32: 87 ERROR_INVALID_PARAMETER)`` is captured in
  https://github.com/ProxymanApp/proxyman-windows-linux/issues/144);
  ``host.extra["certutil_probe_denies"] = ["exportPFX", …]`` — ``-VERB -?`` fails as an unknown verb but
  the verb works. Named scenarios set them (``exportpfx-probe-lies`` …, :mod:`..scenarios`).

Exit codes: 0 on success, the HRESULT (as a signed 32-bit number) on failure — commonly observed,
[U] per W-CERTUTIL-EXITCODE. English messages follow captured output where we have it; every
Japanese message except ``… コマンドは正常に完了しました。`` and the -addstore lines (captured, §0)
is [U]. Dates are printed in UTC in a fixed format [U: Windows prints local time, locale-formatted].
Non-administrators may read LocalMachine stores but every write fails with E_ACCESSDENIED [I].
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from cryptography.x509.oid import NameOID

from ..host import Host, Invocation, KeyPair
from . import filecodec, stores

# --- HRESULTs (signed, as a process exit code) ------------------------------------------------------
CRYPT_E_NOT_FOUND = -2146885628  # 0x80092004
CRYPT_E_NO_MATCH = -2146885623  # 0x80092009
E_ACCESSDENIED = -2147024891  # 0x80070005
E_INVALIDARG = -2147024809  # 0x80070057
NTE_BAD_KEY_STATE = -2146893813  # 0x8009000B
NTE_BAD_KEYSET = -2146893802  # 0x80090016
ERROR_FILE_EXISTS = -2147024816  # 0x80070050
ERROR_FILE_NOT_FOUND = -2147024894  # 0x80070002
ERROR_PATH_NOT_FOUND = -2147024893  # 0x80070003
ERROR_CANCELLED = -2147023673  # 0x800704C7

MESSAGES: dict[int, tuple[str, str, str]] = {
    CRYPT_E_NOT_FOUND: (
        "0x80092004 (-2146885628 CRYPT_E_NOT_FOUND)",
        "Cannot find object or property.",
        "オブジェクトまたはプロパティが見つかりません。",
    ),
    CRYPT_E_NO_MATCH: (
        "0x80092009 (-2146885623 CRYPT_E_NO_MATCH)",
        "Cannot find the requested object.",
        "要求されたオブジェクトが見つかりません。",
    ),
    E_ACCESSDENIED: (
        "0x80070005 (WIN32: 5 ERROR_ACCESS_DENIED)",
        "Access is denied.",
        "アクセスが拒否されました。",
    ),
    E_INVALIDARG: (
        "0x80070057 (WIN32: 87 ERROR_INVALID_PARAMETER)",
        "The parameter is incorrect.",
        "パラメーターが間違っています。",
    ),
    NTE_BAD_KEY_STATE: (
        "0x8009000b (-2146893813 NTE_BAD_KEY_STATE)",
        "Key not valid for use in specified state.",
        "キーは指定された状態で使用するのに有効ではありません。",
    ),
    NTE_BAD_KEYSET: (
        "0x80090016 (-2146893802 NTE_BAD_KEYSET)",
        "Keyset does not exist",
        "キーセットがありません",
    ),
    ERROR_FILE_EXISTS: (
        "0x80070050 (WIN32: 80 ERROR_FILE_EXISTS)",
        "The file exists.",
        "ファイルが存在します。",
    ),
    ERROR_FILE_NOT_FOUND: (
        "0x80070002 (WIN32: 2 ERROR_FILE_NOT_FOUND)",
        "The system cannot find the file specified.",
        "指定されたファイルが見つかりません。",
    ),
    ERROR_PATH_NOT_FOUND: (
        "0x80070003 (WIN32: 3 ERROR_PATH_NOT_FOUND)",
        "The system cannot find the path specified.",
        "指定されたパスが見つかりません。",
    ),
    ERROR_CANCELLED: (
        "0x800704c7 (WIN32: 1223 ERROR_CANCELLED)",
        "The operation was canceled by the user.",
        "この操作はユーザーによって取り消されました。",
    ),
}

# Display names certutil prints after the store name (English: Windows UI strings; Japanese: [U]
# except "信頼されたルート証明機関", captured output, W-CODEPAGE-JA-TEXT).
STORE_DISPLAY = {
    "MY": ("Personal", "個人"),
    "CA": ("Intermediate Certification Authorities", "中間証明機関"),
    "ROOT": ("Trusted Root Certification Authorities", "信頼されたルート証明機関"),
    "REQUEST": ("Certificate Enrollment Requests", "証明書の登録要求"),
    "DISALLOWED": ("Untrusted Certificates", "信頼されていない証明書"),
    "AUTHROOT": ("Third-Party Root Certification Authorities", "サードパーティのルート証明機関"),
}

USAGE = {
    "store": "CertUtil [Options] -store [CertificateStoreName [CertId [OutputFile]]]",
    "addstore": "CertUtil [Options] -addstore CertificateStoreName InFile",
    "delstore": "CertUtil [Options] -delstore CertificateStoreName CertId",
    "repairstore": "CertUtil [Options] -repairstore CertificateStoreName CertIdList [PropertyInfFile | SDDLSecurityDescriptor]",
    "exportpfx": "CertUtil [Options] -exportPFX [CertificateStoreName] CertId PFXOutFile [Modifiers]",
    "decode": "CertUtil [Options] -decode InFile OutFile",
    "encode": "CertUtil [Options] -encode InFile OutFile",
    "hashfile": "CertUtil [Options] -hashfile InFile [HashAlgorithm]",
}
VERB_NAMES = {v: USAGE[v].split(" -", 1)[1].split(" ")[0] for v in USAGE}  # "exportpfx" -> "exportPFX"
_VALUE_OPTIONS = {"p", "csp", "config", "pin", "t", "restrict", "out"}
_FLAG_OPTIONS = {
    "f",
    "enterprise",
    "ent",
    "grouppolicy",
    "gp",
    "user",
    "v",
    "silent",
    "q",
    "split",
    "unicode",
    "gmt",
}


# --- output helpers ---------------------------------------------------------------------------------


def fail(inv: Invocation, verb: str, hresult: int, *, tool: str = "CertUtil") -> int:
    return filecodec.fail(inv, verb, hresult, tool=tool, messages=MESSAGES)


done = filecodec.done
resolve = filecodec.resolve


def simple_name(cert: x509.Certificate) -> str:
    """What certutil shows in quotes: the subject CN, else the whole subject [I]."""
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else cert.subject.rfc4514_string()


def _verifies(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """The issuer's key verifies ``cert``'s signature (RSA PKCS#1 v1.5/PSS, ECDSA — SHA-1 included,
    which cryptography's ``verify_directly_issued_by`` refuses but Windows 2003 roots use)."""
    key = issuer.public_key()
    algorithm = cert.signature_hash_algorithm
    try:
        if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
            pad = cert.signature_algorithm_parameters
            if not isinstance(pad, (padding.PKCS1v15, padding.PSS)):
                return False
            key.verify(cert.signature, cert.tbs_certificate_bytes, pad, algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
            key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(algorithm))
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False
    return True


def is_self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject and _verifies(cert, cert)


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    return cert.issuer == issuer.subject and _verifies(cert, issuer)


def load_certificates(data: bytes) -> tuple[list[x509.Certificate], bool]:
    """The certificates of a file as CryptQueryObject would find them: DER/PEM/base64 certificate or
    PKCS#7 (DER, PEM or bare base64). Returns (certificates, was_pkcs7); raises ValueError."""
    attempts: list[bytes] = [data]
    text = data.decode("latin-1")
    if "-----BEGIN" not in text:
        compact = re.sub(r"\s+", "", text)
        try:
            attempts.append(base64.b64decode(compact, validate=True))
        except (binascii.Error, ValueError):
            pass
    for blob in attempts:
        try:
            return [x509.load_der_x509_certificate(blob)], False
        except ValueError:
            pass
        try:
            return list(pkcs7.load_der_pkcs7_certificates(blob)), True
        except ValueError:
            pass
    if "-----BEGIN PKCS7-----" in text or ("-----BEGIN CERTIFICATE-----" in text and _looks_pkcs7(text)):
        try:
            return list(
                pkcs7.load_pem_pkcs7_certificates(data.replace(b"CERTIFICATE-----", b"PKCS7-----"))
            ), True
        except ValueError:
            pass
    try:
        return list(x509.load_pem_x509_certificates(data)), False
    except ValueError:
        pass
    raise ValueError("no certificate in file")


def _looks_pkcs7(text: str) -> bool:
    m = re.search(r"-----BEGIN CERTIFICATE-----(.*?)-----END", text, re.S)
    if not m:
        return False
    try:
        raw = base64.b64decode(re.sub(r"\s+", "", m.group(1)))
    except (binascii.Error, ValueError):
        return False
    try:
        x509.load_der_x509_certificate(raw)
        return False
    except ValueError:
        return True


# --- store selection --------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreRef:
    """The physical stores a certutil store name (plus -enterprise/-grouppolicy) opens."""

    shown: str  # the name as certutil prints it
    read: tuple[str, ...]  # physical stores enumerated
    write: str | None  # physical store that receives additions (None: cannot write)


def store_ref(name: str, switches: set[str]) -> StoreRef | None:
    upper = name.upper()
    if switches & {"enterprise", "ent"}:
        return StoreRef(name, ("Enterprise",), "Enterprise") if upper == "ROOT" else None
    if switches & {"grouppolicy", "gp"}:
        return StoreRef(name, ("GroupPolicy",), "GroupPolicy") if upper == "ROOT" else None
    if upper == "ROOT":  # the logical LocalMachine Root store: every physical Root store [I]
        return StoreRef(name, stores.ROOT_PHYSICAL, "ROOT")
    for known in ("MY", "CA", "REQUEST", "Disallowed", "AuthRoot"):
        if upper == known.upper():
            return StoreRef(name, (known,), known)
    return None


def store_entries(host: Host, ref: StoreRef) -> list[stores.StoredCert]:
    return [c for phys in ref.read for c in stores.certificates(host, phys)]


def match_entries(entries: list[stores.StoredCert], cert_id: str) -> list[stores.StoredCert]:
    """certutil's CertId matching: index, SHA-1 hash, serial number, subject CN, key container name."""
    token = cert_id.strip()
    if re.fullmatch(r"\d{1,4}", token):
        index = int(token)
        return [entries[index]] if index < len(entries) else []
    compact = token.replace(" ", "").upper()
    out = []
    for e in entries:
        serial = format(e.cert.serial_number, "x").upper()
        if compact in (e.thumbprint, serial, serial.rjust(len(serial) + len(serial) % 2, "0")):
            out.append(e)
        elif token.lower() == simple_name(e.cert).lower():
            out.append(e)
        elif e.key_container and token.lower() == e.key_container.lower():
            out.append(e)
    return out


def header(inv: Invocation, ref: StoreRef) -> None:
    en, ja = STORE_DISPLAY.get(ref.shown.upper(), (ref.shown, ref.shown))
    inv.say(f'{ref.shown} "{en}"', f'{ref.shown} "{ja}"')


def _date(value: x509.Certificate, attr: str) -> str:
    return getattr(value, attr).strftime("%Y/%m/%d %H:%M")  # [U] Windows prints local, locale-formatted time


def describe(inv: Invocation, entry: stores.StoredCert, index: int) -> None:
    host = inv.host
    cert = entry.cert
    inv.write(f"================ Certificate {index} ================\r\n")
    inv.say(
        f"Serial Number: {format(cert.serial_number, 'x')}",
        f"シリアル番号: {format(cert.serial_number, 'x')}",
    )
    inv.say(f"Issuer: {cert.issuer.rfc4514_string()}", f"発行者: {cert.issuer.rfc4514_string()}")
    inv.write(f" NotBefore: {_date(cert, 'not_valid_before_utc')}\r\n")
    inv.write(f" NotAfter: {_date(cert, 'not_valid_after_utc')}\r\n")
    inv.say(f"Subject: {cert.subject.rfc4514_string()}", f"サブジェクト: {cert.subject.rfc4514_string()}")
    if is_self_signed(cert):
        inv.say("Signature matches Public Key", "署名は公開キーと一致します")
    spaced = " ".join(entry.thumbprint[i : i + 2] for i in range(0, 40, 2)).lower()
    inv.say(f"Cert Hash(sha1): {spaced}", f"証明書ハッシュ(sha1): {spaced}")
    raw = entry.properties.get(stores.KEY_PROV_INFO)
    if raw:
        info = stores.decode_key_prov_info(raw)
        inv.say(f"  Key Container = {info['container']}", f"  キー コンテナー = {info['container']}")
        inv.say(f"  Provider = {info['provider']}", f"  プロバイダー = {info['provider']}")
        if stores.key_for(host, entry) is not None:
            inv.say("Encryption test passed", "暗号化テストが成功しました")
        else:
            inv.say("Missing stored keyset", "保存されたキーセットがありません")
    elif entry.store == "MY":
        inv.say("No key provider information", "キー プロバイダー情報がありません")
    inv.write("\r\n")


def _missing(host: Host, verb: str) -> bool:
    return verb in {v.lower().lstrip("-") for v in host.extra.get("certutil_missing_verbs", [])}


def _denied(inv: Invocation, verb: str) -> int | None:
    if not inv.host.is_admin:
        return fail(inv, verb, E_ACCESSDENIED)
    return None


# --- verbs ------------------------------------------------------------------------------------------


def _store(inv: Invocation, switches: set[str], values: dict[str, str], ops: list[str]) -> int:
    host = inv.host
    name = ops[0] if ops else "CA"  # the documented default store ("My", "CA" (default), "Root")
    ref = store_ref(name, switches)
    if ref is None or len(ops) > 3:
        return fail(inv, "store", ERROR_FILE_NOT_FOUND if ref is None else E_INVALIDARG)
    entries = store_entries(host, ref)
    if len(ops) >= 2:
        entries = match_entries(entries, ops[1])
        if not entries:
            header(inv, ref)
            return fail(inv, "store", CRYPT_E_NOT_FOUND)
    header(inv, ref)
    for i, entry in enumerate(entries):
        describe(inv, entry, i)
    if len(ops) == 3:
        out = resolve(inv, ops[2])
        if host.exists(out) and "f" not in switches:
            return fail(inv, "store", ERROR_FILE_EXISTS)
        if not host.parent_exists(out):
            return fail(inv, "store", ERROR_PATH_NOT_FOUND)
        host.write_file(out, entries[0].cert.public_bytes(serialization.Encoding.DER))
    return done(inv, "store")


def _addstore(inv: Invocation, switches: set[str], values: dict[str, str], ops: list[str]) -> int:
    host = inv.host
    if len(ops) != 2:
        return fail(inv, "addstore", E_INVALIDARG)
    ref = store_ref(ops[0], switches)
    if ref is None or ref.write is None:
        return fail(inv, "addstore", ERROR_FILE_NOT_FOUND)
    data = host.read_file(resolve(inv, ops[1]))
    if data is None:
        return fail(inv, "addstore", ERROR_FILE_NOT_FOUND)
    try:
        certs, was_pkcs7 = load_certificates(data)
    except ValueError:
        return fail(inv, "addstore", CRYPT_E_NO_MATCH)
    if was_pkcs7 and not host.extra.get("certutil_addstore_p7b", True):
        return fail(inv, "addstore", CRYPT_E_NO_MATCH)  # [U] what the 2003 certutil does with a .p7b
    if (rc := _denied(inv, "addstore")) is not None:
        return rc
    header(inv, ref)
    for cert in certs:
        thumb = stores.thumbprint_of(cert)
        present = any(e.thumbprint == thumb for e in store_entries(host, ref))
        if is_self_signed(cert):
            inv.say("Signature matches Public Key", "署名は公開キーと一致します")
        if present and "f" not in switches:
            inv.say(
                f'Certificate "{simple_name(cert)}" already in store.',
                f'証明書 "{simple_name(cert)}" は既にストアにあります。',
            )
            continue
        stores.add_certificate(host, ref.write, cert)
        inv.say(
            f'Certificate "{simple_name(cert)}" added to store.',
            f'証明書 "{simple_name(cert)}" がストアに追加されました。',
        )
    return done(inv, "addstore")


def _delstore(inv: Invocation, switches: set[str], values: dict[str, str], ops: list[str]) -> int:
    host = inv.host
    if len(ops) != 2:
        return fail(inv, "delstore", E_INVALIDARG)
    ref = store_ref(ops[0], switches)
    if ref is None:
        return fail(inv, "delstore", ERROR_FILE_NOT_FOUND)
    matches = match_entries(store_entries(host, ref), ops[1])
    header(inv, ref)
    if not matches:
        return fail(inv, "delstore", CRYPT_E_NOT_FOUND)
    if (rc := _denied(inv, "delstore")) is not None:
        return rc
    for i, entry in enumerate(matches):
        inv.say(f"Deleting Certificate {i}", f"証明書 {i} を削除しています")
        host.reg_delete_key(entry.key)
    return done(inv, "delstore")


def parse_inf_properties(text: str) -> dict[int, bytes | None]:
    """The ``[Properties]`` section of a certutil INF → {property ID: value or None (= remove)}."""
    props: dict[int, bytes | None] = {}
    section = ""
    current: int | None = None
    pending: dict[int, str] = {}
    for raw_line in text.splitlines():
        line = re.sub(r"\s;.*$|^;.*$", "", raw_line).strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip().lower()
            current = None
            continue
        if section != "properties":
            continue
        key, eq, value = line.partition("=")
        if not eq:
            raise ValueError(f"bad INF line {line!r}")
        key = key.strip()
        value = value.strip()
        if key.lower() == "_continue_":
            if current is None:
                raise ValueError("_continue_ without a property")
            pending[current] += value.strip('"')
            continue
        if not key.isdigit():
            raise ValueError(f"bad property id {key!r}")
        current = int(key)
        if value == "":
            props[current] = None
        elif value.lower() == "empty":
            props[current] = b""
        else:
            pending[current] = value.strip('"')
    for pid, value in pending.items():
        if value.lower().startswith("{hex}"):
            digits = re.sub(r"\s+", "", value[5:])
            props[pid] = bytes.fromhex(digits)
        elif value.lower().startswith("{text}"):
            body = value[6:]
            if pid == stores.ENHKEY_USAGE:
                oids = [o.strip() for o in body.split(",") if o.strip()]
                props[pid] = stores.encode_eku(oids)
            elif pid == stores.KEY_PROV_INFO:
                fields = dict(part.split("=", 1) for part in body.split("&") if "=" in part)
                props[pid] = stores.encode_key_prov_info(
                    fields.get("Container", ""),
                    fields.get("Provider", ""),
                    provider_type=int(fields.get("ProviderType", "1")),
                    flags=int(fields.get("Flags", "0")),
                    key_spec=int(fields.get("KeySpec", "1")),
                )
            else:
                props[pid] = body.encode("utf-16-le") + b"\x00\x00"
        else:
            raise ValueError(f"property {pid}: value must start with {{text}} or {{hex}}")
    return props


def _repairstore(inv: Invocation, switches: set[str], values: dict[str, str], ops: list[str]) -> int:
    host = inv.host
    if len(ops) not in (2, 3):
        return fail(inv, "repairstore", E_INVALIDARG)
    if len(ops) == 3 and not host.extra.get("certutil_repairstore_inf", True):
        return fail(inv, "repairstore", E_INVALIDARG)  # [U] a certutil without the INF argument
    ref = store_ref(ops[0], switches)
    if ref is None:
        return fail(inv, "repairstore", ERROR_FILE_NOT_FOUND)
    matches = [m for token in ops[1].split(",") for m in match_entries(store_entries(host, ref), token)]
    header(inv, ref)
    if not matches:
        return fail(inv, "repairstore", CRYPT_E_NOT_FOUND)
    new_props: dict[int, bytes | None] = {}
    if len(ops) == 3:
        data = host.read_file(resolve(inv, ops[2]))
        if data is None:
            return fail(inv, "repairstore", ERROR_FILE_NOT_FOUND)
        text = data[2:].decode("utf-16-le") if data.startswith(b"\xff\xfe") else data.decode("latin-1")
        try:
            new_props = parse_inf_properties(text)
        except ValueError:
            return fail(inv, "repairstore", E_INVALIDARG)
    if (rc := _denied(inv, "repairstore")) is not None:
        return rc
    for i, entry in enumerate(matches):
        props = dict(entry.properties)
        if len(ops) == 3:
            for pid, value in new_props.items():
                if value is None:
                    props.pop(pid, None)
                else:
                    props[pid] = value
        else:  # relink the private key: find the container whose key matches the certificate
            container = _matching_container(host, entry.cert)
            if container is None:
                describe(inv, entry, i)
                return fail(inv, "repairstore", NTE_BAD_KEYSET)  # [U] the HRESULT when no key matches
            props[stores.KEY_PROV_INFO] = stores.encode_key_prov_info(
                container, host.keys[container].provider
            )
        stores.write_properties(host, entry.store, entry.thumbprint, props)
        describe(inv, stores.find_certificate(host, entry.store, entry.thumbprint) or entry, i)
    return done(inv, "repairstore")


def _matching_container(host: Host, cert: x509.Certificate) -> str | None:
    want = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for name, pair in host.keys.items():
        key = serialization.load_pem_private_key(pair.pkcs8_pem.encode("ascii"), password=None)
        have = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if have == want:
            return name
    return None


def build_chain(host: Host, leaf: x509.Certificate) -> list[x509.Certificate]:
    """The chain CertGetCertificateChain would build from this host's stores (leaf first).

    Preference [I]: an enabled self-signed root in a Root store ends the chain (this is why an enabled
    G5 root hides the cross certificate — W-SCHANNEL-CHAIN); otherwise an issuing CA from MY/CA
    (e.g. the cross certificate); a root disabled for all purposes is used only as a last resort.
    """
    roots = [e for phys in stores.ROOT_PHYSICAL for e in stores.certificates(host, phys)]
    cas = [e for store in ("CA", "MY") for e in stores.certificates(host, store)]
    chain = [leaf]
    current = leaf
    for _ in range(8):
        if is_self_signed(current):
            break
        enabled_roots = [e.cert for e in roots if not e.disabled and issued_by(current, e.cert)]
        intermediates = [e.cert for e in cas if issued_by(current, e.cert) and e.cert != current]
        disabled_roots = [e.cert for e in roots if e.disabled and issued_by(current, e.cert)]
        candidates = [c for c in enabled_roots if is_self_signed(c)] + intermediates + disabled_roots
        candidates = [c for c in candidates if c not in chain]
        if not candidates:
            break
        current = candidates[0]
        chain.append(current)
    return chain


def _exportpfx(inv: Invocation, switches: set[str], values: dict[str, str], ops: list[str]) -> int:
    host = inv.host
    modifiers: set[str] = set()
    if len(ops) == 4 or (
        len(ops) == 3 and ops[2].lower().replace(",", "") in ("nochain", "noroot", "nochainnoroot")
    ):
        *ops, mods = ops
        modifiers = {m.strip().lower() for m in mods.split(",") if m.strip()}
    if len(ops) == 2:
        ops = ["MY", *ops]  # [I] StoreName is optional and defaults to MY for -exportPFX
    if len(ops) != 3 or modifiers - {"nochain", "noroot", "extendedproperties"}:
        return fail(inv, "exportPFX", E_INVALIDARG)
    ref = store_ref(ops[0], switches)
    if ref is None:
        return fail(inv, "exportPFX", ERROR_FILE_NOT_FOUND)
    matches = match_entries(store_entries(host, ref), ops[1])
    header(inv, ref)
    if not matches:
        return fail(inv, "exportPFX", CRYPT_E_NOT_FOUND)
    entry = matches[0]
    describe(inv, entry, 0)
    if not host.is_admin:
        return fail(inv, "exportPFX", E_ACCESSDENIED)  # machine keys are readable by administrators only [I]
    pair = stores.key_for(host, entry)
    if pair is None:
        return fail(inv, "exportPFX", NTE_BAD_KEYSET)
    if not pair.exportable:
        return fail(inv, "exportPFX", NTE_BAD_KEY_STATE)
    out = resolve(inv, ops[2])
    if host.exists(out) and "f" not in switches:
        return fail(inv, "exportPFX", ERROR_FILE_EXISTS)
    if not host.parent_exists(out):
        return fail(inv, "exportPFX", ERROR_PATH_NOT_FOUND)
    chain = build_chain(host, entry.cert)[1:]
    if "nochain" in modifiers:
        chain = []
    elif "noroot" in modifiers:
        chain = [c for c in chain if not is_self_signed(c)]
    host.write_file(out, build_pfx(entry, pair, values.get("p", ""), chain=chain))
    return done(inv, "exportPFX")


def build_pfx(
    entry: stores.StoredCert, pair: KeyPair, password: str, *, chain: Sequence[x509.Certificate]
) -> bytes:
    """The PKCS#12 Windows writes for ``entry`` with its key and ``chain`` (leaf excluded).

    3DES (pbeWithSHAAnd3-KeyTripleDES-CBC) for key and certificates, SHA-1 MAC, 2000 rounds: what
    PFXExportCertStoreEx writes by default up to Windows Server 2016 [I]; the friendly name
    (property 11) goes along. Used by ``certutil -exportPFX`` and by the IIS.CertObj export of the
    cscript emulation (``IIS.CertObj`` calls the same CryptoAPI export [U]).
    """
    key = serialization.load_pem_private_key(pair.pkcs8_pem.encode("ascii"), password=None)
    friendly = entry.properties.get(stores.FRIENDLY_NAME)
    name = friendly.decode("utf-16-le").rstrip("\0").encode("utf-8") if friendly else None
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(2000)
        .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
        .hmac_hash(hashes.SHA1())
        .build(password.encode("utf-8"))
    )
    return pkcs12.serialize_key_and_certificates(name, key, entry.cert, list(chain) or None, encryption)  # type: ignore[arg-type]


_HANDLERS = {
    "store": _store,
    "addstore": _addstore,
    "delstore": _delstore,
    "repairstore": _repairstore,
    "exportpfx": _exportpfx,
}


def parse_args(argv: list[str]) -> tuple[str | None, set[str], dict[str, str], list[str], bool, list[str]]:
    """(verb, flag switches, valued options, operands, help requested, unknown switches)."""
    verb: str | None = None
    switches: set[str] = set()
    values: dict[str, str] = {}
    ops: list[str] = []
    unknown: list[str] = []
    want_help = False
    i = 1
    while i < len(argv):
        arg = argv[i]
        if len(arg) > 1 and arg[0] in "-/" and not re.match(r"^[A-Za-z]:", arg):
            name = arg[1:].lower()
            if name == "?":
                want_help = True
            elif name in _VALUE_OPTIONS and i + 1 < len(argv):
                values[name] = argv[i + 1]
                i += 1
            elif name in _FLAG_OPTIONS:
                switches.add(name)
            elif verb is None:
                verb = name
            else:
                unknown.append(arg)
        else:
            ops.append(arg)
        i += 1
    return verb, switches, values, ops, want_help, unknown


def _probe_switch(host: Host, key: str, verb: str) -> bool:
    return verb in {str(v).lower().lstrip("-") for v in host.extra.get(key, [])}


def _key(inv: Invocation, switches: set[str], values: dict[str, str], ops: list[str]) -> int:
    """``certutil [-csp Provider] -key [KeyContainerName]``: 0 when the machine's container exists,
    NTE_BAD_KEYSET when it does not (W-CERTUTIL-KEY: the exit code is [assumed])."""
    if len(ops) != 1 or "user" in switches:
        return fail(inv, "key", E_INVALIDARG)
    if ops[0] not in inv.host.keys:
        return fail(inv, "key", NTE_BAD_KEYSET)
    inv.write(f"  {ops[0]}\r\n")
    return done(inv, "key")


def _delkey(inv: Invocation, switches: set[str], values: dict[str, str], ops: list[str]) -> int:
    """``certutil [-csp Provider] -delkey KeyContainerName``: deletes the machine's key container
    (W-CERTUTIL-DELKEY)."""
    host = inv.host
    if len(ops) != 1 or "user" in switches:
        return fail(inv, "delkey", E_INVALIDARG)
    if ops[0] not in host.keys:
        return fail(inv, "delkey", NTE_BAD_KEYSET)
    if (rc := _denied(inv, "delkey")) is not None:
        return rc
    with host.lock:
        del host.keys[ops[0]]
    return done(inv, "delkey")


# Key-container verbs (the renewal never uses them; `opslib request` cleans up with them). Kept out of
# USAGE so that `certutil -?` answers as before.
_KEY_VERBS = {"key": _key, "delkey": _delkey}


def certutil(inv: Invocation) -> int:
    host = inv.host
    verb, switches, values, ops, want_help, unknown = parse_args(inv.argv)
    if verb in _KEY_VERBS and not want_help and not unknown:
        return _KEY_VERBS[verb](inv, switches, values, ops)
    if verb is not None and verb in USAGE and not _missing(host, verb):
        # Probe injection (module docstring): the help answer and the real use disagree.
        lying = _probe_switch(host, "certutil_probe_lies", verb) and not want_help
        denying = _probe_switch(host, "certutil_probe_denies", verb) and want_help
        if lying or denying:
            inv.write(f"CertUtil: Unknown arg: -{VERB_NAMES.get(verb, verb)}\r\n")
            return fail(inv, VERB_NAMES.get(verb, verb), E_INVALIDARG)
    if verb is not None and (_missing(host, verb) or verb not in USAGE):
        inv.write(
            f"CertUtil: Unknown arg: -{verb if not _missing(host, verb) else VERB_NAMES.get(verb, verb)}\r\n"
        )
        return fail(inv, verb, E_INVALIDARG)
    if unknown:
        inv.write(f"CertUtil: Unknown arg: {unknown[0]}\r\n")
        return fail(inv, verb or "?", E_INVALIDARG)
    if want_help or verb is None:
        inv.say("Usage:", "使用法:")
        for name, text in USAGE.items():
            if (verb is None or name == verb) and not _missing(host, name):
                inv.write(f"  {text}\r\n")
        return 0 if want_help else E_INVALIDARG  # [I] certutil with no verb dumps the CA config: absent here
    if verb in ("decode", "encode", "hashfile"):
        return int(getattr(filecodec, verb)(inv))
    return _HANDLERS[verb](inv, switches, values, ops)


def register(host: Host) -> None:
    """Install the full certutil (replacing filecodec's file-verb-only one) and the standard stores."""
    stores.init_stores(host)
    host.programs["certutil"] = certutil
