"""Which layer to explain, and an in-memory model that returns its feature map beside the scores.

The layer comes from the backbone's block map (data): the output of the last block whose map is
larger than 1×1, or any layer named with ``layer=``. The tapped model is a plain functional
`keras.Model` built from the model's own layers (shared weights, nothing copied, no `Lambda`); it
lives in memory only and never becomes part of the explained model, so a `.keras` file saved
afterwards is unchanged. A layer inside a nested model (the backbone, or the keras-hub model
inside our wrapper) is reached by tapping each nested model on the way and calling the rest of
each enclosing graph on the tapped model's outputs.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import keras
import numpy as np

from keras_transfer.compat.keras_internals import producing_layer, producing_node
from keras_transfer.errors import BadInputError

# Output activations whose logits Grad-CAM differentiates instead (Selvaraju et al. 2017 use the
# score before the softmax: after it, a class gains by the others losing).
UNDOABLE = ("softmax", "sigmoid")
CLASSIFIER, SEGMENTER = "classifier", "segmenter"


@dataclasses.dataclass
class Tap:
    """An in-memory model ``images → [feature map, head]`` and how to read class scores off it.

    ``head`` is the input of the output layer when its activation is softmax or sigmoid (the
    logits, `logits` recomputes the output layer's linear part from it), else the model's output.

    Example:
    >>> from keras_transfer import build_image_classifier
    >>> model = build_image_classifier("vgg16", 2, weights=None, input_shape=(64, 64, 3))
    >>> tap = tap_layer(model)
    >>> tap.layer, tap.kind, tap.activation, tap.undo_activation
    ('block5_pool', 'classifier', 'softmax', True)
    """

    model: keras.Model
    layer: str
    kind: str
    activation: str | None
    output_layer: keras.layers.Layer
    undo_activation: bool

    def logits(self, head: Any) -> Any:
        """Per-class scores from the tapped head: pre-activation where the activation is undone.

        Example:
        >>> import keras
        >>> inputs = keras.Input((4, 4, 3)); conv = keras.layers.Conv2D(2, 1, name="conv")
        >>> x = keras.layers.GlobalAveragePooling2D()(conv(inputs))
        >>> model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x))
        >>> tap = tap_layer(model, "conv")
        >>> tuple(tap.logits(keras.ops.ones((1, 2))).shape)
        (1, 3)
        """
        layer = self.output_layer
        if not self.undo_activation or not isinstance(layer, keras.layers.Dense):
            return keras.ops.cast(head, "float32")
        kernel = keras.ops.cast(layer.kernel, "float32")
        scores = keras.ops.matmul(keras.ops.cast(head, "float32"), kernel)
        return scores + keras.ops.cast(layer.bias, "float32") if layer.use_bias else scores

    def outputs(self, logits: np.ndarray) -> np.ndarray:
        """The model's outputs from `logits` (the activation applied again where undone).

        Example:
        >>> import keras
        >>> inputs = keras.Input((4, 4, 3)); conv = keras.layers.Conv2D(2, 1, name="conv")
        >>> x = keras.layers.GlobalAveragePooling2D()(conv(inputs))
        >>> model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x))
        >>> tap_layer(model, "conv").outputs(np.array([[0.0, 0.0]])).tolist()
        [[0.5, 0.5]]
        """
        logits = np.asarray(logits, np.float64)
        if not self.undo_activation:
            return logits
        if self.activation == "sigmoid":
            return 1.0 / (1.0 + np.exp(-logits))
        shifted = np.exp(logits - logits.max(-1, keepdims=True))
        return shifted / shifted.sum(-1, keepdims=True)


# --------------------------------------------------------------------------- the graph


def _nodes(model: keras.Model) -> list:
    """The nodes of `model`'s own graph (reachable from its outputs), outputs first."""
    seen, nodes, stack = set(), [], list(model.outputs)
    while stack:
        tensor = stack.pop()
        node = producing_node(tensor)
        if id(node) in seen:
            continue
        seen.add(id(node))
        nodes.append(node)
        stack.extend(node.input_tensors)
    return nodes


def _call_of(model: keras.Model, layer) -> object:
    """The node of `layer`'s call inside `model`'s graph."""
    for node in _nodes(model):
        if node.operation is layer:
            return node
    raise BadInputError(f"Layer '{layer.name}' is not used in the graph of '{model.name}'.")


def _output_layer(model: keras.Model) -> tuple[object, str]:
    """The layer computing the model's one output, and the task it implies."""
    outputs = getattr(model, "outputs", None) if isinstance(model, keras.Model) else None
    rank = len(outputs[0].shape) if outputs and len(outputs) == 1 else None
    inputs = getattr(model, "inputs", None) or []
    if rank is None or len(inputs) != 1 or len(inputs[0].shape) != 4 or rank not in (2, 4):
        raise BadInputError(
            f"explain: '{getattr(model, 'name', type(model).__name__)}' is not supported. "
            "Grad-CAM explains functional image models with one image input and one output: "
            "classifiers (N, classes) — single-label, multi-label or regression, e.g. from "
            "build_image_classifier — and segmenters (N, H, W, classes) from build_segmenter. "
            "Detectors are not supported: their heads return per-anchor boxes and class scores "
            "before non-maximum suppression, with no class score per image to explain.")
    kind = CLASSIFIER if rank == 2 else SEGMENTER
    return producing_layer(outputs[0]), kind


def _activation_name(layer) -> str | None:
    return getattr(getattr(layer, "activation", None), "__name__", None)


def _nested_models(model: keras.Model) -> list[keras.Model]:
    return [layer for layer in model.layers if isinstance(layer, keras.Model)]


def _path_to(model: keras.Model, layer) -> list[keras.Model] | None:
    """The nested models from `model` down to the one whose own layers hold `layer`."""
    if any(candidate is layer for candidate in model.layers):
        return []
    for nested in _nested_models(model):
        path = _path_to(nested, layer)
        if path is not None:
            return [nested, *path]
    return None


def _all_layers(model: keras.Model) -> list:
    layers = []
    for layer in model.layers:
        layers.append(layer)
        if isinstance(layer, keras.Model):
            layers.extend(_all_layers(layer))
    return layers


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _struct(values: list):
    """One tensor as itself, several as a list (how Keras wants a model's inputs)."""
    return values[0] if len(values) == 1 else list(values)


def _rest(sources: list, targets: list, values: list) -> list:
    """`targets` (tensors of one graph) computed from `values` standing for `sources`."""
    known = {id(source): value for source, value in zip(sources, values)}
    computed = [target for target in targets if id(target) not in known]
    if computed:
        rest = keras.Model(_struct(sources), computed)  # intermediate inputs: Keras cuts there
        known.update(zip(map(id, computed), _as_list(rest(_struct(values)))))
    return [known[id(target)] for target in targets]


def _tap(model: keras.Model, path: Sequence[keras.Model], layer, targets: list) -> keras.Model:
    """``model.inputs → [layer's output, *targets]`` as a new functional model."""
    if not path:
        feature = _call_of(model, layer).output_tensors
        if len(feature) != 1:
            raise BadInputError(f"explain: layer '{layer.name}' has {len(feature)} outputs; "
                                "choose a layer with one feature map.")
        return keras.Model(_struct(model.inputs), [feature[0], *targets])
    nested = path[0]
    node = _call_of(model, nested)
    inner = _tap(nested, path[1:], layer, list(nested.outputs))
    inputs = [keras.Input(batch_shape=t.shape, dtype=t.dtype) for t in model.inputs]
    call_inputs = list(node.input_tensors)
    if [id(t) for t in call_inputs] == [id(t) for t in model.inputs]:
        values = inputs
    else:
        before = keras.Model(_struct(model.inputs), _struct(call_inputs))
        values = _as_list(before(_struct(inputs)))
    feature, *outputs = inner(_struct(values))
    rest = _rest(list(node.output_tensors), targets, outputs)
    return keras.Model(_struct(inputs), [feature, *rest])


# --------------------------------------------------------------------------- the layer


def default_layer(model: keras.Model):
    """The layer Grad-CAM explains by default: the end of the backbone's last block whose
    output map is larger than 1×1 (the last block when sizes are unknown).

    Example:
    >>> from keras_transfer import build_image_classifier
    >>> model = build_image_classifier("vgg16", 2, weights=None, input_shape=(32, 32, 3))
    >>> default_layer(model).name  # block5 ends at a 1×1 map at 32 px
    'block4_pool'
    """
    from keras_transfer.backbones import blocks_of

    try:
        blocks = blocks_of(model)
    except ValueError as error:
        raise BadInputError(
            f"explain: '{model.name}' has no backbone block map to choose the layer from "
            f"({error}). Pass layer='<name of a convolutional layer>' (e.g. the last one "
            "before global pooling).") from None
    ends = [block.output_layer for block in blocks if block.output_layer is not None]
    maps = [layer for layer in ends if len(_output_shape(layer)) == 4]
    if not maps:
        raise BadInputError(f"explain: no block of '{model.name}' ends in a feature map; pass "
                            "layer='<name>'.")
    larger = [layer for layer in maps if _spatial(layer) is None or _spatial(layer) > 1]
    return (larger or maps)[-1]


def _output_shape(layer) -> tuple:
    try:
        return tuple(layer.output.shape)
    except (AttributeError, ValueError):
        return ()


def _spatial(layer) -> int | None:
    height, width = _output_shape(layer)[1:3]
    return None if height is None or width is None else height * width


def find_layer(model: keras.Model, name: str):
    """A layer of `model` or of any model nested in it, by name; a backbone block name
    (``"block4"``) means the layer that ends that block.

    Example:
    >>> from keras_transfer import build_image_classifier
    >>> model = build_image_classifier("vgg16", 2, weights=None, input_shape=(32, 32, 3))
    >>> find_layer(model, "block3_conv3").name, find_layer(model, "block3").name
    ('block3_conv3', 'block3_pool')
    """
    layers = _all_layers(model)
    for layer in layers:
        if layer.name == name:
            return layer
    blocks = _blocks_or_empty(model)
    if name in blocks:
        return blocks[name]
    from keras_transfer.settings import did_you_mean

    names = [layer.name for layer in layers]
    raise BadInputError(
        f"explain: layer={name!r} is neither a layer of '{model.name}' nor a block "
        f"{list(blocks) or ''}{did_you_mean(name, names)}.")


def _blocks_or_empty(model: keras.Model) -> dict:
    from keras_transfer.backbones import blocks_of

    try:
        return {block.name: block.output_layer for block in blocks_of(model)}
    except ValueError:
        return {}


def tap_layer(model: keras.Model, layer: str | None = None) -> Tap:
    """The in-memory model ``images → [feature map of the layer, head]`` Grad-CAM runs.

    Args:
        model: an image classifier or segmenter (see `keras_transfer.explain.explain`).
        layer: a layer name (searched in nested models too) or a backbone block name;
            default: `default_layer`.

    Example:
    >>> from keras_transfer import build_image_classifier
    >>> model = build_image_classifier("mobilenet_v2", 3, weights=None, input_shape=(64, 64, 3))
    >>> tap = tap_layer(model)
    >>> tap.layer, [tuple(shape[1:]) for shape in tap.model.output_shape]
    ('out_relu', [(2, 2, 1280), (1280,)])
    """
    output_layer, kind = _output_layer(model)
    target = default_layer(model) if layer is None else find_layer(model, layer)
    if len(_output_shape(target)) != 4:
        raise BadInputError(
            f"explain: layer '{target.name}' outputs shape {_output_shape(target)}, not a "
            "feature map (N, H, W, C); choose a convolutional layer or block.")
    path = _path_to(model, target)
    activation = _activation_name(output_layer)
    undo = activation in UNDOABLE and (
        isinstance(output_layer, keras.layers.Dense)
        or isinstance(output_layer, keras.layers.Activation))
    node = _call_of(model, output_layer)
    head = node.input_tensors[0] if undo else model.outputs[0]
    tapped = _tap(model, path, target, [head])
    return Tap(tapped, target.name, kind, activation, output_layer, undo)
