"""The README's demo: one simulated subject enhanced through ``process.py``, scored and pictured."""
