"""A weights folder: its manifest (networks, checksums, schedule, trained timesteps, intensity normalisation),
loading the networks, and its calibration (what the weights were measured to do: the ``auto`` preset)."""
