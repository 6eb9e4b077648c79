"""The foreign simulator: a second, independent family of paired 3 T / 64 mT heads, for evaluation only.

It shares with the training simulator only the input anatomy (the ICBM template's tissue maps, read by
``simulation.anatomy.load_template``) and the :class:`simulation.subject.SimulatedSubject` type the
benchmarks read. Its signal model, tissue values, deformation, head model, lesions and 64 mT acquisition
are its own (docs/data-and-metric.md, "The foreign held-out set"); nothing here imports the training
simulator's signal, parameter, acquisition, deformation, subject-generation or variation code. It is never
used for training or for choosing anything: it only reports how the networks do on heads from a
simulator they never saw, the closest stand-in here for scans from a real scanner.

``generate_foreign_subject(seed, shape_scale=1.0)`` returns one subject (about the training simulator's time).
"""

from simulation.foreign.subject import generate_foreign_subject

__all__ = ["generate_foreign_subject"]
