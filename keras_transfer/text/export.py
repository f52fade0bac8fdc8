"""Export text models: strings-in SavedModel, token-ids-in TFLite, the tokenizer beside them.

Layout of an export folder (only the requested parts)::

    model.keras            Keras 3 archive (tokenizer vocabulary inside; safe_mode loads it)
    saved_model/           signature ``serve`` (= ``serving_default``): the model's string
                           inputs (``text``, or ``text_a``/``text_b``, or ``question``/``context``),
                           shape (None,) → the outputs (``predictions``, or ``start``/``end``)
    model.tflite           TFLite, float32, built-in ops only; int32 inputs (batch,
    model.float16.tflite   sequence_length), batch 1 by default and resizable: ``token_ids``,
    model.dynamic.tflite   ``padding_mask`` (1 = real token) and, where the family has them,
                           ``segment_ids`` (0 first text, 1 second) → the same outputs
                           (signature ``serve_tokens``)
    tokenizer/             preprocessor.json (keras-hub config) + the vocabulary files
    labels.txt             class names in output order
    metadata.json          inputs, outputs, special token ids, on-device recipe, verification

Why TFLite takes token ids: keras-hub tokenizers are TensorFlow Text ops (WordPiece, BPE,
SentencePiece), which are neither TFLite built-ins nor TF Select (Flex) ops, so a strings-in
graph does not convert. Tokenize on the device with the shipped vocabulary, as `metadata.json`
says, or in Python with `TextTFLiteRunner`.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

import keras
import numpy as np

from keras_transfer.compat.keras_internals import call_nodes, outputs_structure
from keras_transfer.errors import BadInputError
from keras_transfer.export.progress import step
from keras_transfer.text.layers import TextPreprocessing, run_preprocessor
from keras_transfer.weights.cache import atomic_directory

FORMATS = ("keras", "saved_model", "tflite")
QUANTIZATIONS = ("float32", "float16", "dynamic")
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


def _convert(saved_model_dir: Path, quantization: str) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir),
                                                         signature_keys=["serve_tokens"])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    return bytes(converter.convert())


def tflite_filename(quantization: str) -> str:
    """``model.tflite`` for float32, else ``model.<quantization>.tflite``.

    Example:
    >>> tflite_filename("dynamic")
    'model.dynamic.tflite'
    """
    return "model.tflite" if quantization == "float32" else f"model.{quantization}.tflite"


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


def _as_batches(texts, arity: int):
    """Verification texts → one list of strings per model input."""
    if arity == 1:
        return [list(texts)]
    rows = [tuple(t) if isinstance(t, (list, tuple)) else (t,) * arity for t in texts]
    if any(len(r) != arity for r in rows):
        raise BadInputError(f"verify_texts: each item must be a string or {arity} strings.")
    return [list(column) for column in zip(*rows)]


def _tokens(preprocessor, batches: list[list[str]], names: Sequence[str]) -> dict[str, np.ndarray]:
    import tensorflow as tf

    columns = [tf.constant(column) for column in batches]
    out = run_preprocessor(preprocessor, tuple(columns) if len(columns) > 1 else columns[0])
    return {name: np.asarray(out[name]).astype("int32") for name in names}


def _max_diff(a: dict, b: dict) -> float:
    return float(max(np.max(np.abs(np.asarray(a[k], "float32") - np.asarray(b[k], "float32")))
                     for k in a))


class TextTFLiteRunner:
    """Runs an exported text ``.tflite`` on strings: tokenizes in Python, then runs the file.

    This is what on-device code does (with its own tokenizer implementation); use it to check
    a TFLite file against the Keras model.

    Example:
    >>> # runner = TextTFLiteRunner("exports/sentiment")
    >>> # runner.predict(["what a great film"])["predictions"].shape  ->  (1, 3)
    """

    def __init__(self, directory: str | os.PathLike, filename: str = "model.tflite",
                 threads: int | None = None):
        from keras_transfer.export.integrity import read_tflite
        from keras_transfer.export.interpreter import default_threads, interpreter_class

        directory = Path(directory)
        path = directory / filename
        if not path.is_file():
            raise BadInputError(f"{path} does not exist.")
        self.preprocessor = load_preprocessor(directory / TOKENIZER_DIR)
        # Checked in Python first: a truncated file would crash the interpreter, not raise.
        interpreter = interpreter_class()[0](model_content=read_tflite(path),
                                             num_threads=threads or default_threads())
        self._runner = interpreter.get_signature_runner("serve_tokens")
        self.input_names = sorted(self._runner.get_input_details())

    def predict(self, texts) -> dict[str, np.ndarray]:
        """Outputs for `texts` (a list of strings, or a list of string pairs)."""
        arity = 2 if texts and isinstance(texts[0], (list, tuple)) else 1
        return self.predict_tokens(_tokens(self.preprocessor, _as_batches(texts, arity),
                                           self.input_names))

    def predict_tokens(self, tokens: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs for already tokenized inputs (int32 arrays, one row per example)."""
        # The batch dimension is dynamic: the signature runner resizes the inputs to the batch.
        return {key: np.asarray(value) for key, value in
                self._runner(**{k: np.asarray(v, "int32") for k, v in tokens.items()}).items()}


def export_text_model(
    model: keras.Model,
    directory: str | os.PathLike,
    *,
    formats: str | Sequence[str] = FORMATS,
    quantization: str | Sequence[str] = ("float32",),
    labels: Sequence[str] | None = None,
    verify_texts: Sequence[Any] = DEFAULT_VERIFY_TEXTS,
    metadata: dict[str, Any] | None = None,
    overwrite: bool = True,
    verbose: bool = True,
) -> dict[str, Any]:
    """Exports a strings-in text model (classifier, pair classifier or QA) and verifies it.

    Args:
        model: a model from `build_text_classifier` / `build_question_answerer`.
        directory: the export folder, replaced atomically.
        formats: any of ``"keras"``, ``"saved_model"``, ``"tflite"`` (or ``"all"``).
        quantization: TFLite flavours: ``"float32"``, ``"float16"``, ``"dynamic"`` (int8
            weights, float activations: about 4× smaller), or ``"all"``.
        labels: class names in output order (``labels.txt``).
        verify_texts: texts (or pairs) to compare every artefact with the Keras model on.
        metadata: extra JSON-serializable facts for ``metadata.json``.

    Returns:
        The content of ``metadata.json`` plus ``"directory"``.

    Example:
    >>> # info = export_text_model(model, "exports/sentiment", labels=["neg", "neu", "pos"])
    >>> # info["verification"]["tflite"]["model.tflite"]["max_abs_diff"]  ->  ~1e-6
    """
    import tensorflow as tf

    formats = _choices(formats, FORMATS, "formats")
    quantization = _choices(quantization, QUANTIZATIONS, "quantization")
    layer = _preprocessing_layer(model)
    preprocessor = layer.preprocessor
    inner, names = token_model(model)
    string_inputs = _string_inputs(model)
    output_names = list(_outputs_dict(model.output if len(model.outputs) == 1 else
                                      {k: None for k in outputs_structure(model)}))
    if labels is not None:
        labels = [str(label) for label in labels]
        width = model.outputs[0].shape[-1]
        if len(model.outputs) != 1 or len(labels) != width:
            raise BadInputError(f"export_text_model: {len(labels)} labels for outputs "
                                f"{[tuple(t.shape) for t in model.outputs]}.")
    batches = _as_batches(list(verify_texts), len(string_inputs))
    tokens = _tokens(preprocessor, batches, names)
    texts_in = [tf.constant(column) for column in batches]
    reference = _outputs_dict(model(texts_in if len(texts_in) > 1 else texts_in[0],
                                    training=False))
    reference = {k: np.asarray(v) for k, v in reference.items()}

    info: dict[str, Any] = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": model.name,
        "string_inputs": string_inputs,
        "outputs": output_names,
        "labels": labels,
        "formats": list(formats),
        "tflite": {
            "inputs": {n: {"dtype": "int32", "shape": [-1, layer.specs[n][0]]} for n in names},
            "quantization": list(quantization) if "tflite" in formats else [],
        },
        "tokenizer": _tokenizer_facts(preprocessor),
        "user": json.loads(json.dumps(metadata or {}, default=str)),
        "files": {},
    }
    directory = Path(directory)
    if directory.exists() and not overwrite:
        raise FileExistsError(f"{directory} already exists (pass overwrite=True to replace it).")
    verification: dict[str, Any] = {"num_texts": len(batches[0])}
    with atomic_directory(directory, overwrite=overwrite) as tmp:
        os.chmod(tmp, 0o755)
        if "keras" in formats:
            with step("writing model.keras", verbose=verbose):
                model.save(tmp / "model.keras")
            info["files"]["model.keras"] = {"format": "keras"}
        if "saved_model" in formats:
            with step("writing saved_model/ (strings in)", verbose=verbose):
                _write_archive(tmp / "saved_model", model, *_serve_text(model), "serve")
            with step("checking saved_model/ on the verification texts", verbose=verbose):
                loaded = tf.saved_model.load(str(tmp / "saved_model"))
                got = loaded.signatures["serve"](**{n: c for n, c in zip(string_inputs, texts_in)})
                verification["saved_model"] = {"max_abs_diff": _max_diff(reference, got)}
            info["files"]["saved_model"] = {"format": "saved_model", "signatures": ["serve"]}
        if "tflite" in formats:
            from keras_transfer.export.tflite import embed_metadata

            # A separate graph of the layers after the tokenizer: the tokenizer's lookup tables
            # must not be in the SavedModel the converter reads (they are not TFLite ops).
            source = tmp / ".tflite_source"
            with step("tracing the token-ids graph for TFLite", verbose=verbose):
                _write_archive(source, inner, *_serve_tokens(inner, names, layer.specs, None),
                               "serve_tokens")
            verification["tflite"] = {}
            for flavour in quantization:
                name = tflite_filename(flavour)
                with step(f"converting {name}", verbose=verbose):
                    data = embed_metadata(_convert(source, flavour), {
                        "inputs": info["tflite"]["inputs"], "outputs": output_names,
                        "labels": labels, "tokenizer": info["tokenizer"],
                        "quantization": flavour})
                    (tmp / name).write_bytes(data)
                info["files"][name] = {"format": "tflite", "quantization": flavour,
                                       "size_bytes": len(data)}
            shutil.rmtree(source)
        with step("writing tokenizer/", verbose=verbose):
            save_preprocessor(preprocessor, tmp / TOKENIZER_DIR)
        info["files"][TOKENIZER_DIR] = {"format": "keras_hub preprocessor + vocabulary"}
        if "tflite" in formats:
            for flavour in quantization:
                name = tflite_filename(flavour)
                got = TextTFLiteRunner(tmp, name).predict_tokens(tokens)
                entry = {"max_abs_diff": _max_diff(reference, got)}
                if "predictions" in reference and reference["predictions"].shape[-1] > 1:
                    entry["top1_agreement"] = float(np.mean(
                        got["predictions"].argmax(-1) == reference["predictions"].argmax(-1)))
                verification["tflite"][name] = entry
        if labels is not None:
            (tmp / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
            info["files"]["labels.txt"] = {"format": "labels"}
        info["verification"] = verification
        (tmp / "metadata.json").write_text(json.dumps(info, indent=2, default=str) + "\n",
                                           encoding="utf-8")
    if verbose:
        print(f"[export] wrote {directory}: {json.dumps(verification)}", flush=True)
    return {**info, "directory": str(directory)}


def _choices(value, allowed: Sequence[str], what: str) -> tuple[str, ...]:
    values = (value,) if isinstance(value, str) else tuple(value)
    if values == ("all",):
        values = tuple(allowed)
    unknown = [v for v in values if v not in allowed]
    if unknown or not values:
        raise BadInputError(f"export_text_model: {what}={value!r}; choose from {tuple(allowed)}.")
    return tuple(dict.fromkeys(values))
