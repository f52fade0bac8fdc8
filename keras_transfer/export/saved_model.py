"""SavedModel export with two signatures, written through `keras.export.ExportArchive`.

- ``serve``: ``images`` float32 ``(None, H, W, 3)`` raw pixels in [0, 255] → ``predictions``;
- ``serve_bytes``: ``image_bytes`` string ``(None,)`` of encoded JPEG/PNG/WebP/BMP/GIF files,
  decoded inside the graph (no Python) by `decode_and_resize` → ``predictions``.

``serve`` is also the ``serving_default`` signature (TF Serving needs one).

``serve_bytes`` follows training's decoder (`keras_transfer.data.decode`, PIL) as closely as a
graph can: the EXIF orientation of JPEG, PNG and WebP files is applied (`data.exif`), gray and
palette images become RGB and alpha is dropped, and the resize is bilinear with antialiasing,
rounded to uint8 levels, like PIL's; JPEGs use the accurate integer IDCT, as PIL does (the same
pixels as PIL with the libjpeg-turbo both ship). What differs: the antialiased resize differs
from PIL's by 0.1-0.2 levels on average (at most 1 level) on photos; the resize
is always a stretch (training's "pad"/"crop" modes are not applied); TIFF, PPM and other formats
TensorFlow cannot decode are refused (decode them with `predict`, or send ``serve`` pixels);
16-bit PNGs are scaled by TensorFlow's rule; there is no pixel-count cap (bound request sizes in
the server).
"""

from __future__ import annotations

import os

import keras
import tensorflow as tf

from keras_transfer.data.exif import apply_orientation, exif_orientation
from keras_transfer.data.pipeline import resize_image


def decode_and_resize(image_bytes: tf.Tensor, size: tuple[int, int],
                      resize_mode: str = "stretch") -> tf.Tensor:
    """Decodes a batch of encoded images to float32 ``(N, H, W, 3)`` pixels in [0, 255] (TF graph):
    upright by their EXIF orientation, resized (bilinear, antialiased) to ``size`` as training
    resized them: ``resize_mode`` "stretch", "pad" or "crop" (`data.pipeline.resize_image`).

    Example:
    >>> png = tf.io.encode_png(tf.zeros((4, 4, 3), tf.uint8))
    >>> decode_and_resize(tf.stack([png]), (2, 2)).shape
    TensorShape([1, 2, 2, 3])
    """

    def decode_one(data):
        image = tf.cond(
            tf.io.is_jpeg(data),  # the accurate IDCT is libjpeg's default, as PIL decodes
            lambda: tf.io.decode_jpeg(data, channels=3, dct_method="INTEGER_ACCURATE"),
            lambda: tf.io.decode_image(data, channels=3, expand_animations=False),
        )
        image = apply_orientation(image, exif_orientation(data))
        resized = resize_image(image, size, resize_mode)
        return tf.clip_by_value(tf.round(resized), 0.0, 255.0)  # PIL's output is uint8

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
    resize_mode: str = "stretch",
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
        return {"predictions": model(decode_and_resize(image_bytes, size, resize_mode),
                                     training=False)}

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
    resize_mode: str = "stretch",
) -> None:
    """Writes ``model`` as a SavedModel with the ``serve`` / ``serve_bytes`` signatures.

    Example:
    >>> import tempfile
    >>> model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten()])
    >>> write_saved_model(model, tempfile.mkdtemp() + "/sm", (4, 4))
    """
    build_archive(model, size, batch_size=batch_size, with_bytes=with_bytes,
                  resize_mode=resize_mode).write_out(
        str(directory), verbose=False
    )
