"""Task heads."""

from keras_transfer.heads.classification import TASKS, build_image_classifier

__all__ = ["TASKS", "build_image_classifier"]
