"""`python -m studio ...` is the same as the `rlhf-studio` command."""

from studio.cli import main

raise SystemExit(main())
