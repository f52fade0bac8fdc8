"""One loader for every exported file of every task: ``load_runner(path)`` → a callable.

A `Runner` takes named numpy inputs (one array when the model has one input) and returns named
numpy outputs, whatever the file: a ``.keras`` archive (loaded with ``safe_mode``), a SavedModel
folder (its ``serve`` signature, or the one named) or a ``.tflite`` file
(`keras_transfer.export.interpreter.TFLiteModel`). Every file is checked before it is loaded
(`keras_transfer.export.integrity.check_artifact`: the size and sha256 recorded in
``metadata.json``, and its structure), so a truncated or modified copy raises `BadInputError`
naming it. The task-level predictors (`keras_transfer.tasks.predictors`) and the image
`predict` are thin uses of it.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from keras_transfer.errors import BadInputError
from keras_transfer.export.integrity import check_artifact

KINDS = ("keras", "saved_model", "tflite")
# An export folder's float model, in the order it is picked.
FLOAT_CHOICES = ("model.keras", "saved_model", "model.tflite")


@dataclasses.dataclass
class Runner:
    """A loaded model file: ``runner(inputs)`` → ``{output name: array}``.

    Attributes:
        path: the file or SavedModel folder.
        kind: ``"keras"``, ``"saved_model"`` or ``"tflite"``.
        input_names / output_names: what it takes and returns (a single-output Keras model's
            output is named ``predictions``).
        model: the `keras.Model` of a ``.keras`` file (None otherwise).
        engine: the loaded object behind it (the `TFLiteModel`, the SavedModel signature).
        input_shapes: each input's shape, None where a dimension is free (the batch).

    Example:
    >>> toy = Runner(Path("toy"), "keras", ["x"], ["y"], lambda feeds: {"y": feeds["x"] * 2})
    >>> toy(np.ones(2))["y"].tolist()
    [2.0, 2.0]
    """

    path: Path
    kind: str
    input_names: list[str]
    output_names: list[str]
    run: Callable[[dict[str, Any]], dict[str, np.ndarray]] = dataclasses.field(repr=False)
    model: Any = dataclasses.field(default=None, repr=False)
    engine: Any = dataclasses.field(default=None, repr=False)
    input_shapes: dict[str, tuple | None] = dataclasses.field(default_factory=dict, repr=False)

    @property
    def image_size(self) -> tuple[int, int] | None:
        """``(height, width)`` of a one-image-input model's fixed input, else None."""
        shape = self.input_shapes.get(self.input_names[0]) if len(self.input_names) == 1 else None
        if shape is None or len(shape) != 4 or None in shape[1:3]:
            return None
        return int(shape[1]), int(shape[2])

    def __call__(self, inputs: Any) -> dict[str, np.ndarray]:
        if not isinstance(inputs, dict):
            if len(self.input_names) != 1:
                raise BadInputError(f"{self.path}: takes inputs {self.input_names}; pass a dict "
                                    "of arrays by name.")
            inputs = {self.input_names[0]: inputs}
        unknown = sorted(set(inputs) - set(self.input_names))
        if unknown:
            raise BadInputError(f"{self.path}: unknown input(s) {unknown}; it takes "
                                f"{self.input_names}.")
        return self.run(inputs)


def resolve_artifact(path: str | os.PathLike) -> Path:
    """The model file an artifact path means: the path itself, or in an export folder its float
    model (``model.keras``, else ``saved_model/``, else ``model.tflite``, else a ``.tflite``).

    Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp()); _ = (folder / "model.tflite").write_bytes(b"")
    >>> resolve_artifact(folder).name
    'model.tflite'
    """
    path = Path(path)
    if not path.exists():
        raise BadInputError(f"{path}: no such file or folder.")
    if path.is_dir() and not (path / "saved_model.pb").is_file():
        for name in FLOAT_CHOICES:
            if (path / name).exists():
                return path / name
        tflites = sorted(path.glob("*.tflite"))
        if tflites:
            return tflites[0]
        raise BadInputError(
            f"{path}: neither a SavedModel nor an export folder (no {', '.join(FLOAT_CHOICES)}).")
    return path


def artifact_kind(path: str | os.PathLike) -> str:
    """``"keras"``, ``"saved_model"`` or ``"tflite"`` for a resolved artifact path.

    Example:
    >>> artifact_kind("exports/flowers/model.int8.tflite")
    'tflite'
    """
    path = Path(path)
    if path.suffix == ".keras":
        return "keras"
    if path.suffix == ".tflite":
        return "tflite"
    if path.is_dir():
        return "saved_model"
    raise BadInputError(
        f"{path}: unknown artifact type (expected .keras, .tflite or a SavedModel folder).")


def load_runner(path: str | os.PathLike, *, threads: int | None = None,
                signature: str | None = None) -> Runner:
    """Loads any artifact (a ``.keras`` file, SavedModel folder, ``.tflite`` file or export
    folder) of any task, checked first, as a `Runner`.

    `signature` picks a SavedModel / TFLite signature (default ``serve``, else
    ``serving_default``, else the only one); `threads` sets the TFLite interpreter's.

    Example:
    >>> # runner = load_runner("exports/sentiment/model.tflite")
    >>> # runner({"token_ids": ids, "padding_mask": mask, "segment_ids": segments})
    >>> # {'predictions': array([[0.1, 0.9]], dtype=float32)}
    """
    path = resolve_artifact(path)
    kind = artifact_kind(path)
    check_artifact(path)  # a clear error naming a truncated or altered file
    if kind == "keras":
        return _keras_runner(path)
    if kind == "saved_model":
        return _saved_model_runner(path, signature)
    from keras_transfer.export.interpreter import TFLiteModel

    engine = TFLiteModel(path, threads=threads, signature=signature)
    shapes = {}
    for name in engine.input_names:
        details = engine.input_details(name)
        shapes[name] = _shape([-1 if d == -1 else int(d) for d in
                               details.get("shape_signature", details["shape"])])
    return Runner(path, "tflite", engine.input_names, engine.output_names, engine, engine=engine,
                  input_shapes=shapes)


def _shape(dims) -> tuple | None:
    """A shape with free dimensions as None (TFLite writes them -1)."""
    if dims is None:
        return None
    return tuple(None if d is None or d == -1 else int(d) for d in dims)


def load_keras_model(path: str | os.PathLike):
    """A ``.keras`` file loaded with ``safe_mode`` after registering keras-transfer's classes
    (and keras-hub's), checked first; a load failure is a `BadInputError` naming the file.

    Example:
    >>> # model = load_keras_model("exports/flowers/model.keras")
    """
    import keras

    import keras_transfer  # noqa: F401 - registers our layers, models and detectors

    path = Path(path)
    check_artifact(path)
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as error:  # noqa: BLE001 - keras raises many kinds for a bad archive
        raise BadInputError(f"{path}: cannot load the Keras model: {error}") from None


def _tensor(value: Any):
    import tensorflow as tf

    array = np.asarray(value)
    if array.dtype.kind in "USO":  # strings: a text model's inputs
        return tf.constant([str(v) for v in array.reshape(-1)], tf.string)
    return tf.convert_to_tensor(array)


def _as_dict(outputs: Any) -> dict[str, np.ndarray]:
    import keras

    if not isinstance(outputs, dict):
        outputs = {"predictions": outputs}
    return {key: keras.ops.convert_to_numpy(value) for key, value in outputs.items()}


def _keras_runner(path: Path) -> Runner:
    model = load_keras_model(path)
    structure = model.input
    if isinstance(structure, dict):
        names = list(structure)
    elif isinstance(structure, (list, tuple)):
        names = [tensor.name.split(":")[0] for tensor in structure]
    else:
        names = [structure.name.split(":")[0]]

    def run(feeds: dict[str, Any]) -> dict[str, np.ndarray]:
        missing = [name for name in names if name not in feeds]
        if missing:
            raise BadInputError(f"{path}: missing input(s) {missing}; it takes {names}.")
        if isinstance(structure, dict):
            x: Any = {name: _tensor(feeds[name]) for name in names}
        elif isinstance(structure, (list, tuple)):
            x = [_tensor(feeds[name]) for name in names]
        else:
            x = _tensor(feeds[names[0]])
        return _as_dict(model(x, training=False))

    outputs = model.output
    output_names = list(outputs) if isinstance(outputs, dict) else ["predictions"]
    tensors = _input_tensors(structure)
    shapes = {name: _shape(tensor.shape) for name, tensor in zip(names, tensors)}
    return Runner(path, "keras", names, output_names, run, model=model, engine=model,
                  input_shapes=shapes)


def _input_tensors(structure: Any) -> list:
    """The tensors of a model's input structure, in the order of its input names."""
    if isinstance(structure, dict):
        return list(structure.values())
    return list(structure) if isinstance(structure, (list, tuple)) else [structure]


def _saved_model_runner(path: Path, signature: str | None) -> Runner:
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as error:  # noqa: BLE001
        raise BadInputError(f"{path}: cannot load the SavedModel: {error}") from None
    signatures = loaded.signatures
    choices = [signature] if signature else ["serve", "serving_default", *signatures]
    name = next((key for key in choices if key in signatures), None)
    if name is None:
        wanted = signature or "'serve' or 'serving_default'"
        raise BadInputError(f"{path}: SavedModel has no {wanted} signature "
                            f"(it has {sorted(signatures)}).")
    fn = signatures[name]
    specs = fn.structured_input_signature[1]

    def run(feeds: dict[str, Any]) -> dict[str, np.ndarray]:
        missing = [key for key in specs if key not in feeds]
        if missing:
            raise BadInputError(f"{path}: missing input(s) {missing}; it takes {sorted(specs)}.")
        args = {}
        for key, spec in specs.items():
            value = _tensor(feeds[key])
            args[key] = value if spec.dtype == tf.string else tf.cast(value, spec.dtype)
        return {key: value.numpy() for key, value in fn(**args).items()}

    outputs = sorted(fn.structured_outputs)
    shapes = {key: _shape(spec.shape.as_list() if spec.shape.rank is not None else None)
              for key, spec in specs.items()}
    return Runner(path, "saved_model", sorted(specs), outputs, run, engine=fn,
                  input_shapes=shapes)
