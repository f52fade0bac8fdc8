"""Export a model to Keras / SavedModel / TFLite (four quantizations), verify it, and run it.

`export` is the image export (classifiers and segmenters); ``kt.export``
dispatches every task to its adapter, all writing the metadata schema of `schema`. `load_runner`
loads any exported file of any task (``.keras``, SavedModel, ``.tflite``) as one callable.

Example:
>>> # from keras_transfer.export import export, predict
>>> # info = export(model, "exports/flowers", quantization="all", labels=names, verify_data=(x, y))
>>> # predict("exports/flowers/model.int8.tflite", ["rose.jpg"])
"""

from keras_transfer.export.core import export
from keras_transfer.export.interpreter import TFLiteModel, TFLiteRunner
from keras_transfer.export.predict import Artifact, load_artifact, predict, read_labels
from keras_transfer.export.runner import Runner, load_runner
from keras_transfer.export.tflite import QUANTIZATIONS, embed_metadata, read_embedded_metadata

__all__ = [
    "QUANTIZATIONS",
    "Artifact",
    "Runner",
    "TFLiteModel",
    "TFLiteRunner",
    "embed_metadata",
    "export",
    "load_artifact",
    "load_runner",
    "predict",
    "read_embedded_metadata",
    "read_labels",
]
