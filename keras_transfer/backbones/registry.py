"""The backbone registry, `build_backbone` (the one factory for every family) and
`find_backbone`, the one lookup every block operation starts from."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable

import keras

from keras_transfer.backbones import hub
from keras_transfer.backbones.applications import application_specs
from keras_transfer.backbones.spec import BackboneSpec
from keras_transfer.errors import BadInputError, UnknownBackboneError
from keras_transfer.layers import ImagePreprocessing
from keras_transfer.weights import resolve as wr

_REGISTRY: dict[str, BackboneSpec] = {}


@dataclasses.dataclass(frozen=True)
class BackboneMatch:
    """A backbone found in a model: what `freeze`, `unfreeze`, `describe` and `blocks_of` use.

    Attributes:
        model: the backbone; made trainable as a container before its blocks are set one by one.
        spec: its block map.
        layers: its layers in graph order, when they are not `model`'s own (a detector's
            `PyramidBackbone` lists those of its feature extractor); None: read from `model`.

    Example:
    >>> bb = build_backbone("vgg16", weights=None, input_shape=(32, 32, 3))
    >>> match = locate_backbone(bb)
    >>> match.model is bb, match.spec.name, match.layers
    (True, 'vgg16', None)
    """

    model: keras.Model
    spec: BackboneSpec
    layers: tuple | None = None


# A finder looks at one model (the one given, or a model nested in it) and returns the backbone
# it recognises there, or None. Finders are tried in order on each candidate; packages add
# theirs (keras_transfer.text: keras-hub text backbones; keras_transfer.detection: the
# PyramidBackbone of a detector) without this module importing them.
BackboneFinder = Callable[[keras.Model], "BackboneMatch | None"]
_FINDERS: list[BackboneFinder] = []


def register_backbone_finder(finder: BackboneFinder) -> None:
    """Lets `find_backbone` (and so every block operation) recognise more kinds of backbone.

    Example:
    >>> def never(model): return None
    >>> register_backbone_finder(never); never in _FINDERS
    True
    >>> _FINDERS.remove(never)  # leaves the registry as it was
    """
    if finder not in _FINDERS:
        _FINDERS.append(finder)


@dataclasses.dataclass(frozen=True)
class _SpecFinder:
    """Adapts a function model → spec (or None) to a `BackboneFinder` on that same model."""

    find_spec: Callable[[keras.Model], BackboneSpec | None]

    def __call__(self, candidate: keras.Model) -> BackboneMatch | None:
        spec = self.find_spec(candidate)
        return BackboneMatch(candidate, spec) if spec is not None else None


def register_spec_finder(finder: Callable[[keras.Model], BackboneSpec | None]) -> None:
    """Registers a finder that recognises a backbone by its class and returns its spec, e.g.
    keras-hub text backbones (see `register_backbone_finder` for the general hook).

    Example:
    >>> from keras_transfer.text.families import find_text_spec
    >>> register_spec_finder(find_text_spec)  # done when keras_transfer is imported
    """
    register_backbone_finder(_SpecFinder(finder))


def _registered_name(candidate: keras.Model) -> BackboneMatch | None:
    """A model named after a registered spec: what `build_backbone` returns."""
    spec = _REGISTRY.get(candidate.name)
    return BackboneMatch(candidate, hub.with_blocks_from(spec, candidate)) if spec else None


def _saved_hub_wrapper(candidate: keras.Model) -> BackboneMatch | None:
    """Our wrapper of a keras-hub image preset (``hub_<preset>``), in a new process too."""
    if candidate.name.startswith("hub_") and any(
        hub.is_hub_backbone(layer) for layer in candidate.layers
    ):
        spec = hub.generic_hub_spec(candidate.name, saved=True)
        return BackboneMatch(candidate, hub.with_blocks_from(spec, candidate))
    return None


register_backbone_finder(_registered_name)
register_backbone_finder(_saved_hub_wrapper)


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    """Adds a spec to the registry (replacing one of the same name) and returns it.

    Example:
    >>> import dataclasses
    >>> spec = dataclasses.replace(get_spec("vgg16"), name="my_vgg")
    >>> register_backbone(spec).name
    'my_vgg'
    >>> del _REGISTRY["my_vgg"]  # leaves the registry as it was
    """
    _REGISTRY[spec.name] = spec
    return spec


def list_backbones(source: str | None = None) -> list[str]:
    """Names of the registered backbones, optionally of one source (``"keras.applications"``,
    ``"keras_hub"``). Any keras-hub image preset also works as ``"hub:<preset>"`` or a directory.

    Example:
    >>> "efficientnet_b0" in list_backbones()
    True
    """
    return [name for name, spec in _REGISTRY.items() if source in (None, spec.source)]


def get_spec(name: str) -> BackboneSpec:
    """The spec of a registered backbone, a ``"hub:<preset>"`` name or a local preset directory.

    Example:
    >>> get_spec("resnet50").family
    'resnet'
    """
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name.startswith(hub.HUB_PREFIX):
        return hub.generic_hub_spec(name[len(hub.HUB_PREFIX) :])
    if Path(os.path.expanduser(name)).is_dir():
        return hub.generic_hub_spec(os.path.expanduser(name))
    raise UnknownBackboneError(unknown_backbone_message(name))


def unknown_backbone_message(name: str) -> str:
    """The error for a name that is not registered: the nearest registered names first (the
    same name but for case, ``-``, ``_`` or spaces, else close spellings), never a silent guess.

    Example:
    >>> unknown_backbone_message("MobileNetV2")  # doctest: +ELLIPSIS
    "Unknown backbone 'MobileNetV2'; did you mean 'mobilenet_v2'? For a keras-hub preset ..."
    """
    from keras_transfer.settings import close_names

    near = close_names(name, list(_REGISTRY))
    if near:
        known = f"; did you mean {' or '.join(repr(n) for n in near)}?"
    else:
        family = [n for n in _REGISTRY if n.split("_")[0] == name.split("_")[0]][:8]
        known = (f". Registered: {', '.join(family or list(_REGISTRY)[:12])}"
                 f"{' …' if not family else ''}.")
    return (f"Unknown backbone {name!r}{known} For a keras-hub preset use 'hub:<preset_name>' "
            "or a local preset directory; list_backbones() lists every registered name.")


def _input_shape(spec: BackboneSpec, input_shape) -> tuple[int, int, int]:
    if input_shape is None:
        return (spec.default_size, spec.default_size, 3)
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(f"input_shape={input_shape}: expected (height, width, 3).")
    if min(input_shape[:2]) < spec.min_size:
        raise ValueError(
            f"input_shape={input_shape}: '{spec.name}' needs images of at least "
            f"{spec.min_size}×{spec.min_size}."
        )
    return input_shape


def _preprocessing(spec: BackboneSpec) -> ImagePreprocessing:
    args = spec.preprocessing
    if spec.source == "keras_hub" and not args:
        args = hub.hub_preprocessing(spec.build_kwargs["preset"])
    args = {"mode": args} if isinstance(args, str) else dict(args)
    return ImagePreprocessing(**args, name="preprocessing")


def _build_core(spec: BackboneSpec, source: wr.WeightsSource, x):
    """Runs the spec's builder on the preprocessed tensor `x`; returns the feature map tensor."""
    if spec.source == "keras.applications":
        weights = {wr.RANDOM: None, wr.WEIGHTS_FILE: None, wr.DOWNLOAD: "imagenet",
                   wr.LEGACY_H5: source.location}.get(source.kind, "unsupported")
        if weights == "unsupported":
            raise ValueError(
                f"'{spec.name}' is a keras.applications model: weights must be None, 'imagenet', "
                f"a '.weights.h5' file or a keras.applications '.h5' file, not {source.location!r}."
            )
        build = lambda: spec.build(input_tensor=x, weights=weights, **spec.build_kwargs).output  # noqa: E731
    else:
        build = lambda: spec.build(source, **spec.build_kwargs)(x)  # noqa: E731
    try:
        return build()
    except Exception as error:  # noqa: BLE001 - only network failures are translated
        if source.kind in (wr.DOWNLOAD, wr.PRESET) and wr.is_network_error(error):
            raise wr.download_failed(f"pretrained weights for '{spec.name}'", error) from error
        raise


def build_backbone(
    name: str,
    weights: str | os.PathLike | None = "imagenet",
    input_shape: tuple[int, int, int] | None = None,
    *,
    trainable_blocks: int | str | list[str] | None = "all",
    train_batchnorm: bool = False,
) -> keras.Model:
    """Builds a backbone that takes raw images in [0, 255] and returns its last feature map.

    Args:
        name: a registered name (`list_backbones()`), ``"hub:<keras-hub preset>"`` or a local
            keras-hub preset directory.
        weights: ``"imagenet"`` (download, or the offline asset where one exists), None (random),
            a ``.weights.h5`` file saved from a backbone, a keras.applications ``.h5`` file, or a
            preset directory.
        input_shape: ``(height, width, 3)``; defaults to the size the weights were trained at.
        trainable_blocks: which blocks train: ``"all"``, ``0``/None (frozen), an int N (the last
            N blocks) or a list of block names.
        train_batchnorm: let BatchNormalization layers train (default: kept frozen).

    Returns:
        A functional `keras.Model` named after the backbone; the preprocessing is its first layer.

    Example:
    >>> backbone = build_backbone("mobilenet_v2", weights=None, input_shape=(64, 64, 3))
    >>> backbone.output_shape
    (None, 2, 2, 1280)
    """
    spec = get_spec(name)
    input_shape = _input_shape(spec, input_shape)
    source = wr.resolve_weights(
        weights, has_asset=getattr(spec.build, "has_asset", False), hub=spec.source == "keras_hub"
    )
    inputs = keras.Input(input_shape, name="images")
    outputs = _build_core(spec, source, _preprocessing(spec)(inputs))
    backbone = keras.Model(inputs, outputs, name=spec.name)
    if source.kind == wr.WEIGHTS_FILE:
        try:
            backbone.load_weights(source.location)
        except Exception as error:  # noqa: BLE001
            raise wr.WeightsUnavailableError(
                f"weights={source.location!r} does not fit '{spec.name}' with input_shape="
                f"{input_shape}: {error}"
            ) from error
    from keras_transfer.backbones.blocks import set_trainable_blocks

    set_trainable_blocks(backbone, trainable_blocks, train_batchnorm=train_batchnorm)
    return backbone


def locate_backbone(model: keras.Model) -> BackboneMatch:
    """The backbone in `model` (or `model` itself): the first match of a registered finder on
    `model`, then on the models nested in it.

    Example:
    >>> bb = build_backbone("vgg16", weights=None, input_shape=(32, 32, 3))
    >>> locate_backbone(bb).spec.name
    'vgg16'
    """
    candidates = [model] + [layer for layer in getattr(model, "layers", [])
                            if isinstance(layer, keras.Model)]
    for candidate in candidates:
        for finder in _FINDERS:
            match = finder(candidate)
            if match is not None:
                return match
    raise BadInputError(
        f"No keras-transfer backbone found in model '{model.name}'. Build it with "
        "build_backbone(), build_image_classifier(), build_segmenter(), build_detector() or "
        "a keras_transfer.text builder so that its blocks are known."
    )


def find_backbone(model: keras.Model) -> tuple[keras.Model, BackboneSpec]:
    """Finds the backbone inside `model` (or `model` itself) and its spec.

    Example:
    >>> bb = build_backbone("vgg16", weights=None, input_shape=(32, 32, 3))
    >>> find_backbone(bb)[1].name
    'vgg16'
    """
    match = locate_backbone(model)
    return match.model, match.spec


for _spec in application_specs() + hub.hub_specs():
    register_backbone(_spec)
