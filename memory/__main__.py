"""``python -m memory``: the ``attic`` command line."""

import sys

from memory.cli import main

sys.exit(main())
