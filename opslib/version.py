"""The kit's version: recorded in every ``run.json`` and lab bundle (``kit_version``) and printed by
``opslib --version``. A module of its own, so the modules that record it need not import the package root."""

from __future__ import annotations

__version__ = "0.1.0"
