"""Export text models: strings-in SavedModel, token-ids-in TFLite, the tokenizer beside them.

Layout of an export folder (only the requested parts; ``metadata.json`` has the schema every
task's export shares, `keras_transfer.export.schema`)::

    model.keras            Keras 3 archive (tokenizer vocabulary inside; safe_mode loads it)
    saved_model/           signature ``serve`` (= ``serving_default``): the model's string
                           inputs (``text``, or ``text_a``/``text_b``, or ``question``/``context``),
                           shape (None,) → the outputs (``predictions``, or ``start``/``end``)
    model.tflite           TFLite, built-in ops only; int32 inputs (batch, sequence_length),
    model.float16.tflite   batch 1 by default and resizable: ``token_ids``, ``padding_mask``
    model.dynamic.tflite   (1 = real token) and, where the family has them, ``segment_ids``
    model.int8.tflite      (0 first text, 1 second) → the same outputs (signature
                           ``serve_tokens``); int8: integer weights and activations, float
                           outputs, calibrated on representative texts
    tokenizer/             preprocessor.json (keras-hub config) + the vocabulary files
    labels.txt             class names in output order
    metadata.json          task, inputs, outputs, tokenizer (special token ids), verification

Why TFLite takes token ids: keras-hub tokenizers are TensorFlow Text ops (WordPiece, BPE,
SentencePiece), which are neither TFLite built-ins nor TF Select (Flex) ops, so a strings-in
graph does not convert. Tokenize on the device with the shipped vocabulary, as `metadata.json`
says, or in Python with `TextTFLiteRunner` / `keras_transfer.predict`.

Why int8 works here: attention and span masks add -1e9 to masked logits, which would stretch
an int8 range over 1e9 and round every real logit to one level; the calibration
(`keras_transfer.export.calibration`) leaves mask values out of the ranges.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

import keras
import numpy as np

from keras_transfer.compat.keras_internals import call_nodes, outputs_structure
from keras_transfer.errors import BadInputError
from keras_transfer.export import schema
from keras_transfer.export.progress import step
from keras_transfer.export.verify import check_parity, compare_named
from keras_transfer.text.layers import TextPreprocessing
from keras_transfer.text.predict import (  # noqa: F401 - TextTFLiteRunner: its old home
    TextTFLiteRunner,
    as_batches as _as_batches,
    tokenize as _tokens,
)
from keras_transfer.utils.files import atomic_directory

FORMATS = schema.FORMATS
QUANTIZATIONS = ("float32", "float16", "dynamic", "int8")
TOKENIZER_DIR = "tokenizer"
PREPROCESSOR_FILE = "preprocessor.json"
DEFAULT_VERIFY_TEXTS = ("the city is big and the river is blue.",
                        "what a great film, i love it!", "an awful, boring day")


def _preprocessing_layer(model: keras.Model) -> TextPreprocessing:
    found = [layer for layer in model.layers if isinstance(layer, TextPreprocessing)]
    if len(found) != 1:
        raise BadInputError(f"Model '{model.name}' is not a strings-in text model (it needs "
                            "exactly one TextPreprocessing layer; build it with "
                            "keras_transfer.text).")
    return found[0]


def _outputs_dict(outputs) -> dict:
    return dict(outputs) if isinstance(outputs, dict) else {"predictions": outputs}


def token_model(model: keras.Model, *, variable_length: bool = False,
                ) -> tuple[keras.Model, list[str]]:
    """The model after its tokenizer: token inputs in, the same outputs.

    Returns ``(model, input_names)``: a functional model sharing `model`'s layers and weights,
    taking a list of tensors in the order of `input_names` (``padding_mask`` boolean, the others
    int32), ``(batch, sequence_length)`` each. With ``variable_length=True`` the inputs are
    ``(batch, None)``: any length up to ``sequence_length`` (batches padded only as far as their
    longest text, see `token_dataset`).

    Example:
    >>> import tempfile
    >>> from keras_transfer.text import build_text_classifier, make_tiny_preset
    >>> model = build_text_classifier(str(make_tiny_preset("bert", tempfile.mkdtemp())), 2,
    ...                               sequence_length=8)
    >>> inner, names = token_model(model, variable_length=True)
    >>> names, inner.inputs[0].shape
    (['padding_mask', 'segment_ids', 'token_ids'], (None, None))
    """
    layer = _preprocessing_layer(model)
    names = keras.tree.flatten({key: key for key in layer.specs})
    node = call_nodes(layer)[0]
    tokens = dict(zip(names, keras.tree.flatten(node.output_tensors)))
    outputs = _outputs_dict(model.output if len(model.outputs) == 1 else
                            keras.tree.pack_sequence_as(outputs_structure(model), model.outputs))
    inner = keras.Model([tokens[name] for name in names], outputs, name=f"{model.name}_tokens")
    if variable_length:
        # The same layers called again on inputs of unknown length: weights stay shared.
        inputs = [keras.Input((None,), dtype=tokens[name].dtype, name=name) for name in names]
        inner = keras.models.clone_model(inner, input_tensors=inputs,
                                         clone_function=lambda layer: layer)
    return inner, names


def _string_inputs(model: keras.Model) -> list[str]:
    return [tensor.name.split(":")[0] for tensor in model.inputs]


def _serve_text(model: keras.Model):
    import tensorflow as tf

    names = _string_inputs(model)

    def serve(*texts):
        return _outputs_dict(model(list(texts) if len(texts) > 1 else texts[0], training=False))

    return serve, [tf.TensorSpec((None,), tf.string, name=name) for name in names]


def _serve_tokens(inner: keras.Model, names: Sequence[str], specs: dict, batch_size: int | None):
    import tensorflow as tf

    def serve(*tokens):
        cast = [tf.cast(t, specs[n][1]) for t, n in zip(tokens, names)]
        return inner(cast, training=False)

    return serve, [tf.TensorSpec((batch_size, specs[n][0]), tf.int32, name=n) for n in names]


def _write_archive(directory: Path, track: keras.Model, fn, signature, name: str) -> None:
    archive = keras.export.ExportArchive()
    archive.track(track)
    archive.add_endpoint(name, fn, input_signature=signature)
    archive.write_out(str(directory), verbose=False)


def tflite_filename(quantization: str) -> str:
    """``model.tflite`` for float32, else ``model.<quantization>.tflite``.

    Example:
    >>> tflite_filename("dynamic")
    'model.dynamic.tflite'
    """
    from keras_transfer.export.tflite import tflite_filename as filename

    return filename(quantization)


def _tokenizer_facts(preprocessor) -> dict[str, Any]:
    tokenizer = preprocessor.tokenizer
    facts = {"preprocessor": type(preprocessor).__name__, "tokenizer": type(tokenizer).__name__,
             "sequence_length": int(preprocessor.sequence_length),
             "files": sorted(getattr(tokenizer, "file_assets", None) or [])}
    for key in ("start_token_id", "end_token_id", "pad_token_id"):
        value = getattr(tokenizer, key, None)
        facts[key] = int(value) if value is not None else None
    for key in ("lowercase", "strip_accents", "truncate", "add_start_token", "add_end_token"):
        for owner in (tokenizer, preprocessor):
            if hasattr(owner, key):
                facts[key] = getattr(owner, key)
                break
    return facts


def save_preprocessor(preprocessor, directory: str | os.PathLike) -> Path:
    """Writes a keras-hub preprocessor (config + vocabulary files) for `load_preprocessor`.

    Example:
    >>> # save_preprocessor(model.get_layer("tokenize").preprocessor, "export/tokenizer")
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = keras.saving.serialize_keras_object(preprocessor)
    (directory / PREPROCESSOR_FILE).write_text(json.dumps(config, indent=2), encoding="utf-8")
    preprocessor.tokenizer.save_assets(str(directory))
    return directory


def load_preprocessor(directory: str | os.PathLike):
    """Reads a preprocessor written by `save_preprocessor` (e.g. ``<export>/tokenizer``).

    Example:
    >>> # pre = load_preprocessor("export/tokenizer"); pre(["some text"])["token_ids"]
    """
    import keras_hub  # noqa: F401 - registers the classes named in the config

    directory = Path(directory)
    try:
        config = json.loads((directory / PREPROCESSOR_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise BadInputError(f"{directory}: no readable {PREPROCESSOR_FILE} ({error}).") from error
    preprocessor = keras.saving.deserialize_keras_object(config)
    preprocessor.tokenizer.load_assets(str(directory))
    return preprocessor


@dataclasses.dataclass
class _TextPlan:
    """What a text export writes and verifies on, checked before anything is written."""

    task: str
    formats: tuple[str, ...]
    quantization: tuple[str, ...]
    labels: list[str] | None
    layer: TextPreprocessing
    inner: keras.Model  # the layers after the tokenizer: token ids in
    names: list[str]  # the token inputs, in `inner`'s order
    string_inputs: list[str]
    output_names: list[str]
    texts: list[list[str]]  # verification texts, one list per string input
    tokens: dict[str, np.ndarray]
    reference: dict[str, np.ndarray]  # the Keras outputs on `texts`
    calibration: list[dict[str, np.ndarray]] | None  # batch-1 token feeds for int8


def _text_plan(model: keras.Model, formats, quantization, labels, verify_texts,
               representative_texts) -> _TextPlan:
    import tensorflow as tf

    from keras_transfer.tasks import task_name_of

    formats = schema.choices(formats, FORMATS, "formats", "export_text_model")
    quantization = schema.choices(quantization, QUANTIZATIONS, "quantization",
                                  "export_text_model")
    layer = _preprocessing_layer(model)
    inner, names = token_model(model)
    string_inputs = _string_inputs(model)
    output_names = list(_outputs_dict(model.output if len(model.outputs) == 1 else
                                      {k: None for k in outputs_structure(model)}))
    if labels is not None and len(model.outputs) != 1:
        raise BadInputError(f"export_text_model: labels for a model of outputs {output_names}.")
    labels = schema.check_labels(labels, model.outputs[0].shape[-1], "export_text_model")
    texts = _as_batches(list(verify_texts), len(string_inputs))
    tensors = [tf.constant(column) for column in texts]
    reference = _outputs_dict(model(tensors if len(tensors) > 1 else tensors[0], training=False))
    calibration = None
    if "int8" in quantization and "tflite" in formats:
        source = _as_batches(list(representative_texts or verify_texts), len(string_inputs))
        feeds = _tokens(layer.preprocessor, source, names)
        calibration = [{n: feeds[n][i:i + 1] for n in names} for i in range(len(source[0]))]
    return _TextPlan(task_name_of(model), formats, quantization if "tflite" in formats else (),
                     labels, layer, inner, names, string_inputs, output_names, texts,
                     _tokens(layer.preprocessor, texts, names),
                     {k: np.asarray(v) for k, v in reference.items()}, calibration)


def _text_metadata(model: keras.Model, plan: _TextPlan, user) -> dict[str, Any]:
    from keras_transfer.tasks import task_config_of

    kinds = {"question_answering": "question_context"}
    specs = plan.layer.specs
    token_inputs = {n: {"dtype": "int32", "shape": [-1, specs[n][0]]} for n in plan.names}
    tokenizer = _tokenizer_facts(plan.layer.preprocessor)
    pairs = len(plan.string_inputs) == 2
    info = schema.new_metadata(
        plan.task, model={"name": model.name, "num_params": int(model.count_params())},
        labels=plan.labels, formats=plan.formats, quantization=plan.quantization,
        input={"kind": kinds.get(plan.task, "pairs" if pairs else "texts"),
               "names": plan.string_inputs, "dtype": "string",
               "sequence_length": plan.layer.sequence_length,
               "tflite": {"signature": "serve_tokens", "inputs": token_inputs,
                          "tokenizer": TOKENIZER_DIR}},
        output={"kind": "spans" if plan.task == "question_answering" else "scores",
                "names": plan.output_names,
                "shape": {k: list(v.shape[1:]) for k, v in plan.reference.items()}},
        task_config={**task_config_of(model), "tokenizer": tokenizer}, user=user)
    # The keys of format 1, which earlier readers use.
    info.update(string_inputs=plan.string_inputs, outputs=plan.output_names, tokenizer=tokenizer,
                tflite={"inputs": token_inputs, "quantization": list(plan.quantization)})
    return info


def export_text_model(
    model: keras.Model,
    directory: str | os.PathLike,
    *,
    formats: str | Sequence[str] = FORMATS,
    quantization: str | Sequence[str] = ("float32",),
    labels: Sequence[str] | None = None,
    verify_texts: Sequence[Any] = DEFAULT_VERIFY_TEXTS,
    representative_texts: Sequence[Any] | None = None,
    metadata: dict[str, Any] | None = None,
    overwrite: bool = True,
    verbose: bool = True,
    require_parity: bool = True,
) -> dict[str, Any]:
    """Exports a strings-in text model (classifier, pair classifier or QA) and verifies it.

    Args:
        model: a model from `build_text_classifier` / `build_question_answerer`.
        directory: the export folder, replaced atomically.
        formats: any of ``"keras"``, ``"saved_model"``, ``"tflite"`` (or ``"all"``).
        quantization: TFLite flavours: ``"float32"``, ``"float16"``, ``"dynamic"`` (int8
            weights, float activations: about 4× smaller), ``"int8"`` (integer activations
            too, calibrated on `representative_texts`), or ``"all"``.
        labels: class names in output order (``labels.txt``).
        verify_texts: texts (pairs, or (question, context) pairs) to compare every file with
            the Keras model on.
        representative_texts: texts to calibrate int8 on (default: `verify_texts`).
        metadata: extra JSON-serializable facts for ``metadata.json``.
        require_parity: the SavedModel and ``model.tflite`` must reproduce the Keras outputs
            (max |diff| within 1e-3 of their scale), else nothing is written and
            `BadInputError` says what differs; False writes anyway and records it.

    Returns:
        The content of ``metadata.json`` plus ``"directory"``.

    Example:
    >>> # info = export_text_model(model, "exports/sentiment", labels=["neg", "neu", "pos"])
    >>> # info["verification"]["tflite"]["model.tflite"]["max_abs_diff"]  ->  ~1e-6
    """
    plan = _text_plan(model, formats, quantization, labels, verify_texts, representative_texts)
    info = _text_metadata(model, plan, metadata)
    directory = schema.check_target(directory, overwrite)
    with atomic_directory(directory, overwrite=overwrite) as tmp:
        os.chmod(tmp, 0o755)
        _write_text_files(model, tmp, plan, info, verbose)
        info["verification"] = _verify_text(tmp, plan, info["files"])
        check_parity(info["verification"], directory, len(plan.texts[0]), require_parity)
        schema.write_metadata(tmp, info)
    if verbose:
        print(f"[export] wrote {directory}", flush=True)
    return {**info, "directory": str(directory)}


def _write_text_files(model: keras.Model, tmp: Path, plan: _TextPlan, info: dict[str, Any],
                      verbose: bool) -> None:
    files = info["files"]
    if "keras" in plan.formats:
        with step("writing model.keras", verbose=verbose):
            model.save(tmp / schema.KERAS_FILE)
        files[schema.KERAS_FILE] = {"format": "keras"}
    if "saved_model" in plan.formats:
        with step("writing saved_model/ (strings in)", verbose=verbose):
            _write_archive(tmp / schema.SAVED_MODEL_DIR, model, *_serve_text(model), "serve")
        files[schema.SAVED_MODEL_DIR] = {"format": "saved_model", "signatures": ["serve"]}
    if plan.quantization:
        _write_text_tflite(tmp, plan, info, verbose)
    with step("writing tokenizer/", verbose=verbose):
        save_preprocessor(plan.layer.preprocessor, tmp / TOKENIZER_DIR)
    files[TOKENIZER_DIR] = {"format": "keras_hub preprocessor + vocabulary"}
    schema.write_labels(tmp, plan.labels, files)


def _write_text_tflite(tmp: Path, plan: _TextPlan, info: dict[str, Any], verbose: bool) -> None:
    from keras_transfer.export.tflite import convert_saved_model, embed_metadata

    # A separate graph of the layers after the tokenizer: the tokenizer's lookup tables must
    # not be in the SavedModel the converter reads (they are not TFLite ops).
    source = tmp / ".tflite_source"
    with step("tracing the token-ids graph for TFLite", verbose=verbose):
        _write_archive(source, plan.inner,
                       *_serve_tokens(plan.inner, plan.names, plan.layer.specs, None),
                       "serve_tokens")
    embedded = {"task": plan.task, "inputs": info["tflite"]["inputs"],
                "outputs": plan.output_names, "labels": plan.labels,
                "tokenizer": info["tokenizer"]}
    for flavour in plan.quantization:
        name = tflite_filename(flavour)
        with step(f"converting {name}", verbose=verbose):
            data = convert_saved_model(source, flavour, signature="serve_tokens",
                                       representative_images=plan.calibration)
            (tmp / name).write_bytes(embed_metadata(data, {**embedded, "quantization": flavour}))
        info["files"][name] = {"format": "tflite", "quantization": flavour}
        if flavour == "int8":
            info["files"][name]["calibration_texts"] = len(plan.calibration)
    shutil.rmtree(source)


def _verify_text(tmp: Path, plan: _TextPlan, files: dict[str, dict]) -> dict[str, Any]:
    import tensorflow as tf

    result: dict[str, Any] = {
        "num_samples": len(plan.texts[0]), "num_texts": len(plan.texts[0]),
        "reference_max_abs": float(max(np.abs(v).max() for v in plan.reference.values())),
        "tflite": {}}
    if schema.SAVED_MODEL_DIR in files:
        loaded = tf.saved_model.load(str(tmp / schema.SAVED_MODEL_DIR))
        got = loaded.signatures["serve"](**{n: tf.constant(c) for n, c in
                                            zip(plan.string_inputs, plan.texts)})
        result["saved_model"] = compare_named(plan.reference,
                                           {k: v.numpy() for k, v in got.items()})
    for name, entry in files.items():
        if entry["format"] == "tflite":
            runner = TextTFLiteRunner(tmp, name)
            got = runner.predict_tokens(plan.tokens)
            result["tflite"][name] = {
                "quantization": entry["quantization"], **compare_named(plan.reference, got),
                "latency_ms_median": float(np.median(runner.model.latencies_ms)),
                "size_bytes": (tmp / name).stat().st_size}
    return result
