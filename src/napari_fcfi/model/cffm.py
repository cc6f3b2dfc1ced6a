"""CFFM: the Collaborative Feedback Fusion Module of FCFI (Wei et al., CVPR 2023, Sec. 3.3).

API (stable; the DeepLab and FCFI-Lite models build on it)::

    cffm = CollaborativeFusionModule(in_channels, mid_channels)
    features2, fb2 = cffm(features, feedback, gate)

* ``features`` (B, C, h, w) backbone features (``in_channels`` = C);
* ``feedback`` (B, 1, h, w) the FFCM output (a probability map) at feature resolution;
* ``gate`` a float (0 on the first click, 1 afterwards) or a (B,) tensor;
* returns the updated features (B, C, h, w) and the updated feedback (B, 1, h, w), a
  probability map.

What it computes:

1. ``g = feature_conv(features)``: 1x1 conv-BN-ReLU to ``mid_channels``;
2. ``fb2 = sigmoid(fusion_encoder(cat(feedback, g)))``: conv3x3-BN-ReLU, two depthwise-separable
   conv-BN-ReLU and a 3x3 conv to one channel;
3. ``r = residual_predictor(cat(features, fb2))``: 1x1 conv-BN-ReLU to one channel;
4. ``features2 = features + gate * r`` (the one-channel residual is broadcast over channels).
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import ConvBNAct, SepConvBNAct

__all__ = ["CollaborativeFusionModule"]


class CollaborativeFusionModule(nn.Module):
    """CFFM; see the module docstring for the API and the exact computation."""

    def __init__(
        self,
        in_channels: int,
        mid_channels: int,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        self.feature_conv = ConvBNAct(in_channels, mid_channels, 1, norm_layer=norm_layer)
        self.fusion_encoder = nn.Sequential(
            ConvBNAct(mid_channels + 1, mid_channels, 3, norm_layer=norm_layer),
            SepConvBNAct(mid_channels, mid_channels, norm_layer=norm_layer),
            SepConvBNAct(mid_channels, mid_channels, norm_layer=norm_layer),
            nn.Conv2d(mid_channels, 1, kernel_size=3, padding=1),
        )
        self.residual_predictor = ConvBNAct(in_channels + 1, 1, 1, norm_layer=norm_layer)

    def forward(
        self, features: torch.Tensor, feedback: torch.Tensor, gate: float | torch.Tensor = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if feedback.shape[-2:] != features.shape[-2:]:
            raise ValueError(
                f"feedback {tuple(feedback.shape)} must match the features' spatial size "
                f"{tuple(features.shape[-2:])}"
            )
        g = self.feature_conv(features)
        fb2 = torch.sigmoid(self.fusion_encoder(torch.cat([feedback, g], dim=1)))
        residual = self.residual_predictor(torch.cat([features, fb2], dim=1))
        if isinstance(gate, torch.Tensor) and gate.ndim == 1:
            gate = gate.to(features.dtype).view(-1, 1, 1, 1)
        return features + gate * residual, fb2
