"""Frozen network weights and their manifest (``weights/manifest.json``).

The manifest records the noise schedule the networks were trained with (``"schedule": {"name":
"cosine", "timesteps": 1000}``; a manifest without it is read as that default, logged) and lists, per network (``diffusion``, ``bridge``): the file, its sha256, the
architecture and configuration, whether it is trained, and its provenance. Each ``.pt`` file holds
``{"architecture", "config", "state_dict"}``. Loading checks the file exists, its checksum, that the
file's configuration equals the manifest's, and that the weights fit the architecture; each
failure says plainly what is wrong. :func:`save_networks` writes the same format (used by the
training stage's export and by the tests).

The manifest also records how the networks see intensities (``"intensity"``: the input percentiles,
the input clip, the ceiling the training targets were clipped to and the output clip; see
:func:`model.volumes.intensity.normalisation_record`). Loading a network or the schedule refuses weights
whose record differs from what this code implements; a manifest without the block (older ones) is
read as this code's normalisation, logged once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import WeightsError
from ..networks import NETWORK_NAMES
from ..volumes.intensity import normalisation_record
from ..volumes.remap import REMAP_FORMAT, REMAP_KEY, OutputRemap
from ..method.schedule import DEFAULT_TIMESTEPS, NoiseSchedule, cosine_schedule, named_schedule

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
INTENSITY = "intensity"  # the manifest's normalisation block
_without_intensity_logged: set[str] = set()  # manifests already logged as recording no normalisation


def _architectures() -> dict[str, tuple[type, type]]:
    """Architecture name -> (config class, module class)."""
    from ..networks.bridge import Bridge, BridgeConfig
    from ..networks.unet import MPUNet3D
    from ..networks.unet_config import UNetConfig

    return {"MPUNet3D": (UNetConfig, MPUNet3D), "SwinUNETRBridge": (BridgeConfig, Bridge)}


def architecture_name(network: nn.Module) -> str:
    """The manifest name of a network's architecture."""
    for name, (_, module_class) in _architectures().items():
        if isinstance(network, module_class):
            return name
    raise TypeError(f"no manifest architecture for {type(network).__name__}")


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class NetworkEntry:
    """One network's line in the manifest."""

    name: str
    file: str
    sha256: str
    architecture: str
    config: dict[str, Any]
    trained: bool
    provenance: dict[str, Any]


def read_manifest(directory: Path) -> dict[str, Any]:
    """Parse ``directory/manifest.json`` with a clear error when it is missing or malformed."""
    path = Path(directory) / MANIFEST_NAME
    try:
        found = path.is_file()
    except (OSError, ValueError) as error:  # a path the system cannot even look up (too long, a NUL byte)
        shown = str(directory) if len(str(directory)) <= 80 else f"{str(directory)[:60]}... ({len(str(directory))} characters)"
        reason = getattr(error, "strerror", None) or str(error)
        raise WeightsError(f"cannot use the weights folder {shown}: {reason}; expected --weights DIR "
                           f"(or ULF_WEIGHTS) naming a folder with a {MANIFEST_NAME}") from None
    if not found:
        raise WeightsError(f"no weights manifest at {path}; pass --weights DIR with a {MANIFEST_NAME}")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise WeightsError(f"{path} is not valid JSON: {error}") from None
    except OSError as error:
        raise WeightsError(f"cannot read {path}: {error.strerror}") from None
    if (not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION
            or not isinstance(manifest.get("networks"), dict)):
        raise WeightsError(f"{path}: expected a JSON object with format_version {FORMAT_VERSION} and a 'networks' table")
    return manifest


def network_entry(manifest: dict[str, Any], name: str, directory: Path) -> NetworkEntry:
    """The manifest entry of network ``name``."""
    where = Path(directory) / MANIFEST_NAME
    entry = manifest["networks"].get(name)
    if entry is None:
        raise WeightsError(f"{where} has no '{name}' network")
    if not isinstance(entry, dict):
        raise WeightsError(f"{where}: the '{name}' entry is a JSON {type(entry).__name__}; expected an object")
    try:
        parsed = NetworkEntry(name=name, **entry)
    except TypeError as error:  # unknown or missing keys; a key may hold any character, so quoted
        raise WeightsError(f"{where}: malformed '{name}' entry ({ascii(str(error))[1:-1]})") from None
    for field, kind in (("file", str), ("sha256", str), ("architecture", str), ("config", dict)):
        value = getattr(parsed, field)
        if not isinstance(value, kind) or (kind is str and not value):
            raise WeightsError(f"{where}: the '{name}' entry has {field} = {json.dumps(value)}; "
                               f"expected {'a non-empty string' if kind is str else 'an object'}")
    folder = Path(directory).resolve()
    if Path(parsed.file).is_absolute() or folder not in (folder / parsed.file).resolve().parents:
        raise WeightsError(f"{where}: the '{name}' file '{parsed.file}' lies outside the weights folder {folder}; "
                           "expected a file inside it")
    return parsed


def check_intensity(manifest: dict[str, Any], directory: Path) -> None:
    """Refuse a manifest whose recorded intensity normalisation differs from :func:`normalisation_record`.

    A manifest without the block (written before it existed) is read as this code's normalisation, logged
    once per manifest.
    """
    where = Path(directory) / MANIFEST_NAME
    current = normalisation_record()
    recorded = manifest.get(INTENSITY)
    if recorded is None:
        key = str(where.resolve())
        if key not in _without_intensity_logged:
            _without_intensity_logged.add(key)
            log.info("%s records no intensity normalisation: assuming this code's %s", where,
                     json.dumps(current, sort_keys=True))
        return
    if recorded == current:
        return
    if isinstance(recorded, dict):
        differing = sorted(k for k in recorded.keys() | current.keys() if recorded.get(k) != current.get(k))
        detail = "; ".join(f"{k}: {json.dumps(recorded.get(k))} vs {json.dumps(current.get(k))}" for k in differing)
    else:
        detail = f"'{INTENSITY}' is a JSON {type(recorded).__name__}, not an object"
    raise WeightsError(
        f"{where}: the networks were trained with intensity normalisation {json.dumps(recorded, sort_keys=True)}, "
        f"but this code implements {json.dumps(current, sort_keys=True)} (weights vs code: {detail}); "
        "use weights trained with this code's normalisation, or the code that trained them"
    )


def load_schedule(directory: Path) -> NoiseSchedule:
    """The noise schedule the manifest in ``directory`` records (older manifests: cosine, T = 1000, logged);
    refuses weights trained with another intensity normalisation (:func:`check_intensity`)."""
    manifest = read_manifest(directory)
    check_intensity(manifest, directory)
    recorded = manifest.get("schedule")
    if recorded is None:
        log.info("%s records no noise schedule: using cosine, T = %d", Path(directory) / MANIFEST_NAME, DEFAULT_TIMESTEPS)
        return cosine_schedule(DEFAULT_TIMESTEPS)
    try:
        return named_schedule(recorded["name"], int(recorded["timesteps"]))
    except (TypeError, KeyError, ValueError) as error:
        raise WeightsError(f"{Path(directory) / MANIFEST_NAME}: malformed 'schedule' {recorded!r} ({error}); "
                           "expected {\"name\": \"cosine\", \"timesteps\": 1000}") from None


def trained_timesteps(directory: Path, name: str) -> tuple[int, int] | None:
    """The timesteps network ``name`` was trained on, from its manifest provenance (None when not recorded).

    The diffusion network: ``diffusion.t_min..t_max`` (1..T for runs before those keys); the bridge:
    ``bridge.t_min..t_max``. Inference outside them still runs, with a warning (:mod:`model.pipeline.enhancer`).
    """
    try:
        entry = read_manifest(directory)["networks"][name]
        training = entry["provenance"][name]["training_config"]
        section = training[name]
        default_max = int(section.get("timesteps", DEFAULT_TIMESTEPS))
        return int(section.get("t_min", 1)), int(section.get("t_max", default_max))
    except (KeyError, TypeError, ValueError, WeightsError):
        return None


def load_network(directory: Path, name: str, device: torch.device | str = "cpu") -> nn.Module:
    """Load, verify and return network ``name`` in eval mode with gradients off (refusing weights trained with
    another intensity normalisation: :func:`check_intensity`)."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    entry = network_entry(manifest, name, directory)
    check_intensity(manifest, directory)
    path = directory / entry.file
    if not path.is_file():
        raise WeightsError(f"{name} weights file missing: {path} (listed in {directory / MANIFEST_NAME})")
    actual = sha256_of(path)
    if actual != entry.sha256:
        raise WeightsError(
            f"{name} weights {path} fail their checksum: sha256 {actual}, manifest says {entry.sha256} "
            "(truncated, corrupt or replaced file)"
        )
    architectures = _architectures()
    if entry.architecture not in architectures:
        raise WeightsError(f"{name}: unknown architecture '{entry.architecture}' (known: {', '.join(architectures)})")
    config_class, module_class = architectures[entry.architecture]
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many types for a bad file
        raise WeightsError(f"{name}: cannot load {path}: {error}") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise WeightsError(f"{name}: {path} holds a {type(checkpoint).__name__}; expected a mapping with "
                           "'architecture', 'config' and a 'state_dict' mapping")
    if checkpoint.get("architecture") != entry.architecture or checkpoint.get("config") != entry.config:
        raise WeightsError(
            f"{name}: the configuration stored in {path} does not match {directory / MANIFEST_NAME} "
            f"(file: {checkpoint.get('architecture')} {checkpoint.get('config')}; "
            f"manifest: {entry.architecture} {entry.config})"
        )
    try:
        network = module_class(config_class.from_dict(entry.config))
        network.load_state_dict(checkpoint["state_dict"], strict=True)
    except (ValueError, TypeError, RuntimeError, KeyError) as error:
        first_line = str(error).strip().splitlines()[0]
        raise WeightsError(f"{name}: the weights in {path} do not fit its configuration: {first_line}") from None
    return network.to(device).eval().requires_grad_(False)


def save_networks(
    directory: Path,
    networks: dict[str, nn.Module],
    *,
    trained: bool,
    provenance: dict[str, Any],
    schedule: NoiseSchedule | None = None,
) -> Path:
    """Write each network to ``directory/<name>.pt`` and a manifest listing them, the noise ``schedule``
    they were trained with (default: cosine, T = 1000) and this code's intensity normalisation
    (``"intensity"``: :func:`model.volumes.intensity.normalisation_record`); returns the manifest path.

    Files are written atomically. ``trained`` must be False for randomly initialised networks:
    the command line warns loudly when it loads such weights.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    entries = {}
    for name, network in networks.items():
        architecture = architecture_name(network)
        config = network.config.to_dict()
        path = directory / f"{name}.pt"
        partial = path.with_name(f".{path.name}.partial")
        state = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
        torch.save({"architecture": architecture, "config": config, "state_dict": state}, partial)
        os.replace(partial, path)
        entries[name] = {
            "file": path.name,
            "sha256": sha256_of(path),
            "architecture": architecture,
            "config": config,
            "trained": trained,
            "provenance": provenance,
        }
    manifest_path = directory / MANIFEST_NAME
    partial = manifest_path.with_name(f".{MANIFEST_NAME}.partial")
    schedule = cosine_schedule() if schedule is None else schedule
    recorded = {"name": schedule.name, "timesteps": schedule.num_timesteps}
    partial.write_text(json.dumps({"format_version": FORMAT_VERSION, "schedule": recorded,
                                   INTENSITY: normalisation_record(), "networks": entries}, indent=2) + "\n")
    os.replace(partial, manifest_path)
    return manifest_path


def untrained_networks(directory: Path, names: tuple[str, ...] = NETWORK_NAMES) -> list[str]:
    """Names among ``names`` whose manifest entry says they are not trained."""
    manifest = read_manifest(directory)
    entries = manifest["networks"]
    return [n for n in names if not (isinstance(entries.get(n), dict) and entries[n].get("trained", False) is True)]


def load_output_remap(directory: Path | None) -> OutputRemap | None:
    """The weights' output remap (:mod:`model.volumes.remap`), or None when the manifest has none. A remap fitted
    for other networks (their checksums differ from the manifest's) is not used, and the log says so."""
    if directory is None:
        return None
    manifest = read_manifest(directory)
    block = manifest.get(REMAP_KEY)
    if block is None:
        return None
    where = str(Path(directory) / MANIFEST_NAME)
    if not isinstance(block, dict) or block.get("format") != REMAP_FORMAT:
        raise WeightsError(f"{where}: '{REMAP_KEY}' is not a format-{REMAP_FORMAT} block")
    networks = {name: entry.get("sha256") for name, entry in manifest.get("networks", {}).items()}
    if block.get("networks_sha256") != networks:
        log.warning("%s: the output remap was fitted for other networks (checksums differ): not used", where)
        return None
    return OutputRemap.from_record(block.get("knots"), where)
