"""`python -m refinery` is the `refinery` command."""

import sys

from refinery.cli import main

sys.exit(main())
