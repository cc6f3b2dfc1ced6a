"""HRNet + OCR feature extractor with FCFI's FFCM and CFFM (the official ``h18s`` layout).

The module and parameter names follow the isegm ``HighResolutionNet`` (``conv1``/``bn1``,
``conv2``/``bn2``, ``layer1``, ``transition{1,2,3}``, ``stage{2,3,4}``, ``conv3x3_ocr``,
``ocr_distri_head``, ``cls_head``, ``aux_head``) plus FCFI's ``correction_module`` (FFCM) and
``fusion_module`` (CFFM), so that the released checkpoint loads with ``strict=True``.

Data flow (``forward``)::

    stem conv1-bn1-relu  (+ maps_transform(click maps), added here)
    stem conv2-bn2-relu -> layer1 -> stages 2..4 -> concat of the 4 branches (C = 15*width)
    FFCM(features, feedback, newest click)            -> feedback1 (B,1,h,w)
    CFFM(features, feedback1, gate)                   -> features', feedback2
    aux_head(features')                               -> instances_aux
    conv3x3_ocr -> OCR (soft object regions from aux) -> cls_head -> instances

All outputs are at feature resolution (1/4 of the input).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..cffm import CollaborativeFusionModule
from ..ffcm import FocusedCorrectionModule

__all__ = ["HighResolutionNet"]


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, norm_layer=nn.BatchNorm2d):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = norm_layer(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = norm_layer(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, norm_layer=nn.BatchNorm2d):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = norm_layer(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = norm_layer(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = norm_layer(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


def _resize(x, size):
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


class HighResolutionModule(nn.Module):
    """Parallel branches of basic blocks followed by the all-to-all fusion (a plain sum)."""

    def __init__(self, num_inchannels, num_channels, num_blocks, norm_layer=nn.BatchNorm2d):
        super().__init__()
        self.num_branches = len(num_channels)
        self.num_inchannels = list(num_inchannels)
        branches = []
        for i, ch in enumerate(num_channels):
            downsample = None
            if self.num_inchannels[i] != ch:
                downsample = nn.Sequential(
                    nn.Conv2d(self.num_inchannels[i], ch, 1, bias=False), norm_layer(ch)
                )
            layers = [BasicBlock(self.num_inchannels[i], ch, 1, downsample, norm_layer)]
            layers += [BasicBlock(ch, ch, norm_layer=norm_layer) for _ in range(1, num_blocks)]
            self.num_inchannels[i] = ch
            branches.append(nn.Sequential(*layers))
        self.branches = nn.ModuleList(branches)
        self.fuse_layers = self._make_fuse_layers(norm_layer)

    def _make_fuse_layers(self, norm_layer):
        if self.num_branches == 1:
            return None
        nin = self.num_inchannels
        fuse_layers = []
        for i in range(self.num_branches):
            layer = []
            for j in range(self.num_branches):
                if j > i:
                    layer.append(
                        nn.Sequential(nn.Conv2d(nin[j], nin[i], 1, bias=False), norm_layer(nin[i]))
                    )
                elif j == i:
                    layer.append(None)
                else:
                    convs = []
                    for k in range(i - j):
                        last = k == i - j - 1
                        out = nin[i] if last else nin[j]
                        mods = [nn.Conv2d(nin[j], out, 3, 2, 1, bias=False), norm_layer(out)]
                        if not last:
                            mods.append(nn.ReLU(inplace=True))
                        convs.append(nn.Sequential(*mods))
                    layer.append(nn.Sequential(*convs))
            fuse_layers.append(nn.ModuleList(layer))
        return nn.ModuleList(fuse_layers)

    def forward(self, x: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.num_branches == 1:
            return [self.branches[0](x[0])]
        x = [branch(xi) for branch, xi in zip(self.branches, x)]
        out = []
        for i, fuse in enumerate(self.fuse_layers):
            y = x[0] if i == 0 else fuse[0](x[0])
            for j in range(1, self.num_branches):
                if i == j:
                    y = y + x[j]
                elif j > i:
                    y = y + _resize(fuse[j](x[j]), x[i].shape[-2:])
                else:
                    y = y + fuse[j](x[j])
            # No ReLU on the fused sums: the official model's outputs (conformance vectors)
            # are reproduced bit for bit only without it.
            out.append(y)
        return out


class SpatialGather(nn.Module):
    """Soft object regions: softmax over pixels of the class logits, then pooled features."""

    def forward(self, feats, probs):
        b, k = probs.shape[:2]
        probs = F.softmax(probs.reshape(b, k, -1), dim=2)  # B x K x HW
        feats = feats.reshape(b, feats.shape[1], -1).permute(0, 2, 1)  # B x HW x C
        return torch.matmul(probs, feats).permute(0, 2, 1).unsqueeze(3)  # B x C x K x 1


def _conv_bn_relu_1x1(cin, cout, norm_layer):
    return [nn.Conv2d(cin, cout, 1, bias=False), nn.Sequential(norm_layer(cout), nn.ReLU(True))]


class ObjectAttentionBlock(nn.Module):
    def __init__(self, in_channels, key_channels, norm_layer=nn.BatchNorm2d):
        super().__init__()
        self.key_channels = key_channels
        self.f_pixel = nn.Sequential(
            *_conv_bn_relu_1x1(in_channels, key_channels, norm_layer),
            *_conv_bn_relu_1x1(key_channels, key_channels, norm_layer),
        )
        self.f_object = nn.Sequential(
            *_conv_bn_relu_1x1(in_channels, key_channels, norm_layer),
            *_conv_bn_relu_1x1(key_channels, key_channels, norm_layer),
        )
        self.f_down = nn.Sequential(*_conv_bn_relu_1x1(in_channels, key_channels, norm_layer))
        self.f_up = nn.Sequential(*_conv_bn_relu_1x1(key_channels, in_channels, norm_layer))

    def forward(self, x, proxy):
        b, _, h, w = x.shape
        query = self.f_pixel(x).reshape(b, self.key_channels, -1).permute(0, 2, 1)
        key = self.f_object(proxy).reshape(b, self.key_channels, -1)
        value = self.f_down(proxy).reshape(b, self.key_channels, -1).permute(0, 2, 1)
        sim = F.softmax((self.key_channels**-0.5) * torch.matmul(query, key), dim=-1)
        context = torch.matmul(sim, value).permute(0, 2, 1).reshape(b, self.key_channels, h, w)
        return self.f_up(context)


class SpatialOCR(nn.Module):
    def __init__(self, in_channels, key_channels, out_channels, dropout=0.05, norm_layer=None):
        super().__init__()
        self.object_context_block = ObjectAttentionBlock(in_channels, key_channels, norm_layer)
        self.conv_bn_dropout = nn.Sequential(
            nn.Conv2d(2 * in_channels, out_channels, 1, bias=False),
            nn.Sequential(norm_layer(out_channels), nn.ReLU(True)),
            nn.Dropout2d(dropout),
        )

    def forward(self, feats, proxy):
        context = self.object_context_block(feats, proxy)
        return self.conv_bn_dropout(torch.cat([context, feats], 1))


class HighResolutionNet(nn.Module):
    """HRNet-W``width`` + OCR head + FFCM + CFFM (see the module docstring).

    ``small`` selects 2 blocks per branch and 3/2 modules in stages 3/4 instead of 4 blocks
    and 4/3 modules (the official ``h18s`` checkpoint uses ``small=False``).
    """

    def __init__(
        self,
        width: int = 18,
        ocr_width: int = 48,
        small: bool = False,
        num_classes: int = 1,
        mid_ch: int = 64,
        expansion_ratio: float = 0.3,
        coord_channels: int = 3,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        if ocr_width <= 0:
            raise ValueError("FCFI's HRNet needs the OCR head (ocr_width > 0)")
        self.width = width
        self.conv1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)
        self.bn1 = norm_layer(64)
        self.conv2 = nn.Conv2d(64, 64, 3, stride=2, padding=1, bias=False)
        self.bn2 = norm_layer(64)
        self.relu = nn.ReLU(inplace=True)

        nb = 2 if small else 4
        down = nn.Sequential(nn.Conv2d(64, 256, 1, bias=False), norm_layer(256))
        self.layer1 = nn.Sequential(
            Bottleneck(64, 64, 1, down, norm_layer),
            *[Bottleneck(256, 64, norm_layer=norm_layer) for _ in range(1, nb)],
        )
        pre = [256]
        self.stage2_num_branches = 2
        ch = [width, 2 * width]
        self.transition1 = self._make_transition(pre, ch, norm_layer)
        self.stage2, pre = self._make_stage(ch, 1, nb, norm_layer)
        self.stage3_num_branches = 3
        ch = [width, 2 * width, 4 * width]
        self.transition2 = self._make_transition(pre, ch, norm_layer)
        self.stage3, pre = self._make_stage(ch, 3 if small else 4, nb, norm_layer)
        self.stage4_num_branches = 4
        ch = [width, 2 * width, 4 * width, 8 * width]
        self.transition3 = self._make_transition(pre, ch, norm_layer)
        self.stage4, pre = self._make_stage(ch, 2 if small else 3, nb, norm_layer)

        last = int(sum(pre))
        self.out_channels = last
        ocr_mid = 2 * ocr_width
        self.conv3x3_ocr = nn.Sequential(
            nn.Conv2d(last, ocr_mid, 3, padding=1), norm_layer(ocr_mid), nn.ReLU(True)
        )
        self.ocr_gather_head = SpatialGather()
        self.ocr_distri_head = SpatialOCR(ocr_mid, ocr_width, ocr_mid, 0.05, norm_layer)
        self.cls_head = nn.Conv2d(ocr_mid, num_classes, 1)
        self.aux_head = nn.Sequential(
            nn.Conv2d(last, last, 1),
            norm_layer(last),
            nn.ReLU(True),
            nn.Conv2d(last, num_classes, 1),
        )
        self.correction_module = FocusedCorrectionModule(
            3 + coord_channels + 1 + last, mid_ch, expansion_ratio, norm_layer=norm_layer
        )
        self.fusion_module = CollaborativeFusionModule(last, mid_ch, norm_layer=norm_layer)

    @staticmethod
    def _make_transition(pre, cur, norm_layer):
        layers = []
        for i, c in enumerate(cur):
            if i < len(pre):
                if c != pre[i]:
                    layers.append(
                        nn.Sequential(
                            nn.Conv2d(pre[i], c, 3, 1, 1, bias=False), norm_layer(c), nn.ReLU(True)
                        )
                    )
                else:
                    layers.append(None)
            else:
                convs = []
                for j in range(i + 1 - len(pre)):
                    cin = pre[-1]
                    cout = c if j == i - len(pre) else cin
                    convs.append(
                        nn.Sequential(
                            nn.Conv2d(cin, cout, 3, 2, 1, bias=False),
                            norm_layer(cout),
                            nn.ReLU(True),
                        )
                    )
                layers.append(nn.Sequential(*convs))
        return nn.ModuleList(layers)

    @staticmethod
    def _make_stage(channels, num_modules, num_blocks, norm_layer):
        modules = []
        nin = list(channels)
        for _ in range(num_modules):
            modules.append(HighResolutionModule(nin, channels, num_blocks, norm_layer))
            nin = modules[-1].num_inchannels
        return nn.Sequential(*modules), nin

    @staticmethod
    def _transition(trans, y_list, n):
        out = []
        for i in range(n):
            t = trans[i]
            if t is None:
                out.append(y_list[i])
            else:
                out.append(t(y_list[i] if i < len(y_list) else y_list[-1]))
        return out

    def compute_features(self, x: torch.Tensor, additional_features=None) -> torch.Tensor:
        """HRNet features (B, 15*width, H/4, W/4) of the normalised image ``x``."""
        x = self.relu(self.bn1(self.conv1(x)))
        if additional_features is not None:
            x = x + additional_features
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.layer1(x)
        y = self.stage2(self._transition(self.transition1, [x], self.stage2_num_branches))
        y = self.stage3(self._transition(self.transition2, y, self.stage3_num_branches))
        y = self.stage4(self._transition(self.transition3, y, self.stage4_num_branches))
        size = y[0].shape[-2:]
        return torch.cat([y[0]] + [_resize(t, size) for t in y[1:]], 1)

    def forward(
        self,
        x: torch.Tensor,
        additional_features: torch.Tensor | None,
        coord_features: torch.Tensor,
        feedback: torch.Tensor,
        new_points: torch.Tensor,
        gate: float | torch.Tensor,
        is_training: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Low-resolution outputs: ``instances``, ``instances_aux``, ``feedback1``, ``feedback2``."""
        feats = self.compute_features(x, additional_features)
        fb1 = self.correction_module(feats, x, coord_features, feedback, new_points, is_training)
        feats, fb2 = self.fusion_module(feats, fb1, gate)
        out_aux = self.aux_head(feats)
        feats = self.conv3x3_ocr(feats)
        context = self.ocr_gather_head(feats, out_aux)
        feats = self.ocr_distri_head(feats, context)
        out = self.cls_head(feats)
        return {"instances": out, "instances_aux": out_aux, "feedback1": fb1, "feedback2": fb2}
