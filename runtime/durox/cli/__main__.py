"""`python -m durox.cli`: the same command line as the `durox` script (tests and images that
run a module rather than an installed script use it)."""

import sys

from durox.cli import main

sys.exit(main())
