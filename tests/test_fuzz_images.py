"""Fuzzing the decoders with broken image bytes: never a crash, always a clear outcome.

Valid PNG, JPEG (with EXIF), WebP, TIFF, GIF and BMP files are truncated, bit-flipped, padded
with inserted bytes and have header ranges zeroed or scrambled (seeded). Each variant goes through
the training loader (`decode_images`) and `predict`'s decoder (`export.images`), and must end in
a decoded image of the right shape and dtype or a counted skip / `BadInputError`; a subset goes
through the SavedModel's in-graph decoder, where a TensorFlow ``InvalidArgumentError`` (the
request's error) is the clear error. The loop runs in a child process, so a segfault in a C
decoder fails the test instead of killing pytest.
"""

import json
import subprocess
import sys

FUZZ_SCRIPT = r'''
import io, json, os, sys, tempfile
import numpy as np
from PIL import Image

from keras_transfer.data.decode import decode_images
from keras_transfer.data.report import LoadReport
from keras_transfer.errors import BadInputError
from keras_transfer.export.images import read_image, to_image_batch

SIZE = (12, 10)
VARIANTS, GRAPH_EVERY = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(20240521)


def encode(image, fmt, **options):
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def seeds():
    y, x = np.mgrid[0:24, 0:32]
    rgb = Image.fromarray(np.stack([x * 8, y * 10, (x + y) * 4], -1).astype(np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "Phone"
    return {
        "png": encode(rgb, "PNG"),
        "png_palette": encode(rgb.convert("P"), "PNG", transparency=3),
        "png_16bit": encode(Image.fromarray((np.arange(768).reshape(24, 32) * 80).astype(
            np.uint16)), "PNG"),
        "jpeg_exif": encode(rgb, "JPEG", exif=exif, quality=90),
        "jpeg_progressive": encode(rgb, "JPEG", progressive=True),
        "webp": encode(rgb, "WEBP", quality=80, exif=exif),
        "webp_lossless": encode(rgb, "WEBP", lossless=True),
        "tiff": encode(rgb, "TIFF", compression="tiff_lzw"),
        "tiff_raw": encode(rgb, "TIFF"),
        "gif": encode(rgb.convert("P"), "GIF"),
        "bmp": encode(rgb, "BMP"),
    }


def mutate(data):
    data = bytearray(data)
    kind = rng.integers(6)
    if kind == 0:  # truncated (sometimes to nothing)
        return bytes(data[: rng.integers(0, len(data))]), "truncate"
    if kind == 1:  # a few bit flips anywhere
        for _ in range(rng.integers(1, 9)):
            position = rng.integers(len(data))
            data[position] ^= 1 << int(rng.integers(8))
        return bytes(data), "bitflip"
    if kind == 2:  # random bytes inserted
        position = rng.integers(len(data) + 1)
        inserted = rng.bytes(int(rng.integers(1, 64)))
        return bytes(data[:position]) + inserted + bytes(data[position:]), "insert"
    if kind == 3:  # a header range zeroed
        start = rng.integers(0, min(len(data), 64))
        length = int(min(rng.integers(1, 16), len(data) - start))
        data[start : start + length] = bytes(length)
        return bytes(data), "zero_header"
    if kind == 4:  # a header range scrambled (sizes, offsets, counts)
        start = rng.integers(0, min(len(data), 200))
        length = int(min(rng.integers(1, 12), len(data) - start))
        data[start : start + length] = rng.bytes(length)
        return bytes(data), "scramble_header"
    start = rng.integers(len(data))  # a chunk duplicated
    piece = data[start : start + int(rng.integers(1, 256))]
    return bytes(data[:start]) + bytes(piece) + bytes(data[start:]), "duplicate"


folder = tempfile.mkdtemp()
sources = seeds()
names, variants, paths = [], [], []
for index in range(VARIANTS):
    name = list(sources)[index % len(sources)]
    data, how = mutate(sources[name])
    path = os.path.join(folder, f"{index:04d}_{name}_{how}.img")
    with open(path, "wb") as handle:
        handle.write(data)
    names.append(name); variants.append(data); paths.append(path)
paths += [os.path.join(folder, f"seed_{name}.img") for name in sources]  # the valid seeds too
for name, path in zip(sources, paths[VARIANTS:]):
    with open(path, "wb") as handle:
        handle.write(sources[name])
variants += list(sources.values())

# 1. The training loader: every path is decoded or skipped with a reason.
report = LoadReport("fuzz")
good, pixels = decode_images(paths, report, image_size=SIZE)
assert len(good) + len(report.skipped) == len(paths), (len(good), len(report.skipped))
assert pixels.shape == (len(good), *SIZE, 3) and pixels.dtype == np.uint8
assert all(isinstance(reason, str) and reason for _, reason in report.skipped)
assert set(range(VARIANTS, len(paths))) <= set(good), "a valid seed file was skipped"

# 2. predict's decoder (paths and bytes): the same outcome and the same pixels as training.
decoded_by_loader = dict(zip(good, pixels))
for position, (path, data) in enumerate(zip(paths, variants)):
    for source in (path, data):
        try:
            if isinstance(source, str):
                image = read_image(source, SIZE)[None]
            else:
                image = to_image_batch(source, SIZE)
        except BadInputError as error:
            assert position not in decoded_by_loader, (path, str(error))
            assert str(error), path
            continue
        assert image.shape == (1, *SIZE, 3) and image.dtype == np.float32, path
        np.testing.assert_array_equal(image[0], decoded_by_loader[position].astype(np.float32))

# 3. The SavedModel's in-graph decoder on a subset (it is slower): the EXIF parser never fails,
#    the decoder gives a fixed-shape image or TensorFlow's InvalidArgumentError.
import tensorflow as tf
from keras_transfer.data.exif import exif_orientation
from keras_transfer.export.saved_model import decode_and_resize

orientation = tf.function(exif_orientation, input_signature=[tf.TensorSpec([], tf.string)])
serve = tf.function(lambda b: decode_and_resize(b, SIZE),
                    input_signature=[tf.TensorSpec([None], tf.string)])
graph_decoded = graph_refused = 0
for position, data in enumerate(variants):
    value = int(orientation(tf.constant(data)))
    assert 1 <= value <= 8, (paths[position], value)
    if position % GRAPH_EVERY and position < VARIANTS:
        continue
    try:
        image = serve(tf.constant([data])).numpy()
    except tf.errors.InvalidArgumentError:
        graph_refused += 1
        continue
    assert image.shape == (1, *SIZE, 3) and np.isfinite(image).all(), paths[position]
    assert 0 <= image.min() and image.max() <= 255
    graph_decoded += 1

print(json.dumps({
    "cases": len(paths), "decoded": len(good), "skipped": len(report.skipped),
    "graph_decoded": graph_decoded, "graph_refused": graph_refused,
}))
'''


def test_fuzzed_image_bytes_end_in_an_image_a_skip_or_a_clear_error():
    result = subprocess.run(
        [sys.executable, "-c", FUZZ_SCRIPT, "330", "6"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    # A negative return code is a signal (a segfault in a decoder); any other failure an
    # unexpected exception or a broken contract, whose traceback is in stderr.
    assert result.returncode == 0, result.stderr[-4000:]
    counts = json.loads(result.stdout.strip().splitlines()[-1])
    assert counts["cases"] == 330 + 11
    assert counts["decoded"] > 30 and counts["skipped"] > 100  # the fuzzing did both
    assert counts["graph_decoded"] > 5 and counts["graph_refused"] > 5
