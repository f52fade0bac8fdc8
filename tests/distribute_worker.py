"""Runs the recipes under tf.distribute in a fresh process, for tests/test_distribute.py.

    python distribute_worker.py parity RESULT_DIR
        Two logical CPU devices; the same tiny model fine-tuned on one device and under
        MirroredStrategy (model built outside the scope: the recipe trains a copy), same global
        batch. Writes single.npz, mirrored.npz and result.json.
    python distribute_worker.py worker RESULT_DIR RUN_DIR
        One MultiWorkerMirroredStrategy task (cluster and task from TF_CONFIG), model built in
        the scope. PARK_AT_EPOCH=k makes task 1 stop at the start of fine-tuning epoch k (until
        killed). Writes task<i>.json (and task<i>.npz: final weights).
    python distribute_worker.py serve STATUS_DIR
        A fork server: imports TensorFlow once (without starting its runtime), then for each
        JSON line {"mode", "args", "env", "log"} on stdin forks a child that runs that mode as
        a fresh process would, and prints the child's pid; a child's exit status is written to
        STATUS_DIR/<pid>.exit. Importing TensorFlow costs far more than these runs on a busy
        2-core machine, so the tests start every process this way (on Linux).

Not collected by pytest (no ``test_`` prefix); keeps every model tiny.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

GLOBAL_BATCH = 8
HEAD_EPOCHS = 1
EPOCHS = 2


def register_tiny_backbone():
    import keras

    from keras_transfer.backbones import BackboneSpec, BlockEnd, register_backbone

    def tiny_convnet(input_tensor, weights=None):
        x = keras.layers.Conv2D(4, 3, padding="same", activation="relu",
                                name="block1_conv")(input_tensor)
        x = keras.layers.MaxPooling2D(name="block1_pool")(x)
        x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="block2_conv")(x)
        return keras.Model(keras.utils.get_source_inputs(input_tensor), x)

    register_backbone(BackboneSpec(
        name="tiny_convnet", family="tiny", source="keras.applications", build=tiny_convnet,
        preprocessing="tf", blocks=(("block1", BlockEnd(r"^block1_")),
                                    ("block2", BlockEnd(r"^block2_"))),
        default_size=16, min_size=8))


def build_model():
    import keras

    from keras_transfer import build_image_classifier

    keras.utils.set_random_seed(7)
    return build_image_classifier("tiny_convnet", 2, weights=None, input_shape=(16, 16, 3),
                                  dropout=0.0)


def dataset(global_batch: int = GLOBAL_BATCH):
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    labels = np.arange(32) % 2
    images = rng.uniform(0, 120, (32, 16, 16, 3)) + 100 * labels[:, None, None, None]
    return tf.data.Dataset.from_tensor_slices((images.astype("float32"), labels)).batch(
        global_batch)


def train(model, strategy, run_dir, extra_callbacks=()):
    """The recipe under test: head on cached features, then every block fine-tuned."""
    from keras_transfer.recipes import default_callbacks, fine_tune

    callbacks = [*default_callbacks(run_dir, monitor="loss", early_stopping=None,
                                    strategy=strategy),
                 *extra_callbacks] if run_dir else []
    return fine_tune(model, dataset(), head_epochs=HEAD_EPOCHS, epochs=EPOCHS,
                     unfreeze_blocks=None, learning_rate=1e-2, fine_tune_learning_rate=1e-2,
                     callbacks=callbacks, verbose=0, strategy=strategy)


def parity(result_dir: Path) -> None:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]  # before TensorFlow initialises
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np

    from keras_transfer import distribute

    register_tiny_backbone()
    started = time.perf_counter()
    single = build_model()
    history_single = train(single, None, None)
    mirrored_strategy = distribute.resolve_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
    mirrored = build_model()  # outside the scope: the recipe must train a copy and copy back
    history_mirrored = train(mirrored, mirrored_strategy, None)
    np.savez(result_dir / "single.npz", *single.get_weights())
    np.savez(result_dir / "mirrored.npz", *mirrored.get_weights())

    # A model built in the scope: inference stays one copy per batch, and a batch that does
    # not split evenly over the replicas trains (3 examples: 2 + 1).
    with mirrored_strategy.scope():
        inside = build_model()
    images, labels = next(iter(dataset()))
    local = distribute.local_copy(inside)
    predicted = distribute.local_predict(inside)(images)
    local_is_plain = local is not inside and not distribute.variables_in_scope(
        local, mirrored_strategy)
    local_diff = float(np.abs(local.predict_on_batch(images) - predicted).max())
    inside.compile("sgd", "sparse_categorical_crossentropy")
    with distribute.keras_fit_fixes(mirrored_strategy):  # the Keras fix applies in scope only
        uneven = inside.fit(images[:3], labels[:3], batch_size=4, epochs=1, verbose=0)
    (result_dir / "result.json").write_text(json.dumps({
        "replicas": mirrored_strategy.num_replicas_in_sync,
        "built_in_scope": distribute.variables_in_scope(mirrored, mirrored_strategy),
        "loss_single": history_single.series("loss"),
        "loss_mirrored": history_mirrored.series("loss"),
        "batch_rows": int(images.shape[0]),
        "local_predict_rows": int(predicted.shape[0]),
        "local_copy_is_plain": local_is_plain,
        "local_copy_max_diff": local_diff,
        "uneven_batch_loss": uneven.history["loss"],
        "seconds": time.perf_counter() - started, "cpu_seconds": time.process_time(),
    }))


def worker(result_dir: Path, run_dir: Path) -> None:
    from keras_transfer import distribute

    strategy = distribute.resolve_strategy("multi_worker", timeout_seconds=120)  # first thing
    import keras
    import numpy as np

    register_tiny_backbone()
    info = distribute.worker_info(strategy)
    park_at = int(os.environ.get("PARK_AT_EPOCH", "-1"))
    seen: list[int] = []

    class Progress(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(epoch)
            if epoch == park_at and info.task_id == 1:
                (result_dir / f"parked{info.task_id}").write_text(str(epoch))
                time.sleep(600)  # "preempted": the test kills this process here

    with strategy.scope():
        model = build_model()
    history = train(model, strategy, run_dir, extra_callbacks=[Progress()])
    with distribute.chief_output_dir(run_dir / "export", strategy) as export_dir:
        export_dir.mkdir(parents=True, exist_ok=True)
        model.save(export_dir / "model.keras")
        written = str(export_dir)
    np.savez(result_dir / f"task{info.task_id}.npz", *model.get_weights())
    (result_dir / f"task{info.task_id}.json").write_text(json.dumps({
        "task_id": info.task_id, "chief": info.chief, "pid": os.getpid(),
        "replicas": strategy.num_replicas_in_sync, "fine_tune_epochs": seen,
        "loss": history.series("loss"), "export_dir": written,
        "cpu_seconds": time.process_time(),
    }))


def serve(status_dir: Path) -> None:
    import signal
    import tempfile
    import traceback

    import keras  # noqa: F401 - everything the modes import, once
    import tensorflow  # noqa: F401

    import keras_transfer.distribute  # noqa: F401
    import keras_transfer.recipes  # noqa: F401

    def reap(*_):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            temp = status_dir / f"{pid}.exit.tmp"
            temp.write_text(str(os.waitstatus_to_exitcode(status)))
            temp.rename(status_dir / f"{pid}.exit")

    signal.signal(signal.SIGCHLD, reap)
    for line in sys.stdin:
        command = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the child: a fresh process in all but the TensorFlow import
            code = 1
            try:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                log = os.open(command["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                os.dup2(log, 1)
                os.dup2(log, 2)
                os.environ.update(command["env"])
                tempfile.tempdir = None  # TMPDIR may have changed
                MODES[command["mode"]](*map(Path, command["args"]))
                code = 0
            except BaseException:  # noqa: BLE001 - reported in the log, as a process would
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        print(pid, flush=True)


MODES = {"parity": parity, "worker": worker, "serve": serve}

if __name__ == "__main__":
    MODES[sys.argv[1]](*map(Path, sys.argv[2:]))
