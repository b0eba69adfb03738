"""A fleet of servers: the inventory (``inventory``), the read-only plan (``plan``), the rollout and its
record, and the renewal calendar (``calendar``: when every certificate must be renewed).

* :mod:`.rollout` — ``opslib fleet run``: batches (``--serial``), ``--forks``, ``--max-fail-percentage``,
  each host an ``opslib run`` subprocess, Ctrl-C handling, the console lines.
* :mod:`.continuing` — a second run of the same fleet: hosts already serving their new certificate.
* :mod:`.record` — ``<evidence root>/fleets/<UTC>_<name>/fleet.json``: writing, reading, verifying;
  :mod:`.assemble` — the same record from run folders (``opslib fleet record``, the Ansible playbook).
* :mod:`.report` — the fleet report (HTML, Japanese and English).
* :mod:`.review` — the tables and chart of ``notebooks/fleet_review.ipynb``.

Layering: ``fleet`` ranks beside ``runbook`` (it may import runbook, preflight, server, evidence, params,
certs, tls); nothing below imports it; ``cli`` does. docs/fleet.md describes the commands and the record.
"""
