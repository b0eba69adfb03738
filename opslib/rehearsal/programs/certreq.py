"""``certreq.exe`` of the rehearsal host: ``certreq -accept`` and ``certreq [VERB] -?``.

What -accept does (docs/windows-behaviour.md W-CERTREQ-ACCEPT): the request generator left a dummy self-signed
certificate carrying the new key in the REQUEST store; accepting the CA's response finds it by public
key, puts the issued certificate into MY linked to that key (property 2, CRYPT_KEY_PROV_INFO), and
deletes the dummy [V] (xenroll ``DeleteRequestCert``:
https://learn.microsoft.com/en-us/windows/win32/api/xenroll/nf-xenroll-icenroll-put_deleterequestcert ;
``certreq -accept`` "links the previously generated private key with the issued certificate and removes
the pending certificate request", https://learn.microsoft.com/en-us/windows-server/administration/windows-commands/certreq_1).
Syntax: ``certreq -accept [-user|-machine] [-q] CertChainFileIn|FullResponseFileIn|CertFileIn`` [V].

Unverified on real Windows, and how this emulation decides:
* ``-machine`` on 2003 [U]: accepted only when ``host.extra["certreq_machine"]`` is true; otherwise
  ``CertReq: Unknown arg: -machine`` with E_INVALIDARG — the kit probes ``certreq -machine -?``.
* Whether the 2003 certreq finds the IIS wizard's request in the *machine* REQUEST store without
  ``-machine`` [U]: yes unless ``host.extra["certreq_accept_finds_machine_request"]`` is False.
* Root certificates inside a PKCS#7 go to the Root store, and "the user may be prompted" [V] (xenroll
  RootStoreName, https://learn.microsoft.com/en-us/windows/win32/api/xenroll/nf-xenroll-ienroll-get_rootstorenamewstr).
  Over WinRM a prompt would hang until the timeout; this emulation stands in for that by refusing with
  ERROR_CANCELLED and changing nothing when a root not yet trusted would be added — so a kit that sends
  a root fails visibly. The kit must never send one.
* No matching request: CRYPT_E_NOT_FOUND 0x80092004 [U exact text, W-CERTREQ-ACCEPT]; the
  Japanese wording of every certreq message is [U]. The "Installed Certificate:" block is [U — from memory].
* The chain is built on accept (:func:`opslib.rehearsal.chainbuild.build_path`: the CA and Root stores
  plus the accepted file's certificates) and an untrusted result refuses the whole accept, changing
  nothing: CertEnroll's ``InstallResponse`` with ``AllowNone`` "does not allow the installation of
  untrusted certificates"
  (https://learn.microsoft.com/en-us/windows/win32/api/certenroll/ne-certenroll-installresponserestrictionflags );
  Microsoft's description of its errors: CERT_E_CHAINING 0x800B010A "if the certificate chain response
  contains an end entity certificate but not the complete certificate chain to a root CA",
  CERT_E_UNTRUSTEDROOT 0x800B0109 when it chains "to an untrusted root CA" (KB article on
  InstallResponse errors, public copy: http://ossmall.ro/error-message-when-a-user-uses-internet-explorer-7-to-open-the-certificate-enrollment-web-page/ ).
  certreq itself printing ``Certificate Request Processor: A certificate chain processed but terminated
  in a root certificate which is not trusted by the trust provider. 0x800b0109 (-2146762487
  CERT_E_UNTRUSTEDROOT)`` on accept: public report https://github.com/dsccommunity/CertificateDsc/issues/224
  (a 2012+ certreq). Whether the 2003 certreq (xenroll ``acceptPKCS7``) checks the chain at all is [U]:
  ``host.extra["certreq_accept_checks_chain"] = False`` makes this host skip the check. Whether accept
  refuses an *expired* CA certificate in the chain (CERT_E_EXPIRED) is [assumed: yes]; revocation is
  [assumed: not checked]. The CERT_E_CHAINING and CERT_E_EXPIRED lines follow the same format [I].
Exit codes as certutil: 0 / the HRESULT.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ..chainbuild import CERT_E_CHAINING, CERT_E_EXPIRED, CERT_E_UNTRUSTEDROOT, build_path
from ..host import Host, Invocation
from . import certreq_new, stores
from .certutil import (
    CRYPT_E_NOT_FOUND,
    E_ACCESSDENIED,
    E_INVALIDARG,
    ERROR_CANCELLED,
    ERROR_FILE_NOT_FOUND,
    MESSAGES,
    is_self_signed,
    load_certificates,
    resolve,
)

CRYPT_E_ASN1_BADTAG = -2146881269  # 0x8009310B
_ASN1 = (
    "0x8009310b (ASN: 267 CRYPT_E_ASN1_BADTAG)",
    "ASN1 bad tag value met.",
    "ASN1 不正なタグの値を検出しました。",
)

# Texts: https://learn.microsoft.com/en-us/windows/win32/seccrypto/certificate-and-trust-return-values
# (English); the Japanese texts are [U].
_CHAIN_MESSAGES: dict[int, tuple[str, str, str]] = {
    CERT_E_UNTRUSTEDROOT: (
        "0x800b0109 (-2146762487 CERT_E_UNTRUSTEDROOT)",
        "A certificate chain processed, but terminated in a root certificate which is not trusted by the "
        "trust provider.",
        "証明書チェーンは処理されましたが、信頼プロバイダーが信頼していないルート証明書で終了しました。",
    ),
    CERT_E_CHAINING: (
        "0x800b010a (-2146762486 CERT_E_CHAINING)",
        "A certificate chain could not be built to a trusted root authority.",
        "信頼されたルート機関への証明書チェーンを作成できませんでした。",
    ),
    CERT_E_EXPIRED: (
        "0x800b0101 (-2146762495 CERT_E_EXPIRED)",
        "A required certificate is not within its validity period when verifying against the current "
        "system clock or the timestamp in the signed file.",
        "必要な証明書は、現在のシステムの時計または署名されたファイルのタイムスタンプに対して検証したときに、"
        "有効期間内ではありません。",
    ),
}

USAGE = {
    "accept": "CertReq -Accept [Options] [CertChainFileIn | FullResponseFileIn | CertFileIn]",
    "submit": "CertReq [-Submit] [Options] [RequestFileIn [CertFileOut [CertChainFileOut [FullResponseFileOut]]]]",
    "retrieve": "CertReq -Retrieve [Options] RequestId [CertFileOut [CertChainFileOut [FullResponseFileOut]]]",
    "new": "CertReq -New [Options] [PolicyFileIn [RequestFileOut]]",
}
_FLAGS = {"user", "machine", "q", "f", "v", "binary"}


def _fail(inv: Invocation, hresult: int) -> int:
    code, en, ja = _ASN1 if hresult == CRYPT_E_ASN1_BADTAG else {**MESSAGES, **_CHAIN_MESSAGES}[hresult]
    inv.say(f"Certificate Request Processor: {en} {code}", f"証明書要求プロセッサ: {ja} {code}", err=True)
    return hresult


def _spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return is_self_signed(cert)


def _accept(inv: Invocation, switches: set[str], ops: list[str]) -> int:
    host = inv.host
    if len(ops) != 1:
        return _fail(inv, E_INVALIDARG)
    data = host.read_file(resolve(inv, ops[0]))
    if data is None:
        return _fail(inv, ERROR_FILE_NOT_FOUND)
    try:
        certs, _was_pkcs7 = load_certificates(data)
    except ValueError:
        return _fail(inv, CRYPT_E_ASN1_BADTAG)
    finds_machine = "machine" in switches or host.extra.get("certreq_accept_finds_machine_request", True)
    requests = stores.certificates(host, "REQUEST") if finds_machine else []
    by_key = {_spki(r.cert): r for r in requests}
    leaf = next((c for c in certs if not _is_ca(c) and _spki(c) in by_key), None)
    if leaf is None:
        return _fail(inv, CRYPT_E_NOT_FOUND)
    if not host.is_admin:
        return _fail(inv, E_ACCESSDENIED)
    trusted = {e.thumbprint for phys in stores.ROOT_PHYSICAL for e in stores.certificates(host, phys)}
    new_roots = [c for c in certs if is_self_signed(c) and stores.thumbprint_of(c) not in trusted]
    if new_roots:
        # Real Windows may raise a confirmation dialog here (see the module docstring): never answered
        # over WinRM. Stand-in: refuse, change nothing.
        return _fail(inv, ERROR_CANCELLED)
    if host.extra.get("certreq_accept_checks_chain", True):
        path = build_path(host, leaf, extra=[c for c in certs if c is not leaf])
        if not path.ok:
            return _fail(inv, path.error)  # nothing installed (module docstring)
    placeholder = by_key[_spki(leaf)]
    props: dict[int, bytes] = {stores.SHA1_HASH: bytes.fromhex(stores.thumbprint_of(leaf))}
    for pid in (stores.KEY_PROV_INFO, stores.FRIENDLY_NAME):
        if pid in placeholder.properties:
            props[pid] = placeholder.properties[pid]
    with host.lock:
        thumb = stores.add_certificate(host, "MY", leaf)
        stores.write_properties(host, "MY", thumb, props)
        host.reg_delete_key(placeholder.key)
        held = {e.thumbprint for e in stores.certificates(host, "CA")}
        for cert in certs:
            if cert is leaf or not _is_ca(cert) or is_self_signed(cert):
                continue
            if stores.thumbprint_of(cert) not in held:
                stores.add_certificate(host, "CA", cert)
    serial = format(leaf.serial_number, "x")
    inv.say("Installed Certificate:", "インストールされた証明書:")
    inv.say(f"  Serial Number: {serial}", f"  シリアル番号: {serial}")
    inv.say(f"  Subject: {leaf.subject.rfc4514_string()}", f"  サブジェクト: {leaf.subject.rfc4514_string()}")
    inv.write(f"  NotBefore: {leaf.not_valid_before_utc:%Y/%m/%d %H:%M}\r\n")
    inv.write(f"  NotAfter: {leaf.not_valid_after_utc:%Y/%m/%d %H:%M}\r\n")
    inv.say(f"  Thumbprint: {thumb.lower()}", f"  拇印: {thumb.lower()}")
    return 0


def certreq(inv: Invocation) -> int:
    host = inv.host
    verb: str | None = None
    switches: set[str] = set()
    ops: list[str] = []
    want_help = False
    missing = {v.lower().lstrip("-") for v in host.extra.get("certreq_missing_verbs", [])}
    for arg in inv.argv[1:]:
        if len(arg) > 1 and arg[0] in "-/" and not (len(arg) > 2 and arg[1] == ":"):
            name = arg[1:].lower()
            if name == "?":
                want_help = True
            elif name in _FLAGS and not (name == "machine" and not host.extra.get("certreq_machine", False)):
                switches.add(name)
            elif name in USAGE and name not in missing and verb is None:
                verb = name
            else:
                inv.write(f"CertReq: Unknown arg: {arg}\r\n")
                return _fail(inv, E_INVALIDARG)
        else:
            ops.append(arg)
    if want_help:
        inv.say("Usage:", "使用法:")
        for name, text in USAGE.items():
            if (verb is None or name == verb) and name not in missing:
                inv.write(f"  {text}\r\n")
        inv.say("Options:", "オプション:")
        inv.write(
            "  -user\r\n"
            + ("  -machine\r\n" if host.extra.get("certreq_machine", False) else "")
            + "  -q\r\n"
        )
        return 0
    if verb == "accept":
        return _accept(inv, switches, ops)
    if verb == "new":
        return certreq_new.new(inv, ops)  # W-CERTREQ-NEW
    # -submit/-retrieve need a CA: not emulated.
    return _fail(inv, E_INVALIDARG)


def register(host: Host) -> None:
    stores.init_stores(host)
    host.programs["certreq"] = certreq
