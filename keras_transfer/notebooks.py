"""What the notebooks in ``notebooks/`` share: fast mode, a network check, the weights to use.

Each notebook reads ``KERAS_TRANSFER_FAST=1`` (a smoke run: a tiny subset, small images, one
epoch; the test suite runs every notebook that way) and picks pretrained weights that work where
it runs: a keras-hub preset when the network is reachable, the weights shipped in the `assets`
extra otherwise. ``KERAS_TRANSFER_OFFLINE=1`` skips the network check.
"""

from __future__ import annotations

import os
import socket

FAST_ENV = "KERAS_TRANSFER_FAST"
OFFLINE_ENV = "KERAS_TRANSFER_OFFLINE"
# keras-hub's own ImageNet EfficientNet-Lite0 (timm's RandAugment recipe), from Kaggle.
LITE0_HUB_PRESET = "efficientnet_lite0_ra_imagenet"
# keras-hub's all-MiniLM-L6-v2: the same weights the `assets` extra ships as "minilm_l6".
MINILM_HUB_PRESET = "all_minilm_l6_v2_en"
# Kaggle serves keras-hub presets: reaching it is what "online" means here.
_PROBE = ("www.kaggle.com", 443)


def fast_mode() -> bool:
    """True when ``KERAS_TRANSFER_FAST=1``: notebooks then run on a tiny subset in seconds.

    Example:
    >>> EPOCHS = 1 if fast_mode() else 25
    """
    return os.environ.get(FAST_ENV, "0") == "1"


def is_online(timeout: float = 3.0) -> bool:
    """Whether keras-hub presets can be downloaded (a TCP connection to Kaggle in `timeout` s).

    Always False when ``KERAS_TRANSFER_OFFLINE=1``.

    Example:
    >>> BACKBONE = lite0_backbone(online=is_online())  # doctest: +SKIP
    """
    if os.environ.get(OFFLINE_ENV, "0") == "1":
        return False
    try:
        with socket.create_connection(_PROBE, timeout=timeout):
            return True
    except OSError:  # refused, unreachable, DNS failure or timeout
        return False


def lite0_backbone(online: bool | None = None) -> str:
    """The EfficientNet-Lite0 backbone name to pass with ``weights="imagenet"``.

    Online: ``"hub:efficientnet_lite0_ra_imagenet"`` (the keras-hub preset). Offline:
    ``"efficientnet_lite0"``, whose ImageNet weights ship in the `assets` extra and are
    converted once into the cache. Both take raw pixels in [0, 255] and split into named blocks.

    Example:
    >>> lite0_backbone(online=False)
    'efficientnet_lite0'
    >>> lite0_backbone(online=True)
    'hub:efficientnet_lite0_ra_imagenet'
    """
    if online is None:
        online = is_online()
    return f"hub:{LITE0_HUB_PRESET}" if online else "efficientnet_lite0"


def minilm_preset(online: bool | None = None) -> str:
    """The MiniLM-L6 (BERT) preset for `keras_transfer.text` builders.

    Online: the keras-hub preset ``"all_minilm_l6_v2_en"``. Offline: ``"minilm_l6"``, the same
    all-MiniLM-L6-v2 weights shipped in the `assets` extra.

    Example:
    >>> minilm_preset(online=False)
    'minilm_l6'
    """
    if online is None:
        online = is_online()
    return MINILM_HUB_PRESET if online else "minilm_l6"
