"""Extractive question answering: a start/end span head, SQuAD-style labels, answers as text.

The model reads ``(question, context)`` strings, packed as one sequence with the question kept
whole and the context truncated to fit (``truncate="waterfall"``), and returns two distributions
over token positions: where the answer starts and where it ends. Training labels are token
positions computed here from character offsets; answers are decoded back to the exact characters
of the context, through the token-to-character alignment of `keras_transfer.text.alignment`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import keras
import numpy as np

from keras_transfer.data.report import LoadReport
from keras_transfer.data.splits import DEFAULT_SEED
from keras_transfer.deprecation import renamed_keywords
from keras_transfer.errors import BadInputError
from keras_transfer.heads.classification import TrainableBlocks
from keras_transfer.tasks.base import TaskModel
from keras_transfer.text.alignment import (  # noqa: F401 - token_spans: its old home
    context_layouts,
    token_spans,
)
from keras_transfer.text.backbones import (
    PRESET_WEIGHTS,
    apply_trainability,
    sequence_output,
    text_trunk,
)
from keras_transfer.text.heads import (
    TEXT_RENAMED,
    LearningRate,
    check_text_arguments,
    compile_text_model,
)
from keras_transfer.text.layers import SpanProbabilities



@renamed_keywords(**TEXT_RENAMED)
def build_question_answerer(
    backbone: str | os.PathLike,
    *,
    sequence_length: int = 256,
    weights: str | None = PRESET_WEIGHTS,
    trainable_blocks: TrainableBlocks = "all",
    lora_rank: int | None = None,
    dropout: float = 0.1,
    layer_decay: float | None = None,
    compile: bool = True,
    learning_rate: LearningRate | None = None,
) -> keras.Model:
    """An extractive QA model: ``(question, context)`` strings → start/end probabilities.

    Outputs ``{"start": (batch, sequence_length), "end": (batch, sequence_length)}``; train on
    `qa_dataset` and read answers with `answer_questions`. Needs a family that packs sentence
    pairs (every supported encoder; not GPT-2). ``backbone`` (the preset), ``weights``,
    ``trainable_blocks``, LoRA, layer-wise learning rates, ``compile`` and ``learning_rate``
    work as for `build_text_classifier` (the ``question_answering`` task's defaults); the old
    keywords ``preset=``, ``load_weights=`` and ``trainable_layers=`` still work, with a
    `DeprecationWarning`.

    Example:
    >>> import tempfile
    >>> from keras_transfer.testing.tiny_text import make_tiny_preset
    >>> qa = build_question_answerer(str(make_tiny_preset("bert", tempfile.mkdtemp())),
    ...                              sequence_length=32)
    >>> answer_questions(qa, ["what is the capital?"], ["paris is the capital."])[0].keys()
    dict_keys(['answer', 'score', 'start', 'end'])
    """
    check_text_arguments(weights=weights, sequence_length=sequence_length, dropout=dropout,
                         trainable_blocks=trainable_blocks, lora_rank=lora_rank)
    inputs, tokens, _, outputs, family = text_trunk(
        backbone, input_names=["question", "context"], sequence_length=sequence_length,
        weights=weights, truncate="waterfall")
    x = sequence_output(outputs)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    logits = keras.layers.Dense(2, dtype="float32", name="span_logits")(x)
    start, end = SpanProbabilities(name="span")(logits, tokens["padding_mask"])
    model = TaskModel(inputs, {"start": start, "end": end},
                      name=f"{family.name}_question_answerer", task="question_answering")
    apply_trainability(model, trainable_blocks, lora_rank)
    if lora_rank is None and "pooler" in [name for name, _ in family.tail]:
        from keras_transfer.backbones.freezing import set_trainable

        set_trainable(model, {"pooler": False})  # QA reads tokens; the pooler gets no gradient
    if compile:  # span_loss via the task: the same defaults as the recipes
        compile_text_model(model, "question_answering", learning_rate,
                           layer_decay=layer_decay, lora_rank=lora_rank)
    return model


def span_loss(model: keras.Model) -> tuple[dict, dict]:
    """The QA loss and metrics: cross-entropy and accuracy of the start and end positions.

    Example:
    >>> span_loss(None)[0]["start"]
    'sparse_categorical_crossentropy'
    """
    loss = {key: "sparse_categorical_crossentropy" for key in ("start", "end")}
    return loss, {"start": ["accuracy"], "end": ["accuracy"]}


def _answer_start(context: str, answer: str, start: int | None) -> int:
    if start is not None:
        return int(start)
    found = context.find(answer)
    return found if found >= 0 else context.lower().find(answer.lower())


def qa_labels(
    model: keras.Model,
    examples: Iterable[Mapping[str, Any]],
    *,
    report: LoadReport | None = None,
) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """Token-position labels for SQuAD-style examples; bad ones are skipped and reported.

    Each example has ``question``, ``context``, ``answer`` (text) and optionally
    ``answer_start`` (character offset; else the first occurrence of the answer is used).

    Returns ``(questions, contexts, start_positions, end_positions)`` of the kept examples.

    Example:
    >>> # q, c, starts, ends = qa_labels(qa_model, [{"question": "capital?",
    >>> #     "context": "paris is the capital.", "answer": "paris"}])
    """
    report = report if report is not None else LoadReport("qa examples")
    examples = list(examples)
    for i, example in enumerate(examples):
        missing = [key for key in ("question", "context", "answer") if not example.get(key)]
        if missing:
            raise BadInputError(f"QA example {i}: missing or empty {missing[0]!r}.")
    layouts, _ = context_layouts(model, [e["question"] for e in examples],
                                 [e["context"] for e in examples])
    questions, contexts, starts, ends = [], [], [], []
    for i, (example, layout) in enumerate(zip(examples, layouts)):
        context, answer = example["context"], example["answer"]
        char_start = _answer_start(context, answer, example.get("answer_start"))
        char_end = char_start + len(answer)
        where = f"example {i}"
        if char_start < 0 or context[char_start:char_end].lower() != answer.lower():
            report.skip(where, "the answer is not in the context at answer_start")
            continue
        if layout is None:
            report.skip(where, "the context could not be aligned to its tokens")
            continue
        offset, kept, spans = layout
        inside = [t for t, (s, e) in enumerate(spans) if s < char_end and e > char_start]
        if not inside or inside[-1] >= kept:
            report.skip(where, "the answer lies beyond the truncated context")
            continue
        questions.append(example["question"])
        contexts.append(context)
        starts.append(offset + inside[0])
        ends.append(offset + inside[-1])
    report.good = len(questions)
    return questions, contexts, np.asarray(starts, "int32"), np.asarray(ends, "int32")


def qa_dataset(
    model: keras.Model,
    examples: Iterable[Mapping[str, Any]],
    *,
    batch_size: int = 16,
    shuffle: bool = True,
    seed: int = DEFAULT_SEED,
    verbose: bool = True,
):
    """A ``tf.data`` dataset of ``((question, context), {"start", "end"})`` for `model.fit`.

    Returns ``(dataset, report)``; the `LoadReport` lists skipped examples with the reason.

    Example:
    >>> # train, report = qa_dataset(qa_model, squad_examples("train-v1.1.json"))
    >>> # qa_model.fit(train, epochs=2)
    """
    import tensorflow as tf

    report = LoadReport("qa examples")
    questions, contexts, starts, ends = qa_labels(model, examples, report=report)
    if not questions:
        raise BadInputError(f"qa_dataset: no usable example.\n{report.summary()}")
    ds = tf.data.Dataset.from_tensor_slices(
        ((tf.constant(questions), tf.constant(contexts)), {"start": starts, "end": ends}))
    if shuffle:
        ds = ds.shuffle(len(questions), seed=seed, reshuffle_each_iteration=True)
    if verbose:
        print(report.summary())
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE), report


def squad_examples(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Reads a SQuAD v1.1/v2.0 JSON file into flat examples (unanswerable questions dropped).

    Example:
    >>> import tempfile, json, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "squad.json"
    >>> _ = p.write_text(json.dumps({"data": [{"paragraphs": [{"context": "paris is big.",
    ...     "qas": [{"question": "what is big?", "answers": [{"text": "paris",
    ...     "answer_start": 0}]}]}]}]}))
    >>> squad_examples(p)[0]["answer"]
    'paris'
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8", errors="replace"))
        articles = data["data"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise BadInputError(f"{path}: not a SQuAD-style JSON file ({error}).") from error
    examples = []
    for article in articles:
        for paragraph in article.get("paragraphs", []):
            for qa in paragraph.get("qas", []):
                answers = qa.get("answers") or []
                if answers:
                    examples.append({"question": qa.get("question", ""),
                                     "context": paragraph.get("context", ""),
                                     "answer": answers[0].get("text", ""),
                                     "answer_start": answers[0].get("answer_start")})
    return examples


# ----------------------------------------------------------------------------- decoding


def best_span(start: np.ndarray, end: np.ndarray, first: int, count: int,
              max_tokens: int) -> tuple[int, int, float]:
    """The ``(i, j, p_start[i] * p_end[j])`` maximising the score with
    ``first <= i <= j < first + count`` and ``j - i < max_tokens``.

    Example:
    >>> best_span(np.array([.1, .7, .2]), np.array([.1, .1, .8]), 0, 3, 5)[:2]
    (1, 2)
    """
    s, e = start[first:first + count], end[first:first + count]
    scores = np.triu(np.outer(s, e)) - np.triu(np.outer(s, e), k=max_tokens)
    i, j = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return first + int(i), first + int(j), float(scores[i, j])


def answer_questions(
    model: keras.Model,
    questions: Sequence[str],
    contexts: Sequence[str],
    *,
    max_answer_tokens: int = 30,
    batch_size: int = 32,
) -> list[dict[str, Any]]:
    """Answers each question with a span of its context, as text.

    Returns one dict per question: ``answer`` (the context's characters), ``score`` (start ×
    end probability), ``start``/``end`` (character offsets in the context; -1 and "" when the
    context could not be aligned).

    Example:
    >>> # answer_questions(qa_model, ["Where is the Louvre?"], ["The Louvre is in Paris."])
    >>> # [{'answer': 'Paris', 'score': 0.93, 'start': 17, 'end': 22}]
    """
    import tensorflow as tf

    if len(questions) != len(contexts):
        raise BadInputError(f"answer_questions: {len(questions)} questions but "
                            f"{len(contexts)} contexts.")
    if not questions:
        return []
    layouts, tokens = context_layouts(model, questions, contexts)
    if len(questions) <= 4 * batch_size:
        # Few questions: run the layers eagerly on the tokens computed above (no tracing).
        from keras_transfer.text.export import token_model

        inner, names = token_model(model)
        probs = {"start": [], "end": []}
        for i in range(0, len(questions), batch_size):
            out = inner([np.asarray(tokens[n])[i:i + batch_size] for n in names], training=False)
            for key in probs:
                probs[key].append(np.asarray(out[key]))
        probs = {key: np.concatenate(value) for key, value in probs.items()}
    else:
        probs = model.predict((tf.constant(list(questions)), tf.constant(list(contexts))),
                              batch_size=batch_size, verbose=0)
    return spans_to_answers(probs, contexts, layouts, max_answer_tokens)


def spans_to_answers(probs: Mapping[str, np.ndarray], contexts: Sequence[str], layouts: list,
                     max_answer_tokens: int) -> list[dict[str, Any]]:
    """The best answer per question from start/end probabilities (shared by every runner).

    ``layouts[k]`` is ``(offset, kept, character spans)`` of context k's tokens, or None when
    the question left no room for the context (then the answer is empty).

    Example:
    >>> probs = {"start": np.array([[0.0, 0.9, 0.1]]), "end": np.array([[0.0, 0.2, 0.8]])}
    >>> spans_to_answers(probs, ["big city"], [(1, 2, [(0, 3), (4, 8)])], 5)[0]["answer"]
    'big city'
    """
    results = []
    for k, (context, layout) in enumerate(zip(contexts, layouts)):
        if layout is None:
            results.append({"answer": "", "score": 0.0, "start": -1, "end": -1})
            continue
        offset, kept, spans = layout
        i, j, score = best_span(probs["start"][k], probs["end"][k], offset, kept,
                                max_answer_tokens)
        char_start, char_end = spans[i - offset][0], spans[j - offset][1]
        results.append({"answer": context[char_start:char_end], "score": score,
                        "start": char_start, "end": char_end})
    return results
