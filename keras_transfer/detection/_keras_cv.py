"""The one place keras-transfer imports keras-cv (the `detection` extra): YOLOv8 lives only there.

keras-hub has no YOLO; keras-cv 0.9 (its last release) still imports under Keras 3. Everything
else in `keras_transfer.detection` works without keras-cv.
"""

from __future__ import annotations

from keras_transfer.errors import require


def keras_cv():
    """Imports keras-cv, or raises `MissingDependencyError` naming the ``detection`` extra.

    Example:
    >>> keras_cv().models.YOLOV8Detector.__name__
    'YOLOV8Detector'
    """
    return require("keras_cv", extra="detection", feature="The YOLOv8 detector (keras-cv)")


def yolov8_detector(backbone, num_classes: int, *, fpn_depth: int, box_format: str = "xyxy"):
    """keras-cv's `YOLOV8Detector` on any backbone with ``pyramid_level_inputs`` (P3–P5)."""
    return keras_cv().models.YOLOV8Detector(
        backbone=backbone, num_classes=num_classes, bounding_box_format=box_format,
        fpn_depth=fpn_depth,
    )


def is_yolov8(model) -> bool:
    """True for a keras-cv `YOLOV8Detector` (without importing keras-cv when it is absent)."""
    cls = type(model)
    return cls.__name__ == "YOLOV8Detector" and cls.__module__.startswith("keras_cv")
