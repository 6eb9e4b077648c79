"""Speed benchmark of the enhancement (issue 6): ``python -m bench`` and ``python -m bench.quality``.

``python -m bench`` times one whole-volume evaluation of eps_theta over a full simulated 1 mm head
for the naive baseline (MONAI's ``sliding_window_inference``, one window per batch, float32, all
recomputed every time) and for the fast engine of :mod:`model.execution.engine` in several configurations,
and costs each sampler preset per case. ``python -m bench.quality`` measures the quality-time
curve of the presets and levers on held-out simulated subjects, ``python -m bench.ablation`` the
paper's ablation table (both through :mod:`bench.sweep`). ``model`` never imports this package.
"""
