"""Test-time augmentation: `evaluate(tta=...)`, `predict(tta=...)` on exports, `--tta` in the CLI.

Every expected value is the mean of per-view predictions computed here by hand with numpy flips
and turns (not with `apply_view`), on a tiny random model whose Flatten layer keeps the pixel
layout, so no view gives the same output as another.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import write_two_class_folder

from keras_transfer.commands.cli import main
from keras_transfer.errors import BadInputError
from keras_transfer.evaluation.classification import (
    classification_report,
    evaluate,
    evaluate_classifier,
    evaluate_details,
)
from keras_transfer.export import export
from keras_transfer.export.predict import Artifact, predict, recorded_symmetries

SIZE = 16


def _tiny_model(classes: int = 3, size: tuple[int, int] = (SIZE, SIZE)) -> keras.Model:
    inputs = keras.Input((*size, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name="predictions")(
        keras.layers.Flatten()(x))
    return keras.Model(inputs, outputs)


def _by_hand(model: keras.Model, images: np.ndarray, views: str) -> tuple[np.ndarray, np.ndarray]:
    """(mean over the views, identity view) of the outputs; views 'hflip' or 'dihedral'."""
    mirrored = images[:, :, ::-1]  # left-right
    if views == "hflip":
        batches = [images, mirrored]
    else:  # the 8 elements of the dihedral group: 4 turns of the image and of its mirror
        batches = [np.rot90(x, k, axes=(1, 2)) for x in (images, mirrored) for k in range(4)]
    outputs = [model.predict(np.ascontiguousarray(b), verbose=0) for b in batches]
    return np.mean(outputs, axis=0), outputs[0]


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).uniform(0, 255, (10, SIZE, SIZE, 3)).astype("float32")


def test_evaluate_averages_every_view_and_keeps_the_single_view_score(images):
    keras.utils.set_random_seed(3)
    model = _tiny_model()
    labels = np.arange(len(images)) % 3
    expected, plain = _by_hand(model, images, "dihedral")
    assert not np.allclose(expected, plain, atol=1e-3)  # the views really differ

    # A tf.data dataset, batched unevenly: the views are applied batch by batch.
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    details = evaluate_details(model, dataset, tta="dihedral", num_wrong=3)
    np.testing.assert_allclose(details.outputs, expected, rtol=1e-5, atol=1e-6)
    report = details.report
    reference = classification_report(labels, expected, ["0", "1", "2"], num_wrong=3)
    assert report["accuracy"] == reference["accuracy"]
    assert report["confidently_wrong"] == reference["confidently_wrong"]
    single = classification_report(labels, plain, ["0", "1", "2"])["accuracy"]
    assert report["tta"] == {"symmetries": ["hflip", "vflip", "rot90"], "views": 8,
                             "single_view": {"accuracy": single}}

    # An (x, y) tuple and the plain classifier report take the same path.
    assert evaluate(model, (images, labels), tta=("hflip", "vflip", "rot90"),
                    batch_size=3)["accuracy"] == reference["accuracy"]
    classifier = evaluate_classifier(model, dataset, ["a", "b", "c"], tta="rot90,hflip")
    assert classifier["tta"] == {"symmetries": ["rot90", "hflip"], "views": 8}
    assert classifier["calibration"] == reference["calibration"]
    # Without tta nothing changes: the identity outputs, no "tta" key.
    untouched = evaluate_details(model, dataset)
    np.testing.assert_allclose(untouched.outputs, plain, rtol=1e-5, atol=1e-6)
    assert "tta" not in untouched.report


def test_evaluate_tta_refuses_quarter_turns_of_non_square_images():
    model = _tiny_model(size=(8, 12))
    x = np.zeros((2, 8, 12, 3), "float32")
    with pytest.raises(BadInputError, match=r"square.*Drop 'rot90'"):
        evaluate(model, (x, np.array([0, 1])), tta="dihedral")
    assert evaluate(model, (x, np.array([0, 1])), tta="flips")["tta"]["views"] == 4


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One tiny model exported as model.keras + model.tflite with symmetries ["hflip"]."""
    keras.utils.set_random_seed(5)
    model = _tiny_model(classes=2)
    folder = tmp_path_factory.mktemp("tta") / "export"
    export(model, folder, formats=("keras", "tflite"), labels=["bright", "dark"],
           metadata={"symmetries": ["hflip"], "dataset": "two classes"}, num_verify=2,
           verbose=False)
    return model, folder


def _scores(results, labels=("bright", "dark")) -> np.ndarray:
    return np.array([[dict(top)[label] for label in labels] for top in results])


@pytest.mark.parametrize("file", ["model.keras", "model.tflite"])
def test_predict_tta_on_exports_is_the_mean_of_the_views(exported, images, file):
    model, folder = exported
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["user"]["symmetries"] == ["hflip"]
    assert recorded_symmetries(folder / file) == ("hflip",)
    expected, plain = _by_hand(model, images, "hflip")
    assert not np.allclose(expected, plain, atol=1e-3)
    recorded = _scores(predict(folder / file, images, top_k=2, tta=True))
    np.testing.assert_allclose(recorded, expected, atol=1e-5)
    # Symmetries given explicitly win over the record; False is one view.
    dihedral, _ = _by_hand(model, images, "dihedral")
    explicit = _scores(predict(folder / file, images, top_k=2, tta="dihedral"))
    np.testing.assert_allclose(explicit, dihedral, atol=1e-5)
    np.testing.assert_allclose(_scores(predict(folder / file, images, top_k=2)), plain, atol=1e-5)


def test_predict_tta_true_without_recorded_symmetries_says_what_to_pass(exported, images,
                                                                        tmp_path):
    _, folder = exported
    bare = tmp_path / "model.keras"  # a bare file: metadata.json is looked for beside it
    shutil.copy(folder / "model.keras", bare)
    with pytest.raises(BadInputError) as error:
        predict(bare, images[:1], tta=True)
    message = str(error.value)
    assert str(tmp_path / "metadata.json") in message and "tta='hflip,vflip'" in message
    # A metadata.json without symmetries: the same clear error.
    (tmp_path / "metadata.json").write_text(json.dumps({"user": {"dataset": "x"}}))
    with pytest.raises(BadInputError, match="no symmetries recorded"):
        predict(bare, images[:1], tta=True)
    # report.json's training decision is the fallback record.
    (tmp_path / "report.json").write_text(json.dumps(
        {"decisions": {"augment": {"symmetries": ["vflip"]}}}))
    assert recorded_symmetries(bare) == ("vflip",)
    assert len(predict(bare, images[:1], tta=True)) == 1


def test_predict_tta_refuses_quarter_turns_of_non_square_images():
    toy = Artifact(Path("toy.keras"), "keras", (8, 12), lambda x: x.reshape(len(x), -1)[:, :2])
    with pytest.raises(BadInputError, match=r"90°.*square"):
        predict(toy, np.zeros((1, 8, 12, 3)), tta="rot90")
    assert len(predict(toy, np.zeros((1, 8, 12, 3)), tta="flips")) == 1


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
    return write_two_class_folder(tmp_path_factory.mktemp("images"), 10, (SIZE, SIZE, 3))


def test_cli_predict_tta(exported, image_files, capsys):
    model, folder = exported
    paths = [str(image_files / "bright" / "0.png"), str(image_files / "dark" / "1.png")]
    from keras_transfer.export.images import to_image_batch

    expected, plain = _by_hand(model, to_image_batch(paths, (SIZE, SIZE)), "hflip")
    for argv in (["--tta"], ["--tta", "hflip"], []):
        assert main(["predict", str(folder), *paths, "--top-k", "2", *argv]) == 0
        captured = capsys.readouterr()
        printed = [dict((label, float(score)) for label, score in
                        (part.split() for part in line.split(": ")[1].split(", ")))
                   for line in captured.out.strip().splitlines()]
        want = expected if argv else plain
        np.testing.assert_allclose(_scores([list(p.items()) for p in printed]), want, atol=6e-4)
        assert ("mean of 2 views (hflip)" in captured.err) == bool(argv)
    # A value that is no symmetry set (an image path swallowed by --tta) is named.
    with pytest.raises(SystemExit):
        main(["predict", str(folder), "--tta", paths[0]])
    assert "is not a symmetry set" in capsys.readouterr().err


def test_cli_evaluate_tta_prints_and_writes_both_scores(exported, image_files, capsys):
    _, folder = exported
    common = ["--dataset", str(image_files), "--validation-split", "0", "--test-split", "0.5",
              "--top-k", "1"]
    assert main(["evaluate", str(folder), *common]) == 0
    plain = json.loads((folder / "evaluation_test" / "evaluation.json").read_text())
    assert "tta" not in plain
    capsys.readouterr()

    assert main(["evaluate", str(folder), *common, "--tta"]) == 0  # symmetries from metadata
    out = capsys.readouterr().out
    report = json.loads((folder / "evaluation_test_tta" / "evaluation.json").read_text())
    assert report["tta"] == {"symmetries": ["hflip"], "views": 2,
                             "single_view": {"accuracy": plain["accuracy"]}}
    assert report["num_examples"] == plain["num_examples"] == 10
    assert (f"accuracy {plain['accuracy']:.2%} single-view, {report['accuracy']:.2%} with TTA "
            "(2 views)") in out
    assert "mean of 2 views (hflip)" in out

    out_dir = folder.parent / "dihedral"
    assert main(["evaluate", str(folder / "model.keras"), *common, "--tta", "dihedral",
                 "--output-dir", str(out_dir)]) == 0
    assert json.loads((out_dir / "evaluation.json").read_text())["tta"]["views"] == 8
    assert "with TTA (8 views)" in capsys.readouterr().out


def test_numpy_and_tensor_views_agree():
    """`apply_view` keeps numpy batches in numpy (predict's fast path) and tensors in keras.ops
    (tf.data, graphs): both give the same pixels for every view."""
    import tensorflow as tf

    from keras_transfer.data.symmetry import apply_view, group_views

    batch = np.random.default_rng(1).uniform(size=(2, 5, 5, 3)).astype("float32")
    views = group_views("dihedral")
    assert len(views) == 8
    for view in views:
        fast = apply_view(batch, view)
        assert isinstance(fast, np.ndarray)
        np.testing.assert_array_equal(fast, np.asarray(apply_view(tf.constant(batch), view)))
