"""research/learning_curve.py: validation points during a real (tiny) pretraining run, kept when finished."""

from __future__ import annotations

import json

import pytest
from pretrain_testing import SMALL

from research import learning_curve

pytestmark = pytest.mark.research


def test_parse_overrides_reads_json_values_and_keeps_strings():
    assert learning_curve.parse_overrides(["--learning_rate", "0.001", "--amp", "true", "--aggregation", "lse"]) == {
        "learning_rate": 0.001, "amp": True, "aggregation": "lse",
    }  # fmt: skip
    with pytest.raises(SystemExit, match="pairs"):
        learning_curve.parse_overrides(["--learning_rate"])


def test_curve_points_on_the_validation_split_and_a_finished_curve_is_kept(pretraining_corpus, tmp_path, capsys):
    overrides = [token for key, value in SMALL.items() for token in (f"--{key}", json.dumps(value))]
    arguments = ["--dataset_dir", str(pretraining_corpus), "--output_dir", str(tmp_path), "--name", "tiny", "--eval_every", "3"]
    assert learning_curve.main([*arguments, "--", *overrides]) == 0
    record = json.loads((tmp_path / "tiny" / "curve.json").read_text())
    iterations_per_epoch = record["iterations_per_epoch"]  # 49 training items, batch 8, last partial batch dropped
    assert record["finished"] and iterations_per_epoch == 6
    from reclf_monai.networks import RECLFModel, load_pretrained_weights, read_network_settings

    final_model = tmp_path / "tiny" / "models" / "model.pt"
    load_pretrained_weights(RECLFModel.from_settings(read_network_settings(final_model)), final_model)
    points = record["points"]
    assert [point["iteration"] for point in points] == [0, 3, 6]
    assert points[0]["train_seconds"] == 0 < points[1]["train_seconds"] < points[2]["train_seconds"]
    for point in points:
        assert 0 <= point["val_zeroshot_auc"] <= 1
        assert 0 <= point["val_R@1"] <= point["val_R@5"] <= point["val_R@10"] <= 1
    capsys.readouterr()
    assert learning_curve.main([*arguments, "--", *overrides]) == 0
    assert "finished earlier" in capsys.readouterr().out
    assert json.loads((tmp_path / "tiny" / "curve.json").read_text()) == record
    rows = [line for line in learning_curve.markdown_summary(tmp_path).splitlines() if line.startswith("| tiny |")]
    assert [row.split(" | ")[2] for row in rows] == ["0", "3", "6"]
