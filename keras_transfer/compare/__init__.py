"""Backbone comparison: accuracy, size and on-device latency of several backbones on one split.

`compare_backbones` (``keras-transfer compare``) trains the same head on each backbone's cached
features (optionally a budgeted fine-tune), exports float32 and int8 TFLite files, times them,
and recommends one backbone by a stated rule (`recommend`) from the accuracy-latency Pareto
front (`pareto_front`).

Example:
>>> from keras_transfer.compare import pareto_front
>>> pareto_front({"a": (0.80, 10.0), "b": (0.85, 20.0), "c": (0.78, 15.0)})
['a', 'b']
"""

from keras_transfer.compare.config import CompareConfig, dataset_problem, offline_backbones
from keras_transfer.compare.pareto import RULE, Recommendation, pareto_front, recommend
from keras_transfer.compare.report import PLOT_FILE, RESULT_FILE, comparison_table
from keras_transfer.compare.run import compare_backbones

__all__ = [
    "PLOT_FILE", "RESULT_FILE", "RULE", "CompareConfig", "Recommendation", "compare_backbones",
    "comparison_table", "dataset_problem", "offline_backbones", "pareto_front", "recommend",
]
