"""`python -m refinery` is the `refinery` command."""

import sys

from refinery.app.cli import main

sys.exit(main())
