"""Export and generation of causal language models (keras-hub ``CausalLM``: GPT-2 …).

Layout of an export folder (``metadata.json`` has the schema every task's export shares)::

    model.keras            the keras-hub CausalLM with its preprocessor and tokenizer (reloads
                           with safe_mode; ``generate()`` works on it)
    tokenizer/             preprocessor.json + vocabulary files (for the token-ids files)
    saved_model/           signature ``serve_tokens``: ``token_ids``, ``padding_mask`` int32
                           (batch, sequence_length) → ``logits`` (batch, sequence_length, vocab)
    model[.flavour].tflite the same graph, built-in ops only: float32, float16, dynamic, int8
    metadata.json          task, input, output, tokenizer, verification

Why token ids: the tokenizer's lookup tables are no TFLite ops (see `keras_transfer.text.export`).
Why logits and not ``generate``: keras-hub's generation loop (a while loop over a KV cache with
dynamic updates) is not a graph the converter turns into built-in ops; the exported graph is one
forward pass, and `generate_text` runs a greedy loop over it (one full pass per new token, no
cache: fine for short prompts and small models). ``model.keras`` generates with keras-hub's own
cached loop and samplers.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Sequence

import keras
import numpy as np

from keras_transfer.errors import BadInputError
from keras_transfer.export import schema
from keras_transfer.export.progress import step
from keras_transfer.utils.files import atomic_directory

QUANTIZATIONS = ("float32", "float16", "dynamic", "int8")
SIGNATURE = "serve_tokens"
DEFAULT_PROMPTS = ("the city is", "what a great film", "paris is the capital of")


def logits_model(model: keras.Model) -> keras.Model:
    """The CausalLM's layers from token inputs to logits, without its preprocessor (whose
    tokenizer tables must not be traced into the exported graph).

    Example:
    >>> import tempfile
    >>> from keras_transfer.text import build_causal_lm, make_tiny_preset
    >>> lm = build_causal_lm(str(make_tiny_preset("gpt2", tempfile.mkdtemp())), sequence_length=8)
    >>> sorted(logits_model(lm).input)
    ['padding_mask', 'token_ids']
    """
    return keras.Model(model.input, model.output, name=f"{model.name}_logits")


def prompt_tokens(preprocessor, prompts: Sequence[str]) -> dict[str, np.ndarray]:
    """``token_ids`` / ``padding_mask`` (int32, padded to the sequence length) of prompts.

    Example:
    >>> # prompt_tokens(lm.preprocessor, ["the city is"])["padding_mask"].sum()  ->  4
    """
    import tensorflow as tf

    tokens = preprocessor.generate_preprocess(tf.constant([str(p) for p in prompts]))
    return {key: np.asarray(value).astype("int32") for key, value in tokens.items()
            if key in ("token_ids", "padding_mask")}


def _archive(inner: keras.Model, length: int, path: Path) -> None:
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(inner)

    def serve(token_ids, padding_mask):
        return {"logits": inner({"token_ids": token_ids, "padding_mask": padding_mask},
                                training=False)}

    archive.add_endpoint(SIGNATURE, serve, input_signature=[
        tf.TensorSpec((None, length), tf.int32, name="token_ids"),
        tf.TensorSpec((None, length), tf.int32, name="padding_mask")])
    archive.write_out(str(path), verbose=False)


def _metadata(model: keras.Model, length: int, formats, quantization, user) -> dict[str, Any]:
    from keras_transfer.text.export import _tokenizer_facts

    tokenizer = _tokenizer_facts(model.preprocessor)
    vocabulary = int(model.output.shape[-1])
    return schema.new_metadata(
        "causal_lm", model={"name": model.name, "num_params": int(model.count_params()),
                            "class": type(model).__name__},
        labels=None, formats=formats, quantization=quantization,
        input={"kind": "prompts", "names": ["token_ids", "padding_mask"], "dtype": "int32",
               "sequence_length": length, "tokenizer": "tokenizer", "signature": SIGNATURE},
        output={"kind": "logits", "names": ["logits"], "shape": [length, vocabulary],
                "generation": "model.keras: keras-hub generate(); saved_model/ and .tflite: "
                              "greedy loop over serve_tokens (keras_transfer.predict)"},
        task_config={"tokenizer": tokenizer, "sequence_length": length}, user=user)


def export_causal_lm(
    model: keras.Model,
    directory: str | os.PathLike,
    *,
    formats: str | Sequence[str] = schema.FORMATS,
    quantization: str | Sequence[str] = ("float32",),
    verify_data: Sequence[str] | None = None,
    representative_data: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    metadata: dict[str, Any] | None = None,
    overwrite: bool = True,
    verbose: bool = True,
    require_parity: bool = True,
) -> dict[str, Any]:
    """Exports a keras-hub causal LM: ``model.keras``, ``tokenizer/``, and the token→logits graph
    as ``saved_model/`` and TFLite files, each compared with Keras on `verify_data` prompts.

    Args:
        formats: any of ``"keras"``, ``"saved_model"``, ``"tflite"`` (or ``"all"``).
        quantization: TFLite flavours ``"float32"``, ``"float16"``, ``"dynamic"``, ``"int8"``
            (int8 calibrates on `representative_data` prompts, else `verify_data`).
        verify_data: prompts to compare the logits on (default: three short ones).
        labels: not for a language model (an error when given).
        require_parity: ``saved_model/`` and ``model.tflite`` must reproduce the Keras logits
            (within 1e-3 of their scale), else nothing is written.

    Returns:
        The content of ``metadata.json`` plus ``"directory"``.

    Example:
    >>> # info = export_causal_lm(lm, "exports/poet", quantization="all")
    >>> # info["verification"]["tflite"]["model.tflite"]["logits_agreement"]  ->  1.0
    """
    from keras_transfer.text.export import TOKENIZER_DIR, save_preprocessor

    if labels is not None:
        raise BadInputError("export: a causal language model has no labels.")
    formats = schema.choices(formats, schema.FORMATS, "formats")
    quantization = schema.choices(quantization, QUANTIZATIONS, "quantization")
    quantization = quantization if "tflite" in formats else ()
    length = int(model.preprocessor.sequence_length)
    prompts = list(verify_data or DEFAULT_PROMPTS)
    tokens = prompt_tokens(model.preprocessor, prompts)
    inner = logits_model(model)
    info = _metadata(model, length, formats, quantization, metadata)
    directory = schema.check_target(directory, overwrite)
    with atomic_directory(directory, overwrite=overwrite) as tmp:
        if "keras" in formats:
            with step("writing model.keras", verbose=verbose):
                model.save(tmp / schema.KERAS_FILE)
            info["files"][schema.KERAS_FILE] = {"format": "keras"}
        with step("writing tokenizer/", verbose=verbose):
            save_preprocessor(model.preprocessor, tmp / TOKENIZER_DIR)
        info["files"][TOKENIZER_DIR] = {"format": "keras_hub preprocessor + vocabulary"}
        _write_graphs(inner, tmp, length, formats, quantization,
                      _calibration(model, representative_data, tokens), info, verbose)
        info["verification"] = _verify(inner, tmp, info["files"], tokens)
        from keras_transfer.export.verify import check_parity

        check_parity(info["verification"], directory, len(prompts), require_parity)
        schema.write_metadata(tmp, info)
    return {**info, "directory": str(directory)}


def _calibration(model, prompts, tokens) -> list[dict[str, np.ndarray]]:
    if prompts:
        tokens = prompt_tokens(model.preprocessor, prompts)
    return [{k: v[i:i + 1] for k, v in tokens.items()} for i in range(len(tokens["token_ids"]))]


def _write_graphs(inner, tmp: Path, length: int, formats, quantization, calibration,
                  info: dict[str, Any], verbose: bool) -> None:
    from keras_transfer.export.tflite import convert_saved_model, embed_metadata, tflite_filename

    if "saved_model" not in formats and not quantization:
        return
    source = tmp / (schema.SAVED_MODEL_DIR if "saved_model" in formats else ".tflite_source")
    with step(f"writing {source.name}/ ({SIGNATURE}: token ids → logits)", verbose=verbose):
        _archive(inner, length, source)
    if "saved_model" in formats:
        info["files"][schema.SAVED_MODEL_DIR] = {"format": "saved_model",
                                                 "signatures": [SIGNATURE]}
    embedded = {"task": "causal_lm", "input": info["input"],
                "tokenizer": info["task_config"]["tokenizer"]}
    for flavour in quantization:
        name = tflite_filename(flavour)
        with step(f"converting {name}", verbose=verbose):
            data = convert_saved_model(source, flavour, signature=SIGNATURE,
                                       representative_images=calibration)
            (tmp / name).write_bytes(embed_metadata(data, {**embedded, "quantization": flavour}))
        info["files"][name] = {"format": "tflite", "quantization": flavour}
    if source.name == ".tflite_source":
        shutil.rmtree(source)


def _verify(inner, tmp: Path, files: dict[str, dict], tokens) -> dict[str, Any]:
    from keras_transfer.export.runner import load_runner
    from keras_transfer.export.verify import compare_named

    reference = {"logits": keras.ops.convert_to_numpy(inner(tokens, training=False))}
    result: dict[str, Any] = {"num_samples": len(tokens["token_ids"]), "data": "prompts",
                              "reference_max_abs": float(np.abs(reference["logits"]).max()),
                              "tflite": {}}
    for name, entry in files.items():
        if entry["format"] in ("saved_model", "tflite"):
            record = compare_named(reference, load_runner(tmp / name, signature=SIGNATURE)(tokens))
            if entry["format"] == "saved_model":
                result["saved_model"] = record
            else:
                result["tflite"][name] = {"quantization": entry["quantization"], **record}
    return result


def generate_text(runner, preprocessor, prompts: Sequence[str], *,
                  max_length: int | None = None) -> list[str]:
    """Greedy generation with any token→logits artifact (`keras_transfer.export.runner`):
    one full forward pass per new token, each prompt until the end token or `max_length`
    tokens (default: the exported sequence length).

    Example:
    >>> # generate_text(load_runner("exports/poet/model.tflite"),
    >>> #               load_preprocessor("exports/poet/tokenizer"), ["the city is"])
    """
    tokens = prompt_tokens(preprocessor, prompts)
    ids, mask = tokens["token_ids"].copy(), tokens["padding_mask"].copy()
    width = ids.shape[1]
    limit = width if max_length is None else min(int(max_length), width)
    lengths = mask.sum(axis=1)
    end = getattr(preprocessor.tokenizer, "end_token_id", None)
    done = np.zeros(len(ids), bool)
    while True:
        active = ~done & (lengths < limit)
        if not active.any():
            break
        logits = runner({"token_ids": ids, "padding_mask": mask})["logits"]
        rows = np.flatnonzero(active)
        chosen = logits[rows, lengths[rows] - 1].argmax(-1)
        ids[rows, lengths[rows]] = chosen
        mask[rows, lengths[rows]] = 1
        lengths[rows] += 1
        done[rows] |= chosen == end
    texts = preprocessor.generate_postprocess({"token_ids": ids, "padding_mask": mask.astype(bool)})
    texts = texts if isinstance(texts, (list, tuple)) else [texts]
    return [t.decode("utf-8", "replace") if isinstance(t, bytes) else str(t) for t in texts]
