"""The training stage of the bridged denoising diffusion (docs/method.md: the diffusion network, the bridge): never part of the inference image.

* :mod:`training.config` - run configurations (TOML/JSON), saved beside the checkpoints
* :mod:`training.data`, :mod:`training.patches` - subjects (ULF-EnC layout or the simulator), their
  one-time preparation, the subject split, and deterministic per-sample patches, timesteps and noise
* :mod:`training.losses` - the losses of eqs. 4-9 (eq. 10 per sample is :func:`model.method.operators.add_noise`)
* :mod:`training.objectives` - both networks' objectives and optimiser steps
* :mod:`training.loop`, :mod:`training.runtime`, :mod:`training.checkpoint`, :mod:`training.monitor`,
  :mod:`training.validation` - the loop, torchrun/DDP, checkpoints and EMA, logging, validation
* :mod:`training.export` - frozen weights + manifest for ``weights/``; :mod:`training.cli` - ``python -m training``

It imports :mod:`model` (and :mod:`simulation`, :mod:`evaluation`); nothing there imports it.
"""
