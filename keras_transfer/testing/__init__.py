"""Fixtures for tests, demos and offline runs: tiny text presets and synthetic data per task.

- `tiny_text`: `make_tiny_preset(family, dir)`, a real keras-hub backbone + tokenizer of each
  family, 2 layers wide 16, randomly initialised, loaded through the normal preset path;
- `synthetic`: small learnable datasets for every task (`write_example_data`), what
  ``keras-transfer train --dataset synthetic`` trains on offline.

Example:
>>> import tempfile
>>> from keras_transfer.testing import make_tiny_preset
>>> make_tiny_preset("bert", tempfile.mkdtemp()).is_dir()
True
"""

from keras_transfer.testing.synthetic import write_example_data
from keras_transfer.testing.tiny_text import TINY_FAMILIES, make_tiny_preset

__all__ = ["TINY_FAMILIES", "make_tiny_preset", "write_example_data"]
