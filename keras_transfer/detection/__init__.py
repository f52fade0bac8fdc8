"""Object detection on transferred backbones: YOLOv8 (keras-cv), RetinaNet (keras-hub), an
SSDLite-style head and Faster R-CNN (FPN), with COCO / VOC / YOLO readers, box-safe augmentation,
COCO mAP, NMS decoding, plots and SavedModel / TFLite export.

Example:
>>> from keras_transfer.detection import build_detector
>>> detector = build_detector("retinanet", "mobilenet_v2", num_classes=2, weights=None,
...                           input_shape=(64, 64, 3))
>>> sorted(detector.output)
['bbox_regression', 'cls_logits']
"""

from keras_transfer.detection.augment import (
    augment_sample,
    crop,
    detection_dataset,
    flip_horizontal,
    letterbox,
    random_scale_crop,
)
from keras_transfer.detection.boxes import (
    BOX_FORMATS,
    box_area,
    box_iou,
    clip_boxes,
    convert_boxes,
    pad_boxes,
)
from keras_transfer.detection.builders import (
    build_detector,
    compile_detector,
    detector_kind,
    list_detectors,
)
from keras_transfer.detection.decode import (
    BoxDecoder,
    box_decoder,
    decode_detections,
    detect,
    non_max_suppression,
)
from keras_transfer.detection.export import export_detector, run_tflite
# Importing registers the detector classes, so load_model finds them in a new process
# (RetinaNet's imports keras-hub: ~0.6 s, next to TensorFlow's seconds).
from keras_transfer.detection import faster_rcnn as _faster_rcnn  # noqa: F401
from keras_transfer.detection import retinanet as _retinanet  # noqa: F401
from keras_transfer.detection import ssd as _ssd  # noqa: F401
from keras_transfer.detection.formats import (
    DetectionData,
    check_boxes,
    read_coco,
    read_voc,
    read_yolo,
)
from keras_transfer.detection.metrics import (
    MeanAveragePrecisionCallback,
    average_precision,
    mean_average_precision,
)
from keras_transfer.detection.plots import plot_detections
from keras_transfer.detection.pyramid import (
    PyramidBackbone,
    block_status,
    set_detector_trainable,
)
from keras_transfer.detection.synthetic import synthetic_detection

__all__ = [
    "BOX_FORMATS", "BoxDecoder", "DetectionData", "MeanAveragePrecisionCallback",
    "PyramidBackbone", "augment_sample", "average_precision", "block_status", "box_area",
    "box_decoder", "box_iou", "build_detector", "check_boxes", "clip_boxes", "compile_detector",
    "convert_boxes", "crop", "decode_detections", "detect", "detection_dataset",
    "detector_kind", "export_detector", "flip_horizontal", "letterbox", "list_detectors",
    "mean_average_precision", "non_max_suppression", "pad_boxes", "plot_detections",
    "random_scale_crop", "read_coco", "read_voc", "read_yolo", "run_tflite",
    "set_detector_trainable", "synthetic_detection",
]
