"""The renewal runbook: the step notebooks run in order with papermill, and the evidence they leave.

=================  ===========================================================================
:mod:`.steps`      the one step table: each step's notebook, the facts it consumes and records,
                   its hooks (confirmation, backup folder, rollback.yaml); the facts-vs-parameters rule
:mod:`.run`        ``run`` / ``resume`` / ``summarize`` and the per-run context
:mod:`.rollback`   ``rollback.yaml``, built from the declarations of the step that writes it
:mod:`.kernels`    one fresh kernel per step, the next one booting meanwhile; kernel manager options
:mod:`.lock`       the host-and-site lock
:mod:`.render`     nbconvert HTML renders and the redaction of executed notebooks
=================  ===========================================================================

The steps of a renewal (``mode: renew``); ``opslib run rollback.yaml`` (``mode: rollback``) runs
``05_rollback_certificate`` then ``04_verify_endpoint``:

=====================================  =====================================================
``00_precheck_root_store``             read-only checks, disable a forbidden root (backed up)
``01_install_certificate``             complete the pending request, bind to the work site
``02_swap_certificate``                production site: old → new (asks first unless ``yes``)
``03_backup_keypair``                  PFX to ``backup.directory`` (0600 in a 0700 folder)
``04_verify_endpoint``                 what the site serves, with and without SNI
=====================================  =====================================================
"""

from __future__ import annotations

from .kernels import KERNEL, Kernels, kernel_manager_options
from .lock import lock_path, locked
from .rollback import ROLLBACK_FILE, rollback_text, rollback_values, write_rollback
from .run import (
    CELL_TIMEOUT_S,
    _Context,
    _evidence_root,
    _resolve_secrets,
    _select,
    declared_parameters,
    notebooks_dir,
    resume,
    run,
    summarize,
)
from .steps import (
    ALL_STEPS,
    RENEW_STEPS,
    ROLLBACK_STEPS,
    RollbackField,
    Step,
    consumed_facts,
    notebook_parameters,
    recorded_by,
    steps_for,
    table_problems,
)

__all__ = [
    "ALL_STEPS",
    "CELL_TIMEOUT_S",
    "KERNEL",
    "RENEW_STEPS",
    "ROLLBACK_FILE",
    "ROLLBACK_STEPS",
    "Kernels",
    "RollbackField",
    "Step",
    "_Context",
    "_evidence_root",
    "_resolve_secrets",
    "_select",
    "consumed_facts",
    "declared_parameters",
    "kernel_manager_options",
    "lock_path",
    "locked",
    "notebook_parameters",
    "notebooks_dir",
    "recorded_by",
    "resume",
    "rollback_text",
    "rollback_values",
    "run",
    "steps_for",
    "summarize",
    "table_problems",
    "write_rollback",
]
