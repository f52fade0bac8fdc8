"""RetinaNet: keras-hub's `RetinaNetObjectDetector` on a `PyramidBackbone`.

keras-hub trains on ``{"boxes", "labels"}``; keras-transfer's detection data (shared by every
kind) says ``"classes"``, so a registered subclass renames the key in `compute_loss`.
"""

from __future__ import annotations

import keras
import keras_hub

from keras_transfer.detection.pyramid import PyramidBackbone


@keras.saving.register_keras_serializable(package="keras_transfer")
class RetinaNetDetector(keras_hub.models.RetinaNetObjectDetector):
    """keras-hub RetinaNet that trains on ``{"boxes": xyxy, "classes": ids}`` (-1 padded).

    Built by `build_retinanet` / ``build_detector("retinanet", ...)``; registered, so a saved
    one loads (``safe_mode=True``) once `keras_transfer.detection` is imported.

    Example:
    >>> keras.saving.get_registered_name(RetinaNetDetector)
    'keras_transfer>RetinaNetDetector'
    """

    task_name = "detection"  # what keras_transfer.tasks.task_of reads

    def compute_loss(self, x, y, y_pred, sample_weight=None, **kwargs):
        if isinstance(y, dict) and "classes" in y:
            y = {"boxes": y["boxes"], "labels": y["classes"]}
        return super().compute_loss(x, y, y_pred, sample_weight, **kwargs)


def build_retinanet(
    pyramid: PyramidBackbone,
    num_classes: int,
    *,
    max_level: int = 5,
    head_convs: int = 2,
    anchor_size: float = 2.0,
    box_format: str = "xyxy",
) -> RetinaNetDetector:
    """RetinaNet (FPN P3…`max_level`, anchors 3 scales × 3 ratios, focal loss) on `pyramid`.

    Anchors are ``2**level * anchor_size`` pixels (× 1, 1.26, 1.59). keras-hub's default
    ``anchor_size=4`` suits 512–1024 px images; 2 fits the small (64–256 px) inputs these
    CPU-sized detectors use (P3 anchors of 16–25 px). `head_convs` 3×3 convs of 256 filters
    precede each head's output (4 in the paper; 2 here to keep CPU training fast).

    Example:
    >>> pyramid = PyramidBackbone.from_backbone("mobilenet_v2", weights=None,
    ...                                         input_shape=(64, 64, 3))
    >>> sorted(build_retinanet(pyramid, num_classes=2).output)
    ['bbox_regression', 'cls_logits']
    """
    image_shape = tuple(pyramid.image_shape)
    backbone = keras_hub.models.RetinaNetBackbone(
        image_encoder=pyramid, min_level=3, max_level=max_level, use_p5=False,
        image_shape=image_shape,
    )
    anchors = keras_hub.layers.AnchorGenerator(
        box_format, min_level=3, max_level=max_level, num_scales=3,
        aspect_ratios=[0.5, 1.0, 2.0], anchor_size=anchor_size,
    )
    return RetinaNetDetector(
        backbone=backbone, num_classes=num_classes, bounding_box_format=box_format,
        anchor_generator=anchors, pre_logits_num_conv_layers=head_convs,
    )
