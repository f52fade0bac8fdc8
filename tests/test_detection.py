"""Detection data, boxes, metrics, NMS and decoding (fast: no training)."""

import json

import keras
import numpy as np
import pytest
from PIL import Image

import detection_helpers as helpers
from keras_transfer.errors import BadInputError
from keras_transfer.detection import (
    BOX_FORMATS,
    BoxDecoder,
    augment_sample,
    box_iou,
    build_detector,
    convert_boxes,
    crop,
    detection_dataset,
    flip_horizontal,
    letterbox,
    mean_average_precision,
    non_max_suppression,
    plot_detections,
    read_coco,
    read_voc,
    read_yolo,
    synthetic_detection,
)
from keras_transfer.detection.metrics import average_precision


# --------------------------------------------------------------------------- boxes


def test_box_formats_round_trip_and_known_values():
    boxes = np.array([[10, 20, 50, 80], [0, 0, 100, 60]], np.float32)
    for fmt in BOX_FORMATS:
        there = convert_boxes(boxes, "xyxy", fmt, (60, 100))
        np.testing.assert_allclose(convert_boxes(there, fmt, "xyxy", (60, 100)), boxes, atol=1e-4)
    np.testing.assert_allclose(convert_boxes(boxes[:1], "xyxy", "xywh"), [[10, 20, 40, 60]])
    np.testing.assert_allclose(convert_boxes(boxes[:1], "xyxy", "rel_cxcywh", (60, 100)),
                               [[0.3, 50 / 60, 0.4, 1.0]], atol=1e-6)
    with pytest.raises(BadInputError, match="image_size"):
        convert_boxes(boxes, "xyxy", "rel_xyxy")


def test_box_iou_hand_values():
    iou = box_iou(np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [5, 0, 15, 10],
                                                        [20, 20, 30, 30], [0, 0, 10, 6.2]]))
    np.testing.assert_allclose(iou[0], [1.0, 50 / 150, 0.0, 0.62], atol=1e-6)


# --------------------------------------------------------------------------- mAP


def _gt(*boxes, classes=None):
    boxes = np.array(boxes, np.float32).reshape(-1, 4)
    return {"boxes": boxes, "classes": np.array(classes or [0] * len(boxes))}


def _det(boxes, scores, classes=None):
    boxes = np.array(boxes, np.float32).reshape(-1, 4)
    return {"boxes": boxes, "scores": np.array(scores, np.float32),
            "classes": np.array(classes or [0] * len(boxes))}


def test_map_perfect_and_empty():
    gt = [_gt([0, 0, 10, 10], [20, 20, 40, 40], classes=[0, 1])]
    det = [_det([[0, 0, 10, 10], [20, 20, 40, 40]], [0.9, 0.8], [0, 1])]
    result = mean_average_precision(det, gt)
    assert result["map"] == result["map50"] == 1.0
    assert mean_average_precision([_det([], [])], gt)["map50"] == 0.0


def test_map_hand_computed_cases():
    # A false positive scored above the true positive: precision 0.5 at every recall → AP 0.5.
    gt = [_gt([0, 0, 10, 10])]
    det = [_det([[50, 50, 60, 60], [0, 0, 10, 10]], [0.9, 0.8])]
    assert mean_average_precision(det, gt)["map50"] == pytest.approx(0.5)
    # Two objects, one found: precision 1 up to recall 0.5 → 51 of 101 recall points.
    gt = [_gt([0, 0, 10, 10], [30, 30, 40, 40])]
    det = [_det([[0, 0, 10, 10]], [0.7])]
    assert mean_average_precision(det, gt)["map50"] == pytest.approx(51 / 101)
    # IoU 0.62 passes the thresholds 0.50, 0.55, 0.60 only: mAP@0.5:0.95 = 3 / 10.
    det = [_det([[0, 0, 10, 6.2]], [0.9])]
    result = mean_average_precision(det, [_gt([0, 0, 10, 10])])
    assert result["map50"] == 1.0 and result["map"] == pytest.approx(0.3)
    # A duplicate of a found box is a false positive (after the true positive: AP stays 1).
    det = [_det([[0, 0, 10, 10], [0, 0, 10, 9.5]], [0.9, 0.6])]
    assert mean_average_precision(det, [_gt([0, 0, 10, 10])])["map50"] == 1.0
    # Wrong class = miss; classes without ground truth are left out of the mean.
    det = [_det([[0, 0, 10, 10]], [0.9], [1])]
    result = mean_average_precision(det, [_gt([0, 0, 10, 10])], num_classes=2)
    assert result["map50"] == 0.0 and np.isnan(result["per_class50"][1])


def test_map_over_images_and_classes():
    # Class 0: image A has a TP (0.9), image B an FP (0.8) and a missed box → recall ≤ 0.5,
    # precision 1 there: 51/101. Class 1: perfect. Mean: (51/101 + 1) / 2.
    gt = [_gt([0, 0, 10, 10], [20, 20, 30, 30], classes=[0, 1]), _gt([0, 0, 10, 10])]
    det = [_det([[0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.5], [0, 1]),
           _det([[40, 40, 50, 50]], [0.8])]
    assert mean_average_precision(det, gt)["map50"] == pytest.approx((51 / 101 + 1) / 2)


def test_average_precision_ordering_matters():
    assert average_precision(np.array([0.9, 0.1]), np.array([True, False]), 1) == 1.0
    assert average_precision(np.array([0.1, 0.9]), np.array([True, False]), 1) == pytest.approx(0.5)


def test_non_max_suppression_is_class_wise():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10], [30, 30, 40, 40]], np.float32)
    scores = np.array([[0.9, 0.1], [0.8, 0.0], [0.0, 0.7], [0.2, 0.1]], np.float32)
    out = non_max_suppression(boxes, scores, iou_threshold=0.5, score_threshold=0.25)
    assert out["classes"].tolist() == [0, 1]  # the overlapping class-0 box is suppressed
    np.testing.assert_allclose(out["scores"], [0.9, 0.7])
    assert len(non_max_suppression(boxes, scores, score_threshold=0.15)["scores"]) == 3


# --------------------------------------------------------------------------- readers


def _png(path, size=(40, 60)):
    Image.fromarray(np.zeros((*size, 3), np.uint8)).save(path)


def test_read_coco_reports_and_drops_bad_boxes(tmp_path):
    _png(tmp_path / "a.png")
    coco = {
        "images": [{"id": 1, "file_name": "a.png", "height": 40, "width": 60},
                   {"id": 2, "file_name": "missing.png", "height": 40, "width": 60}],
        "categories": [{"id": 7, "name": "cat"}, {"id": 3, "name": "dog"}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 7, "bbox": [5, 5, 10, 20]},
            {"id": 11, "image_id": 1, "category_id": 3, "bbox": [50, 30, 10.5, 10.5]},  # clipped
            {"id": 12, "image_id": 1, "category_id": 3, "bbox": [70, 5, 5, 5]},  # outside
            {"id": 13, "image_id": 1, "category_id": 7, "bbox": [5, 5, 0, 10]},  # zero area
            {"id": 14, "image_id": 1, "category_id": 99, "bbox": [5, 5, 5, 5]},  # unknown
            {"id": 15, "image_id": 5, "category_id": 7, "bbox": [5, 5, 5, 5]},  # no image
        ],
    }
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    data = read_coco(tmp_path / "ann.json")
    assert data.class_names == ["dog", "cat"]  # category id order: 3, 7
    assert len(data) == 1 and data.classes[0].tolist() == [1, 0]
    np.testing.assert_allclose(data.boxes[0], [[5, 5, 15, 25], [50, 30, 60, 40]])
    skipped = dict(data.report.skipped)
    assert set(skipped) == {"ann.json: annotation 12", "ann.json: annotation 13",
                            "ann.json: annotation 14", "ann.json: annotation 15",
                            str(tmp_path / "missing.png")}
    assert "outside" in skipped["ann.json: annotation 12"]
    assert "zero-area" in skipped["ann.json: annotation 13"]
    assert "unknown class" in skipped["ann.json: annotation 14"]
    assert "5 skipped" in data.report.summary()
    with pytest.raises(BadInputError, match="annotation 15: image_id 5"):
        read_coco(tmp_path / "ann.json", strict=True)


def test_read_voc_one_based_pixels_and_unknown_names(tmp_path):
    _png(tmp_path / "img.png")
    objects = "".join(
        f"<object><name>{name}</name><bndbox><xmin>{a}</xmin><ymin>{b}</ymin><xmax>{c}</xmax>"
        f"<ymax>{d}</ymax></bndbox></object>"
        for name, (a, b, c, d) in [("cat", (1, 1, 10, 20)), ("horse", (2, 2, 8, 8)),
                                   ("cat", (6, 5, 5, 9))])  # xmax < xmin: no pixel
    (tmp_path / "img.xml").write_text(
        f"<annotation><filename>img.png</filename><size><width>60</width><height>40</height>"
        f"</size>{objects}</annotation>")
    (tmp_path / "broken.xml").write_text("<annotation><size>")
    data = read_voc(tmp_path, class_names=["cat", "dog"])
    np.testing.assert_allclose(data.boxes[0], [[0, 0, 10, 20]])
    reasons = dict(data.report.skipped)
    assert "unknown class" in reasons["img.xml: object 1 (horse)"]
    assert "zero-area" in reasons["img.xml: object 2 (cat)"]
    assert "unreadable" in reasons[str(tmp_path / "broken.xml")]
    assert read_voc(tmp_path).class_names == ["cat", "horse"]


def test_read_yolo_labels(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    _png(tmp_path / "images" / "a.png")
    _png(tmp_path / "images" / "b.png")  # no label file: an image without objects
    (tmp_path / "labels" / "a.txt").write_text(
        "0 0.5 0.5 0.5 0.25\n"  # good
        "3 0.5 0.5 0.1 0.1\n"  # unknown class
        "1 1.5 0.5 0.2 0.2\n"  # outside
        "1 0.5 0.5\n"  # malformed
        "\n")
    data = read_yolo(tmp_path / "images", tmp_path / "labels", class_names=["a", "b"])
    np.testing.assert_allclose(data.boxes[0], [[15, 15, 45, 25]])
    assert len(data.boxes[1]) == 0 and data.report.good == 2
    label = str(tmp_path / "labels" / "a.txt")
    assert sorted(item for item, _ in data.report.skipped) == [f"{label}:{n}" for n in (2, 3, 4)]


# --------------------------------------------------------------------------- augmentation


def _square_image():
    image = np.zeros((40, 60, 3), np.float32)
    image[10:30, 5:25] = 200.0
    return image, np.array([[5, 10, 25, 30]], np.float32)


def _inside_is_square(image, box):
    x0, y0, x1, y1 = np.round(box).astype(int)
    inside = image[y0 + 1:y1 - 1, x0 + 1:x1 - 1, 0]
    return inside.size > 0 and inside.min() > 150


def test_geometry_moves_boxes_with_the_pixels():
    image, boxes = _square_image()
    flipped, fboxes = flip_horizontal(image, boxes)
    assert _inside_is_square(flipped, fboxes[0]) and fboxes[0].tolist() == [35, 10, 55, 30]
    boxed, lboxes, (scale, px, py) = letterbox(image, boxes, (64, 64))
    assert boxed.shape == (64, 64, 3) and _inside_is_square(boxed, lboxes[0])
    np.testing.assert_allclose((lboxes - [px, py, px, py]) / scale, boxes, atol=1e-4)
    cropped, cboxes, classes = crop(image, np.vstack([boxes, [[48, 0, 60, 5]]]),
                                    np.array([0, 1]), (10, 0, 50, 40))
    assert classes.tolist() == [0]  # the second box keeps 2/12 < 30 % of its area → dropped
    np.testing.assert_allclose(cboxes, [[0, 10, 15, 30]])
    rng = np.random.default_rng(3)
    for _ in range(20):
        out, oboxes, ocls = augment_sample(image, boxes, np.array([0]), rng)
        for box in oboxes:
            assert _inside_is_square(out, box)


def test_detection_dataset_pads_and_letterboxes():
    images, boxes, classes = synthetic_detection(3, 48, num_classes=2, seed=2)
    dataset = detection_dataset(list(images), boxes, classes, (64, 64), batch_size=2,
                                max_boxes=5, augment=True, shuffle=True)
    x, y = next(iter(dataset))
    assert x.shape == (2, 64, 64, 3) and y["boxes"].shape == (2, 5, 4)
    assert set(np.unique(y["classes"].numpy())) <= {-1.0, 0.0, 1.0}
    assert (y["classes"].numpy() >= 0).sum() >= 2


def test_plot_detections_writes_png(tmp_path):
    images, boxes, classes = synthetic_detection(2, 64, seed=0)
    det = [{"boxes": b, "scores": np.full(len(b), 0.8), "classes": c}
           for b, c in zip(boxes, classes)]
    path = plot_detections(images, det, tmp_path / "det.png", class_names=["a", "b", "c"],
                           ground_truth=[{"boxes": b} for b in boxes])
    assert path.read_bytes()[:4] == b"\x89PNG"


# --------------------------------------------------------------------------- decoding


@pytest.mark.slow  # importing keras-cv alone takes 10-20 s on a busy 2-core machine
def test_yolo_decoder_matches_keras_cv():
    keras_cv = pytest.importorskip("keras_cv")
    from keras_cv.src.models.object_detection.yolo_v8 import yolo_v8_detector as ref

    rng = np.random.default_rng(0)
    raw = {"boxes": rng.normal(size=(2, 84, 64)).astype(np.float32),
           "classes": rng.uniform(size=(2, 84, 3)).astype(np.float32)}
    boxes, _ = BoxDecoder("yolov8", (64, 64), 3)(raw)
    points, strides = ref.get_anchors(image_shape=(64, 64))
    expected = ref.dist2bbox(ref.decode_regression_to_boxes(raw["boxes"]), points)
    expected = np.clip(keras.ops.convert_to_numpy(expected * strides[:, None]), 0, 64)
    np.testing.assert_allclose(boxes, expected, atol=1e-4)
    assert keras_cv.__version__.startswith("0.9")


def test_retinanet_decoder_matches_keras():
    decoder = BoxDecoder("retinanet", (64, 64), 2, {"max_level": 5, "anchor_size": 2.0})
    anchors = decoder.anchors()
    rng = np.random.default_rng(0)
    deltas = rng.normal(0, 0.3, (1, len(anchors), 4)).astype(np.float32)
    boxes, _ = decoder({"bbox_regression": deltas, "cls_logits": np.zeros((1, len(anchors), 2))})
    expected = keras.utils.bounding_boxes.decode_deltas_to_boxes(
        anchors=anchors, boxes_delta=deltas, anchor_format="xyxy", box_format="xyxy",
        encoded_format="center_xywh", image_shape=(64, 64, 3))
    expected = np.clip(keras.ops.convert_to_numpy(expected), 0, 64)
    np.testing.assert_allclose(boxes, expected, atol=1e-3)


def test_ssd_targets_decode_back_to_the_boxes():
    model = build_detector("ssd", helpers.TINY, num_classes=2, weights=None,
                           input_shape=(64, 64, 3), compile=False)
    _, y, boxes, classes = helpers.batch(2, num_classes=2)
    deltas, target = model.encode(y["boxes"], y["classes"])
    deltas, target = keras.ops.convert_to_numpy(deltas), keras.ops.convert_to_numpy(target)
    from keras_transfer.detection.ssd import decode_ssd_deltas

    decoded = decode_ssd_deltas(model.anchors, deltas)
    for i in range(2):
        positive = target[i] > 0
        assert positive.sum() >= len(boxes[i])  # every box has at least its best anchor
        iou = box_iou(decoded[i][positive], boxes[i]).max(1)
        np.testing.assert_allclose(iou, 1.0, atol=1e-3)
        assert set(target[i][positive] - 1) == set(classes[i].tolist())


# --------------------------------------------------------------------------- builders


def test_pyramid_levels_blocks_and_freezing():
    from keras_transfer.detection import block_status, set_detector_trainable
    from keras_transfer.detection.pyramid import PyramidBackbone

    pyramid = PyramidBackbone.from_backbone("efficientnet_lite0", weights=None,
                                            input_shape=(64, 64, 3))
    shapes = {k: tuple(v.shape[1:]) for k, v in pyramid.pyramid_outputs.items()}
    assert shapes == {"P3": (8, 8, 40), "P4": (4, 4, 112), "P5": (2, 2, 320)}
    assert [b.name for b in pyramid.blocks()][-2:] == ["block6", "block7"]
    model = build_detector("ssd", helpers.TINY, num_classes=2, weights=None,
                           input_shape=(64, 64, 3), trainable_blocks=2, compile=False)
    assert block_status(model) == {"stem": False, "block1": False, "block2": False,
                                   "block3": False, "block4": True, "block5": True}
    head = [w for w in model.trainable_weights if "head_p3" in w.path]
    assert head, "the detection head must always train"
    assert set_detector_trainable(model, ["block1"]) == ["block1"]
    assert block_status(model)["block1"] and not block_status(model)["block5"]
    with pytest.raises(BadInputError, match="Unknown block"):
        set_detector_trainable(model, ["block9"])


def test_builder_errors():
    with pytest.raises(BadInputError, match="Unknown detector kind"):
        build_detector("detr", helpers.TINY, num_classes=2, weights=None, input_shape=(64, 64, 3))
    with pytest.raises(BadInputError, match="multiples of 32"):
        build_detector("ssd", helpers.TINY, num_classes=2, weights=None, input_shape=(60, 60, 3))
    with pytest.raises(BadInputError, match="head_widht"):
        build_detector("ssd", helpers.TINY, num_classes=2, weights=None,
                       input_shape=(64, 64, 3), head_widht=3)


def test_yolov8_without_keras_cv_names_the_extra(monkeypatch):
    import sys

    from keras_transfer.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "keras_cv", None)  # what an absent package looks like
    with pytest.raises(MissingDependencyError, match=r"keras-transfer\[detection\]"):
        build_detector("yolov8", helpers.TINY, num_classes=2, weights=None,
                       input_shape=(64, 64, 3))
