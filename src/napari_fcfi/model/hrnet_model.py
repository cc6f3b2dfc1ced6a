"""FCFI with an HRNet + OCR backbone (the official ``HRNetModel``, e.g. the ``h18s`` checkpoint).

The constructor takes the parameters stored in an official checkpoint's ``config["params"]``
(unknown ones are rejected by :func:`napari_fcfi.model.io.build_model`); options the official
code offers but FCFI's released models do not use are refused with a ``ValueError`` instead
of being silently ignored.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbones.hrnet import HighResolutionNet
from .base import IMAGENET_MEAN_STD, FCFIInputMixin, check_common_params, nhwc
from .layers import make_maps_transform

__all__ = ["HRNetModel"]


class HRNetModel(FCFIInputMixin, nn.Module):
    """FCFI on HRNet-W``width`` + OCR; forward contract in :mod:`napari_fcfi.model`."""

    official_class = "isegm.model.is_hrnet_model.HRNetModel"

    def __init__(
        self,
        width: int = 18,
        ocr_width: int = 48,
        small: bool = False,
        mid_ch: int = 64,
        with_aux_output: bool = True,
        use_leaky_relu: bool = True,
        update_num: int = 1,
        expansion_ratio: float = 0.3,
        use_rgb_conv: bool = False,
        use_disks: bool = True,
        norm_radius: float = 5,
        with_prev_mask: bool = True,
        num_classes: int = 1,
        backbone_lr_mult: float = 0.1,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        cpu_dist_maps: bool = False,
        clicks_groups=None,
        binary_prev_mask: bool = False,
        conv_extend: bool = False,
        norm_mean_std=IMAGENET_MEAN_STD,
    ) -> None:
        super().__init__()
        check_common_params(
            use_rgb_conv, use_disks, clicks_groups, binary_prev_mask, conv_extend,
            with_prev_mask, update_num, num_classes,
        )  # fmt: skip
        #: JSON-serialisable constructor parameters (saved with the weights)
        self.params = {
            "width": int(width),
            "ocr_width": int(ocr_width),
            "small": bool(small),
            "mid_ch": int(mid_ch),
            "with_aux_output": bool(with_aux_output),
            "use_leaky_relu": bool(use_leaky_relu),
            "update_num": int(update_num),
            "expansion_ratio": float(expansion_ratio),
            "norm_radius": float(norm_radius),
            "backbone_lr_mult": float(backbone_lr_mult),
        }
        self.with_aux_output = bool(with_aux_output)
        self.backbone_lr_mult = float(backbone_lr_mult)
        self._init_input(norm_mean_std, norm_radius)
        self.maps_transform = make_maps_transform(3, use_leaky_relu)
        self.feature_extractor = HighResolutionNet(
            width=width,
            ocr_width=ocr_width,
            small=small,
            num_classes=num_classes,
            mid_ch=mid_ch,
            expansion_ratio=expansion_ratio,
            coord_channels=3,
            norm_layer=norm_layer,
        )
        #: run on NHWC (channels_last) activations on CPU/CUDA (faster; same results within
        #: float32 rounding)
        self.channels_last = True
        # zoom-in settings of the official evaluation of the HRNet models (GrabCut configs)
        self.inference_defaults: dict = {"zoom_in_target_size": 700, "zoom_in_expansion_ratio": 3.0}

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
        x, prev_mask, disks = self.prepare_inputs(image, prev_mask, points)
        h, w = image.shape[-2:]
        coord = torch.cat([prev_mask, disks], dim=1)
        if self.channels_last:
            # NHWC activations: ~12% less CPU time per forward (oneDNN convolutions)
            x, coord = nhwc(x, coord)
        low = self.feature_extractor(
            x, self.maps_transform(coord), coord, prev_mask, new_points, gate, is_training
        )

        def up(t):
            return F.interpolate(t, size=(h, w), mode="bilinear", align_corners=True)

        out = {
            "instances": up(low["instances"]),
            "feedback_ffcm": up(low["feedback1"]),
            "feedback_cffm": up(low["feedback2"]),
        }
        if self.with_aux_output:
            out["instances_aux"] = up(low["instances_aux"])
        if return_lowres:
            out.update({f"lowres_{k}": v for k, v in low.items()})
        return out
