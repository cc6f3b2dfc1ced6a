"""FCFI-Lite: FCFI on an EfficientNet-Lite0 backbone, sized for interactive use on a CPU.

Architecture (feature resolution = 1/4 of the network input)::

    image (ImageNet-normalised) -> Lite0 stem (1/2, 32 ch)
                                    + maps_transform([prev_mask, pos_disk, neg_disk])
                                -> MBConv blocks -> features at 1/4, 1/8, 1/16, 1/32
                                -> light FPN: 1x1 laterals, bilinear upsampling to 1/4,
                                   concatenation with click_encoder(click maps) (two
                                   stride-2 convs, a direct path for the click positions),
                                   1x1 conv + depthwise-separable conv -> F
    FFCM(F, image, click maps, prev_mask, newest click)  -> feedback_ffcm (focused correction)
    CFFM(F, feedback_ffcm, gate)                          -> F', feedback_cffm
    head(F') -> instance logits;  aux head(F) -> instances_aux (training signal)
    (half_res_refine) logits at 1/4 -> upsampled to 1/2 + a residual from two 3x3 convs on
                      [stem features, upsampled logits]: boundaries at 1/2 resolution

FFCM and CFFM are the project's modules (:mod:`napari_fcfi.model.ffcm`,
:mod:`napari_fcfi.model.cffm`), with the paper's semantics. In training mode FFCM uses its
soft focus window; in eval mode the exact focus box. All outputs are upsampled to the input
size bilinearly with ``align_corners=True``.

The forward contract is the project's (see :mod:`napari_fcfi.model`). The built-in weights
(``napari_fcfi/weights/fcfi-lite.*``) load with :func:`load_lite`.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .backbones.efficientnet_lite import EfficientNetLite0
from .catalogue import DEFAULT_MODEL, WEIGHTS_DIR, builtin_names, weights_path
from .cffm import CollaborativeFusionModule
from .clicks import disk_maps
from .ffcm import FocusedCorrectionModule, resize_ac
from .io import CheckpointError
from .layers import ConvBNAct, ScaleLayer, SepConvBNAct

ARCH = "fcfi-lite"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLICK_CHANNELS = 16

#: Predictor settings for microscopy. The first click sees the image at native resolution
#: (the whole image up to 256 px, else a 256x256 window around the click), the scale the
#: network was trained at. Later clicks zoom in on the object box x2, at least
#: ``min_crop_size`` = 128 px, resized to ``target_size`` = 256 px: a typical nucleus (median
#: ~250 px^2) is then magnified 2x, inside the training scale range (0.6-2x), which gives the
#: 1/4-resolution output finer boundaries (validation NoC@90 11.2 vs 12.7 with a 256 px
#: minimum crop, i.e. no magnification).
DEFAULT_INFERENCE = {
    "zoom_in_target_size": 256,
    "zoom_in_expansion_ratio": 2.0,
    "zoom_in_min_crop_size": 128,
}


class FCFILite(nn.Module):
    """FCFI-Lite network; see the module docstring.

    Parameters that change the ``state_dict`` or the numerics are explicit and stored in the
    JSON config next to the weights (:meth:`config`).
    """

    def __init__(
        self,
        fpn_channels: int = 48,
        feature_channels: int = 96,
        ffcm_channels: int = 32,
        cffm_channels: int = 32,
        head_channels: int = 64,
        expansion_ratio: float = 0.3,
        norm_radius: float = 5.0,
        with_aux_output: bool = True,
        half_res_refine: bool = False,
    ) -> None:
        super().__init__()
        self.params = {
            "fpn_channels": int(fpn_channels),
            "feature_channels": int(feature_channels),
            "ffcm_channels": int(ffcm_channels),
            "cffm_channels": int(cffm_channels),
            "head_channels": int(head_channels),
            "expansion_ratio": float(expansion_ratio),
            "norm_radius": float(norm_radius),
            "with_aux_output": bool(with_aux_output),
        }
        if half_res_refine:  # only stored when on: configs without it load unchanged
            self.params["half_res_refine"] = True
        self.norm_radius = float(norm_radius)
        self.with_aux_output = bool(with_aux_output)
        self.backbone = EfficientNetLite0()
        stem_ch = self.backbone.stem_channels
        # click maps (prev mask, positive disks, negative disks) -> stem features at 1/2
        self.maps_transform = nn.Sequential(
            nn.Conv2d(3, 16, kernel_size=1),
            nn.LeakyReLU(negative_slope=0.2),
            nn.Conv2d(16, stem_ch, kernel_size=3, stride=2, padding=1),
            ScaleLayer(init_value=0.05),
        )
        self.laterals = nn.ModuleList(
            ConvBNAct(c, fpn_channels, 1) for c in self.backbone.feature_channels
        )
        # a direct, shallow path from the click maps to the fused features, so that the head
        # knows where the clicks are without going through the whole backbone
        self.click_encoder = nn.Sequential(
            nn.Conv2d(3, CLICK_CHANNELS, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(CLICK_CHANNELS, CLICK_CHANNELS, 3, stride=2, padding=1),
            nn.ReLU(inplace=True),
        )
        n = len(self.backbone.feature_channels)
        self.fuse = nn.Sequential(
            ConvBNAct(n * fpn_channels + CLICK_CHANNELS, feature_channels, 1),
            SepConvBNAct(feature_channels, feature_channels),
        )
        self.ffcm = FocusedCorrectionModule(
            3 + 3 + 1 + feature_channels, ffcm_channels, expansion_ratio=expansion_ratio
        )
        self.cffm = CollaborativeFusionModule(feature_channels, cffm_channels)
        self.head = nn.Sequential(
            SepConvBNAct(feature_channels, head_channels),
            nn.Conv2d(head_channels, 1, kernel_size=1),
        )
        if self.with_aux_output:
            self.aux_head = nn.Conv2d(feature_channels, 1, kernel_size=1)
        self.half_res_refine = bool(half_res_refine)
        if self.half_res_refine:
            # image-driven boundary refinement at 1/2 resolution: the stem features (which
            # also carry the click maps) and the upsampled coarse logits -> a residual
            self.refine = nn.Sequential(
                ConvBNAct(stem_ch + 1, 24, 3),
                ConvBNAct(24, 24, 3),
                nn.Conv2d(24, 1, kernel_size=1),
            )
            nn.init.zeros_(self.refine[-1].weight)  # starts as the plain upsampling
            nn.init.zeros_(self.refine[-1].bias)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), False)
        self.inference_defaults: dict = dict(DEFAULT_INFERENCE)
        #: named settings over ``inference_defaults`` for a kind of object (e.g. "nuclei")
        self.inference_presets: dict = {}

    # ------------------------------------------------------------------ config
    def config(self) -> dict:
        """JSON-serialisable description: architecture, parameters, inference defaults."""
        return {
            "format": "napari-fcfi",
            "arch": ARCH,
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "params": dict(self.params),
            "inference_defaults": dict(self.inference_defaults),
            **(
                {"presets": {k: dict(v) for k, v in self.inference_presets.items()}}
                if self.inference_presets
                else {}
            ),
        }

    @classmethod
    def from_config(cls, config: dict) -> FCFILite:
        """Build an (untrained) network from :meth:`config`'s output.

        A config that is not one (wrong architecture, unknown or out-of-range parameters,
        malformed inference defaults) raises :class:`~napari_fcfi.model.io.CheckpointError`.
        """
        if not isinstance(config, Mapping):
            raise CheckpointError(f"the model config must be a JSON object, got {config!r:.60}")
        if config.get("arch") != ARCH:
            raise CheckpointError(
                f"config is for architecture {config.get('arch')!r:.60}, not {ARCH!r}"
            )
        params = _checked_params(cls, config.get("params", {}))
        defaults = config.get("inference_defaults") or {}
        if not _is_settings(defaults):
            raise CheckpointError(
                "the config's 'inference_defaults' must map setting names to numbers or "
                f"strings, got {defaults!r:.80}"
            )
        presets = config.get("presets") or {}
        if not isinstance(presets, Mapping) or not all(
            isinstance(k, str) and _is_settings(v) for k, v in presets.items()
        ):
            raise CheckpointError(
                "the config's 'presets' must map preset names to settings (names to numbers "
                f"or strings), got {presets!r:.80}"
            )
        try:
            model = cls(**params)
        except (TypeError, ValueError, RuntimeError, OverflowError, MemoryError) as exc:
            raise CheckpointError(f"cannot build {ARCH} from the config: {exc}") from None
        if defaults:
            model.inference_defaults = dict(defaults)
        model.inference_presets = {k: dict(v) for k, v in presets.items()}
        return model

    # ------------------------------------------------------------------ forward
    def features(self, image_norm: torch.Tensor, coord: torch.Tensor) -> torch.Tensor:
        """Fused 1/4-resolution features of the normalised image and the click maps."""
        return self._features(image_norm, coord)[0]

    def _features(self, image_norm: torch.Tensor, coord: torch.Tensor):
        """(fused 1/4 features, stem features at 1/2)."""
        x = self.backbone.stem(image_norm) + self.maps_transform(coord)
        feats = self.backbone.blocks_forward(x)
        size = feats[0].shape[-2:]
        maps = [
            F.interpolate(lat(f), size=size, mode="bilinear", align_corners=False)
            if f.shape[-2:] != size
            else lat(f)
            for lat, f in zip(self.laterals, feats)
        ]
        clicks = self.click_encoder(coord)
        if clicks.shape[-2:] != size:
            clicks = F.interpolate(clicks, size=size, mode="bilinear", align_corners=False)
        return self.fuse(torch.cat(maps + [clicks], dim=1)), x

    def forward(self, image, prev_mask, points, new_points=None, gate=0.0):
        """The project's forward contract (:mod:`napari_fcfi.model`)."""
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"image must be (B, 3, H, W), got {tuple(image.shape)}")
        h, w = int(image.shape[-2]), int(image.shape[-1])
        if prev_mask.shape[-2:] != image.shape[-2:]:
            prev_mask = resize_ac(prev_mask, (h, w))
        prev_mask = prev_mask.to(image.dtype)
        disks = disk_maps(points, h, w, self.norm_radius).to(image.dtype)
        coord = torch.cat([prev_mask, disks], dim=1)
        image_norm = (image - self.mean) / self.std
        feats, stem = self._features(image_norm, coord)
        if new_points is None:  # default focus: the newest click in ``points``
            new_points = _newest_points(points)
        fb1 = self.ffcm(
            feats,
            image_norm,
            coord,
            prev_mask,
            new_points.to(feats.dtype),
            is_training=self.training,
        )
        feats2, fb2 = self.cffm(feats, fb1, gate)
        logits = self.head(feats2)
        if self.half_res_refine:
            coarse = resize_ac(logits, stem.shape[-2:])
            logits = coarse + self.refine(torch.cat([stem, coarse], dim=1))
        out = {
            "instances": resize_ac(logits, (h, w)),
            "feedback_ffcm": resize_ac(fb1, (h, w)),
            "feedback_cffm": resize_ac(fb2, (h, w)),
        }
        if self.with_aux_output:
            out["instances_aux"] = resize_ac(self.aux_head(feats), (h, w))
        return out


#: integer width parameters and their allowed range; the others are checked by type
_WIDTHS = ("fpn_channels", "feature_channels", "ffcm_channels", "cffm_channels", "head_channels")
_MAX_WIDTH = 4096
_POSITIVE = {"expansion_ratio": 16.0, "norm_radius": 1000.0}  # name -> upper bound


def _is_settings(settings) -> bool:
    """Whether ``settings`` maps setting names to numbers, strings or None."""
    return isinstance(settings, Mapping) and all(
        isinstance(k, str) and (v is None or isinstance(v, (str, int, float)))
        for k, v in settings.items()
    )


def _checked_params(cls, params) -> dict:
    """The config's ``params`` checked against the network's constructor: known names only,
    widths positive integers, ratios finite and positive, switches booleans."""
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise CheckpointError(f"the config's 'params' must be a JSON object, got {params!r:.60}")
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    out = {}
    for name, value in params.items():
        if name not in accepted:
            raise CheckpointError(
                f"unknown {ARCH} parameter {name!r:.60} in the config; known: {sorted(accepted)}"
            )
        if name in _WIDTHS:
            if isinstance(value, bool) or not isinstance(value, int):
                raise CheckpointError(f"parameter {name!r} must be an integer, got {value!r:.60}")
            if not 1 <= value <= _MAX_WIDTH:
                raise CheckpointError(
                    f"parameter {name!r} must be between 1 and {_MAX_WIDTH}, got {value}"
                )
        elif name in _POSITIVE:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise CheckpointError(f"parameter {name!r} must be a number, got {value!r:.60}")
            if not (math.isfinite(value) and 0 < value <= _POSITIVE[name]):
                raise CheckpointError(
                    f"parameter {name!r} must be a finite number in (0, {_POSITIVE[name]:g}], "
                    f"got {value!r}"
                )
        elif not isinstance(value, (bool, int, float, str)) or (
            isinstance(value, float) and not math.isfinite(value)
        ):
            raise CheckpointError(f"parameter {name!r} has an invalid value {value!r:.60}")
        if name in ("with_aux_output", "half_res_refine") and not isinstance(value, bool):
            raise CheckpointError(f"parameter {name!r} must be true or false, got {value!r:.60}")
        out[name] = value
    return out


def _newest_points(points: torch.Tensor) -> torch.Tensor:
    """(B, 1, 3) newest click (largest click index) of each ``points`` row set."""
    n = points.shape[1] // 2
    idx = points[..., 2].clone()
    idx[points[..., :2].amax(dim=-1) < 0] = -1
    j = idx.argmax(dim=1)
    b = torch.arange(points.shape[0], device=points.device)
    row = points[b, j]
    label = (j < n).to(points.dtype)
    return torch.stack([row[:, 0], row[:, 1], label], dim=-1)[:, None]


def pretrained_model(**params) -> FCFILite:
    """A new FCFI-Lite with the ImageNet EfficientNet-Lite0 backbone (needs the ``train`` extra)."""
    from .backbones.efficientnet_lite import load_pretrained

    model = FCFILite(**params)
    load_pretrained(model.backbone)
    return model


#: the default built-in model's weights file
BUILTIN_WEIGHTS = WEIGHTS_DIR / f"{DEFAULT_MODEL}.safetensors"


def resolve_weights(source: str | Path) -> Path:
    """A built-in model's name (``"builtin"``: the default) -> its shipped weights;
    otherwise a file path."""
    if str(source) == "builtin" or str(source) in builtin_names():
        path = weights_path(str(source))
    else:
        path = Path(source)
    if not path.is_file():
        raise ValueError(
            f"FCFI-Lite weights {path} not found (built-in models: {', '.join(builtin_names())})"
        )
    return path


def config_path(weights: str | Path) -> Path:
    """The JSON config that belongs to a ``.safetensors`` weights file."""
    return Path(weights).with_suffix(".json")


def save_lite(model: FCFILite, path: str | Path, half: bool = False, extra: dict | None = None):
    """Write ``model`` as ``path`` (safetensors) plus its JSON config (same stem).

    ``half`` stores float parameters in float16 (BatchNorm statistics included; they are
    cast back to float32 on load). ``extra`` is merged into the config (e.g. training info).
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"weights file must end in .safetensors, got {path.name}")
    state = {}
    for k, v in model.state_dict().items():
        v = v.detach().to("cpu").contiguous()
        if half and v.is_floating_point():
            v = v.half()
        state[k] = v
    cfg = model.config()
    if extra:
        cfg.update(extra)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={"format": "napari-fcfi", "arch": ARCH})
    config_path(path).write_text(json.dumps(cfg, indent=2) + "\n")
    return path


def load_lite(path: str | Path, device=None) -> FCFILite:
    """Load a FCFI-Lite ``.safetensors`` file and its JSON config; strict, eval mode.

    Any unusable file (missing, corrupt, a config that is not FCFI-Lite's, weights that do
    not match it) raises :class:`~napari_fcfi.model.io.CheckpointError`.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    cfg_file = config_path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {path} not found")
    if not cfg_file.is_file():
        raise CheckpointError(f"config {cfg_file} not found next to {path.name}")
    try:
        config = json.loads(cfg_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise CheckpointError(f"{cfg_file} is not a valid JSON config: {exc}") from None
    model = FCFILite.from_config(config)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is truncated or corrupt: {exc}") from None
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise CheckpointError(
            f"{path.name} does not match {ARCH}: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    shapes = [k for k in own if tuple(state[k].shape) != tuple(own[k].shape)]
    if shapes:
        k = shapes[0]
        raise CheckpointError(
            f"{path.name} does not match its config: {len(shapes)} tensors of another shape, "
            f"e.g. {k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        )
    state = {k: v.to(own[k].dtype) for k, v in state.items()}
    model.load_state_dict(state, strict=True)
    model.eval()
    if device is not None:
        model.to(device)
    return model
