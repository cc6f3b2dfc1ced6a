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
from .clicks import disk_maps
from .layers import make_maps_transform

__all__ = ["HRNetModel", "check_common_params", "FCFIInputMixin"]

IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def check_common_params(
    use_rgb_conv=False,
    use_disks=True,
    clicks_groups=None,
    binary_prev_mask=False,
    conv_extend=False,
    with_prev_mask=True,
    update_num=1,
    num_classes=1,
) -> None:
    """Refuse official options that no released FCFI model uses (they are not implemented)."""
    bad = {
        "use_rgb_conv": (use_rgb_conv, False),
        "use_disks": (use_disks, True),
        "clicks_groups": (clicks_groups, None),
        "binary_prev_mask": (binary_prev_mask, False),
        "conv_extend": (conv_extend, False),
        "with_prev_mask": (with_prev_mask, True),
        "num_classes": (num_classes, 1),
    }
    for name, (value, supported) in bad.items():
        if value != supported:
            raise ValueError(f"{name}={value!r} is not supported (only {supported!r})")
    if int(update_num) < 1:
        raise ValueError(f"update_num must be >= 1, got {update_num}")


class FCFIInputMixin:
    """Input preparation shared by the FCFI model wrappers.

    Needs ``self.norm_radius`` and the non-persistent buffers ``_mean``/``_std``
    (see :meth:`_init_input`).
    """

    def _init_input(self, norm_mean_std, norm_radius) -> None:
        mean, std = norm_mean_std
        self.norm_radius = float(norm_radius)
        self.register_buffer(
            "_mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer(
            "_std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False
        )

    def _check_inputs(self, image, prev_mask, points) -> None:
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"image must be (B, 3, H, W), got {tuple(image.shape)}")
        b, _, h, w = image.shape
        if tuple(prev_mask.shape) != (b, 1, h, w):
            raise ValueError(f"prev_mask must be {(b, 1, h, w)}, got {tuple(prev_mask.shape)}")
        if points.ndim != 3 or points.shape[0] != b or points.shape[2] != 3:
            raise ValueError(f"points must be (B, 2N, 3) with B={b}, got {tuple(points.shape)}")

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        return (image - self._mean.to(image.dtype)) / self._std.to(image.dtype)

    def click_maps(self, points: torch.Tensor, height: int, width: int, dtype) -> torch.Tensor:
        return disk_maps(points, height, width, self.norm_radius).to(dtype)


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
        self._check_inputs(image, prev_mask, points)
        h, w = image.shape[-2:]
        x = self.normalize(image)
        prev_mask = prev_mask.to(x.dtype)
        coord = torch.cat([prev_mask, self.click_maps(points, h, w, x.dtype)], dim=1)
        if self.channels_last and x.device.type in ("cpu", "cuda"):
            # NHWC activations: ~12% less CPU time per forward (oneDNN convolutions)
            x = x.contiguous(memory_format=torch.channels_last)
            coord = coord.contiguous(memory_format=torch.channels_last)
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
