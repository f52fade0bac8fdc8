"""The README's generated backbone table: current, complete, and regenerable."""

from __future__ import annotations

import dataclasses

import pytest

from keras_transfer import get_spec, list_backbones, register_backbone
from tools import readme_tables as docs
from keras_transfer.backbones import registry


def test_readme_backbone_table_is_current():
    """Fails when a backbone is added or changed without `python tools/readme_tables.py`."""
    text = docs.README.read_text(encoding="utf-8")
    assert docs.replace_block(text, docs.readme_block()) == text, (
        "README.md's backbone table is out of date: run `python tools/readme_tables.py`.")
    assert docs.main(["--check"]) == 0


def test_table_rows_follow_the_registry():
    rows = docs.backbone_rows()
    builtin = docs.builtin_backbones()
    assert [row["backbone"].strip("`") for row in rows] == builtin
    assert len(builtin) >= 40 and set(builtin) <= set(list_backbones())
    by_name = {row["backbone"].strip("`"): row for row in rows}
    assert by_name["efficientnet_lite0"]["offline ImageNet weights"] == "yes"
    assert by_name["resnet50"]["offline ImageNet weights"].startswith("no")
    assert by_name["vgg16"]["named blocks"] == "stem (no weights) + 5"
    assert by_name["inception_v3"]["input size"] == "299×299"
    # EfficientNetV2-B0…S have six stages, M and L seven: the optional block shows as a range.
    assert by_name["efficientnet_v2_m"]["named blocks"] == "stem + 6–7 + top"
    assert "classification" in by_name["xception"]["tasks"]
    table = docs.backbone_table_markdown()
    assert len(table.splitlines()) == len(rows) + 2
    assert all(line.count("|") == 7 for line in table.splitlines())


def test_backbones_registered_outside_the_package_are_left_out():
    """Tests and users register their own backbones; the README lists what ships."""
    spec = dataclasses.replace(get_spec("vgg16"), name="docs_test_user_net",
                               build=lambda input_tensor, weights=None: None)
    register_backbone(spec)
    try:
        assert "docs_test_user_net" in list_backbones()
        assert "docs_test_user_net" not in docs.builtin_backbones()
        test_readme_backbone_table_is_current()
    finally:
        registry._REGISTRY.pop("docs_test_user_net")


def test_regenerating_rewrites_only_the_block(tmp_path):
    spec = dataclasses.replace(get_spec("vgg16"), name="docs_test_vgg", has_offline_weights=True)
    register_backbone(spec)
    try:
        readme = tmp_path / "README.md"
        before, after = "# Title\n\nintro\n", "\n## Architecture\n"
        readme.write_text(f"{before}{docs.START_MARKER}\nstale\n{docs.END_MARKER}{after}")
        assert docs.main(["--check", str(readme)]) == 1
        assert docs.main([str(readme)]) == 0
        text = readme.read_text()
        assert text.startswith(before) and text.endswith(after) and "stale" not in text
        assert "| `docs_test_vgg` | vgg | stem (no weights) + 5 | 224×224 | yes |" in text
        assert docs.main(["--check", str(readme)]) == 0
    finally:
        registry._REGISTRY.pop("docs_test_vgg")


def test_missing_markers_is_a_clear_error(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    assert docs.main([str(readme)]) == 2
    assert "backbones:start" in capsys.readouterr().err
    with pytest.raises(ValueError, match="backbones:start"):
        docs.replace_block("nothing", "x")
