"""Explanations: where a model looks for a class (Grad-CAM heatmaps and their overlays).

`explain(model, images)` returns an `Explanation` (float32 heatmaps in [0, 1] at the input
resolution, one per image and explained class); `overlay` / `save_overlay` draw a heatmap over its
image. The explained layer comes from the backbone's block map (`taps.py`), the maths is in
`gradcam.py`, the drawing in `overlay.py`, the evaluation grid and ``predict --explain`` in
`files.py`.

``import keras_transfer as kt; kt.explain`` is the function (it shadows this package's name on
`keras_transfer`; import modules from here with ``from keras_transfer.explain import ...``).

Example:
>>> import numpy as np
>>> from keras_transfer.explain import explain, overlay
>>> from keras_transfer import build_image_classifier
>>> model = build_image_classifier("resnet50", num_classes=2, weights=None,
...                                input_shape=(64, 64, 3))
>>> image = np.random.default_rng(0).uniform(0, 255, (64, 64, 3))
>>> overlay(image, explain(model, image).heatmaps[0]).shape
(64, 64, 3)
"""

from keras_transfer.explain.core import METHODS, Explanation, explain
from keras_transfer.explain.overlay import colorize, overlay, save_overlay
from keras_transfer.explain.taps import default_layer, tap_layer

__all__ = ["METHODS", "Explanation", "colorize", "default_layer", "explain", "overlay",
           "save_overlay", "tap_layer"]
