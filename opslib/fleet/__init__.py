"""Beyond one server: the fleet (inventory, plan, rollout, record) and the renewal calendar.

Ranks beside :mod:`opslib.runbook`: it may import runbook, evidence, params, certs, tls and server;
nothing below imports it; :mod:`opslib.cli` does.
"""
