"""The predictor's settings: their fallbacks, their checks, and how a model's defaults and
presets layer under what the caller gives.

Every setting comes from the first of: the caller's argument, the model's preset (a name
from ``model.inference_presets``, e.g. ``"nuclei"``), ``model.inference_defaults`` (the
weights' JSON), then :data:`DEFAULT_ZOOM` (the official ZoomIn, flip and threshold
defaults). A bad value is refused with a message that names the setting and, when it came
from the model, where it came from.
"""

from __future__ import annotations

import math

#: fallbacks when neither the caller nor ``model.inference_defaults`` set them
DEFAULT_ZOOM = {
    "zoom_in_target_size": 400,
    "zoom_in_expansion_ratio": 1.4,
    "zoom_in_min_crop_size": 200,
    "first_click": "window",
    "first_click_expansion_ratio": None,  # None: zoom_in_expansion_ratio
    "flip_axes": "x",
    "threshold": 0.49,
    "correction_threshold": None,  # None: threshold
    "local_corrections_from": 0,  # 0: every click may change the whole mask (official)
    "guided_filter_radius": 0,  # 0: the answers with feedback are the network's (official)
    "guided_filter_eps": 0.01,
}
FIRST_CLICK_MODES = ("window", "auto")
#: the largest guided-filter window radius (network pixels) accepted
MAX_GUIDED_RADIUS = 32
#: test-time averaging: each pass is ``(flipped dims, transposed)``: the official horizontal
#: flip, horizontal and vertical flips, or those four and their transposes (the eight
#: symmetries of the square); dims 2 are rows, 3 columns of an NCHW batch
FLIP_AXES = {
    "x": (((), False), ((3,), False)),
    "xy": (((), False), ((3,), False), ((2,), False), ((2, 3), False)),
    "xyt": tuple((d, t) for t in (False, True) for d in ((), (3,), (2,), (2, 3))),
}


def number_setting(name: str, value, low: float, strict: bool, source: str = "") -> float:
    """``value`` as a finite float above ``low`` (``strict``) or at least ``low``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}{source}") from None
    if not math.isfinite(v) or (v <= low if strict else v < low):
        bound = f"> {low:g}" if strict else f">= {low:g}"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}{source}")
    return v


def whole_setting(name: str, value, unit: str, high: int | None = None, source: str = "") -> int:
    """``value`` as a whole number from 0 (off) up to ``high`` (None: no bound) of ``unit``."""
    v = number_setting(name, value, 0, False, source)
    if isinstance(value, bool) or not v.is_integer() or (high is not None and v > high):
        span = "(0: off)" if high is None else f"from 0 (off) to {high}"
        raise ValueError(f"{name} must be a whole number of {unit} {span}, got {value!r}{source}")
    return int(v)


def unit_setting(name: str, value, source: str = "") -> float:
    """``value`` as a float in [0, 1], else ``ValueError`` naming ``name`` (and ``source``)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}{source}") from None
    if not 0.0 <= v <= 1.0:  # also refuses NaN
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}{source}")
    return v


def choice_setting(name: str, value, choices: tuple, source: str = "") -> str:
    """``value`` if it is one of the strings ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}{source}")
    return value


def model_presets(model) -> dict:
    """The model's named settings (``model.inference_presets``): ``{name: {setting: value}}``."""
    return dict(getattr(model, "inference_presets", None) or {})


def resolve_settings(model, preset: str | None, given: dict) -> dict:
    """The checked value of every setting of :data:`DEFAULT_ZOOM`.

    ``given``: the caller's values by setting name (``None``: not given). Returns floats for
    the ratios, thresholds and ``guided_filter_eps``, ints for the sizes,
    ``local_corrections_from`` and ``guided_filter_radius``, the
    strings of the two modes, and
    ``None`` for ``correction_threshold`` when it follows ``threshold``;
    ``first_click_expansion_ratio`` None becomes ``zoom_in_expansion_ratio``.
    """
    presets = model_presets(model)
    if preset is not None and preset not in presets:
        names = ", ".join(sorted(presets)) or "none"
        raise ValueError(f"unknown preset {preset!r}; this model's presets: {names}")
    unknown = sorted(set(presets.get(preset, {})) - set(DEFAULT_ZOOM))
    if unknown:
        raise ValueError(
            f"the model's preset {preset!r} sets unknown settings {unknown}; known: "
            f"{sorted(DEFAULT_ZOOM)}"
        )
    unknown = sorted(set(given) - set(DEFAULT_ZOOM))
    if unknown:
        raise ValueError(f"unknown settings {unknown}; known: {sorted(DEFAULT_ZOOM)}")
    defaults = dict(DEFAULT_ZOOM)
    for layer in (getattr(model, "inference_defaults", None) or {}, presets.get(preset, {})):
        defaults.update({k: v for k, v in layer.items() if k in DEFAULT_ZOOM})
    raw = {k: (defaults[k] if given.get(k) is None else given[k]) for k in DEFAULT_ZOOM}
    origin = f"preset {preset!r}" if preset is not None else "inference_defaults"

    def source(key):
        return f" (from the model's {origin})" if given.get(key) is None else ""

    out = {
        "threshold": unit_setting("threshold", raw["threshold"], source("threshold")),
        "first_click": choice_setting(
            "first_click", raw["first_click"], FIRST_CLICK_MODES, source("first_click")
        ),
        "flip_axes": choice_setting(
            "flip_axes", raw["flip_axes"], tuple(FLIP_AXES), source("flip_axes")
        ),
    }
    ct = raw["correction_threshold"]
    out["correction_threshold"] = (
        None
        if ct is None
        else unit_setting("correction_threshold", ct, source("correction_threshold"))
    )
    for key, unit, high in (
        ("local_corrections_from", "clicks", None),
        ("guided_filter_radius", "network pixels", MAX_GUIDED_RADIUS),
    ):
        out[key] = whole_setting(key, raw[key], unit, high, source(key))
    key = "guided_filter_eps"
    out[key] = number_setting(key, raw[key], 0, True, source(key))
    for key, low, strict, cast in (
        ("zoom_in_target_size", 1, False, int),
        ("zoom_in_expansion_ratio", 0, True, float),
        ("zoom_in_min_crop_size", 0, False, int),
    ):
        out[key] = cast(number_setting(key, raw[key], low, strict, source(key)))
    first_exp = raw["first_click_expansion_ratio"]
    out["first_click_expansion_ratio"] = (
        out["zoom_in_expansion_ratio"]
        if first_exp is None
        else number_setting(
            "first_click_expansion_ratio", first_exp, 0, True, source("first_click_expansion_ratio")
        )
    )
    return out


def check_weights(model) -> None:
    """Refuse a network whose parameters or buffers hold NaN or infinite values (it would
    answer every click with an empty mask)."""
    import torch

    named = []
    for attr in ("named_parameters", "named_buffers"):
        fn = getattr(model, attr, None)
        if callable(fn):
            named.extend(fn())
    for name, t in named:
        if isinstance(t, torch.Tensor) and t.is_floating_point():
            if not bool(torch.isfinite(t).all()):
                raise ValueError(
                    f"the model's weight {name!r} contains NaN or infinite values, so every "
                    "prediction would be empty: the checkpoint is corrupt or its training "
                    "diverged; load another checkpoint"
                )
