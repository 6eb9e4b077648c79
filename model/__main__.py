"""``python -m model``: the same as ``process.py``."""

from .cli.main import main

raise SystemExit(main())
