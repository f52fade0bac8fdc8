"""Errors raised by keras-transfer. Each message says what went wrong and what to do instead."""

from __future__ import annotations


class KerasTransferError(Exception):
    """Base class for every error keras-transfer raises on purpose."""


class WeightsUnavailableError(KerasTransferError, OSError):
    """Pretrained weights could not be fetched (usually: no network) or read."""


class MissingDependencyError(KerasTransferError, ImportError):
    """An optional package is needed for this feature; the message names the extra to install."""


class UnknownBackboneError(KerasTransferError, KeyError):
    """A backbone name is neither registered nor a keras-hub preset / local preset directory."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class BadInputError(KerasTransferError, ValueError):
    """Input data is malformed; the message names the file, row or argument."""


def require(module: str, extra: str, feature: str):
    """Imports an optional module, or raises `MissingDependencyError` naming the pip extra.

    Example:
    >>> np = require("numpy", extra="dev", feature="array maths")
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingDependencyError(
            f"{feature} needs the '{module}' package, which is not installed. "
            f"Install it with: pip install 'keras-transfer[{extra}]'"
        ) from error
