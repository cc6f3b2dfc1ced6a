"""ResNet v1b/v1s backbones (GluonCV layout, as used by isegm's DeepLabV3+).

``v1b`` puts the stride of a bottleneck on its 3x3 convolution; ``v1s`` additionally
replaces the 7x7 stem by a "deep stem" of three 3x3 convolutions (``conv1.0``, ``conv1.3``,
``conv1.6``) whose last one is followed by ``bn1``. The module and parameter names follow
that layout so that the official FCFI ``r101`` checkpoint loads with ``strict=True``.

Only what the segmentation networks use is built (no average pooling or classifier), and the
forward pass accepts ``additional_features``: the encoded click maps, added to the stem
output after its ReLU (zero-padded along channels) and before the max-pool.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: blocks per stage for the supported depths
RESNET_LAYERS = {
    "resnet50": (3, 4, 6, 3),
    "resnet101": (3, 4, 23, 3),
    "resnet152": (3, 8, 36, 3),
}


class BottleneckV1b(nn.Module):
    """1x1 -> 3x3 (stride, dilation) -> 1x1 bottleneck with a projection shortcut if needed."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = norm_layer(planes)
        self.conv2 = nn.Conv2d(
            planes,
            planes,
            kernel_size=3,
            stride=stride,
            padding=dilation,
            dilation=dilation,
            bias=False,
        )
        self.bn2 = norm_layer(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = norm_layer(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


class ResNetV1s(nn.Module):
    """ResNet v1s feature extractor returning the four stage outputs ``(c1, c2, c3, c4)``.

    Parameters
    ----------
    depth:
        ``"resnet50"``, ``"resnet101"`` or ``"resnet152"``.
    stem_width:
        width of the deep stem's first two convolutions; the stem outputs ``2 * stem_width``
        channels (64 gives the official ``resnet101_v1s``).
    dilated:
        keep stages 3 and 4 at stride 8 with dilations 2 and 4 (output stride 8) instead of
        striding them (output stride 32). The official DeepLabV3+ uses the dilated form.
    norm_layer:
        normalisation layer class (``nn.BatchNorm2d`` in the released models).
    """

    def __init__(
        self,
        depth: str = "resnet101",
        stem_width: int = 64,
        dilated: bool = True,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        if depth not in RESNET_LAYERS:
            raise ValueError(
                f"unknown ResNet depth {depth!r}; expected one of {sorted(RESNET_LAYERS)}"
            )
        layers = RESNET_LAYERS[depth]
        self.inplanes = 2 * stem_width
        self.conv1 = nn.Sequential(
            nn.Conv2d(3, stem_width, kernel_size=3, stride=2, padding=1, bias=False),
            norm_layer(stem_width),
            nn.ReLU(inplace=True),
            nn.Conv2d(stem_width, stem_width, kernel_size=3, stride=1, padding=1, bias=False),
            norm_layer(stem_width),
            nn.ReLU(inplace=True),
            nn.Conv2d(stem_width, 2 * stem_width, kernel_size=3, stride=1, padding=1, bias=False),
        )
        self.bn1 = norm_layer(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0], norm_layer=norm_layer)
        self.layer2 = self._make_layer(128, layers[1], stride=2, norm_layer=norm_layer)
        if dilated:
            self.layer3 = self._make_layer(256, layers[2], dilation=2, norm_layer=norm_layer)
            self.layer4 = self._make_layer(512, layers[3], dilation=4, norm_layer=norm_layer)
        else:
            self.layer3 = self._make_layer(256, layers[2], stride=2, norm_layer=norm_layer)
            self.layer4 = self._make_layer(512, layers[3], stride=2, norm_layer=norm_layer)

    @property
    def out_channels(self) -> tuple[int, int, int, int]:
        e = BottleneckV1b.expansion
        return (64 * e, 128 * e, 256 * e, 512 * e)

    def _make_layer(
        self,
        planes: int,
        blocks: int,
        stride: int = 1,
        dilation: int = 1,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
    ) -> nn.Sequential:
        out = planes * BottleneckV1b.expansion
        downsample = None
        if stride != 1 or self.inplanes != out:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, out, kernel_size=1, stride=stride, bias=False),
                norm_layer(out),
            )
        # GluonCV: the first block of a dilated stage uses half the stage's dilation
        first_dilation = 1 if dilation in (1, 2) else dilation // 2
        blocks_ = [
            BottleneckV1b(self.inplanes, planes, stride, first_dilation, downsample, norm_layer)
        ]
        self.inplanes = out
        blocks_ += [
            BottleneckV1b(out, planes, dilation=dilation, norm_layer=norm_layer)
            for _ in range(1, blocks)
        ]
        return nn.Sequential(*blocks_)

    def forward(
        self, x: torch.Tensor, additional_features: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.relu(self.bn1(self.conv1(x)))
        if additional_features is not None:
            extra = x.shape[1] - additional_features.shape[1]
            if extra < 0:
                raise ValueError(
                    f"additional_features has {additional_features.shape[1]} channels, "
                    f"more than the stem's {x.shape[1]}"
                )
            x = x + F.pad(additional_features, (0, 0, 0, 0, 0, extra))
        x = self.maxpool(x)
        c1 = self.layer1(x)
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        c4 = self.layer4(c3)
        return c1, c2, c3, c4
