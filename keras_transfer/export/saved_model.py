"""SavedModel export with two signatures, written through `keras.export.ExportArchive`.

- ``serve``: ``images`` float32 ``(None, H, W, 3)`` raw pixels in [0, 255] → ``predictions``;
- ``serve_bytes``: ``image_bytes`` string ``(None,)`` of encoded JPEG/PNG/BMP/GIF files, decoded
  and resized (bilinear) to ``(H, W)`` inside the graph → ``predictions``.

``serve`` is also the ``serving_default`` signature (TF Serving needs one).
"""

from __future__ import annotations

import os

import keras
import tensorflow as tf


def decode_and_resize(image_bytes: tf.Tensor, size: tuple[int, int]) -> tf.Tensor:
    """Decodes a batch of encoded images to float32 ``(N, H, W, 3)`` pixels in [0, 255] (TF graph).

    Example:
    >>> png = tf.io.encode_png(tf.zeros((4, 4, 3), tf.uint8))
    >>> decode_and_resize(tf.stack([png]), (2, 2)).shape
    TensorShape([1, 2, 2, 3])
    """

    def decode_one(data):
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        return tf.image.resize(tf.cast(image, tf.float32), size, method="bilinear")

    return tf.map_fn(
        decode_one,
        image_bytes,
        fn_output_signature=tf.TensorSpec((size[0], size[1], 3), tf.float32),
    )


def build_archive(
    model: keras.Model,
    size: tuple[int, int],
    *,
    batch_size: int | None = None,
    with_bytes: bool = True,
) -> keras.export.ExportArchive:
    """An `ExportArchive` tracking ``model`` with the ``serve`` (and ``serve_bytes``) endpoints.

    Example:
    >>> model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten()])
    >>> archive = build_archive(model, (4, 4))
    """
    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve(images):
        return {"predictions": model(images, training=False)}

    def serve_bytes(image_bytes):
        return {"predictions": model(decode_and_resize(image_bytes, size), training=False)}

    archive.add_endpoint(
        "serve",
        serve,
        input_signature=[
            tf.TensorSpec((batch_size, size[0], size[1], 3), tf.float32, name="images")
        ],
    )
    if with_bytes:
        archive.add_endpoint(
            "serve_bytes",
            serve_bytes,
            input_signature=[tf.TensorSpec((batch_size,), tf.string, name="image_bytes")],
        )
    return archive


def write_saved_model(
    model: keras.Model,
    directory: str | os.PathLike,
    size: tuple[int, int],
    *,
    batch_size: int | None = None,
    with_bytes: bool = True,
) -> None:
    """Writes ``model`` as a SavedModel with the ``serve`` / ``serve_bytes`` signatures.

    Example:
    >>> import tempfile
    >>> model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten()])
    >>> write_saved_model(model, tempfile.mkdtemp() + "/sm", (4, 4))
    """
    build_archive(model, size, batch_size=batch_size, with_bytes=with_bytes).write_out(
        str(directory), verbose=False
    )
