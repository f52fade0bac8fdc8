"""The predict adapters of the text tasks: classification, question answering, generation.

Every artifact of a text export works: ``model.keras`` and ``saved_model/`` take strings, the
``.tflite`` files token ids (tokenized here with the export's ``tokenizer/``); all are loaded by
the one loader `keras_transfer.export.runner.load_runner`.

- text classification: top-k ``(label, score)`` per text, or per pair (a tuple of two texts);
- question answering: ``{"answer", "score", "start", "end"}`` per question (the span logic of
  `keras_transfer.text.qa`);
- causal LM: the generated text per prompt.
"""

from __future__ import annotations

import os
import types
from typing import Any, Mapping, Sequence

import numpy as np

from keras_transfer.errors import BadInputError
from keras_transfer.tasks.artifacts import read_metadata
from keras_transfer.tasks.predictors import tokenizer_folder, write_predictions
from keras_transfer.tasks.predictors import top_k as best_labels


def as_texts(texts: Any, arity: int, what: str = "predict") -> list:
    """`texts` as a list of strings (``arity`` 1) or of `arity`-tuples of strings.

    Example:
    >>> as_texts("a good day", 1), as_texts([["premise", "hypothesis"]], 2)
    (['a good day'], [('premise', 'hypothesis')])
    """
    if isinstance(texts, (str, tuple)) and (arity == 1 or isinstance(texts, tuple)):
        texts = [texts]
    rows = list(texts)
    if not rows:
        raise BadInputError(f"{what}: no texts given.")
    if arity == 1:
        bad = [i for i, row in enumerate(rows) if not isinstance(row, str)]
        if bad:
            raise BadInputError(f"{what}: text {bad[0]} is a {type(rows[bad[0]]).__name__}, "
                                "not a string (this model reads one text per example).")
        return rows
    pairs = [tuple(row) for row in rows if isinstance(row, (list, tuple)) and len(row) == arity]
    if len(pairs) != len(rows):
        raise BadInputError(f"{what}: this model reads {arity} texts per example; pass a list "
                            f"of {arity}-tuples (a CSV/JSONL with {arity} columns).")
    return [tuple(str(t) for t in row) for row in pairs]


def _string_inputs(runner, metadata: Mapping[str, Any]) -> list[str]:
    """The model's string inputs in order: as recorded, else the Keras / SavedModel inputs (a
    TFLite file without metadata: one text)."""
    names = (metadata.get("input") or {}).get("names") or metadata.get("string_inputs")
    if names:
        return list(names)
    return ["text"] if runner.kind == "tflite" else list(runner.input_names)


def _feeds(runner, metadata: Mapping[str, Any], columns: list[list[str]]) -> dict[str, Any]:
    """What `runner` takes for these texts: strings by input name, or (TFLite) token ids."""
    if runner.kind == "tflite":
        from keras_transfer.text.export import load_preprocessor
        from keras_transfer.text.predict import tokenize

        preprocessor = load_preprocessor(tokenizer_folder(runner.path))
        return tokenize(preprocessor, columns, runner.input_names)
    names = _string_inputs(runner, metadata)
    return {name: np.asarray(column, dtype=object) for name, column in zip(names, columns)}


def classify_texts(artifact: Any, texts: Any, *, top_k: int = 3,
                   labels: Sequence[str] | None = None,
                   output_dir: str | os.PathLike | None = None, threads: int | None = None
                   ) -> list[list[tuple[str, float]]]:
    """Top-k ``(label, score)`` per text (or per pair of texts, as tuples).

    Example:
    >>> # classify_texts("exports/sentiment", ["what a great film"])  ->  [[('pos', 0.97), ...]]
    """
    from keras_transfer.export.runner import load_runner

    runner = load_runner(artifact, threads=threads)
    metadata = read_metadata(runner.path)
    arity = len(_string_inputs(runner, metadata))
    rows = as_texts(texts, arity)
    columns = [rows] if arity == 1 else [list(column) for column in zip(*rows)]
    outputs = runner(_feeds(runner, metadata, columns))
    names = labels or metadata.get("labels")
    results = best_labels(outputs["predictions"], names, top_k_count(top_k), runner.path)
    if output_dir is not None:
        write_predictions(output_dir, "text_classification", [
            {"input": row, "top_k": [{"label": label, "score": score} for label, score in top]}
            for row, top in zip(rows, results)])
    return results


def top_k_count(value: int) -> int:
    """`value` checked as a top-k count.

    Example:
    >>> top_k_count(3)
    3
    """
    if not isinstance(value, (int, np.integer)) or value <= 0:
        raise BadInputError(f"predict: top_k must be a positive integer, got {value!r}.")
    return int(value)


def as_questions(inputs: Any) -> tuple[list[str], list[str]]:
    """``(questions, contexts)`` from a ``{"question", "context"}`` dict, a list of them, or a
    list of ``(question, context)`` pairs.

    Example:
    >>> as_questions({"question": "where?", "context": "in paris."})
    (['where?'], ['in paris.'])
    """
    if isinstance(inputs, Mapping) or (isinstance(inputs, tuple) and len(inputs) == 2
                                       and all(isinstance(t, str) for t in inputs)):
        inputs = [inputs]
    questions, contexts = [], []
    for i, item in enumerate(inputs):
        if isinstance(item, Mapping):
            item = (item.get("question"), item.get("context"))
        if (not isinstance(item, (list, tuple)) or len(item) != 2
                or not all(isinstance(t, str) and t.strip() for t in item)):
            raise BadInputError(f"predict: question {i} needs a non-empty 'question' and "
                                "'context' (a dict, or a (question, context) pair).")
        questions.append(item[0])
        contexts.append(item[1])
    if not questions:
        raise BadInputError("predict: no questions given.")
    return questions, contexts


def answer_questions(artifact: Any, inputs: Any, *, max_answer_tokens: int = 30,
                     output_dir: str | os.PathLike | None = None, threads: int | None = None
                     ) -> list[dict[str, Any]]:
    """``{"answer", "score", "start", "end"}`` per question: a span of its context.

    A ``.keras`` file answers through `keras_transfer.text.qa.answer_questions`; the other
    files get the same alignment and span search around their start/end probabilities.

    Example:
    >>> # answer_questions("exports/qa", {"question": "Where is the Louvre?",
    >>> #                                 "context": "The Louvre is in Paris."})
    >>> # [{'answer': 'Paris', 'score': 0.93, 'start': 17, 'end': 22}]
    """
    from keras_transfer.export.runner import load_runner
    from keras_transfer.text import qa

    questions, contexts = as_questions(inputs)
    runner = load_runner(artifact, threads=threads)
    if runner.kind == "keras":
        results = qa.answer_questions(runner.model, questions, contexts,
                                      max_answer_tokens=max_answer_tokens)
    else:
        results = _answer_with(runner, questions, contexts, max_answer_tokens)
    if output_dir is not None:
        write_predictions(output_dir, "question_answering", [
            {"question": q, "context": c, **answer}
            for q, c, answer in zip(questions, contexts, results)])
    return results


def _answer_with(runner, questions: list[str], contexts: list[str],
                 max_answer_tokens: int) -> list[dict[str, Any]]:
    """`qa.answer_questions` for a SavedModel or TFLite file: the same packing, alignment of
    tokens to characters (`context_layouts`, on the export's tokenizer) and span search."""
    from keras_transfer.text import qa
    from keras_transfer.text.alignment import context_layouts
    from keras_transfer.text.export import load_preprocessor
    from keras_transfer.text.layers import TextPreprocessing

    preprocessor = load_preprocessor(tokenizer_folder(runner.path))
    holder = types.SimpleNamespace(layers=[TextPreprocessing(preprocessor)], name="export")
    layouts, tokens = context_layouts(holder, questions, contexts)
    if runner.kind == "tflite":
        feeds = {name: np.asarray(tokens[name]).astype("int32") for name in runner.input_names}
    else:
        feeds = {"question": np.asarray(questions, object),
                 "context": np.asarray(contexts, object)}
    probs = runner(feeds)
    return qa.spans_to_answers(probs, contexts, layouts, max_answer_tokens)


def generate(artifact: Any, prompts: Any, *, max_length: int | None = None,
             sampler: str = "greedy", output_dir: str | os.PathLike | None = None,
             threads: int | None = None) -> list[str]:
    """The generated text (prompt included) per prompt.

    ``model.keras`` generates with keras-hub's cached loop and `sampler` (``"greedy"``,
    ``"top_k"``, ...); ``saved_model/`` and ``.tflite`` files greedily, one forward pass of
    their token→logits graph per new token (`keras_transfer.tasks.causal_lm.generate_text`).
    `max_length`: tokens in all, prompt included (default: the model's sequence length).

    Example:
    >>> # generate("exports/poet", ["the city is"], max_length=12)  ->  ['the city is big and']
    """
    from keras_transfer.export.runner import load_runner

    prompts = as_texts(prompts, 1, "predict prompts")
    runner = load_runner(artifact, threads=threads)
    if runner.kind == "keras":
        model = runner.model
        model.compile(sampler=sampler)
        texts = model.generate(list(prompts), max_length=max_length)
        texts = [str(t) for t in (texts if isinstance(texts, (list, tuple)) else [texts])]
    else:
        if sampler != "greedy":
            raise BadInputError(f"predict: sampler={sampler!r} needs model.keras; the "
                                f"{runner.kind} file generates greedily.")
        from keras_transfer.tasks.causal_lm import generate_text
        from keras_transfer.text.export import load_preprocessor

        preprocessor = load_preprocessor(tokenizer_folder(runner.path))
        texts = generate_text(runner, preprocessor, prompts, max_length=max_length)
    if output_dir is not None:
        write_predictions(output_dir, "causal_lm", [
            {"prompt": prompt, "text": text} for prompt, text in zip(prompts, texts)])
    return texts
