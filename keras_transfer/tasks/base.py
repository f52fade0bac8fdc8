"""The task contract: what a model is for, as data, and the model class that carries it.

A `Task` is what recipes, export, predict, evaluation and the CLI ask instead of guessing from
layer names or output activations: its builder, its compile defaults (optimizer, loss, metrics),
whether its head can be trained on cached backbone features, the TFLite quantizations its ops
allow, and its export and predict adapters. Tasks live in a registry keyed by name (like timm's
pretrained configs); `task_of(model)` reads the name the model carries.

A `TaskModel` is a functional `keras.Model` that records its task name and the few settings
the task needs (e.g. ``{"head": "multi_label"}``) in its config, so the task survives
``model.save`` / ``keras.models.load_model(..., safe_mode=True)``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import keras

from keras_transfer.errors import BadInputError


@keras.saving.register_keras_serializable(package="keras_transfer")
class TaskModel(keras.Model):
    """A functional model that knows its task (``task_name``) and task settings (``task_config``).

    Build it like `keras.Model(inputs, outputs)` and pass ``task=`` and ``task_config=``;
    everything else (layers, ``fit``, saving) is the functional model's.

    Example:
    >>> inputs = keras.Input((4,))
    >>> outputs = keras.layers.Dense(2, activation="softmax", name="predictions")(inputs)
    >>> model = TaskModel(inputs, outputs, task="image_classification",
    ...                   task_config={"head": "single_label"})
    >>> model.task_name, model.task_config
    ('image_classification', {'head': 'single_label'})
    """

    # The constructor's named arguments must stay (inputs, outputs, name): Keras rebuilds a
    # functional subclass from its config only when they match `Functional.__init__`'s.
    def __init__(self, inputs, outputs, name: str | None = None, **kwargs):
        task = kwargs.pop("task", None)
        task_config = kwargs.pop("task_config", None)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        self.task_name: str | None = task
        self.task_config: dict[str, Any] = dict(task_config or {})

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "task": self.task_name,
                "task_config": dict(self.task_config)}

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects=None) -> "TaskModel":
        config = dict(config)
        task, task_config = config.pop("task", None), config.pop("task_config", None)
        model = super().from_config(config, custom_objects)
        model.task_name, model.task_config = task, dict(task_config or {})
        return model


def tag(model: keras.Model, task: str, **task_config: Any) -> TaskModel:
    """The functional `model` as a `TaskModel` of `task` (same layers and weights, no copy).

    Use it on a functional model built by hand, so export, predict and the recipes know what it
    is for.

    Example:
    >>> inputs = keras.Input((4,))
    >>> plain = keras.Model(inputs, keras.layers.Dense(1, name="predictions")(inputs))
    >>> tag(plain, "image_classification", head="regression").task_config
    {'head': 'regression'}
    """
    get_task(task)  # an unknown name fails here, not at export time
    return TaskModel(model.inputs, model.outputs, name=model.name, task=task,
                     task_config=task_config)


@dataclasses.dataclass(frozen=True)
class Metric:
    """A headline number of a task's evaluation report: its key, how it is said, its format.

    Example:
    >>> metric = Metric("mean_iou", "mean IoU")
    >>> f"{metric.words} {metric.fmt.format(0.61234)}"
    'mean IoU 0.6123'
    """

    key: str
    words: str
    fmt: str = "{:.4f}"
    higher_is_better: bool = True  # perplexity is not


def lazy(module: str, name: str) -> Callable[..., Any]:
    """`module.name`, imported at its first call (registering a task imports nothing heavy).

    Example:
    >>> lazy("math", "sqrt")(9.0)
    3.0
    """
    def call(*args: Any, **kwargs: Any) -> Any:
        import importlib

        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    return call


# What a task's examples are called in its one-line summary, by its `inputs`.
_EXAMPLES = {"images": "images", "texts": "texts", "question_context": "questions"}


@dataclasses.dataclass(frozen=True)
class Task:
    """One task: its builder, compile defaults and adapters (the registry's entries are data).

    Attributes:
        name: the registry key, e.g. ``"image_classification"``.
        alias: the CLI's ``--task`` name (``image``, ``text``, ``qa``, ``lm``, ...).
        description: one line for `list_tasks` and the README.
        inputs: what the model takes: ``"images"``, ``"texts"``, ``"question_context"``.
        build: the public builder (``kt.build_...``).
        optimizer: ``optimizer(model, learning_rate, weight_decay)`` → the default optimizer.
        compile: ``compile(model, optimizer, loss)`` with the task's loss (``loss`` replaces
            it where the task has a single one), metrics and compile flags.
        head_loss: ``head_loss(model)`` → (loss, metrics) for a head trained on cached
            backbone features; None where the head cannot be split from the backbone.
        default_learning_rate: the stage-1 (head) rate of the recipes.
        quantizations: the TFLite flavours the task's ops allow.
        separate_head: the model has a head apart from the backbone that can be trained on a
            frozen backbone first (a causal LM's output layer is its tied token embedding, so
            its staged recipes skip the head stage).
        export: ``export(model, directory, **options)`` → the metadata dict.
        predict: ``predict(artifact, inputs, **options)`` → what the task means (labels,
            masks, boxes, answers, text).
        evaluate: ``evaluate(model, data, split)`` → the task's report on one split of the
            job's data (`evaluation.tasks`).
        headline: the report's `Metric`\ s a one-line summary says, in order.
    """

    name: str
    alias: str
    description: str
    inputs: str
    build: Callable[..., keras.Model]
    optimizer: Callable[..., keras.optimizers.Optimizer]
    compile: Callable[..., None]
    head_loss: Callable[[keras.Model], tuple[Any, Any]] | None
    default_learning_rate: float
    quantizations: tuple[str, ...]
    separate_head: bool = True
    export: Callable[..., dict] | None = None
    predict: Callable[..., Any] | None = None
    evaluate: Callable[..., dict] | None = None
    headline: tuple[Metric, ...] = ()

    @property
    def examples(self) -> str:
        """What one input is called in a summary: ``images``, ``texts`` or ``questions``."""
        return _EXAMPLES.get(self.inputs, "examples")

    def compile_model(self, model: keras.Model, learning_rate: Any = None, *,
                      weight_decay: float | None = None, loss: Any = None) -> keras.Model:
        """Compiles `model` with this task's defaults (its optimizer at `learning_rate`).

        Example:
        >>> # get_task("segmentation").compile_model(model, 1e-4)
        """
        rate = self.default_learning_rate if learning_rate is None else learning_rate
        self.compile(model, self.optimizer(model, rate, weight_decay), loss)
        return model


_TASKS: dict[str, Task] = {}
# Models the task registry cannot tag (classes from keras-cv / keras-hub): predicate → task.
_CLASS_RULES: list[tuple[Callable[[keras.Model], bool], str]] = []


def register_task(task: Task) -> Task:
    """Adds `task` to the registry (replacing one of the same name).

    Example:
    >>> # register_task(Task(name="my_task", alias="mine", ...))
    """
    _TASKS[task.name] = task
    return task


def register_class_rule(predicate: Callable[[keras.Model], bool], task: str) -> None:
    """Declares that models for which `predicate` is true (a class test) belong to `task`.

    For model classes keras-transfer does not define (keras-cv's YOLOV8Detector, keras-hub's
    CausalLM); our own classes carry a ``task_name`` attribute instead.

    Example:
    >>> # register_class_rule(lambda m: isinstance(m, keras_hub.models.CausalLM), "causal_lm")
    """
    _CLASS_RULES.append((predicate, task))


def list_tasks() -> list[str]:
    """The registered task names.

    Example:
    >>> import keras_transfer
    >>> "segmentation" in list_tasks()
    True
    """
    return list(_TASKS)


def get_task(name: str) -> Task:
    """The task named `name` (a registry name or its CLI alias).

    Example:
    >>> import keras_transfer
    >>> get_task("qa").name
    'question_answering'
    """
    for task in _TASKS.values():
        if name in (task.name, task.alias):
            return task
    choices = sorted({*_TASKS, *(task.alias for task in _TASKS.values())})
    raise BadInputError(f"task={name!r}: not a task; choose from {choices}.")


def task_name_of(model: keras.Model) -> str:
    """The name of the task `model` was built for.

    Read from the model (a `TaskModel` or a class of ours with ``task_name``), else from a
    registered class rule. A functional model built by hand has none: its single output layer
    named ``predictions`` is read the way exports of keras-transfer < 0.2 were (softmax /
    sigmoid / linear over classes: image classification; a per-pixel softmax: segmentation).

    Example:
    >>> import keras_transfer as kt
    >>> model = kt.build_image_classifier("vgg16", 2, weights=None, input_shape=(32, 32, 3))
    >>> task_name_of(model)
    'image_classification'
    """
    name = getattr(model, "task_name", None)
    if name:
        return name
    for predicate, task in _CLASS_RULES:
        if predicate(model):
            return task
    return _untagged_task(model)


def task_of(model: keras.Model) -> Task:
    """The `Task` of `model` (see `task_name_of`).

    Example:
    >>> import keras_transfer as kt
    >>> model = kt.build_image_classifier("vgg16", 2, weights=None, input_shape=(32, 32, 3))
    >>> task_of(model).alias
    'image'
    """
    return get_task(task_name_of(model))


def task_config_of(model: keras.Model) -> dict[str, Any]:
    """The task settings `model` carries (``{}`` for a model that carries none).

    Example:
    >>> import keras_transfer as kt
    >>> model = kt.build_image_classifier("vgg16", 2, weights=None, input_shape=(32, 32, 3),
    ...                                   task="multi_label")
    >>> task_config_of(model)
    {'head': 'multi_label'}
    """
    config = getattr(model, "task_config", None)
    if isinstance(config, dict) and config:
        return dict(config)
    if task_name_of(model) == "image_classification":
        return {"head": _untagged_head(model)}
    return {}


_HEADS = {"softmax": "single_label", "sigmoid": "multi_label", "linear": "regression"}


def _predictions_layer(model: keras.Model):
    try:
        return model.get_layer("predictions")
    except ValueError:
        return None


def _untagged_task(model: keras.Model) -> str:
    layer = _predictions_layer(model)
    shape = model.output_shape
    if layer is not None and not isinstance(shape, (list, dict)):
        activation = getattr(getattr(layer, "activation", None), "__name__", None)
        if activation == "softmax" and len(shape) == 4:
            return "segmentation"
        if activation in _HEADS and len(shape) == 2:
            return "image_classification"
    raise BadInputError(
        f"Model '{model.name}' carries no task: build it with a keras_transfer builder "
        "(kt.build_image_classifier, build_text_classifier, build_segmenter, build_detector, "
        "...) or tag a functional model with keras_transfer.tasks.tag(model, task)."
    )


def _untagged_head(model: keras.Model) -> str:
    layer = _predictions_layer(model)
    activation = getattr(getattr(layer, "activation", None), "__name__", "linear")
    return _HEADS.get(activation, "regression")
