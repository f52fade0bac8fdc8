"""Transfer learning for text: keras-hub transformers with named blocks, LoRA, task heads, export.

Backbones (BERT, DistilBERT, RoBERTa, ALBERT, DeBERTa-v3, ELECTRA, GPT-2, and the offline
MiniLM-L6) load by keras-hub preset name or local directory; their blocks (``embeddings``,
``layer_0`` … ``layer_N``, ``pooler``/``final_norm``) work with `keras_transfer.freeze`,
`unfreeze`, `describe` and the discriminative-LR recipes. Models take strings.

Example:
>>> import tempfile
>>> import tensorflow as tf
>>> import keras_transfer as kt
>>> from keras_transfer.text import build_text_classifier, make_tiny_preset
>>> preset = str(make_tiny_preset("bert", tempfile.mkdtemp()))  # or "minilm_l6"
>>> model = build_text_classifier(preset, num_classes=2, sequence_length=16)
>>> kt.freeze(model, up_to="layer_0")
>>> [row["status"] for row in kt.describe(model, print_fn=None)]
['frozen', 'frozen', 'trainable', 'frozen']
"""

from keras_transfer.backbones.registry import register_spec_finder
from keras_transfer.text.backbones import (
    build_text_backbone,
    build_text_preprocessor,
    load_text_backbone,
)
from keras_transfer.text.export import TextTFLiteRunner, export_text_model, token_model
from keras_transfer.text.families import FAMILIES, TextFamily, family_of, find_text_spec
from keras_transfer.text.heads import build_causal_lm, build_text_classifier, text_optimizer
from keras_transfer.text.layers import SequencePooling, SpanProbabilities, TextPreprocessing
from keras_transfer.text.lora import (
    describe_parameters,
    enable_lora,
    load_lora_weights,
    parameter_counts,
    save_lora_weights,
)
from keras_transfer.text.predict import fit_tokenized, predict_text, pretokenize, token_dataset
from keras_transfer.text.qa import (
    answer_questions,
    build_question_answerer,
    qa_dataset,
    qa_labels,
    squad_examples,
)
from keras_transfer.testing.tiny_text import TINY_FAMILIES, make_tiny_preset

register_spec_finder(find_text_spec)

__all__ = [
    "FAMILIES", "SequencePooling", "SpanProbabilities", "TINY_FAMILIES", "TextFamily",
    "TextPreprocessing", "TextTFLiteRunner", "answer_questions", "build_causal_lm",
    "build_question_answerer", "build_text_backbone", "build_text_classifier",
    "build_text_preprocessor", "describe_parameters", "enable_lora", "export_text_model",
    "family_of", "fit_tokenized", "load_lora_weights", "load_text_backbone", "make_tiny_preset",
    "parameter_counts", "predict_text", "pretokenize", "qa_dataset", "qa_labels",
    "save_lora_weights", "squad_examples", "text_optimizer", "token_dataset", "token_model",
]
