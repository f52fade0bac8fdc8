"""Rules several job configs share: fractions, seeds, backbone names, symmetry sets, and the
image size a backbone accepts (`Rule` and `Together` values, or the checks they call).

Example:
>>> FRACTION.problem(1.0), SEED.problem(7)
('out of range', None)
"""

from __future__ import annotations

from keras_transfer.settings.checks import Rule, Together

# Shared by the image, lr-find, compare and task job configs.
FRACTION = Rule(min=0, below=1)  # validation_split, test_split, dropout, label smoothing
SEED = Rule(min=0, max=2**32 - 1)  # what numpy's seeding accepts
# The staged-training settings every training job has (the image job and the task job).
TRAINING_RULES = {
    "batch_size": Rule(min=1),
    "head_epochs": Rule(min=0),
    "epochs": Rule(min=0),
    "unfreeze_blocks": Rule(min=0),
    "learning_rate": Rule(above=0),
    "fine_tune_learning_rate": Rule(above=0),
    "weight_decay": Rule(min=0),
    "validation_split": FRACTION,  # of what the test split leaves: no limit on the sum
    "test_split": FRACTION,
    "seed": SEED,
}


def backbone_problem(name: str) -> str | None:
    """Why a backbone name cannot be built (unknown, with the nearest names), or None.

    Example:
    >>> backbone_problem("resnet-50")
    "Unknown backbone 'resnet-50'; did you mean 'resnet50'? ..."
    >>> backbone_problem("resnet50") is None
    True
    """
    from keras_transfer.backbones import get_spec
    from keras_transfer.errors import UnknownBackboneError

    try:
        get_spec(name)
    except UnknownBackboneError as error:
        return str(error)
    return None


def symmetries_problem(value: str | bool) -> str | None:
    """Why an ``augment`` setting is not a symmetry set, or None ("auto" and booleans are fine).

    Example:
    >>> symmetries_problem("hflip,rot90") is None, symmetries_problem("auto") is None
    (True, True)
    """
    from keras_transfer.data.symmetry import parse_symmetries

    if isinstance(value, bool) or value == "auto":
        return None
    try:
        parse_symmetries(value)
    except ValueError as error:
        return str(error)
    return None


def image_fits_backbone(image_size: int | None, backbone: str) -> str | None:
    """Why images of ``image_size`` are too small for a backbone (e.g. inception_v3: 75), or None.

    Example:
    >>> image_fits_backbone(32, "inception_v3")
    "expected image_size >= 75, the smallest input 'inception_v3' accepts"
    """
    from keras_transfer.backbones import get_spec

    if image_size is None:
        return None
    least = get_spec(backbone).min_size
    if image_size >= least:
        return None
    return f"expected image_size >= {least}, the smallest input {backbone!r} accepts"


FITS_BACKBONE = Together(("image_size", "backbone"), image_fits_backbone)
