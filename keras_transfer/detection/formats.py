"""Detection annotation readers: COCO JSON, Pascal VOC XML and YOLO txt → `DetectionData`.

Every reader returns boxes as absolute ``xyxy`` pixels with class ids 0 … C-1 and checks every
box: a box outside the image (beyond a 1-pixel tolerance; boxes within it are clipped), with zero
area, or of an unknown class is dropped and listed in ``data.report`` (a `LoadReport`; with
``strict=True`` the first bad box raises `BadInputError` naming the file and box). Images that
cannot be found or read are skipped and listed the same way.
"""

from __future__ import annotations

import dataclasses
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Sequence

import numpy as np

from keras_transfer.data.report import LoadReport
from keras_transfer.detection.boxes import box_area, clip_boxes, convert_boxes
from keras_transfer.errors import BadInputError

TOLERANCE = 1.0  # pixels a box may poke out of the image before it counts as outside
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


@dataclasses.dataclass
class DetectionData:
    """Images (file paths) with their boxes (``xyxy`` pixels), class ids and sizes.

    Example:
    >>> data = DetectionData(["a.png"], [np.zeros((0, 4))], [np.zeros(0, int)], [(4, 4)], ["cat"])
    >>> len(data), data.num_boxes
    (1, 0)
    """

    images: list[str]
    boxes: list[np.ndarray]
    classes: list[np.ndarray]
    sizes: list[tuple[int, int]]
    class_names: list[str]
    report: LoadReport = dataclasses.field(default_factory=lambda: LoadReport("<memory>"))

    def __len__(self) -> int:
        return len(self.images)

    @property
    def num_boxes(self) -> int:
        return int(sum(len(b) for b in self.boxes))

    def load_images(self) -> list[np.ndarray]:
        """The images as float32 ``(H, W, 3)`` arrays in [0, 255] (each at its own size)."""
        from PIL import Image

        return [np.asarray(Image.open(p).convert("RGB"), np.float32) for p in self.images]


def check_boxes(
    boxes: np.ndarray,
    classes: np.ndarray,
    image_size: tuple[int, int],
    num_classes: int,
    report: LoadReport,
    where: Sequence[str],
) -> tuple[np.ndarray, np.ndarray]:
    """Keeps the good ``xyxy`` boxes of one image (clipped), reports the bad ones.

    `where` names each box for the report (e.g. ``"ann.json: annotation 17"``).

    Example:
    >>> report = LoadReport("x")
    >>> b, c = check_boxes(np.array([[0, 0, 5, 5], [2, 2, 2, 9]]), np.array([0, 0]), (10, 10), 1,
    ...                    report, ["box 0", "box 1"])
    >>> len(b), report.skipped
    (1, [('box 1', 'zero-area box [2.0, 2.0, 2.0, 9.0]')])
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    classes = np.asarray(classes).reshape(-1)
    h, w = image_size
    keep = []
    for i, (box, cls) in enumerate(zip(boxes, classes)):
        shown = [round(float(v), 2) for v in box]
        if not np.all(np.isfinite(box)):
            report.skip(where[i], f"box is not finite {shown}")
        elif not 0 <= int(cls) < num_classes or int(cls) != cls:
            report.skip(where[i],
                        f"unknown class id {cls!r} (the classes are 0…{num_classes - 1})")
        elif (box[0] < -TOLERANCE or box[1] < -TOLERANCE or box[2] > w + TOLERANCE
              or box[3] > h + TOLERANCE):
            report.skip(where[i], f"box {shown} is outside the {w}×{h} image")
        elif box_area(clip_boxes(box, image_size)) <= 0:
            report.skip(where[i], f"zero-area box {shown}")
        else:
            keep.append(i)
    return clip_boxes(boxes[keep], image_size), classes[keep].astype(np.int32)


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as image:
        return image.height, image.width


def _finish(data: DetectionData) -> DetectionData:
    report = data.report
    report.good = len(data.images)
    counts = np.bincount(np.concatenate(data.classes + [np.zeros(0, np.int32)]).astype(int),
                         minlength=len(data.class_names))
    report.class_counts = {name: int(n) for name, n in zip(data.class_names, counts)}
    report.notes.append(f"{data.num_boxes} boxes kept")
    return data


def read_coco(
    annotation_file: str | os.PathLike, image_dir: str | os.PathLike | None = None, *,
    strict: bool = False,
) -> DetectionData:
    """Reads a COCO detection JSON (``images``, ``annotations`` with ``bbox`` = x, y, w, h,
    ``categories``). Category ids map to class ids in id order; crowd annotations are skipped.

    Example:
    >>> # data = read_coco("instances_val.json", "val2017/"); print(data.report.summary())
    """
    path = Path(annotation_file)
    report = LoadReport(str(path), strict=strict)
    try:
        spec = json.loads(path.read_text())
        categories = sorted(spec["categories"], key=lambda c: c["id"])
        images, annotations = spec["images"], spec.get("annotations", [])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise BadInputError(f"{path}: not a COCO detection file ({error}).") from error
    image_dir = Path(image_dir) if image_dir is not None else path.parent
    class_of = {c["id"]: i for i, c in enumerate(categories)}
    per_image: dict = {img["id"]: [] for img in images}
    for index, ann in enumerate(annotations):
        where = f"{path.name}: annotation {ann.get('id', index)}"
        if ann.get("image_id") not in per_image:
            report.skip(where, f"image_id {ann.get('image_id')!r} is not in 'images'")
        elif ann.get("iscrowd"):
            report.notes.append(f"{where}: crowd region ignored")
        else:
            per_image[ann["image_id"]].append((where, ann))
    data = DetectionData([], [], [], [], [c["name"] for c in categories], report)
    for img in images:
        file = image_dir / img["file_name"]
        if not file.is_file():
            report.skip(str(file), "image file not found")
            continue
        size = (int(img.get("height") or 0), int(img.get("width") or 0))
        if not all(size):
            size = _image_size(file)
        entries = per_image[img["id"]]
        boxes = convert_boxes(np.array([a["bbox"] for _, a in entries], np.float32).reshape(-1, 4),
                              "xywh", "xyxy")
        classes = np.array([class_of.get(a.get("category_id"), -1) for _, a in entries])
        boxes, classes = check_boxes(boxes, classes, size, len(categories), report,
                                     [w for w, _ in entries])
        data.images.append(str(file))
        data.boxes.append(boxes)
        data.classes.append(classes)
        data.sizes.append(size)
    return _finish(data)


def read_voc(
    annotation_dir: str | os.PathLike, image_dir: str | os.PathLike | None = None, *,
    class_names: Sequence[str] | None = None, strict: bool = False,
) -> DetectionData:
    """Reads Pascal VOC XML files (one per image). VOC pixel indices are 1-based and inclusive:
    ``xmin=1, xmax=10`` covers pixels 0…9, so boxes become ``(xmin - 1, ymin - 1, xmax, ymax)``.
    Without `class_names` the classes are the sorted object names found; with it, other names
    are reported as unknown.

    Example:
    >>> # data = read_voc("VOC2012/Annotations", "VOC2012/JPEGImages", class_names=VOC_CLASSES)
    """
    folder = Path(annotation_dir)
    report = LoadReport(str(folder), strict=strict)
    files = sorted(folder.glob("*.xml"))
    if not files:
        raise BadInputError(f"{folder}: no .xml annotation files.")
    parsed = []
    for file in files:
        try:
            root = ET.parse(file).getroot()
            objects = [(obj.findtext("name", "").strip(),
                        [float(obj.find("bndbox").findtext(k)) for k in
                         ("xmin", "ymin", "xmax", "ymax")]) for obj in root.iter("object")]
            size = (int(root.find("size").findtext("height")),
                    int(root.find("size").findtext("width")))
            parsed.append((file, root.findtext("filename", ""), size, objects))
        except (ET.ParseError, AttributeError, TypeError, ValueError) as error:
            report.skip(str(file), f"unreadable VOC XML ({error})")
    names = list(class_names) if class_names is not None else sorted(
        {name for *_, objects in parsed for name, _ in objects})
    index = {name: i for i, name in enumerate(names)}
    image_dir = Path(image_dir) if image_dir is not None else folder
    data = DetectionData([], [], [], [], names, report)
    for file, filename, size, objects in parsed:
        image = image_dir / filename
        if not image.is_file():
            report.skip(f"{file.name}: {image}", "image file not found")
            continue
        boxes = np.array([b for _, b in objects], np.float32).reshape(-1, 4)
        boxes[:, :2] -= 1.0
        classes = np.array([index.get(name, -1) for name, _ in objects])
        where = [f"{file.name}: object {i} ({name})" for i, (name, _) in enumerate(objects)]
        boxes, classes = check_boxes(boxes, classes, size, len(names), report, where)
        data.images.append(str(image))
        data.boxes.append(boxes)
        data.classes.append(classes)
        data.sizes.append(size)
    return _finish(data)


def read_yolo(
    image_dir: str | os.PathLike, label_dir: str | os.PathLike | None = None, *,
    class_names: Sequence[str], strict: bool = False,
) -> DetectionData:
    """Reads YOLO txt labels: one ``<name>.txt`` per image (same stem; in `label_dir`, or beside
    the image), a line ``class cx cy w h`` per box with coordinates as fractions of the image.
    An image without a label file has no objects. Malformed lines are reported as ``file:line``.

    Example:
    >>> # data = read_yolo("images/train", "labels/train", class_names=["person", "car"])
    """
    image_dir = Path(image_dir)
    label_dir = Path(label_dir) if label_dir is not None else image_dir
    report = LoadReport(str(label_dir), strict=strict)
    names = list(class_names)
    data = DetectionData([], [], [], [], names, report)
    images = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise BadInputError(f"{image_dir}: no images ({', '.join(IMAGE_SUFFIXES)}).")
    for image in images:
        try:
            size = _image_size(image)
        except OSError as error:
            report.skip(str(image), f"unreadable image ({error})")
            continue
        label = label_dir / f"{image.stem}.txt"
        rows, where = [], []
        lines = label.read_text().splitlines() if label.is_file() else []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            parts = line.split()
            try:
                values = [float(v) for v in parts]
            except ValueError:
                values = []
            if len(values) != 5:
                report.skip(f"{label}:{number}",
                            f"expected 'class cx cy w h', got {line.strip()!r}")
                continue
            rows.append(values)
            where.append(f"{label}:{number}")
        table = np.array(rows, np.float32).reshape(-1, 5)
        boxes = convert_boxes(table[:, 1:], "rel_cxcywh", "xyxy", size)
        boxes, classes = check_boxes(boxes, table[:, 0], size, len(names), report, where)
        data.images.append(str(image))
        data.boxes.append(boxes)
        data.classes.append(classes)
        data.sizes.append(size)
    return _finish(data)
