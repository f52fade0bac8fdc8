"""Helpers for the detection tests: a tiny registered backbone and small synthetic batches."""

from __future__ import annotations

import types

import keras

from keras_transfer.backbones import BackboneSpec, BlockEnd, register_backbone
from keras_transfer.detection.boxes import pad_boxes
from keras_transfer.detection.synthetic import synthetic_detection

TINY = "tiny_det"


def _tiny(input_tensor=None, weights=None):
    """Five stride-2 stages of 8…32 channels (blocks end at strides 2 … 32)."""
    x = input_tensor
    for i, filters in enumerate((8, 12, 16, 24, 32), start=1):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False,
                                name=f"block{i}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"block{i}_bn")(x)
        x = keras.layers.ReLU(name=f"block{i}_relu")(x)
    return types.SimpleNamespace(output=x)  # build_backbone only reads `.output`


register_backbone(BackboneSpec(
    name=TINY, family="tiny", source="keras.applications", build=_tiny, preprocessing="tf",
    blocks=tuple((f"block{i}", BlockEnd(rf"^block{i}_")) for i in range(1, 6)),
    default_size=64, description="tiny test backbone",
))


def batch(num_images=8, size=64, num_classes=2, seed=0, max_boxes=4):
    images, boxes, classes = synthetic_detection(num_images, size, num_classes, seed=seed)
    b, c = pad_boxes(boxes, classes, max_boxes)
    return images, {"boxes": b, "classes": c}, boxes, classes
