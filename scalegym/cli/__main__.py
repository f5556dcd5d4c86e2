"""`python -m scalegym.cli`."""

from scalegym.cli import entry

raise SystemExit(entry())
