"""scripts/document_figures.py: every document quotes the recorded demo run, and only it."""

from __future__ import annotations

import json
import math
import shutil

import pytest
from repository import ROOT

from scripts import document_figures as figures

ENCODERS = {"pretrained": "pretrained", "imagenet": "ImageNet, not pretrained", "random": "random init"}


def recorded_run(pretrained_auc: float = 0.812) -> dict:
    rows = [
        {"task": "zero-shot, five classes", "task_key": "zeroshot_five", "figure": "macro AUC", "pretrained": pretrained_auc, "imagenet": 0.45, "random": 0.5,
         "chance": 0.5, "difference": pretrained_auc - 0.5, "noise": 0.02},
        {"task": "segmentation, 10 % labels", "task_key": "segmentation", "figure": "test Dice, images with a finding", "pretrained": 0.2, "imagenet": 0.25,
         "random": 0.1, "chance": 0.0, "difference": -0.05, "noise": math.nan},
    ]  # fmt: skip
    return {"command": "bash scripts/demo.sh", "date": "2026-12-07", "seconds": {"pretraining": 400, "total": 830},
            "machine": {"cpu": "Test CPU (family 1, model 2)", "cores": 2, "torch": "2.13.0", "monai": "1.6.1"},
            "columns": ENCODERS, "noise_source": "seed-to-seed sd: from a test", "rows": rows, "bundle_metrics": {}}  # fmt: skip


def test_the_documents_agree_with_the_recorded_demo_run():
    """What CI checks: README, docs/results.md, every bundle README and eval_metrics quote docs/demo_run.json."""
    assert figures.main(["check"]) == 0


def test_blocks_are_rewritten_from_the_run_and_a_missing_block_is_named():
    run = recorded_run()
    text = "before\n<!-- figures:demo-time -->\nold\n<!-- /figures:demo-time -->\nmiddle\n<!-- figures:demo-table -->\n| stale |\n<!-- /figures:demo-table -->\nafter\n"
    rendered = figures.rendered_document(text, run, "README.md")
    assert rendered.startswith("before\n<!-- figures:demo-time -->\nMeasured by `bash scripts/demo.sh` on 2026-12-07, Test CPU (family 1, model 2), 2 cores")
    assert "830 s in all" in rendered and "pretraining 400 s and the downstream table, the gallery and start-up 430 s" in rendered
    assert "| zero-shot, five classes | macro AUC | 0.812 | 0.450 | 0.500 | 0.500 | +0.312 | 0.020 |" in rendered
    assert "| stale |" not in rendered and rendered.endswith("<!-- /figures:demo-table -->\nafter\n")
    assert figures.rendered_document(rendered, run, "README.md") == rendered  # rendering is a fixed point

    bundle_block = figures.rendered_document("<!-- figures:bundle:reclf_segmentation -->\n<!-- /figures:bundle:reclf_segmentation -->\n", run, "x.md")
    assert "test Dice, images with a finding | 0.200" in bundle_block and "zero-shot" not in bundle_block
    with pytest.raises(SystemExit, match="README.md: no figures block demo-table"):
        figures.rendered_document(text.split("middle")[0], run, "README.md")
    with pytest.raises(SystemExit, match="unknown figures block 'demo-plot'"):
        figures.rendered_document("<!-- figures:demo-plot -->\n<!-- /figures:demo-plot -->\n", run, "x.md")


def test_eval_metrics_are_the_pretrained_figures_of_the_bundle():
    run = recorded_run()
    assert figures.eval_metrics(run, "reclf_zeroshot_classification") == {"iu_phantom_zeroshot_five_macro_auc": 0.812}
    assert figures.eval_metrics(run, "reclf_segmentation") == {"iu_phantom_segmentation_test_dice_images_with_a_finding": 0.2}
    assert figures.eval_metrics(run, "reclf_pretrain") == {"iu_phantom_zeroshot_five_macro_auc": 0.812}


def test_a_figure_changed_by_hand_fails_the_check_and_publish_rewrites_it(tmp_path, monkeypatch, capsys):
    """A copy of the documents with one figure edited: check names the file; writing the recorded run restores it."""
    for document in [*figures.REQUIRED_BLOCKS, "docs/demo_run.json", *(str(path.relative_to(ROOT)) for path in ROOT.glob("bundles/*/configs/metadata.json"))]:
        (tmp_path / document).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / document, tmp_path / document)
    monkeypatch.setattr(figures, "ROOT", tmp_path)
    monkeypatch.setattr(figures, "RUN", tmp_path / "docs" / "demo_run.json")
    monkeypatch.setattr(figures, "BUNDLES", tmp_path / "bundles")
    run = json.loads((tmp_path / "docs" / "demo_run.json").read_text())
    readme = tmp_path / "README.md"
    quoted = f"{run['rows'][0]['pretrained']:.3f}"
    before, block = readme.read_text().split("<!-- figures:demo-table -->", 1)
    assert quoted in block
    readme.write_text(before + "<!-- figures:demo-table -->" + block.replace(quoted, "0.999", 1))
    metadata = tmp_path / "bundles" / "reclf_grounding" / "configs" / "metadata.json"
    metadata.write_text(metadata.read_text().replace('"eval_metrics": {', '"eval_metrics": {"typed_by_hand": 1.0, ', 1))

    assert figures.main(["check"]) == 1
    errors = capsys.readouterr().err
    assert "README.md disagrees with docs/demo_run.json" in errors and "reclf_grounding/configs/metadata.json disagrees" in errors
    assert "docs/results.md" not in errors
    assert figures.main(["write"]) == 0 and figures.main(["check"]) == 0
    readme.write_text(before + "<!-- figures:demo-table -->" + block.replace(quoted, "0.999", 1))

    demo_output = tmp_path / "demo_output"
    (demo_output / "downstream").mkdir(parents=True)
    shutil.copyfile(tmp_path / "docs" / "demo_run.json", demo_output / "demo_run.json")
    (demo_output / "downstream" / "downstream_table.png").write_bytes(b"a plot")
    monkeypatch.setattr(figures, "PLOT", tmp_path / "docs" / "demo_table.png")
    assert figures.main(["publish", str(demo_output)]) == 0
    assert figures.main(["check"]) == 0
    assert (ROOT / "README.md").read_text() == readme.read_text()
    assert (tmp_path / "docs" / "demo_table.png").read_bytes() == b"a plot"


def test_publish_without_a_recorded_run_says_what_is_missing(tmp_path):
    with pytest.raises(SystemExit, match="no recorded demo run"):
        figures.main(["publish", str(tmp_path)])


def test_goals_say_which_targets_the_run_reaches():
    run = recorded_run(pretrained_auc=0.812)
    run["rows"].append({"task": "grounding", "task_key": "grounding", "figure": "pointing game", "pretrained": 0.07, "imagenet": 0.0, "random": 0.0,
                        "chance": 0.014, "difference": 0.07})  # fmt: skip
    goals = figures.goals_block(run).splitlines()
    assert "| zero-shot, five classes: macro AUC | 0.80 | 0.812 | yes |" in goals
    assert "| segmentation, 10 % labels: test Dice, images with a finding | 0.35 | 0.200 | **no** |" in goals
    assert "| grounding: pointing game | 5 x chance | 5.0 x chance (0.070) | yes |" in goals
    assert "| zeroshot_laterality: macro AUC | 0.7 | not run | no |" in goals
    assert goals[-1] == "| pretraining and downstream on 2 CPU cores | 600 s | 830 s | **no** |"
