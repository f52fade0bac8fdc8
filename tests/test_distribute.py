"""Distributed fine-tuning on tf.distribute (keras_transfer.distribute), on one machine.

Strategies with several replicas run in other processes (tests/distribute_worker.py): logical
devices and multi-worker collectives must be set up before TensorFlow initialises, which this
process has long done. On Linux they are forked from one server process that imported
TensorFlow once (an import costs more than these runs); elsewhere they are plain subprocesses.
Every wait has a timeout, so a hang fails the test instead of stalling CI.

The whole file costs about 45 s of CPU (2 shared cores here); wall time follows the load.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_transfer import distribute
from keras_transfer.errors import BadInputError

WORKER = Path(__file__).with_name("distribute_worker.py")
# Two replicas of the same global batch sum float32 gradients in another order; everything else
# is the same arithmetic, so weights agree to float32 rounding (seen: ~1e-7).
WEIGHT_TOLERANCE = 1e-5
POLICY = tf.data.experimental.AutoShardPolicy


def dense_model() -> keras.Model:
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2, activation="softmax", name="predictions")(
        keras.layers.Dense(8, activation="relu", name="hidden")(inputs))
    return keras.Model(inputs, outputs)


# --- strategies, TF_CONFIG, chief --------------------------------------------------------------


def test_resolve_strategy_names(monkeypatch):
    for name in ("TF_CONFIG", "TPU_NAME", "COLAB_TPU_ADDR"):
        monkeypatch.delenv(name, raising=False)
    default = tf.distribute.get_strategy()
    assert distribute.resolve_strategy(None) is default
    assert distribute.resolve_strategy("default") is default
    one = distribute.resolve_strategy("one_device", devices=["/cpu:0"])
    assert isinstance(one, tf.distribute.OneDeviceStrategy)
    assert distribute.resolve_strategy("one_device", devices=["/cpu:0"]) is one  # one per process
    assert distribute.resolve_strategy(one) is one
    if not tf.config.list_physical_devices("GPU"):  # this CPU machine: nothing to distribute
        assert distribute.auto_strategy_name() == "default"
        assert distribute.resolve_strategy("auto") is default
    with pytest.raises(BadInputError, match="multi_worker"):
        distribute.resolve_strategy("horovod")


def test_tf_config_is_read_as_tensorflow_does(monkeypatch):
    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster,
                                                "task": {"type": "worker", "index": 1}}))
    resolver = distribute.cluster_resolver_from_env()
    assert (resolver.task_type, resolver.task_id) == ("worker", 1)
    assert resolver.cluster_spec().as_dict() == cluster
    assert distribute.auto_strategy_name() == "multi_worker"
    for bad, message in (("{not json", "not valid JSON"),
                         (json.dumps({"cluster": cluster}), "no \"task\""),
                         (json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 5}}),
                          "not in its cluster")):
        monkeypatch.setenv("TF_CONFIG", bad)
        with pytest.raises(BadInputError, match=f"TF_CONFIG.*{message}|{message}.*TF_CONFIG"):
            distribute.cluster_resolver_from_env()
    monkeypatch.delenv("TF_CONFIG")
    assert distribute.cluster_resolver_from_env() is None


def test_chief_rule_and_single_process_info():
    workers = {"worker": ["a:1", "b:2", "c:3"]}
    chiefs = [distribute.is_chief_task(workers, "worker", i) for i in range(3)]
    assert chiefs == [True, False, False]
    with_chief = {"chief": ["c:0"], "worker": ["a:1"]}
    assert distribute.is_chief_task(with_chief, "chief", 0)
    assert not distribute.is_chief_task(with_chief, "worker", 0)
    assert not distribute.is_chief_task(with_chief, "evaluator", 0)
    # Without a multi-worker strategy every process is the chief and writes where it is told.
    info = distribute.worker_info(distribute.resolve_strategy("one_device", devices=["/cpu:0"]))
    assert (info.chief, info.num_workers) == (True, 1)
    assert distribute.worker_dir("runs/x") == Path("runs/x")


def test_cli_train_takes_strategy_flags(tmp_path, monkeypatch, capsys):
    from keras_transfer.commands.cli import build_parser, main
    from keras_transfer.commands.image_job import ImageJobConfig

    args = build_parser().parse_args(["train", "--strategy", "mirrored",
                                      "--scale-learning-rate", "sqrt"])
    assert (args.strategy, args.scale_learning_rate) == ("mirrored", "sqrt")
    assert not hasattr(build_parser().parse_args(["train"]), "strategy")  # absent unless given
    assert ImageJobConfig().strategy == "default"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--strategy", "horovod"])
    # A broken TF_CONFIG is a one-line error before any data is read.
    monkeypatch.setenv("TF_CONFIG", "{broken")
    status = main(["train", "--strategy", "multi_worker", "--dataset", str(tmp_path / "none"),
                   "--weights", "none"])
    err = capsys.readouterr().err
    assert status == 2 and "TF_CONFIG" in err and "Traceback" not in err


# --- batch, learning rate, sharding ------------------------------------------------------------


def test_global_batch_and_learning_rate_scaling():
    four = types.SimpleNamespace(num_replicas_in_sync=4)  # only the replica count is read
    assert distribute.global_batch_size(32, four) == 128
    assert distribute.global_batch_size(32) == 32
    assert distribute.scale_learning_rate(1e-3, four, "linear") == pytest.approx(4e-3)
    assert distribute.scale_learning_rate(1e-3, four, "sqrt") == pytest.approx(2e-3)
    assert distribute.scale_learning_rate(1e-3, four, None) == 1e-3
    with pytest.raises(BadInputError, match="scale_learning_rate"):
        distribute.scale_learning_rate(1e-3, four, "cubic")
    with pytest.raises(BadInputError, match="batch_size"):
        distribute.global_batch_size(0, four)


@pytest.fixture
def record_files(tmp_path):
    paths = []
    for i in range(3):
        path = str(tmp_path / f"part-{i}.tfrecord")
        with tf.io.TFRecordWriter(path) as writer:
            for j in range(4):
                writer.write(f"{i}-{j}".encode())
        paths.append(path)
    return paths


def test_shard_policy_follows_the_source(record_files, tmp_path):
    def policy(dataset, workers, **kwargs):
        return distribute.shard_policy(dataset, num_workers=workers, **kwargs)

    arrays = tf.data.Dataset.from_tensor_slices((np.zeros((8, 2)), np.arange(8))).batch(4)
    assert policy(arrays, 1) == POLICY.OFF  # one input pipeline: nothing to shard
    assert policy(arrays, 2) == POLICY.DATA
    assert policy(tf.data.Dataset.range(10).map(lambda x: x * 2).batch(2), 2) == POLICY.DATA

    records = tf.data.TFRecordDataset(record_files).batch(2)
    assert policy(records, 2) == POLICY.FILE  # 3 files for 2 workers
    assert policy(records, 4) == POLICY.DATA  # too few files: a worker would get none
    assert policy(records, 4, files=[f"f{i}" for i in range(8)]) == POLICY.FILE
    listed = tf.data.Dataset.list_files(str(tmp_path / "part-*.tfrecord"), shuffle=False)
    interleaved = listed.interleave(tf.data.TFRecordDataset, cycle_length=2).batch(2)
    assert policy(interleaved, 3) == POLICY.FILE
    assert policy(interleaved, 4) == POLICY.DATA
    assert policy(records.cache(str(tmp_path / "cache")), 2) == POLICY.DATA
    assert policy(tf.data.TFRecordDataset(record_files).shard(2, 0).batch(2), 2) == POLICY.OFF

    sharded = distribute.with_sharding(records)  # the default strategy: one worker
    assert sharded.options().experimental_distribute.auto_shard_policy == POLICY.OFF
    assert distribute.with_sharding(None) is None


def test_shard_policy_of_the_image_loaders(tmp_path):
    from PIL import Image

    from keras_transfer.data import from_arrays, from_folder

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(tmp_path / name / f"{i}.png")
    folder = from_folder(tmp_path, image_size=(8, 8), batch_size=2, validation_split=0.0,
                         verbose=False)  # decoded from paths by PIL: no file reader to shard
    arrays = from_arrays(np.zeros((6, 8, 8, 3), np.uint8), np.arange(6) % 2, image_size=(8, 8),
                         batch_size=2, validation_split=0.0, verbose=False)
    for data in (folder, arrays):
        assert distribute.shard_policy(data.train, num_workers=2) == POLICY.DATA


# --- scope, callbacks, backup ------------------------------------------------------------------


def test_training_scope_trains_a_copy_and_copies_back():
    strategy = distribute.resolve_strategy("one_device", devices=["/cpu:0"])
    x, y = np.random.default_rng(0).normal(size=(16, 4)).astype("float32"), np.arange(16) % 2
    outside = dense_model()
    outside.get_layer("hidden").trainable = False
    before = outside.get_weights()
    with distribute.training_scope(outside, strategy) as net:
        assert net is not outside and distribute.variables_in_scope(net, strategy)
        assert not net.get_layer("hidden").trainable  # flags travel with the copy
        net.get_layer("hidden").trainable = True
        net.compile(keras.optimizers.SGD(0.5), "sparse_categorical_crossentropy")
        net.fit(x, y, batch_size=8, epochs=1, verbose=0)
    for trained, mine, old in zip(net.get_weights(), outside.get_weights(), before):
        np.testing.assert_array_equal(trained, mine)
        assert not np.array_equal(mine, old)
    assert outside.get_layer("hidden").trainable
    with strategy.scope():
        inside = dense_model()
    with distribute.training_scope(inside, strategy) as net:
        assert net is inside  # built in the scope: trained as is
    with distribute.training_scope(outside, None) as net:
        assert net is outside


def test_non_chief_writes_nothing_shared_and_restores_from_the_chief(tmp_path, monkeypatch):
    from keras_transfer.recipes import default_callbacks

    x, y = np.random.default_rng(0).normal(size=(8, 4)).astype("float32"), np.arange(8) % 2
    run_dir = tmp_path / "run"

    class Preempted(Exception):
        pass

    class Stop(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise Preempted  # the chief is preempted after one epoch

    chief = dense_model()
    chief.compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(Preempted):
        chief.fit(x, y, epochs=3, verbose=0, callbacks=[
            *default_callbacks(run_dir, monitor="loss", early_stopping=None), Stop()])
    shared = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*"))
    assert "backup/state.json" in shared

    # The same run as worker 1 of 2: it resumes from the chief's backup, writes elsewhere.
    monkeypatch.setattr(distribute.workers, "worker_info",
                        lambda strategy=None: distribute.WorkerInfo("worker", 1, 2, False))
    callbacks = default_callbacks(run_dir, monitor="loss", early_stopping=None)
    backup = next(c for c in callbacks if isinstance(c, distribute.WorkerBackupAndRestore))
    own = [Path(c.log_dir) for c in callbacks if isinstance(c, keras.callbacks.TensorBoard)][0]
    assert not backup.writes_shared_backup and run_dir not in own.parents
    worker = dense_model()
    worker.compile("adam", "sparse_categorical_crossentropy")
    seen = []
    epochs = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: seen.append(epoch))
    worker.fit(x, y, epochs=3, verbose=0, callbacks=[*callbacks, epochs])
    assert seen == [1, 2]  # restored from the chief's backup
    assert sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*")) == shared
    assert not own.parent.exists() and not Path(backup._own_dir).exists()  # temp folders gone
    with distribute.chief_output_dir(tmp_path / "export") as out:
        out.joinpath("model.keras").write_text("x")
        assert tmp_path not in out.parents
    assert not out.exists() and not (tmp_path / "export").exists()


# --- several replicas and several workers, in subprocesses ------------------------------------


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:] if path.exists() else "(no log)"


class _Forked:
    """A process forked by the worker's fork server, with the `subprocess.Popen` calls used here.

    Its pid is read from the server when first needed, so starting one never waits for the
    server to finish importing TensorFlow."""

    def __init__(self, launcher: "_Launcher"):
        self._launcher, self._pid, self.returncode = launcher, None, None

    @property
    def pid(self) -> int:
        while self._pid is None:
            self._launcher.read_pid()
        return self._pid

    def poll(self) -> int | None:
        status = self._launcher.folder / f"{self.pid}.exit"
        if self.returncode is None and status.exists():
            self.returncode = int(status.read_text())
        return self.returncode

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout)
            time.sleep(0.2)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)


class _Launcher:
    """Starts worker processes: forked from one server that imported TensorFlow once (Linux),
    else as plain subprocesses. Each gets its own log file and environment."""

    def __init__(self, folder: Path):
        self.folder, self.children, self.server, self.pending = folder, [], None, []
        if sys.platform == "linux":
            self.server = subprocess.Popen(
                [sys.executable, str(WORKER), "serve", str(folder)], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=(folder / "server.log").open("w"), text=True)

    def start(self, mode: str, *args, log: Path, **env: str):
        args = [str(a) for a in args]
        if self.server is None:
            child = subprocess.Popen([sys.executable, str(WORKER), mode, *args],
                                     env={**os.environ, **env}, stdout=log.open("w"),
                                     stderr=subprocess.STDOUT)
        else:
            self.server.stdin.write(json.dumps({"mode": mode, "args": args, "env": env,
                                                "log": str(log)}) + "\n")
            self.server.stdin.flush()
            child = _Forked(self)
            self.pending.append(child)
        self.children.append(child)
        return child

    def read_pid(self) -> None:
        """The server answers commands in order: the next pid is the oldest pending child's."""
        ready, _, _ = select.select([self.server.stdout], [], [], 240)
        line = self.server.stdout.readline() if ready else ""
        if not line.strip():
            pytest.fail("fork server gave no pid: " + _tail(self.folder / "server.log"))
        self.pending.pop(0)._pid = int(line)

    def close(self) -> None:
        _stop(self.children)
        if self.server is not None:
            self.server.kill()  # nothing to flush; its children are gone
            self.server.wait(timeout=30)


def _slow_tests_selected(request) -> bool:
    return any(item.module is request.module and item.get_closest_marker("slow")
               for item in request.session.items)


@pytest.fixture(scope="module", autouse=True)
def launcher(request, tmp_path_factory):
    """Started with the module's first test (when its slow tests are selected): the server
    imports TensorFlow while the quick tests run."""
    if not _slow_tests_selected(request):
        yield None
        return
    launcher = _Launcher(tmp_path_factory.mktemp("processes"))
    yield launcher
    launcher.close()


@pytest.fixture(scope="module", autouse=True)
def parity_run(launcher, tmp_path_factory):
    """The MirroredStrategy-vs-one-device run, queued first: it runs while the other tests do
    (the machine has few cores and many waits). Call the result to wait for it."""
    if launcher is None:
        return None
    out = tmp_path_factory.mktemp("parity")
    process = launcher.start("parity", out, log=out / "log.txt")

    def result() -> Path:
        try:
            process.wait(timeout=300)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            pytest.fail(f"parity run timed out:\n{_tail(out / 'log.txt')}")
        assert process.returncode == 0, _tail(out / "log.txt")
        return out

    return result


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _start_cluster(launcher, results: Path, run_dir: Path, temp: Path, phase: str,
                   **env) -> list:
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    return [launcher.start("worker", results, run_dir, log=results / f"{phase}-{index}.log",
                           TF_CONFIG=json.dumps({"cluster": cluster,
                                                 "task": {"type": "worker", "index": index}}),
                           TMPDIR=str(temp), **env)
            for index in range(2)]


def _stop(processes) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)


def _event_file_pids(run_dir: Path) -> set[int]:
    # TensorBoard names event files events.out.tfevents.<time>.<host>.<pid>.<n>.v2
    return {int(re.search(r"\.(\d+)\.\d+\.v2$", p.name).group(1))
            for p in run_dir.rglob("events.out.tfevents.*")}


@pytest.mark.slow
def test_multi_worker_fit_writes_from_the_chief_and_resumes_after_a_kill(tmp_path, launcher,
                                                                        parity_run):
    results, run_dir, temp = tmp_path / "results", tmp_path / "run", tmp_path / "tmp"
    for folder in (results, temp):
        folder.mkdir()
    metadata = run_dir / "backup" / "state.json"

    def backed_up_epoch() -> int | None:
        try:
            return json.loads(metadata.read_text()).get("epoch")
        except (OSError, ValueError):  # not written yet, or being written
            return None

    # Phase 1: worker 1 stops at the start of fine-tuning epoch 1 and is killed there, after
    # the chief backed up epoch 0; the chief, stuck in the next all-reduce, is killed too.
    first = _start_cluster(launcher, results, run_dir, temp, "first", PARK_AT_EPOCH="1")
    try:
        deadline = time.monotonic() + 240
        while not ((results / "parked1").exists() and backed_up_epoch() == 1):
            failed = [p for p in first if p.poll() is not None]
            assert not failed, _tail(results / "first-0.log") + _tail(results / "first-1.log")
            assert time.monotonic() < deadline, "phase 1 never reached epoch 1: " + _tail(
                results / "first-0.log")
            time.sleep(0.5)
        first[1].send_signal(signal.SIGKILL)
    finally:
        _stop(first)
    assert first[1].returncode == -signal.SIGKILL
    assert not (results / "task0.json").exists()  # the run really was cut short

    # Phase 2: both restart with the same run folder and resume from the chief's backup.
    ours = lambda: {n for n in os.listdir(temp) if n.startswith("keras_transfer_")}  # noqa: E731
    before = ours()
    assert before, "worker 1 of the killed run left its temporary folders"
    second = _start_cluster(launcher, results, run_dir, temp, "second")
    try:
        for index, process in enumerate(second):
            try:
                process.wait(timeout=240)
            except subprocess.TimeoutExpired:
                pytest.fail("phase 2 timed out: " + _tail(results / f"second-{index}.log"))
            assert process.returncode == 0, _tail(results / f"second-{index}.log")
    finally:
        _stop(second)

    chief, other = (json.loads((results / f"task{i}.json").read_text()) for i in range(2))
    assert (chief["chief"], other["chief"]) == (True, False)
    assert chief["replicas"] == other["replicas"] == 2
    assert chief["fine_tune_epochs"] == other["fine_tune_epochs"] == [1]  # epoch 0 restored
    assert len(chief["loss"]) == 1 + 1  # the head stage, then the remaining epoch

    # Only the chief wrote the run's outputs; the backup was removed when training finished.
    assert sorted(p.name for p in run_dir.iterdir()) == ["best.weights.h5", "export", "tensorboard"]
    assert _event_file_pids(run_dir) <= {first[0].pid, chief["pid"]}
    assert chief["pid"] in _event_file_pids(run_dir)
    assert Path(chief["export_dir"]) == run_dir / "export"
    assert not Path(other["export_dir"]).exists()
    assert ours() == before  # this time worker 1's temporary folders were deleted

    # Interrupted, resumed and data-parallel over two workers = one device, uninterrupted.
    weights = [np.load(results / f"task{i}.npz") for i in range(2)]
    reference = np.load(parity_run() / "single.npz")
    for key in reference.files:
        np.testing.assert_array_equal(weights[0][key], weights[1][key])
        np.testing.assert_allclose(weights[0][key], reference[key], atol=WEIGHT_TOLERANCE)
    exported = keras.models.load_model(run_dir / "export" / "model.keras", safe_mode=True)
    for got, key in zip(exported.get_weights(), weights[0].files):
        np.testing.assert_array_equal(got, weights[0][key])


@pytest.mark.slow
def test_mirrored_two_devices_match_one_device_with_the_same_global_batch(parity_run):
    out = parity_run()
    result = json.loads((out / "result.json").read_text())
    assert result["replicas"] == 2
    assert not result["built_in_scope"]  # the recipe trained a copy and copied it back
    single, mirrored = np.load(out / "single.npz"), np.load(out / "mirrored.npz")
    assert len(single.files) == 6  # 2 conv blocks + the head: every weight is compared
    for key in single.files:
        np.testing.assert_allclose(mirrored[key], single[key], atol=WEIGHT_TOLERANCE)
    np.testing.assert_allclose(result["loss_mirrored"], result["loss_single"], rtol=1e-5)
    assert result["loss_single"][-1] < 0.5 * result["loss_single"][0]  # it did learn
    # Inference on a model built in the scope: one row per example (Keras' predict_on_batch
    # returns one copy per replica), and a plain copy for evaluation and export.
    assert result["local_predict_rows"] == result["batch_rows"]
    assert result["local_copy_is_plain"] and result["local_copy_max_diff"] < 1e-6
    assert np.isfinite(result["uneven_batch_loss"]).all()  # 3 examples over 2 replicas
