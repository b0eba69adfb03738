"""``rollback.yaml``: the parameter set that puts the previous certificate back, in ``mode: rollback``.

What goes into its ``rollback`` section is declared by the step table: the step with
``writes_rollback`` lists :class:`~opslib.runbook.steps.RollbackField` entries, each naming the fact
the step records and the "before" fact it consumed (used when the step failed before recording).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .. import params as params_
from .steps import Step

ROLLBACK_FILE = "rollback.yaml"
# Renew-only keys (the new certificate, its host names, the PFX backup) do not belong in a rollback.
_RENEW_ONLY = frozenset(k.path.split(".")[0] for k in params_.SCHEMA if params_.ROLLBACK not in k.modes)


def rollback_values(step: Step, facts: dict[str, Any]) -> dict[str, Any]:
    """The ``rollback`` section's values for ``step`` from the run's facts ({} if the step writes none).

    When the step recorded the certificate to put back (its first field), every field comes from what
    it recorded; otherwise (it failed before recording) from what it consumed before anything changed.
    """
    fields = step.writes_rollback
    if not fields:
        return {}
    source = "recorded" if facts.get(fields[0].recorded) else "before"
    return {f.key: facts.get(getattr(f, source)) for f in fields}


def rollback_text(params: params_.Parameters, values: dict[str, Any], *, run_id: str) -> str:
    """``rollback.yaml``: the run's parameters (references only) in ``mode: rollback``.

    ``values``: the ``rollback`` section (:func:`rollback_values`): ``old_thumbprint``,
    ``old_not_after_utc``, ``old_secure_bindings``, ``replaced_thumbprint``, ``old_cert_source``.
    """
    data: dict[str, Any] = {"mode": params_.ROLLBACK}
    for key, value in params.data.items():
        if key == "mode" or key in _RENEW_ONLY:
            continue
        data[key] = json.loads(json.dumps(value))
    for key in ("winrm.ca_trust_path", "verify.ca_file"):
        section, _, leaf = key.partition(".")
        if data[section].get(leaf):
            data[section][leaf] = str(params.path(key))  # the rollback file lives in the run folder
    data["rollback"] = {
        "run_id": run_id,
        "old_thumbprint": values["old_thumbprint"],
        "old_not_after_utc": str(values.get("old_not_after_utc") or ""),
        "old_secure_bindings": list(values.get("old_secure_bindings") or []),
        "replaced_thumbprint": str(values.get("replaced_thumbprint") or ""),
    }
    if values.get("old_cert_source"):  # IIS 6 own / inherited / none (W-IIS6-SSLCERTHASH-INHERIT)
        data["rollback"]["old_cert_source"] = str(values["old_cert_source"])
    header = (
        f"Rollback parameters written by opslib for run {run_id}.\n"
        f"`opslib run {ROLLBACK_FILE}` puts certificate {values['old_thumbprint']} back on site\n"
        f"{params.site} (host {params.host}) with its old secure bindings, then verifies the endpoint.\n"
        f"実行 `opslib run {ROLLBACK_FILE}` で、サイト {params.site} の証明書を更新前のもの\n"
        "に戻し、公開状態を確認します。Secrets are references only (秘密情報は参照のみ).\n"
        "`opslib rollback <run folder> [--roots]` does the same as a command; --roots also\n"
        "re-enables the roots step 0 disabled (ステップ0で無効化したルート証明書も戻します)."
    )
    return params_.dump(data, header=header)


def write_rollback(
    run_dir: Path, params: params_.Parameters, step: Step, facts: dict[str, Any]
) -> Path | None:
    """Write ``rollback.yaml`` into the run folder after ``step``; None when there is nothing to put back."""
    values = rollback_values(step, facts)
    if not values or not values.get("old_thumbprint"):
        return None
    path = run_dir / ROLLBACK_FILE
    path.write_text(rollback_text(params, values, run_id=run_dir.name), encoding="utf-8")
    return path
