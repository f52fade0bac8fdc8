"""Task heads."""

from keras_transfer.heads.classification import TASKS, build_image_classifier
from keras_transfer.heads.segmentation import SEGMENTERS, build_segmenter, compile_segmenter

__all__ = ["SEGMENTERS", "TASKS", "build_image_classifier", "build_segmenter", "compile_segmenter"]
