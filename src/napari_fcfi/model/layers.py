"""Small building blocks shared by FFCM, CFFM and the model wrappers.

The attribute names (``conv``/``bn``, ``conv3x3``/``conv1x1``/``bn``, ``maps_transform.{0,2,3}``)
reproduce the official FCFI ``state_dict`` layout so that released checkpoints load strictly.
"""

from __future__ import annotations

import torch
from torch import nn


def make_activation(kind: str) -> nn.Module:
    """``"relu"`` or ``"leaky_relu"`` (negative slope 0.2, as isegm uses it)."""
    if kind == "relu":
        return nn.ReLU(inplace=True)
    if kind == "leaky_relu":
        return nn.LeakyReLU(negative_slope=0.2, inplace=True)
    if kind in (None, "none", "identity"):
        return nn.Identity()
    raise ValueError(f"unknown activation {kind!r}; use 'relu', 'leaky_relu' or 'none'")


class ConvBNAct(nn.Module):
    """``conv`` (with bias) -> ``bn`` -> activation."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        activation: str = "relu",
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=True
        )
        self.bn = norm_layer(out_channels)
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class SepConvBNAct(nn.Module):
    """Depthwise ``conv3x3`` -> pointwise ``conv1x1`` (both with bias) -> ``bn`` -> activation."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        activation: str = "relu",
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        self.conv3x3 = nn.Conv2d(
            in_channels, in_channels, 3, padding=1, groups=in_channels, bias=True
        )
        self.conv1x1 = nn.Conv2d(in_channels, out_channels, 1, bias=True)
        self.bn = norm_layer(out_channels)
        self.act = make_activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv1x1(self.conv3x3(x))))


class ScaleLayer(nn.Module):
    """Multiplies its input by ``|scale|`` (a learnable scalar, isegm's ``ScaleLayer``)."""

    def __init__(self, init_value: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full((1,), init_value, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.abs()


def make_maps_transform(in_channels: int, use_leaky_relu: bool = True) -> nn.Sequential:
    """Click-map encoder added to the backbone stem (``maps_transform.{0,2,3}``).

    1x1 conv to 16 channels, (leaky) ReLU, 3x3 stride-2 conv to 64 channels, ``|scale|``
    (initialised to 0.05).
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, 16, kernel_size=1),
        nn.LeakyReLU(negative_slope=0.2) if use_leaky_relu else nn.ReLU(inplace=True),
        nn.Conv2d(16, 64, kernel_size=3, stride=2, padding=1),
        ScaleLayer(init_value=0.05),
    )
