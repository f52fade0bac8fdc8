"""Multi-scale features from any registry backbone: `PyramidBackbone` (P3, P4, P5).

Detection heads need features at strides 8, 16 and 32. Our backbones already split into named
blocks (data in each `BackboneSpec`), so the pyramid is read off the block map: the last block
ending at each stride is that level's feature (a classifier's wide "top" expansion is left
out). `PyramidBackbone` exposes the levels the way both detection libraries expect:
``pyramid_outputs`` (keras-hub: level → tensor) and ``pyramid_level_inputs`` (keras-cv:
level → layer name). It stores its block map in its config, so per-block freezing works the same
before and after `load_model`. Importing this module registers a backbone finder, so the generic
block API (`keras_transfer.freeze`, `unfreeze`, `set_trainable`, `describe`, `blocks_of`) finds a
detector's pyramid; `set_detector_trainable` and `block_status` are thin wrappers over it.
"""

from __future__ import annotations

from typing import Sequence

import keras

from keras_transfer.backbones import blocks as _blocks
from keras_transfer.backbones.hub import is_hub_backbone
from keras_transfer.backbones.registry import (
    BackboneMatch,
    build_backbone,
    find_backbone,
    register_backbone_finder,
)
from keras_transfer.backbones.spec import BackboneSpec, BlockEnd
from keras_transfer.errors import BadInputError

LEVELS = (3, 4, 5)


# Name suffix of the tapped view of a nested keras-hub backbone (see `feature_extractor`).
_VIEW_SUFFIX = "_pyramid"


def _flatten(model: keras.Model) -> list:
    """Layers in graph order, as `split_blocks` sees the backbone: a nested keras-hub backbone
    (or our tapped view of one) is opened up; other nested models (ConvNeXt's Sequential stem)
    stay single layers, since block maps name them."""
    out = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        nested = _blocks.is_nested_backbone(layer) or (
            isinstance(layer, keras.Model) and layer.name.endswith(_VIEW_SUFFIX))
        out.extend(_flatten(layer) if nested else [layer])
    return out


def _taps(backbone: keras.Model, spec: BackboneSpec, image_size: tuple[int, int]) -> dict:
    """Level → (owner, layer): the last block ending at stride 8, 16 and 32."""
    hub = next((layer for layer in backbone.layers if is_hub_backbone(layer)), None)
    owner = hub if hub is not None else backbone
    blocks = _blocks.split_blocks(backbone, spec)
    inside = {id(layer) for layer in owner.layers}
    blocks = [block for block in blocks if id(block.output_layer) in inside]
    ends, names = [b.output_layer for b in blocks], [b.name for b in blocks]
    probe = keras.Model(owner.inputs, [layer.output for layer in ends])
    shapes = probe.compute_output_shape((1, *image_size, 3))
    found: dict[int, object] = {}
    for layer, shape, name in zip(ends, shapes, names):
        stride = image_size[0] / shape[1]
        for level in LEVELS:
            # The last block at a stride wins; "top" (a classifier's wide 1x1 expansion, 1280
            # channels in MobileNetV2 / Lite0) only when no block reaches that stride.
            if stride == 2**level and (name != "top" or level not in found):
                found[level] = layer
    missing = [f"P{level}" for level in LEVELS if level not in found]
    if missing:
        raise BadInputError(
            f"Backbone '{spec.name}' has no block ending at the stride of {missing} for images "
            f"of {image_size}: a detector needs features at strides 8, 16 and 32."
        )
    return {level: (owner, found[level]) for level in LEVELS}


def feature_extractor(backbone: keras.Model) -> tuple[keras.Model, BackboneSpec]:
    """A functional model: raw images → [P3, P4, P5] features of a registry backbone.

    It reuses the backbone's layers (and weights). For a keras-hub backbone nested in our
    wrapper, its inner graph is tapped and called on the wrapper's preprocessing.

    Example:
    >>> from keras_transfer import build_backbone
    >>> extractor, spec = feature_extractor(build_backbone("mobilenet_v2", weights=None,
    ...                                                    input_shape=(64, 64, 3)))
    >>> [tuple(s[1:3]) for s in extractor.output_shape]
    [(8, 8), (4, 4), (2, 2)]
    """
    backbone, spec = find_backbone(backbone)
    image_size = tuple(backbone.input_shape[1:3])
    if None in image_size:
        raise BadInputError("A detector backbone needs a fixed input_shape, e.g. (128, 128, 3).")
    taps = _taps(backbone, spec, image_size)
    owner = taps[LEVELS[0]][0]
    outputs = [taps[level][1].output for level in LEVELS]
    if owner is backbone:
        return keras.Model(backbone.input, outputs, name=spec.name), spec
    tapped = keras.Model(owner.inputs, outputs, name=f"{owner.name}{_VIEW_SUFFIX}")
    preprocessing = backbone.get_layer("preprocessing")
    inputs = keras.Input(backbone.input_shape[1:], name="images")
    return keras.Model(inputs, tapped(preprocessing(inputs)), name=spec.name), spec


@keras.saving.register_keras_serializable(package="keras_transfer")
class PyramidBackbone(keras.Model):
    """Raw images → ``{"P3", "P4", "P5"}`` features, usable by keras-cv and keras-hub heads.

    Args:
        extractor: a functional model from `feature_extractor` (images → three feature maps).
        block_map: ``[(block, pattern, nth), ...]`` of the backbone (for per-block freezing).
        backbone_name: the registry name the features come from.

    Example:
    >>> pyramid = PyramidBackbone.from_backbone("mobilenet_v2", weights=None,
    ...                                         input_shape=(64, 64, 3))
    >>> sorted(pyramid.pyramid_outputs)
    ['P3', 'P4', 'P5']
    """

    def __init__(
        self,
        extractor: keras.Model,
        block_map: Sequence[Sequence] = (),
        stem_end: Sequence | None = None,
        backbone_name: str = "",
        **kwargs,
    ):
        inputs = keras.Input(extractor.input_shape[1:], name="images")
        features = extractor(inputs)
        outputs = {
            f"P{level}": keras.layers.Identity(name=f"P{level}")(feature)
            for level, feature in zip(LEVELS, features)
        }
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.extractor = extractor
        self.block_map = [list(entry) for entry in block_map]
        self.stem_end = list(stem_end) if stem_end else None
        self.backbone_name = backbone_name or extractor.name
        self.image_shape = tuple(extractor.input_shape[1:])
        self.pyramid_outputs = outputs
        self.pyramid_level_inputs = {key: key for key in outputs}

    @classmethod
    def from_backbone(
        cls,
        backbone: str | keras.Model,
        *,
        weights: str | None = "imagenet",
        input_shape: tuple[int, int, int] | None = None,
        name: str = "pyramid",
    ) -> "PyramidBackbone":
        """Builds the pyramid of a backbone name (see `build_backbone`) or backbone model."""
        if isinstance(backbone, str):
            backbone = build_backbone(backbone, weights=weights, input_shape=input_shape)
        extractor, spec = feature_extractor(backbone)
        block_map = [[n, e.pattern, e.nth, e.optional] for n, e in spec.blocks]
        stem = [spec.stem_end.pattern, spec.stem_end.nth, False] if spec.stem_end else None
        return cls(extractor, block_map=block_map, stem_end=stem, backbone_name=spec.name,
                   name=name)

    def spec(self) -> BackboneSpec:
        """The backbone's block map as a spec (enough for `split_blocks`)."""
        return BackboneSpec(
            name=self.backbone_name, family="", source="", build=None, preprocessing={},
            blocks=tuple((n, BlockEnd(p, nth, opt)) for n, p, nth, opt in self.block_map),
            stem_end=BlockEnd(*self.stem_end) if self.stem_end else None,
        )

    def blocks(self) -> list[_blocks.Block]:
        """The backbone's named blocks (stem, block1, …, top) inside this pyramid."""
        return _blocks.blocks_of(self)

    def layers_in_graph_order(self) -> tuple:
        """The backbone layers the pyramid runs, as `split_blocks` reads them."""
        return tuple(_flatten(self.extractor))

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "extractor": keras.saving.serialize_keras_object(self.extractor),
            "block_map": self.block_map,
            "stem_end": self.stem_end,
            "backbone_name": self.backbone_name,
        }

    @classmethod
    def from_config(cls, config: dict) -> "PyramidBackbone":
        config = dict(config)
        config["extractor"] = keras.saving.deserialize_keras_object(config["extractor"])
        return cls(**config)


def _search_pyramid(model: keras.Model) -> PyramidBackbone | None:
    """The first `PyramidBackbone` in `model`, breadth first through nested models and the
    ``backbone`` / ``image_encoder`` attributes detection libraries keep it under."""
    stack = [model]
    while stack:
        current = stack.pop(0)
        if isinstance(current, PyramidBackbone):
            return current
        stack.extend(layer for layer in getattr(current, "layers", [])
                     if isinstance(layer, keras.Model))
        for attr in ("backbone", "image_encoder"):
            child = getattr(current, attr, None)
            if isinstance(child, keras.Model) and child is not current:
                stack.append(child)
    return None


def find_pyramid(model: keras.Model) -> PyramidBackbone:
    """The `PyramidBackbone` inside a detector (searched through nested models).

    Example:
    >>> pyramid = PyramidBackbone.from_backbone("mobilenet_v2", weights=None,
    ...                                         input_shape=(64, 64, 3))
    >>> find_pyramid(pyramid) is pyramid
    True
    """
    pyramid = _search_pyramid(model)
    if pyramid is None:
        raise BadInputError(
            f"No PyramidBackbone in model '{model.name}': build it with build_detector()."
        )
    return pyramid


def pyramid_backbone_finder(candidate: keras.Model) -> BackboneMatch | None:
    """Backbone finder (see `register_backbone_finder`): a detector's pyramid, with the block
    map stored in it and the layers of its extractor.

    Example:
    >>> pyramid = PyramidBackbone.from_backbone("mobilenet_v2", weights=None,
    ...                                         input_shape=(64, 64, 3))
    >>> pyramid_backbone_finder(pyramid).spec.name
    'mobilenet_v2'
    """
    pyramid = _search_pyramid(candidate)
    if pyramid is None:
        return None
    return BackboneMatch(pyramid, pyramid.spec(), layers=pyramid.layers_in_graph_order())


register_backbone_finder(pyramid_backbone_finder)


def set_detector_trainable(
    model: keras.Model,
    trainable_blocks: int | str | Sequence[str] | None,
    *,
    train_batchnorm: bool = False,
) -> list[str]:
    """Freezes / unfreezes a detector's backbone by block; the detection head always trains.

    `trainable_blocks` is read as in `build_image_classifier`: ``"all"``, ``0``/None (frozen
    backbone), an int N (the last N effective blocks) or a list of block names. Returns the
    trainable block names. Recompile afterwards. Same as
    `keras_transfer.backbones.blocks.set_trainable_blocks`, for detectors only.

    Example:
    >>> pyramid = PyramidBackbone.from_backbone("mobilenet_v2", weights=None,
    ...                                         input_shape=(64, 64, 3))
    >>> set_detector_trainable(pyramid, 2)
    ['block3', 'block4']
    """
    find_pyramid(model)  # a clear error for a model that is not a detector
    return _blocks.set_trainable_blocks(model, trainable_blocks, train_batchnorm=train_batchnorm)


def block_status(model: keras.Model) -> dict[str, bool]:
    """Block name → whether its (non-BatchNorm) weights train, for a detector's backbone.

    Example:
    >>> pyramid = PyramidBackbone.from_backbone("mobilenet_v2", weights=None,
    ...                                         input_shape=(64, 64, 3))
    >>> _ = set_detector_trainable(pyramid, 1)
    >>> block_status(pyramid)
    {'stem': False, 'block1': False, 'block2': False, 'block3': False, 'block4': True}
    """
    find_pyramid(model)
    return {block.name: block.is_trainable() for block in _blocks.blocks_of(model)}
