"""FCFI networks: backbones, FFCM, CFFM, checkpoint I/O.

Forward contract shared by every network (and by the analytic test network)::

    model(image, prev_mask, points, new_points, gate) -> dict

* ``image`` (B, 3, H, W) float in [0, 1], *not* normalised (the model applies ImageNet
  mean/std itself);
* ``prev_mask`` (B, 1, H, W) previous probability map (the feedback);
* ``points`` (B, 2N, 3) official click layout (:func:`napari_fcfi.model.clicks.points_array`);
* ``new_points`` (B, k, 3) rows ``(y, x, is_positive)``, the FFCM focus (newest click last);
* ``gate`` float, 0 on the first click and 1 afterwards.

Returns a dict with ``instances`` (logits), optional ``instances_aux``, ``feedback_ffcm``
and ``feedback_cffm`` (probabilities), all (B, 1, H, W) at input resolution.

Modules: :mod:`.hrnet_model` (HRNet-W18+OCR, official ``h18s``), :mod:`.deeplab`
(DeepLabV3+/ResNet, official ``r101``), :mod:`.lite` (FCFI-Lite), :mod:`.ffcm` and
:mod:`.cffm` (the two FCFI modules), :mod:`.io` (checkpoints).

Models may carry ``inference_defaults`` (a dict of Predictor keyword arguments such as
zoom-in settings) that :class:`~napari_fcfi.inference.Predictor` uses unless told otherwise.
"""

from __future__ import annotations


def load_model(source=None, device=None):
    """Load an FCFI network; see :func:`napari_fcfi.model.io.load_model`."""
    from .io import load_model as _load

    return _load(source, device=device)


def save_model(model, path):
    """Save a network in our format; see :func:`napari_fcfi.model.io.save_model`."""
    from .io import save_model as _save

    return _save(model, path)
