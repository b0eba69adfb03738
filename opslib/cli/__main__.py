"""``python -m opslib.cli`` (as the module ``opslib/cli.py`` ran before it became a package)."""

import sys

from . import main

sys.exit(main())
