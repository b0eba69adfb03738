"""The lab check: capture how a server answers every command the kit relies on, and compare the
rehearsal host with it (so the emulator's answers are checked against a real server's).

* :mod:`.probes` — the fixed, versioned probe set (:data:`PROBE_SET_VERSION`), each probe with the
  behaviour rows (docs/windows-behaviour.md) it can verify and its decision-relevant facts;
* :mod:`.reversible` — the ``--reversible`` tier (a throw-away certificate, every change undone and read back);
* :mod:`.capture` — :func:`capture` writes a bundle (``capture.json`` + raw bytes); :func:`load` checks it;
* :mod:`.compare` — :func:`compare` runs the same probes on a fresh rehearsal host and diffs the decisions;
* :mod:`.behaviour` — the "verified by capture" section of docs/windows-behaviour.md, generated from bundles.
"""

from __future__ import annotations

from .capture import MANIFEST, TIERS, capture, capture_connection, load, probes_for
from .compare import Comparison, ProbeVerdict, capture_rehearsal, compare, compare_manifests, scenario_for
from .probes import PROBE_SET_VERSION, READ_ONLY, Probe
from .reversible import REVERSIBLE

__all__ = [
    "MANIFEST",
    "PROBE_SET_VERSION",
    "READ_ONLY",
    "REVERSIBLE",
    "TIERS",
    "Comparison",
    "Probe",
    "ProbeVerdict",
    "capture",
    "capture_connection",
    "capture_rehearsal",
    "compare",
    "compare_manifests",
    "load",
    "probes_for",
    "scenario_for",
]
