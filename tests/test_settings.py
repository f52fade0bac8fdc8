"""Every bad setting is refused before any data is read, in one clear line naming the setting
and what it accepts: command-line flags, JSON/YAML config files and the Python API alike.

Nothing here trains: each test makes reading data raise, so an error that only came from the
loader (or a run that got past the checks) fails the test instead of passing by accident.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from keras_transfer import data as kd
from keras_transfer import jobs, list_backbones
from keras_transfer.backbones import get_spec
from keras_transfer.commands.cli import main
from keras_transfer.errors import BadInputError, UnknownBackboneError
from keras_transfer.commands.image_job import ImageJobConfig
from keras_transfer.commands.lr_find_job import LRFindConfig
from keras_transfer.settings import close_names


class DataRead(Exception):
    """Raised by every data loader in these tests; `main` does not catch it."""


@pytest.fixture
def no_data(monkeypatch, tmp_path):
    """Reading data (or going past the checks into the run) raises `DataRead`."""

    def refuse(*args, **kwargs):
        raise DataRead("data was read before the settings were checked")

    # lr-find imports jobs.load_image_data when it runs, so one patch covers both commands.
    for module, name in ((jobs, "load_image_data"), (jobs, "native_image_size"),
                         (jobs, "_run"), (kd, "from_folder"), (kd, "load_builtin")):
        monkeypatch.setattr(module, name, refuse)
    monkeypatch.chdir(tmp_path)  # nothing may be written under the working directory either
    return tmp_path


@pytest.fixture
def job_config(monkeypatch):
    """The `ImageJobConfig` the train command hands to the job (which then stops there)."""
    seen = []

    def capture(config=None, **overrides):
        config.validate()
        seen.append(config)
        return {}

    monkeypatch.setattr(jobs, "run_image_classification", capture)
    return seen


def one_error_line(capsys, command: str = "train") -> str:
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith(f"keras-transfer {command}: error: "), err
    assert len(err.splitlines()) == 1 and "Traceback" not in err + captured.out, err
    return err


# ------------------------------------------------------------------ command-line flags


@pytest.mark.parametrize("flags, message", [
    (["--head-epochs", "-3"], "head_epochs=-3: expected an integer >= 0 or None."),
    (["--learning-rate", "-1"], "learning_rate=-1.0: expected a number > 0."),
    (["--max-train-examples", "0"], "max_train_examples=0: expected an integer >= 1 or None."),
    (["--epochs", "-1"], "epochs=-1: expected an integer >= 0 or None."),
    (["--fine-tune-learning-rate", "0"],
     "fine_tune_learning_rate=0.0: expected a number > 0 or None."),
    (["--validation-split", "1.5"], "validation_split=1.5: expected a number in [0, 1)."),
    (["--batch-size", "0"], "batch_size=0: expected an integer >= 1."),
    (["--image-size", "16"], "image_size=16, backbone='efficientnet_lite0': expected "
                             "image_size >= 32, the smallest input 'efficientnet_lite0' accepts."),
    (["--augment", "sideways"], "augment='sideways': unknown symmetry 'sideways'"),
])
def test_bad_train_flag_is_one_line_before_any_data(flags, message, no_data, capsys):
    assert main(["train", *flags]) == 2
    assert message in one_error_line(capsys)
    assert not list(no_data.iterdir())  # no run folder, no output


def test_every_bad_flag_is_named_in_one_error(no_data, capsys):
    assert main(["train", "--head-epochs", "-3", "--learning-rate", "-1", "--epochs", "-1",
                 "--max-train-examples", "0"]) == 2
    err = one_error_line(capsys)
    assert "4 invalid settings: " in err
    for part in ("head_epochs=-3", "epochs=-1", "learning_rate=-1.0", "max_train_examples=0"):
        assert part in err


def test_a_real_process_prints_no_traceback(tmp_path):
    """The installed entry point, as a user runs it: exit status 2 and one line on stderr."""
    done = subprocess.run([sys.executable, "-m", "keras_transfer.commands.cli", "train", "--head-epochs",
                           "-3", "--dataset", str(tmp_path / "missing")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "Loading" not in done.stdout
    assert ("keras-transfer train: error: head_epochs=-3: expected an integer >= 0 or None."
            in done.stderr.splitlines())


# ------------------------------------------------------------------ config files


def write(folder, name: str, text: str):
    path = folder / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("name, text, message", [
    ("image.json", json.dumps({"image_size": "64"}),
     "image_size='64': expected an integer >= 1 or None (got a string: write numbers without "
     "quotes)."),
    ("epochs.yaml", "epochs: two\n",
     "epochs='two': expected an integer >= 0 or None (got a string)."),
    ("none.yaml", "head_epochs: None\n",
     "head_epochs='None': expected an integer >= 0 or None (got a string: write null, unquoted, "
     "for None in a config file)."),
    ("quant.json", json.dumps({"quantization": "int4"}),
     "quantization=('int4',): expected a non-empty list of any of 'float32', 'float16', "
     "'dynamic', 'int8'."),
    ("quant.yaml", "quantization: []\n", "quantization=(): expected a non-empty list"),
    ("schedule.yaml", "schedule: Default\n", "(did you mean 'default'?)"),
    ("flag.json", json.dumps({"augment": 1}), "augment=1: expected a string or a boolean"),
])
def test_bad_config_setting_is_one_line_before_any_data(name, text, message, no_data, capsys):
    assert main(["train", "--config", write(no_data, name, text)]) == 2
    assert message in one_error_line(capsys)


def test_every_bad_config_setting_is_named_in_one_error(no_data, capsys):
    config = write(no_data, "run.json", json.dumps(
        {"image_size": "64", "head_epochs": -1, "quantization": ["int8", "int2"],
         "imbalance": "classweight"}))
    assert main(["train", "--config", config]) == 2
    err = one_error_line(capsys)
    assert "4 invalid settings: " in err
    assert "image_size='64'" in err and "head_epochs=-1" in err
    assert "quantization=('int8', 'int2')" in err
    assert "imbalance='classweight': expected one of 'auto', 'none', 'class_weight', 'focal' " \
           "(did you mean 'class_weight'?)" in err


def test_unknown_setting_names_suggest_the_nearest(no_data, capsys):
    config = write(no_data, "run.yaml", "epoch: 3\nlearning_rat: 0.1\nbogus: 1\n")
    assert main(["train", "--config", config]) == 2
    err = one_error_line(capsys)
    assert f"{config}: unknown setting(s) ['bogus', 'epoch', 'learning_rat']" in err
    assert "(did you mean 'epochs', 'learning_rate'?)" in err
    assert "known: ['augment', " in err  # every accepted name follows


def test_a_lone_quantization_name_means_a_list_of_one(tmp_path, job_config):
    """``"quantization": "int8"`` is read as ``["int8"]``: export gets a tuple, never the
    string (whose letters would be four unknown quantizations)."""
    assert main(["train", "--config", write(tmp_path, "q.json",
                                            json.dumps({"quantization": "int8"}))]) == 0
    assert job_config[0].quantization == ("int8",)
    yaml_list = write(tmp_path, "q.yaml", "quantization: [float16, int8]\nhidden_units: 64\n")
    assert main(["train", "--config", yaml_list]) == 0
    assert job_config[1].quantization == ("float16", "int8")
    assert job_config[1].hidden_units == (64,)


def test_yaml_exponent_numbers_are_floats(tmp_path, job_config):
    """YAML 1.1 reads ``1e-3`` as a string; config files read it as the number."""
    text = "learning_rate: 3e-4\nfine_tune_learning_rate: 1E-5\nweight_decay: 0\n"
    assert main(["train", "--config", write(tmp_path, "lr.yaml", text)]) == 0
    config = job_config[0]
    assert config.learning_rate == 3e-4 and isinstance(config.learning_rate, float)
    assert config.fine_tune_learning_rate == 1e-5


def test_image_train_takes_formats_like_every_task(job_config, capsys):
    assert main(["train", "--formats", "keras", "tflite"]) == 0
    assert tuple(job_config[0].formats) == ("keras", "tflite")
    assert main(["train", "--formats", "keras", "--quantization", "int8"]) == 2
    assert "TFLite flavours need 'tflite' in formats" in one_error_line(capsys)


def test_flags_win_over_the_config_file_and_are_checked_too(tmp_path, job_config, capsys):
    config = write(tmp_path, "run.yaml", "head_epochs: 2\nlearning_rate: 1e-3\n")
    assert main(["train", "--config", config, "--head-epochs", "4"]) == 0
    assert job_config[0].head_epochs == 4 and job_config[0].learning_rate == 1e-3
    assert main(["train", "--config", config, "--learning-rate", "-2"]) == 2
    assert "learning_rate=-2.0: expected a number > 0." in one_error_line(capsys)


# ------------------------------------------------------------------ Python API


def test_python_api_checks_the_same_way_before_any_data(no_data):
    with pytest.raises(BadInputError, match=r"^head_epochs=-3: expected an integer >= 0"):
        jobs.run_image_classification(head_epochs=-3)
    with pytest.raises(BadInputError, match=r"quantization='int8': expected a non-empty list "
                                            r".*\(got a string\)"):
        ImageJobConfig(quantization="int8").validate()  # Python takes no lone string
    with pytest.raises(BadInputError, match=r"image_size=True: expected an integer >= 1 or "
                                            r"None \(got a boolean\)"):
        ImageJobConfig(image_size=True).validate()
    with pytest.raises(BadInputError, match=r"formats=\('keras',\), quantization=\('int8',\): "
                                            r"TFLite flavours need 'tflite' in formats"):
        ImageJobConfig(formats=("keras",), quantization=("int8",)).validate()
    with pytest.raises(BadInputError, match=r"formats=\('onnx',\): expected"):
        ImageJobConfig(formats=("onnx",)).validate()
    ImageJobConfig(formats=("keras",)).validate()
    ImageJobConfig().validate()  # the defaults are fine


# ------------------------------------------------------------------ nearest backbone names


@pytest.mark.parametrize("typed, registered", [
    ("MobileNetV2", "mobilenet_v2"),
    ("resnet-50", "resnet50"),
    ("efficientnetb0", "efficientnet_b0"),
    ("EfficientNet-Lite0", "efficientnet_lite0"),
])
def test_misspelt_backbones_suggest_the_registered_name(typed, registered, no_data, capsys):
    assert registered in list_backbones()
    assert close_names(typed, list_backbones()) == [registered]
    with pytest.raises(UnknownBackboneError) as caught:
        get_spec(typed)  # a suggestion, never a silent guess
    assert f"Unknown backbone {typed!r}; did you mean {registered!r}?" in str(caught.value)
    assert main(["train", "--backbone", typed]) == 2
    err = one_error_line(capsys)
    assert f"backbone={typed!r}: Unknown backbone {typed!r}; did you mean {registered!r}?" in err


def test_an_unknown_backbone_without_a_near_name_lists_registered_ones():
    with pytest.raises(UnknownBackboneError) as caught:
        get_spec("no_such_net")
    message = str(caught.value)
    assert "did you mean" not in message and "Registered: vgg16" in message
    assert "list_backbones()" in message


def test_close_names():
    names = ["resnet50", "resnet101", "vgg16", "mobilenet_v2"]
    assert close_names("Resnet_50", names) == ["resnet50"]
    assert close_names("resnet5O", names) == ["resnet50"]  # a typo: difflib
    assert close_names("transformer", names) == []


# ------------------------------------------------------------------ lr-find


@pytest.mark.parametrize("settings, message", [
    ({"min_lr": 1.0, "max_lr": 0.1}, "min_lr=1.0, max_lr=0.1: expected 0 < min_lr < max_lr."),
    ({"min_lr": 0.0}, "min_lr=0.0: expected a number > 0."),
    ({"steps": 1}, "steps=1: expected an integer >= 2."),
    ({"unfreeze_blocks": -1}, "unfreeze_blocks=-1: expected an integer >= 0."),
    ({"image_size": 16}, "image_size=16, backbone='efficientnet_lite0': expected image_size >= 32"),
    ({"validation_split": 1.0}, "validation_split=1.0: expected a number in [0, 1)."),
    ({"backbone": "resnet-50"}, "did you mean 'resnet50'?"),
    ({"augment": "yes"}, "augment='yes': expected a boolean (got a string)."),
    ({"steps": "100"}, "steps='100': expected an integer >= 2 (got a string: write numbers "
                       "without quotes)."),
])
def test_lr_find_config_check(settings, message):
    with pytest.raises(BadInputError) as caught:
        LRFindConfig(**settings).check()
    assert message in str(caught.value)


def test_lr_find_config_names_every_bad_setting_and_accepts_defaults():
    LRFindConfig().check()
    with pytest.raises(BadInputError, match=r"^3 invalid settings: batch_size=0: .*; "
                                            r"steps=0: .*; seed=-1: expected an integer in "
                                            r"\[0, 4294967295\]\.$"):
        LRFindConfig(batch_size=0, steps=0, seed=-1).check()


def test_lr_find_command_checks_before_any_data(no_data, capsys):
    assert main(["lr-find", "--steps", "1", "--max-train-examples", "0"]) == 2
    err = one_error_line(capsys, "lr-find")
    assert "steps=1: expected an integer >= 2" in err
    assert "max_train_examples=0: expected an integer >= 1 or None" in err
    config = write(no_data, "lr.yaml", "min_lr: 1e-6\nmax_lr: 1e-7\n")  # YAML exponents too
    assert main(["lr-find", "--config", config]) == 2
    assert "min_lr=1e-06, max_lr=1e-07: expected 0 < min_lr < max_lr." in one_error_line(
        capsys, "lr-find")
