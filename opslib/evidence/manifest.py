"""The run manifest (``run.json``): constants, canonical JSON, hashing, HMAC, atomic writes.

Parameters are kept with secrets only as references (literal secrets are masked); the canonical
form (sorted keys, no spaces, ASCII) is what the SHA-256 chain and the optional HMAC-SHA256 cover.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac as hmac_
import json
import math
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..credentials import MASK, is_reference, redact
from ..errors import EvidenceError

if TYPE_CHECKING:
    pass


SCHEMA = 1
RUN_JSON = "run.json"
TRANSCRIPT = "transcript.jsonl"
FACTS_MIME = "application/vnd.opslib.facts+json"
STATUSES = ("running", "succeeded", "failed")
UNREADABLE = "unreadable"  # status shown by load_runs for a run.json that cannot be read


PROGRESS_HMAC = "progress_hmac"  # the HMAC of an unfinished run.json (new_run/update_run with a key)
PROTECTED_FIELDS = frozenset(
    {"schema", "run_id", "files", "previous_run", "hmac", PROGRESS_HMAC}
)  # set by new_run/finalize_run
_SECRET_KEY = re.compile(r"password|passphrase|secret|hmac_key", re.IGNORECASE)
_TMP_PREFIX = ".run.json."


# --- small helpers ------------------------------------------------------------------------------


def require_utc(value: dt.datetime, name: str) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise EvidenceError(
            name, f"expected a timezone-aware datetime, got {value!r}", hint="pass datetime.now(UTC)"
        )
    return value.astimezone(dt.UTC)


def iso_utc(value: dt.datetime) -> str:
    """``2026-11-26T19:45:00Z``: the one way a datetime is written into evidence."""
    return require_utc(value, "datetime").isoformat().replace("+00:00", "Z")


def parse_utc(value: object) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(dt.UTC) if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def plain(value: Any, where: str = "value") -> Any:
    """``value`` as plain JSON data: datetimes become ISO ``Z`` strings, NaN/NaT become null."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if type(value).__name__ in ("NaTType", "NAType"):  # pandas' missing values
        return None
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise EvidenceError(
                where,
                f"naive datetime {value.isoformat()} cannot be recorded",
                hint="use a tz-aware UTC datetime",
            )
        return iso_utc(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, os.PathLike):
        return Path(value).as_posix()
    if isinstance(value, Mapping):
        return {str(k): plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        return sorted(plain(v, where) for v in value)
    if hasattr(value, "row") and callable(value.row):  # the kit's frozen facts (StoreEntry, Site, …)
        return plain(value.row(), where)
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        return plain(value.item(), where)
    raise EvidenceError(
        where,
        f"{type(value).__name__} is not JSON-serializable",
        hint="record strings, numbers, booleans, lists, dicts or tz-aware datetimes",
    )


def mask_literal_secrets(value: Any) -> Any:
    """Parameters keep secrets only as references; a literal under a password-like key is masked."""
    if isinstance(value, dict):
        return {
            k: (
                MASK
                if _SECRET_KEY.search(k) and isinstance(v, str) and v and not is_reference(v)
                else mask_literal_secrets(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask_literal_secrets(v) for v in value]
    return value


def safe_name(value: str) -> str:
    """A host or site name as a file-name part: letters, digits, ``.`` and ``-`` (``_`` separates)."""
    text = re.sub(r"[^A-Za-z0-9.-]+", "-", value).strip(".-")
    return re.sub(r"-{2,}", "-", text)[:64] or "unnamed"


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# A run folder's subfolder for what is made from the run after it was sealed (``opslib evidence report``
# writes a fresh report there): never hashed, never part of the sealed record. ``finalize_run`` says so
# in run.json (``not_sealed``); ``verify`` lists its files apart, as not part of the sealed record.
UNSEALED_DIR = "regenerated"


def hash_files(run_dir: Path) -> dict[str, str]:
    """SHA-256 of every file below ``run_dir`` except its ``run.json`` and the :data:`UNSEALED_DIR`
    subfolder (relative POSIX paths, sorted)."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(run_dir):
        dirnames.sort()
        rel_dir = Path(dirpath).relative_to(run_dir)
        if rel_dir == Path("."):
            dirnames[:] = [d for d in dirnames if d != UNSEALED_DIR]
        for name in filenames:
            rel = (rel_dir / name).as_posix()
            if rel == RUN_JSON:
                continue
            out[rel] = sha256_file(os.path.join(dirpath, name))
    return dict(sorted(out.items()))


def unsealed_files(run_dir: Path) -> list[str]:
    """The files below ``run_dir``/:data:`UNSEALED_DIR` (relative POSIX paths, sorted): not part of the
    sealed record."""
    base = run_dir / UNSEALED_DIR
    if base.is_symlink() or not base.is_dir():
        return []
    return sorted(p.relative_to(run_dir).as_posix() for p in base.rglob("*") if not p.is_dir())


def canonical_json(doc: Mapping[str, Any]) -> bytes:
    """The bytes the HMAC covers: run.json without ``hmac``, keys sorted, compact, UTF-8."""
    body = {k: v for k, v in doc.items() if k != "hmac"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sign_hmac(doc: Mapping[str, Any], key: bytes) -> str:
    return hmac_.new(key, canonical_json(doc), hashlib.sha256).hexdigest()


def sign_progress(doc: Mapping[str, Any], key: bytes) -> str:
    """The HMAC of an unfinished run.json: :func:`sign_hmac` of it without ``progress_hmac``."""
    return sign_hmac({k: v for k, v in doc.items() if k != PROGRESS_HMAC}, key)


def signed_progress(doc: dict[str, Any], key: bytes | None) -> dict[str, Any]:
    """``doc`` as it will be written (redacted) with a fresh ``progress_hmac`` when there is a key, and
    none without one: whoever rewrites an unfinished run.json without the key cannot sign it again."""
    out = redacted_doc({k: v for k, v in doc.items() if k != PROGRESS_HMAC})
    if key:
        out[PROGRESS_HMAC] = sign_progress(out, key)
    return out


def redacted_doc(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with every registered secret replaced by ``[REDACTED]`` (:func:`opslib.credentials.redact`)."""
    return json.loads(redact(json.dumps(doc, ensure_ascii=False)))


def write_run_json(run_dir: Path, doc: dict[str, Any]) -> None:
    """Atomic rewrite: a temporary file in the same folder, fsync, rename over run.json."""
    text = json.dumps(redacted_doc(doc), indent=2, ensure_ascii=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=".tmp", dir=run_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, run_dir / RUN_JSON)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_run_json(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(run_dir) / RUN_JSON
    if not Path(run_dir).is_dir():
        raise EvidenceError(str(run_dir), "no such run folder", hint="give a folder made by `opslib run`")
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise EvidenceError(str(path), "missing: this is not a run folder (no run.json)") from None
    except (OSError, ValueError) as exc:
        raise EvidenceError(
            str(path), f"unreadable ({type(exc).__name__}: {exc})", hint="restore it from your backup copy"
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("run_id"), str):
        raise EvidenceError(
            str(path), "not a run manifest (no run_id)", hint="restore it from your backup copy"
        )
    return doc


def is_finalized(doc: Mapping[str, Any]) -> bool:
    return doc.get("status") in ("succeeded", "failed") and bool(doc.get("finished_utc"))
