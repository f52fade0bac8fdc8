"""Advanced recipes: discriminative learning rates, gradual unfreezing, the LR range test,
mixed precision and resuming a killed run.

VGG16 at 32×32 with random weights: few layers (quick to trace) and, unlike the random-init
MobileNets, non-vanishing activations, so every block gets real gradients.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_transfer as kt
from keras_transfer.recipes import (
    DiscriminativeOptimizer,
    GradualUnfreezing,
    block_lr_multipliers,
    compute_dtypes,
    default_callbacks,
    discriminative_optimizer,
    ensure_optimizer_covers,
    find_learning_rate,
    fine_tune,
    mixed_precision,
    variable_lr_multipliers,
)

SHAPE = (32, 32, 3)
BLOCKS = ["stem", "block1", "block2", "block3", "block4", "block5"]


def data(n=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, (n, *SHAPE)).astype("float32")
    return x, (np.arange(n) % 2).astype("int32")


def vgg(trainable_blocks="all"):
    return kt.build_image_classifier("vgg16", 2, weights=None, input_shape=SHAPE,
                                     trainable_blocks=trainable_blocks, dropout=0.0)


def snapshot(model):
    return {w.path: np.array(keras.ops.convert_to_numpy(w)) for w in model.weights}


def restore(model, values):
    for w in model.weights:
        w.assign(values[w.path])


def block_of(model):
    """{variable path: block name}, the head's variables under "head"."""
    owner = {w.path: b.name
             for b in kt.blocks_of(model) for layer in b.layers for w in layer.weights}
    return {w.path: owner.get(w.path, "head") for w in model.weights}


def gradients(model, x, y):
    with tf.GradientTape() as tape:
        probabilities = model(x, training=True)
        loss = keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y, probabilities))
    return tape.gradient(loss, model.trainable_variables)


def tolerance(before):
    # A float32 weight moves in steps of its own ulp: compare updates to that resolution.
    return 8 * np.finfo(np.float32).eps * max(np.abs(before).max(), 1e-3)


# --------------------------------------------------------------------------- discriminative


def test_block_multipliers_decay_from_head_to_stem():
    model = vgg()
    multipliers = block_lr_multipliers(model, decay=0.5)
    assert list(multipliers) == [*BLOCKS, "head"]
    assert [multipliers[b] for b in reversed(BLOCKS)] == [0.5 ** i for i in range(1, 7)]
    assert multipliers["head"] == 1.0
    paths = variable_lr_multipliers(model, multipliers)
    assert paths["block5_conv3/kernel"] == 0.5 and paths["block1_conv1/bias"] == 2 ** -5
    assert "predictions/kernel" not in paths  # the head is the optimizer's default
    with pytest.raises(ValueError, match="Unknown block"):
        variable_lr_multipliers(model, {"block9": 0.1})
    layer = model.get_layer("vgg16").get_layer
    by_pattern = DiscriminativeOptimizer("sgd", {"block5_.*": 0.1, "block5_conv1/kernel": 0.3},
                                         default_multiplier=2.0)
    assert by_pattern.multiplier_for(layer("block5_conv1").kernel) == 0.3  # exact path wins
    assert by_pattern.multiplier_for(layer("block5_conv1").bias) == 0.1
    assert by_pattern.multiplier_for(layer("block4_conv1").kernel) == 2.0
    with pytest.raises(ValueError, match="regular expression"):
        DiscriminativeOptimizer("sgd", {"block5_(": 0.1})
    with pytest.raises(TypeError, match="LossScaleOptimizer"):
        DiscriminativeOptimizer(keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD()))


@pytest.mark.parametrize("make", [
    lambda: keras.optimizers.SGD(0.5),
    lambda: keras.optimizers.Adam(1e-2),
], ids=["sgd", "adam"])
def test_each_block_moves_by_its_multiplier(make):
    model = vgg()
    x, y = data()
    grads = gradients(model, x, y)
    start = snapshot(model)

    def one_step(optimizer):
        restore(model, start)
        optimizer.apply(grads, model.trainable_variables)
        moved = {p: v - start[p] for p, v in snapshot(model).items()}
        restore(model, start)
        return moved

    reference = one_step(make())
    optimizer = discriminative_optimizer(model, make(), decay=0.5)
    scaled = one_step(optimizer)
    multipliers = block_lr_multipliers(model, decay=0.5)
    owner = block_of(model)
    ratios = {}
    for path, delta in reference.items():
        m = multipliers[owner[path]]
        np.testing.assert_allclose(scaled[path], m * delta, rtol=1e-4,
                                   atol=tolerance(start[path]), err_msg=path)
        ratios.setdefault(owner[path], []).append((scaled[path], delta))
    for block, pairs in ratios.items():  # the update magnitude per block, as asked
        num = np.sqrt(sum(np.sum(s ** 2) for s, _ in pairs))
        den = np.sqrt(sum(np.sum(d ** 2) for _, d in pairs))
        assert den > 0, f"{block} did not move at all"
        assert num / den == pytest.approx(multipliers[block], rel=1e-3), block


def test_decoupled_weight_decay_is_scaled_too():
    model = vgg()
    start = snapshot(model)
    lr, wd = 0.1, 0.5
    optimizer = discriminative_optimizer(model, keras.optimizers.AdamW(lr, weight_decay=wd),
                                         decay=0.5)
    zeros = [keras.ops.zeros(v.shape) for v in model.trainable_variables]
    optimizer.apply(zeros, model.trainable_variables)  # zero gradients: only the decay moves
    multipliers, owner = block_lr_multipliers(model, 0.5), block_of(model)
    kernel = "block2_conv1/kernel"
    m = multipliers[owner[kernel]]
    np.testing.assert_allclose(np.array(model.get_layer("vgg16").get_layer("block2_conv1").kernel),
                               start[kernel] * (1 - lr * wd * m), rtol=1e-6)


def test_discriminative_fit_save_reload_keeps_training(tmp_path):
    model = vgg(trainable_blocks=2)  # block4, block5 and the head train
    x, y = data()
    lr = 1e-2
    model.compile(discriminative_optimizer(model, keras.optimizers.Adam(lr), decay=0.5),
                  loss="sparse_categorical_crossentropy")
    grads = dict(zip([v.path for v in model.trainable_variables], gradients(model, x, y)))
    start = snapshot(model)
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)  # the traced train step
    after = snapshot(model)

    # Adam's first step, by hand, at learning rate lr × multiplier.
    multipliers, owner = block_lr_multipliers(model, 0.5), block_of(model)
    alpha = np.sqrt(1 - 0.999) / (1 - 0.9)
    for path, g in grads.items():
        g = np.array(g, dtype="float64")
        rate = lr * multipliers[owner[path]]
        expected = -rate * alpha * (0.1 * g) / (np.sqrt(0.001 * g * g) + 1e-7)
        np.testing.assert_allclose(after[path] - start[path], expected, rtol=2e-3,
                                   atol=tolerance(start[path]), err_msg=path)
    frozen = [p for p, b in owner.items() if b in BLOCKS[:4]]
    assert all(np.array_equal(after[p], start[p]) for p in frozen)

    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded.optimizer, DiscriminativeOptimizer)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert int(loaded.optimizer.iterations) == 1
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(np.array(a), np.array(b))

    # One more step on both: the reloaded model continues exactly where the original is.
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    loaded.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    assert int(loaded.optimizer.iterations) == 2
    for w, v in zip(model.weights, loaded.weights):
        np.testing.assert_allclose(np.array(v), np.array(w), rtol=1e-5, atol=1e-7, err_msg=w.path)


# --------------------------------------------------------------------------- gradual unfreezing


class Recorder(keras.callbacks.Callback):
    """Per epoch: the layers whose weights changed and the trainable layers."""

    def __init__(self):
        super().__init__()
        self.changed, self.trainable, self.first = [], [], None

    def on_epoch_begin(self, epoch, logs=None):
        self.before = snapshot(self.model)
        self.first = self.first or self.before

    def on_epoch_end(self, epoch, logs=None):
        now = snapshot(self.model)
        self.changed.append({p.split("/")[0] for p in now
                             if not np.array_equal(now[p], self.before[p])})
        self.trainable.append({w.path.split("/")[0] for w in self.model.trainable_weights})


def test_gradual_unfreezing_opens_one_block_per_epoch():
    model = vgg(trainable_blocks=0)
    model.compile(keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    x, y = data()
    recorder = Recorder()
    callback = GradualUnfreezing(every=1, start=1, max_blocks=2)
    history = model.fit(x, y, batch_size=4, epochs=3, shuffle=False, verbose=0,
                        callbacks=[callback, recorder])

    block5 = {f"block5_conv{i}" for i in (1, 2, 3)}
    block4 = {f"block4_conv{i}" for i in (1, 2, 3)}
    expected = [{"predictions"}, {"predictions"} | block5, {"predictions"} | block5 | block4]
    assert callback.unfrozen == {0: 0, 1: 1, 2: 2}
    assert history.history["unfrozen_blocks"] == [0, 1, 2]
    assert recorder.trainable == expected
    assert recorder.changed == expected  # frozen weights stay bit-identical while frozen
    end = snapshot(model)
    never = [p for p, b in block_of(model).items() if b in BLOCKS[:4]]
    assert never and all(np.array_equal(end[p], recorder.first[p]) for p in never)
    # The optimizer (built on the head by fit) was rebuilt on the head and the two blocks.
    assert len(model.optimizer._trainable_variables) == 2 + 6 + 6


def test_rebuilt_optimizer_covers_every_block_and_keeps_its_state():
    model = vgg(trainable_blocks=0)
    model.compile(keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    x, y = data()
    old = model.optimizer
    old.apply(gradients(model, x, y), model.trainable_variables)  # state for the head only
    assert len(old._trainable_variables) == 2
    new = ensure_optimizer_covers(model)
    assert model.optimizer is new is not old
    assert len(new._trainable_variables) == 28 and int(new.iterations) == 1
    slots = {v.name: np.array(v) for v in new.variables}
    for v in old.variables:
        np.testing.assert_array_equal(slots[v.name], np.array(v), err_msg=v.name)
    assert ensure_optimizer_covers(model) is new  # nothing missing: no rebuild


def test_fine_tune_with_discriminative_rates_and_gradual_unfreezing():
    model = vgg(trainable_blocks=0)
    x, y = data()
    before = snapshot(model)
    history = fine_tune(model, tf.data.Dataset.from_tensor_slices((x, y)).batch(4),
                        head_epochs=0, epochs=2, unfreeze_blocks=2, discriminative=0.5,
                        gradual_unfreezing=1, callbacks=[], verbose=0)
    logs = dict(history.stages)["fine_tune"]
    assert logs["unfrozen_blocks"] == [1.0, 2.0]
    assert isinstance(model.optimizer, DiscriminativeOptimizer)
    block4 = model.get_layer("vgg16").get_layer("block4_conv1")
    assert model.optimizer.multiplier_for(block4.kernel) == 0.25
    after, owner = snapshot(model), block_of(model)
    assert {owner[p] for p in after if not np.array_equal(after[p], before[p])} == {
        "block4", "block5", "head"}


# --------------------------------------------------------------------------- LR finder


def test_lr_finder_sweeps_restores_and_plots(tmp_path):
    model = vgg(trainable_blocks=1)
    optimizer = model.optimizer
    x, y = data(8)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    before = snapshot(model)
    result = find_learning_rate(model, dataset, min_lr=1e-6, max_lr=10.0, steps=16)

    after = snapshot(model)
    assert all(np.array_equal(before[p], after[p]) for p in before)  # bit-identical
    assert model.optimizer is optimizer and not optimizer.built  # the compiled one is untouched
    rates = np.array(result.learning_rates)
    assert 2 <= len(rates) <= 16 and np.all(np.diff(rates) > 0)
    assert rates[0] == pytest.approx(1e-6)
    assert len(result.losses) == len(rates) == len(result.raw_losses)
    assert np.isfinite(result.suggestion) and 1e-6 <= result.suggestion <= 10.0
    png = result.plot(tmp_path / "lr.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)  # the model still trains normally
    assert int(optimizer.iterations) == 2


# --------------------------------------------------------------------------- mixed precision


def test_mixed_bfloat16_build_and_fit_then_policy_restored():
    assert keras.config.dtype_policy().name == "float32"
    with mixed_precision("mixed_bfloat16") as policy:
        assert policy == "mixed_bfloat16"
        model = vgg()
    assert keras.config.dtype_policy().name == "float32"
    conv = model.get_layer("vgg16").get_layer("block3_conv1")
    assert conv.compute_dtype == "bfloat16" and conv.kernel.dtype == "float32"
    assert model.get_layer("predictions").compute_dtype == "float32"
    assert model.output.dtype == "float32"
    assert compute_dtypes(model) == {"bfloat16": 13, "float32": 1}
    x, y = data()
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert model.predict(x, verbose=0).dtype == np.float32

    with pytest.raises(RuntimeError), mixed_precision("mixed_float16"):
        raise RuntimeError("boom")
    assert keras.config.dtype_policy().name == "float32"  # restored on error too
    with pytest.raises(ValueError, match="expected one of"):
        with mixed_precision("float8"):
            pass


# --------------------------------------------------------------------------- resume


class Killed(Exception):
    pass


class Kill(keras.callbacks.Callback):
    """Stands in for the process dying right after epoch `at` (1-based) was completed."""

    def __init__(self, at):
        super().__init__()
        self.at = at

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.at:
            raise Killed(f"killed after epoch {self.at}")


class Epochs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_epoch_begin(self, epoch, logs=None):
        self.seen.append(epoch)


@pytest.mark.parametrize("gradual", [False, True], ids=["plain", "gradual_unfreezing"])
def test_killed_run_resumes_from_last_completed_epoch(tmp_path, gradual):
    x, y = data(8)
    initial = None

    def unfreezing():  # after BackupAndRestore in the list: the harder order
        return [GradualUnfreezing(every=1, start=1, max_blocks=1)] if gradual else []

    def fresh():
        nonlocal initial
        model = vgg(trainable_blocks=0)
        if initial is None:
            initial = snapshot(model)
        restore(model, initial)
        model.compile(keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
        return model

    def run(model, *extra, epochs=4):
        callbacks = default_callbacks(tmp_path / "run", monitor="loss", tensorboard=False,
                                      checkpoint=False, early_stopping=None)
        return model.fit(x, y, batch_size=4, epochs=epochs, shuffle=False, verbose=0,
                         callbacks=[*callbacks, *unfreezing(), *extra])

    reference = fresh()
    reference.fit(x, y, batch_size=4, epochs=4, shuffle=False, verbose=0, callbacks=unfreezing())

    first, seen = fresh(), Epochs()
    with pytest.raises(Killed):
        run(first, seen, Kill(at=2))
    assert seen.seen == [0, 1]
    assert (tmp_path / "run" / "backup").is_dir()

    second, seen = fresh(), Epochs()  # a new process: fresh model, same run directory
    history = run(second, seen)
    assert seen.seen == [2, 3]  # resumed at epoch 3 of 4
    assert len(history.history["loss"]) == 2
    if gradual:
        assert history.history["unfrozen_blocks"] == [1, 1]
    assert int(second.optimizer.iterations) == 8  # 4 epochs × 2 batches, optimizer state kept
    for w, v in zip(reference.weights, second.weights):
        np.testing.assert_allclose(np.array(v), np.array(w), rtol=1e-5, atol=1e-6, err_msg=w.path)
    assert not (tmp_path / "run" / "backup").exists()  # finished runs clean their backup up
