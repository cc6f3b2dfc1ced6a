"""FCFI with a DeepLabV3+ / ResNet-101 v1s backbone (the official ``DeeplabModel``, ``r101``).

The constructor takes the parameters stored in an official checkpoint's ``config["params"]``
(``isegm.model.is_deeplab_model.DeeplabModel``); options that FCFI's released models do not
use are refused with a ``ValueError`` (see :func:`~napari_fcfi.model.base.check_common_params`).

Data flow (``forward``; h, w = H/4, W/4)::

    x      = (image - mean) / std
    disks  = radius-5 disk maps of the positive / negative clicks          (B, 2, H, W)
    c1, c4 = ResNet-101 v1s (dilated, OS 8), maps_transform(disks) added after the stem
    skip   = skip_project(c1)                                              (B, 32, h, w)
    F      = upsample(ASPP(c4)) to (h, w), bilinear, align_corners=True    (B, 256, h, w)
    fb1    = FFCM(F, x, disks, prev_mask, newest click)                    (B, 1, h, w)
    F, fb2 = CFFM(F, fb1, gate)              (F + gate * residual)
    logits = SepConvHead(DeepLabHead(cat(F, skip)))                        (B, 1, h, w)

The previous mask is the FFCM's feedback only; unlike HRNet it does not enter
``maps_transform``. ``instances`` and ``feedback_cffm`` are upsampled to the input size with
``align_corners=True`` but ``feedback_ffcm`` with ``align_corners=False``, as the official
wrapper does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbones.deeplab import DeepLabV3Plus, SepConvHead
from .base import IMAGENET_MEAN_STD, FCFIInputMixin, check_common_params, nhwc
from .cffm import CollaborativeFusionModule
from .ffcm import FocusedCorrectionModule
from .layers import make_maps_transform

__all__ = ["DeeplabModel", "FCFIDeepLabV3Plus"]

#: number of click-map channels (positive and negative disks)
COORD_CHANNELS = 2


class FCFIDeepLabV3Plus(DeepLabV3Plus):
    """DeepLabV3+ with FCFI's FFCM (``correction_module``) and CFFM (``feedback_fusion``).

    Both act on the ASPP output upsampled to stride 4, before it is joined with the skip
    features and decoded. ``forward`` returns the decoder features and both feedback maps,
    all at stride 4.
    """

    def __init__(
        self,
        backbone: str = "resnet101",
        ch: int = 256,
        mid_ch: int = 32,
        expansion_ratio: float = 0.3,
        project_dropout: float = 0.5,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        backbone_norm_layer: type[nn.Module] | None = None,
    ) -> None:
        super().__init__(
            backbone=backbone,
            ch=ch,
            project_dropout=project_dropout,
            norm_layer=norm_layer,
            backbone_norm_layer=backbone_norm_layer,
        )
        ffcm_in = 3 + COORD_CHANNELS + 1 + ch
        self.correction_module = FocusedCorrectionModule(
            ffcm_in, mid_ch, expansion_ratio=expansion_ratio, norm_layer=norm_layer
        )
        self.feedback_fusion = CollaborativeFusionModule(ch, mid_ch, norm_layer=norm_layer)

    def forward(
        self,
        x: torch.Tensor,
        additional_features: torch.Tensor,
        coord_features: torch.Tensor,
        feedback: torch.Tensor,
        new_points: torch.Tensor,
        gate: float | torch.Tensor = 0.0,
        is_training: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(decoder features, feedback1, feedback2)`` at stride 4.

        ``x`` is the normalised image, ``additional_features`` the encoded click maps (added
        after the stem), ``coord_features`` the raw disk maps and ``feedback`` the previous
        probability map, both at input resolution.
        """
        feats, skip = self.encode(x, additional_features)
        fb1 = self.correction_module(
            feats, x, coord_features, feedback, new_points, is_training=is_training
        )
        feats, fb2 = self.feedback_fusion(feats, fb1, gate)
        return self.decode(feats, skip), fb1, fb2


class DeeplabModel(FCFIInputMixin, nn.Module):
    """FCFI on DeepLabV3+ / ResNet v1s; forward contract in :mod:`napari_fcfi.model`.

    The defaults are those of the official ``r101`` checkpoint except ``aspp_dropout``
    (the official default 0.5; ``r101`` stores 0.2), which matters only in training.
    """

    official_class = "isegm.model.is_deeplab_model.DeeplabModel"

    def __init__(
        self,
        backbone: str = "resnet101",
        deeplab_ch: int = 256,
        mid_ch: int = 32,
        aspp_dropout: float = 0.5,
        update_num: int = 1,
        expansion_ratio: float = 0.3,
        use_leaky_relu: bool = True,
        use_rgb_conv: bool = False,
        use_disks: bool = True,
        norm_radius: float = 5,
        with_prev_mask: bool = True,
        backbone_norm_layer: type[nn.Module] | None = None,
        backbone_lr_mult: float = 0.1,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        with_aux_output: bool = False,
        cpu_dist_maps: bool = False,
        clicks_groups=None,
        binary_prev_mask: bool = False,
        conv_extend: bool = False,
        norm_mean_std=IMAGENET_MEAN_STD,
    ) -> None:
        super().__init__()
        check_common_params(
            use_rgb_conv, use_disks, clicks_groups, binary_prev_mask, conv_extend,
            with_prev_mask, update_num,
        )  # fmt: skip
        if with_aux_output:
            raise ValueError("with_aux_output=True is not supported: DeeplabModel has no aux head")
        if not 0 <= float(aspp_dropout) < 1:
            raise ValueError(f"aspp_dropout must be in [0, 1), got {aspp_dropout}")
        #: learning-rate multiplier of the backbone, kept from the official config for training
        self.backbone_lr_mult = float(backbone_lr_mult)
        self.with_aux_output = False
        self._init_input(norm_mean_std, norm_radius)
        self.maps_transform = make_maps_transform(COORD_CHANNELS, use_leaky_relu)
        self.feature_extractor = FCFIDeepLabV3Plus(
            backbone=backbone,
            ch=deeplab_ch,
            mid_ch=mid_ch,
            expansion_ratio=expansion_ratio,
            project_dropout=float(aspp_dropout),
            norm_layer=norm_layer,
            backbone_norm_layer=backbone_norm_layer,
        )
        self.head = SepConvHead(
            1,
            in_channels=deeplab_ch,
            mid_channels=deeplab_ch // 2,
            num_layers=2,
            norm_layer=norm_layer,
        )
        # zoom-in settings of the official evaluation of the ResNet models (GrabCut configs)
        self.inference_defaults: dict = {"zoom_in_target_size": 600, "zoom_in_expansion_ratio": 3.2}
        # NHWC convolution weights (kept by load_state_dict and .to(device)): ~10 % less CPU
        # time than reordering them on every call; save_model writes contiguous copies
        self.to(memory_format=torch.channels_last)

    def forward(
        self,
        image: torch.Tensor,
        prev_mask: torch.Tensor,
        points: torch.Tensor,
        new_points: torch.Tensor,
        gate: float | torch.Tensor = 0.0,
        is_training: bool = False,
        return_lowres: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Forward contract of :mod:`napari_fcfi.model`.

        ``is_training=True`` uses the FFCM's soft focus box (for training); ``return_lowres``
        adds the stride-4 maps ``lowres_instances``, ``lowres_feedback1`` and
        ``lowres_feedback2`` (debug aid, compared with the conformance vectors).
        """
        x, prev_mask, disks = self.prepare_inputs(image, prev_mask, points)
        h, w = image.shape[-2:]
        x, disks = nhwc(x, disks)  # about 1.4x faster convolutions on CPU (oneDNN)
        feats, fb1, fb2 = self.feature_extractor(
            x, self.maps_transform(disks), disks, prev_mask, new_points, gate, is_training
        )
        logits = self.head(feats)
        out = {
            "instances": F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=True),
            # the official DeepLab wrapper resizes this one without align_corners
            "feedback_ffcm": F.interpolate(fb1, size=(h, w), mode="bilinear", align_corners=False),
            "feedback_cffm": F.interpolate(fb2, size=(h, w), mode="bilinear", align_corners=True),
        }
        if return_lowres:
            out.update(lowres_instances=logits, lowres_feedback1=fb1, lowres_feedback2=fb2)
        return out
