"""keras-transfer: transfer learning on Keras 3 / TensorFlow.

Pick a pretrained backbone, freeze or unfreeze it block by block, attach a task head, fine-tune
with `model.fit`, evaluate and export.

Example:
>>> import keras_transfer as kt
>>> model = kt.build_image_classifier("mobilenet_v2", num_classes=3, weights=None,
...                                   input_shape=(64, 64, 3))
>>> kt.unfreeze(model, last=1)
"""

from keras_transfer.backbones import (
    BackboneSpec,
    BlockEnd,
    blocks_of,
    build_backbone,
    describe,
    find_backbone,
    freeze,
    get_spec,
    list_backbones,
    register_backbone,
    set_trainable,
    unfreeze,
)
from keras_transfer.compare import compare_backbones
from keras_transfer.deprecation import install_moved_module_finder
from keras_transfer.errors import (
    BadInputError,
    KerasTransferError,
    MissingDependencyError,
    UnknownBackboneError,
    WeightsUnavailableError,
)
# `kt.explain` is the function; it shadows the subpackage's name here (import its modules with
# `from keras_transfer.explain import ...`).
from keras_transfer.explain import explain
from keras_transfer.heads import build_image_classifier, build_segmenter
from keras_transfer.layers import ImagePreprocessing
from keras_transfer.recipes import discriminative as _discriminative  # noqa: F401 - registers the optimizer for load_model
# Text models; importing registers the text block maps (freeze/describe) and the text layers.
from keras_transfer.text import (
    build_causal_lm,
    build_question_answerer,
    build_text_backbone,
    build_text_classifier,
)

from keras_transfer.tasks import Task, TaskModel, get_task, list_tasks, task_of
# `kt.export` / `kt.predict` are the task-dispatching functions; like `kt.explain` they shadow
# the subpackage names here (import its modules with `from keras_transfer.export import ...`).
from keras_transfer.tasks.api import export, predict


# Importing registers the detector classes (load_model with safe_mode after `import
# keras_transfer`); keras-cv is imported only by the YOLOv8 builder.
from keras_transfer.detection import build_detector

__version__ = "0.1.0"

# Old module paths (keras_transfer.evaluate, .plots, .cli, .jobs, ...) keep importing, with a warning.
install_moved_module_finder()

__all__ = [
    "BackboneSpec", "BadInputError", "BlockEnd", "ImagePreprocessing", "KerasTransferError",
    "MissingDependencyError", "UnknownBackboneError", "WeightsUnavailableError", "blocks_of",
    "build_backbone", "build_image_classifier", "describe", "explain", "find_backbone", "freeze",
    "get_spec", "list_backbones", "register_backbone", "set_trainable", "unfreeze",
]
__all__ += ["build_causal_lm", "build_question_answerer", "build_text_backbone",
            "build_text_classifier"]
__all__ += ["compare_backbones"]
__all__ += ["Task", "TaskModel", "build_detector", "build_segmenter", "export", "get_task",
            "list_tasks", "predict", "task_of"]
