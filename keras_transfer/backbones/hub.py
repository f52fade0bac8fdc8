"""keras-hub image backbones: any preset name or local preset directory, plus offline assets.

keras-hub keeps preprocessing in a separate ImageConverter; we move it into the model (an
`ImagePreprocessing` layer in front of the hub backbone) so exports take raw pixels. Block maps of
hub backbones come from their feature pyramid (`pyramid_outputs`): each level ends a block.
keras-hub's private modules are touched only in `keras_transfer.compat.keras_hub`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from pathlib import Path

import keras

from keras_transfer.backbones.spec import BackboneSpec, BlockEnd
from keras_transfer.compat.keras_internals import producing_layer
from keras_transfer.errors import require

HUB_PREFIX = "hub:"


def _keras_hub():
    return require("keras_hub", extra="dev", feature="keras-hub backbones")


def hub_model_name(preset: str) -> str:
    """The name our wrapper model gets for a hub preset (stable, so it survives save/load).

    Example:
    >>> hub_model_name("efficientnet_b0_ra_imagenet")
    'hub_efficientnet_b0_ra_imagenet'
    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as root:  # a local preset: its folder's name
    ...     os.mkdir(os.path.join(root, "My Preset"))
    ...     hub_model_name(os.path.join(root, "My Preset"))
    'hub_my_preset'
    """
    base = Path(preset).name if Path(preset).exists() else preset
    return "hub_" + re.sub(r"[^0-9a-z]+", "_", base.lower()).strip("_")


def build_hub_core(source, preset: str) -> keras.Model:
    """Loads a keras-hub `Backbone` for a resolved `WeightsSource`.

    ``weights=None`` builds the preset's architecture with random weights, ``"imagenet"`` loads
    the preset's own weights, a directory loads that local preset instead.
    """
    from keras_transfer.errors import WeightsUnavailableError
    from keras_transfer.weights import resolve as wr
    from keras_transfer.weights.assets import register_keras_hub_variants

    location = source.location if source.kind == wr.PRESET else preset
    # Converted EfficientNet-Lite1/Lite2 folders load here too; a keras-hub without the variant
    # table still loads every other preset.
    with contextlib.suppress(WeightsUnavailableError):
        register_keras_hub_variants()
    return _keras_hub().models.Backbone.from_preset(
        location, load_weights=source.kind != wr.RANDOM
    )


def hub_preprocessing(preset: str) -> dict:
    """The preset's ImageConverter normalisation as `ImagePreprocessing` arguments.

    Presets without an image converter are assumed to want pixels in [0, 1].
    """
    keras_hub = _keras_hub()
    try:
        converter = keras_hub.layers.ImageConverter.from_preset(preset)
    except Exception:  # noqa: BLE001 - many presets ship no converter; fall back to [0, 1]
        return dict(mode="custom", scale=1.0 / 255.0, offset=0.0)
    scale = converter.scale if converter.scale is not None else 1.0
    offset = converter.offset if converter.offset is not None else 0.0
    as_list = lambda v: [float(x) for x in v] if hasattr(v, "__len__") else float(v)  # noqa: E731
    return dict(mode="custom", scale=as_list(scale), offset=as_list(offset))


def pyramid_blocks(hub_backbone: keras.Model) -> tuple[tuple[str, BlockEnd], ...]:
    """Block ends taken from a hub backbone's `pyramid_outputs` (P1 … P5 → block1 … block5).

    The first level ends the stem when it has stride 2 and there are more than four levels.
    """
    pyramid = getattr(hub_backbone, "pyramid_outputs", None) or {}
    ends = []
    for level in sorted(pyramid, key=lambda key: int(re.sub(r"\D", "", key) or 0)):
        layer = producing_layer(pyramid[level])
        ends.append(BlockEnd(rf"^{re.escape(layer.name)}$"))
    return tuple((f"block{i}", end) for i, end in enumerate(ends, start=1))


def generic_hub_spec(preset: str, *, saved: bool = False) -> BackboneSpec:
    """A spec for any keras-hub image backbone preset; blocks come from its feature pyramid.

    `saved=True` rebuilds the spec of a loaded model from its name alone (for block lookups).

    Example:
    >>> generic_hub_spec("resnet_50_imagenet").name
    'hub_resnet_50_imagenet'
    """
    return BackboneSpec(
        name=preset if saved else hub_model_name(preset),
        family="keras_hub",
        source="keras_hub",
        build=build_hub_core,
        preprocessing={},
        blocks=(),
        description=f"keras-hub preset {preset}",
        build_kwargs={"preset": preset},
    )


def with_blocks_from(spec: BackboneSpec, backbone: keras.Model) -> BackboneSpec:
    """Fills a hub spec's block map from the nested hub backbone when the spec declares none."""
    if spec.blocks or spec.source != "keras_hub":
        return spec
    for layer in backbone.layers:
        if is_hub_backbone(layer):
            return dataclasses.replace(spec, blocks=pyramid_blocks(layer))
    return spec


def is_hub_backbone(layer) -> bool:
    """True for a keras-hub `Backbone` (nested inside our wrapper model)."""
    return isinstance(layer, keras.Model) and type(layer).__module__.startswith("keras_hub")


def _build_efficientnet_lite(source, variant: str) -> keras.Model:
    from keras_transfer.weights import assets
    from keras_transfer.weights import resolve as wr

    if source.kind == wr.PRESET:
        assets.register_keras_hub_variants()
        return _keras_hub().models.Backbone.from_preset(source.location)
    return assets.efficientnet_lite_backbone(
        variant, pretrained=source.kind in (wr.ASSET, wr.DOWNLOAD))


def hub_specs() -> list[BackboneSpec]:
    """Registered keras-hub backbones with short names (their ImageNet weights ship offline):
    one per row of `keras_transfer.weights.assets.EFFICIENTNET_LITE`.

    Example:
    >>> [spec.name for spec in hub_specs()]
    ['efficientnet_lite0', 'efficientnet_lite1', 'efficientnet_lite2']
    >>> [spec.default_size for spec in hub_specs()]
    [224, 240, 260]
    """
    from keras_transfer.weights.assets import EFFICIENTNET_LITE, EFFICIENTNET_LITE_NORMALIZATION

    return [
        BackboneSpec(
            name=lite.name,
            family="efficientnet_lite",
            source="keras_hub",
            build=_build_efficientnet_lite,
            preprocessing=dict(mode="custom", **EFFICIENTNET_LITE_NORMALIZATION),
            # keras-hub names Lite layers like keras.applications EfficientNet: same layout,
            # seven stages whatever the depth multiplier (block2a, block2b, block2c, ...).
            stem_end=BlockEnd(r"^stem_"),
            blocks=tuple((f"block{i}", BlockEnd(rf"^block{i}[a-z]_")) for i in range(1, 8)),
            default_size=lite.size,
            description=f"{lite.title} (keras-hub); ImageNet weights ship offline "
            "in the 'assets' extra",
            build_kwargs={"variant": lite.name},
            has_offline_weights=True,
        )
        for lite in EFFICIENTNET_LITE.values()
    ]
