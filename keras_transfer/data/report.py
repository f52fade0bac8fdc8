"""`LoadReport`: what a loader kept, what it skipped and why, printed at the end of loading."""

from __future__ import annotations

from dataclasses import dataclass, field

from keras_transfer.errors import BadInputError


@dataclass
class LoadReport:
    """Counts the good examples of a load and lists every skipped item with its reason.

    Loaders create one per call. With ``strict=True`` the first bad item raises
    `BadInputError` naming it instead of being skipped.

    Example:
    >>> report = LoadReport("photos/")
    >>> report.skip("photos/cat/broken.jpg", "truncated image data")
    >>> report.good = 9
    >>> report.skipped_items
    ['photos/cat/broken.jpg']
    >>> print(report.summary().splitlines()[0])
    Loaded photos/: 9 good examples, 1 skipped.
    """

    source: str
    strict: bool = False
    good: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    empty_classes: list[str] = field(default_factory=list)
    class_counts: dict[str, int] = field(default_factory=dict)
    split_counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def skip(self, item: str, reason: str) -> None:
        """Records a bad item (a path, or ``file:line`` for a table row); raises if strict.

        Example:
        >>> LoadReport("x", strict=True).skip("a.jpg", "empty file")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        keras_transfer.errors.BadInputError: a.jpg: empty file (strict=True stops at the first ...
        """
        if self.strict:
            raise BadInputError(
                f"{item}: {reason} (strict=True stops at the first bad item; pass strict=False "
                "to skip bad items and list them in the load report)."
            )
        self.skipped.append((str(item), reason))

    def empty_class(self, name: str, where: str) -> None:
        """Records a class with no usable example (it is dropped); raises if strict.

        Example:
        >>> report = LoadReport("photos/")
        >>> report.empty_class("dog", "photos/dog")
        >>> report.empty_classes
        ['dog']
        """
        if self.strict:
            raise BadInputError(
                f"{where}: class '{name}' has no usable image (strict=True stops here; pass "
                "strict=False to drop empty classes and list them in the load report)."
            )
        self.empty_classes.append(name)
        self.notes.append(f"class '{name}' dropped: no usable example in {where}")

    @property
    def skipped_items(self) -> list[str]:
        """The skipped paths / rows, in the order they were met.

        Example:
        >>> LoadReport("x").skipped_items
        []
        """
        return [item for item, _ in self.skipped]

    def summary(self, max_listed: int = 20) -> str:
        """Human-readable text: counts, per-class and per-split sizes, skipped items with reasons.

        Example:
        >>> print(LoadReport("data.csv", good=3).summary())
        Loaded data.csv: 3 good examples, 0 skipped.
        """
        lines = [f"Loaded {self.source}: {self.good} good examples, {len(self.skipped)} skipped."]
        if self.split_counts:
            lines.append("  splits: " + ", ".join(f"{k}={v}" for k, v in self.split_counts.items()))
        if self.class_counts:
            lines.append(
                "  classes: " + ", ".join(f"{k}={v}" for k, v in self.class_counts.items())
            )
        for note in self.notes:
            lines.append(f"  note: {note}")
        for item, reason in self.skipped[:max_listed]:
            lines.append(f"  skipped {item}: {reason}")
        if len(self.skipped) > max_listed:
            lines.append(
                f"  ... and {len(self.skipped) - max_listed} more (see report.skipped for all)."
            )
        return "\n".join(lines)
