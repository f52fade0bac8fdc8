"""Every notebook in notebooks/ runs top to bottom in fast mode, and is stored without outputs.

The notebooks run in Jupyter kernels of this very interpreter (a kernelspec written for the test;
checked: the kernel reports the same `sys.executable`), offline, with ``KERAS_TRANSFER_FAST=1``,
each in a temporary folder, two at a time. A kernel is reused from one notebook to the next (see
`FRESH`): every notebook starts from an empty namespace, but TensorFlow is imported once per
kernel instead of once per notebook.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
NOTEBOOK_IDS = [path.stem for path in NOTEBOOKS]


def test_notebooks_exist():
    names = {path.stem.split("_")[0] for path in NOTEBOOKS}
    assert {"01", "02", "03", "04", "05"} <= names, NOTEBOOK_IDS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NOTEBOOK_IDS)
def test_notebook_is_stored_clean(path):
    """No outputs or execution counts in the repository; installs itself; has a fast mode."""
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    for cell in code:
        assert cell.outputs == [] and cell.execution_count is None, (
            f"{path.name}: stored with outputs; clear them (e.g. jupyter nbconvert "
            "--clear-output --inplace)")
    assert "find_spec(\"keras_transfer\") is None" in code[0].source, "first cell installs"
    parameters = [cell for cell in code if "parameters" in cell.metadata.get("tags", [])]
    assert len(parameters) == 1 and "KERAS_TRANSFER_FAST" in parameters[0].source
    assert notebook.metadata["kernelspec"]["name"] == "python3"


# A kernelspec of our own, first on JUPYTER_PATH, so that whatever kernels are installed on the
# machine (a user-wide "python3" pointing elsewhere), the notebooks run in this interpreter.
KERNEL = "keras-transfer-tests"
# Two kernels at a time: most of a notebook's time is single-threaded (TensorFlow import, graph
# tracing, TFLite conversion), so on a 2-core machine two run in about the time of one.
WORKERS = 2
# The heaviest first, so that both kernels finish at about the same time (CPU seconds of each in
# a kernel of its own, fast mode: 01 ~39, 04 ~36, 05 ~33, 02 ~26, 03 ~12; 05, which shares the
# least with the others, starts the second kernel). A notebook not listed goes first.
LONGEST_FIRST = ("05", "01", "04", "02", "03")
# The first cell of every notebook in a reused kernel: an empty namespace (`%reset -f`; only
# imported modules and their caches stay, e.g. TensorFlow and the decoded ELPV pixels), the
# notebook's own folder as the working directory, and the global settings a notebook may change
# (eager execution, the dtype policy, Keras's name counters, open figures) back to a new kernel's
# defaults. It prints the kernel's interpreter (checked by the test). A kernel in which a notebook
# failed is shut down, so nothing a failure left behind reaches the next notebook.
FRESH = """\
%reset -f
def _fresh(folder):
    import gc, os, sys
    os.chdir(folder)
    if "keras" in sys.modules:
        import keras
        keras.backend.clear_session()
        keras.config.set_dtype_policy("float32")
    if "tensorflow" in sys.modules:
        sys.modules["tensorflow"].config.run_functions_eagerly(False)
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
    gc.collect()
    print(sys.executable)
_fresh({folder!r})
del _fresh
"""


def test_fast_mode_and_weights_follow_the_environment(monkeypatch):
    from keras_transfer import notebooks

    monkeypatch.setenv("KERAS_TRANSFER_FAST", "1")
    assert notebooks.fast_mode()
    monkeypatch.setenv("KERAS_TRANSFER_FAST", "0")
    assert not notebooks.fast_mode()
    monkeypatch.setenv("KERAS_TRANSFER_OFFLINE", "1")
    monkeypatch.setattr(notebooks.socket, "create_connection", lambda *a, **k: 1 / 0)
    assert not notebooks.is_online()  # decided without touching the network
    assert notebooks.lite0_backbone() == "efficientnet_lite0"
    assert notebooks.minilm_preset() == "minilm_l6"


def test_is_online_is_false_without_a_network(offline, monkeypatch):
    from keras_transfer import notebooks

    monkeypatch.delenv("KERAS_TRANSFER_OFFLINE", raising=False)
    assert notebooks.is_online(timeout=0.5) is False


def test_online_names_are_real_keras_hub_presets():
    """The names used online cannot be downloaded here, but keras-hub must know them."""
    import keras_hub

    from keras_transfer import notebooks

    lite0 = notebooks.lite0_backbone(online=True)
    assert lite0 == f"hub:{notebooks.LITE0_HUB_PRESET}"
    assert notebooks.LITE0_HUB_PRESET in keras_hub.models.Backbone.presets
    assert notebooks.minilm_preset(online=True) in keras_hub.models.Backbone.presets


def _longest_first(path: Path) -> tuple[int, str]:
    number = path.stem.split("_")[0]
    return (LONGEST_FIRST.index(number) + 1 if number in LONGEST_FIRST else 0), path.stem


def _shutdown(kernel) -> None:
    from nbclient.util import ensure_async, run_sync

    async def stop():
        if await ensure_async(kernel.is_alive()):  # a kernel that died needs no shutdown
            await ensure_async(kernel.shutdown_kernel(now=True))

    run_sync(stop)()


def _run_queue(jobs: queue.Queue, runs: dict) -> None:
    """Runs notebooks from `jobs` one after the other in one kernel (a new one after a failure):
    ``runs[path] = (executed notebook or the error, seconds)``."""
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient

    kernel = None
    try:
        while True:
            try:
                path, folder = jobs.get_nowait()
            except queue.Empty:
                break
            notebook = nbformat.read(path, as_version=4)
            notebook.cells.insert(0, nbformat.v4.new_code_cell(FRESH.format(folder=str(folder))))
            kernel = kernel or AsyncKernelManager(kernel_name=KERNEL)  # nbclient starts it
            client = NotebookClient(notebook, km=kernel, timeout=600,
                                    resources={"metadata": {"path": str(folder)}})
            started = time.perf_counter()
            try:
                client.execute()  # a failing cell raises CellExecutionError, naming the cell
                runs[path] = (notebook, time.perf_counter() - started)
            except BaseException as error:  # noqa: BLE001 - re-raised by the notebook's test
                runs[path] = (error, time.perf_counter() - started)
                _shutdown(kernel)
                kernel = None
            finally:
                if client.kc is not None:
                    client.kc.stop_channels()
    finally:
        if kernel is not None:
            _shutdown(kernel)


def _children_cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # kernels, once they have exited
    return usage.ru_utime + usage.ru_stime


@pytest.fixture(scope="module")
def fast_runs(request, tmp_path_factory) -> dict[Path, tuple]:
    """Runs every selected notebook once in fast mode, offline, each in its own folder:
    ``{path: (executed notebook or the error, seconds, folder)}``."""
    selected = {item.callspec.params["path"] for item in request.session.items
                if getattr(item, "originalname", "") == "test_notebook_runs_in_fast_mode"}
    paths = [path for path in NOTEBOOKS if path in selected]

    spec = tmp_path_factory.mktemp("jupyter") / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "keras-transfer tests", "language": "python"}))
    with pytest.MonkeyPatch.context() as patch:  # the kernels inherit this environment
        patch.setenv("JUPYTER_PATH", str(spec.parent.parent))
        patch.setenv("KERAS_TRANSFER_FAST", "1")
        patch.setenv("KERAS_TRANSFER_OFFLINE", "1")  # no network probe: the offline weights
        patch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
        patch.setenv("MPLBACKEND", "Agg")
        folders = {path: tmp_path_factory.mktemp(path.stem) for path in paths}
        jobs: queue.Queue = queue.Queue()
        for path in sorted(paths, key=_longest_first):
            jobs.put((path, folders[path]))
        runs: dict = {}
        started, cpu = time.perf_counter(), _children_cpu_seconds()
        workers = [threading.Thread(target=_run_queue, args=(jobs, runs))
                   for _ in range(min(WORKERS, len(paths)))]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    seconds = {path.stem: round(run[1]) for path, run in runs.items()}
    print(f"notebooks in fast mode: {time.perf_counter() - started:.0f} s in all "
          f"({_children_cpu_seconds() - cpu:.0f} CPU-s in the kernels); {seconds}")
    missing = (RuntimeError("not run: its kernel's thread failed (see the output)"), 0.0)
    return {path: (*runs.get(path, missing), folders[path]) for path in paths}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=NOTEBOOK_IDS)
def test_notebook_runs_in_fast_mode(path, fast_runs):
    notebook, seconds, folder = fast_runs[path]
    if isinstance(notebook, BaseException):
        raise notebook
    executable = "".join(output.get("text", "") for output in notebook.cells[0].outputs).strip()
    assert os.path.realpath(executable) == os.path.realpath(sys.executable)
    errors = [output for cell in notebook.cells for output in cell.get("outputs", [])
              if output.output_type == "error"]
    assert not errors
    # Every code cell ran, and the figures it promised were written.
    assert all(cell.execution_count for cell in notebook.cells if cell.cell_type == "code")
    assert list(folder.glob("*.png")), "no figure written"
