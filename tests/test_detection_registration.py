"""Saved detectors load in a new process after only ``import keras_transfer.detection``.

Keras finds a custom class only once the module registering it has been imported; in the
process that built the model it always has been, so this needs a fresh interpreter.
"""

import json
import os
import subprocess
import sys

import pytest

import detection_helpers as helpers
from keras_transfer.detection import build_detector

KINDS = ("retinanet", "ssd", "faster_rcnn")

_LOAD = """
import json, sys
import keras
import keras_transfer.detection
models = {kind: keras.models.load_model(path, safe_mode=True)
          for kind, path in json.loads(sys.argv[1]).items()}
# detector_kind imports the detector modules itself: only after every model has loaded.
print(json.dumps({kind: [type(model).__name__, keras_transfer.detection.detector_kind(model)]
                  for kind, model in models.items()}))
"""


@pytest.mark.slow  # a second interpreter imports TensorFlow: 10-15 s on 2 busy cores
def test_saved_detectors_load_in_a_new_process(tmp_path):
    paths, expected = {}, {}
    for kind in KINDS:
        model = build_detector(kind, helpers.TINY, num_classes=2, weights=None,
                               input_shape=(64, 64, 3))
        paths[kind] = str(tmp_path / f"{kind}.keras")
        model.save(paths[kind])
        expected[kind] = [type(model).__name__, kind]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    run = subprocess.run([sys.executable, "-c", _LOAD, json.dumps(paths)], capture_output=True,
                         text=True, env=env, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout.strip().splitlines()[-1]) == expected
