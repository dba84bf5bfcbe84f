"""``python -m kimi_env`` runs the ``kimi-env`` command line (see :mod:`kimi_env.cli`)."""

import sys

from kimi_env.cli import main

if __name__ == "__main__":
    sys.exit(main())
