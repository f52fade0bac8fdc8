"""Tasks: what a model is for, as data (builder, compile defaults, export and predict adapters).

Recipes, export, predict, evaluation and the CLI ask a model's task instead of guessing from
its layers. `TaskModel` carries the task name through save and load.

Example:
>>> import keras_transfer as kt
>>> model = kt.build_image_classifier("vgg16", 2, weights=None, input_shape=(32, 32, 3))
>>> task = kt.task_of(model)
>>> task.name, task.quantizations[-1]
('image_classification', 'int8')
>>> _ = task.compile_model(model, 1e-4)  # its optimizer, loss and metrics
"""

from keras_transfer.tasks.base import (
    Metric,
    Task,
    TaskModel,
    get_task,
    list_tasks,
    register_class_rule,
    register_task,
    tag,
    task_config_of,
    task_name_of,
    task_of,
)
# Importing the entries registers them, in the order `list_tasks` shows.
from keras_transfer.tasks import image as _image  # noqa: F401, E402
from keras_transfer.tasks import text as _text  # noqa: F401, E402
from keras_transfer.tasks import segmentation as _segmentation  # noqa: F401, E402
from keras_transfer.tasks import detection as _detection  # noqa: F401, E402

__all__ = ["Metric", "Task", "TaskModel", "get_task", "list_tasks", "register_class_rule",
           "register_task", "tag", "task_config_of", "task_name_of", "task_of"]
