#!/usr/bin/env python3
"""Container entry point: thin glue over the ``model`` library (see ``python process.py --help``)."""

from model.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
