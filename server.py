"""`python server.py [--host H] [--port P] ...` — the same as `nodegraph serve` (see nodegraph/server.py)."""

import sys

from nodegraph.server import main

if __name__ == "__main__":
    sys.exit(main())
