"""Small generated data sets for every task: what ``--dataset synthetic`` trains on offline, and
`write_example_data`, which writes one in the layout the command reads (to copy for real data).

Every generator is deterministic for a seed, so `evaluate` regenerates the same test split that
`train` held out.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np

_NOUNS = ("film", "book", "meal", "hotel", "concert", "phone", "game", "show", "album", "cafe")
_GOOD = ("great", "wonderful", "excellent", "lovely", "superb", "delightful", "brilliant")
_BAD = ("awful", "terrible", "boring", "dreadful", "poor", "disappointing", "dull")
_REVIEWS = ("the {noun} was {adj}", "what a {adj} {noun}", "i found the {noun} {adj} overall",
            "honestly a {adj} {noun} from start to end", "my friends said the {noun} is {adj}")

_NAMES = ("alice", "bruno", "chen", "dara", "emil", "farah", "goran", "hana", "ivan", "jules",
          "kofi", "lena", "mateo", "nadia", "omar", "priya")
_CITIES = ("paris", "lagos", "lima", "oslo", "seoul", "quito", "cairo", "dublin", "hanoi")
_JOBS = ("baker", "pilot", "nurse", "farmer", "painter", "teacher", "chemist", "plumber")
_COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "silver")
_QUESTIONS = (("where does {name} live?", "city"), ("what does {name} work as?", "job"),
              ("what is the favourite colour of {name}?", "colour"))

_ANIMALS = ("fox", "cat", "dog", "owl", "horse", "rabbit", "crow")
_ADJECTIVES = ("quick", "lazy", "small", "old", "young", "clever", "sleepy")
_VERBS = ("watches", "follows", "finds", "chases", "ignores", "greets")
_PLACES = ("garden", "forest", "field", "river", "village", "barn")

SEGMENTATION_CLASSES = ("background", "circle", "square", "triangle")


def synthetic_reviews(count: int, *, seed: int = 0) -> tuple[list[str], list[str]]:
    """Short product reviews and their sentiment (``"negative"`` / ``"positive"``), balanced.

    Example:
    >>> texts, labels = synthetic_reviews(4, seed=1)
    >>> len(texts), sorted(set(labels))
    (4, ['negative', 'positive'])
    """
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(count):
        positive = i % 2 == 0
        template = _REVIEWS[rng.integers(len(_REVIEWS))]
        adjective = rng.choice(_GOOD if positive else _BAD)
        texts.append(template.format(noun=rng.choice(_NOUNS), adj=adjective))
        labels.append("positive" if positive else "negative")
    return texts, labels


def synthetic_squad(count: int, *, seed: int = 0) -> list[dict]:
    """SQuAD-style examples (``question``, ``context``, ``answer``, ``answer_start``) about
    made-up people: where they live, their job, their favourite colour.

    Example:
    >>> example = synthetic_squad(1)[0]
    >>> example["context"][example["answer_start"]:].startswith(example["answer"])
    True
    """
    rng = np.random.default_rng(seed)
    examples = []
    for i in range(count):
        facts = {"name": rng.choice(_NAMES), "city": rng.choice(_CITIES),
                 "job": rng.choice(_JOBS), "colour": rng.choice(_COLOURS)}
        context = ("{name} lives in {city} and works as a {job}. the favourite colour of "
                   "{name} is {colour}.").format(**facts)
        question, key = _QUESTIONS[i % len(_QUESTIONS)]
        answer = str(facts[key])
        examples.append({"question": question.format(**facts), "context": context,
                         "answer": answer, "answer_start": context.index(answer)})
    return examples


def synthetic_corpus(count: int, *, seed: int = 0) -> list[str]:
    """Paragraphs of three simple sentences each: a corpus a causal LM can learn the grammar of.

    Example:
    >>> paragraphs = synthetic_corpus(2)
    >>> len(paragraphs), paragraphs[0].count(".")
    (2, 3)
    """
    rng = np.random.default_rng(seed)

    def sentence() -> str:
        return (f"the {rng.choice(_ADJECTIVES)} {rng.choice(_ANIMALS)} {rng.choice(_VERBS)} "
                f"the {rng.choice(_ANIMALS)} in the {rng.choice(_PLACES)}.")

    return [" ".join(sentence() for _ in range(3)) for _ in range(count)]


def write_reviews_csv(path: str | os.PathLike, count: int = 64, *, seed: int = 0) -> Path:
    """A ``text,label`` CSV of `synthetic_reviews`.

    Example:
    >>> import tempfile
    >>> path = write_reviews_csv(tempfile.mkdtemp() + "/reviews.csv", 4)
    >>> path.read_text().splitlines()[0]
    'text,label'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(zip(*synthetic_reviews(count, seed=seed)))
    return path


def write_squad_json(path: str | os.PathLike, count: int = 48, *, seed: int = 0) -> Path:
    """A SQuAD v1.1-layout JSON file of `synthetic_squad` (one paragraph per example).

    Example:
    >>> import tempfile
    >>> from keras_transfer.text import squad_examples
    >>> len(squad_examples(write_squad_json(tempfile.mkdtemp() + "/squad.json", 3)))
    3
    """
    paragraphs = [{"context": e["context"], "qas": [{
        "id": str(i), "question": e["question"],
        "answers": [{"text": e["answer"], "answer_start": e["answer_start"]}]}]}
        for i, e in enumerate(synthetic_squad(count, seed=seed))]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"version": "1.1", "data": [{"title": "synthetic", "paragraphs": paragraphs}]}
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return path


def write_corpus(path: str | os.PathLike, count: int = 64, *, seed: int = 0) -> Path:
    """A plain-text corpus of `synthetic_corpus`: paragraphs separated by blank lines.

    Example:
    >>> import tempfile
    >>> write_corpus(tempfile.mkdtemp() + "/corpus.txt", 2).read_text().count("\\n\\n")
    1
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(synthetic_corpus(count, seed=seed)) + "\n", encoding="utf-8")
    return path


def write_segmentation_folder(root: str | os.PathLike, count: int = 24, size: int = 64, *,
                              seed: int = 0) -> Path:
    """``images/<i>.png`` + ``masks/<i>.png`` (class ids) + ``classes.txt`` of synthetic shapes.

    Example:
    >>> import tempfile
    >>> root = write_segmentation_folder(tempfile.mkdtemp(), 2, 32)
    >>> sorted(p.name for p in root.iterdir())
    ['classes.txt', 'images', 'masks']
    """
    from PIL import Image

    from keras_transfer.data.masks import synthetic_shapes

    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    for i, (image, mask) in enumerate(zip(*synthetic_shapes(count, (size, size), seed=seed))):
        Image.fromarray(image).save(root / "images" / f"{i}.png")
        Image.fromarray(mask).save(root / "masks" / f"{i}.png")
    (root / "classes.txt").write_text("\n".join(SEGMENTATION_CLASSES) + "\n")
    return root


def write_coco_folder(root: str | os.PathLike, count: int = 24, size: int = 64, *,
                      num_classes: int = 3, seed: int = 0) -> Path:
    """``images/<i>.png`` and a COCO ``annotations.json`` of synthetic shapes; returns the JSON.

    Example:
    >>> import tempfile
    >>> from keras_transfer.detection import read_coco
    >>> data = read_coco(write_coco_folder(tempfile.mkdtemp(), 2, 64))
    >>> len(data), data.class_names
    (2, ['square', 'disc', 'triangle'])
    """
    from PIL import Image

    from keras_transfer.detection.synthetic import SHAPES, synthetic_detection

    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    images, boxes, classes = synthetic_detection(count, size, num_classes, seed=seed)
    entries, annotations = [], []
    for i, (image, image_boxes, image_classes) in enumerate(zip(images, boxes, classes)):
        Image.fromarray(image.astype(np.uint8)).save(root / "images" / f"{i}.png")
        entries.append({"id": i, "file_name": f"images/{i}.png", "height": size, "width": size})
        for (x0, y0, x1, y1), cls in zip(image_boxes.tolist(), image_classes.tolist()):
            annotations.append({"id": len(annotations), "image_id": i, "category_id": cls + 1,
                                "bbox": [x0, y0, x1 - x0, y1 - y0], "iscrowd": 0})
    categories = [{"id": k + 1, "name": SHAPES[k]} for k in range(num_classes)]
    path = root / "annotations.json"
    path.write_text(json.dumps({"images": entries, "annotations": annotations,
                                "categories": categories}))
    return path


def write_class_folders(root: str | os.PathLike, per_class: int = 12, size: int = 32, *,
                        seed: int = 0) -> Path:
    """Two image classes (``bright``, ``dark``), one sub-folder each.

    Example:
    >>> import tempfile
    >>> sorted(p.name for p in write_class_folders(tempfile.mkdtemp(), 1).iterdir())
    ['bright', 'dark']
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = Path(root)
    for name, low in (("bright", 150), ("dark", 0)):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(low, low + 100, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


_WRITERS = {
    "image_classification": lambda folder, count, seed: write_class_folders(
        folder / "classes", max(1, count // 2), seed=seed),
    "text_classification": lambda folder, count, seed: write_reviews_csv(
        folder / "reviews.csv", count, seed=seed),
    "question_answering": lambda folder, count, seed: write_squad_json(
        folder / "squad.json", count, seed=seed),
    "causal_lm": lambda folder, count, seed: write_corpus(folder / "corpus.txt", count, seed=seed),
    "segmentation": lambda folder, count, seed: write_segmentation_folder(
        folder / "shapes", count, seed=seed),
    "detection": lambda folder, count, seed: write_coco_folder(
        folder / "coco", count, seed=seed),
}


def write_example_data(task: str, folder: str | os.PathLike, count: int = 32, *,
                       seed: int = 0) -> Path:
    """Writes a small data set for `task` (a name or alias) in the layout ``keras-transfer
    train`` reads, and returns what to pass as ``--dataset``.

    Example:
    >>> import tempfile
    >>> write_example_data("qa", tempfile.mkdtemp(), 4).name
    'squad.json'
    """
    from keras_transfer.tasks import get_task

    return _WRITERS[get_task(task).name](Path(folder), count, seed)
