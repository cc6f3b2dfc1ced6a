"""The options of batch refinement, in one place for the API, the CLI and the widget.

:class:`RefineOptions` holds every rule parameter of
:func:`~napari_fcfi.stack.refine.refine_slice` with its default and its valid range. The
``refine`` command line, the Refine widget and the work-store fingerprint all read their
defaults from here. Importing this module is instant (no numpy, no torch), so ``--help``
stays fast.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

__all__ = ["OPTION_RANGES", "RefineOptions", "check_option"]

#: valid range of each option: (low, high, integer?)
OPTION_RANGES = {
    "min_size": (0, math.inf, True),
    "extra_clicks": (0, math.inf, True),
    "click_distance": (0.0, math.inf, False),
    "min_iou": (0.0, 1.0, False),
    "margin": (0.0, 1.0, False),
    "batch_size": (1, math.inf, True),
}


def check_option(name: str, value) -> None:
    """ValueError unless ``value`` is a valid value of option ``name``.

    NaN, infinities and values out of range are refused: a NaN ``margin``, for example,
    would make every comparison false and every object "failed".
    """
    low, high, integer = OPTION_RANGES[name]
    kind = "an integer" if integer else "a number"
    span = f">= {low}" if high == math.inf else f"from {low} to {high}"
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    ok = (
        not isinstance(value, bool)
        and math.isfinite(number)
        and low <= number <= high
        and (not integer or number == int(number))
    )
    if not ok:
        raise ValueError(f"{name} must be {kind} {span}, got {value!r}")


@dataclass(frozen=True)
class RefineOptions:
    """The rules of batch refinement (see :mod:`napari_fcfi.stack.refine`).

    ``min_size``: objects with fewer pixels are kept as they are. ``extra_clicks``:
    corrective clicks per object where the refined and the current mask disagree by a blob
    at least ``click_distance`` px deep (0 disables them). ``min_iou``: below this IoU with
    the current mask, refinement counts as failed and the object is kept. ``margin``: the
    refined mask is ``p > t + margin`` plus the current mask where ``p > t - margin``.
    ``batch_size``: objects per network batch. Values are checked on construction.
    """

    min_size: int = 25
    extra_clicks: int = 1
    click_distance: float = 5.0
    min_iou: float = 0.25
    margin: float = 0.35
    batch_size: int = 8

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            check_option(f.name, value)
            kind = int if OPTION_RANGES[f.name][2] else float
            object.__setattr__(self, f.name, kind(value))

    @classmethod
    def of(cls, options: RefineOptions | None = None, **changes) -> RefineOptions:
        """``options`` (default: the defaults) with ``changes``; ``TypeError`` for an
        unknown option name."""
        base = cls() if options is None else options
        if not isinstance(base, cls):
            raise TypeError(f"options must be a RefineOptions, got {type(base).__name__}")
        unknown = set(changes) - set(OPTION_RANGES)
        if unknown:
            raise TypeError(f"unknown refinement option(s): {', '.join(sorted(unknown))}")
        return replace(base, **changes) if changes else base

    def as_dict(self) -> dict:
        """Plain ``{name: value}`` (for reports, fingerprints and keyword arguments)."""
        return asdict(self)
