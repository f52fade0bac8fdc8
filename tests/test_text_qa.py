"""Extractive QA: span labels from character offsets, answers decoded back to the context's text,
and a tiny model that learns a synthetic SQuAD-style task."""

from __future__ import annotations

import itertools
import random

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_transfer.text.alignment import context_layouts
from keras_transfer import text as ktt
from keras_transfer.errors import BadInputError

CAPITALS = [("France", "Paris"), ("Italy", "Rome"), ("Germany", "Berlin"),
            ("England", "London"), ("Spain", "Madrid")]
COLORS = ["red", "blue", "green"]
LAYOUTS = ["{city} is the capital of {country}. The river is {color}.",
           "The river is {color}. {city} is the capital of {country}.",
           "In {country}, the river is {color} and the capital city is {city}."]


def synthetic_squad(seed: int) -> list[dict]:
    """Two question types per context, so the answer depends on the question."""
    examples = []
    for (country, city), color, layout in itertools.product(CAPITALS, COLORS, LAYOUTS):
        context = layout.format(city=city, country=country, color=color)
        examples.append({"question": f"what is the capital of {country.lower()}?",
                         "context": context, "answer": city})
        examples.append({"question": "what color is the river?", "context": context,
                         "answer": color, "answer_start": context.index(f"is {color}") + 3})
    random.Random(seed).shuffle(examples)
    return examples


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    root = tmp_path_factory.mktemp("qa_presets")
    return {family: str(ktt.make_tiny_preset(family, root / family, hidden_dim=64))
            for family in ("bert", "roberta", "deberta_v3")}


@pytest.mark.parametrize("family", ["bert", "roberta", "deberta_v3"])
def test_labels_point_at_the_answer_tokens_and_decode_back(family, presets):
    qa = ktt.build_question_answerer(presets[family], sequence_length=32, compile=False)
    examples = [
        {"question": "what is the capital?", "context": "Paris, France is big.",
         "answer": "Paris, France"},
        {"question": "which river?", "context": "the  river   Xyz is red", "answer": "Xyz"},
        {"question": "what?", "context": "a cat", "answer": "dog"},  # not in the context
        {"question": "what?", "context": "the city " * 20 + "is rome", "answer": "rome"},
    ]
    report = ktt.qa_dataset(qa, examples, batch_size=2, verbose=False)[1]
    questions, contexts, starts, ends = ktt.qa_labels(qa, examples)
    assert len(questions) == 2 and report.good == 2
    assert [reason for _, reason in report.skipped] == [
        "the answer is not in the context at answer_start",
        "the answer lies beyond the truncated context"]

    # Put all the probability on the labelled tokens: decoding must give back the answers.
    def one_hot(positions):
        out = np.full((len(positions), 32), 1e-6, "float32")
        out[np.arange(len(positions)), positions] = 1.0
        return out

    probs = {"start": one_hot(starts), "end": one_hot(ends)}
    layouts, _ = context_layouts(qa, questions, contexts)
    for k, (offset, kept, spans) in enumerate(layouts):
        i, j, _ = ktt.qa.best_span(probs["start"][k], probs["end"][k], offset, kept, 30)
        assert contexts[k][spans[i - offset][0]:spans[j - offset][1]] == examples[k]["answer"]


def test_strings_fit_bad_examples_and_decoder_only_family(presets, tmp_path):
    qa = ktt.build_question_answerer(presets["bert"], sequence_length=16)
    data, _ = ktt.qa_dataset(qa, synthetic_squad(seed=1)[:4], batch_size=4, verbose=False)
    loss = {"start": "sparse_categorical_crossentropy", "end": "sparse_categorical_crossentropy"}
    qa.compile(qa.optimizer, loss=loss, run_eagerly=True)
    assert np.isfinite(qa.fit(data, epochs=1, verbose=0).history["loss"][0])
    with pytest.raises(BadInputError, match="example 0: missing or empty 'answer'"):
        ktt.qa_labels(qa, [{"question": "q", "context": "c", "answer": ""}])
    with pytest.raises(BadInputError, match="3 questions but 1 contexts"):
        ktt.answer_questions(qa, ["a", "b", "c"], ["x"])
    gpt2 = ktt.make_tiny_preset("gpt2", tmp_path / "gpt2")
    with pytest.raises(BadInputError, match="pairs"):
        ktt.build_question_answerer(str(gpt2), sequence_length=16)


@pytest.mark.slow
def test_tiny_model_learns_synthetic_squad_and_returns_span_text(presets, tmp_path):
    examples = synthetic_squad(seed=0)
    train, test = examples[:60], examples[60:]
    qa = ktt.build_question_answerer(presets["bert"], sequence_length=32, dropout=0.0,
                                     learning_rate=3e-3)
    # Tokenized once in Python: faster than qa.fit(qa_dataset(...)), the in-graph tokenizer
    # path (which test_labels_point_at_the_answer_tokens_and_decode_back builds).
    questions, contexts, starts, ends = ktt.qa_labels(qa, train)
    assert len(questions) == len(train)
    history = ktt.fit_tokenized(qa, (questions, contexts), {"start": starts, "end": ends},
                                batch_size=20, epochs=30, verbose=0)
    assert history.history["loss"][-1] < 0.2 * history.history["loss"][0]

    answers = ktt.answer_questions(qa, [e["question"] for e in test],
                                   [e["context"] for e in test])
    exact = np.mean([a["answer"] == e["answer"] for a, e in zip(answers, test)])
    assert exact >= 0.8, [(a["answer"], e["answer"]) for a, e in zip(answers, test)]
    assert {a["answer"] for a in answers} & {"Paris", "Rome", "Berlin", "London", "Madrid"}
    assert {a["answer"] for a in answers} & set(COLORS)

    qa.save(tmp_path / "qa.keras")
    loaded = keras.models.load_model(tmp_path / "qa.keras", safe_mode=True)
    pair = (tf.constant([test[0]["question"]]), tf.constant([test[0]["context"]]))
    np.testing.assert_allclose(loaded(pair)["start"], qa(pair)["start"], atol=1e-6)
