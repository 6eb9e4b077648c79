"""Bridged denoising diffusion for ultra-low-field MRI enhancement: the inference library, usable without Docker.

Its rooms, from the bottom floor up (a room imports only rooms below it; docs/architecture.md):

* ``errors`` - the exceptions, each with its exit status
* ``method`` - the paper's equations: noise schedule, AddNoise / RemoveNoise, Algorithm 1 and the sampler registry
* ``networks`` - the 3D magnitude-preserving U-Net (eps_theta) and the Swin UNETR bridge
* ``volumes`` - layouts, reading and checking files, resampling, intensities, atomic writing
* ``config`` - the settings (validated once) and the presets
* ``execution`` - the per-case plan, sliding windows, the engine, precision, memory, devices, the time budget
* ``weights`` - the weights manifest, loading networks, the calibration behind ``--preset auto``
* ``pipeline`` - the enhancer, one case end to end, run records, output safety, QC reports
* ``cli`` - the command line (``process.py``, ``python -m model``, ``ulf-enhance``)

Nothing is imported here, so that a program needing one room (the evaluation image reads only the layouts) does not
load torch.
"""

__version__ = "0.1.0"  # the package version (pyproject.toml reads it; ``ulf-enhance --version`` prints it)
