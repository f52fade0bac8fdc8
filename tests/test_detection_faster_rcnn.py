"""Faster R-CNN pieces: NMS, RoI Align, box coding, decoding, options, freezing (fast: no
training; training, save/load, TFLite parity and `detect` are in test_detection_models.py)."""

import keras
import numpy as np
import pytest

import detection_helpers as helpers
from keras_transfer.detection import (
    BoxDecoder,
    block_status,
    build_detector,
    decode_detections,
    detector_kind,
    non_max_suppression,
    set_detector_trainable,
)
from keras_transfer.detection.pyramid import PyramidBackbone
from keras_transfer.detection.roi import (
    HEAD_WEIGHTS,
    RoIAlign,
    decode_boxes_numpy,
    encode_boxes,
    greedy_nms,
    rpn_anchors,
)
from keras_transfer.errors import BadInputError

SMALL = dict(fpn_width=16, fc_units=32, num_proposals=32, rois_per_image=16)


def _random_boxes(rng, shape, low=0, high=50):
    xy = rng.uniform(low, high, (*shape, 2))
    return np.concatenate([xy, xy + rng.uniform(4, 30, (*shape, 2))], -1).astype(np.float32)


def test_greedy_nms_equals_numpy_greedy_nms():
    rng = np.random.default_rng(0)
    boxes = _random_boxes(rng, (3, 120))  # sorted by score: the first is the best
    kept = keras.ops.convert_to_numpy(greedy_nms(boxes, 0.5, 100))
    scores = np.linspace(1.0, 0.01, 120, dtype=np.float32)[:, None]
    for image, out in zip(boxes, kept):
        reference = non_max_suppression(image, scores, iou_threshold=0.5, score_threshold=0.0,
                                        max_detections=120)["boxes"]
        assert 5 < len(reference) < 100  # some suppressed, some kept: the case is not trivial
        np.testing.assert_array_equal(out[:len(reference)], reference)
        # The rest of the fixed-size output: the suppressed boxes, best first, none repeated.
        rest = [i for i in range(120) if not (reference == image[i]).all(1).any()]
        np.testing.assert_array_equal(out[len(reference):], image[rest[:100 - len(reference)]])


def test_roi_align_samples_bilinearly_from_the_fpn_level():
    # Linear features: bilinear sampling is exact, so each bin is the feature at its centre.
    size, levels = 512, (3, 4, 5)
    features = []
    for level in levels:
        side = size // 2**level
        yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
        features.append((100.0 * level + yy + 0.5 * xx)[None, :, :, None])
    boxes = np.array([[[100, 100, 140, 140],      # side 40 → P3
                       [120, 100, 360, 340],      # side 240 → P4
                       [20, 20, 480, 480]]], np.float32)  # side 460 → P5
    crops = keras.ops.convert_to_numpy(RoIAlign((size, size), 7)(features, boxes))
    assert crops.shape == (1, 3, 7, 7, 1)
    for crop, box, level in zip(crops[0], boxes[0], levels):
        stride, centres = 2.0**level, (np.arange(7) + 0.5) / 7
        ys = box[1] / stride + centres * (box[3] - box[1]) / stride - 0.5
        xs = box[0] / stride + centres * (box[2] - box[0]) / stride - 0.5
        expected = 100.0 * level + ys[:, None] + 0.5 * xs[None, :]
        np.testing.assert_allclose(crop[..., 0], expected, atol=1e-3)


def test_box_coding_round_trip_and_anchors():
    rng = np.random.default_rng(1)
    reference, boxes = _random_boxes(rng, (20,)), _random_boxes(rng, (20,))
    deltas = keras.ops.convert_to_numpy(encode_boxes(reference, boxes, HEAD_WEIGHTS))
    np.testing.assert_allclose(decode_boxes_numpy(reference, deltas, HEAD_WEIGHTS), boxes,
                               atol=1e-3)
    anchors = rpn_anchors((64, 64), anchor_size=2.0, aspect_ratios=(1.0,), anchor_scales=(1.0,))
    assert anchors.shape == (64 + 16 + 4, 4)
    np.testing.assert_allclose(anchors[0], [-4, -4, 12, 12])  # P3: 16 px around (4, 4)
    np.testing.assert_allclose(anchors[-1], [16, 16, 80, 80])  # P5: 64 px around (48, 48)


def test_decoder_gives_per_class_boxes_and_class_wise_nms():
    proposals = np.array([[[0, 0, 20, 20], [1, 1, 20, 20], [2, 2, 21, 21], [40, 40, 60, 60]]],
                         np.float32)
    logits = np.full((1, 4, 3), -10.0, np.float32)
    logits[..., 0] = 0.0  # background
    logits[0, [0, 1], 1] = [5.0, 4.0]  # class 0 twice on one object: NMS keeps the best
    logits[0, 2, 2] = 3.0  # class 1 on the same spot: another class, kept
    logits[0, 3, 0] = 5.0  # background only
    deltas = np.zeros((1, 4, 2, 4), np.float32)
    deltas[0, 2, 1] = [1.0, 0, 0, 0]  # class 1's box moves right by 0.1 of its width
    decoder = BoxDecoder("faster_rcnn", (64, 64), 2)
    [result] = decode_detections(decoder, {"proposals": proposals, "class_logits": logits,
                                           "box_deltas": deltas}, score_threshold=0.5)
    assert result["classes"].tolist() == [0, 1]
    np.testing.assert_allclose(result["boxes"], [[0, 0, 20, 20], [3.9, 2, 22.9, 21]], atol=1e-4)
    np.testing.assert_allclose(result["scores"], [np.exp(5) / (1 + np.exp(5)),
                                                  np.exp(3) / (1 + np.exp(3))], rtol=1e-4)


def test_bad_options_are_clear_errors():
    def build(**options):
        return build_detector("faster_rcnn", helpers.TINY, num_classes=2, weights=None,
                              input_shape=(64, 64, 3), compile=False, **options)

    with pytest.raises(BadInputError, match=r"unknown option\(s\) \['fpn_widht'\]"):
        build(fpn_widht=8)
    with pytest.raises(BadInputError, match="num_proposals=0"):
        build(num_proposals=0)
    with pytest.raises(BadInputError, match="rois_per_image=64 must not exceed num_proposals=32"):
        build(num_proposals=32, rois_per_image=64)
    with pytest.raises(BadInputError, match="aspect_ratios"):
        build(aspect_ratios=())
    with pytest.raises(BadInputError, match="exceeds the 504 anchors"):
        build(num_proposals=600, pre_nms_topk=1000)


def test_freezing_by_block_keeps_the_two_stages_training():
    model = build_detector("faster_rcnn", helpers.TINY, num_classes=2, weights=None,
                           input_shape=(64, 64, 3), trainable_blocks=2, compile=False, **SMALL)
    assert detector_kind(model) == "faster_rcnn"
    assert {k: tuple(v.shape) for k, v in model.output.items()} == {
        "proposals": (None, 32, 4), "class_logits": (None, 32, 3),
        "box_deltas": (None, 32, 2, 4)}
    assert block_status(model) == {"stem": False, "block1": False, "block2": False, "block3": False,
                                   "block4": True, "block5": True}
    set_detector_trainable(model, 0)
    assert not any(block_status(model).values())
    trainable = {w.path.split("/")[0] for w in model.trainable_weights}
    assert {"fpn_p3", "rpn_conv", "rpn_objectness", "fc1", "class_logits"} <= trainable
    assert not any(name.startswith("block") for name in trainable)


def test_convnext_pyramid_keeps_its_stem_block():
    # ConvNeXt's stem is a nested Sequential: the pyramid must not open it (its block map
    # names the Sequential), as the backbone's own block split does not.
    pyramid = PyramidBackbone.from_backbone("convnext_tiny", weights=None,
                                            input_shape=(64, 64, 3))
    assert [b.name for b in pyramid.blocks()] == ["stem", "block1", "block2", "block3", "block4"]
    assert {k: tuple(v.shape[1:3]) for k, v in pyramid.pyramid_outputs.items()} == {
        "P3": (8, 8), "P4": (4, 4), "P5": (2, 2)}
    assert set_detector_trainable(pyramid, 1) == ["block4"]
