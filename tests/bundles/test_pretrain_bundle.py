"""The reclf_pretrain bundle run through MONAI's own bundle CLI on a tiny IU-Phantom built at test time.

Every run uses small settings (64-pixel images, 32-d embeddings, one epoch) so that a CLI call
takes seconds; one trained run is shared by the evaluation, inference, resume and export tests.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from bundle_testing import (
    assert_metadata_valid,
    event_files,
    images,
    load_checkpoint,
    monai_bundle,
    scalars,
    succeeded,
    texts,
)
from ignite.engine import Events
from monai.bundle import ConfigParser, ConfigWorkflow
from pretrain_testing import BATCH_SIZE, BUNDLE, CONFIGS, EMBED_DIM, IMAGE_SIZE, SMALL, config_files, run_bundle
from sample_files import real_chest_dicom

from reclf_monai.data import DataError, chest_xray_transforms, load_datalist
from reclf_monai.networks import RECLFModel, settings_differences

pytestmark = pytest.mark.end_to_end

CHECKPOINT_KEYS = {"model", "network_settings", "optimizer", "lr_scheduler", "trainer"}
BEST_MODEL_KEYS = {"model", "network_settings", "best_model", "checkpointer"}
TRAINING_SCALARS = {
    "train/loss",
    "train/loss_global",
    "train/loss_local",
    "train/lr",
    "train/temperature_global",
    "train/temperature_local",
}
VALIDATION_SCALARS = {"val_mean_recall", "val_loss", "R@1", "R@5", "R@10", "R_mean", "i2t_R@1", "t2i_R@1"}
WORD_HEATMAPS = [f"validation/word_heatmap/rank{rank}" for rank in (1, 2, 3)]
VALIDATION_IMAGES = {*WORD_HEATMAPS, "validation/word_weights"}
VALIDATION_TEXTS = {"validation/word_heatmap/text_summary"}


def copy_models(trained: SimpleNamespace, run_dir: Path) -> Path:
    """A private copy of the trained run's checkpoints, for runs that add to or resume from them."""
    shutil.copytree(trained.models, run_dir / "models")
    return run_dir / "models"


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory) -> SimpleNamespace:
    """One single-process training epoch, shared by the tests that need trained checkpoints."""
    run_dir = tmp_path_factory.mktemp("trained")
    result = run_bundle(run_dir, corpus, "train")
    iterations = len(load_datalist(corpus / "datalist.json", "training")) // BATCH_SIZE
    return SimpleNamespace(result=result, models=run_dir / "models", output=run_dir / "eval", iterations=iterations)


def test_cpu_schedule_only_overrides_settings_that_train_json_has():
    """configs/cpu_schedule.json (the demo's and the ablation's schedule) merged after train.json
    sets each of its keys; a misspelt key would add an unused setting instead."""
    schedule = json.loads((CONFIGS / "cpu_schedule.json").read_text())
    train = ConfigParser(ConfigParser.load_config_file(CONFIGS / "train.json"))
    merged = ConfigParser(ConfigParser.load_config_files([CONFIGS / "train.json", CONFIGS / "cpu_schedule.json"]))
    assert schedule and [key for key in schedule if key not in train] == []
    assert {key: merged[key] for key in schedule} == schedule


def test_relation_lr_scale_gives_the_relation_modules_their_own_optimizer_group(corpus):
    parser = ConfigParser(ConfigParser.load_config_file(CONFIGS / "train.json"))
    parser.update({"bundle_root": str(BUNDLE), "dataset_dir": str(corpus), **SMALL, "learning_rate": 2e-4, "relation_lr_scale": 10})
    optimizer, network = parser.get_parsed_content("optimizer"), parser.get_parsed_content("network_def")
    assert [group["lr"] for group in optimizer.param_groups] == [2e-4, pytest.approx(2e-3)]
    assert {id(parameter) for parameter in optimizer.param_groups[1]["params"]} == {id(parameter) for parameter in network.local_matching.parameters()}


def test_text_lr_scale_gives_the_text_transformer_its_own_optimizer_group(corpus):
    parser = ConfigParser(ConfigParser.load_config_file(CONFIGS / "train.json"))
    parser.update({"bundle_root": str(BUNDLE), "dataset_dir": str(corpus), **SMALL, "learning_rate": 2e-4, "text_lr_scale": 0.1})
    optimizer, network = parser.get_parsed_content("optimizer"), parser.get_parsed_content("network_def")
    assert [group["lr"] for group in optimizer.param_groups] == [2e-4, pytest.approx(2e-5)]
    trainable_transformer = {id(parameter) for parameter in network.text_encoder.model.parameters() if parameter.requires_grad}
    assert {id(parameter) for parameter in optimizer.param_groups[1]["params"]} == trainable_transformer


def test_train_writes_checkpoints_and_one_event_file(trained):
    assert succeeded(trained.result)
    assert sorted(path.name for path in trained.models.iterdir()) == ["checkpoint_epoch=1.pt", "model.pt"]

    checkpoint = load_checkpoint(trained.models / "checkpoint_epoch=1.pt")
    assert set(checkpoint) == CHECKPOINT_KEYS
    assert checkpoint["trainer"]["iteration"] == trained.iterations
    assert checkpoint["lr_scheduler"]["last_epoch"] == trained.iterations
    best = load_checkpoint(trained.models / "model.pt")
    assert set(best) == BEST_MODEL_KEYS
    assert best["model"].keys() == checkpoint["model"].keys()
    # validation and the epoch checkpoint both follow epoch 1: the best model is that epoch's model
    assert all(torch.equal(best["model"][name], checkpoint["model"][name]) for name in best["model"])
    # both carry the settings that shape the network, so evaluation needs nothing but the file
    settings = best["network_settings"]
    assert settings == checkpoint["network_settings"]
    assert settings["aggregation"] == "reclf"
    assert settings["image_encoder"]["img_size"] == IMAGE_SIZE and settings["image_encoder"]["embed_dim"] == EMBED_DIM
    assert settings["text_encoder"]["max_length"] == SMALL["max_length"]
    assert best["best_model"]["metric_name"] == "val_mean_recall" and best["best_model"]["epoch"] == 1

    assert f"Iter: {trained.iterations}/{trained.iterations} -- train_loss:" in trained.result.stdout
    # the epoch's last iteration always gets a progress line (TrainingProgress)
    assert f"reclf.progress - INFO - epoch 1/1: {trained.iterations}/{trained.iterations} iterations at " in trained.result.stdout
    files = event_files(trained.output)
    assert len(files) == 1
    logged = scalars(files[0])
    assert TRAINING_SCALARS | VALIDATION_SCALARS <= set(logged)
    for tag in TRAINING_SCALARS:
        assert [step for step, _ in logged[tag]] == list(range(1, trained.iterations + 1)), tag
    assert all(math.isfinite(value) for _, value in logged["train/loss"])
    assert logged["train/lr"][-1][1] > 0
    [(epoch, recall)] = logged["val_mean_recall"]
    assert epoch == 1 and 0 <= recall <= 1
    assert math.isfinite(logged["val_loss"][0][1])


def test_validation_writes_word_heatmaps_of_the_highest_weighted_words(trained, corpus):
    """After the last (here the only) epoch's validation: one heatmap per top-3 word, different
    from word to word, their words and weights as text, and the word-weight chart."""
    [events] = event_files(trained.output)
    pictures, captions = images(events), texts(events)
    assert set(pictures) == VALIDATION_IMAGES and set(captions) == VALIDATION_TEXTS
    assert all([step for step, _ in pictures[tag]] == [1] for tag in VALIDATION_IMAGES)
    heatmaps = [pictures[tag][0][1] for tag in WORD_HEATMAPS]
    assert all(heatmap.shape == (IMAGE_SIZE, IMAGE_SIZE, 3) and heatmap.std() > 0 for heatmap in heatmaps)
    assert not any(np.array_equal(first, second) for first, second in zip(heatmaps, heatmaps[1:]))

    [(step, caption)] = captions["validation/word_heatmap/text_summary"]
    report = load_datalist(corpus / "datalist.json", "validation")[0]["report"].lower()
    rows = [line.split("|")[1:4] for line in caption.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [int(rank) for rank, _, _ in rows] == [1, 2, 3]
    assert all(word.strip() in report for _, word, _ in rows)
    weights = [float(weight) for _, _, weight in rows]
    assert weights == sorted(weights, reverse=True) and weights[-1] > 0
    [(_, chart)] = pictures["validation/word_weights"]
    assert chart.shape[0] >= 3 * 14 and len(np.unique(chart.reshape(-1, 3), axis=0)) > 2


def test_a_new_run_in_an_earlier_runs_folder_is_refused_and_keeps_its_checkpoints(trained, corpus, tmp_path):
    """Without --resume or --overwrite, training into a folder that holds checkpoints stops before
    the first iteration with an error naming the folder; the earlier files are left as they were."""
    models = copy_models(trained, tmp_path)
    before = {path.name: path.read_bytes() for path in models.iterdir()}
    result = run_bundle(tmp_path, corpus, "train")
    assert result.returncode != 0
    assert f"{models}: holds checkpoints of an earlier run (checkpoint_epoch=1.pt, model.pt); resume it with --resume true" in result.stdout
    assert "Epoch[1]" not in result.stdout
    assert {path.name: path.read_bytes() for path in models.iterdir()} == before


def test_resume_continues_from_last_checkpoint(trained, corpus, tmp_path):
    models = copy_models(trained, tmp_path)
    result = run_bundle(tmp_path, corpus, "train", resume=True, **{"train#trainer#max_epochs": 2})
    assert succeeded(result)
    assert f"Restored all variables from {models / 'checkpoint_epoch=1.pt'}" in result.stdout
    assert "Epoch[2] Complete" in result.stdout and "Epoch[1] Complete" not in result.stdout
    checkpoint = load_checkpoint(models / "checkpoint_epoch=2.pt")
    assert checkpoint["trainer"]["iteration"] == 2 * trained.iterations
    [events] = event_files(tmp_path / "eval")
    logged = scalars(events)
    assert [step for step, _ in logged["train/loss"]] == list(range(trained.iterations + 1, 2 * trained.iterations + 1))
    assert [epoch for epoch, _ in logged["val_mean_recall"]] == [2]
    # The schedule follows the extended horizon: a cosine decay after the warm-up epoch, not the
    # saved 1-epoch schedule replayed past its end.
    rates = [rate for _, rate in logged["train/lr"]]
    assert all(rate > 0 for rate in rates[:-1])
    assert all(later <= earlier for earlier, later in zip(rates, rates[1:]))


def test_resume_keeps_a_better_best_model(trained, corpus, tmp_path):
    """model.pt records a score no validation reaches: the resumed validation must not replace it."""
    models = copy_models(trained, tmp_path)
    best = load_checkpoint(models / "model.pt")
    unbeatable = 1.0  # a perfect mean recall; a validation only replaces model.pt when strictly better
    best["best_model"]["metric"] = unbeatable
    best["checkpointer"]["_saved"] = [(unbeatable, "model.pt")]
    torch.save(best, models / "model.pt")
    before = (models / "model.pt").read_bytes()

    result = run_bundle(tmp_path, corpus, "train", resume=True, **{"train#trainer#max_epochs": 2})
    assert succeeded(result)
    assert f"{models / 'model.pt'} holds the best model so far: val_mean_recall 1.0000 at epoch 1" in result.stdout
    [(epoch, recall)] = scalars(event_files(tmp_path / "eval")[0])["val_mean_recall"]
    assert epoch == 2 and recall < unbeatable
    assert (models / "model.pt").read_bytes() == before
    assert (models / "checkpoint_epoch=2.pt").is_file()


def test_resume_replaces_the_best_model_when_better(trained, corpus, tmp_path):
    """The same resume with a recorded score of 0 must write the epoch-2 model to model.pt."""
    models = copy_models(trained, tmp_path)
    best = load_checkpoint(models / "model.pt")
    best["best_model"]["metric"] = 0.0
    best["checkpointer"]["_saved"] = [(0.0, "model.pt")]
    torch.save(best, models / "model.pt")

    result = run_bundle(tmp_path, corpus, "train", resume=True, **{"train#trainer#max_epochs": 2})
    assert succeeded(result)
    rewritten = load_checkpoint(models / "model.pt")
    assert rewritten["best_model"]["epoch"] == 2 and rewritten["best_model"]["metric"] > 0
    epoch_two = load_checkpoint(models / "checkpoint_epoch=2.pt")["model"]
    assert all(torch.equal(rewritten["model"][name], epoch_two[name]) for name in epoch_two)


def test_training_can_drop_unreadable_items(corpus, tmp_path):
    """Opt-in: a truncated training PNG and a missing validation image are dropped, counted and listed."""
    data = tmp_path / "data"
    shutil.copytree(corpus, data)
    datalist = json.loads((data / "datalist.json").read_text())
    truncated = data / datalist["training"][3]["image"]
    truncated.write_bytes(truncated.read_bytes()[:100])
    datalist["validation"][1]["image"] = "images/absent.png"
    (data / "datalist.json").write_text(json.dumps(datalist))

    result = run_bundle(tmp_path, data, "train", skip_unreadable_items=True)
    assert succeeded(result)
    assert "split 'training': dropped 1 of 49 items that cannot be read" in result.stdout
    assert "split 'validation': dropped 1 of 6 items that cannot be read" in result.stdout
    for split, bad_file in (("training", truncated), ("validation", data / "images" / "absent.png")):
        report = json.loads((tmp_path / "eval" / f"unreadable_items_{split}.json").read_text())
        assert report["dropped"] == 1 and [Path(item["image"]) for item in report["items"]] == [bad_file]
    assert (tmp_path / "models" / "model.pt").is_file()

    # without the setting the same data stops the run with an error naming the file
    result = run_bundle(tmp_path / "strict", data, "train")
    assert result.returncode != 0 and f"{truncated}:" in result.stdout


def _tiny_workflow(corpus: Path, run_dir: Path, **overrides) -> ConfigWorkflow:
    """The training workflow in this process, with the same tiny settings as the CLI runs."""
    folders = {"bundle_root": BUNDLE, "dataset_dir": corpus, "ckpt_dir": run_dir / "models", "output_dir": run_dir / "eval"}
    settings = {**{key: str(path) for key, path in folders.items()}, **SMALL, **overrides}
    return ConfigWorkflow(config_file=str(CONFIGS / "train.json"), workflow_type="train", logging_file=False, **settings)


def test_resumed_state_equals_saved_state(trained, corpus, tmp_path):
    """Right after the resume loader ran (first EPOCH_STARTED): epoch counter, LR, optimizer state, weights."""
    models = copy_models(trained, tmp_path)
    saved = load_checkpoint(models / "checkpoint_epoch=1.pt")
    workflow = _tiny_workflow(corpus, tmp_path, resume=True, **{"train#trainer#max_epochs": 2})
    workflow.initialize()
    trainer = workflow.parser.get_parsed_content("train#trainer")
    network = workflow.parser.get_parsed_content("network")
    optimizer = workflow.parser.get_parsed_content("optimizer")
    scheduler = workflow.parser.get_parsed_content("train#lr_scheduler")
    assert optimizer.param_groups[0]["lr"] == 0.0  # warm-up starts at zero: a restored LR must differ
    observed = {}

    @trainer.on(Events.EPOCH_STARTED)
    def compare_with_checkpoint(engine):
        observed["epoch"] = engine.state.epoch
        observed["iteration"] = engine.state.iteration
        observed["lr"] = [group["lr"] for group in optimizer.param_groups]
        observed["scheduler_step"] = scheduler.last_epoch
        state = optimizer.state_dict()["state"]
        observed["optimizer_state"] = state.keys() == saved["optimizer"]["state"].keys() and all(
            torch.equal(torch.as_tensor(value), torch.as_tensor(saved["optimizer"]["state"][index][name]))
            for index, entries in state.items()
            for name, value in entries.items()
        )
        weights = network.state_dict()
        observed["weights"] = weights.keys() == saved["model"].keys() and all(
            torch.equal(weights[name], saved["model"][name]) for name in weights
        )
        engine.terminate()

    workflow.run()
    workflow.finalize()
    assert observed["epoch"] == 2 and observed["iteration"] == saved["trainer"]["iteration"]
    assert observed["lr"] == [group["lr"] for group in saved["optimizer"]["param_groups"]] == [pytest.approx(1e-4)]
    assert observed["scheduler_step"] == saved["lr_scheduler"]["last_epoch"]
    assert observed["optimizer_state"]
    assert observed["weights"]


def test_train_workflow_has_monai_train_properties(corpus, tmp_path):
    workflow = _tiny_workflow(corpus, tmp_path)
    workflow.initialize()
    assert workflow.check_properties() == []


def _evaluation_workflow(trained, corpus: Path, run_dir: Path, config: str, **overrides) -> ConfigWorkflow:
    """evaluate.json or inference.json over train.json in this process, given only the checkpoint folder."""
    folders = {"bundle_root": BUNDLE, "dataset_dir": corpus, "ckpt_dir": trained.models, "output_dir": run_dir / "eval"}
    settings = {**{key: str(path) for key, path in folders.items()}, "num_workers": 0, "cache_rate": 0, **overrides}
    config_file = [str(CONFIGS / "train.json"), str(CONFIGS / config)]
    return ConfigWorkflow(config_file=config_file, workflow_type="infer", logging_file=False, **settings)


@pytest.mark.parametrize("config", ["evaluate.json", "inference.json"])
def test_evaluate_and_inference_have_monai_infer_properties(trained, corpus, tmp_path, config):
    workflow = _evaluation_workflow(trained, corpus, tmp_path, config)
    workflow.initialize()
    assert workflow.check_properties() == []


@pytest.mark.parametrize(
    "config, evaluator",
    [("evaluate.json", "validate#evaluator"), ("evaluate.json", "zeroshot#evaluator"), ("inference.json", "infer#image#evaluator"), ("inference.json", "infer#report#evaluator")],
)
def test_every_evaluator_scores_the_checkpoint_alone(trained, corpus, tmp_path, config, evaluator):
    """Whichever evaluator is built first and alone, its network holds model.pt's weights, with the
    settings taken from the checkpoint (no size or aggregation passed)."""
    workflow = _evaluation_workflow(trained, corpus, tmp_path, config)
    workflow.initialize()
    network = workflow.parser.get_parsed_content(evaluator).network
    saved = load_checkpoint(trained.models / "model.pt")["model"]
    weights = network.state_dict()
    assert weights.keys() == saved.keys()
    assert all(torch.equal(weights[name], saved[name]) for name in saved)
    assert workflow.parser.get_parsed_content("image_size") == IMAGE_SIZE


def test_evaluation_with_load_pretrain_false_scores_the_untrained_network(trained, corpus, tmp_path):
    # "false" as the bundle CLI passes it (fire makes a bool of `False` only): a non-empty string must not count as true
    workflow = _evaluation_workflow(trained, corpus, tmp_path, "evaluate.json", load_pretrain="false")
    workflow.initialize()
    network = workflow.parser.get_parsed_content("zeroshot#evaluator").network
    checkpoint = load_checkpoint(trained.models / "model.pt")
    saved = checkpoint["model"]
    assert settings_differences(checkpoint["network_settings"], network.settings) == []  # the checkpoint's network ...
    assert network.state_dict().keys() == saved.keys()
    assert not all(torch.equal(network.state_dict()[name], saved[name]) for name in saved)  # ... without its weights


def test_non_finite_loss_fails_and_keeps_last_checkpoint(trained, corpus, tmp_path):
    models = copy_models(trained, tmp_path)
    before = {path.name: path.read_bytes() for path in models.iterdir()}
    result = run_bundle(tmp_path, corpus, "train", resume=True, **{"train#trainer#max_epochs": 2, "loss#global_weight": "$float('nan')"})
    assert result.returncode != 0
    assert f"non-finite loss (nan) at iteration {trained.iterations + 1} (epoch 2)" in result.stdout
    assert "NonFiniteLossError" in result.stdout
    assert {path.name: path.read_bytes() for path in models.iterdir()} == before


def evaluate_bundle(run_dir: Path, dataset_dir: Path, trained, config: str, **overrides) -> subprocess.CompletedProcess:
    """``monai.bundle run`` of train.json + `config` given the checkpoint folder and data-loading
    settings only: the network's settings come from the checkpoint."""
    settings = {
        "bundle_root": BUNDLE,
        "dataset_dir": dataset_dir,
        "ckpt_dir": trained.models,
        "output_dir": run_dir / "eval",
        "val_batch_size": 8,
        "num_workers": 0,
        "cache_rate": 0,
        **overrides,
    }
    arguments = ("--config_file", config_files("train", config), "--logging_file", str(CONFIGS / "logging.conf"))
    return monai_bundle(run_dir, "run", *arguments, **settings)


def test_evaluate_reports_retrieval_and_zero_shot(trained, corpus, tmp_path):
    before = {path.name: path.read_bytes() for path in trained.models.iterdir()}
    result = evaluate_bundle(tmp_path, corpus, trained, "evaluate")
    assert succeeded(result)
    assert f"loaded weights from {trained.models / 'model.pt'} (aggregation reclf, backbone resnet18, img_size {IMAGE_SIZE})" in result.stdout
    assert {path.name: path.read_bytes() for path in trained.models.iterdir()} == before
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    validation, zero_shot = report["validation"], report["zero_shot"]
    for name in ("R@1", "R@5", "R@10"):
        assert 0 <= validation[name] <= 1
    assert {"auc", "acc", "f1"} <= set(zero_shot)
    assert all(0 <= zero_shot[name] <= 1 for name in ("auc", "acc", "f1"))
    # the evaluated model is the trained one: validation matches what training logged at epoch 1
    logged = scalars(event_files(trained.output)[0])
    assert validation["val_loss"] == pytest.approx(logged["val_loss"][0][1], rel=1e-4)
    assert validation["R@1"] == pytest.approx(logged["R@1"][0][1])

    # the zero-shot part alone loads the same weights and gives the same figures
    alone = tmp_path / "zero_shot_alone"
    run_only = "['$@zeroshot#evaluator.run()']"
    result = evaluate_bundle(alone, corpus, trained, "evaluate", run=run_only)
    assert succeeded(result)
    assert "loaded weights from" in result.stdout
    assert json.loads((alone / "eval" / "metrics.json").read_text()) == {"zero_shot": zero_shot}


def _failed_with(result: subprocess.CompletedProcess, message: str) -> bool:
    if result.returncode == 0 or message not in result.stdout:
        print(result.stdout[-4000:])
        return False
    return True


def test_evaluation_refuses_a_checkpoint_of_another_network(trained, corpus, tmp_path):
    model_file = trained.models / "model.pt"
    result = evaluate_bundle(tmp_path, corpus, trained, "evaluate", aggregation="lse")
    assert _failed_with(result, f"{model_file}: checkpoint was written for another network: aggregation: checkpoint 'reclf', network 'lse'")
    result = evaluate_bundle(tmp_path, corpus, trained, "inference", image_size=2 * IMAGE_SIZE)
    assert _failed_with(result, f"image_encoder.img_size: checkpoint {IMAGE_SIZE}, network {2 * IMAGE_SIZE}")


@pytest.mark.parametrize(
    "content, problem",
    [(None, "checkpoint file not found"), ("weights only", "not a RECLF checkpoint: no 'network_settings' entry"), ("text", "not a readable PyTorch checkpoint")],
)
def test_evaluation_names_a_missing_or_foreign_checkpoint(trained, corpus, tmp_path, content, problem):
    models = tmp_path / "models"
    models.mkdir()
    if content == "weights only":  # what the bundle wrote before checkpoints carried their settings
        torch.save(load_checkpoint(trained.models / "model.pt")["model"], models / "model.pt")
    elif content == "text":
        (models / "model.pt").write_text("not a checkpoint")
    workflow = _evaluation_workflow(SimpleNamespace(models=models), corpus, tmp_path, "evaluate.json")
    workflow.initialize()
    with pytest.raises(RuntimeError) as raised:
        workflow.parser.get_parsed_content("zeroshot#evaluator")
    cause = raised.value
    while cause is not None and not isinstance(cause, DataError):
        cause = cause.__cause__
    assert cause is not None and str(cause).startswith(f"{models / 'model.pt'}: {problem}"), raised.value


def _embeddings(folder: Path, split: str = "test") -> dict[str, np.ndarray]:
    with np.load(folder / "eval" / f"embeddings_{split}.npz") as saved:
        return {name: saved[name] for name in saved.files}


def test_inference_writes_normalised_embeddings(trained, corpus, tmp_path):
    result = evaluate_bundle(tmp_path, corpus, trained, "inference")
    assert succeeded(result)
    test_items = load_datalist(corpus / "datalist.json", "test")
    embeddings = _embeddings(tmp_path)
    assert set(embeddings) == {"image", "image_embedding", "image_item", "report_embedding", "report_item"}
    for kind in ("image", "report"):
        assert embeddings[f"{kind}_embedding"].shape == (len(test_items), EMBED_DIM)
        np.testing.assert_allclose(np.linalg.norm(embeddings[f"{kind}_embedding"], axis=1), 1.0, atol=1e-5)
        assert embeddings[f"{kind}_item"].tolist() == list(range(len(test_items)))
    assert [Path(name).name for name in embeddings["image"]] == [Path(item["image"]).name for item in test_items]


def test_inference_embeds_image_only_and_report_only_items(trained, corpus, tmp_path):
    """A real MONOCHROME1 chest CR DICOM without a report, a report without an image, and both."""
    dicom = real_chest_dicom()
    paired = load_datalist(corpus / "datalist.json", "test")[0]
    items = [{"image": str(dicom)}, {"report": paired["report"]}, {"image": paired["image"], "report": paired["report"]}]
    datalist = tmp_path / "mixed.json"
    datalist.write_text(json.dumps({"test": items}))
    result = evaluate_bundle(tmp_path, corpus, trained, "inference", infer_datalist=datalist)
    assert succeeded(result)
    embeddings = _embeddings(tmp_path)
    assert embeddings["image_item"].tolist() == [0, 2] and embeddings["report_item"].tolist() == [1, 2]
    assert [Path(name) for name in embeddings["image"]] == [dicom, Path(paired["image"])]
    # the report-only item and the paired item carry the same text: the same embedding
    np.testing.assert_allclose(embeddings["report_embedding"][0], embeddings["report_embedding"][1], atol=1e-5)
    # the DICOM's embedding is the checkpoint's network applied to the project's reader output
    checkpoint = load_checkpoint(trained.models / "model.pt")
    network = RECLFModel.from_settings(checkpoint["network_settings"])
    network.load_state_dict(checkpoint["model"])
    network.eval()
    image = chest_xray_transforms(image_size=IMAGE_SIZE)({"image": str(dicom)})["image"]
    with torch.no_grad():
        expected = network(image[None].float())[0].numpy()
    np.testing.assert_allclose(embeddings["image_embedding"][0], expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(embeddings["image_embedding"], axis=1), 1.0, atol=1e-5)


def test_multi_process_training_writes_only_from_rank_zero(trained, two_process_pretraining):
    """torchrun --standalone --nproc_per_node 2, 4 items per rank and step (tests/shared_fixtures.py)."""
    result, corpus, run_dir = two_process_pretraining.result, two_process_pretraining.corpus, two_process_pretraining.run_dir
    assert succeeded(result)
    models = run_dir / "models"
    assert sorted(path.name for path in models.iterdir()) == ["checkpoint_epoch=1.pt", "model.pt"]
    # DDP's wrapper is not in the saved names: evaluation and export read these checkpoints as they are
    best, single_process = load_checkpoint(models / "model.pt"), load_checkpoint(trained.models / "model.pt")
    assert best.keys() == single_process.keys() == BEST_MODEL_KEYS
    assert best["model"].keys() == single_process["model"].keys()
    assert best["network_settings"] == single_process["network_settings"]
    files = event_files(run_dir / "eval")
    assert len(files) == 1
    iterations = math.ceil(len(load_datalist(corpus / "datalist.json", "training")) / 2) // 4
    assert [step for step, _ in scalars(files[0])["train/loss"]] == list(range(1, iterations + 1))
    # the word heatmaps come from rank 0 alone, once per validation
    pictures = images(files[0])
    assert set(pictures) == VALIDATION_IMAGES and all([step for step, _ in pictures[tag]] == [1] for tag in VALIDATION_IMAGES)


def test_network_matches_metadata_and_exports_to_torchscript(trained, tmp_path):
    verified = monai_bundle(
        tmp_path, "verify_net_in_out", "network_def", "--meta_file", str(CONFIGS / "metadata.json"), "--config_file", config_files("train")
    )
    assert succeeded(verified)
    assert "data shape of network is verified with no error" in verified.stdout

    # export from the checkpoint alone: inference.json takes the network's settings from model.pt
    exported_file = tmp_path / "model.ts"
    exported = monai_bundle(
        tmp_path,
        "ckpt_export",
        "network_def",
        "--filepath", str(exported_file),
        "--ckpt_file", str(trained.models / "model.pt"),
        "--key_in_ckpt", "model",
        "--meta_file", str(CONFIGS / "metadata.json"),
        "--config_file", config_files("train", "inference"),
        "--use_trace", "True",
        "--input_shape", f"[1,1,{IMAGE_SIZE},{IMAGE_SIZE}]",
        "--bundle_root", str(BUNDLE),
        "--ckpt_dir", str(trained.models),
    )  # fmt: skip
    assert succeeded(exported)

    extra = {"metadata.json": ""}
    scripted = torch.jit.load(str(exported_file), map_location="cpu", _extra_files=extra)
    assert json.loads(extra["metadata.json"])["version"] == json.loads((CONFIGS / "metadata.json").read_text())["version"]
    checkpoint = load_checkpoint(trained.models / "model.pt")
    eager = RECLFModel.from_settings(checkpoint["network_settings"])
    eager.load_state_dict(checkpoint["model"])
    eager.eval()
    image = torch.rand(1, 1, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, actual = eager(image), scripted(image)
    assert actual.shape == (1, EMBED_DIM)
    torch.testing.assert_close(actual.norm(dim=1), torch.ones(1))
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-4)


def test_metadata_validates_against_monai_schema(tmp_path):
    assert_metadata_valid(CONFIGS, tmp_path, cli=True)  # the one run through the CLI, as model-zoo CI runs it
