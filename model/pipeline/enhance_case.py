"""One case end to end: read and check the three contrasts, normalise, enhance, write back."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..execution.budget import TimeBudget
from .enhancer import Enhancer
from ..errors import InputError
from ..volumes.intensity import IntensityMap, denormalise_contrasts, normalise_contrasts
from ..volumes.layouts import CONTRASTS, Case
from ..execution.memory import check_memory, input_bytes
from .qc import CaseQc
from .run_record import build_record, record_bytes, record_path
from ..method.sampler import LevelCallback
from ..volumes.images import (
    GridTolerance,
    array_to_image,
    check_file,
    check_float32_range,
    check_same_grid,
    image_to_array,
    needs_resampling,
    read_volume,
    resample_onto,
    resample_to_spacing,
    spacing_needs_resampling,
    write_volumes,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedCase:
    """A case's input images and the normalised (3, X, Y, Z) network input on the 1 mm grid."""

    images: dict[str, sitk.Image]  # as read, on the input grid
    working: dict[str, sitk.Image]  # on the 1 mm processing grid (the same objects when already 1 mm)
    network_input: np.ndarray
    intensity_maps: list[IntensityMap]  # per contrast, in CONTRASTS order


def check_case_headers(case: Case, tol: GridTolerance = GridTolerance()) -> tuple[tuple[int, ...], int]:
    """From the headers alone: the (x, y, z) processing shape (the largest of the three) and the bytes
    the three files take once read, so that memory is checked before any voxel is read or resampled."""
    headers = [check_file(case.inputs[c], f"{case.case_id} {c}")[1] for c in CONTRASTS]
    shapes = [h.processing_shape if spacing_needs_resampling(h.spacing, tol) else h.size for h in headers]
    return tuple(max(extents) for extents in zip(*shapes)), sum(input_bytes(h.size, h.bytes_per_voxel) for h in headers)


def load_case(case: Case, tol: GridTolerance = GridTolerance()) -> LoadedCase:
    """Read, check and normalise the three contrasts of ``case``."""
    images = {c: read_volume(case.inputs[c], f"{case.case_id} {c}") for c in CONTRASTS}
    check_same_grid(images, tol)
    resample = needs_resampling(images["T1"], tol)
    if resample:
        log.info("%s: spacing %s mm, resampling to 1 mm for processing", case.case_id, images["T1"].GetSpacing())
    working = {c: resample_to_spacing(image) if resample else image for c, image in images.items()}
    arrays = [image_to_array(working[c]) for c in CONTRASTS]
    for contrast, array in zip(CONTRASTS, arrays):
        check_float32_range(array, f"{case.case_id} {contrast}", case.inputs[contrast])
    network_input, maps = normalise_contrasts(arrays, [f"{case.case_id} {c} ({case.inputs[c]})" for c in CONTRASTS])
    for contrast, channel, intensity in zip(CONTRASTS, network_input, maps):
        if not np.all(np.isfinite(channel)):
            raise InputError(f"{case.case_id} {contrast}: {case.inputs[contrast]} spans {intensity.low:g} to "
                             f"{intensity.high:g}, too wide a range for float32 arithmetic; expected MR intensities")
    return LoadedCase(images, working, network_input, maps)


def outputs_of(loaded: LoadedCase, enhanced: np.ndarray, spread: bool = False) -> dict[str, sitk.Image]:
    """Enhanced float32 images on the input intensity scale and exactly the input grid; with ``spread``,
    ``enhanced`` is a standard-deviation map (network units) put on the input scale the same way."""
    outputs = {}
    values_per_contrast = ([m.spread_from_network(v) for m, v in zip(loaded.intensity_maps, enhanced)] if spread
                           else denormalise_contrasts(enhanced, loaded.intensity_maps))
    for contrast, values in zip(CONTRASTS, values_per_contrast):
        image = array_to_image(values, loaded.working[contrast])
        if loaded.working[contrast] is not loaded.images[contrast]:
            image = resample_onto(image, loaded.images[contrast])
        image.CopyInformation(loaded.images[contrast])
        outputs[contrast] = image
    return outputs


def enhance_case(case: Case, enhancer: Enhancer, on_level: LevelCallback | None = None,
                 budget: TimeBudget | None = None, cases_left: int = 1, qc: CaseQc | None = None) -> None:
    """Enhance one case and write its three outputs (all or none); with ``budget``, the sampling is planned
    to this case's share of the time left (``cases_left``: this one and those after it); with ``qc``, then
    its QC report (:mod:`model.pipeline.qc`)."""
    started = time.perf_counter()
    if budget is not None:
        budget.start_case()
    shape, file_bytes = check_case_headers(case)
    check_memory(shape, len(CONTRASTS), enhancer.settings.engine.window, enhancer.windows_per_call,
                 enhancer.device, case.case_id, extra_bytes=file_bytes)
    loaded = load_case(case)
    read_seconds = time.perf_counter() - started
    log.info("%s: loaded and normalised %s in %.1f s", case.case_id, loaded.network_input.shape[1:], read_seconds)
    deadline = None
    if budget is not None:
        deadline = time.monotonic() + budget.case_allowance(cases_left, read_seconds)
    sampled = time.perf_counter()
    enhancement = enhancer.enhance(loaded.network_input, on_level=on_level, deadline=deadline,
                                   on_estimate=qc.on_estimate if qc else None)
    used = enhancement.settings  # after a time budget's choice, with the chain as far as it went
    log.info("%s: %s sampling in %.1f s", case.case_id, used.algorithm.mode.value, time.perf_counter() - sampled)
    written = time.perf_counter()
    outputs = outputs_of(loaded, enhancement.volume)
    record = build_record(case, enhancement, str(enhancer.device), enhancer.precision, enhancer.weights_dir,
                          enhancer.network_names)
    where = record_path(case)
    if where is None:
        log.info("%s: run record (replay with --replay FILE holding this JSON): %s", case.case_id, json.dumps(record))
    volumes = {case.outputs[c]: image for c, image in outputs.items()}
    spread = None  # several samples: the maps on the input grid, made only where they are written or pictured
    if enhancement.spread is not None and (case.uncertainty or qc is not None):
        spread = outputs_of(loaded, enhancement.spread, spread=True)
        volumes |= {path: spread[c] for c, path in case.uncertainty.items()}
    if enhancement.spread is not None and not case.uncertainty:
        log.info("%s: no output socket for the uncertainty maps (ULF_UNCERTAINTY_SOCKET_<C>): not written", case.case_id)
    write_volumes(volumes, {where: record_bytes(record)} if where is not None else None)
    write_seconds = time.perf_counter() - written
    if budget is not None:
        budget.record_io(read_seconds + write_seconds)
    log.info("%s: wrote %s in %.1f s", case.case_id, ", ".join(str(case.outputs[c]) for c in CONTRASTS), write_seconds)
    if qc is not None:
        qc.settings = used.to_dict()  # a time budget may have planned other settings than those asked for
        qc.plan = {"levels": list(enhancement.plan.levels), "unet_windows": enhancement.plan.unet_windows,
                   "bridge_windows": enhancement.plan.bridge_windows}
        for phase, seconds in (("load", read_seconds), ("sample", written - sampled), ("write", write_seconds)):
            qc.phase(phase, seconds)
        log.info("%s: QC report %s", case.case_id, qc.write(loaded.images, outputs, spread))
