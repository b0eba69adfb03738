"""What the runner tells the operator: one line per step, the plan of a dry run, and after a failure
what production serves now, what changed so far and the exact next command.

Text only (the runner prints it to standard error); built from the facts the steps recorded, so the
lines say nothing the evidence does not hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .steps import Step

PREFIX = "opslib: "
_WIDTH = 62  # the title column of a step line (Japanese characters count as two)


def _cells(text: str) -> int:
    """How many terminal columns ``text`` takes (East Asian wide characters take two)."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(1, width - _cells(text))


def step_line(step: Step, *, index: int, total: int, status: str, duration_s: float | None) -> str:
    """``opslib: [2/5] 01 サーバIDのインストール / Install the new certificate   succeeded    12.3 s``."""
    took = f"{duration_s:7.1f} s" if duration_s is not None else "        -"
    title = f"{step.number} {step.title_ja} / {step.title_en}"
    return f"{PREFIX}[{index}/{total}] {_pad(title, _WIDTH)} {status:<10}{took}"


def _rows(value: Any) -> list[Mapping[str, Any]]:
    return [r for r in value if isinstance(r, Mapping)] if isinstance(value, list) else []


def change_text(row: Mapping[str, Any]) -> str:
    """``target: field before → after`` of one recorded change row."""
    before, after = row.get("before", ""), row.get("after", "")
    return f"{row.get('target', '?')}: {row.get('field', '?')} {before or '(none)'} → {after or '(none)'}"


def real_changes(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The rows whose value changes (a "disabled → disabled" row is no change)."""
    return [r for r in rows if str(r.get("before", "")) != str(r.get("after", ""))]


def plan_lines(steps: Sequence[tuple[Step, Mapping[str, Any]]], facts: Mapping[str, Any]) -> list[str]:
    """A dry run's plan: per step, each target / field / before → after it recorded, and the chain."""
    lines = ["plan (dry run: nothing was changed; a real run would do this):"]
    for step, step_facts in steps:
        if not step.plan:
            continue
        rows = real_changes(_rows(step_facts.get(step.plan)))
        head = f"  {step.number} {step.title_ja} / {step.title_en}"
        if not rows:
            lines.append(f"{head}: nothing to change")
            continue
        lines.append(f"{head}:")
        lines += [f"      {change_text(r)}" for r in rows]
    if facts.get("chain"):
        lines.append(f"  predicted chain: {facts['chain']}")
    if facts.get("verify_problems"):
        lines += [f"  served now, problem: {p}" for p in facts["verify_problems"]]
    return lines


def changed_lines(steps: Sequence[tuple[Step, Mapping[str, Any]]], *, dry_run: bool) -> list[str]:
    """What the run (and the runs it resumes) changed on the server, step by step."""
    if dry_run:
        return ["nothing (a dry run changes nothing)"]
    lines: list[str] = []
    for step, step_facts in steps:
        rows = real_changes(_rows(step_facts.get(step.changed or step.plan))) if step.changes_server else []
        if step.writes_backup and step_facts.get("backup_file"):
            lines.append(f"{step.number}: PFX backup written to {step_facts['backup_file']}")
        lines += [f"{step.number}: {change_text(r)}" for r in rows]
    return lines or ["nothing on the server"]


@dataclass(frozen=True)
class Serving:
    """What the production site serves now: from a read-only TLS handshake, or the last recorded fact."""

    site: str
    state: str  # "started", "stopped", "" (unknown)
    thumbprint: str
    not_after_utc: str
    source: str  # how it is known
    unreachable: str = ""  # why the read-only handshake failed ("": it did not, or none was tried)

    def text(self) -> str:
        expiry = f", expires {self.not_after_utc}" if self.not_after_utc else ""
        cert = f"certificate {self.thumbprint}{expiry}" if self.thumbprint else "no certificate on record"
        if self.unreachable:
            return (
                f"{self.site} does NOT answer TLS now ({self.unreachable}) — the site may be down; "
                f"last on record: {cert} ({self.source})"
            )
        state = f" ({self.state})" if self.state else ""
        return f"{self.site}{state} serves {cert} — {self.source}"

    def facts(self) -> dict[str, str]:
        return {
            "site": self.site,
            "state": self.state,
            "thumbprint": self.thumbprint,
            "not_after_utc": self.not_after_utc,
            "source": self.source,
            "unreachable": self.unreachable,
        }


def recorded_serving(
    site: str, facts: Mapping[str, Any], done: Sequence[str], *, rollback: Mapping[str, Any] | None = None
) -> Serving:
    """What production serves according to the facts so far (``done``: the steps that succeeded;
    ``rollback``: a rollback run's ``rollback`` parameters, what was served before it started)."""
    state = str(facts.get("production_state") or "")
    thumb: Any
    until: Any
    if rollback and "05_rollback_certificate" not in done:
        thumb, until = rollback.get("replaced_thumbprint"), None
        how = "served when the rollback started, as the run it undoes recorded"
    elif "05_rollback_certificate" in done:
        thumb, until = facts.get("restored_thumbprint"), facts.get("restored_not_after_utc")
        how = "recorded by the rollback step"
    elif "02_swap_certificate" in done:
        thumb, until = facts.get("expected_thumbprint"), facts.get("new_not_after_utc")
        how = "recorded by step 02"
    else:
        thumb, until = facts.get("production_thumbprint_before"), facts.get("production_not_after_utc_before")
        how = "recorded by step 00, before anything changed" if thumb else "not recorded"
        state = state or ""
    return Serving(site, state, str(thumb or ""), str(until or ""), how)


def failure_lines(
    *,
    run_id: str,
    failed: Step | None,
    serving: Serving,
    changed: Sequence[str],
    next_commands: Sequence[str],
) -> list[str]:
    """The last lines after a failure: where it stopped, production now, what changed, what to type."""
    where = f"at step {failed.number} {failed.title_ja} / {failed.title_en}" if failed else ""
    lines = [f"{PREFIX}run {run_id} failed {where}".rstrip()]
    lines.append(f"  production now : {serving.text()}")
    lines.append(f"  changed so far : {changed[0]}")
    lines += [f"                   {c}" for c in changed[1:]]
    lines.append(f"  next           : {next_commands[0]}")
    lines += [f"                   {c}" for c in next_commands[1:]]
    return lines
