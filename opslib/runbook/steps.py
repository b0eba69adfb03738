"""The one step table: which notebooks run, in which order, what each consumes and records.

A :class:`Step` declares its contract as data, and the runner reads nothing else:

* ``consumes`` — the facts an earlier step recorded that this notebook receives (and only those);
  ``consumes_if_recorded`` — facts it receives when an earlier step of this run recorded them (step 4
  gets step 1's ``predicted_chain`` in a renewal; a rollback run has none);
* ``records`` — the facts this step promises to record for later steps, ``rollback.yaml`` and the
  summary (a notebook may record more, for the evidence; nothing relies on those);
* hooks: ``changes_server``, ``needs_confirmation`` (ask the operator first, unless ``--yes``),
  ``writes_backup`` (``backup.directory`` is checked before anything is contacted),
  ``writes_rollback`` (after the step, also a failed one, the runner writes ``rollback.yaml`` from
  the :class:`RollbackField` list), ``writes_rollback_before`` (also *before* the step starts, from the
  facts it consumes: the undo exists whatever happens to the run meanwhile), ``serves`` (the value naming the certificate the site will serve,
  shown in the confirmation question).

Facts versus parameters (:func:`notebook_parameters`): a notebook receives the operator's
parameters plus the facts its step consumes. A consumed fact never silently replaces an operator
parameter of the same name: when both exist with different values the run stops
(:class:`~opslib.errors.ParameterError`, exit 2) naming both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import params as params_
from ..errors import ParameterError


@dataclass(frozen=True)
class RollbackField:
    """One key of ``rollback.yaml``'s ``rollback`` section, and the facts it is taken from.

    ``recorded`` is what the step recorded; ``before`` is what the step consumed from the state
    before anything changed — used for every field when the step failed before recording
    ``recorded`` of the first field (the certificate to put back).
    """

    key: str
    recorded: str
    before: str


@dataclass(frozen=True)
class Step:
    """One step of the runbook: a notebook, the facts it consumes and records, and its hooks."""

    name: str  # notebook file name without ".ipynb"; the step's name in run.json
    title: str
    consumes: tuple[str, ...] = ()
    consumes_if_recorded: tuple[str, ...] = ()
    records: tuple[str, ...] = ()
    changes_server: bool = True
    needs_confirmation: bool = False
    serves: str = ""  # a parameter or consumed fact: the certificate the site serves afterwards
    writes_backup: bool = False
    writes_rollback: tuple[RollbackField, ...] = ()
    plan: str = ""  # the fact holding the step's from → to rows (target, field, before, after)
    changed: str = ""  # the fact holding what the step changed, when it is not the plan
    in_process: bool = False  # run by the runner itself (no notebook): see opslib.runbook.recovery
    writes_rollback_before: bool = False

    @property
    def notebook(self) -> str:
        return f"{self.name}.ipynb"

    @property
    def number(self) -> str:
        """``00`` … ``05``: the step's number as the console and the renders show it."""
        return self.name.split("_", 1)[0]

    @property
    def title_ja(self) -> str:
        """The seed's Japanese title (the part of :attr:`title` before `` / ``)."""
        return self.title.partition(" / ")[0]

    @property
    def title_en(self) -> str:
        """The English title (the part of :attr:`title` after `` / ``)."""
        return self.title.partition(" / ")[2] or self.title


PRECHECK = Step(
    "00_precheck_root_store",
    "事前確認 / Pre-check the trusted root store",
    records=(
        "production_thumbprint_before",
        "production_not_after_utc_before",
        "production_secure_bindings_before",
    ),
    plan="forbidden_roots_planned",
    changed="forbidden_roots_disabled",
)
INSTALL = Step(
    "01_install_certificate",
    "サーバIDのインストール / Install the new certificate",
    records=("new_thumbprint", "new_not_after_utc", "predicted_chain"),
    plan="install_plan",
)
SWAP = Step(
    "02_swap_certificate",
    "サーバIDの入替え / Swap the production certificate",
    consumes=(
        "new_thumbprint",
        "production_thumbprint_before",
        "production_not_after_utc_before",
        "production_secure_bindings_before",
    ),
    records=(
        "old_thumbprint",
        "old_not_after_utc",
        "old_secure_bindings",
        "old_cert_source",
        "expected_thumbprint",
    ),
    needs_confirmation=True,
    serves="new_thumbprint",
    writes_rollback_before=True,
    writes_rollback=(
        RollbackField("old_thumbprint", "old_thumbprint", "production_thumbprint_before"),
        RollbackField("old_not_after_utc", "old_not_after_utc", "production_not_after_utc_before"),
        RollbackField("old_secure_bindings", "old_secure_bindings", "production_secure_bindings_before"),
        RollbackField("replaced_thumbprint", "new_thumbprint", "new_thumbprint"),
        # IIS 6: the old certificate was inherited from W3SVC; the rollback restores inheritance
        # (W-IIS6-SSLCERTHASH-INHERIT). Unknown ("") when step 2 failed before recording it.
        RollbackField("old_cert_source", "old_cert_source", "old_cert_source"),
    ),
    plan="swap_plan",
)
BACKUP = Step(
    "03_backup_keypair",
    "キーペアのバックアップ / Back up the key pair",
    consumes=("new_thumbprint",),
    records=(
        "backup_file",
        "backup_sha256",
        "export_route",
        "export_route_reason",
        "pfx_encryption",
        "remote_deleted",
        "remote_left",
    ),
    writes_backup=True,
    plan="backup_plan",
)
VERIFY = Step(
    "04_verify_endpoint",
    "公開状態の確認 / Verify what the site serves",
    consumes=("expected_thumbprint",),
    consumes_if_recorded=("predicted_chain", "roots_restored"),
    changes_server=False,
)
ROLLBACK = Step(
    "05_rollback_certificate",
    "ロールバック / Put the previous certificate back",
    records=("restored_thumbprint", "replaced_thumbprint", "expected_thumbprint"),
    needs_confirmation=True,
    serves="old_thumbprint",  # the rollback section's parameter
    plan="rollback_plan",
)
# ``opslib rollback RUN --roots``: re-enable the roots that RUN's step 0 disabled, from its ``.reg``
# backups, read back. Run by the runner itself (opslib.runbook.recovery), before step 4 (the endpoint is
# checked after the last server change): with the G5 root enabled again IIS stops sending the cross
# certificate, the very reason step 0 disables it, so step 4 reports that as an expected warning.
RESTORE_ROOTS = Step(
    "06_restore_roots",
    "ルート証明書の復元 / Re-enable the roots step 0 disabled",
    records=("roots_restored",),
    needs_confirmation=True,
    changed="roots_restored",
    in_process=True,
)

# ``opslib request``: the pending request on the server, before the CA is asked (run.json mode "request").
# Its options (--key-size, --new-request) reach the notebook as facts the runner records first.
REQUEST = Step(
    "request_certificate",
    "証明書要求の作成 / Create the certificate request",
    consumes_if_recorded=("request_key_size", "new_request"),
    records=("request_thumbprint", "request_key_sha256", "request_csr_file"),
    plan="request_plan",
)
REQUEST_MODE = "request"

RENEW_STEPS: tuple[Step, ...] = (PRECHECK, INSTALL, SWAP, BACKUP, VERIFY)
ROLLBACK_STEPS: tuple[Step, ...] = (ROLLBACK, VERIFY)
ALL_STEPS: tuple[Step, ...] = (*RENEW_STEPS, ROLLBACK)  # every notebook of the renewal runbook, once
REQUEST_STEPS: tuple[Step, ...] = (REQUEST,)


def steps_for(mode: str) -> tuple[Step, ...]:
    return ROLLBACK_STEPS if mode == params_.ROLLBACK else RENEW_STEPS


def table_problems(steps: Sequence[Step]) -> list[str]:
    """What is wrong with a step table: a consumed fact that no earlier step records, a rollback
    field whose facts the step neither records nor consumes, a duplicate step. Empty when sound."""
    problems: list[str] = []
    recorded: set[str] = set()
    seen: set[str] = set()
    for step in steps:
        if step.name in seen:
            problems.append(f"{step.name}: listed twice")
        seen.add(step.name)
        problems += [
            f"{step.name} consumes {fact!r}, which no earlier step records"
            for fact in step.consumes
            if fact not in recorded
        ]
        known = set(step.records) | set(step.consumes)
        problems += [
            f"{step.name}: rollback field {f.key!r} comes from {name!r}, which the step neither records nor consumes"
            for f in step.writes_rollback
            for name in (f.recorded, f.before)
            if name not in known
        ]
        recorded |= set(step.records)
    return problems


def recorded_by(fact: str, steps: Iterable[Step] = ALL_STEPS) -> list[str]:
    """The steps that declare they record ``fact``."""
    return [s.name for s in steps if fact in s.records]


def consumed_facts(step: Step, facts: Mapping[str, Any]) -> dict[str, Any]:
    """The facts ``step`` receives: those it declares it consumes, when an earlier step recorded them."""
    return {name: facts[name] for name in (*step.consumes, *step.consumes_if_recorded) if name in facts}


def notebook_parameters(
    step: Step,
    declared: Sequence[str],
    operator: Mapping[str, Any],
    facts: Mapping[str, Any],
    *,
    source: str = "",
) -> dict[str, Any]:
    """What one notebook receives: its declared names, from the operator's values and the consumed facts.

    A fact the step does not consume never reaches it. A consumed fact whose name is also an
    operator parameter with another value is refused (:class:`ParameterError`, exit 2): a recorded
    fact never silently beats what the operator wrote.
    """
    consumed = consumed_facts(step, facts)
    for name, value in consumed.items():
        if name in operator and operator[name] != value:
            by = " or ".join(recorded_by(name)) or "an earlier step"
            raise ParameterError(
                name,
                f"the operator parameter {name} = {_show(operator[name])} differs from the fact {name} = "
                f"{_show(value)} recorded by {by}, which step {step.name} consumes",
                source=source,
                hint=f"remove {name} from the parameters (the run supplies it), or make the two agree",
            )
    merged = {**operator, **consumed}
    return {name: merged[name] for name in declared if name in merged}


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
