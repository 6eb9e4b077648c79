"""Bridged denoising diffusion for ultra-low-field MRI enhancement: the inference library.

Usable without Docker. The pieces, each in its own module:

* :mod:`model.schedule` - the cosine noise schedule (SPEC 3.1) and the levels the sampler visits
* :mod:`model.operators` - AddNoise / RemoveNoise (eqs. 10, 11)
* :mod:`model.unet`, :mod:`model.mp_layers` - the 3D magnitude-preserving epsilon-network (SPEC 3.3)
* :mod:`model.bridge` - the Swin UNETR bridge (eq. 8)
* :mod:`model.sampler` - Algorithm 1 and the ablation modes (SPEC 3.5, 3.6)
* :mod:`model.windows` - whole-volume evaluation through blended windows
* :mod:`model.volume_io`, :mod:`model.intensity`, :mod:`model.layouts`, :mod:`model.case` - files in and out
* :mod:`model.settings` - what Algorithm 1 computes and how it is evaluated, and the presets;
  :mod:`model.options` - the one override syntax and the shared command-line arguments
* :mod:`model.cost` - what a configuration costs on a volume, in network windows
* :mod:`model.engine` - networks on a device through windows (batching, compilation, OOM retry)
* :mod:`model.weights` - the weights manifest (networks and their schedule); :mod:`model.calibration` - what
  the weights were measured to do (the ``auto`` preset, the planner's ladder, their trained timesteps)
* :mod:`model.budget` - a run planned to a time budget; :mod:`model.run_record` - the record beside every
  output set, and ``--replay``
* :mod:`model.enhancer` - the pipeline; :mod:`model.cli` - the command line
"""
