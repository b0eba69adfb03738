"""The renewal runbook: the step notebooks run in order with papermill, and the evidence they leave.

=====================  ===========================================================================
:mod:`.steps`          the one step table: each step's notebook, the facts it consumes and records,
                       its hooks (confirmation, backup folder, rollback.yaml); the facts-vs-parameters rule
:mod:`.run`            ``run`` / ``launch`` and the checks made before anything is contacted
:mod:`.context`        ``RunContext``: one run, step by step (parameters, confirmation, rollback.yaml)
:mod:`.engines`        how a step is executed: ``kernel``, ``inprocess`` (tests), ``runner`` (no notebook)
:mod:`.inprocess`      the papermill engine behind ``inprocess``: the cells in one IPython shell
:mod:`.record`         the run record: run.json's step records, renders, report, closing, ``summarize``
:mod:`.chores`         on the server around the steps: its renewal lock, the run's temp folder,
                       ``connection.json``, a resume's probe and leftovers, what is left there
:mod:`.recovery`       ``resume`` and ``rollback``: each a new chained run folder (a finalized run
                       folder is never written again); corrected parameters on resume
:mod:`.forward`        before a resume / rollback changes anything: production still serves what the
                       run recorded (else refused, naming the newer run; ``--force-older``); a
                       rollback target that expired (``--force-expired``) or expires soon
:mod:`.console`        the operator's lines: one per step, a dry run's plan, the lines after a failure
:mod:`.failure`        after a failure: the exact next command, what production serves now
:mod:`.rollback`       ``rollback.yaml``, built from the declarations of the step that writes it
:mod:`.kernels`        one fresh kernel per step, the next one booting meanwhile; kernel manager options
:mod:`.evidence_lock`  the evidence folder's lock for a host and site
:mod:`.render`         nbconvert HTML renders and the redaction of executed notebooks
=====================  ===========================================================================

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

from .context import RunContext
from .engines import (
    CELL_TIMEOUT_S,
    ENGINE_ENV,
    ENGINES,
    StepEngine,
    StepOutcome,
    engine_for,
    engine_name,
)
from .evidence_lock import lock_path, locked
from .kernels import KERNEL, Kernels, kernel_manager_options
from .record import RunFailed, summarize
from .recovery import CORRECTABLE, corrected_parameters, done_steps, resume, rollback, root_backups
from .request import request
from .rollback import ROLLBACK_FILE, rollback_text, rollback_values, write_rollback
from .run import (
    Launch,
    choose_evidence_root,
    declared_parameters,
    launch,
    notebooks_dir,
    resolve_secrets,
    run,
    select_steps,
)
from .steps import (
    ALL_STEPS,
    RENEW_STEPS,
    REQUEST_STEPS,
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
    "request",
    "ALL_STEPS",
    "CELL_TIMEOUT_S",
    "CORRECTABLE",
    "ENGINES",
    "ENGINE_ENV",
    "KERNEL",
    "RENEW_STEPS",
    "REQUEST_STEPS",
    "RESTORE_ROOTS",
    "ROLLBACK_FILE",
    "ROLLBACK_STEPS",
    "Kernels",
    "Launch",
    "RollbackField",
    "RunContext",
    "RunFailed",
    "Step",
    "StepEngine",
    "StepOutcome",
    "choose_evidence_root",
    "consumed_facts",
    "corrected_parameters",
    "declared_parameters",
    "done_steps",
    "engine_for",
    "engine_name",
    "kernel_manager_options",
    "launch",
    "lock_path",
    "locked",
    "notebook_parameters",
    "notebooks_dir",
    "recorded_by",
    "resolve_secrets",
    "resume",
    "rollback",
    "rollback_text",
    "rollback_values",
    "root_backups",
    "run",
    "select_steps",
    "steps_for",
    "summarize",
    "table_problems",
    "write_rollback",
]
