"""`explain(model, images)`: class heatmaps for image classifiers and segmenters.

What is explained by default: the predicted class (single-label); every class above 0.5, else the
top one (multi-label, sigmoid outputs); every class predicted on some pixel (segmenters).
``class_index=`` asks for given classes instead, the same for every image.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import keras
import numpy as np

from keras_transfer.errors import BadInputError
from keras_transfer.explain.gradcam import gradcam_batch
from keras_transfer.explain.taps import CLASSIFIER, Tap, tap_layer

# method name -> function(tap, images, choose_classes) -> [(image, class, map, output)]
METHODS: dict[str, Callable] = {"gradcam": gradcam_batch}


@dataclasses.dataclass
class Explanation:
    """Heatmaps, one per explained (image, class) pair, image by image.

    Attributes:
        heatmaps: float32 ``(M, H, W)`` in [0, 1], at the input resolution.
        image_indices: ``(M,)`` the image each map belongs to.
        class_indices: ``(M,)`` the class each map explains.
        outputs: ``(M,)`` the model's output for that class (probability, or value; for a
            segmenter the mean over the pixels predicted as the class).
        layer: the explained layer's name.
        method: ``"gradcam"``.
        files: the overlay PNGs written (by `explain(output_dir=...)` or `save_overlays`).

    With one class per image (the single-label default) ``heatmaps[i]`` is image ``i``'s map.

    Example:
    >>> import numpy as np
    >>> e = Explanation(np.zeros((2, 4, 4), "float32"), np.array([0, 0]), np.array([1, 2]),
    ...                 np.array([0.7, 0.6]), "conv")
    >>> e.maps_of(0).shape, len(e)
    ((2, 4, 4), 2)
    """

    heatmaps: np.ndarray
    image_indices: np.ndarray
    class_indices: np.ndarray
    outputs: np.ndarray
    layer: str
    method: str = "gradcam"
    files: list = dataclasses.field(default_factory=list)

    def __len__(self) -> int:
        return len(self.heatmaps)

    def maps_of(self, image_index: int) -> np.ndarray:
        """The maps of one image, ``(K, H, W)``, in the order its classes were explained."""
        return self.heatmaps[self.image_indices == image_index]

    def save_overlays(
        self,
        images: Any,
        output_dir: str | os.PathLike,
        *,
        names: Sequence[str] | None = None,
        class_names: Sequence[str] | None = None,
        alpha: float = 0.45,
        colormap: str = "jet",
    ) -> list[Path]:
        """Writes each map over its image as a PNG (atomically): ``<name>_gradcam.png`` when an
        image has one map, else ``<name>_gradcam_<class>.png`` per class. `names` default to
        ``image000``, ``image001`` …; their directories and suffixes are dropped.

        Example:
        >>> import tempfile, numpy as np
        >>> e = Explanation(np.ones((1, 4, 4), "float32"), np.array([0]), np.array([1]),
        ...                 np.array([0.9]), "conv")
        >>> [p.name for p in e.save_overlays(np.zeros((1, 4, 4, 3)), tempfile.mkdtemp(),
        ...                                  names=["photos/cat.jpg"])]
        ['cat_gradcam.png']
        """
        from keras_transfer.explain.overlay import file_stem, save_overlay, unique_stems

        images = _as_batch(images)
        count = int(self.image_indices.max()) + 1 if len(self) else 0
        if len(images) < count:
            raise BadInputError(f"save_overlays: {len(images)} images for maps of {count}.")
        names = list(names) if names is not None else [f"image{i:03d}" for i in range(count)]
        if len(names) < count:
            raise BadInputError(f"save_overlays: {len(names)} names for {count} images.")
        stems = unique_stems(names)
        per_image = np.bincount(self.image_indices, minlength=count) if len(self) else []
        paths = []
        for heat, i, c in zip(self.heatmaps, self.image_indices, self.class_indices):
            label = class_names[c] if class_names is not None and c < len(class_names) else str(c)
            suffix = "" if per_image[i] == 1 else f"_{file_stem(label)}"
            path = Path(output_dir) / f"{stems[i]}_{self.method}{suffix}.png"
            paths.append(save_overlay(path, images[i], heat, alpha=alpha, colormap=colormap))
        self.files = paths
        return paths


def _as_batch(images: Any) -> np.ndarray:
    try:
        batch = np.asarray(images, dtype=np.float32)
    except (ValueError, TypeError) as error:
        raise BadInputError(f"explain: images must be an array (H, W, C) or (N, H, W, C) of "
                            f"pixels, or a list of same-sized images ({error}).") from None
    return batch[None] if batch.ndim == 3 else batch


def _image_batch(model: keras.Model, images: Any) -> np.ndarray:
    batch = _as_batch(images)
    expected = tuple(model.inputs[0].shape[1:])
    if batch.ndim != 4 or not len(batch):
        raise BadInputError(f"explain: expected images (H, W, C) or (N, H, W, C), got shape "
                            f"{batch.shape}.")
    if any(want is not None and want != got for want, got in zip(expected, batch.shape[1:])):
        raise BadInputError(
            f"explain: images of shape {batch.shape[1:]} do not fit the model's input "
            f"{expected}; resize them first (keras_transfer.export.images.to_image_batch(paths, "
            "size) decodes and resizes files the way training did).")
    if not np.isfinite(batch).all():
        raise BadInputError("explain: the images contain NaN or infinite values.")
    return batch


def _requested(class_index: int | Sequence[int] | None, count: int) -> list[int] | None:
    if class_index is None:
        return None
    wanted = [class_index] if np.ndim(class_index) == 0 else list(class_index)
    if not wanted:
        raise BadInputError("explain: class_index=[] asks for no class.")
    for c in wanted:
        if isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, np.integer)):
            raise BadInputError(f"explain: class_index={class_index!r}: expected an int or a "
                                "list of ints.")
        if not 0 <= c < count:
            raise BadInputError(f"explain: class_index {c} is out of range: the model has "
                                f"{count} output(s), 0…{count - 1}.")
    return list(dict.fromkeys(int(c) for c in wanted))


def _default_classes(tap: Tap, outputs: np.ndarray) -> list[list[int]]:
    if tap.kind != CLASSIFIER:  # every class predicted on some pixel
        return [sorted(int(c) for c in np.unique(row.argmax(-1))) for row in outputs]
    if tap.activation == "sigmoid":  # multi-label: every class above 0.5, else the top one
        return [[int(c) for c in np.flatnonzero(row > 0.5)] or [int(row.argmax())]
                for row in outputs]
    return [[int(row.argmax())] for row in outputs]


def explain(
    model: keras.Model,
    images: Any,
    method: str = "gradcam",
    *,
    class_index: int | Sequence[int] | None = None,
    layer: str | None = None,
    batch_size: int = 16,
    output_dir: str | os.PathLike | None = None,
    names: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
) -> Explanation:
    """Heatmaps of where `model` looks for a class in each image (Grad-CAM).

    Args:
        model: an image classifier (single-label, multi-label or regression; e.g. from
            `build_image_classifier`, also after `keras.models.load_model`) or a segmenter from
            `build_segmenter`. Detectors are not supported (raises `BadInputError`).
        images: pixels as the model takes them (raw [0, 255] for keras-transfer models),
            ``(H, W, C)`` or ``(N, H, W, C)``, at the model's input size.
        method: ``"gradcam"``.
        class_index: a class or a list of classes to explain in every image; default: the
            predicted class (single-label), every class above 0.5 else the top one
            (multi-label), every class predicted on some pixel (segmenter).
        layer: the layer to explain, by name (nested models are searched) or a backbone block
            name; default: the end of the backbone's last block with a map larger than 1×1.
        batch_size: images per forward and backward pass.
        output_dir: also write an overlay PNG per map there (see `Explanation.save_overlays`),
            named after `names` and labelled with `class_names`.

    Returns:
        An `Explanation`: float32 heatmaps in [0, 1] at the input resolution, one per image and
        explained class, with the image and class of each.

    Example:
    >>> import numpy as np, keras_transfer as kt
    >>> model = kt.build_image_classifier("vgg16", num_classes=3, weights=None,
    ...                                   input_shape=(64, 64, 3))
    >>> images = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3))
    >>> result = kt.explain(model, images)
    >>> result.heatmaps.shape, result.heatmaps.dtype, result.layer
    ((2, 64, 64), dtype('float32'), 'block5_pool')
    >>> bool(0 <= result.heatmaps.min() and result.heatmaps.max() <= 1)
    True
    >>> kt.explain(model, images, class_index=[0, 2]).class_indices.tolist()
    [0, 2, 0, 2]
    """
    if method not in METHODS:
        raise BadInputError(f"explain: method={method!r}; supported: {sorted(METHODS)}.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise BadInputError(f"explain: batch_size={batch_size!r}, expected a positive int.")
    tap = tap_layer(model, layer)
    batch = _image_batch(model, images)
    wanted = _requested(class_index, int(model.outputs[0].shape[-1]))

    def choose(outputs: np.ndarray) -> list[list[int]]:
        return [list(wanted) for _ in outputs] if wanted else _default_classes(tap, outputs)

    rows = []
    for start in range(0, len(batch), batch_size):
        found = METHODS[method](tap, batch[start:start + batch_size], choose)
        rows += [(start + i, c, heat, output) for i, c, heat, output in found]
    result = Explanation(
        heatmaps=np.stack([row[2] for row in rows]).astype(np.float32),
        image_indices=np.array([row[0] for row in rows], np.int64),
        class_indices=np.array([row[1] for row in rows], np.int64),
        outputs=np.array([row[3] for row in rows], np.float32),
        layer=tap.layer,
        method=method,
    )
    if output_dir is not None:
        result.save_overlays(batch, output_dir, names=names, class_names=class_names)
    return result
