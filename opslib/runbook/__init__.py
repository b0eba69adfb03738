"""The renewal runbook: the step notebooks run in order with papermill, and the evidence they leave.

=================  ===========================================================================
:mod:`.steps`      the one step table: each step's notebook, the facts it consumes and records,
                   its hooks (confirmation, backup folder, rollback.yaml); the facts-vs-parameters rule
:mod:`.run`        ``run`` / ``launch`` / ``summarize`` and the per-run context
:mod:`.recovery`   ``resume`` and ``rollback``: each a new chained run folder (a finalized run
                   folder is never written again); corrected parameters on resume
:mod:`.console`    the operator's lines: one per step, a dry run's plan, the lines after a failure
:mod:`.failure`    after a failure: the exact next command, what production serves now
:mod:`.rollback`   ``rollback.yaml``, built from the declarations of the step that writes it
:mod:`.kernels`    one fresh kernel per step, the next one booting meanwhile; kernel manager options
:mod:`.lock`       the host-and-site lock
:mod:`.render`     nbconvert HTML renders and the redaction of executed notebooks
=================  ===========================================================================

The steps of a renewal (``mode: renew``); ``opslib rollback RUN`` (or ``opslib run RUN/rollback.yaml``, ``mode: rollback``)
runs ``05_rollback_certificate`` then ``04_verify_endpoint``; ``--roots`` adds ``06_restore_roots``
(run by the runner itself, no notebook):

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
from .recovery import CORRECTABLE, corrected_parameters, done_steps, resume, rollback, root_backups
from .rollback import ROLLBACK_FILE, rollback_text, rollback_values, write_rollback
from .run import (
    CELL_TIMEOUT_S,
    Launch,
    RunFailed,
    _Context,
    _evidence_root,
    _resolve_secrets,
    _select,
    declared_parameters,
    launch,
    notebooks_dir,
    run,
    summarize,
)
from .steps import (
    ALL_STEPS,
    RENEW_STEPS,
    RESTORE_ROOTS,
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
    "CORRECTABLE",
    "RESTORE_ROOTS",
    "Launch",
    "RunFailed",
    "corrected_parameters",
    "done_steps",
    "launch",
    "rollback",
    "root_backups",
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
