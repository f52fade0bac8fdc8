"""The one place keras-transfer reaches into keras-hub's private modules (``keras_hub.src``).

keras-hub 0.32 loads timm-format EfficientNet folders through a table of variants
(``keras_hub.src.utils.timm.convert_efficientnet.VARIANT_MAP``, keyed by the part of the timm
architecture after ``efficientnet_``). It knows ``lite0`` but not ``lite1``/``lite2``; adding
their rows there lets the public ``Backbone.from_preset`` / ``ImageClassifier.from_preset`` load
our converted EfficientNet-Lite1/Lite2 folders with keras-hub's own weight porting.

``Backbone.enable_lora(rank)`` records its rank and the layers it put adapters on only in private
attributes (``_lora_rank``, ``_lora_enabled_layers``); `lora_rank` and `lora_enabled_layers`
read them. Everything else in keras-transfer uses keras-hub's public API only.
"""

from __future__ import annotations

import inspect
from typing import Any

from keras_transfer.compat import checked_by, incompatible
from keras_transfer.errors import WeightsUnavailableError, require


def check() -> None:
    """Raises `CompatError` unless the installed keras-hub has the timm EfficientNet table and
    its config converter, and records what `Backbone.enable_lora` did, as used here.

    Example:
    >>> check()
    """
    require("keras_hub", extra="dev", feature="keras-hub backbones")
    try:
        from keras_hub.src.utils.timm import convert_efficientnet
    except ImportError as error:
        raise incompatible("keras_hub", f"no module keras_hub.src.utils.timm.convert_efficientnet "
                           f"({error})", ("keras_hub", "keras")) from error
    table = getattr(convert_efficientnet, "VARIANT_MAP", None)
    if not isinstance(table, dict) or "lite0" not in table:
        raise incompatible("keras_hub", "convert_efficientnet.VARIANT_MAP is not a dict of timm "
                           "variants holding 'lite0'", ("keras_hub", "keras"))
    convert = getattr(convert_efficientnet, "convert_backbone_config", None)
    if convert is None or len(inspect.signature(convert).parameters) != 1:
        raise incompatible("keras_hub", "convert_efficientnet.convert_backbone_config(timm_config) "
                           "is gone or takes other arguments", ("keras_hub", "keras"))
    _check_lora()


def _check_lora() -> None:
    import keras
    import keras_hub

    inputs = keras.Input((2,))
    backbone = keras_hub.models.Backbone(
        inputs=inputs, outputs=keras.layers.Dense(2, name="probe")(inputs))
    recorded = lambda: (getattr(backbone, "_lora_rank", None),  # noqa: E731
                        getattr(backbone, "_lora_enabled_layers", None))
    before = recorded()
    backbone.enable_lora(3, target_layer_names=["probe"])
    after = recorded()
    if before != (None, None) or after != (3, [0]):
        raise incompatible("keras_hub", "Backbone.enable_lora(rank) no longer records "
                           "`_lora_rank` and `_lora_enabled_layers`", ("keras_hub", "keras"))


def timm_efficientnet_variants() -> dict[str, dict[str, Any]]:
    """keras-hub's table of timm EfficientNet variants (its private ``VARIANT_MAP``).

    Example:
    >>> "lite0" in timm_efficientnet_variants()
    True
    """
    keras_hub = require("keras_hub", extra="dev", feature="keras-hub backbones")
    try:
        from keras_hub.src.utils.timm import convert_efficientnet

        return convert_efficientnet.VARIANT_MAP
    except (ImportError, AttributeError) as error:
        raise WeightsUnavailableError(
            f"keras-hub {getattr(keras_hub, '__version__', '?')} has no timm EfficientNet variant "
            "table (keras_hub.src.utils.timm.convert_efficientnet.VARIANT_MAP), which loading "
            "EfficientNet-Lite1/Lite2 presets needs; install keras-hub>=0.20,<0.33 "
            "(shim: keras_transfer.compat.keras_hub).") from error


@checked_by(check)
def timm_efficientnet_config(architecture: str) -> dict[str, Any]:
    """The `EfficientNetBackbone` arguments keras-hub derives from a timm architecture name.

    Example:
    >>> timm_efficientnet_config("efficientnet_lite0")["activation"]
    'relu6'
    """
    from keras_hub.src.utils.timm import convert_efficientnet

    return convert_efficientnet.convert_backbone_config({"architecture": architecture})


def register_timm_efficientnet_variant(architecture: str, backbone_kwargs: dict[str, Any]) -> None:
    """Lets keras-hub load timm folders of `architecture` (``"efficientnet_<variant>"``).

    `backbone_kwargs` override keras-hub's EfficientNet-B0 layout (any `EfficientNetBackbone`
    argument) and must hold ``stackwise_squeeze_and_excite_ratios``. A variant keras-hub
    already knows is left as keras-hub defines it.

    Example:
    >>> register_timm_efficientnet_variant("efficientnet_lite0", {})  # known: nothing changes
    >>> timm_efficientnet_config("efficientnet_lite0")["stackwise_num_repeats"]
    [1, 2, 2, 3, 3, 4, 1]
    """
    prefix = "efficientnet_"
    if not architecture.startswith(prefix):
        raise ValueError(f"{architecture!r} is not a timm EfficientNet architecture name.")
    timm_efficientnet_variants().setdefault(architecture[len(prefix):], dict(backbone_kwargs))


def lora_rank(backbone: Any) -> int | None:
    """The rank of `backbone`'s LoRA adapters (what ``enable_lora(rank)`` was given); None when
    it has none (see `lora_enabled_layers`).

    Example:
    >>> import keras, keras_hub
    >>> inputs = keras.Input((2,))
    >>> backbone = keras_hub.models.Backbone(
    ...     inputs=inputs, outputs=keras.layers.Dense(2, name="query")(inputs))
    >>> lora_rank(backbone) is None
    True
    >>> backbone.enable_lora(4); lora_rank(backbone)
    4
    """
    return getattr(backbone, "_lora_rank", None) if lora_enabled_layers(backbone) else None


def lora_enabled_layers(backbone: Any) -> list[int]:
    """Which of `backbone`'s weighted layers `enable_lora` put adapters on (their indices);
    empty when LoRA is not enabled or found no layer to put adapters on.

    Example:
    >>> import keras, keras_hub
    >>> inputs = keras.Input((2,))
    >>> backbone = keras_hub.models.Backbone(
    ...     inputs=inputs, outputs=keras.layers.Dense(2, name="value")(inputs))
    >>> lora_enabled_layers(backbone)
    []
    >>> backbone.enable_lora(4); lora_enabled_layers(backbone)
    [0]
    """
    # Unset until enable_lora: keras-hub's own save/load_lora_weights read it the same way.
    return list(getattr(backbone, "_lora_enabled_layers", None) or [])
