"""A fleet of servers: the inventory (``inventory``), the read-only plan (``plan``), the rollout and its
record, and the renewal calendar (``calendar``: when every certificate must be renewed).

Layering: ``fleet`` ranks beside ``runbook`` (it may import runbook, preflight, server, evidence, params,
certs, tls); nothing below imports it; ``cli`` does.
"""
