"""Local corrections: a late click changes the mask only where its change reaches the click.

After many clicks most of an object's mask is already right, and a correction is meant for
the place where it is made. The network, however, answers each click with a whole new map,
and small changes far from the click (a pixel gained here, lost there) can add up over the
clicks. With local corrections on (the predictor's ``local_corrections_from`` N > 0), from
an object's N-th click on the new answer is kept only in the connected parts of the change
(the pixels whose binarised answer differs from the previous one) that reach the newest
click; elsewhere the previous answer stays. A click that changes nothing near itself keeps
the new answer whole, so a correction is never refused.

This is a form of FocalClick's progressive merge (Chen et al., CVPR 2022), applied to
FCFI's answers without any change to the network. The built-in models keep it off: on their
validation splits it does not need fewer clicks where it matters (see the model card,
*Local corrections*).
"""

from __future__ import annotations

import numpy as np

from .maps import RoiMap

#: a changed part is kept when it comes within this many pixels (a square of side
#: 2 * REACH + 1 about the click) of the newest click
REACH = 3


def merge_local(new, prev, click, threshold: float, reach: int = REACH) -> RoiMap | None:
    """The new answer in the changed parts that reach ``click``, the previous elsewhere.

    ``new`` and ``prev``: the click's answer and the feedback it corrected (maps of the same
    image, :class:`~napari_fcfi.inference.maps.RoiMap`); ``click``: ``(y, x, positive)``;
    ``threshold``: the binarisation of both. Returns None when the new answer should be kept
    whole: no pixel changed, or no changed part comes within ``reach`` of the click.
    """
    from scipy import ndimage as ndi

    if not isinstance(new, RoiMap) or not isinstance(prev, RoiMap):
        raise TypeError("merge_local needs two RoiMap answers")
    if tuple(new.shape) != tuple(prev.shape):
        raise ValueError(f"the answers' shapes differ: {new.shape} and {prev.shape}")
    rects = [m.slices for m in (new, prev) if m.data.size]
    if not rects:
        return None
    r0, c0 = min(r.start for r, _ in rects), min(c.start for _, c in rects)
    r1, c1 = max(r.stop for r, _ in rects), max(c.stop for _, c in rects)
    a = new.region(r0, r1, c0, c1)
    b = prev.region(r0, r1, c0, c1)
    changed = (a > threshold) != (b > threshold)
    y, x = int(click[0]) - r0, int(click[1]) - c0
    ys = slice(max(y - reach, 0), max(y + reach + 1, 0))
    xs = slice(max(x - reach, 0), max(x + reach + 1, 0))
    if not changed[ys, xs].any():
        return None
    parts, _ = ndi.label(changed, structure=np.ones((3, 3), bool))
    near = np.unique(parts[ys, xs])
    keep = np.isin(parts, near[near > 0])
    return RoiMap(new.shape, r0, c0, np.where(keep, a, b))
