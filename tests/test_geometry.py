"""Masks and boxes go back to the user's image through the resize it went through."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from keras_transfer.data.decode import resize_pil
from keras_transfer.tasks.geometry import Resize, source_size, source_sizes

# (original (h, w), a rectangle inside it as x0, y0, x1, y1)
CASES = [((120, 300), (40, 30, 200, 90)), ((300, 120), (20, 50, 100, 250)),
         ((90, 90), (10, 10, 60, 40)), ((77, 211), (100, 5, 180, 70))]


def rectangle_image(size, box):
    image = np.zeros((*size, 3), np.uint8)
    x0, y0, x1, y1 = box
    image[y0:y1, x0:x1] = 255
    return image


@pytest.mark.parametrize("mode", ["stretch", "pad", "crop"])
@pytest.mark.parametrize("original, box", CASES)
def test_mask_and_box_return_to_the_original_pixels(mode, original, box):
    model_size = (64, 48)
    image = rectangle_image(original, box)
    seen = np.asarray(resize_pil(Image.fromarray(image), model_size, mode))[..., 0] > 127
    resize = Resize.of(original, model_size, mode)

    back = resize.mask_to_original(seen.astype(np.int32))
    assert back.shape == original
    truth = image[..., 0] > 0
    if mode == "crop":  # the model saw only the centred window: compare inside it
        x_window = resize.boxes_to_original(np.array([[0, 0, model_size[1], model_size[0]]]))[0]
        x0, y0, x1, y1 = np.round(x_window).astype(int)
        truth, back = truth[y0:y1, x0:x1], back[y0:y1, x0:x1]
    iou = (truth & (back == 1)).sum() / (truth | (back == 1)).sum()
    assert iou > 0.85, iou

    ys, xs = np.nonzero(seen)
    model_box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float64)
    mapped = resize.boxes_to_original(model_box)[0]
    expected = np.array(box, np.float64)
    if mode == "crop":
        expected = np.clip(expected, [x0, y0, x0, y0], [x1, y1, x1, y1])
    scale = max(original) / min(model_size)  # one model pixel in original pixels, roughly
    np.testing.assert_allclose(mapped, expected, atol=2 * scale)


def test_the_same_image_at_another_resolution_gets_the_same_mask_scaled():
    resize = Resize.of((100, 200), (50, 50), "pad")
    mask = np.zeros((50, 50), np.int32)
    mask[12:37, :25] = 1  # the left half of the letterboxed content
    full, half = resize.mask_to_original(mask), resize.mask_to_original(mask, (50, 100))
    assert full.shape == (100, 200) and half.shape == (50, 100)
    assert full[:, :100].all() and not full[:, 100:].any()
    np.testing.assert_array_equal(full[::2, ::2], half)


def test_source_size_is_upright_after_exif_orientation():
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[274] = 6  # rotated 90°: stored 40 wide, 10 high; seen 10 wide, 40 high
    Image.new("RGB", (40, 10)).save(buffer, "JPEG", exif=exif)
    assert source_size(buffer.getvalue()) == (40, 10)
    assert source_sizes([np.zeros((2, 5, 7, 3)), np.zeros((3, 4, 3))]) == [(5, 7), (5, 7), (3, 4)]


def test_a_bad_resize_mode_is_named():
    with pytest.raises(ValueError, match="resize_mode"):
        Resize.of((10, 10), (5, 5), "zoom")
