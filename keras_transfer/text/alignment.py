"""Tokens to characters: where each token of a text lies, and where a packed context starts.

Extractive QA labels and answers are character spans of the context, while the model sees token
positions of the packed ``(question, context)`` sequence; this module maps one onto the other.

Character alignment is generic across WordPiece, byte-level BPE and SentencePiece: the context is
split at whitespace, each word is tokenized on its own (with a leading space after the first, as
the tokenizers see it inside the text), and the pieces of a word are matched against its
characters. A word whose pieces cannot be matched (e.g. accents stripped by an uncased
vocabulary) maps every piece to the whole word, so answers stay word-exact at worst.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from keras_transfer.errors import BadInputError
from keras_transfer.text.layers import TextPreprocessing, run_preprocessor

# Markers tokenizers put on pieces: WordPiece continuation, byte-level BPE space, SentencePiece.
_PIECE_MARKERS = ("##", "Ġ", "▁")
# Per example of a packed batch: (first context token, context tokens kept, their character
# spans), or None where the context cannot be aligned or did not fit.
Layout = tuple[int, int, list[tuple[int, int]]] | None


def _preprocessor(model):
    for layer in model.layers:
        if isinstance(layer, TextPreprocessing):
            return layer.preprocessor
    raise BadInputError(f"Model '{model.name}' has no TextPreprocessing layer; build it with "
                        "build_question_answerer().")


def _tokenize(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    import tensorflow as tf

    ids = tokenizer(tf.constant(list(texts), dtype=tf.string))
    ids = ids.to_list() if hasattr(ids, "to_list") else ids
    return [[int(i) for i in row] for row in ids]


def _strip_marker(piece: str) -> str:
    for marker in _PIECE_MARKERS:
        if piece.startswith(marker):
            return piece[len(marker):]
    return piece


def _walk(tokenizer, ids: Sequence[int], text: str) -> list[tuple[int, int]] | None:
    """Spans by walking the text: each piece (markers stripped) must come next, after spaces."""
    spans, cursor = [], 0
    for token_id in ids:
        surface = _strip_marker(str(tokenizer.id_to_token(token_id)))
        while cursor < len(text) and text[cursor].isspace():
            cursor += 1
        if not surface:  # a bare marker: whitespace of its own (BPE "Ġ", SentencePiece "▁")
            spans.append((cursor, cursor))
        elif text[cursor:cursor + len(surface)].lower() == surface.lower():
            spans.append((cursor, cursor + len(surface)))
            cursor += len(surface)
        else:
            return None
    return spans


def _by_word(tokenizer, ids: Sequence[int], text: str) -> list[tuple[int, int]] | None:
    """Spans by words: each whitespace-separated word tokenized alone must give the same ids;
    a word whose pieces do not spell it (accents stripped, unknown token) maps to the word."""
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    pieces = [text[s:e] if i == 0 else " " + text[s:e] for i, (s, e) in enumerate(words)]
    per_word = _tokenize(tokenizer, pieces) if pieces else []
    if [i for word in per_word for i in word] != list(ids):
        return None
    spans: list[tuple[int, int]] = []
    for (start, end), word_ids in zip(words, per_word):
        inside = _walk(tokenizer, word_ids, text[start:end])
        spans.extend([(start + a, start + b) for a, b in inside] if inside is not None
                     else [(start, end)] * len(word_ids))
    return spans


def token_spans(tokenizer, text: str) -> tuple[list[int], list[tuple[int, int]]] | None:
    """Token ids of `text` and each token's ``(start, end)`` character span in `text`.

    Works for WordPiece, byte-level BPE and SentencePiece pieces of ASCII-like text; otherwise
    falls back to word granularity. Returns None when neither works (the caller skips the
    example or returns no answer).

    Example:
    >>> import tempfile, keras_hub
    >>> from keras_transfer.testing.tiny_text import make_tiny_preset
    >>> preset = str(make_tiny_preset("bert", tempfile.mkdtemp()))
    >>> tok = keras_hub.models.Tokenizer.from_preset(preset)
    >>> token_spans(tok, "Paris,  France")[1]
    [(0, 5), (5, 6), (8, 14)]
    """
    ids = _tokenize(tokenizer, [text])[0]
    spans = _walk(tokenizer, ids, text) or _by_word(tokenizer, ids, text)
    return (ids, spans) if spans is not None else None


def _find(sequence: Sequence[int], pattern: Sequence[int], start: int = 0) -> int:
    n = len(pattern)
    for i in range(start, len(sequence) - n + 1):
        if list(sequence[i:i + n]) == list(pattern):
            return i
    return -1


def context_layouts(model, questions: Sequence[str], contexts: Sequence[str]
                    ) -> tuple[list[Layout], dict]:
    """Packs the pairs as `model` does and returns ``(layouts, tokens)``: per example the
    offset of the first context token in the packed sequence, the number of context tokens kept
    and the character spans of the context tokens (None where that cannot be worked out); and
    the packed tokens.

    `model` is a question answerer, or anything whose ``layers`` hold its `TextPreprocessing`
    (an export's tokenizer, for the SavedModel and TFLite runners).

    Example:
    >>> import tempfile
    >>> from keras_transfer.testing.tiny_text import make_tiny_preset
    >>> from keras_transfer.text.qa import build_question_answerer
    >>> qa = build_question_answerer(str(make_tiny_preset("bert", tempfile.mkdtemp())),
    ...                              sequence_length=16, compile=False)
    >>> layouts, tokens = context_layouts(qa, ["what is big?"], ["paris is big."])
    >>> layouts[0]  # the context starts at token 6; its 4 tokens and their characters
    (6, 4, [(0, 5), (6, 8), (9, 12), (12, 13)])
    """
    import tensorflow as tf

    preprocessor = _preprocessor(model)
    tokenizer = preprocessor.tokenizer
    tokens = run_preprocessor(preprocessor, (tf.constant(list(questions)),
                                             tf.constant(list(contexts))))
    packed = np.asarray(tokens["token_ids"])
    question_ids = _tokenize(tokenizer, questions)
    layouts = [_context_layout(row, q_ids, token_spans(tokenizer, context))
               for row, q_ids, context in zip(packed, question_ids, contexts)]
    return layouts, tokens


def _context_layout(row: np.ndarray, question_ids: Sequence[int], aligned) -> Layout:
    """Where the context's tokens (`aligned`: ids and spans) start in one packed `row`, after
    its question, and how many of them truncation kept."""
    q_at = _find(row, question_ids)
    if aligned is None or not aligned[0] or q_at < 0:
        return None
    c_ids, spans = aligned
    c_at = _find(row, c_ids[:1], q_at + len(question_ids))
    if c_at < 0:
        return None  # the context did not fit at all
    kept = 0
    while kept < len(c_ids) and c_at + kept < len(row) and row[c_at + kept] == c_ids[kept]:
        kept += 1
    return c_at, kept, spans
