"""`python -m nodegraph ...`: the same command line as the `nodegraph` script (nodegraph/cli.py)."""

import sys

from .cli import main

sys.exit(main())
