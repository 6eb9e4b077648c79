"""What a run computes and how: the settings (Algorithm 1's K, J and levels; the engine's windows, overlap and
precision), their validation (each check in one place), and the named presets."""
