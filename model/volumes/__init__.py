"""Volumes in and out: the input/output layouts (Grand Challenge, ULF-EnC, explicit files), reading and checking
files before their voxels are trusted, resampling to the 1 mm processing grid, the intensity normalisation, and
writing every output set atomically. Nothing here knows about networks or sampling."""
