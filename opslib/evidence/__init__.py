"""Evidence: the run folder, its manifest (``run.json``), hashes, facts recorded in notebooks, and
reading runs back for review.

One renewal run leaves one folder ``<root>/<UTC yyyymmddThhmmssZ>_<host>_<site>/`` (docs/evidence.md).
Its ``run.json`` says who ran what, when, with which parameters (secrets only as references), how
every step ended, the facts the steps recorded, the SHA-256 of every other file in the folder, and
the SHA-256 of the previous run's ``run.json`` in the same root: a chain across runs, so that an
edited, added or removed file — or a removed run — shows up in :func:`verify_root`.
An optional HMAC-SHA256 over the canonical ``run.json`` also protects the newest run of a chain.

* :mod:`.folder` — :func:`new_run`, :func:`update_run`, :func:`finalize_run` (the runbook);
  :func:`record` in a notebook's last cell, read back with :func:`read_facts`.
* :mod:`.manifest` — constants, canonical JSON, hashing, HMAC, atomic ``run.json`` writes.
* :mod:`.index` — :func:`load_runs` (one row per run, from ``run.json`` files only),
  :func:`select_runs`, :func:`load_run` → :class:`RunRecord`, :func:`run_summary`.
* :mod:`.heads` — the root's head record: :func:`append_head` (called by :func:`finalize_run`).
* :mod:`.verify` — :func:`verify_run`, :func:`verify_root` → :class:`VerifyReport`; :func:`verdict`
  and :func:`verdict_text` (the one wording); :func:`verify_for_resume` (before ``opslib resume``).
* :mod:`.tables` — :func:`show`: a step notebook's table, whole and recorded as data for the report.
* :mod:`.review` — the review notebook's tables and charts (pandas/matplotlib imported on use).

The console text of ``opslib evidence list|show|verify`` is in :mod:`opslib.cli`.
Field reference: docs/evidence.md.
"""

from __future__ import annotations

from .folder import cell_text, finalize_run, new_run, read_facts, record, update_run
from .heads import append_head, head_digest, read_heads
from .index import RUN_COLUMNS, RunRecord, load_run, load_runs, previous_run, run_summary, scan, select_runs
from .manifest import (
    FACTS_MIME,
    RUN_JSON,
    SCHEMA,
    STATUSES,
    TRANSCRIPT,
    UNREADABLE,
    canonical_json,
    iso_utc,
    parse_utc,
    plain,
    sha256_file,
)
from .review import (
    compare_runs,
    expiry_table,
    format_time,
    integrity_by_run,
    pick_comparison,
    pick_run,
    plot_expiry,
    problems_table,
    short_thumbprint,
    status_text,
    style_runs,
    summary_table,
)
from .tables import TABLE_MIME, show
from .verify import (
    UNPROVEN_TEXT,
    Problem,
    VerifyReport,
    verdict,
    verdict_text,
    verify_for_resume,
    verify_root,
    verify_run,
)

_plain = plain  # the old name (benchmarks/run_overhead.py)

__all__ = [
    "FACTS_MIME",
    "RUN_COLUMNS",
    "RUN_JSON",
    "SCHEMA",
    "STATUSES",
    "TABLE_MIME",
    "TRANSCRIPT",
    "UNPROVEN_TEXT",
    "UNREADABLE",
    "Problem",
    "RunRecord",
    "VerifyReport",
    "append_head",
    "canonical_json",
    "cell_text",
    "compare_runs",
    "expiry_table",
    "finalize_run",
    "format_time",
    "head_digest",
    "integrity_by_run",
    "iso_utc",
    "load_run",
    "load_runs",
    "new_run",
    "parse_utc",
    "pick_comparison",
    "pick_run",
    "plain",
    "plot_expiry",
    "previous_run",
    "problems_table",
    "read_heads",
    "read_facts",
    "record",
    "run_summary",
    "scan",
    "select_runs",
    "sha256_file",
    "short_thumbprint",
    "show",
    "status_text",
    "style_runs",
    "summary_table",
    "update_run",
    "verdict",
    "verdict_text",
    "verify_for_resume",
    "verify_root",
    "verify_run",
]
