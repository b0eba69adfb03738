"""The report's words, in Japanese and English: labels of its own, the names of the facts and table
columns the steps record (:data:`FIELDS`), and the words for booleans and outcomes.

The step notebooks use the same glossary for their tables' headings (:func:`.tables.show`), so an
auditor reads one vocabulary in the notebook, its ``html/`` render and ``report.html``. A name without
an entry is shown as its words ("key_container" → "key container"), never dropped.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any

from ..errors import UsageError

LANGS = ("ja+en", "en+ja", "ja", "en")

# The report's own labels.
LABELS: dict[str, tuple[str, str]] = {
    "title": ("作業報告書", "Run report"),
    "summary": ("概要", "Summary"),
    "run": ("実行", "Run"),
    "host": ("ホスト", "Host"),
    "site": ("サイト", "Site"),
    "operator": ("作業者", "Operator"),
    "mode": ("種別", "Mode"),
    "started": ("開始", "Started"),
    "finished": ("終了", "Finished"),
    "result": ("結果", "Result"),
    "error": ("エラー", "Error"),
    "certificate": ("証明書", "Certificate"),
    "old": ("旧証明書", "Old certificate"),
    "new": ("新証明書", "New certificate"),
    "replaced": ("戻す前の証明書", "Certificate taken out"),
    "restored": ("戻した証明書", "Certificate put back"),
    "thumbprint": ("拇印", "Thumbprint"),
    "expires": ("有効期限", "Expires"),
    "changes": ("変更内容 (変更前 → 変更後)", "What changed (before → after)"),
    "planned": (
        "変更予定 (ドライラン: 何も変更していません)",
        "Planned changes (dry run: nothing was changed)",
    ),
    "no_change": ("変更はありません", "Nothing was changed"),
    "target": ("対象", "Target"),
    "field": ("項目", "Field"),
    "before": ("変更前", "Before"),
    "after": ("変更後", "After"),
    "change": ("変更", "Change"),
    "step": ("手順", "Step"),
    "checks": ("確認内容と結果", "What was checked"),
    "check": ("確認", "Check"),
    "outcome": ("結果", "Outcome"),
    "detail": ("詳細", "Detail"),
    "backup": ("バックアップ", "Backup"),
    "location": ("保存先", "Location"),
    "sha256": ("SHA-256", "SHA-256"),
    "no_backup": ("この実行ではバックアップを取得していません", "This run made no backup"),
    "integrity": ("証跡の完全性", "Evidence integrity"),
    "size_only": ("転送の検証", "File transfers"),
    "steps": ("手順ごとの記録", "The steps"),
    "facts": ("記録された事実", "Recorded facts"),
    "cut": (
        "この表は古い形式の notebook で省略表示されたため載せていません。全値は「記録された事実」を参照してください。",
        "This table was shortened by pandas in an older notebook and is left out; "
        "the full values are in the recorded facts.",
    ),
    "empty": ("(該当なし)", "(none)"),
    "failed_here": ("この手順はここで失敗しました", "This step failed here"),
    "rest_not_run": ("以降の処理は実行されていません。", "The rest of this step did not run."),
    "not_run_step": ("この手順は実行されていません。", "This step did not run."),
    "duration": ("所要時間", "Duration"),
    "generated": ("作成", "Generated"),
    "what_happened": ("何が起きたか", "What happened"),
}
WORDS: dict[str, tuple[str, str]] = {
    "succeeded": ("成功", "succeeded"),
    "failed": ("失敗", "failed"),
    "running": ("実行中", "running"),
    "not run": ("未実行", "not run"),
    "passed": ("合格", "passed"),
    "not passed": ("不合格", "failed"),
    "yes": ("はい", "yes"),
    "no": ("いいえ", "no"),
    "changed": ("変更あり", "changed"),
    "unchanged": ("変更なし", "unchanged"),
    "not recorded": ("記録なし", "not recorded"),
    "planned only": ("確認のみ", "checked only"),
    "renew": ("更新", "renewal"),
    "dry run": ("ドライラン", "dry run"),
    "rollback": ("ロールバック", "rollback"),
    "resume": ("再開", "resume"),
    "ok": ("問題なし", "intact"),
    "pending": ("確定前に作成", "written before finalizing"),
    "size only": ("サイズ", "by size"),
}
# Step 4's warning codes (``verify_warnings``: the stable codes of docs/inspect-json.md) and the one
# expected warning (``cross_not_sent_expected``: after ``rollback --roots``), in words.
WARNINGS: dict[str, tuple[str, str]] = {
    "expired": ("有効期限切れ", "expired"),
    "not_yet_valid": ("まだ有効期間前", "not yet valid"),
    "expires_soon": ("有効期限が近い", "expires soon"),
    "sha1_signature": ("SHA-1 署名", "SHA-1 signature"),
    "weak_key": ("弱い鍵", "weak key"),
    "no_san": ("SAN (サブジェクト代替名) なし", "no subject alternative name"),
    "hostname_mismatch": ("ホスト名が一致しない", "host name mismatch"),
    "hostname_cn_only": ("ホスト名は CN のみ", "host name in the CN only"),
    "chain_incomplete": ("チェーンが不完全", "chain incomplete"),
    "forbidden_root_in_chain": ("チェーンに禁止ルート", "forbidden root in the chain"),
    "self_signed_leaf": ("自己署名のサーバ証明書", "self-signed server certificate"),
    "cross_not_sent_expected": (
        "想定どおり: rollback --roots でルート証明書を再び有効にしたため、IIS はクロスルート証明書を"
        "送らなくなりました。そのルートを信頼しない古いクライアント (古い Windows や Java) は接続できません",
        "expected: the roots were enabled again (rollback --roots), so IIS no longer sends the cross "
        "certificate; clients that do not trust that root (older Windows or Java) fail",
    ),
}


def warning_words(code: str) -> tuple[str, str]:
    """(Japanese, English) for a warning code; an unknown code as itself in both."""
    return WARNINGS.get(code, (code, code))


# What each step checks (its "Check:" cells); the outcome is the step's status plus its facts.
STEP_CHECKS: dict[str, tuple[str, str]] = {
    "00_precheck_root_store": ("有効な禁止ルートが残っていない", "No forbidden root is left enabled"),
    "01_install_certificate": (
        "新証明書が鍵・中間証明書と共に導入された",
        "The new certificate is installed with its key and chain",
    ),
    "02_swap_certificate": (
        "本番サイトが新証明書に切替わった (読み戻し)",
        "The production site uses it (read back)",
    ),
    "03_backup_keypair": (
        "PFX バックアップが開き、証明書と鍵を含む",
        "The PFX backup opens and holds the key pair",
    ),
    "04_verify_endpoint": (
        "期待した証明書と中間証明書を提供 (SNI あり/なし)",
        "The site serves the expected chain (SNI and no SNI)",
    ),
    "05_rollback_certificate": (
        "本番サイトが元の証明書に戻った (読み戻し)",
        "The previous certificate is back (read back)",
    ),
    "06_restore_roots": (
        "手順 0 で無効化したルート証明書を再び有効化した (読み戻し)",
        "The roots step 0 disabled are enabled again (read back)",
    ),
}

# The names of recorded facts and table columns.
FIELDS: dict[str, tuple[str, str]] = {
    "fact": ("項目", "Fact"),
    "value": ("値", "Value"),
    "host": ("ホスト", "Host"),
    "windows_version": ("Windows のバージョン", "Windows version"),
    "iis": ("IIS", "IIS"),
    "iis_backend": ("IIS の操作方法", "IIS backend"),
    "codepage": ("コードページ", "Code page"),
    "administrator": ("管理者権限", "Administrator"),
    "cscript": ("cscript", "cscript"),
    "powershell": ("PowerShell", "PowerShell"),
    "certutil_verbs": ("certutil の機能", "certutil verbs"),
    "certreq_accept": ("certreq -accept", "certreq -accept"),
    "certreq_machine": ("certreq -machine", "certreq -machine"),
    "store": ("ストア", "Store"),
    "thumbprint": ("拇印", "Thumbprint"),
    "common_name": ("コモンネーム", "Common name"),
    "issuer": ("発行者", "Issuer"),
    "subject": ("サブジェクト", "Subject"),
    "issued_by": ("発行者", "Issued by"),
    "not_before_utc": ("有効期間の開始 (UTC)", "Valid from (UTC)"),
    "not_after_utc": ("有効期限 (UTC)", "Expires (UTC)"),
    "expires_utc": ("有効期限 (UTC)", "Expires (UTC)"),
    "days_left": ("残り日数", "Days left"),
    "enabled": ("有効", "Enabled"),
    "purposes": ("用途", "Purposes"),
    "key_container": ("鍵コンテナ", "Key container"),
    "known_as": ("既知の名称", "Known as"),
    "registry_key": ("レジストリ キー", "Registry key"),
    "production_site": ("本番サイト", "Production site"),
    "work_site": ("作業用サイト", "Work site"),
    "pending_request": ("保留中の要求", "Pending request"),
    "predicted_chain": ("予測した証明書チェーン", "Predicted chain"),
    "predicted_needs_cross": ("クロスルート証明書が必要", "Needs the cross certificate"),
    "export_route": ("エクスポート方法", "Export route"),
    "export_route_reason": ("エクスポート方法の理由", "Why this export route"),
    "remote_left": ("サーバに残ったもの", "Left on the server"),
    "remote_left_advice": ("サーバに残ったものの削除方法", "How to delete what was left"),
    "remote_deleted": ("サーバ上の一時ファイルを削除", "Server copy deleted"),
    "target": ("対象", "Target"),
    "field": ("項目", "Field"),
    "before": ("変更前", "Before"),
    "after": ("変更後", "After"),
    "change": ("変更", "Change"),
    "check": ("確認", "Check"),
    "site": ("サイト", "Site"),
    "name": ("名前", "Name"),
    "state": ("状態", "State"),
    "bindings": ("バインド", "Bindings"),
    "secure_bindings": ("SSL バインド", "Secure bindings"),
    "certificate": ("証明書", "Certificate"),
    "role": ("役割", "Role"),
    "serial": ("シリアル番号", "Serial number"),
    "dns_names": ("DNS 名", "DNS names"),
    "key": ("鍵", "Key"),
    "signature": ("署名アルゴリズム", "Signature"),
    "ca": ("CA 証明書", "CA"),
    "self_signed": ("自己署名", "Self-signed"),
    "position": ("順番", "Position"),
    "found_in": ("見つかった場所", "Found in"),
    "sent": ("送信", "Sent"),
    "code": ("コード", "Code"),
    "message": ("内容", "Message"),
    "matches": ("一致", "Matches"),
    "request_thumbprint": ("要求の拇印", "Request thumbprint"),
    "ca_certificates": ("CA 証明書", "CA certificates"),
    "skipped_roots": ("送らないルート証明書", "Roots not sent"),
    "ignored": ("使わないもの", "Ignored"),
    "already_installed": ("導入済み", "Already installed"),
    "expected": ("期待値", "Expected"),
    "actual": ("実際の値", "Actual"),
    "ok": ("判定", "Verdict"),
    "old_thumbprint": ("旧証明書の拇印", "Old thumbprint"),
    "new_thumbprint": ("新証明書の拇印", "New thumbprint"),
    "stopped_sites": ("停止したサイト", "Stopped sites"),
    "already_done": ("実施済み", "Already done"),
    "backup_file": ("バックアップ ファイル", "Backup file"),
    "folder": ("フォルダ", "Folder"),
    "folder_exists": ("フォルダの有無", "Folder exists"),
    "source": ("取得元", "Source"),
    "opens": ("パスワードで開ける", "Opens"),
    "leaf": ("サーバ証明書", "Leaf certificate"),
    "key_matches": ("鍵の一致", "Key matches"),
    "certificates": ("証明書", "Certificates"),
    "intermediate": ("中間証明書", "Intermediate"),
    "cross": ("クロスルート証明書", "Cross certificate"),
    "encryption": ("暗号方式", "Encryption"),
    "problems": ("問題", "Problems"),
    "problem": ("問題", "Problem"),
    "sha256": ("SHA-256", "SHA-256"),
    "route": ("方法", "Route"),
    "route_reason": ("方法の理由", "Why this route"),
    "pfx_encryption": ("PFX の暗号方式", "PFX encryption"),
    "server_copy_deleted": ("サーバ上のコピーを削除", "Server copy deleted"),
    "bytes": ("バイト数", "Bytes"),
    "file_mode": ("ファイルの権限", "File mode"),
    "folder_mode": ("フォルダの権限", "Folder mode"),
    "endpoint": ("接続先", "Endpoint"),
    "servername": ("SNI 名", "SNI name"),
    "protocol": ("プロトコル", "Protocol"),
    "certificates_sent": ("送られた証明書の数", "Certificates sent"),
    "chain": ("証明書チェーン", "Chain"),
    "handshake": ("ハンドシェイク", "Handshake"),
    "expected_leaf": ("期待したサーバ証明書", "Expected leaf"),
    "leaf_ok": ("サーバ証明書の判定", "Leaf"),
    "intermediate_sent": ("中間証明書の送信", "Intermediate sent"),
    "cross_sent": ("クロスルート証明書の送信", "Cross certificate sent"),
    "predicted_sent": ("予測どおりのチェーン", "Predicted chain sent"),
    "chain_complete": ("チェーンの完全性", "Chain complete"),
    "forbidden_root_sent": ("禁止ルートの送信", "Forbidden root sent"),
    "hostnames_ok": ("ホスト名の判定", "Host names"),
    # facts
    "forbidden_roots_disabled": ("無効化した禁止ルート", "Forbidden roots disabled"),
    "forbidden_roots_found": ("見つかった禁止ルート", "Forbidden roots found"),
    "forbidden_roots_planned": ("無効化の予定", "Forbidden roots planned"),
    "production_not_after_utc_before": (
        "変更前の本番証明書の有効期限",
        "Production certificate's expiry before",
    ),
    "production_secure_bindings_before": ("変更前の本番 SSL バインド", "Production secure bindings before"),
    "production_site_path": ("本番サイトのパス", "Production site path"),
    "production_thumbprint_before": ("変更前の本番証明書の拇印", "Production thumbprint before"),
    "production_state": ("本番サイトの状態", "Production site state"),
    "root_backups": ("ルート証明書のバックアップ", "Root backups"),
    "server": ("サーバ", "Server"),
    "sites_before": ("変更前のサイト", "Sites before"),
    "work_site_path": ("作業用サイトのパス", "Work site path"),
    "ca_certificates_ignored": ("使わなかった CA 証明書", "CA certificates ignored"),
    "ca_certificates_installed": ("導入した CA 証明書", "CA certificates installed"),
    "certificate_formats": ("証明書ファイルの形式", "Certificate file formats"),
    "install_plan": ("導入の計画", "Install plan"),
    "new_dns_names": ("新証明書の DNS 名", "New certificate's DNS names"),
    "new_issuer": ("新証明書の発行者", "New certificate's issuer"),
    "new_not_after_utc": ("新証明書の有効期限", "New certificate's expiry"),
    "new_not_before_utc": ("新証明書の有効期間の開始", "New certificate valid from"),
    "new_subject": ("新証明書のサブジェクト", "New certificate's subject"),
    "warnings": ("警告", "Warnings"),
    "expected_thumbprint": ("提供されるべき証明書の拇印", "Expected thumbprint"),
    "old_not_after_utc": ("旧証明書の有効期限", "Old certificate's expiry"),
    "old_secure_bindings": ("旧 SSL バインド", "Old secure bindings"),
    "old_store_name": ("旧証明書のストア", "Old certificate's store"),
    "old_cert_source": ("旧証明書の設定元 (自サイト/継承)", "Old certificate: own or inherited"),
    "restored_cert_source": (
        "戻した証明書の設定元 (自サイト/継承)",
        "Restored certificate: own or inherited",
    ),
    "cert_source_after": ("入替え後の証明書の設定元", "Certificate after the swap: own or inherited"),
    "swap_journal": ("入替えのジャーナル", "Swap journal"),
    "swap_plan": ("入替えの計画", "Swap plan"),
    "path": ("パス", "Path"),
    "phase": ("段階", "Phase"),
    "state_after": ("入替え後の状態", "State after"),
    "thumbprint_after": ("入替え後の拇印", "Thumbprint after"),
    "thumbprint_before": ("入替え前の拇印", "Thumbprint before"),
    "backup_plan": ("バックアップの計画", "Backup plan"),
    "backup_sha256": ("バックアップの SHA-256", "Backup SHA-256"),
    "backup_thumbprint": ("バックアップした証明書の拇印", "Backed-up thumbprint"),
    "pfx_algorithms": ("PFX のアルゴリズム", "PFX algorithms"),
    "pfx_certificates": ("PFX 内の証明書", "Certificates in the PFX"),
    "pfx_export_route": ("PFX のエクスポート方法", "PFX export route"),
    "pfx_has_cross": ("PFX にクロスルート証明書", "PFX holds the cross certificate"),
    "pfx_has_intermediate": ("PFX に中間証明書", "PFX holds the intermediate"),
    "pfx_sha256": ("PFX の SHA-256", "PFX SHA-256"),
    "pfx_size": ("PFX のサイズ (バイト)", "PFX size (bytes)"),
    "pfx_thumbprint": ("PFX の証明書の拇印", "PFX thumbprint"),
    "chain_ok": ("チェーンの判定", "Chain"),
    "served": ("提供された証明書", "What was served"),
    "served_leaf_no_sni": ("提供された証明書 (SNI なし)", "Served leaf (no SNI)"),
    "served_leaf_sni": ("提供された証明書 (SNI あり)", "Served leaf (SNI)"),
    "served_protocol": ("TLS プロトコル", "TLS protocol"),
    "verify_endpoint": ("確認した接続先", "Endpoint checked"),
    "verify_problems": ("確認で見つかった問題", "Problems found"),
    "verify_warnings": ("確認での警告", "Warnings"),
    "restored_thumbprint": ("戻した証明書の拇印", "Restored thumbprint"),
    "verify_expected_warnings": ("想定どおりの警告", "Expected warnings"),
    "verify_expiring": ("有効期限が近い証明書", "Certificates expiring soon"),
    "restored_not_after_utc": ("戻した証明書の有効期限", "Restored certificate's expiry"),
    "replaced_thumbprint": ("戻す前の証明書の拇印", "Replaced thumbprint"),
    "rollback_plan": ("ロールバックの計画", "Rollback plan"),
    "roots_restored": ("再び有効化したルート証明書", "Roots enabled again"),
    "SNI": ("SNI あり", "SNI"),
    "no SNI": ("SNI なし", "no SNI"),
}
# Booleans that are a check's verdict (合格/不合格); every other boolean reads はい/いいえ.
VERDICT_FIELDS = frozenset(
    {
        "ok",
        "leaf_ok",
        "chain_ok",
        "chain_complete",
        "hostnames_ok",
        "predicted_sent",
        "opens",
        "key_matches",
        "matches",
    }
)


def label(name: str) -> tuple[str, str]:
    """(Japanese, English) for a fact or column name; an unknown name as its words in both."""
    if name in FIELDS:
        return FIELDS[name]
    if name.startswith("SNI "):  # a handshake's name: "SNI www1.example.jp"
        return (f"SNI あり ({name[4:]})", name)
    words = re.sub(r"_utc$", " (UTC)", name).replace("_", " ").strip()
    return words, words[:1].upper() + words[1:]


# Nested tables put these columns first, in this order (JSON facts come back with sorted keys).
COLUMN_ORDER = (
    "target",
    "field",
    "before",
    "after",
    "site",
    "name",
    "handshake",
    "position",
    "store",
    "thumbprint",
)


def ordered(columns: list[str]) -> list[str]:
    """``columns`` with :data:`COLUMN_ORDER`'s first, the rest as they came."""
    first = [c for c in COLUMN_ORDER if c in columns]
    return first + [c for c in columns if c not in first]


def heading(name: str) -> str:
    """A column heading as plain text, "日本語 / English" (the notebooks' tables)."""
    ja, en = label(name)
    return ja if ja == en else f"{ja} / {en}"


def bool_word(field: str | None, value: bool) -> str:
    """The :data:`WORDS` key for a boolean of ``field``."""
    if field in VERDICT_FIELDS:
        return "passed" if value else "not passed"
    return "yes" if value else "no"


def unchanged(before: Any, after: Any) -> bool:
    """True for a plan row that changes nothing: the same value, or the kit's own wording of a no-op
    ("present" → "present (already installed)", "disabled (…)" → "unchanged: already disabled")."""

    def norm(value: Any) -> str:
        text = re.sub(r"\s*\(.*\)$", "", str(value or "")).strip().lower()
        return text.removeprefix("unchanged:").strip().removeprefix("already ").strip()

    return norm(before) == norm(after) or str(after or "").lower().startswith("unchanged")


class Lang:
    """The report's language order ("ja+en", …) and its bilingual HTML spans."""

    def __init__(self, lang: str, *, words: Mapping[str, tuple[str, str]] | None = None) -> None:
        if lang not in LANGS:
            raise UsageError(f"--lang {lang!r}: expected one of {', '.join(LANGS)}")
        self.order = lang.split("+")
        self.words = {**WORDS, **(words or {})}

    def pair(self, ja: str, en: str) -> str:
        parts = {"ja": ja, "en": en}
        spans = [f'<span lang="{k}">{html.escape(parts[k])}</span>' for k in self.order]
        return ' <span class="sep">/</span> '.join(spans)

    def __call__(self, key: str) -> str:
        return self.pair(*LABELS[key])

    def word(self, value: str) -> str:
        return self.pair(*self.words[value]) if value in self.words else html.escape(value)

    def field(self, name: str) -> str:
        ja, en = label(name)
        return html.escape(en) if ja == en else self.pair(ja, en)

    def split(self, title: str) -> str:
        """A step title of the form "日本語 / English"."""
        ja, _, en = title.partition(" / ")
        return self.pair(ja, en) if en else html.escape(title)
