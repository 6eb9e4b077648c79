"""The command line (``process.py``, ``python -m model``, ``ulf-enhance``): arguments, environment variables,
option syntax, cohorts of subjects and their sharding over processes."""
