"""`python -m scalegym.cli`."""

from scalegym.cli import main

raise SystemExit(main())
