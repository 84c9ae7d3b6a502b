"""``python -m minialexnet <command>``: see ``minialexnet.cli``."""

from .cli import main

raise SystemExit(main())
