"""``python -m memory``: the ``attic`` command line."""

import sys

from memory._cli import main

sys.exit(main())
