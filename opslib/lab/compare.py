"""``opslib lab compare``: the same probes against a fresh rehearsal host configured like the captured one.

Per probe, the *decision* (what the kit decides on: exit codes, byte shapes, fault codes) of the bundle
and of the rehearsal host are compared key by key; any difference is decision-relevant (exit 1). Raw
stdout/stderr bytes that differ while the decision agrees are cosmetic (listed, exit 0).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import rehearsal
from ..errors import UsageError
from ..winrm import connect
from .capture import capture_connection, load
from .probes import PROBE_SET_VERSION, meaning

# The emulator has no ping.exe: a program that prints nothing for longer than the OperationTimeout is
# stood in for by the endpoint's fault injection (``before:ping:timeout`` answers each Receive of that
# command with w:TimedOut after the OperationTimeout, opslib/rehearsal/server.py). Every comparison host
# gets it; the probe it serves is winrm.receive-timeout.
SLOW_COMMAND_FAULTS = ("before:ping:timeout",)


@dataclass
class ProbeVerdict:
    id: str
    rows: list[str]
    decision_diffs: list[dict[str, Any]] = field(default_factory=list)  # {key, captured, rehearsal}
    cosmetic: list[str] = field(default_factory=list)

    @property
    def agrees(self) -> bool:
        return not self.decision_diffs

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rows": self.rows,
            "agrees": self.agrees,
            "decision_diffs": self.decision_diffs,
            "cosmetic": self.cosmetic,
        }


@dataclass
class Comparison:
    bundle: str
    source: str
    scenario: str
    tier: str
    host: dict[str, Any]
    rehearsal_host: dict[str, Any]
    verdicts: list[ProbeVerdict]

    @property
    def decision_differences(self) -> int:
        return sum(len(v.decision_diffs) for v in self.verdicts)

    @property
    def exit_code(self) -> int:
        return 1 if self.decision_differences else 0

    def verdict_rows(self) -> list[dict[str, Any]]:
        """One row per probe for a reviewer: verdict (green/red), what differs, what a red row means."""
        return [
            {
                "probe": v.id,
                "rows": " ".join(v.rows),
                "verdict": "green" if v.agrees else "red",
                "difference": "; ".join(
                    f"{d['key']}: {d['captured']!r} (captured) vs {d['rehearsal']!r} (rehearsal)"
                    for d in v.decision_diffs
                ),
                "for a renewal": "" if v.agrees else meaning(v.id),
            }
            for v in self.verdicts
        ]

    def cosmetic_rows(self) -> list[dict[str, str]]:
        return [{"probe": v.id, "cosmetic difference": c} for v in self.verdicts for c in v.cosmetic]

    def as_dict(self) -> dict[str, Any]:
        return {
            "bundle": self.bundle,
            "source": self.source,
            "scenario": self.scenario,
            "tier": self.tier,
            "host": self.host,
            "rehearsal_host": self.rehearsal_host,
            "decision_differences": self.decision_differences,
            "probes": [
                {**v.row(), "for_a_renewal": "" if v.agrees else meaning(v.id)} for v in self.verdicts
            ],
        }


def scenario_for(host: dict[str, Any]) -> str:
    """The rehearsal scenario closest to the captured host (OS version, IIS version, language).

    :func:`compare` also starts it with the captured code page, language and WinRM version.
    """
    iis = int(host.get("iis_major") or 0)
    ja = host.get("language") == "ja" or int(host.get("codepage") or 0) == 932
    if iis == 6 or str(host.get("windows_version", "")).startswith("5."):
        return "iis6-ja" if ja else "default"
    if iis == 7:
        return "iis75-ja"  # the IIS 7.5 site model; language and code page follow the capture
    if iis == 8:
        return "iis85"  # Server 2012 (R2): `netsh http update` reported missing (W-IIS7-NETSH-UPDATE)
    if iis >= 8:
        return "iis10"
    return "iis6-ja" if ja else "default"


def diff_decisions(captured: dict[str, Any], fresh: dict[str, Any]) -> list[dict[str, Any]]:
    keys = sorted(set(captured) | set(fresh))
    return [
        {"key": k, "captured": captured.get(k), "rehearsal": fresh.get(k)}
        for k in keys
        if captured.get(k) != fresh.get(k)
    ]


def _timeless(facts: Any) -> Any:
    return {k: v for k, v in facts.items() if k != "waited_s"} if isinstance(facts, dict) else facts


def _cosmetic(captured: dict[str, Any], fresh: dict[str, Any]) -> list[str]:
    out: list[str] = []
    mine = {c["label"]: c for c in captured.get("commands", [])}
    theirs = {c["label"]: c for c in fresh.get("commands", [])}
    for label in sorted(set(mine) | set(theirs)):
        a, b = mine.get(label), theirs.get(label)
        if a is None or b is None:
            out.append(f"{label}: run on one side only")
            continue
        for stream in ("stdout", "stderr"):
            if stream in a and stream in b and a[stream]["sha256"] != b[stream]["sha256"]:
                out.append(
                    f"{label}: {stream} bytes differ ({a[stream]['size']} vs {b[stream]['size']} bytes)"
                )
        if "wsman" in a and _timeless(a.get("wsman")) != _timeless(b.get("wsman")):
            out.append(f"{label}: WS-Management details differ")
    return out


def compare_manifests(captured: dict[str, Any], fresh: dict[str, Any]) -> list[ProbeVerdict]:
    theirs = {p["id"]: p for p in fresh.get("probes", [])}
    verdicts: list[ProbeVerdict] = []
    for probe in captured.get("probes", []):
        other = theirs.pop(probe["id"], None)
        v = ProbeVerdict(probe["id"], list(probe.get("rows", [])))
        if other is None:
            v.decision_diffs.append({"key": "(probe)", "captured": "run", "rehearsal": "not run"})
        else:
            v.decision_diffs = diff_decisions(probe.get("decision", {}), other.get("decision", {}))
            v.cosmetic = _cosmetic(probe, other) + [
                f"fact {d['key']}: {d['captured']!r} vs {d['rehearsal']!r}"
                for d in diff_decisions(probe.get("facts", {}), other.get("facts", {}))
            ]
        verdicts.append(v)
    for pid, other in theirs.items():
        v = ProbeVerdict(pid, list(other.get("rows", [])))
        v.decision_diffs.append({"key": "(probe)", "captured": "not run", "rehearsal": "run"})
        verdicts.append(v)
    return verdicts


def capture_rehearsal(
    out: str | Path,
    *,
    scenario: str = "default",
    codepage: int | None = None,
    locale: str | None = None,
    winrm_version: str | None = None,
    faults: Sequence[str] = (),
    tier: str = "read-only",
    label: str = "web01",
    state_file: str | Path | None = None,
) -> dict[str, Any]:
    """Start a fresh rehearsal host and capture it into ``out`` (``source: rehearsal host``).

    ``faults`` are extra endpoint fault specs (a deliberately different host); the stand-in for a slow
    command (:data:`SLOW_COMMAND_FAULTS`) is always added.
    """
    with tempfile.TemporaryDirectory(prefix="opslib-lab-host-") as tmp:
        with rehearsal.start(
            scenario=scenario,
            codepage=codepage,
            locale=locale,
            winrm_version=winrm_version,
            faults=(*faults, *SLOW_COMMAND_FAULTS),  # the first matching spec wins
            workdir=Path(tmp),
            state_file=state_file,
        ) as r:
            with connect(
                r.url,
                transport="basic",
                username=r.user,
                password=r.password,
                host_label=label,
                allow_unencrypted_basic=True,
                # A loopback rehearsal host; the reversible tier exports only its own throw-away key.
                allow_cleartext_secrets=True,
            ) as conn:
                return capture_connection(conn, out, tier=tier, source="rehearsal host", label=label)


def compare(
    bundle: str | Path,
    *,
    scenario: str | None = None,
    faults: Sequence[str] = (),
    workdir: str | Path | None = None,
) -> Comparison:
    """Start a rehearsal host like the captured one, capture it the same way, compare."""
    captured = load(bundle)
    if captured.get("probe_set_version") != PROBE_SET_VERSION:
        raise UsageError(
            f"{bundle}: probe set {captured.get('probe_set_version')!r}, this kit runs {PROBE_SET_VERSION!r}",
            hint="capture again with this kit version",
        )
    host = dict(captured.get("host", {}))
    chosen = scenario or scenario_for(host)
    stack = str(host.get("winrm_stack") or "")
    with tempfile.TemporaryDirectory(prefix="opslib-lab-compare-") as tmp:
        fresh = capture_rehearsal(
            Path(workdir or tmp) / "bundle",
            scenario=chosen,
            codepage=int(host.get("codepage") or 0) or None,
            locale=host.get("language") if host.get("language") in ("en", "ja") else None,
            winrm_version=stack if stack in ("1.1", "2.0", "3.0") else None,
            faults=faults,
            tier=str(captured.get("tier") or "read-only"),
            label=str(captured.get("host_label") or "rehearsal"),
        )
    return Comparison(
        bundle=str(bundle),
        source=str(captured.get("source", "")),
        scenario=chosen,
        tier=str(captured.get("tier", "")),
        host=host,
        rehearsal_host=dict(fresh.get("host", {})),
        verdicts=compare_manifests(captured, fresh),
    )
