"""scripts/downstream_table.py: every task bundle on a checkpoint and on its untrained baselines, one table."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from bundle_testing import BUNDLES, bundle_config_files, monai_bundle, succeeded, write_tiny_pretraining_checkpoint
from PIL import Image
from repository import ROOT

from scripts import downstream_table as table_script

pytestmark = pytest.mark.end_to_end

SCRIPT = ROOT / "scripts" / "downstream_table.py"
IMAGE_SIZE = 64
ENCODERS = ("pretrained", "imagenet", "random")
TASKS = ["zeroshot_five", "zeroshot_laterality", "relation_probe", "classification", "segmentation", "retrieval", "grounding"]


@pytest.fixture(scope="module")
def corpus(zero_shot_corpus) -> Path:
    """120 IU reports: every zero-shot class and the laterality set have images (tests/shared_fixtures.py)."""
    return zero_shot_corpus


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny EfficientNet-Lite0 checkpoint, whose ImageNet baseline the packaged weights give
    offline (a test here rewrites it in place)."""
    return write_lite0_checkpoint(tmp_path_factory.mktemp("pretrain") / "model.pt")


def write_lite0_checkpoint(path: Path, seed: int = 1) -> Path:
    return write_tiny_pretraining_checkpoint(path, image_size=IMAGE_SIZE, seed=seed, backbone="efficientnet-lite0")


def table_arguments(corpus: Path, checkpoint: Path, output: Path, *arguments: str) -> list[str]:
    return [
        "--checkpoint", str(checkpoint), "--dataset_dir", str(corpus), "--output_dir", str(output),
        "--num_workers", "0", "--classification_epochs", "1", "--segmentation_epochs", "1", "--data_fraction", "0.5",
        "--segmentation_batch_size", "2", "--segmentation_dice", "image", *arguments,
    ]  # fmt: skip


def downstream_table(corpus: Path, checkpoint: Path, output: Path, *arguments: str) -> subprocess.CompletedProcess:
    """The script's main() in this process (its imports are most of a short call; the script runs
    its bundles in its own process anyway), with the exit status and output the interpreter would
    give: stdout and stderr together, a SystemExit message printed to stderr with status 1."""
    argv = table_arguments(corpus, checkpoint, output, *arguments)
    output_text = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(output_text), contextlib.redirect_stderr(output_text):
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        try:
            status = table_script.main(argv)
        except SystemExit as stopped:  # as `sys.exit(main())` ends the script
            if stopped.code is None or isinstance(stopped.code, int):
                status = stopped.code or 0
            else:
                print(stopped.code, file=sys.stderr)
                status = 1
    return subprocess.CompletedProcess([sys.executable, str(SCRIPT), *argv], status, output_text.getvalue())


def downstream_table_cli(corpus: Path, checkpoint: Path, output: Path, *arguments: str) -> subprocess.CompletedProcess:
    """``python scripts/downstream_table.py ...`` as a user runs it."""
    command = [sys.executable, str(SCRIPT), *table_arguments(corpus, checkpoint, output, *arguments)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "2"}
    return subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900)


@pytest.fixture(scope="module")
def table(corpus, checkpoint, tmp_path_factory):
    output = tmp_path_factory.mktemp("downstream")
    result = downstream_table(corpus, checkpoint, output, "--eval_items", "6")
    return result, output


def test_every_task_runs_for_each_encoder_and_lands_in_one_table_with_chance_levels(table, corpus, checkpoint):
    result, output = table
    assert succeeded(result)
    progress = [line.split("] ", 1)[1] for line in result.stdout.splitlines() if " runs done; time left: " in line]
    assert len(progress) == 21 and progress[-1] == "21/21 runs done; time left: none"  # 7 tasks x 3 encoders
    assert progress[0].startswith("1/21 runs done; time left: at least ") and "(not measured yet: classification, " in progress[0]
    assert progress[-2].startswith("20/21 runs done; time left: about ") and progress[-2].endswith(" (1 run)")
    content = json.loads((output / "downstream_table.json").read_text())
    rows = content["rows"]
    assert [row["figure"] for row in rows] == [
        "macro AUC", "ACC", "macro AUC", "ACC", "sides swapped, two findings: image to text",
        "sides swapped, two findings: text to image", "finding negated: image to text", "test macro AUC", "test Dice, images with a finding",
        "test mean Dice, all images", "P@5", "pointing game",
    ]  # fmt: skip
    for row in rows:
        for encoder in ENCODERS:
            assert math.isfinite(row[encoder]) and 0.0 <= row[encoder] <= 1.0, row
    markdown = (output / "downstream_table.md").read_text()
    assert markdown.splitlines()[0] == "| task | figure | pretrained | ImageNet, not pretrained | random init | chance | pretrained - best baseline |"
    assert markdown in result.stdout + "\n"
    for row in rows:
        assert row["difference"] == pytest.approx(row["pretrained"] - max(row["imagenet"], row["random"]), abs=1e-12)
    with Image.open(output / "downstream_table.png") as plot:
        assert plot.format == "PNG" and plot.width > plot.height > 100
    for task in TASKS:
        for encoder in ENCODERS:
            assert (output / task / encoder / "metrics.json").is_file(), (task, encoder)
    segmentation_test = json.loads((output / "segmentation" / "random" / "metrics.json").read_text())
    assert segmentation_test["test"]["mean_dice"] == pytest.approx(rows[9]["random"])
    probe = json.loads((output / "relation_probe" / "imagenet" / "metrics.json").read_text())["relation_probe"]
    assert rows[4]["imagenet"] == pytest.approx(probe["two findings/image_to_text/sides swapped"])

    # chance levels from the data: a uniform guess, 0.5 AUC, the empty mask, a random ranking
    classes = {name: len(json.loads((corpus / name).read_text())["class_names"]) for name in ("zeroshot_5xN.json", "zeroshot_laterality.json")}
    assert [row["chance"] for row in rows[:8]] == pytest.approx(
        [0.5, 1 / classes["zeroshot_5xN.json"], 0.5, 1 / classes["zeroshot_laterality.json"], 0.5, 0.5, 0.5, 0.5]
    )
    assert rows[8]["chance"] == 0.0
    sampled = json.loads((output / "datalist_sample6.json").read_text())["test"]
    empty = [not np.any(np.asarray(Image.open(corpus / item["label"]))) for item in sampled]
    assert rows[9]["chance"] == pytest.approx(sum(empty) / len(empty))
    grounding = json.loads((output / "grounding" / "pretrained" / "metrics.json").read_text())
    assert rows[11]["chance"] == pytest.approx(grounding["all"]["region_fraction"])

    # each encoder is its own checkpoint file, read by every bundle as the pretrained one is
    assert content["baselines"] == {name: str(output / "baselines" / f"{name}.pt") for name in ("imagenet", "random")}
    for encoder, source in [("pretrained", checkpoint), ("imagenet", output / "baselines" / "imagenet.pt")]:
        record = json.loads((output / "classification" / encoder / "downstream_run.json").read_text())
        assert record["settings"]["runs"][0]["overrides"]["pretrained_checkpoint"] == str(source)
    decoder_training = json.loads((output / "segmentation" / "pretrained" / "downstream_run.json").read_text())["settings"]["runs"][0]["overrides"]
    assert (decoder_training["batch_size"], decoder_training["loss#batch"]) == (2, False)  # --segmentation_batch_size 2 --segmentation_dice image
    assert "batch_size" not in record["settings"]["runs"][0]["overrides"]  # classification keeps its bundle's
    imagenet = torch.load(output / "baselines" / "imagenet.pt", weights_only=True)
    assert imagenet["network_settings"]["image_encoder"]["imagenet_input"] is True


def test_the_demo_records_the_table_with_each_tasks_metrics_and_the_machine(table, tmp_path):
    """scripts/document_figures.py record, as scripts/demo.sh calls it on its output folder."""
    from scripts import document_figures

    result, output = table
    assert succeeded(result)
    (tmp_path / "downstream").symlink_to(output)
    run = json.loads(document_figures.record(tmp_path, pretraining_seconds=400.4, total_seconds=830).read_text())
    assert run["rows"] == json.loads((output / "downstream_table.json").read_text())["rows"]
    assert run["seconds"] == {"pretraining": 400, "total": 830} and run["machine"]["cores"] == os.cpu_count()
    assert set(run["bundle_metrics"]) == set(TASKS)
    assert run["bundle_metrics"]["grounding"] == json.loads((output / "grounding" / "pretrained" / "metrics.json").read_text())


def test_figures_are_the_bundles_own_results_for_the_checkpoint(table, corpus, checkpoint, tmp_path):
    """The zero-shot row equals what the bundle, run alone through the CLI, reports for the checkpoint."""
    result, output = table
    assert succeeded(result)
    bundle = BUNDLES / "reclf_zeroshot_classification"
    alone = monai_bundle(
        tmp_path, "run", "--config_file", bundle_config_files(bundle / "configs", "inference", "evaluate"),
        bundle_root=bundle, dataset_dir=corpus, pretrained_checkpoint=checkpoint, output_dir=tmp_path / "alone",
        num_workers=0,
    )  # fmt: skip
    assert succeeded(alone)
    own = json.loads((tmp_path / "alone" / "metrics.json").read_text())["zero_shot"]
    rows = json.loads((output / "downstream_table.json").read_text())["rows"]
    assert rows[0]["pretrained"] == pytest.approx(own["auc"], abs=1e-6)
    assert rows[1]["pretrained"] == pytest.approx(own["acc"], abs=1e-6)


def test_a_finished_run_is_reused_and_a_changed_setting_runs_again(table, corpus, checkpoint):
    result, output = table
    assert succeeded(result)
    before = json.loads((output / "downstream_table.json").read_text())["rows"]
    # run again with the noise measured by an ablation: its reclf cells over three seeds (the other
    # mode's cells, classification at another label fraction and segmentation, which the study
    # trained with another batch size, must not count)
    ablation = output.parent / "ablation_report.json"
    records = [{"mode": mode, "seed": seed, "task": task, "fraction": fraction, "status": "computed", "figures": {label: value + seed / 10}}
               for seed in (0, 1, 2) for mode in ("reclf", "mean")
               for task, fraction, label, value in [("zeroshot_five", None, "macro AUC", 0.6 if mode == "reclf" else 0.0),
                                                    ("classification", 0.5, "test macro AUC", 0.7), ("classification", 0.01, "test macro AUC", 0.9 * seed),
                                                    ("segmentation", 0.5, "test Dice, images with a finding", 0.3)]]  # fmt: skip
    study = {"classification_epochs": 1, "segmentation_epochs": 1, "eval_items": 6, "segmentation_batch_size": 4}  # the others: the bundles' defaults
    ablation.write_text(json.dumps({"machine": {"cpu": "test CPU"}, "study": study, "records": records}))
    again = downstream_table(corpus, checkpoint, output, "--eval_items", "6", "--noise_from", str(ablation))
    assert succeeded(again)
    assert again.stdout.count("reusing") == len(ENCODERS) * len(TASKS)
    assert again.stdout.count("written earlier for this checkpoint") == 2  # the baselines
    content = json.loads((output / "downstream_table.json").read_text())
    assert [{key: value for key, value in row.items() if key != "noise"} for row in content["rows"]] == before
    noise = {(row["task"], row["figure"]): row["noise"] for row in content["rows"]}
    assert noise[("zero-shot, five classes", "macro AUC")] == pytest.approx(0.1)  # sd of 0.6, 0.7, 0.8
    assert noise[("linear classification, 50 % labels", "test macro AUC")] == pytest.approx(0.1)
    assert math.isnan(noise[("zero-shot, five classes", "ACC")])  # not in the report
    assert math.isnan(noise[("segmentation, 50 % labels", "test Dice, images with a finding")])
    assert "over 3 pretraining seeds of `reclf` in ablation_report.json (test CPU" in content["noise_source"]
    assert content["noise_source"].endswith("no noise where the report's study ran another schedule: segmentation (other segmentation_batch_size, segmentation_dice)")
    assert (output / "downstream_table.md").read_text().splitlines()[0].endswith("| chance | pretrained - best baseline | seed-to-seed sd |")

    changed = downstream_table(corpus, checkpoint, output, "--eval_items", "6", "--tasks", "classification", "--classification_epochs", "2")
    assert succeeded(changed)
    assert "reusing" not in changed.stdout
    settings = json.loads((output / "classification" / "pretrained" / "downstream_run.json").read_text())["settings"]
    assert settings["runs"][0]["overrides"]["train#trainer#max_epochs"] == 2

    # the same path holding another checkpoint (a new pretraining run) is not the finished one
    write_lite0_checkpoint(checkpoint)
    rewritten = downstream_table(corpus, checkpoint, output, "--eval_items", "6", "--tasks", "zeroshot_five")
    assert succeeded(rewritten)
    assert "reusing" not in rewritten.stdout


def test_a_failing_task_is_named_and_the_others_still_report(corpus, checkpoint, tmp_path):
    damaged = tmp_path / "iu_phantom"
    shutil.copytree(corpus, damaged)
    (damaged / "prompts_laterality.json").unlink()
    result = downstream_table(damaged, checkpoint, tmp_path / "out", "--tasks", "zeroshot_five", "zeroshot_laterality", "--baselines", "random")
    assert result.returncode == 1
    assert "failed: zero-shot, laterality / pretrained" in result.stdout
    assert "prompts_laterality.json" in result.stdout
    rows = json.loads((tmp_path / "out" / "downstream_table.json").read_text())["rows"]
    assert math.isfinite(rows[0]["pretrained"]) and math.isnan(rows[2]["pretrained"])
    assert "| zero-shot, laterality | macro AUC | failed | failed | failed |" in result.stdout


def test_unknown_task_is_refused(corpus, checkpoint, tmp_path):
    """Through the interpreter, as a user runs the script (the other tests call its main())."""
    result = downstream_table_cli(corpus, checkpoint, tmp_path, "--tasks", "segmentaton")
    assert result.returncode != 0
    assert "unknown tasks ['segmentaton']" in result.stdout


def test_grounding_is_left_out_for_a_global_only_checkpoint(corpus, tmp_path):
    """The pointing game needs the local scorer's attention: a `global_only` checkpoint is told,
    not failed."""
    global_only = write_tiny_pretraining_checkpoint(tmp_path / "global_only.pt", aggregation="global_only", image_size=IMAGE_SIZE)
    result = downstream_table(corpus, global_only, tmp_path / "out", "--tasks", "grounding")
    assert result.returncode == 0, result.stdout
    assert "left out for a global_only checkpoint (no local scorer): grounding" in result.stdout
    assert json.loads((tmp_path / "out" / "downstream_table.json").read_text())["rows"] == []
    assert not (tmp_path / "out" / "grounding").exists()


def test_noise_from_a_file_that_is_no_ablation_report_or_lacks_the_aggregation_is_refused(tmp_path):
    table_output = tmp_path / "downstream_table.json"
    table_output.write_text(json.dumps({"rows": []}))
    table = table_script.parse_args(["--checkpoint", "c.pt", "--dataset_dir", "d", "--output_dir", "o"])
    with pytest.raises(SystemExit, match="not an ablation report"):
        table_script.seed_noise(table_output, "reclf", table)
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"records": [{"mode": "mean", "seed": 0, "task": "zeroshot_five", "fraction": None, "status": "computed", "figures": {"macro AUC": 0.7}}]}))
    with pytest.raises(SystemExit, match="no finished cell of aggregation 'reclf'"):
        table_script.seed_noise(report, "reclf", table)


def test_noise_from_a_report_without_its_schedule_counts_only_for_tasks_without_one(tmp_path):
    """An older report records no downstream schedule: its spread stands for the tasks that have
    none (zero-shot), not for a trained decoder's whose schedule it cannot show."""
    records = [{"mode": "reclf", "seed": seed, "task": task, "fraction": fraction, "status": "computed", "figures": {"figure": 0.5 + seed / 10}}
               for seed in (0, 1) for task, fraction in [("zeroshot_five", None), ("segmentation", 0.1)]]  # fmt: skip
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"records": records}))
    table = table_script.parse_args(["--checkpoint", "c.pt", "--dataset_dir", "d", "--output_dir", "o"])
    values, source = table_script.seed_noise(report, "reclf", table)
    assert values == {("zeroshot_five", "figure"): [0.5, 0.6]}
    assert source.endswith("no noise for segmentation: the report does not record its downstream schedule")
