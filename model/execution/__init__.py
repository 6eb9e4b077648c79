"""How the settings run on a device: the per-case plan (levels, window grids, cost), sliding windows with Gaussian
blending, the engine that puts windows through the networks, precision, memory checks, device choice and the
time-budget planner."""
