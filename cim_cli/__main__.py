"""``python -m cim_cli``: the ``cim`` command."""

from __future__ import annotations

import sys

from cim_cli.main import main

if __name__ == "__main__":
    sys.exit(main())
