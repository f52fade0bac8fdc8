"""Datasets for transfer learning: image and text sources, validated, split, batched.

Every image loader returns an `ImageDataset` whose splits yield float32 (batch, H, W, 3) images
in [0, 255] (models preprocess inside) with int32 class ids, or float32 one-/multi-hot labels.
Bad files are skipped and listed in ``data.report`` (``strict=True`` raises instead).
"""

from keras_transfer.data.arrays import from_arrays
from keras_transfer.data.augment import augmentation, mixing
from keras_transfer.data.builtin import builtin_names, load_builtin, register_builtin
from keras_transfer.data.dataset import ImageDataset, TextDataset
from keras_transfer.data.decode import IMAGE_EXTENSIONS, load_image
from keras_transfer.data.elpv import ELPV_CLASS_NAMES, elpv_arrays, load_elpv
from keras_transfer.data.images import from_csv, from_folder, from_jsonl
from keras_transfer.data.pipeline import PipelineOptions
from keras_transfer.data.report import LoadReport
from keras_transfer.data.splits import balanced_class_weights, split_indices, stratified_holdout
from keras_transfer.data.text import text_from_csv, text_from_jsonl
from keras_transfer.data.tfds_source import DatasetUnavailableError, from_tfds

__all__ = [
    "DatasetUnavailableError",
    "ELPV_CLASS_NAMES",
    "IMAGE_EXTENSIONS",
    "ImageDataset",
    "LoadReport",
    "PipelineOptions",
    "TextDataset",
    "augmentation",
    "balanced_class_weights",
    "builtin_names",
    "elpv_arrays",
    "from_arrays",
    "from_csv",
    "from_folder",
    "from_jsonl",
    "from_tfds",
    "load_builtin",
    "load_elpv",
    "load_image",
    "mixing",
    "register_builtin",
    "split_indices",
    "stratified_holdout",
    "text_from_csv",
    "text_from_jsonl",
]
