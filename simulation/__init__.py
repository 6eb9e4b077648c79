"""Paired synthetic 3 T / 64 mT T1w, T2w and FLAIR heads from real anatomy (docs/data-and-metric.md).

``generate_subject(seed)`` simulates one subject in memory; ``write_subject(root, id, subject)``
writes it in the ULF-EnC layout; ``python -m simulation --out ROOT --subjects N --seed S`` does both.
"""

from simulation.parameters import CONTRASTS
from simulation.subject import LABEL_NAMES, SimulatedSubject, generate_subject, subject_variation
from simulation.writer import write_subject

__all__ = ["CONTRASTS", "LABEL_NAMES", "SimulatedSubject", "generate_subject", "subject_variation", "write_subject"]
