"""``opslib request PARAMS``: the pending request, as a run of its own (run.json ``mode: request``).

One step (:data:`.steps.REQUEST`, ``notebooks/request_certificate.ipynb``) under the same runner as a
renewal: the evidence folder's lock, the server's renewal lock, a run folder with ``run.json``, renders and
the report. ``--key-size`` and ``--new-request`` reach the notebook as facts recorded before it starts
(so the evidence says what was asked). A renewal finds the request run whose key its certificate carries
(:func:`.lineage.request_run_for`): run.json's ``request_run``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .. import params as params_
from ..errors import UsageError
from .run import Launch, choose_evidence_root, launch
from .steps import REQUEST_MODE, REQUEST_STEPS


def request(
    params_path: str | os.PathLike[str],
    *,
    evidence_root: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
    yes: bool = False,
    new_request: bool = False,
    key_size: int = 2048,
    verbose: bool = False,
    break_lock: bool = False,
    engine: str | None = None,
) -> int:
    """Create the pending request on the server of ``params_path`` (0 on success; see :func:`.run.run`)."""
    params = params_.load(params_path, absent_ok=("certificate_file",))
    if params.mode != params_.RENEW:
        raise UsageError(f"{params_path}: opslib request takes a renewal's parameters file (mode: renew)")
    if key_size not in (2048, 3072):
        raise UsageError(f"--key-size {key_size}: use 2048 or 3072")
    root = choose_evidence_root(evidence_root, params)
    fields: dict[str, Any] = {"parameters_file": str(Path(params_path).resolve()), "mode": REQUEST_MODE}
    facts = {"request_key_size": key_size, "new_request": new_request}
    return launch(
        Launch(
            params,
            root,
            REQUEST_STEPS,
            dry_run=dry_run,
            yes=yes,
            verbose=verbose,
            fields=fields,
            facts=facts,
            break_lock=break_lock,
            engine=engine,
        )
    )
