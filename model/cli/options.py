"""Options: settings overrides from text, and the command-line arguments every command shares.

One override syntax for the whole project: ``key=value`` items (several joined by commas), values in
TOML syntax (``8``, ``0.5``, ``[64, 64, 32]``, ``true``; a bare word is a string), typed and checked
by the field they set: a field of :class:`model.config.settings.AlgorithmSettings` or
:class:`model.config.settings.EngineSettings`. A configuration is ``preset:NAME[,key=value,...]`` or
``key=value,...`` on a base preset. The process command's flags (``--level-stride 8``), the bench's and
the ablation's configurations and the training stage's ``--set`` all go through here.
"""

from __future__ import annotations

import argparse
import tomllib
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..execution.device import CUDA_INDEX
from ..networks import WINDOW, WINDOW_MULTIPLE
from ..config.settings import CHOICES, CONCERNS, PRESETS, SamplerSettings

# The shipped weights: inside an installed package (pyproject.toml puts weights/ there as shipped_weights), else the
# repository's weights/ folder beside model/.
_INSTALLED_WEIGHTS = Path(__file__).resolve().parents[1] / "shipped_weights"
DEFAULT_WEIGHTS = _INSTALLED_WEIGHTS if _INSTALLED_WEIGHTS.is_dir() else Path(__file__).resolve().parents[2] / "weights"
FIELD_TYPES: dict[str, Any] = {name: hint for cls in CONCERNS.values()
                               for name, hint in typing.get_type_hints(cls).items()}


def parse_value(text: str) -> Any:
    """A value in TOML syntax; anything TOML does not read is the string itself."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text.strip()


def split_assignment(item: str) -> tuple[str, str]:
    """``key=value`` -> (key, value text)."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"expected KEY=VALUE, got {item!r}")
    return key.strip(), text


def typed_setting(name: str, value: Any) -> Any:
    """``value`` (text, or already parsed) as the type of setting ``name``; a refused value raises ValueError."""
    if name not in FIELD_TYPES:
        raise ValueError(f"unknown setting '{name}' (known: {', '.join(FIELD_TYPES)})")
    if name in CHOICES:  # a word; the settings turn it into their enum
        word = str(getattr(value, "value", value)).strip()
        if word not in CHOICES[name]:
            raise ValueError(f"setting '{name}' must be one of {', '.join(CHOICES[name])}, got {word!r}")
        return word
    kind = _kind(FIELD_TYPES[name])
    value = parse_value(value) if isinstance(value, str) else value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is tuple and isinstance(value, list):
        value = tuple(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"setting '{name}' takes a value of type {kind.__name__}, got {value!r}")
    return value


def _kind(hint: Any) -> type:
    """The field's type without ``None``; ``tuple`` for ``tuple[int, ...]``."""
    if typing.get_origin(hint) is tuple:
        return tuple
    options = [a for a in typing.get_args(hint) if a is not type(None)]
    return _kind(options[0]) if options else hint


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["level_stride=8,refinements=2", "overlap=0.5"]`` -> typed changes for :meth:`SamplerSettings.updated`.

    A comma inside brackets belongs to the value (``window=[64, 64, 32]``)."""
    changes: dict[str, Any] = {}
    for item in items:
        for part in _split_top_level(item):
            key, text = split_assignment(part)
            changes[key] = typed_setting(key, text)
    return changes


def _split_top_level(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in (p.strip() for p in parts) if p]


def configured(spec: str, base: str = "paper") -> SamplerSettings:
    """``key=value,...`` on preset ``base``, or ``preset:NAME[,key=value,...]`` on preset NAME."""
    if spec.startswith("preset:"):
        base, _, spec = spec.split(":", 1)[1].partition(",")
    if base not in PRESETS:
        raise ValueError(f"unknown preset '{base}'; known presets: {', '.join(PRESETS)}")
    return PRESETS[base].updated(**parse_overrides([spec]))


def setting_argument(group, flag: str, name: str, help: str) -> None:
    """``flag`` setting field ``name`` (``dest=name``), typed and restricted by the field."""
    kwargs: dict[str, Any] = {"dest": name, "help": help, "type": lambda text: typed_setting(name, text)}
    if name in CHOICES:
        kwargs.update(choices=CHOICES[name], type=str)
    if name == "window":
        kwargs.update(nargs=3, metavar=("X", "Y", "Z"), type=int)
    group.add_argument(flag, **kwargs)


def device_name(text: str) -> str:
    """Argument type of ``--device``: auto, cpu, cuda or cuda:N (whether that GPU exists is
    :func:`model.execution.device.select_device`'s to say)."""
    if text in ("auto", "cpu", "cuda") or CUDA_INDEX.match(text):
        return text
    raise argparse.ArgumentTypeError(f"invalid device '{text}': expected auto, cpu, cuda or cuda:N (N a GPU index)")


def add_device(parser, default: str = "auto") -> None:
    """``--device auto|cpu|cuda|cuda:N``."""
    parser.add_argument("--device", default=default, type=device_name,
                        help=f"compute device: auto, cpu, cuda or cuda:N (default {default})")


def add_weights(parser, default: Path | None = DEFAULT_WEIGHTS, help: str | None = None) -> None:
    """``--weights DIR``: a folder with manifest.json."""
    parser.add_argument("--weights", type=Path, default=default,
                        help=help or f"weights folder with manifest.json (default {default})")


def add_window(parser, help: str = "window size (default the preset's: 128 128 32)") -> None:
    """``--window X Y Z``: the sliding window."""
    setting_argument(parser, "--window", "window", help)


def add_crop(parser, help: str = "enhance a centred crop of each normalised head (default: the whole head)") -> None:
    """``--crop X Y Z``: a centred crop of each volume."""
    parser.add_argument("--crop", type=int, nargs=3, metavar=("X", "Y", "Z"), help=help)


def add_subject_seed(parser, default: int | None, help: str) -> None:
    """``--subject-seed N``: the simulated subject a benchmark runs on (``--seed`` is the sampler's noise seed
    everywhere, as in ``process.py``)."""
    parser.add_argument("--subject-seed", type=int, default=default, help=help)


def window_of(args: argparse.Namespace) -> tuple[int, int, int] | None:
    """``--window`` as a tuple, or None."""
    return tuple(args.window) if getattr(args, "window", None) else None


# Option values checked against what the code can take, before any file is read: the settings validate
# themselves; these checks need more than one setting, or a network's constraint.
SEED_RANGE = (0, 2**64 - 1)  # torch.Generator.manual_seed and numpy's SeedSequence both take these


def check_options(settings: SamplerSettings) -> None:
    """Refuse a seed out of range, and a window the bridge network cannot take."""
    low, high = SEED_RANGE
    algorithm, window = settings.algorithm, settings.engine.window
    if not low <= algorithm.seed <= high:
        raise UsageError(f"--seed must be in {low}..2**64-1, got {algorithm.seed}")
    if algorithm.mode.uses_bridge and any(size % WINDOW_MULTIPLE for size in window):
        raise UsageError(f"--window {' '.join(map(str, window))}: the bridge (Swin UNETR) needs every "
                         f"window size divisible by {WINDOW_MULTIPLE}, e.g. {' '.join(map(str, WINDOW))}")
