"""Label-preserving symmetries of images: flips and quarter turns, as data.

A symmetry set is a tuple of generators from ``GENERATORS``; the transforms it allows are the
group they generate inside the dihedral group of the square (8 elements at most). Each element
is a `View` ``(flip, turns)``: mirror left-right when ``flip``, then rotate ``turns`` quarter
turns counter-clockwise. The same views drive training augmentation (`RandomSymmetry`, one
random view per image) and test-time augmentation (`predict_views`, the mean over every view),
so what is augmented and what is averaged never disagree.
"""

from __future__ import annotations

import itertools
from typing import Iterable, NamedTuple, Sequence

import keras
import numpy as np

from keras_transfer.errors import BadInputError


class View(NamedTuple):
    """One element of the dihedral group: mirror left-right if `flip`, then `turns` × 90°."""

    flip: bool
    turns: int

    @property
    def name(self) -> str:
        parts = (["hflip"] if self.flip else []) + ([f"rot{90 * self.turns}"] if self.turns else [])
        return "+".join(parts) or "identity"


IDENTITY = View(False, 0)
GENERATORS: dict[str, View] = {
    "hflip": View(True, 0),  # mirror left-right
    "vflip": View(True, 2),  # mirror up-down = left-right mirror, then a half turn
    "rot90": View(False, 1),  # a quarter turn (square images only)
}
# Names accepted wherever a symmetry set is asked for (`augment=` of the job and the CLI).
PRESETS: dict[str, tuple[str, ...]] = {
    "none": (),
    "hflip": ("hflip",),
    "vflip": ("vflip",),
    "flip": ("hflip",),
    "flips": ("hflip", "vflip"),
    "rot90": ("rot90",),
    "dihedral": ("hflip", "vflip", "rot90"),
}


def parse_symmetries(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """Generators named by a preset (``"dihedral"``), a comma list or a sequence of names.

    Example:
    >>> parse_symmetries("dihedral"), parse_symmetries("hflip,rot90"), parse_symmetries(None)
    (('hflip', 'vflip', 'rot90'), ('hflip', 'rot90'), ())
    """
    if value is None:
        return ()
    if isinstance(value, str):
        if value in PRESETS:
            return PRESETS[value]
        value = [part.strip() for part in value.split(",") if part.strip()]
    names = tuple(value)
    unknown = [name for name in names if name not in GENERATORS]
    if unknown:
        raise BadInputError(
            f"unknown symmetry {unknown[0]!r}: expected a preset ({', '.join(PRESETS)}) or "
            f"generators among {', '.join(GENERATORS)}."
        )
    return tuple(dict.fromkeys(names))


def compose(first: View, second: View) -> View:
    """The view that applies `first`, then `second`.

    Example:
    >>> compose(GENERATORS["hflip"], GENERATORS["hflip"])
    View(flip=False, turns=0)
    """
    # A mirror reverses the direction of any rotation applied before it.
    turns = (-first.turns if second.flip else first.turns) + second.turns
    return View(first.flip != second.flip, turns % 4)


def group_views(symmetries: Sequence[str]) -> list[View]:
    """Every view the generators produce, identity first (1, 2, 4 or 8 views).

    Example:
    >>> [v.name for v in group_views(("hflip", "vflip"))]
    ['identity', 'rot180', 'hflip', 'hflip+rot180']
    >>> len(group_views(parse_symmetries("dihedral")))
    8
    """
    generators = [GENERATORS[name] for name in parse_symmetries(symmetries)]
    views = {IDENTITY}
    frontier = [IDENTITY]
    while frontier:
        frontier = [compose(v, g) for v, g in itertools.product(frontier, generators)]
        frontier = [v for v in frontier if v not in views]
        views.update(frontier)
    return sorted(views, key=lambda v: (v.flip, v.turns))


def apply_view(images, view: View):
    """Applies a view to a batch ``(N, H, W, C)`` (H == W when turning).

    A numpy batch stays numpy (a 224 px image in ~0.2 ms, against ~2 ms of eager ops: it
    matters next to an ~11 ms TFLite call); a tensor goes through `keras.ops` (graphs, tf.data).

    Example:
    >>> x = np.arange(4.0).reshape(1, 2, 2, 1)
    >>> apply_view(x, GENERATORS["hflip"])[0, :, :, 0].tolist()
    [[1.0, 0.0], [3.0, 2.0]]
    """
    if isinstance(images, np.ndarray):
        flipped = images[:, :, ::-1] if view.flip else images
        return np.ascontiguousarray(np.rot90(flipped, view.turns, axes=(1, 2)))
    if view.flip:
        images = keras.ops.flip(images, axis=2)
    if view.turns:
        images = keras.ops.rot90(images, k=view.turns, axes=(1, 2))
    return images


def check_square(symmetries: Sequence[str], image_size: Sequence[int]) -> None:
    """Raises when a set with quarter turns meets non-square images (a turn changes the shape).

    Example:
    >>> check_square(("hflip",), (32, 48))  # flips keep any shape
    """
    if len(group_views(symmetries)) > 1 and any(v.turns % 2 for v in group_views(symmetries)):
        if int(image_size[0]) != int(image_size[1]):
            raise BadInputError(
                f"symmetries {tuple(symmetries)} turn images by 90°, which needs square images; "
                f"image_size is {tuple(image_size)}. Drop 'rot90' or use a square image_size."
            )


@keras.saving.register_keras_serializable(package="keras_transfer")
class RandomSymmetry(keras.layers.Layer):
    """Applies one random view of the symmetry group to each image (training only).

    Example:
    >>> layer = RandomSymmetry(("hflip",), seed=0)
    >>> x = np.arange(8.0).reshape(2, 2, 2, 1)
    >>> out = np.asarray(layer(x, training=True))
    >>> all(np.array_equal(o, x[i]) or np.array_equal(o, x[i, :, ::-1]) for i, o in enumerate(out))
    True
    """

    def __init__(self, symmetries: Sequence[str] = (), seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.symmetries = parse_symmetries(symmetries)
        self.views = group_views(self.symmetries)
        self.seed = seed
        self._generator = keras.random.SeedGenerator(seed)

    def call(self, images, training: bool = True):
        if not training or len(self.views) == 1:
            return images
        # All views stacked, then one picked per image: at most 8 copies of a batch, cheap next
        # to any backbone, and shape-static (tf.data and XLA friendly).
        stacked = keras.ops.stack([apply_view(images, v) for v in self.views], axis=1)
        batch = keras.ops.shape(images)[0]
        choice = keras.random.randint((batch,), 0, len(self.views), seed=self._generator)
        picked = keras.ops.take_along_axis(
            stacked, keras.ops.reshape(choice, (-1, 1, 1, 1, 1)), axis=1)
        return keras.ops.squeeze(picked, axis=1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "symmetries": list(self.symmetries), "seed": self.seed}


def predict_views(model, images, symmetries: Sequence[str], batch_size: int = 32) -> np.ndarray:
    """Test-time augmentation: the model's mean output over every view of the symmetry group.

    With no symmetry this is a plain prediction. The cost is one forward pass per view.

    Example:
    >>> inputs = keras.Input((2, 2, 1)); model = keras.Model(inputs, keras.layers.Flatten()(inputs))
    >>> x = np.arange(4.0).reshape(1, 2, 2, 1)
    >>> predict_views(model, x, ("hflip",)).tolist()
    [[0.5, 0.5, 2.5, 2.5]]
    """
    outputs = [
        np.asarray(model.predict(np.asarray(apply_view(images, view)), batch_size=batch_size,
                                 verbose=0))
        for view in group_views(symmetries)
    ]
    return np.mean(outputs, axis=0)
