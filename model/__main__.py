"""``python -m model``: the same as ``process.py``."""

from model.cli import main

raise SystemExit(main())
