"""keras_transfer.compat: every shim fits the installed libraries, and says so by name when not.

Also what the shims serve: the Keras trainer fixes hold only inside their block, and an exported
model.keras (whose optimizer state `keras_internals.optimizer_built_for` judges) loads without
Keras' "Skipping variable loading for optimizer" warning.
"""

from __future__ import annotations

import ast
import importlib
import logging
import types
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_transfer as kt
from keras_transfer import compat, distribute
from keras_transfer.compat import CompatError, keras_internals, keras_trainer


@pytest.mark.parametrize("name", compat.SHIMS)
def test_every_shim_fits_the_installed_versions(name):
    assert importlib.import_module(f"keras_transfer.compat.{name}").check() is None
    assert compat.check_all()[name] is None


# --- private library API is used in keras_transfer/compat/ only ------------------------------

PACKAGE_DIR = Path(kt.__file__).resolve().parent
PRIVATE_MODULES = ("keras.src", "tensorflow.python", "tensorflow.lite.python",
                   "tensorflow.lite.tools", "keras_hub.src", "tf_keras")
# Private attributes and hooks of Keras, keras-hub, TensorFlow and LiteRT objects that the shims
# wrap. keras_transfer's own classes use none of these names, so any hit (`self._variables` of an
# Optimizer subclass included) is a library's internal.
PRIVATE_ATTRIBUTES = frozenset({
    # Keras layers, models and the functional graph
    "_flatten_layers", "_trainable_variables", "_keras_history", "_inbound_nodes",
    "_outputs_struct", "_initial_epoch", "_kernel", "_distribute_strategy",
    # Keras optimizers
    "_var_key", "_variables", "_backend_update_step", "_apply_weight_decay",
    "_trainable_variables_indices",
    # Keras losses and callbacks
    "_dtype_policy", "_current_epoch", "_last_batch_seen", "_save_model",
    # Keras' TensorFlow trainer
    "_maybe_symbolic_build", "_symbolic_build",
    # keras-hub
    "_lora_rank", "_lora_enabled_layers",
    # TensorFlow, TF Lite converter and interpreter
    "_as_serialized_graph", "_experimental_calibrate_only", "_experimental_disable_per_channel",
    "_subgraph_index",
})
_NAMED_ATTRIBUTE_CALLS = {"getattr", "hasattr", "setattr", "delattr", "__setattr__",
                          "__getattribute__"}


def _private_uses(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) for each private import, attribute, named attribute or hook override."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            modules = []
        for module in modules:
            if any(module == p or module.startswith(p + ".") for p in PRIVATE_MODULES):
                found.append((node.lineno, f"import {module}"))
                break
        if isinstance(node, ast.Attribute) and node.attr in PRIVATE_ATTRIBUTES:
            found.append((node.lineno, f".{node.attr}"))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) \
                and node.name in PRIVATE_ATTRIBUTES:
            found.append((node.lineno, f"def {node.name} (overrides a private hook)"))
        elif isinstance(node, ast.Call) and len(node.args) >= 2:
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            name = node.args[1]
            if called in _NAMED_ATTRIBUTE_CALLS and isinstance(name, ast.Constant) \
                    and name.value in PRIVATE_ATTRIBUTES:
                found.append((node.lineno, f"{called}(..., {name.value!r})"))
    return sorted(set(found))


def test_private_library_api_is_used_only_in_compat():
    hits = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        relative = path.relative_to(PACKAGE_DIR.parent)
        if relative.parts[:2] == ("keras_transfer", "compat"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        hits += [f"{relative}:{line}: {what}" for line, what in _private_uses(tree)]
    assert not hits, ("private Keras / keras-hub / TensorFlow / LiteRT API outside "
                      "keras_transfer/compat/ (wrap it in a shim there):\n" + "\n".join(hits))


def test_the_private_api_scan_finds_each_kind_of_use():
    source = """
from keras.src.backend.common import global_state
import tensorflow.python.ops
from tensorflow.lite.python import schema_py_generated
layers = model._flatten_layers()
rank = getattr(backbone, "_lora_rank", None)
object.__setattr__(optimizer, "_backend_update_step", step)
class Backup(keras.callbacks.BackupAndRestore):
    def _save_model(self):
        return self._current_epoch
own = self._scales  # our own private state is fine
"""
    assert [line for line, _ in _private_uses(ast.parse(source))] == [2, 3, 4, 5, 6, 7, 9, 10]


def _assert_names_shim_and_versions(error: pytest.ExceptionInfo, shim: str, library: str):
    message = str(error.value)
    assert f"keras_transfer.compat.{shim}" in message
    assert f"{library} {compat.installed_version(library.replace('-', '_'))}" in message
    assert compat.declared_requirement(library.replace("-", "_")) in message


def test_a_moved_trainer_internal_is_named(monkeypatch):
    from keras.src.backend.tensorflow import trainer

    monkeypatch.setattr(trainer, "reduce_per_replica", lambda values, strategy: values)
    changed = r"reduce_per_replica takes \(values, strategy\)"
    with pytest.raises(CompatError, match=changed) as error:
        keras_trainer.check()
    _assert_names_shim_and_versions(error, "keras_trainer", "keras")
    with pytest.raises(CompatError):  # nothing is replaced when the check fails
        with keras_trainer.distributed_fit_fixes(lambda strategy: False):
            pass
    assert not keras_trainer.installed()


def test_another_backend_makes_the_trainer_fixes_a_no_op(monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with keras_trainer.distributed_fit_fixes(lambda strategy: False) as reason:
        assert "'jax' backend" in reason and not keras_trainer.installed()


def test_a_moved_graph_internal_is_named_where_it_is_used(monkeypatch):
    monkeypatch.delattr(keras.layers.Layer, "_flatten_layers")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    with pytest.raises(CompatError, match="_flatten_layers") as error:
        keras_internals.sublayers(model)
    _assert_names_shim_and_versions(error, "keras_internals", "keras")


def test_a_caller_error_stays_the_callers():
    with pytest.raises(AttributeError, match="_keras_history"):
        keras_internals.producing_layer(np.zeros(2))  # not a symbolic tensor


def test_a_moved_keras_hub_table_is_named(monkeypatch):
    from keras_hub.src.utils.timm import convert_efficientnet

    from keras_transfer.compat import keras_hub

    monkeypatch.delattr(convert_efficientnet, "VARIANT_MAP")
    with pytest.raises(CompatError, match="VARIANT_MAP") as error:
        keras_hub.check()
    _assert_names_shim_and_versions(error, "keras_hub", "keras-hub")


def test_a_moved_optimizer_hook_is_named(monkeypatch):
    for cls in type(keras.optimizers.SGD()).__mro__:
        if "_apply_weight_decay" in vars(cls):
            monkeypatch.delattr(cls, "_apply_weight_decay")
    with pytest.raises(CompatError, match="_apply_weight_decay") as error:
        keras_internals.replace_update_step(keras.optimizers.SGD(), None, None)
    _assert_names_shim_and_versions(error, "keras_internals", "keras")


def test_a_backup_hook_keras_no_longer_calls_is_named(monkeypatch):
    monkeypatch.setattr(keras.callbacks.BackupAndRestore, "on_epoch_end",
                        lambda self, epoch, logs=None: None)
    with pytest.raises(CompatError, match="_save_model"):
        keras_internals.check()


def test_moved_lora_state_is_named(monkeypatch):
    import keras_hub

    from keras_transfer.compat import keras_hub as hub_shim

    def enable_lora(self, rank, target_layer_names=None):
        self._lora_state = (rank, [0])  # what a keras-hub that renamed both might do

    monkeypatch.setattr(keras_hub.models.Backbone, "enable_lora", enable_lora)
    with pytest.raises(CompatError, match="_lora_enabled_layers") as error:
        hub_shim.check()
    _assert_names_shim_and_versions(error, "keras_hub", "keras-hub")


@pytest.mark.parametrize("moved", ["schema", "converter"])
def test_a_moved_tflite_internal_is_named(monkeypatch, moved):
    from tensorflow.lite.python import lite, schema_py_generated

    from keras_transfer.compat import tflite_internals

    if moved == "schema":
        monkeypatch.delattr(schema_py_generated, "MetadataT")
    else:
        init = lite.TFLiteConverterBase.__init__

        def without_flag(self, *args, **kwargs):
            init(self, *args, **kwargs)
            del self._experimental_calibrate_only

        monkeypatch.setattr(lite.TFLiteConverterBase, "__init__", without_flag)
    with pytest.raises(CompatError, match="MetadataT" if moved == "schema"
                       else "_experimental_calibrate_only") as error:
        tflite_internals.check()
    _assert_names_shim_and_versions(error, "tflite_internals", "tensorflow")


def test_a_moved_tf_data_internal_is_named(monkeypatch):
    from keras_transfer.compat import tensorflow_internals

    monkeypatch.delattr(tf.data.Dataset, "_as_serialized_graph")
    with pytest.raises(CompatError, match="_as_serialized_graph"):
        tensorflow_internals.dataset_graph_def(tf.data.Dataset.range(2))


# --- the trainer fixes: only inside their block -----------------------------------------------

def _trainer_functions():
    from keras.src.backend.tensorflow import trainer

    return trainer.TensorFlowTrainer.__dict__["_maybe_symbolic_build"], trainer.reduce_per_replica


def test_trainer_fixes_hold_only_inside_the_block():
    keras_own = _trainer_functions()
    with keras_trainer.distributed_fit_fixes(lambda strategy: False) as reason:
        assert reason is None and keras_trainer.installed()
        with keras_trainer.distributed_fit_fixes(lambda strategy: False):  # nested
            inner = _trainer_functions()
        assert keras_trainer.installed() and _trainer_functions() == inner != keras_own
    assert _trainer_functions() == keras_own and not keras_trainer.installed()
    with pytest.raises(RuntimeError):  # an error inside the block puts Keras' own back too
        with keras_trainer.distributed_fit_fixes(lambda strategy: False):
            raise RuntimeError("fit failed")
    assert _trainer_functions() == keras_own


def test_keras_fit_fixes_only_for_several_replicas():
    one = distribute.resolve_strategy("one_device", devices=["/cpu:0"])
    for strategy in (None, one):
        with distribute.keras_fit_fixes(strategy) as fixed:
            assert not fixed and not keras_trainer.installed()
    two = types.SimpleNamespace(num_replicas_in_sync=2)  # only its replica count is read
    with distribute.keras_fit_fixes(two) as fixed:
        assert fixed and keras_trainer.installed()
    assert not keras_trainer.installed()


def test_resolving_a_strategy_changes_nothing_in_keras():
    keras_own = _trainer_functions()
    distribute.resolve_strategy("one_device", devices=["/cpu:0"])
    distribute.resolve_strategy("default")
    assert _trainer_functions() == keras_own


def test_training_scope_trains_with_keras_own_trainer_on_one_replica():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    with distribute.training_scope(model, None) as net:
        assert not keras_trainer.installed()
        net.compile("sgd", "mse")
        net.fit(np.ones((4, 2)), np.ones((4, 1)), verbose=0)


# --- exported model.keras: its optimizer state loads without a warning ------------------------

X = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
Y = np.arange(4) % 2


def _classifier() -> keras.Model:
    return kt.build_image_classifier("vgg16", num_classes=2, weights=None,
                                     input_shape=(32, 32, 3))


def _export_and_load(model: keras.Model, tmp_path, caplog) -> tuple[keras.Model, list[str]]:
    from keras_transfer.export.core import export

    export(model, tmp_path / "out", formats="keras", verbose=False)
    caplog.clear()
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        loaded = keras.models.load_model(tmp_path / "out" / "model.keras", safe_mode=True)
    said = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records]
    return loaded, [text for text in said if "optimizer" in text]


def _optimizer_state(model: keras.Model) -> tuple:
    optimizer = model.optimizer
    return (optimizer, optimizer.built, [np.array(v) for v in optimizer.variables],
            model.get_compile_config())


def _assert_unchanged(model: keras.Model, before: tuple) -> None:
    optimizer, built, values, compile_config = before
    assert model.optimizer is optimizer and optimizer.built == built
    assert len(optimizer.variables) == len(values)
    for variable, value in zip(optimizer.variables, values):
        np.testing.assert_array_equal(np.array(variable), value)
    assert model.get_compile_config() == compile_config


def test_a_model_recompiled_after_unfreezing_loads_cleanly(tmp_path, caplog):
    model = _classifier()
    model.fit(X, Y, epochs=1, verbose=0)
    kt.unfreeze(model, last=2)
    model.compile(keras.optimizers.Adam(1e-4), "sparse_categorical_crossentropy")
    model.fit(X, Y, epochs=1, verbose=0)
    before = _optimizer_state(model)
    loaded, said = _export_and_load(model, tmp_path, caplog)
    assert said == []
    _assert_unchanged(model, before)
    # Built for exactly these variables: saved as it is, step count included.
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) == 1
    np.testing.assert_allclose(loaded.predict(X, verbose=0), model.predict(X, verbose=0),
                               atol=1e-6)


@pytest.mark.parametrize("case", ["unbuilt", "stale"])
def test_an_optimizer_that_does_not_fit_is_saved_fresh(tmp_path, caplog, case):
    model = _classifier()
    if case == "unbuilt":  # recompiled, not fitted since (the recipes' last step)
        model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    else:  # built for the head alone, then the last blocks were unfrozen
        model.fit(X, Y, epochs=1, verbose=0)
        kt.unfreeze(model, last=2)
    before = _optimizer_state(model)
    model.save(tmp_path / "plain.keras")  # what Keras alone writes: its load warns
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        keras.models.load_model(tmp_path / "plain.keras", safe_mode=True)
    assert any("Skipping variable loading for optimizer" in str(w.message) for w in caught)
    loaded, said = _export_and_load(model, tmp_path, caplog)
    assert said == []
    _assert_unchanged(model, before)
    assert type(loaded.optimizer) is type(model.optimizer)
    np.testing.assert_allclose(loaded.predict(X, verbose=0), model.predict(X, verbose=0),
                               atol=1e-6)
    model.fit(X, Y, epochs=1, verbose=0)  # the caller's model still trains


@pytest.mark.parametrize("discriminative", [None, 0.5])
def test_recipe_models_load_cleanly(tmp_path, caplog, discriminative):
    from keras_transfer.recipes import fine_tune

    data = tf.data.Dataset.from_tensor_slices((X, Y)).batch(4)
    model = _classifier()
    fine_tune(model, data, head_epochs=1, epochs=1 if discriminative else 0,
              unfreeze_blocks=1, discriminative=discriminative, verbose=0)
    loaded, said = _export_and_load(model, tmp_path, caplog)
    assert said == []
    assert type(loaded.optimizer) is type(model.optimizer)
    np.testing.assert_allclose(loaded.predict(X, verbose=0), model.predict(X, verbose=0),
                               atol=1e-6)
