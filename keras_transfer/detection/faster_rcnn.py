"""Faster R-CNN (with FPN): region proposals, RoI Align and a two-layer box head.

First stage: an FPN neck over P3–P5, one RPN head shared by the levels (3×3 conv, then per
anchor an objectness logit and 4 box deltas), proposals = top-k decoded anchors + greedy NMS.
Second stage: RoI Align (7×7, level per box as in the FPN paper) → 2 dense layers →
``num_classes + 1`` logits (0 = background) and per-class box deltas (weights 10, 10, 5, 5).

Training (`compute_loss`) matches anchors to the ground truth (IoU ≥ 0.7 positive, < 0.3
negative, plus each box's best anchors), samples 256 anchors per image (≤ half positive), then
matches proposals plus the ground-truth boxes (IoU ≥ 0.5 foreground) and samples
`rois_per_image` RoIs (≤ 25 % foreground). Losses: RPN binary cross-entropy + smooth-L1, head
softmax cross-entropy + smooth-L1, each normalised by the sampled count.
"""

from __future__ import annotations

from typing import Sequence

import keras
from keras import ops

from keras_transfer.detection import roi
from keras_transfer.detection.pyramid import LEVELS, PyramidBackbone
from keras_transfer.errors import BadInputError

RPN_BATCH, RPN_POSITIVE_FRACTION = 256, 0.5
RPN_POSITIVE_IOU, RPN_NEGATIVE_IOU, RPN_NMS_IOU = 0.7, 0.3, 0.7
HEAD_FOREGROUND_IOU, HEAD_FOREGROUND_FRACTION = 0.5, 0.25


def _check_options(num_classes, fpn_width, fc_units, roi_size, num_proposals, pre_nms_topk,
                   rois_per_image, anchor_size, aspect_ratios, anchor_scales) -> None:
    counts = {"num_classes": num_classes, "fpn_width": fpn_width, "fc_units": fc_units,
              "roi_size": roi_size, "num_proposals": num_proposals,
              "pre_nms_topk": pre_nms_topk, "rois_per_image": rois_per_image}
    for name, value in counts.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise BadInputError(f"faster_rcnn: {name}={value!r}; expected a positive integer.")
    if num_proposals > pre_nms_topk:
        raise BadInputError(f"faster_rcnn: num_proposals={num_proposals} must not exceed "
                            f"pre_nms_topk={pre_nms_topk} (proposals are kept from the top-k).")
    if rois_per_image > num_proposals:
        raise BadInputError(f"faster_rcnn: rois_per_image={rois_per_image} must not exceed "
                            f"num_proposals={num_proposals}.")
    for name, values in (("aspect_ratios", aspect_ratios), ("anchor_scales", anchor_scales)):
        if not values or any(not isinstance(v, (int, float)) or v <= 0 for v in values):
            raise BadInputError(f"faster_rcnn: {name}={values!r}; expected positive numbers.")
    if not isinstance(anchor_size, (int, float)) or anchor_size <= 0:
        raise BadInputError(f"faster_rcnn: anchor_size={anchor_size!r}; expected a positive "
                            "number (anchor side = anchor_size × stride).")


def _first_stage(backbone: PyramidBackbone, width: int, num_anchors: int) -> keras.Model:
    """Images → FPN features P3–P5 and the RPN's objectness (B, N) and deltas (B, N, 4)."""
    images = keras.Input(backbone.image_shape, name="images")
    laterals = [keras.layers.Conv2D(width, 1, name=f"fpn_lateral_p{level}")(feature)
                for level, feature in zip(LEVELS, backbone(images).values())]
    for i in range(len(laterals) - 2, -1, -1):  # top-down: coarse semantics into finer levels
        up = keras.layers.UpSampling2D(2, name=f"fpn_up_p{LEVELS[i + 1]}")(laterals[i + 1])
        laterals[i] = keras.layers.Add(name=f"fpn_add_p{LEVELS[i]}")([laterals[i], up])
    features = [keras.layers.Conv2D(width, 3, padding="same", name=f"fpn_p{level}")(x)
                for level, x in zip(LEVELS, laterals)]
    small = keras.initializers.RandomNormal(stddev=0.01)
    conv = keras.layers.Conv2D(width, 3, padding="same", activation="relu",
                               kernel_initializer=small, name="rpn_conv")
    objectness = keras.layers.Conv2D(num_anchors, 1, kernel_initializer=small,
                                     name="rpn_objectness")
    deltas = keras.layers.Conv2D(num_anchors * 4, 1, kernel_initializer=small, name="rpn_box")
    logits, boxes = [], []
    for level, feature in zip(LEVELS, features):  # one head shared by every level
        x = conv(feature)
        logits.append(keras.layers.Reshape((-1,), name=f"rpn_objectness_p{level}_flat")(
            objectness(x)))
        boxes.append(keras.layers.Reshape((-1, 4), name=f"rpn_box_p{level}_flat")(deltas(x)))
    outputs = {f"P{level}": f for level, f in zip(LEVELS, features)}
    outputs["rpn_logits"] = keras.layers.Concatenate(name="rpn_logits", dtype="float32")(logits)
    outputs["rpn_deltas"] = keras.layers.Concatenate(axis=1, name="rpn_deltas",
                                                     dtype="float32")(boxes)
    return keras.Model(images, outputs, name="rpn")


def _box_head(roi_size: int, width: int, fc_units: int, num_classes: int) -> keras.Model:
    """RoI crops (B, K, S, S, C) → class logits (B, K, C + 1) and deltas (B, K, C, 4)."""
    crops = keras.Input((None, roi_size, roi_size, width), name="roi_features")
    x = keras.layers.Reshape((-1, roi_size * roi_size * width), name="roi_flatten")(crops)
    x = keras.layers.Dense(fc_units, activation="relu", name="fc1")(x)
    x = keras.layers.Dense(fc_units, activation="relu", name="fc2")(x)
    logits = keras.layers.Dense(
        num_classes + 1, kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
        name="class_logits", dtype="float32")(x)
    deltas = keras.layers.Dense(
        num_classes * 4, kernel_initializer=keras.initializers.RandomNormal(stddev=0.001),
        name="box_dense")(x)
    deltas = keras.layers.Reshape((-1, num_classes, 4), name="box_deltas", dtype="float32")(
        deltas)
    return keras.Model(crops, {"class_logits": logits, "box_deltas": deltas}, name="box_head")


@keras.saving.register_keras_serializable(package="keras_transfer")
class FasterRCNNDetector(keras.Model):
    """Two-stage detector: `PyramidBackbone` → FPN + RPN → proposals → RoI Align → box head.

    Calling it (inference) gives fixed-shape raw outputs: ``proposals`` (B, K, 4) ``xyxy``
    pixels, ``class_logits`` (B, K, num_classes + 1) and ``box_deltas`` (B, K, num_classes, 4),
    K = `num_proposals`; `keras_transfer.detection.detect` decodes them. In training mode it
    returns the first stage instead (features, RPN outputs, proposals) and `compute_loss` runs
    the box head on the sampled RoIs. Train on ``{"boxes": xyxy, "classes": ids}`` padded with -1.

    Example:
    >>> pyramid = PyramidBackbone.from_backbone("mobilenet_v2", weights=None,
    ...                                         input_shape=(64, 64, 3))
    >>> detector = FasterRCNNDetector(pyramid, num_classes=2, num_proposals=32,
    ...                               rois_per_image=32)
    >>> detector.output["box_deltas"].shape
    (None, 32, 2, 4)
    """

    task_name = "detection"  # what keras_transfer.tasks.task_of reads

    def __init__(
        self,
        backbone: PyramidBackbone,
        num_classes: int,
        *,
        fpn_width: int = 128,
        fc_units: int = 256,
        roi_size: int = 7,
        num_proposals: int = 100,
        pre_nms_topk: int = 500,
        rois_per_image: int = 64,
        anchor_size: float = 2.0,
        aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0),
        anchor_scales: Sequence[float] = (1.0, 2**0.5),
        **kwargs,
    ):
        aspect_ratios, anchor_scales = tuple(aspect_ratios), tuple(anchor_scales)
        _check_options(num_classes, fpn_width, fc_units, roi_size, num_proposals, pre_nms_topk,
                       rois_per_image, anchor_size, aspect_ratios, anchor_scales)
        image_size = tuple(backbone.image_shape[:2])
        proposer = roi.RegionProposals(image_size, num_proposals, pre_nms_topk, RPN_NMS_IOU,
                                       anchor_size=anchor_size, aspect_ratios=aspect_ratios,
                                       anchor_scales=anchor_scales, name="region_proposals")
        anchors = proposer.anchors
        if num_proposals > len(anchors):
            raise BadInputError(f"faster_rcnn: num_proposals={num_proposals} exceeds the "
                                f"{len(anchors)} anchors of {image_size[0]}×{image_size[1]} px "
                                "images.")
        stage1 = _first_stage(backbone, fpn_width, len(aspect_ratios) * len(anchor_scales))
        align = roi.RoIAlign(image_size, roi_size, name="roi_align")
        head = _box_head(roi_size, fpn_width, fc_units, num_classes)

        images = keras.Input(backbone.image_shape, name="images")
        first = stage1(images)
        proposals = proposer(first["rpn_logits"], first["rpn_deltas"])
        second = head(align([first[f"P{level}"] for level in LEVELS], proposals))
        proposals = keras.layers.Identity(name="proposals", dtype="float32")(proposals)
        outputs = {"proposals": proposals, **second}
        super().__init__(inputs=images, outputs=outputs, **kwargs)
        self.backbone, self.stage1, self.proposer, self.align, self.head = (
            backbone, stage1, proposer, align, head)
        self.num_classes = num_classes
        self.fpn_width, self.fc_units, self.roi_size = fpn_width, fc_units, roi_size
        self.num_proposals, self.pre_nms_topk = num_proposals, pre_nms_topk
        self.rois_per_image = rois_per_image
        self.anchor_size = float(anchor_size)
        self.aspect_ratios = tuple(float(r) for r in aspect_ratios)
        self.anchor_scales = tuple(float(s) for s in anchor_scales)
        self.anchors = anchors
        self.seed_generator = keras.random.SeedGenerator(name="roi_sampling")

    def call(self, inputs, training=None, mask=None, **kwargs):
        if not training:
            return super().call(inputs, training=training, mask=mask, **kwargs)
        return self.first_stage(inputs, training=True)

    def first_stage(self, images, training: bool = False) -> dict:
        """FPN features ``P3``–``P5``, ``rpn_logits``, ``rpn_deltas`` and ``proposals``."""
        out = dict(self.stage1(images, training=training))
        out["proposals"] = ops.stop_gradient(self.proposer(out["rpn_logits"], out["rpn_deltas"]))
        return out

    # ------------------------------------------------------------------ training

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if "rpn_logits" not in y_pred:  # evaluate(): inference outputs lack the first stage
            y_pred = self.first_stage(x, training=False)
        boxes = ops.cast(y["boxes"], "float32")
        classes = ops.cast(y["classes"], "int32")
        valid = classes >= 0
        loss = self._rpn_loss(y_pred["rpn_logits"], y_pred["rpn_deltas"], boxes, valid)
        loss = loss + self._head_loss(y_pred, boxes, classes, valid)
        if self.losses:
            loss = loss + ops.sum(self.losses)
        return loss

    def _rpn_loss(self, logits, deltas, boxes, valid):
        anchors = ops.convert_to_tensor(self.anchors)
        iou = ops.where(valid[:, None, :], roi.pairwise_iou(anchors[None], boxes), -1.0)
        best = ops.max(iou, axis=2)
        # Each box's best anchors are positive even under 0.7 (small or odd-shaped boxes).
        per_box = ops.max(iou, axis=1, keepdims=True)
        forced = ops.any(ops.logical_and(iou >= per_box, per_box > 0), axis=2)
        positive = ops.logical_or(best >= RPN_POSITIVE_IOU, forced)
        negative = ops.logical_and(best < RPN_NEGATIVE_IOU, ops.logical_not(positive))
        pos, neg = roi.sample(positive, negative, RPN_BATCH, RPN_POSITIVE_FRACTION,
                              self.seed_generator)
        count = ops.maximum(ops.sum(pos + neg), 1.0)
        matched = ops.take_along_axis(boxes, ops.argmax(iou, axis=2)[..., None], axis=1)
        targets = roi.encode_boxes(anchors, matched, roi.RPN_WEIGHTS)
        bce = keras.losses.binary_crossentropy(pos[..., None], logits[..., None],
                                               from_logits=True)
        box = ops.sum(roi.smooth_l1(deltas - targets), axis=-1)
        return (ops.sum(bce * (pos + neg)) + ops.sum(box * pos)) / count

    def _head_loss(self, y_pred, boxes, classes, valid):
        # The ground-truth boxes join the proposals, so early on every box has a foreground RoI.
        rois = ops.concatenate([y_pred["proposals"], boxes], axis=1)  # (B, K + M, 4)
        roi_valid = ops.concatenate([ops.ones_like(y_pred["proposals"][..., 0]) > 0, valid], 1)
        iou = ops.where(valid[:, None, :], roi.pairwise_iou(rois, boxes), -1.0)
        best = ops.max(iou, axis=2)
        foreground = ops.logical_and(best >= HEAD_FOREGROUND_IOU, roi_valid)
        background = ops.logical_and(best < HEAD_FOREGROUND_IOU, roi_valid)
        fg, bg = roi.sample(foreground, background, self.rois_per_image,
                            HEAD_FOREGROUND_FRACTION, self.seed_generator)
        # Fixed size: the sampled RoIs first (key ≥ 1), unsampled ones fill with weight 0.
        noise = keras.random.uniform(ops.shape(fg), maxval=0.5, seed=self.seed_generator)
        _, index = ops.top_k(fg + bg + noise, self.rois_per_image)

        def take(t):
            return ops.take_along_axis(t, index, axis=1)

        fg, weight = take(fg), take(fg + bg)
        sampled = ops.stop_gradient(ops.take_along_axis(rois, index[..., None], axis=1))
        matched = take(ops.argmax(iou, axis=2))
        gt_box = ops.take_along_axis(boxes, matched[..., None], axis=1)
        gt_class = ops.maximum(ops.take_along_axis(classes, matched, axis=1), 0)
        target_class = ops.where(fg > 0, gt_class + 1, 0)

        features = [y_pred[f"P{level}"] for level in LEVELS]
        out = self.head(self.align(features, sampled))
        count = ops.maximum(ops.sum(weight), 1.0)
        ce = keras.losses.sparse_categorical_crossentropy(target_class, out["class_logits"],
                                                          from_logits=True)
        one_hot = ops.one_hot(gt_class, self.num_classes)[..., None]  # deltas of the true class
        deltas = ops.sum(out["box_deltas"] * one_hot, axis=2)
        targets = roi.encode_boxes(sampled, gt_box, roi.HEAD_WEIGHTS)
        box = ops.sum(roi.smooth_l1(deltas - targets), axis=-1)
        return (ops.sum(ce * weight) + ops.sum(box * fg)) / count

    # ------------------------------------------------------------------ serialization

    def get_config(self) -> dict:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "num_classes": self.num_classes,
            "fpn_width": self.fpn_width,
            "fc_units": self.fc_units,
            "roi_size": self.roi_size,
            "num_proposals": self.num_proposals,
            "pre_nms_topk": self.pre_nms_topk,
            "rois_per_image": self.rois_per_image,
            "anchor_size": self.anchor_size,
            "aspect_ratios": list(self.aspect_ratios),
            "anchor_scales": list(self.anchor_scales),
        }

    @classmethod
    def from_config(cls, config: dict) -> "FasterRCNNDetector":
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)
