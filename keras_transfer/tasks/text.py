"""Text tasks on keras-hub transformers: classification (and pairs), extractive QA, causal LM."""

from __future__ import annotations

from typing import Any

import keras

from keras_transfer.tasks.base import Metric, Task, lazy, register_class_rule, register_task
from keras_transfer.tasks.image import head_loss as classifier_loss


def text_adamw(model: keras.Model, learning_rate: Any, weight_decay: float | None = None
               ) -> keras.optimizers.Optimizer:
    """AdamW without decay on biases and norms (weight decay 0.01 unless given).

    Example:
    >>> type(text_adamw(None, 5e-5)).__name__
    'AdamW'
    """
    from keras_transfer.text.heads import text_optimizer

    decay = 0.01 if weight_decay is None else weight_decay
    return text_optimizer(model, learning_rate, weight_decay=decay)


def _compile_with(loss: Any, metrics: Any, *, weighted: bool = False):
    def compile_text(model: keras.Model, optimizer: keras.optimizers.Optimizer,
                     override: Any = None) -> None:
        chosen_loss, chosen_metrics = (loss(model) if callable(loss) else (loss, metrics))
        extra = {"weighted_metrics": chosen_metrics} if weighted else {"metrics": chosen_metrics}
        # XLA cannot compile the tokenizer ops inside the model.
        model.compile(optimizer, loss=override or chosen_loss, jit_compile=False, **extra)
    return compile_text


def _span_loss(model: keras.Model):
    from keras_transfer.text.qa import span_loss

    return span_loss(model)


def _lm_loss() -> keras.losses.Loss:
    # The preprocessor weights padding 0: average over the real tokens only, so loss and
    # val_loss are per-token cross-entropies (exp(val_loss) is the perplexity), not diluted by
    # however much padding a batch has.
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True,
                                                      reduction="mean_with_sample_weight")


def _build_classifier(*args, **kwargs):
    from keras_transfer.text.heads import build_text_classifier

    return build_text_classifier(*args, **kwargs)


def _build_qa(*args, **kwargs):
    from keras_transfer.text.qa import build_question_answerer

    return build_question_answerer(*args, **kwargs)


def _build_lm(*args, **kwargs):
    from keras_transfer.text.heads import build_causal_lm

    return build_causal_lm(*args, **kwargs)


def _pairs(texts: Any) -> Any:
    """QA verification data given as ``{"question", "context"}`` dicts → (question, context)."""
    if texts is None:
        return None
    return [(t["question"], t["context"]) if isinstance(t, dict) else t for t in texts]


def _export_text(model: keras.Model, directory, **options) -> dict:
    from keras_transfer.text.export import export_text_model

    # The shared keywords: text models verify and calibrate on texts.
    verify = _pairs(options.pop("verify_data", None))
    if verify is not None:
        options["verify_texts"] = verify
    options["representative_texts"] = _pairs(options.pop("representative_data", None))
    return export_text_model(model, directory, **options)


def _export_lm(model: keras.Model, directory, **options) -> dict:
    from keras_transfer.tasks.causal_lm import export_causal_lm

    return export_causal_lm(model, directory, **options)


def _predict_texts(artifact, inputs, **options):
    from keras_transfer.tasks.text_predictors import classify_texts

    return classify_texts(artifact, inputs, **options)


def _predict_answers(artifact, inputs, **options):
    from keras_transfer.tasks.text_predictors import answer_questions

    return answer_questions(artifact, inputs, **options)


def _predict_lm(artifact, inputs, **options):
    from keras_transfer.tasks.text_predictors import generate

    return generate(artifact, inputs, **options)


def is_causal_lm(model: keras.Model) -> bool:
    """True for a keras-hub ``CausalLM`` (GPT-2 …), tested by class without importing keras-hub.

    Example:
    >>> is_causal_lm(keras.Sequential())
    False
    """
    return any(cls.__name__ == "CausalLM" and cls.__module__.startswith("keras_hub")
               for cls in type(model).__mro__)


TEXT_CLASSIFICATION = register_task(Task(
    name="text_classification", alias="text",
    description="text classification of one text or a pair (NLI, paraphrase): single-label, "
                "multi-label or regression on a keras-hub transformer, strings in",
    inputs="texts", build=_build_classifier, optimizer=text_adamw,
    compile=_compile_with(lambda model: classifier_loss(model), None),
    head_loss=classifier_loss, default_learning_rate=5e-5,
    # int8 calibrates with the attention masks left out of the ranges (export.calibration).
    quantizations=("float32", "float16", "dynamic", "int8"), export=_export_text,
    predict=_predict_texts, evaluate=lazy("keras_transfer.evaluation.tasks", "evaluate_text_classifier"),
    headline=(Metric("accuracy", "accuracy", "{:.2%}"), Metric("macro_f1", "macro F1")),
))

QUESTION_ANSWERING = register_task(Task(
    name="question_answering", alias="qa",
    description="extractive question answering: (question, context) strings → answer span",
    inputs="question_context", build=_build_qa, optimizer=text_adamw,
    compile=_compile_with(_span_loss, None), head_loss=None, default_learning_rate=5e-5,
    quantizations=("float32", "float16", "dynamic", "int8"), export=_export_text,
    predict=_predict_answers, evaluate=lazy("keras_transfer.evaluation.tasks", "evaluate_question_answerer"),
    headline=(Metric("exact_match", "exact match", "{:.2%}"), Metric("f1", "F1", "{:.2%}")),
))

CAUSAL_LM = register_task(Task(
    name="causal_lm", alias="lm",
    description="causal language modelling (GPT-2): fine-tune on raw text, generate",
    inputs="texts", build=_build_lm, optimizer=text_adamw,
    compile=_compile_with(lambda model: (_lm_loss(), [keras.metrics.SparseCategoricalAccuracy()]),
                          None, weighted=True),
    head_loss=None, default_learning_rate=5e-5, separate_head=False,
    # The token → logits graph (generation loops over it); tokenizer/ beside it.
    quantizations=("float32", "float16", "dynamic", "int8"), export=_export_lm,
    predict=_predict_lm, evaluate=lazy("keras_transfer.evaluation.tasks", "evaluate_causal_lm"),
    headline=(Metric("perplexity", "perplexity", "{:.2f}", higher_is_better=False),
              Metric("token_accuracy", "token accuracy", "{:.2%}")),
))

register_class_rule(is_causal_lm, "causal_lm")
