"""Every notebook in notebooks/ runs top to bottom in fast mode, and is stored without outputs.

The notebooks run in a Jupyter kernel of this very interpreter (a kernelspec written for the test;
checked: the kernel reports the same `sys.executable`), offline, with ``KERAS_TRANSFER_FAST=1``,
each in a temporary folder, two at a time.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
NOTEBOOK_IDS = [path.stem for path in NOTEBOOKS]


def test_notebooks_exist():
    names = {path.stem.split("_")[0] for path in NOTEBOOKS}
    assert {"01", "02", "03", "04"} <= names, NOTEBOOK_IDS


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


def _run(path: Path, workdir: Path) -> tuple[nbformat.NotebookNode | BaseException, float]:
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    # A first cell of our own proves the kernel is this interpreter (this virtual environment).
    notebook.cells.insert(0, nbformat.v4.new_code_cell("import sys; print(sys.executable)"))
    client = NotebookClient(notebook, kernel_name=KERNEL, timeout=600,
                            resources={"metadata": {"path": str(workdir)}})
    started = time.perf_counter()
    try:
        client.execute()  # a failing cell raises CellExecutionError, naming the cell
    except BaseException as error:  # noqa: BLE001 - re-raised by the notebook's own test
        return error, time.perf_counter() - started
    return notebook, time.perf_counter() - started


def _children_cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # kernels, once they have exited
    return usage.ru_utime + usage.ru_stime


@pytest.fixture(scope="module")
def fast_runs(request, tmp_path_factory) -> dict[Path, tuple]:
    """Runs every selected notebook once in fast mode, offline, each in its own folder:
    ``{path: (executed notebook or the error, seconds, folder)}``."""
    from concurrent.futures import ThreadPoolExecutor

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
        started, cpu = time.perf_counter(), _children_cpu_seconds()
        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            futures = {path: pool.submit(_run, path, folders[path]) for path in paths}
            runs = {path: future.result() for path, future in futures.items()}
    seconds = {path.stem: round(run[1]) for path, run in runs.items()}
    print(f"notebooks in fast mode: {time.perf_counter() - started:.0f} s in all "
          f"({_children_cpu_seconds() - cpu:.0f} CPU-s in the kernels); {seconds}")
    return {path: (*runs[path], folders[path]) for path in paths}


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
