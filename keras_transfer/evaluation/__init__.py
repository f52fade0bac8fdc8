"""Evaluation: what a trained model scores, and the pictures of it.

- `classification`: `evaluate` / `evaluate_classifier` (one report schema for single-label,
  multi-label and regression, with or without test-time augmentation) and the evaluation files;
- `metrics`: the report's numbers (accuracy, macro-F1, per-class recall, calibration, AUC);
- `segmentation`: mean IoU metrics, per-class IoU, mask overlays;
- `plots`: learning curves, confusion matrices, reliability diagrams, wrong-example grids.

Example:
>>> from keras_transfer.evaluation import classification_report
>>> classification_report([0, 1], [[0.9, 0.1], [0.2, 0.8]], ["cat", "dog"])["accuracy"]
1.0
"""

from keras_transfer.evaluation.metrics import classification_report, primary_metric
from keras_transfer.evaluation.classification import evaluate, evaluate_classifier
from keras_transfer.evaluation.segmentation import evaluate_segmenter

__all__ = ["classification_report", "evaluate", "evaluate_classifier", "evaluate_segmenter",
           "primary_metric"]
