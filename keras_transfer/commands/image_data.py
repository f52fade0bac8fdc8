"""The data an image job reads: the `ImageDataset` its config names, and the images' own size
(what the planner weighs when it picks an input size larger than the backbone's).

Example:
>>> native_image_size(ImageJobConfig(dataset="/nonexistent")) is None
True
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from keras_transfer.commands.image_config import ImageJobConfig, default_image_size
from keras_transfer.data.symmetry import RandomSymmetry, parse_symmetries


def load_image_data(config: ImageJobConfig, image_size: int | None = None):
    """The `ImageDataset` a config names: a built-in dataset or a folder of class folders.

    Symmetry augmentation is part of the pipeline only when `augment` names it; ``"auto"``
    leaves it to the recipe, which decides after looking at the data.

    Example:
    >>> load_image_data(ImageJobConfig(dataset="no_such_data"))
    Traceback (most recent call last):
    ...
    ValueError: dataset='no_such_data' is neither a folder of class sub-folders nor a built-in ...
    """
    from keras_transfer import data as kd

    side = image_size or config.image_size or default_image_size(config.backbone)
    size = (side, side)
    setting = config.symmetries_setting()
    symmetries = () if setting == "auto" else parse_symmetries(setting)
    strength = config.augment_strength
    augment = None
    if symmetries or strength:
        # Flips and turns keep defects recognisable and cost next to nothing on a CPU, where
        # interpolating layers (zoom, rotation) would be slower than the backbone itself.
        layers = [RandomSymmetry(symmetries, seed=config.seed)] if symmetries else []
        if strength:
            layers.append(kd.augmentation(size, flip=None, rotation=0.0, zoom=0.0,
                                          contrast=0.3 * strength, brightness=0.2 * strength,
                                          seed=config.seed))
        augment = keras.Sequential(layers, name="augmentation")
    common = dict(image_size=size, batch_size=config.batch_size, augment=augment,
                  validation_split=config.validation_split)
    check_dataset(config.dataset)
    if Path(config.dataset).is_dir():
        return kd.from_folder(config.dataset, test_split=config.test_split, seed=config.seed,
                              **common)
    return kd.load_builtin(config.dataset, **common)


def check_dataset(dataset: str) -> None:
    """Raises ValueError unless `dataset` is a folder or a built-in dataset's name (checked
    before the job takes its output lock or writes its run folder).

    Example:
    >>> check_dataset("elpv")
    >>> check_dataset("/no/such/photos")
    Traceback (most recent call last):
    ...
    ValueError: dataset='/no/such/photos' is neither a folder of class sub-folders nor a built-in dataset (elpv, elpv_binary).
    """
    import keras_transfer.data as kd

    if not Path(dataset).is_dir() and dataset not in kd.builtin_names():
        raise ValueError(f"dataset={dataset!r} is neither a folder of class sub-folders nor a "
                         f"built-in dataset ({', '.join(kd.builtin_names())}).")


def native_image_size(config: ImageJobConfig) -> int | None:
    """The smaller side of the dataset's images (median over a sample), None if unknown.

    Example:
    >>> native_image_size(ImageJobConfig(dataset="/nonexistent")) is None
    True
    """
    from keras_transfer import data as kd

    if Path(config.dataset).is_dir():
        from PIL import Image

        from keras_transfer.data import IMAGE_EXTENSIONS

        files = [p for p in sorted(Path(config.dataset).rglob("*"))
                 if p.suffix.lower() in IMAGE_EXTENSIONS]
        files = files[:: max(1, len(files) // 64)]  # a sample spread over every class
        sides = []
        for path in files:
            try:
                with Image.open(path) as image:  # reads the header only
                    sides.append(min(image.size))
            except Exception:  # a bad file is the loader's to report
                continue
        return int(np.median(sides)) if sides else None
    if config.dataset in kd.builtin_names():
        probe = kd.load_builtin(config.dataset, image_size=None, batch_size=1, verbose=False)
        shape = probe.train.element_spec[0].shape
        return int(min(shape[1], shape[2])) if shape[1] and shape[2] else None
    return None
