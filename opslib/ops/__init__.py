"""The renewal's steps, one module each, every one the same shape: before → plan → apply → verify,
each returning a frozen Result whose ``.facts()`` the notebook records.

* :mod:`.roots` — step 0, no forbidden root enabled;
* :mod:`.install` — step 1, the new certificate installed and bound to the work site;
* :mod:`.swap` — step 2, the production site serves it;
* :mod:`.export` — step 3, the PFX backup;
* :mod:`.endpoint` — step 4, what the site serves (read-only);
* :mod:`.request` — ``opslib request``, the pending request (key and CSR) before the CA is asked;
* :mod:`.restore` — step R, the previous certificate back;
* :mod:`.served_chain` — the expected chain of the new certificate, predicted from the server's stores
  (steps 0, 1 and 2 refuse an unusable one before anything changes; step 4 compares with it).

``apply(..., dry_run=True)`` returns the plan-only Result, so the notebooks have no branches.
"""

from __future__ import annotations

from . import endpoint, export, install, request, restore, roots, served_chain, swap

__all__ = ["endpoint", "export", "install", "request", "restore", "roots", "served_chain", "swap"]
