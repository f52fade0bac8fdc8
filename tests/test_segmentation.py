"""Segmentation: DeepLabV3+ / U-Net heads on registry backbones, mask loading, IoU, export."""

import json

import keras
import numpy as np
import pytest
from PIL import Image

import keras_transfer as kt
from keras_transfer.backbones import BackboneSpec, BlockEnd
from keras_transfer.data.masks import (
    read_mask,
    segmentation_augmentation,
    segmentation_from_arrays,
    segmentation_from_folders,
    synthetic_shapes,
)
from keras_transfer.errors import BadInputError
from keras_transfer.export import export
from keras_transfer.heads import build_segmenter
from keras_transfer.heads.segmentation import block_strides, default_atrous_rates
from keras_transfer.evaluation.segmentation import (
    confusion_matrix,
    mean_iou_metric,
    per_class_iou_metrics,
    save_overlays,
    segmentation_scores,
)

SIZE = 32


def _tiny_layers(x):
    for name, filters in (("stem", 8), ("block1", 16), ("block2", 32)):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", name=f"{name}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
        x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return x


def _tiny_flat(input_tensor, weights=None):
    """keras.applications protocol: built on the preprocessed tensor, one flat graph."""
    return keras.Model(keras.utils.get_source_inputs(input_tensor), _tiny_layers(input_tensor))


def _tiny_nested(source):
    """keras-hub protocol: a hub `Backbone` of its own (any image size), nested in our wrapper."""
    import keras_hub

    inputs = keras.Input((None, None, 3))
    return keras_hub.models.Backbone(inputs=inputs, outputs=_tiny_layers(inputs),
                                     name="tiny_core")


@pytest.fixture(scope="module")
def tiny_backbones():
    """Two registered families with blocks ending at strides 2, 4, 8: the heads read everything
    from the block map, so tiny families check the whole cycle (flat and nested graphs) fast."""
    from keras_transfer.backbones import registry

    blocks = dict(stem_end=BlockEnd(r"^stem_"),
                  blocks=tuple((f"block{i}", BlockEnd(rf"^block{i}_")) for i in (1, 2)))
    specs = [
        BackboneSpec(name="tiny_flat", family="tiny", source="keras.applications",
                     build=_tiny_flat, preprocessing="tf", min_size=16, **blocks),
        BackboneSpec(name="tiny_nested", family="tiny", source="keras_hub", build=_tiny_nested,
                     preprocessing=dict(mode="tf"), min_size=16, **blocks),
    ]
    for spec in specs:
        kt.register_backbone(spec)
    yield
    for spec in specs:
        registry._REGISTRY.pop(spec.name, None)


def _train_steps(model, images, masks, steps=5):
    """Loss of each step on one fixed batch, run eagerly (tracing costs more than 5 steps)."""
    model.run_eagerly = True
    return [float(model.train_on_batch(images, masks, return_dict=True)["loss"])
            for _ in range(steps)]


def _statuses(model):
    return {row["block"]: row["status"] for row in kt.describe(model, print_fn=None)}


def _check_export(model, tmp_path, images, masks, formats):
    info = export(model, tmp_path / "export", formats=formats, verify_data=(images, masks),
                  num_verify=len(images), verbose=False)
    assert info["model"]["output"]["task"] == "segmentation"
    lite = info["verification"]["tflite"]["model.tflite"]
    assert lite["max_abs_diff"] < 1e-4
    assert lite["pixel_agreement"] >= 0.99
    assert 0.0 <= lite["mean_iou"] <= 1.0 and 0.0 <= lite["pixel_accuracy"] <= 1.0
    assert abs(info["verification"]["keras"]["mean_iou"] - lite["mean_iou"]) < 0.02
    return info


def _check_reload(model, path, images, statuses):
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(np.asarray(loaded(images)), np.asarray(model(images)), atol=1e-5)
    assert _statuses(loaded) == statuses  # the block map still applies after loading
    kt.unfreeze(loaded, last=2)
    assert list(_statuses(loaded).values())[-2:] == ["trainable", "trainable"]


@pytest.mark.slow
def test_deeplab_v3_plus_trains_reloads_and_exports(tiny_backbones, tmp_path):
    images, masks = synthetic_shapes(4, (SIZE, SIZE), seed=1)
    images = images.astype("float32")
    model = build_segmenter("deeplab_v3_plus", "tiny_flat", num_classes=4, weights=None,
                            input_shape=(SIZE, SIZE, 3), trainable_blocks=1, filters=16,
                            learning_rate=1e-2)
    assert model.output_shape == (None, SIZE, SIZE, 4)
    assert model.get_layer("predictions").dtype_policy.compute_dtype == "float32"
    statuses = _statuses(model)
    assert statuses == {"stem": "frozen", "block1": "frozen", "block2": "trainable"}
    # Low-level feature at stride 4, ASPP on the last block (stride 8 here).
    assert [tuple(s[1:3]) for s in kt.find_backbone(model)[0].output_shape] == [(8, 8), (4, 4)]

    losses = _train_steps(model, images, masks)
    assert losses[-1] < 0.8 * losses[0], losses

    _check_export(model, tmp_path, images, masks, ("keras", "tflite"))
    _check_reload(model, tmp_path / "export" / "model.keras", images, statuses)


@pytest.mark.slow
def test_unet_on_a_nested_backbone_trains_reloads_and_exports(tiny_backbones, tmp_path):
    images, masks = synthetic_shapes(4, (SIZE, SIZE), seed=2)
    images = images.astype("float32")
    model = build_segmenter("unet", "tiny_nested", num_classes=4, weights=None,
                            input_shape=(SIZE, SIZE, 3), trainable_blocks=["block1"],
                            filters=16, learning_rate=1e-2)
    assert model.output_shape == (None, SIZE, SIZE, 4)
    statuses = _statuses(model)
    assert statuses == {"stem": "frozen", "block1": "trainable", "block2": "frozen"}
    # A skip from every stride, deep to shallow, then a stage at full resolution.
    skips = [model.get_layer(f"decoder{i}_concat").input[1].shape[1] for i in (1, 2)]
    assert skips == [8, 16]
    assert model.get_layer("decoder3_block2_relu").output.shape[1] == SIZE

    losses = _train_steps(model, images, masks)
    assert losses[-1] < 0.8 * losses[0], losses

    info = _check_export(model, tmp_path, images, masks, ("keras", "saved_model", "tflite"))
    assert info["verification"]["saved_model"]["pixel_agreement"] == 1.0
    assert info["verification"]["saved_model"]["max_abs_diff"] < 1e-5
    _check_reload(model, tmp_path / "export" / "model.keras", images, statuses)


@pytest.mark.slow
def test_heads_on_mobilenet_v2_and_the_efficientnet_lite0_hub_backbone():
    images = synthetic_shapes(2, (SIZE, SIZE), seed=3)[0].astype("float32")
    deeplab = build_segmenter("deeplab_v3_plus", "mobilenet_v2", 4, weights=None,
                              input_shape=(SIZE, SIZE, 3), filters=16, compile=False)
    backbone = kt.find_backbone(deeplab)[0]
    assert block_strides(backbone) == {"stem": 2, "block1": 4, "block2": 8, "block3": 16,
                                       "block4": 32, "top": 32}
    assert set(_statuses(deeplab).values()) == {"frozen"}  # default: feature extraction
    assert deeplab.get_layer("low_level_project_conv").input.shape[1] == SIZE // 4
    probabilities = np.asarray(deeplab(images))
    assert probabilities.shape == (2, SIZE, SIZE, 4)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    with pytest.raises(BadInputError, match="feature_blocks"):
        build_segmenter("deeplab_v3_plus", backbone, 4, feature_blocks=["block1"])

    # keras-hub backbone: its inner graph is tapped; blocks still freeze by name.
    unet = build_segmenter("unet", "efficientnet_lite0", 4, weights=None,
                           input_shape=(SIZE, SIZE, 3), trainable_blocks=["block7", "top"],
                           filters=16, compile=False)
    assert [b for b, s in _statuses(unet).items() if s == "trainable"] == ["block7", "top"]
    skips = [unet.get_layer(f"decoder{i}_concat").input[1].shape[1] for i in range(1, 5)]
    assert skips == [2, 4, 8, 16]  # block5, block3, block2, block1: the last block per stride
    assert np.asarray(unet(images)).shape == (2, SIZE, SIZE, 4)


def test_export_verification_of_dense_outputs():
    from keras_transfer.export import describe, verify

    rng = np.random.default_rng(0)
    reference = rng.dirichlet(np.ones(3), (2, 4, 4)).astype("float32")
    outputs = reference.copy()
    outputs[0, 0, 0] = outputs[0, 0, 0, ::-1]  # one pixel changes its class
    result = verify.compare(reference, outputs, "segmentation")
    assert result["max_abs_diff"] > 0 and "top1_agreement" not in result
    changed = reference[0, 0, 0].argmax() != outputs[0, 0, 0].argmax()
    assert result["pixel_agreement"] == 1.0 - changed / 32
    masks = reference.argmax(-1)[:, ::2, ::2]  # labels at half size: resized (nearest) to fit
    scores = verify.score(reference, masks, "segmentation")
    assert 0.0 < scores["mean_iou"] <= 1.0 and 0.0 < scores["pixel_accuracy"] <= 1.0
    # Classifier verification is unchanged.
    top1 = verify.compare(reference[:, 0, 0], outputs[:, 0, 0], "single_label")["top1_agreement"]
    assert top1 == 1.0 - changed / 2
    inputs = keras.Input((4, 4, 3))
    logits = keras.layers.Conv2D(3, 1)(inputs)
    dense = keras.layers.Activation("softmax", name="predictions")(logits)
    assert describe.describe_model(keras.Model(inputs, dense))["output"]["task"] == "segmentation"


def test_segmenter_argument_errors():
    with pytest.raises(BadInputError, match="kind"):
        build_segmenter("fcn", "mobilenet_v2", 3)
    with pytest.raises(BadInputError, match="num_classes"):
        build_segmenter("unet", "mobilenet_v2", 1)
    with pytest.raises(BadInputError, match="registered backbone"):
        build_segmenter("unet", "hub:some_preset", 3)
    with pytest.raises(kt.UnknownBackboneError, match="mobilenet_v2"):
        build_segmenter("unet", "mobilenet_v9", 3)
    assert default_atrous_rates(32) == (6, 12, 18)
    assert default_atrous_rates(8) == (2, 3, 4)


# --------------------------------------------------------------------------- masks from folders


def _save_pair(root, name, image, mask):
    Image.fromarray(image).save(root / "images" / f"{name}.jpg", quality=95)
    if mask is not None:
        Image.fromarray(mask).save(root / "masks" / f"{name}.png")


@pytest.fixture
def pair_folders(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    images, masks = synthetic_shapes(6, (20, 24), seed=3)
    for i in range(4):
        _save_pair(tmp_path, f"good{i}", images[i], masks[i])
    _save_pair(tmp_path, "no_mask", images[4], None)
    _save_pair(tmp_path, "small_mask", images[5], masks[5][:10, :12])
    bad_class = masks[0].copy()
    bad_class[0, 0] = 7
    _save_pair(tmp_path, "bad_class", images[0], bad_class)
    (tmp_path / "images" / "broken.jpg").write_bytes(b"not a jpeg at all")
    Image.fromarray(masks[0]).save(tmp_path / "masks" / "broken.png")
    _save_pair(tmp_path, "broken_mask", images[1], None)
    (tmp_path / "masks" / "broken_mask.png").write_bytes(b"\x89PNG garbage")
    Image.fromarray(masks[2]).save(tmp_path / "masks" / "orphan.png")
    return tmp_path, masks


def test_folder_pairs_skip_each_bad_kind_and_resize_masks_nearest(pair_folders):
    root, masks = pair_folders
    data = segmentation_from_folders(root / "images", root / "masks", image_size=(16, 16),
                                     num_classes=4, batch_size=8, verbose=False)
    reasons = dict(data.report.skipped)
    assert data.report.good == 4 and len(reasons) == 5
    assert "no mask" in reasons[str(root / "images" / "no_mask.jpg")]
    assert "differs from its image" in reasons[str(root / "masks" / "small_mask.png")]
    assert "class index 7 out of range" in reasons[str(root / "masks" / "bad_class.png")]
    assert "not an image" in reasons[str(root / "images" / "broken.jpg")]
    assert "broken_mask.png" in " ".join(reasons)
    assert any("without an image" in note for note in data.report.notes)
    x, m = next(iter(data.train))
    assert x.shape == (4, 16, 16, 3) and x.dtype == "float32"
    assert m.shape == (4, 16, 16) and m.dtype == "int32"
    # Nearest neighbour: only the original class ids, never blends of them.
    assert set(np.unique(m.numpy())) <= set(np.unique(masks[:4]))


def test_strict_mode_raises_naming_the_path(pair_folders):
    root, _ = pair_folders
    with pytest.raises(BadInputError, match=r"bad_class\.png.*out of range"):
        segmentation_from_folders(root / "images", root / "masks", image_size=(16, 16),
                                  num_classes=4, strict=True, verbose=False)


def test_palette_and_indexed_masks(tmp_path):
    palette = {(0, 0, 0): 0, (255, 0, 0): 1, (0, 255, 0): 2, (224, 224, 192): 255}
    colours = np.array([[[0, 0, 0], [255, 0, 0]], [[0, 255, 0], [224, 224, 192]]], np.uint8)
    Image.fromarray(colours).save(tmp_path / "rgb.png")
    assert read_mask(tmp_path / "rgb.png", palette).tolist() == [[0, 1], [2, 255]]
    Image.fromarray(np.array([[9, 9]], np.uint8) * 20).convert("RGB").save(tmp_path / "odd.png")
    with pytest.raises(BadInputError, match=r"odd\.png: colour \(180, 180, 180\)"):
        read_mask(tmp_path / "odd.png", palette)
    indexed = Image.fromarray(np.array([[0, 1], [2, 2]], np.uint8), "P")
    indexed.putpalette([0, 0, 0, 200, 0, 0, 0, 200, 0] + [0] * 759)
    indexed.save(tmp_path / "p.png")
    assert read_mask(tmp_path / "p.png").tolist() == [[0, 1], [2, 2]]  # VOC style: index = class
    with pytest.raises(BadInputError, match="needs palette"):
        read_mask(tmp_path / "rgb.png")


def test_joint_augmentation_moves_image_and_mask_together():
    _, masks = synthetic_shapes(8, (32, 32), seed=4)
    images = np.repeat(masks[..., None] * 60, 3, axis=-1).astype(np.uint8)  # image encodes mask
    augment = segmentation_augmentation(flip="horizontal_and_vertical", zoom=0.3, seed=0)
    data = segmentation_from_arrays(images, masks, batch_size=8, augment=augment, verbose=False)
    x, m = next(iter(data.train))
    x, m = x.numpy(), m.numpy()
    assert not np.array_equal(np.sort(m.reshape(8, -1)), np.sort(masks.reshape(8, -1)))
    from_image = np.round(x[..., 0] / 60).astype(int)
    assert np.mean(from_image == m) > 0.95  # only bilinear edges of the image may differ
    assert set(np.unique(m)) <= {0, 1, 2, 3}


def test_arrays_reject_out_of_range_masks():
    images, masks = synthetic_shapes(3, (8, 8))
    masks[2, 0, 0] = 9
    with pytest.raises(BadInputError, match=r"masks\[2\]"):
        segmentation_from_arrays(images, masks, num_classes=4, verbose=False)


# --------------------------------------------------------------------------- metrics


def test_iou_function_matches_the_keras_metric_and_hand_values():
    true = np.array([[[0, 0, 1, 1]]])
    pred = np.array([[[0, 1, 1, 1]]])
    scores = segmentation_scores(true, pred, 3, class_names=["bg", "a", "b"])
    assert scores["per_class_iou"] == {"bg": 0.5, "a": 2 / 3, "b": None}  # b: absent, no IoU
    assert scores["mean_iou"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert scores["pixel_accuracy"] == 0.75

    rng = np.random.default_rng(0)
    masks = rng.integers(0, 3, (4, 8, 8))
    probs = rng.dirichlet(np.ones(3), (4, 8, 8)).astype("float32")
    metric = mean_iou_metric(3)
    metric.update_state(masks, probs)
    expected = segmentation_scores(masks, probs, 3)
    assert float(metric.result()) == pytest.approx(expected["mean_iou"], abs=1e-5)
    for k, per_class in enumerate(per_class_iou_metrics(3)):
        per_class.update_state(masks, probs)
        assert float(per_class.result()) == pytest.approx(expected["per_class_iou"][str(k)],
                                                          abs=1e-5)
    ignored = confusion_matrix(np.array([[0, 255]]), np.array([[0, 1]]), 2, ignore_class=255)
    assert ignored.tolist() == [[1, 0], [0, 0]]


def test_overlay_png(tmp_path):
    images, masks = synthetic_shapes(2, (24, 24), seed=5)
    path = save_overlays(tmp_path / "overlay.png", images, masks, masks=masks,
                         class_names=["bg", "circle", "square", "triangle"])
    with Image.open(path) as png:
        assert png.format == "PNG" and png.width > png.height / 2 > 0
    json.dumps(segmentation_scores(masks, masks, 4))  # scores are JSON-ready
