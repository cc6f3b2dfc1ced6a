"""What every FCFI network wrapper shares: input checks, ImageNet normalisation, click disk
maps, the NHWC layout, and the refusal of official options that no released model uses."""

from __future__ import annotations

import torch

from .clicks import disk_maps

__all__ = ["IMAGENET_MEAN_STD", "FCFIInputMixin", "check_common_params", "nhwc"]

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

    def prepare_inputs(self, image, prev_mask, points):
        """The forward prologue: checked inputs, the normalised image, the feedback in the
        image's dtype and the (B, 2, H, W) click disk maps."""
        self._check_inputs(image, prev_mask, points)
        h, w = image.shape[-2:]
        x = self.normalize(image)
        disks = self.click_maps(torch.as_tensor(points, device=x.device), h, w, x.dtype)
        return x, prev_mask.to(x.dtype), disks


def nhwc(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``tensors`` in channels-last layout on CPU and CUDA (faster oneDNN / cuDNN
    convolutions); unchanged on other devices."""
    if tensors[0].device.type not in ("cpu", "cuda"):
        return tensors
    return tuple(t.contiguous(memory_format=torch.channels_last) for t in tensors)
