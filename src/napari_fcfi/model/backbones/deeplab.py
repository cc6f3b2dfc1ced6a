"""DeepLabV3+ building blocks (isegm layout): separable convs, ASPP, skip projection, heads.

Module and parameter names follow isegm's ``DeepLabV3Plus`` so that the official FCFI
``r101`` checkpoint (``feature_extractor.aspp.concurent.*``, ``feature_extractor.head.block.*``,
``feature_extractor.skip_project.skip_project.*``, top-level ``head.layers.*``) loads with
``strict=True``. The FCFI feedback modules that live inside the feature extractor are added
by :class:`napari_fcfi.model.deeplab.DeeplabModel`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .resnet import ResNetV1s


class SeparableConv2d(nn.Module):
    """Depthwise kxk conv -> pointwise 1x1 conv -> norm -> ReLU, as ``body.{0,1,2,3}``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        padding: int = 1,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(
                in_channels,
                in_channels,
                kernel_size=kernel_size,
                padding=padding,
                groups=in_channels,
                bias=False,
            ),
            nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
            norm_layer(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _conv_bn_relu(
    in_channels: int,
    out_channels: int,
    kernel_size: int = 1,
    dilation: int = 1,
    norm_layer: type[nn.Module] = nn.BatchNorm2d,
) -> nn.Sequential:
    padding = dilation * (kernel_size // 2)
    return nn.Sequential(
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size=kernel_size,
            padding=padding,
            dilation=dilation,
            bias=False,
        ),
        norm_layer(out_channels),
        nn.ReLU(inplace=True),
    )


class ASPPPooling(nn.Module):
    """Image-level branch of ASPP: global average -> 1x1 conv -> norm -> ReLU -> broadcast."""

    def __init__(
        self, in_channels: int, out_channels: int, norm_layer: type[nn.Module] = nn.BatchNorm2d
    ) -> None:
        super().__init__()
        self.gap = nn.Sequential(
            nn.AdaptiveAvgPool2d((1, 1)),
            nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
            norm_layer(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pool = self.gap(x)
        # bilinear upsampling of a 1x1 map is a broadcast (exactly, for any align_corners)
        return pool.expand(-1, -1, x.shape[-2], x.shape[-1])


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1x1, three dilated 3x3 and a pooling branch, projected."""

    def __init__(
        self,
        in_channels: int = 2048,
        out_channels: int = 256,
        atrous_rates: tuple[int, int, int] = (12, 24, 36),
        project_dropout: float = 0.5,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        branches = [_conv_bn_relu(in_channels, out_channels, 1, norm_layer=norm_layer)]
        branches += [
            _conv_bn_relu(in_channels, out_channels, 3, dilation=r, norm_layer=norm_layer)
            for r in atrous_rates
        ]
        branches.append(ASPPPooling(in_channels, out_channels, norm_layer))
        # the official attribute name, misspelling included
        self.concurent = nn.ModuleList(branches)
        project = [
            nn.Conv2d(len(branches) * out_channels, out_channels, kernel_size=1, bias=False),
            norm_layer(out_channels),
            nn.ReLU(inplace=True),
        ]
        if project_dropout > 0:
            project.append(nn.Dropout(project_dropout))
        self.project = nn.Sequential(*project)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([branch(x) for branch in self.concurent], dim=1))


class SkipProject(nn.Module):
    """1x1 conv -> norm -> ReLU projection of the stride-4 features (``skip_project.*``)."""

    def __init__(
        self, in_channels: int, out_channels: int, norm_layer: type[nn.Module] = nn.BatchNorm2d
    ) -> None:
        super().__init__()
        self.skip_project = _conv_bn_relu(in_channels, out_channels, 1, norm_layer=norm_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip_project(x)


class DeepLabHead(nn.Module):
    """Decoder of DeepLabV3+: two separable convs and a 1x1 conv with bias (``block.*``)."""

    def __init__(
        self,
        in_channels: int,
        mid_channels: int,
        out_channels: int,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        self.block = nn.Sequential(
            SeparableConv2d(in_channels, mid_channels, norm_layer=norm_layer),
            SeparableConv2d(mid_channels, mid_channels, norm_layer=norm_layer),
            nn.Conv2d(mid_channels, out_channels, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class SepConvHead(nn.Module):
    """Segmentation head: ``num_layers`` separable convs and a 1x1 output conv (``layers.*``)."""

    def __init__(
        self,
        num_outputs: int,
        in_channels: int,
        mid_channels: int,
        num_layers: int = 2,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            SeparableConv2d(
                in_channels if i == 0 else mid_channels, mid_channels, norm_layer=norm_layer
            )
            for i in range(num_layers)
        ]
        layers.append(nn.Conv2d(mid_channels, num_outputs, kernel_size=1))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class DeepLabV3Plus(nn.Module):
    """ResNet v1s + ASPP + skip projection + DeepLab head, output at stride 4.

    The backbone is dilated by default (output stride 8, as in the released model); ASPP
    runs at stride 8 and its output is upsampled to the stride-4 skip features.

    ``forward(x, additional_features)`` returns the decoder features ``(B, ch, H/4, W/4)``.
    Submodules are created in the official order (backbone, head, skip_project, aspp) so that
    ``state_dict()`` lists its entries in the same order as the released checkpoint.
    """

    skip_channels = 32

    def __init__(
        self,
        backbone: str = "resnet101",
        ch: int = 256,
        project_dropout: float = 0.5,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        backbone_norm_layer: type[nn.Module] | None = None,
        dilated: bool = True,
    ) -> None:
        super().__init__()
        self.backbone = ResNetV1s(
            backbone, dilated=dilated, norm_layer=backbone_norm_layer or norm_layer
        )
        c1_ch, _, _, c4_ch = self.backbone.out_channels
        self.ch = ch
        self.head = DeepLabHead(ch + self.skip_channels, ch, ch, norm_layer=norm_layer)
        self.skip_project = SkipProject(c1_ch, self.skip_channels, norm_layer=norm_layer)
        self.aspp = ASPP(c4_ch, ch, project_dropout=project_dropout, norm_layer=norm_layer)

    def encode(
        self, x: torch.Tensor, additional_features: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised image -> ``(aspp, skip)``, both at stride 4.

        ``aspp`` (B, ch, H/4, W/4) is the ASPP output upsampled bilinearly with
        ``align_corners=True``; ``skip`` (B, 32, H/4, W/4) the projected stage-1 features.
        """
        c1, _, _, c4 = self.backbone(x, additional_features)
        skip = self.skip_project(c1)
        aspp = F.interpolate(
            self.aspp(c4), size=skip.shape[-2:], mode="bilinear", align_corners=True
        )
        return aspp, skip

    def decode(self, aspp: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """The DeepLab head on ``cat(aspp, skip)``: stride-4 decoder features (B, ch, h, w)."""
        return self.head(torch.cat((aspp, skip), dim=1))

    def forward(
        self, x: torch.Tensor, additional_features: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.decode(*self.encode(x, additional_features))
