"""Bridged denoising diffusion for ultra-low-field MRI enhancement: the inference library.

Usable without Docker. The pieces, each in its own module:

* :mod:`model.schedule` - the cosine noise schedule (SPEC 3.1)
* :mod:`model.operators` - AddNoise / RemoveNoise (eqs. 10, 11)
* :mod:`model.unet`, :mod:`model.mp_layers` - the 3D magnitude-preserving epsilon-network (SPEC 3.3)
* :mod:`model.bridge` - the Swin UNETR bridge (eq. 8)
* :mod:`model.sampler` - Algorithm 1 and the ablation modes (SPEC 3.5, 3.6)
* :mod:`model.windows` - whole-volume evaluation through blended windows
* :mod:`model.volume_io`, :mod:`model.intensity`, :mod:`model.layouts`, :mod:`model.case` - files in and out
* :mod:`model.weights` - the weights manifest; :mod:`model.enhancer`, :mod:`model.cli` - the glue
"""
