"""Grad-CAM explanations: heatmap shapes and normalisation, the layer from the block map,
localization on a synthetic task, the randomization sanity check (Adebayo et al., 2018),
multi-label and segmentation maps, errors, overlays, the evaluation grid and
``predict --explain``, and a `.keras` reload of an explained model."""

from __future__ import annotations

import json
import types

import keras
import numpy as np
import pytest

import keras_transfer as kt
from keras_transfer import BackboneSpec, BlockEnd, register_backbone
from keras_transfer.backbones import registry
from keras_transfer.errors import BadInputError
from keras_transfer.explain import gradcam

TINY = "explain_test_cnn"
SIZE, QUADRANT, SQUARE = 32, 16, 8


def _tiny_cnn(input_tensor, weights=None):
    """Three conv + max-pool blocks, no BatchNorm: trains in seconds, a 4×4 map at 32 px."""
    x = input_tensor
    for block, filters in (("block1", 16), ("block2", 32), ("block3", 64)):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu",
                                name=f"{block}_conv")(x)
        x = keras.layers.MaxPooling2D(2, name=f"{block}_pool")(x)
    return types.SimpleNamespace(output=x)


@pytest.fixture(scope="module")
def tiny_backbone():
    """A backbone registered as data (a spec with its block ends), like any family."""
    register_backbone(BackboneSpec(
        name=TINY, family="tiny", source="keras.applications", build=_tiny_cnn,
        preprocessing="tf",
        blocks=tuple((f"block{i}", BlockEnd(rf"^block{i}_")) for i in (1, 2, 3)),
        default_size=SIZE, min_size=8, description="a tiny CNN for explanation tests"))
    yield TINY
    registry._REGISTRY.pop(TINY)


def _quadrant_images(count: int, rng: np.random.Generator):
    """Noise everywhere but one 8×8 square in a random quadrant; its colour is the class (red 1,
    green 0): only that region carries the class, and it moves from image to image."""
    images = rng.normal(110, 35, (count, SIZE, SIZE, 3)).clip(0, 255).astype("float32")
    labels = rng.integers(0, 2, count)
    quadrants = rng.integers(0, 4, count)
    for i in range(count):
        row, col = divmod(int(quadrants[i]), 2)
        top, left = rng.integers(1, QUADRANT - SQUARE, 2)
        top, left = row * QUADRANT + top, col * QUADRANT + left
        colour = [230, 40, 40] if labels[i] else [40, 230, 40]
        images[i, top:top + SQUARE, left:left + SQUARE] = colour
    return images, labels, quadrants


def _mass_in_quadrant(heatmaps: np.ndarray, quadrants: np.ndarray) -> np.ndarray:
    shares = []
    for heat, quadrant in zip(heatmaps, quadrants):
        row, col = divmod(int(quadrant), 2)
        inside = heat[row * QUADRANT:(row + 1) * QUADRANT, col * QUADRANT:(col + 1) * QUADRANT]
        shares.append(inside.sum() / max(float(heat.sum()), 1e-9))
    return np.array(shares)


def _points_into_quadrant(heatmaps: np.ndarray, quadrants: np.ndarray) -> np.ndarray:
    """The pointing game: is each map's hottest pixel in the square's quadrant?"""
    hits = []
    for heat, quadrant in zip(heatmaps, quadrants):
        y, x = np.unravel_index(heat.argmax(), heat.shape)
        hits.append((y // QUADRANT) * 2 + x // QUADRANT == quadrant)
    return np.array(hits)


@pytest.fixture(scope="module")
def quadrant_task(tiny_backbone):
    """The tiny CNN trained from scratch on the quadrant task (≈3 s), and held-out images."""
    keras.utils.set_random_seed(1234)
    rng = np.random.default_rng(0)
    train_images, train_labels, _ = _quadrant_images(512, rng)
    test_images, test_labels, quadrants = _quadrant_images(32, rng)
    model = kt.build_image_classifier(tiny_backbone, 2, weights=None, trainable_blocks="all",
                                      input_shape=(SIZE, SIZE, 3), dropout=0.0,
                                      learning_rate=3e-3)
    model.fit(train_images, train_labels, epochs=5, batch_size=32, verbose=0)
    accuracy = model.evaluate(test_images, test_labels, verbose=0)[1]
    return types.SimpleNamespace(model=model, images=test_images, labels=test_labels,
                                 quadrants=quadrants, accuracy=accuracy)


def _calibrate_batchnorm(model: keras.Model, images: np.ndarray) -> None:
    """Random-init BatchNorm keeps mean 0 / variance 1 and, frozen, lets activations saturate
    (MobileNetV2's ReLU6 makes every output the same); one pass with each BatchNorm's moving
    statistics set to the batch's (momentum 0) gives the random network sensible activations."""
    layers = []

    def walk(container):
        for layer in container.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layers.append(layer)
            if isinstance(layer, keras.Model):
                walk(layer)

    walk(model)
    saved = [(layer.trainable, layer.momentum) for layer in layers]
    for layer in layers:
        layer.trainable, layer.momentum = True, 0.0
    model(images, training=True)
    for layer, (trainable, momentum) in zip(layers, saved):
        layer.trainable, layer.momentum = trainable, momentum


def _non_degenerate(heat: np.ndarray) -> bool:
    return heat.min() == 0.0 and heat.max() == 1.0 and heat.std() > 0.05


# --------------------------------------------------------------------------- maps


@pytest.mark.parametrize("name, size, layer", [
    ("vgg16", 32, "block4_pool"),        # block5 ends at 1×1 at 32 px: the block before it
    ("resnet50", 64, "conv5_block3_out"),
    ("mobilenet_v2", 64, "out_relu"),    # the "top" block ends the backbone
])
def test_heatmaps_have_the_input_size_and_are_scaled_to_0_1(name, size, layer):
    rng = np.random.default_rng(0)
    model = kt.build_image_classifier(name, 3, weights=None, input_shape=(size, size, 3))
    _calibrate_batchnorm(model, rng.uniform(0, 255, (16, size, size, 3)).astype("float32"))
    images = rng.uniform(0, 255, (4, size, size, 3))
    result = kt.explain(model, images)
    assert result.layer == layer
    assert result.heatmaps.shape == (4, size, size) and result.heatmaps.dtype == np.float32
    assert np.isfinite(result.heatmaps).all()
    assert result.heatmaps.min() >= 0.0 and result.heatmaps.max() <= 1.0
    assert sum(_non_degenerate(heat) for heat in result.heatmaps) >= 3
    predicted = model.predict(images, verbose=0)
    assert result.image_indices.tolist() == [0, 1, 2, 3]
    assert result.class_indices.tolist() == predicted.argmax(1).tolist()  # default: predicted
    np.testing.assert_allclose(result.outputs, predicted.max(1), rtol=1e-4)


def test_normalisation_of_constant_and_broken_maps_gives_zeros():
    maps = np.array([np.full((3, 3), 4.0), np.full((3, 3), np.nan), np.arange(9.0).reshape(3, 3)])
    out = gradcam.normalize(maps)
    assert out[0].tolist() == np.zeros((3, 3)).tolist() and not np.isnan(out).any()
    assert out[1].max() == 0.0 and out[2].min() == 0.0 and out[2].max() == 1.0


def test_a_layer_or_block_can_be_named(tiny_backbone):
    model = kt.build_image_classifier(tiny_backbone, 2, weights=None, input_shape=(32, 32, 3))
    image = np.random.default_rng(1).uniform(0, 255, (32, 32, 3))
    assert kt.explain(model, image).layer == "block3_pool"  # the last block's end
    assert kt.explain(model, image, layer="block2").layer == "block2_pool"
    assert kt.explain(model, image, layer="block2_conv").heatmaps.shape == (1, 32, 32)
    with pytest.raises(BadInputError, match="did you mean 'block2_conv'"):
        kt.explain(model, image, layer="block2conv")
    with pytest.raises(BadInputError, match="not a feature map"):
        kt.explain(model, image, layer="pool")


def test_the_heatmap_finds_the_region_that_carries_the_class(quadrant_task):
    task = quadrant_task
    assert task.accuracy == 1.0
    result = kt.explain(task.model, task.images)
    assert result.class_indices.tolist() == task.labels.tolist()  # every image right
    shares = _mass_in_quadrant(result.heatmaps, task.quadrants)
    pointing = _points_into_quadrant(result.heatmaps, task.quadrants)
    print(f"mass in the square's quadrant: mean {shares.mean():.3f}, min {shares.min():.3f}; "
          f"hottest pixel there for {pointing.mean():.0%} of the maps")
    # The quadrant is a quarter of the image; the map puts ~70 % of its mass there.
    assert shares.mean() > 0.55 and shares.min() > 0.3, shares
    assert pointing.mean() >= 0.9


def test_randomizing_the_weights_changes_the_heatmaps(quadrant_task, tiny_backbone):
    """Adebayo et al. (2018): a map that survives re-randomized weights explains the input, not
    the model. Cascading randomization, from the output layer down to the first convolution."""
    from scipy.stats import spearmanr

    task = quadrant_task
    images = task.images[:16]
    trained = kt.explain(task.model, images)
    randomized = kt.build_image_classifier(tiny_backbone, 2, weights=None, dropout=0.0,
                                           input_shape=(SIZE, SIZE, 3))
    randomized.set_weights(task.model.get_weights())
    correlations, shares = {}, {}
    for name in ("predictions", "block3_conv", "block2_conv", "block1_conv"):
        layer = randomized.get_layer(name) if name == "predictions" else (
            randomized.get_layer(tiny_backbone).get_layer(name))
        layer.kernel.assign(layer.kernel_initializer(layer.kernel.shape))
        layer.bias.assign(layer.bias_initializer(layer.bias.shape))
        maps = np.stack([kt.explain(randomized, image, class_index=int(c)).heatmaps[0]
                         for image, c in zip(images, trained.class_indices)])
        correlations[name] = np.nanmean([spearmanr(a.ravel(), b.ravel()).correlation
                                         for a, b in zip(trained.heatmaps, maps)])
        shares[name] = _mass_in_quadrant(maps, task.quadrants[:16]).mean()
    print("rank correlation with the trained maps, randomized down to:", correlations)
    print("mass in the square's quadrant:", _mass_in_quadrant(trained.heatmaps,
                                                             task.quadrants[:16]).mean(), shares)
    # Only the whole cascade is asserted: with the head alone random, a sparse feature map can
    # give the same map (one active channel, its random weight positive), and random filters
    # still respond to the bright square, so the partly random maps can stay close.
    assert correlations["block1_conv"] < 0.5, correlations
    trained_share = _mass_in_quadrant(trained.heatmaps, task.quadrants[:16]).mean()
    assert shares["block1_conv"] < trained_share - 0.2, (trained_share, shares)


def test_multi_label_models_get_a_map_per_class():
    model = kt.build_image_classifier("vgg16", 3, task="multi_label", weights=None,
                                      input_shape=(32, 32, 3))
    images = np.random.default_rng(2).uniform(0, 255, (2, 32, 32, 3))
    predictions = model.get_layer("predictions")
    predictions.bias.assign([4.0, -4.0, 4.0])  # classes 0 and 2 above 0.5, class 1 below
    result = kt.explain(model, images)
    assert result.image_indices.tolist() == [0, 0, 1, 1]
    assert result.class_indices.tolist() == [0, 2, 0, 2]
    assert result.maps_of(1).shape == (2, 32, 32) and (result.outputs > 0.5).all()
    asked = kt.explain(model, images, class_index=[2, 1])
    assert asked.class_indices.tolist() == [2, 1, 2, 1]
    predictions.bias.assign([-4.0, -5.0, -6.0])  # none above 0.5: the top one
    assert kt.explain(model, images).class_indices.tolist() == [0, 0]


def test_segmenters_get_a_map_per_predicted_class():
    from keras_transfer.heads import build_segmenter

    model = build_segmenter("unet", "vgg16", 3, weights=None, input_shape=(32, 32, 3), filters=8)
    images = np.random.default_rng(3).uniform(0, 255, (2, 32, 32, 3))
    predicted = model.predict(images, verbose=0).argmax(-1)
    result = kt.explain(model, images)
    expected = [sorted(np.unique(mask).tolist()) for mask in predicted]
    assert [result.class_indices[result.image_indices == i].tolist() for i in (0, 1)] == expected
    assert result.heatmaps.shape == (sum(map(len, expected)), 32, 32)
    assert ((result.outputs > 0) & (result.outputs < 1)).all()
    asked = kt.explain(model, images, class_index=1)
    assert asked.class_indices.tolist() == [1, 1] and np.isfinite(asked.heatmaps).all()
    assert any(_non_degenerate(heat) for heat in result.heatmaps)


# --------------------------------------------------------------------------- errors


@pytest.fixture(scope="module")
def small_classifier():
    return kt.build_image_classifier("vgg16", 3, weights=None, input_shape=(32, 32, 3))


@pytest.mark.parametrize("kwargs, message", [
    (dict(images=np.zeros((2, 40, 40, 3))), r"do not fit the model's input \(32, 32, 3\)"),
    (dict(images=np.zeros((32, 32, 1))), r"do not fit the model's input"),
    (dict(images=np.zeros((0, 32, 32, 3))), r"expected images"),
    (dict(images=np.full((32, 32, 3), np.nan)), r"NaN"),
    (dict(class_index=3), r"class_index 3 is out of range: the model has 3 output\(s\), 0…2"),
    (dict(class_index=[0, -1]), r"class_index -1 is out of range"),
    (dict(class_index="cat"), r"expected an int or a list of ints"),
    (dict(method="lime"), r"method='lime'; supported: \['gradcam'\]"),
    (dict(batch_size=0), r"batch_size=0"),
])
def test_bad_input_is_a_clear_error(small_classifier, kwargs, message):
    kwargs = {"images": np.zeros((1, 32, 32, 3)), **kwargs}
    with pytest.raises(BadInputError, match=message):
        kt.explain(small_classifier, **kwargs)


def test_a_model_without_a_block_map_needs_layer():
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
    image = np.random.default_rng(4).uniform(0, 255, (16, 16, 3))
    with pytest.raises(BadInputError, match=r"no backbone block map.*Pass layer="):
        kt.explain(model, image)
    assert kt.explain(model, image, layer="conv").heatmaps.shape == (1, 16, 16)


def test_detectors_are_refused_with_what_is_supported():
    import detection_helpers as helpers

    from keras_transfer.detection import build_detector

    model = build_detector("ssd", helpers.TINY, num_classes=2, weights=None,
                           input_shape=(64, 64, 3))
    with pytest.raises(BadInputError, match=r"classifiers.*segmenters.*"
                                            r"Detectors are not supported"):
        kt.explain(model, np.zeros((1, 64, 64, 3)))


# --------------------------------------------------------------------------- files


def test_the_explained_model_is_unchanged_and_reloads_with_safe_mode(small_classifier,
                                                                     tmp_path):
    model = small_classifier
    images = np.random.default_rng(5).uniform(0, 255, (2, 32, 32, 3))
    config = json.dumps(model.get_config(), sort_keys=True, default=str)
    before = kt.explain(model, images)
    assert json.dumps(model.get_config(), sort_keys=True, default=str) == config
    model.save(tmp_path / "model.keras")
    reloaded = keras.models.load_model(tmp_path / "model.keras", safe_mode=True)
    assert "Lambda" not in json.dumps(reloaded.get_config(), default=str)
    after = kt.explain(reloaded, images)
    np.testing.assert_allclose(after.heatmaps, before.heatmaps, atol=1e-5)
    assert after.layer == before.layer


def test_overlays_are_written_as_png_files(small_classifier, tmp_path):
    from PIL import Image

    images = np.random.default_rng(6).uniform(0, 255, (2, 32, 32, 3))
    result = kt.explain(small_classifier, images, output_dir=tmp_path / "one",
                        names=["a/cat.jpg", "b/cat.jpg"])
    assert [path.name for path in result.files] == ["cat_gradcam.png", "cat_2_gradcam.png"]
    assert np.asarray(Image.open(result.files[0])).shape == (32, 32, 3)
    several = kt.explain(small_classifier, images[:1], class_index=[0, 2])
    paths = several.save_overlays(images[:1], tmp_path / "two", class_names=["x y", "b", "z"])
    assert [path.name for path in paths] == ["image000_gradcam_x_y.png", "image000_gradcam_z.png"]
    # Written through a temporary file and a rename: nothing else is left in the folder.
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in paths)


def test_evaluation_writes_gradcam_overlays_of_the_wrong_examples(small_classifier, tmp_path):
    from keras_transfer.evaluation.classification import evaluate

    images = np.random.default_rng(7).uniform(0, 255, (12, 32, 32, 3)).astype("float32")
    labels = np.arange(12) % 3
    report = evaluate(small_classifier, (images, labels), output_dir=tmp_path, num_wrong=6)
    assert "wrong_examples_gradcam.png" in report["files"]
    assert (tmp_path / "wrong_examples_gradcam.png").stat().st_size > 0
    assert json.loads((tmp_path / "evaluation.json").read_text())["files"] == report["files"]


def test_a_failed_explanation_never_costs_the_report(tmp_path, capsys):
    from keras_transfer.evaluation.classification import evaluate

    inputs = keras.Input((8, 8, 3))
    flat = keras.layers.Flatten()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(flat))
    images = np.random.default_rng(8).uniform(0, 255, (9, 8, 8, 3)).astype("float32")
    report = evaluate(model, (images, np.arange(9) % 3), output_dir=tmp_path, num_wrong=4)
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("evaluate: no wrong_examples_gradcam.png (explain:")
    assert "wrong_examples_gradcam.png" not in report["files"]
    assert {"evaluation.json", "confidently_wrong.png"} <= {p.name for p in tmp_path.iterdir()}


def test_predict_explain_writes_an_overlay_per_image(tiny_backbone, tmp_path, capsys):
    from PIL import Image

    from keras_transfer.commands.cli import main
    from keras_transfer.export import export

    model = kt.build_image_classifier(tiny_backbone, 2, weights=None, input_shape=(32, 32, 3))
    export(model, tmp_path / "export", formats=("keras", "tflite"), labels=["dark", "bright"],
           verbose=False)
    rng = np.random.default_rng(9)
    paths = []
    for name in ("first", "second"):  # other sizes than the model's: resized like predict
        paths.append(str(tmp_path / f"{name}.png"))
        Image.fromarray(rng.integers(0, 255, (40, 36, 3), dtype=np.uint8)).save(paths[-1])
    capsys.readouterr()
    out = tmp_path / "overlays"
    assert main(["predict", str(tmp_path / "export"), *paths, "--explain", str(out)]) == 0
    captured = capsys.readouterr()
    assert [line.split(": ")[0] for line in captured.out.strip().splitlines()] == paths
    assert sorted(p.name for p in out.iterdir()) == ["first_gradcam.png", "second_gradcam.png"]
    assert np.asarray(Image.open(out / "first_gradcam.png")).shape == (32, 32, 3)
    assert f"Grad-CAM: wrote 2 overlay(s) to {out}" in captured.err

    tflite = str(tmp_path / "export" / "model.tflite")
    assert main(["predict", tflite, paths[0], "--explain", str(out)]) == 2
    assert "Grad-CAM needs the Keras model" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # the image taken as the folder: named, with the fix
        main(["predict", str(tmp_path / "export"), "--explain", *paths])
    assert "put a bare --explain after the positional arguments" in capsys.readouterr().err


# --------------------------------------------------------------------------- slow


@pytest.mark.slow
def test_imagenet_lite0_on_chelsea_and_the_randomization_check():
    """Real offline ImageNet EfficientNet-Lite0 weights on skimage's cat: a non-degenerate map,
    and a different one when the backbone's weights are random (full randomization)."""
    from PIL import Image
    from scipy.stats import spearmanr
    from skimage import data

    cat = np.asarray(Image.fromarray(data.chelsea()).resize((224, 224), Image.BILINEAR),
                     np.float32)
    model = kt.build_image_classifier("efficientnet_lite0", 5, weights="imagenet",
                                      input_shape=(224, 224, 3))
    result = kt.explain(model, cat)
    heat = result.heatmaps[0]
    assert result.layer == "top_activation" and _non_degenerate(heat)
    assert 0.05 < (heat > 0.5).mean() < 0.8  # a region, neither a dot nor everything
    random = kt.build_image_classifier("efficientnet_lite0", 5, weights=None,
                                       input_shape=(224, 224, 3))
    random.get_layer("predictions").set_weights(model.get_layer("predictions").get_weights())
    other = kt.explain(random, cat, class_index=int(result.class_indices[0])).heatmaps[0]
    correlation = spearmanr(heat.ravel(), other.ravel()).correlation
    print(f"Lite0 on chelsea: {(heat > 0.5).mean():.1%} of the pixels above 0.5, std "
          f"{heat.std():.3f}; rank correlation with random backbone weights {correlation:.3f}")
    assert correlation < 0.5


def _one_backbone_per_family() -> list[str]:
    families = {}
    for name in kt.list_backbones():
        spec = kt.get_spec(name)
        if spec.source in ("keras.applications", "keras_hub") and spec.family != "tiny":
            families.setdefault(spec.family, name)
    return sorted(families.values())


@pytest.mark.slow
@pytest.mark.parametrize("name", _one_backbone_per_family())
def test_every_registered_cnn_family_can_be_explained(name):
    spec = kt.get_spec(name)
    size = max(spec.min_size, 64)
    model = kt.build_image_classifier(name, 2, weights=None, input_shape=(size, size, 3))
    result = kt.explain(model, np.random.default_rng(10).uniform(0, 255, (2, size, size, 3)))
    block_ends = [block.output_layer.name for block in kt.blocks_of(model)]
    assert result.layer in block_ends
    assert result.heatmaps.shape == (2, size, size) and np.isfinite(result.heatmaps).all()
    assert 0.0 <= result.heatmaps.min() and result.heatmaps.max() <= 1.0
