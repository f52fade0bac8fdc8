"""One decoder for training, evaluation, `predict` and the SavedModel's ``serve_bytes``.

The same file gives the same pixels to training (`data.decode.load_image`) and `predict`
(`export.images`), EXIF orientation included and in every format; ``serve_bytes`` decodes inside
the TF graph and matches within a stated tolerance; huge images are skipped or decoded reduced.
"""

import io
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_transfer.data.decode import MAX_PIXELS_ENV, decode_images, load_image
from keras_transfer.data.exif import exif_orientation
from keras_transfer.data.pipeline import resize_uint8
from keras_transfer.data.report import LoadReport
from keras_transfer.errors import BadInputError
from keras_transfer.export.images import decode_image_bytes, read_image, to_image_batch
from keras_transfer.export.saved_model import decode_and_resize

SIZE = (48, 32)  # (height, width) of the upright photo, halved
# The transpose that undoes each EXIF orientation (PIL's ImageOps.exif_transpose table).
UPRIGHT = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
INVERSE = {**UPRIGHT, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}
# serve_bytes vs PIL, in levels of 0..255: measured 0.1-0.2 on photos (same libjpeg-turbo, accurate
# IDCT); the bound leaves room for other libjpeg builds.
SERVE_TOLERANCE = 2.0


def upright_photo() -> Image.Image:
    """A 64x96 (portrait) picture that no flip or turn maps onto itself."""
    y, x = np.mgrid[0:96, 0:64]
    pixels = np.stack([x * 4, y * 2, 128 + 0 * x], -1).astype(np.uint8)
    pixels[8:30, 6:26] = (255, 255, 0)  # a yellow block near the top-left corner
    pixels[70:90, 40:60] = (0, 0, 0)
    return Image.fromarray(pixels)


def exif_bytes(orientation: int, byte_order: str) -> bytes:
    """An EXIF block written by hand: a Make tag (pointing past the IFD), then Orientation."""
    e = "<" if byte_order == "II" else ">"
    make = b"Phone\0"
    ifd = struct.pack(e + "H", 2)
    ifd += struct.pack(e + "HHII", 0x010F, 2, len(make), 8 + 2 + 2 * 12 + 4)
    ifd += struct.pack(e + "HHIHH", 0x0112, 3, 1, orientation, 0)
    ifd += struct.pack(e + "I", 0)
    tiff = byte_order.encode() + struct.pack(e + "HI", 42, 8) + ifd + make
    return b"Exif\0\0" + tiff


def rotated_jpeg(orientation: int, byte_order: str = "II") -> bytes:
    """The upright photo stored turned/flipped, with the EXIF orientation that undoes it."""
    image = upright_photo()
    stored = image if orientation == 1 else image.transpose(INVERSE[orientation])
    if byte_order == "II":  # through PIL's own EXIF writer
        exif = Image.Exif()
        exif[0x0112] = orientation
    else:
        exif = exif_bytes(orientation, byte_order)
    buffer = io.BytesIO()
    stored.save(buffer, "JPEG", quality=95, exif=exif)
    return buffer.getvalue()


def candidates() -> dict[int, np.ndarray]:
    """The photo as each orientation would leave it, resized: only 1 is upright."""
    image = upright_photo()
    result = {}
    for orientation, method in UPRIGHT.items():
        view = image if method is None else image.transpose(method)
        result[orientation] = np.asarray(view.resize(SIZE[::-1], Image.BILINEAR), np.float32)
    return result


def closest(pixels: np.ndarray) -> tuple[int, float, float]:
    """(the candidate nearest to ``pixels``, its mean abs difference, the next one's)."""
    distances = sorted((float(np.abs(pixels - c).mean()), o) for o, c in candidates().items())
    return distances[0][1], distances[0][0], distances[1][0]


CASES = [(o, "II") for o in range(1, 9)] + [(3, "MM"), (6, "MM"), (8, "MM")]


@pytest.fixture(scope="module")
def rotated_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("exif")
    files = {}
    for orientation, order in CASES:
        path = folder / f"photo_{orientation}_{order}.jpg"
        path.write_bytes(rotated_jpeg(orientation, order))
        files[orientation, order] = path
    return files


def test_exif_rotated_jpeg_is_upright_and_identical_for_train_and_predict(rotated_files):
    report = LoadReport("exif")
    paths = [str(p) for p in rotated_files.values()]
    good, loaded = decode_images(paths, report, image_size=SIZE)
    assert good == list(range(len(paths))) and not report.skipped
    batch = to_image_batch(paths, SIZE)
    for (orientation, order), path, pixels, predicted in zip(
        rotated_files, paths, loaded, batch
    ):
        train = load_image(path, SIZE).astype(np.float32)
        np.testing.assert_array_equal(train, pixels.astype(np.float32))
        best, distance, runner_up = closest(train)
        assert best == 1 and distance < 4 and runner_up > 20, (orientation, order)
        # predict decodes paths and bytes with the training decoder: exactly the same pixels.
        np.testing.assert_array_equal(predicted, train)
        np.testing.assert_array_equal(read_image(path, SIZE), train)
        data = rotated_files[orientation, order].read_bytes()
        np.testing.assert_array_equal(decode_image_bytes(data, SIZE), train)
        np.testing.assert_array_equal(to_image_batch([data], SIZE)[0], train)


def test_serve_bytes_applies_exif_in_graph_and_matches_pil(rotated_files):
    encoded = [path.read_bytes() for path in rotated_files.values()]
    orientations = [int(exif_orientation(tf.constant(data))) for data in encoded]
    assert orientations == [orientation for orientation, _ in CASES]
    served = decode_and_resize(tf.constant(encoded), SIZE).numpy()
    assert served.shape == (len(encoded), *SIZE, 3) and served.dtype == np.float32
    for (orientation, order), path, pixels in zip(rotated_files, rotated_files.values(), served):
        train = load_image(path, SIZE).astype(np.float32)
        assert np.abs(pixels - train).mean() < SERVE_TOLERANCE, (orientation, order)
        best, _, runner_up = closest(pixels)
        assert best == 1 and runner_up > 20, (orientation, order)


@pytest.mark.parametrize("broken", [b"", b"Exif\0\0MM\0*\xff\xff\xff\xff", b"Exif\0\0II*\0"])
def test_missing_or_broken_exif_reads_as_orientation_1(broken):
    buffer = io.BytesIO()
    upright_photo().save(buffer, "JPEG", **({"exif": broken} if broken else {}))
    data = buffer.getvalue()
    assert int(exif_orientation(tf.constant(data))) == 1
    assert int(exif_orientation(tf.constant(data[:40]))) == 1  # truncated inside the EXIF block
    assert int(exif_orientation(tf.constant(b""))) == 1


@pytest.mark.parametrize("fmt", ["TIFF", "WEBP", "BMP", "GIF", "PPM", "PNG"])
def test_predict_accepts_every_format_training_accepts(tmp_path, fmt):
    path = tmp_path / f"photo.{fmt.lower()}"
    image = upright_photo()
    image.save(path, fmt)
    train = load_image(path, SIZE).astype(np.float32)
    np.testing.assert_array_equal(to_image_batch([path], SIZE)[0], train)
    np.testing.assert_array_equal(to_image_batch(path.read_bytes(), SIZE)[0], train)


def test_arrays_resize_like_training_arrays_and_close_to_pil():
    pixels = np.asarray(upright_photo())
    predicted = to_image_batch(pixels, SIZE)[0]
    # Exactly what training does to uint8 arrays (`from_arrays` → the tf.data pipeline).
    np.testing.assert_array_equal(predicted, resize_uint8(pixels[None], SIZE)[0])
    pil = np.asarray(Image.fromarray(pixels).resize(SIZE[::-1], Image.BILINEAR), np.float32)
    assert np.abs(predicted - pil).mean() < 0.5 and np.abs(predicted - pil).max() <= 2


def test_pixel_cap_skips_with_a_clear_reason(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("RGB", (50, 40)).save(path)
    monkeypatch.setenv(MAX_PIXELS_ENV, "1000")
    reason = r"big.png: image too large: 50x40 = 0.0 megapixels.*KERAS_TRANSFER_MAX_PIXELS=2000"
    with pytest.raises(BadInputError, match=reason):
        load_image(path, SIZE)
    with pytest.raises(BadInputError, match=reason):
        to_image_batch([path], SIZE)  # predict
    report = LoadReport("cap")
    good, pixels = decode_images([str(path)], report, image_size=SIZE)
    assert good == [] and pixels.shape == (0, *SIZE, 3)
    assert report.skipped[0][1].startswith("image too large: 50x40")
    monkeypatch.setenv(MAX_PIXELS_ENV, "2000")
    assert load_image(path, SIZE).shape == (*SIZE, 3)
    monkeypatch.setenv(MAX_PIXELS_ENV, "lots")
    with pytest.raises(BadInputError, match="KERAS_TRANSFER_MAX_PIXELS='lots'"):
        load_image(path, SIZE)


def test_large_jpeg_decodes_reduced_not_skipped(tmp_path, monkeypatch):
    path = tmp_path / "big.jpg"
    upright_photo().resize((256, 384)).save(path, quality=95)
    full = load_image(path, SIZE).astype(np.float32)
    monkeypatch.setenv(MAX_PIXELS_ENV, str(64 * 96))  # 1/16 of the pixels: a 1/4-scale decode
    reduced = load_image(path, SIZE).astype(np.float32)
    assert np.abs(reduced - full).mean() < 3
    report = LoadReport("big")  # the loader says which files were decoded reduced
    good, _ = decode_images([str(path)], report, image_size=SIZE)
    assert good == [0] and not report.skipped
    assert any("1 JPEG(s) above the 6,144-pixel cap decoded at reduced resolution" in note
               and f"{path}: / 4" in note for note in report.notes), report.notes
    assert "reduced resolution" in report.summary()
    monkeypatch.setenv(MAX_PIXELS_ENV, "100")  # even 1/8 is too large
    with pytest.raises(BadInputError, match="too large: 256x384"):
        load_image(path, SIZE)


def test_pil_decompression_bomb_error_is_the_same_clear_message(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    Image.new("RGB", (50, 40)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # 2000 pixels > 2 x 500: PIL refuses
    with pytest.raises(BadInputError, match=r"bomb.png: image too large: 0.0 megapixels.*"
                                            r"PIL.Image.MAX_IMAGE_PIXELS = 2000"):
        load_image(path, SIZE)


def huge_png(width: int, height: int) -> bytes:
    """A valid all-black RGB PNG, compressed row by row (a few hundred KB, no big buffer)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    compressor = zlib.compressobj(9)
    row = bytes(1 + 3 * width)
    stream = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", stream) + chunk(
        b"IEND", b""
    )


MEMORY_SCRIPT = """
import resource, sys
from keras_transfer.data.decode import decode_images
from keras_transfer.data.report import LoadReport
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
report = LoadReport("huge")
good, pixels = decode_images(sys.argv[1:], report, image_size=(224, 224))
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(len(good), len(report.skipped), grown // 1024, report.skipped[0][1])
"""


def test_huge_pngs_are_skipped_before_decoding(tmp_path):
    data = huge_png(13000, 13000)
    assert len(data) < 1_000_000
    paths = []
    for name in "abcd":
        paths.append(str(tmp_path / f"{name}.png"))
        (tmp_path / f"{name}.png").write_bytes(data)
    result = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, *paths],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    kept, skipped, grown_mb, reason = result.stdout.strip().splitlines()[-1].split(" ", 3)
    # Fully decoded, the four would take ~2 GB each; skipped from the header, nothing grows.
    assert (kept, skipped) == ("0", "4") and int(grown_mb) < 200
    assert reason.startswith("image too large: 13000x13000 = 169.0 megapixels")


def test_export_records_resize_mode_and_predict_and_serve_bytes_follow_it(tmp_path):
    """A model trained on padded images: `predict` and ``serve_bytes`` pad too, never stretch."""
    import keras

    from keras_transfer.export import export, load_artifact, predict

    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    flat = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax",
                                                   name="predictions")(flat))
    folder = tmp_path / "padded"
    info = export(model, folder, formats=("keras", "saved_model"), labels=["a", "b"],
                  resize_mode="pad", verbose=False)
    assert info["model"]["input"]["resize_mode"] == "pad"
    photo = tmp_path / "wide.png"
    upright_photo().save(photo)  # 64x96: padding and stretching differ a lot
    padded, stretched = (load_image(photo, (32, 32), mode).astype(np.float32)[None]
                         for mode in ("pad", "stretch"))
    expected = keras.ops.convert_to_numpy(model(padded))[0]
    assert np.abs(expected - keras.ops.convert_to_numpy(model(stretched))[0]).max() > 0.01

    artifact = load_artifact(folder / "model.keras")
    assert artifact.resize_mode == "pad"
    scores = dict(predict(artifact, [photo], top_k=2)[0])
    np.testing.assert_allclose([scores["a"], scores["b"]], expected, atol=1e-5)
    served = tf.saved_model.load(str(folder / "saved_model")).signatures["serve_bytes"](
        image_bytes=tf.constant([photo.read_bytes()]))["predictions"].numpy()[0]
    np.testing.assert_allclose(served, expected, atol=2e-3)
    with pytest.raises(BadInputError, match="resize_mode"):
        export(model, tmp_path / "bad", formats=("keras",), resize_mode="squash", verbose=False)


# Mean levels apart. PIL crops at fractional coordinates (``ImageOps.fit``), TF at whole pixels:
# up to 1.7 levels on smooth images when the crop is then enlarged.
TOLERANCE = {"pad": 1.0, "stretch": 1.0, "crop": 2.0}


@pytest.mark.parametrize("mode", ["pad", "crop", "stretch"])
def test_every_resize_mode_places_pixels_as_the_file_decoder_does(tmp_path, mode):
    """Arrays (tf.data), files (PIL) and ``serve_bytes`` (TF graph): the same bars and crops."""
    rng = np.random.default_rng(0)
    for width, height in [(96, 64), (64, 96), (50, 50), (33, 97), (97, 33), (45, 31)]:
        for size in [(32, 32), (24, 40), (40, 24)]:
            coarse = rng.integers(30, 256, (6, 6, 3), dtype=np.uint8)  # smooth, never black
            pixels = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC))
            path = tmp_path / f"{width}x{height}.png"
            Image.fromarray(pixels).save(path)
            files = load_image(path, size, mode).astype(np.float32)
            arrays = resize_uint8(pixels[None], size, mode)[0].astype(np.float32)
            served = decode_and_resize(tf.constant([path.read_bytes()]), size, mode).numpy()[0]
            for other in (arrays, served):
                assert ((files == 0).all(-1) == (other == 0).all(-1)).all(), (width, height, size)
                assert np.abs(files - other).mean() < TOLERANCE[mode], (width, height, size)
