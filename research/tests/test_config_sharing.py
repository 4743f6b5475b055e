"""research/config_sharing.py: which entries of a bundle config repeat another bundle's, verbatim."""

from __future__ import annotations

import json

import pytest

from research import config_sharing

pytestmark = pytest.mark.research


def write_config(root, bundle, name, config):
    path = root / bundle / "configs" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config))


def test_entries_are_leaves_addressed_as_override_ids():
    config = {"amp": False, "loader": {"_target_": "DataLoader", "keys": ["image", "label"], "extra": {}}}
    assert dict(config_sharing.config_entries(config)) == {
        "amp": "false", "loader#_target_": '"DataLoader"', "loader#keys#0": '"image"', "loader#keys#1": '"label"', "loader#extra": "{}",
    }  # fmt: skip


def test_shares_count_same_id_and_value_in_another_bundle_of_the_same_config_name(tmp_path):
    write_config(tmp_path, "a", "train.json", {"amp": False, "batch_size": 8, "loader": {"_target_": "DataLoader", "shuffle": True}})
    write_config(tmp_path, "b", "train.json", {"amp": False, "batch_size": 16, "loader": {"_target_": "DataLoader", "shuffle": False}})
    write_config(tmp_path, "b", "inference.json", {"amp": False})  # no other bundle has an inference.json: no row
    rows = {row["bundle"]: row for row in config_sharing.sharing_table(tmp_path)}
    assert set(rows) == {"a", "b"} and all(row["config"] == "train.json" for row in rows.values())
    # shared: amp (interface) and loader#_target_ (wiring); batch_size and shuffle differ in value
    assert rows["a"]["entries"] == 4
    assert rows["a"]["shared"] == pytest.approx(0.5)
    assert rows["a"]["interface"] == pytest.approx(0.25) and rows["a"]["wiring"] == pytest.approx(0.25)


def test_standard_sections_count_as_interface():
    assert config_sharing.is_interface("initialize#0#_target_")
    assert config_sharing.is_interface("dataset_dir")
    assert not config_sharing.is_interface("train#trainer#max_epochs")
