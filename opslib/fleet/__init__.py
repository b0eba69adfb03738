"""Fleets: many servers renewed in bounded parallel batches, canary first, one fleet record.

* :mod:`.rollout` — ``opslib fleet run``: batches (``--serial``), ``--forks``, ``--max-fail-percentage``,
  each host an ``opslib run`` subprocess, Ctrl-C handling, the console lines.
* :mod:`.continuing` — a second run of the same fleet: hosts already serving their new certificate.
* :mod:`.record` — ``<evidence root>/fleets/<UTC>_<name>/fleet.json``: writing, reading, verifying.
* :mod:`.report` — the fleet report (HTML, Japanese and English).
* :mod:`.review` — the tables and chart of ``notebooks/fleet_review.ipynb``.

Ranks beside :mod:`opslib.runbook` (it may import runbook, evidence, params, certs, server); only the
command line imports it. docs/fleet.md describes the commands and the record.
"""
