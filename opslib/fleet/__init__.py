"""A fleet of servers: the inventory (``inventory``), the read-only plan (``plan``), the rollout and its record.

Layering: ``fleet`` ranks beside ``runbook`` (it may import runbook, preflight, evidence, params, certs, tls);
nothing below imports it; ``cli`` does.
"""
