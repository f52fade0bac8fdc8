"""Export a model to Keras / SavedModel / TFLite (four quantizations), verify it, and run it.

Example:
>>> # from keras_transfer.export import export, predict
>>> # info = export(model, "exports/flowers", quantization="all", labels=names, verify_data=(x, y))
>>> # predict("exports/flowers/model.int8.tflite", ["rose.jpg"])
"""

from keras_transfer.export.core import export
from keras_transfer.export.interpreter import TFLiteRunner
from keras_transfer.export.predict import Artifact, load_artifact, predict, read_labels
from keras_transfer.export.tflite import QUANTIZATIONS, embed_metadata, read_embedded_metadata

__all__ = [
    "QUANTIZATIONS",
    "Artifact",
    "TFLiteRunner",
    "embed_metadata",
    "export",
    "load_artifact",
    "predict",
    "read_embedded_metadata",
    "read_labels",
]
