"""Tiny randomly initialised keras-hub presets (backbone + tokenizer) for offline tests and demos.

Every supported family gets a real keras-hub backbone of its own class (2 layers, hidden 16) and a
real tokenizer of its own kind (WordPiece, byte-level BPE or SentencePiece) with a vocabulary of a
few hundred tokens, written with ``save_to_preset`` into a local directory. Loading such a
directory goes through exactly the code path a downloaded preset takes, with no network.

The vocabularies cover ASCII letters and digits (so no word is ever unknown) plus `WORDS`; the
WordPiece ones lowercase their input, like the uncased presets.
"""

from __future__ import annotations

import io
import os
import string
from pathlib import Path
from typing import Callable, Sequence

from keras_transfer.errors import BadInputError

# Words that get a token of their own (the rest of any text falls back to letters / bytes).
WORDS = (
    "the a an is was of in on to and or not what who where when which capital city river "
    "paris france rome italy berlin germany london england madrid spain good bad great awful "
    "movie film love hate happy sad fine boring fun day night cat dog red blue green big small"
).split()
_PUNCTUATION = list(".,!?'\"-:;()")


def _wordpiece_vocabulary() -> list[str]:
    letters = list(string.ascii_lowercase + string.digits)
    tokens = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(WORDS) + letters
              + ["##" + c for c in letters] + _PUNCTUATION)
    return list(dict.fromkeys(tokens))


def _bytes_to_unicode() -> dict[int, str]:
    # GPT-2's reversible byte → printable-character map (byte-level BPE alphabet).
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def _apply_merges(pieces: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    # The byte-pair encoding rule: repeatedly merge the adjacent pair of lowest merge rank.
    while len(pieces) > 1:
        pairs = enumerate(zip(pieces, pieces[1:]))
        rank, i = min((ranks.get(pair, len(ranks)), i) for i, pair in pairs)
        if rank == len(ranks):
            break
        pieces = pieces[:i] + [pieces[i] + pieces[i + 1]] + pieces[i + 2:]
    return pieces


def _bpe_vocabulary(specials: Sequence[str]) -> tuple[dict[str, int], list[str]]:
    """A byte-level BPE vocabulary: every byte, plus whole-word tokens for `WORDS` (with and
    without the leading-space marker "Ġ"), each reachable by the merges added for it."""
    tokens = list(specials) + list(_bytes_to_unicode().values())
    ranks: dict[tuple[str, str], int] = {}
    for word in WORDS:
        for spelled in (word, "Ġ" + word):
            pieces = _apply_merges(list(spelled), ranks)
            while len(pieces) > 1:  # add the next merge with the highest rank so far
                ranks[(pieces[0], pieces[1])] = len(ranks)
                if pieces[0] + pieces[1] not in tokens:
                    tokens.append(pieces[0] + pieces[1])
                pieces = _apply_merges(list(spelled), ranks)
    merges = [f"{a} {b}" for (a, b), _ in sorted(ranks.items(), key=lambda item: item[1])]
    return {token: i for i, token in enumerate(dict.fromkeys(tokens))}, merges


def _sentencepiece_proto(pad: str, unk: str, bos: str, eos: str, extra: Sequence[str]) -> bytes:
    import sentencepiece

    # Every letter, digit and punctuation mark appears, so any ASCII text has pieces.
    corpus = [" ".join(WORDS), *WORDS, " ".join(string.ascii_letters + string.digits),
              " ".join(_PUNCTUATION), "the city is big. paris, rome!"]
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus * 4), model_writer=model, vocab_size=len(WORDS) + 80,
        hard_vocab_limit=False,
        model_type="bpe", pad_id=0, unk_id=1, bos_id=2, eos_id=3, pad_piece=pad,
        unk_piece=unk, bos_piece=bos, eos_piece=eos, user_defined_symbols=list(extra),
        character_coverage=1.0, minloglevel=2,
    )
    return model.getvalue()


def _tokenizers(keras_hub) -> dict[str, Callable[[], object]]:
    m = keras_hub.models
    return {
        "bert": lambda: m.BertTokenizer(vocabulary=_wordpiece_vocabulary(), lowercase=True),
        "distil_bert": lambda: m.DistilBertTokenizer(vocabulary=_wordpiece_vocabulary(),
                                                     lowercase=True),
        "electra": lambda: m.ElectraTokenizer(vocabulary=_wordpiece_vocabulary(),
                                              lowercase=True),
        "roberta": lambda: m.RobertaTokenizer(
            *_bpe_vocabulary(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])),
        "gpt2": lambda: m.GPT2Tokenizer(*_bpe_vocabulary(["<|endoftext|>"])),
        "albert": lambda: m.AlbertTokenizer(
            proto=_sentencepiece_proto("<pad>", "<unk>", "[CLS]", "[SEP]", ["[MASK]"])),
        "deberta_v3": lambda: m.DebertaV3Tokenizer(
            proto=_sentencepiece_proto("[PAD]", "[UNK]", "[CLS]", "[SEP]", ["[MASK]"])),
    }


def _backbones(keras_hub, vocabulary_size: int, layers: int, hidden: int, length: int) -> dict:
    m = keras_hub.models
    common = dict(vocabulary_size=vocabulary_size, num_layers=layers, num_heads=2,
                  hidden_dim=hidden, intermediate_dim=2 * hidden)
    return {
        "bert": lambda: m.BertBackbone(**common, max_sequence_length=length),
        "distil_bert": lambda: m.DistilBertBackbone(**common, max_sequence_length=length),
        # ELECTRA names the vocabulary argument differently.
        "electra": lambda: m.ElectraBackbone(
            vocab_size=vocabulary_size, **{k: v for k, v in common.items() if k[0] != "v"},
            embedding_dim=hidden, max_sequence_length=length),
        "roberta": lambda: m.RobertaBackbone(**common, max_sequence_length=length),
        "gpt2": lambda: m.GPT2Backbone(**common, max_sequence_length=length),
        "albert": lambda: m.AlbertBackbone(**common, embedding_dim=hidden, num_groups=layers,
                                           num_inner_repetitions=1, max_sequence_length=length),
        "deberta_v3": lambda: m.DebertaV3Backbone(**common, max_sequence_length=length,
                                                  bucket_size=length // 2),
    }


TINY_FAMILIES = ("bert", "distil_bert", "roberta", "albert", "deberta_v3", "electra", "gpt2")


def make_tiny_preset(
    family: str,
    directory: str | os.PathLike,
    *,
    num_layers: int = 2,
    hidden_dim: int = 16,
    max_sequence_length: int = 64,
    seed: int = 0,
) -> Path:
    """Writes a tiny random keras-hub preset (backbone config + weights + tokenizer) and returns it.

    Args:
        family: one of `TINY_FAMILIES`.
        directory: the preset folder to write (created; files in it are overwritten).
        num_layers, hidden_dim, max_sequence_length: the backbone's size.
        seed: seeds the random weights.

    Example:
    >>> import tempfile
    >>> from keras_transfer.text import build_text_classifier
    >>> preset = make_tiny_preset("bert", tempfile.mkdtemp() + "/tiny_bert")
    >>> model = build_text_classifier(str(preset), num_classes=2, sequence_length=16)
    """
    import keras
    import keras_hub

    if family not in TINY_FAMILIES:
        raise BadInputError(f"make_tiny_preset: family={family!r}; choose from {TINY_FAMILIES}.")
    keras.utils.set_random_seed(seed)
    tokenizer = _tokenizers(keras_hub)[family]()
    backbone = _backbones(keras_hub, tokenizer.vocabulary_size(), num_layers, hidden_dim,
                          max_sequence_length)[family]()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    backbone.save_to_preset(str(directory))
    tokenizer.save_to_preset(str(directory))
    return directory
