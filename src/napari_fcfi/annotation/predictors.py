"""Which network and predictor the editor uses: :class:`PredictorSettings` and the
:class:`PredictorCache` keyed by them.

Loading a model and building a predictor are slow, so the cache keeps the last ones and
rebuilds only what a settings change requires: a new model for another source or device, a
new predictor for other inference options. The thresholds are not part of the key; they are
set on the cached predictor.

The cache is used from the editor's background work, one job at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from ..cores import ThreadPolicy
from ..devices import DEVICES, pick_device
from ..model.catalogue import DEFAULT_MODEL, builtin_config

#: ``PredictorSettings.source`` for the model handed to the cache (e.g. a test network)
INJECTED = "injected"


def builtin_thresholds(model: str = DEFAULT_MODEL) -> dict[str, tuple[float, float]]:
    """The thresholds of the built-in model ``model`` by object kind: ``{"any": (first,
    corrections), preset: (first, corrections), ...}``, from its inference defaults and
    presets (the settings of the first click's answer and of the answers with feedback).
    Read from its config, without loading the network."""
    from ..inference.settings import DEFAULT_ZOOM

    cfg = builtin_config(model)
    base = dict(cfg.get("inference_defaults") or {})
    out = {}
    for name, over in [("any", {}), *(cfg.get("presets") or {}).items()]:
        s = {**base, **over}
        first = float(s.get("threshold", DEFAULT_ZOOM["threshold"]))
        ct = s.get("correction_threshold")
        out[name] = (first, first if ct is None else float(ct))
    return out


@dataclass(frozen=True)
class PredictorSettings:
    """The model and inference options of interactive clicks.

    ``source``: ``None`` for the default built-in model, the name of another built-in model
    (:func:`~napari_fcfi.model.catalogue.builtin_names`), :data:`INJECTED` for the model
    given to the cache, else a checkpoint file (``""``: none chosen yet). ``device``: one of
    :data:`DEVICES`. ``zoom_in`` and ``flip``: the two test-time transforms. ``fit``: the
    first click of an object measures the object and shows it to the network at the scale
    it was trained at (the model's own first-click mode); off, the first click is one
    native-scale pass. ``objects``: the kind of object, ``"any"`` or the name of one of the
    model's presets (e.g. ``"nuclei"``), whose settings other than the two thresholds (which
    the editor sets) the predictor takes, such as the nuclei's edge-guided corrections; a
    model without that preset uses its defaults.
    """

    source: str | None = None
    device: str = "auto"
    zoom_in: bool = True
    flip: bool = True
    fit: bool = True
    objects: str = "any"

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")


def resolve_device(device: str) -> str:
    """The device type that ``device`` (one of :data:`DEVICES`) gives here: ``auto`` ->
    cuda, mps or cpu; others are checked and ``ValueError`` says why one cannot be used."""
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; pick one of {DEVICES}")
    return pick_device(device).type


class PredictorCache:
    """The predictor for the current :class:`PredictorSettings`, built on demand.

    Parameters
    ----------
    model
        A network used for ``source=INJECTED`` (e.g. a stand-in network in tests).
    predictor_factory
        ``predictor_factory(model, device=..., zoom_in=..., flip=..., threshold=...,
        first_click=...)``; default :class:`napari_fcfi.inference.predictor.Predictor`.
    load_model
        ``load_model(source, device=...)`` for the built-in model and checkpoint files;
        default :func:`napari_fcfi.model.io.load_model`.
    threads
        torch CPU threads for the network calls: ``None`` (default) follows the free cores
        at every click (:class:`~napari_fcfi.cores.ThreadPolicy`), a number fixes them.
    """

    def __init__(
        self,
        model=None,
        predictor_factory: Callable | None = None,
        load_model: Callable | None = None,
        threads: int | None = None,
    ):
        self.threads = ThreadPolicy(threads)
        self._injected = model
        self._factory = predictor_factory
        self._load_model = load_model
        self._model = None
        self._model_key: tuple | None = None
        self._predictor = None
        self._predictor_key: PredictorSettings | None = None

    @property
    def injected_model(self):
        return self._injected

    @property
    def predictor(self):
        """The predictor built last (``None`` before the first click)."""
        return self._predictor

    def set_threshold(self, threshold: float, correction_threshold: float | None = None) -> None:
        """Set the thresholds of the current predictor (if any)."""
        if self._predictor is not None:
            set_thresholds(self._predictor, threshold, correction_threshold)

    def get(
        self,
        settings: PredictorSettings,
        threshold: float,
        correction_threshold: float | None = None,
    ):
        """The predictor for ``settings`` with ``threshold`` for first clicks and
        ``correction_threshold`` (None: ``threshold``) for the answers with feedback; loads
        the model when needed.

        Raises ``ValueError`` for a missing checkpoint or a device that cannot be used.
        Called where the network work runs, before it: it also sets torch's CPU threads.
        """
        device = resolve_device(settings.device)
        if device == "cpu":
            self.threads.apply()
        source = settings.source
        if source == "":
            raise ValueError("choose a checkpoint file with 'Browse…' first")
        model_key = (source, device)
        if self._model is None or self._model_key != model_key:
            if source == INJECTED:
                if self._injected is None:
                    raise ValueError("no model was provided")
                model = self._injected.to(device).eval()
            else:
                load = self._load_model
                if load is None:
                    from ..model.io import load_model as load
                model = load(source, device=device)
            self._model, self._model_key = model, model_key
            self._predictor = None
        key = replace(settings, device=device)  # "auto" and the device it picked are one key
        if self._predictor is None or self._predictor_key != key:
            factory = self._factory
            if factory is None:
                from ..inference.predictor import Predictor as factory
            from ..inference.settings import model_presets

            # the kind of object's preset, when the model has one by that name
            preset = (
                {"preset": settings.objects}
                if settings.objects in model_presets(self._model)
                else {}
            )
            self._predictor = factory(
                self._model,
                device=device,
                zoom_in=settings.zoom_in,
                flip=settings.flip,
                threshold=float(threshold),
                # the model's own first-click mode when fitting, else one native-scale pass
                first_click=None if settings.fit else "window",
                **preset,
            )
            self._predictor_key = key
        set_thresholds(self._predictor, threshold, correction_threshold)
        return self._predictor


def set_thresholds(predictor, threshold: float, correction_threshold: float | None) -> None:
    """Binarise ``predictor``'s first-click answers at ``threshold`` and its answers with
    feedback at ``correction_threshold`` (None: ``threshold``)."""
    predictor.threshold = float(threshold)
    predictor.correction_threshold = (
        None if correction_threshold is None else float(correction_threshold)
    )
