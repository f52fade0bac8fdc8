"""Where the `keras-transfer` command starts: outside the `keras_transfer` package.

``import keras_transfer`` loads TensorFlow, whose start-up logging must be configured before
that (see keras_transfer/console.py). So this module loads that one file, which needs only the
standard library, without importing the package first, and runs its `main`.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def main() -> int:
    """Runs `keras-transfer` with this process's arguments; returns the exit status.

    Example (what the console script does; ``python keras_transfer_launcher.py ...`` too):
    >>> import subprocess, sys
    >>> subprocess.run([sys.executable, "-c", "import keras_transfer_launcher as k; k.main()",
    ...                 "list-backbones"], capture_output=True, text=True).stdout[:6]
    'vgg16 '
    """
    package = importlib.util.find_spec("keras_transfer")  # finds it; imports nothing
    if package is None or not package.submodule_search_locations:
        raise ImportError("keras-transfer: the keras_transfer package is not installed.")
    path = Path(list(package.submodule_search_locations)[0]) / "console.py"
    spec = importlib.util.spec_from_file_location("keras_transfer.console", path)
    console = importlib.util.module_from_spec(spec)
    # Registered under its own name: when the package imports it later, this is the module.
    sys.modules[spec.name] = console
    spec.loader.exec_module(console)
    return console.main()


if __name__ == "__main__":
    sys.exit(main())
