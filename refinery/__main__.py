"""`python -m refinery` is the `refinery` command."""

from refinery.app.cli import entry

entry()
