"""`python -m quantstrip ...` (the systemd unit runs `python -m quantstrip daemon`)."""

from __future__ import annotations

import sys

from quantstrip.cli import main

if __name__ == "__main__":
    sys.exit(main())
