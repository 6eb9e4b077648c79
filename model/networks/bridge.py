"""The bridge network (paper eq. 8; docs/method.md: the bridge): ``x_K^HF_hat = x_K^LF + phi(x_K^LF)``.

``phi`` is MONAI's Swin UNETR (3 -> 3 channels, no timestep input). Its output layer starts at
zero, so the bridge starts as the identity.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from monai.networks.nets import SwinUNETR
from torch import nn

from . import WINDOW, WINDOW_MULTIPLE



@dataclass(frozen=True)
class BridgeConfig:
    """Hyper-parameters of the Swin UNETR residual ``phi``; JSON-friendly via :meth:`to_dict`."""

    in_channels: int = 3
    out_channels: int = 3
    feature_size: int = 24
    depths: tuple[int, ...] = (2, 2, 2, 2)
    num_heads: tuple[int, ...] = (3, 6, 12, 24)
    window_size: int = 7
    use_v2: bool = False
    window: tuple[int, int, int] = WINDOW  # the sliding window it is evaluated on

    def to_dict(self) -> dict:
        """A JSON-friendly dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> "BridgeConfig":
        """Inverse of :meth:`to_dict`; unknown keys are refused by name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown bridge configuration keys: {', '.join(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


class Bridge(nn.Module):
    """``x + phi(x)`` (eq. 8), the identity at initialisation."""

    def __init__(self, config: BridgeConfig = BridgeConfig()):
        super().__init__()
        self.config = config
        for axis, size in enumerate(config.window):
            if size % WINDOW_MULTIPLE:
                raise ValueError(f"Swin UNETR needs window sizes divisible by {WINDOW_MULTIPLE}; axis {axis} is {size}")
        self.phi = SwinUNETR(
            in_channels=config.in_channels,
            out_channels=config.out_channels,
            feature_size=config.feature_size,
            depths=config.depths,
            num_heads=config.num_heads,
            window_size=config.window_size,
            use_v2=config.use_v2,
            spatial_dims=3,
        )
        output_conv = self.phi.out.conv.conv
        nn.init.zeros_(output_conv.weight)
        nn.init.zeros_(output_conv.bias)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """``phi(x)``: the correction the bridge adds (also the identity loss's term, eq. 9)."""
        return self.phi(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Eq. 8: ``x + phi(x)``."""
        return x + self.residual(x)


class BridgeResidual(nn.Module):
    """A bridge's residual phi(x) as a module's forward: what ``torch.compile`` and an ONNX export take."""

    def __init__(self, bridge: nn.Module):
        super().__init__()
        self.bridge = bridge

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bridge.residual(x)
