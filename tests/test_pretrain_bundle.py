"""The reclf_pretrain bundle run through MONAI's own bundle CLI on a tiny IU-Phantom built at test time.

Every run uses small settings (64-pixel images, 32-d embeddings, one epoch) so that a CLI call
takes seconds; one trained run is shared by the evaluation, inference, resume and export tests.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from ignite.engine import Events
from monai.bundle import ConfigParser, ConfigWorkflow
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from reclf_monai.data import load_datalist
from reclf_monai.phantom import build_corpus

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "reclf_pretrain"
CONFIGS = BUNDLE / "configs"
SCHEMA = Path(__file__).resolve().parents[2] / "shared" / "monai" / "meta_schema_20240725.json"

IMAGE_SIZE = 64
EMBED_DIM = 32
BATCH_SIZE = 8
SMALL = {
    "image_size": IMAGE_SIZE,
    "embed_dim": EMBED_DIM,
    "max_length": 48,
    "batch_size": BATCH_SIZE,
    "val_batch_size": 8,
    "num_workers": 0,
    "freeze_text_layers": 4,
    "cache_rate": 0,
    "train#trainer#max_epochs": 1,
}
CHECKPOINT_KEYS = {"model", "optimizer", "lr_scheduler", "trainer"}
TRAINING_SCALARS = {
    "train/loss",
    "train/loss_global",
    "train/loss_local",
    "train/lr",
    "train/temperature_global",
    "train/temperature_local",
}
VALIDATION_SCALARS = {"val_mean_recall", "val_loss", "R@1", "R@5", "R@10", "R_mean", "i2t_R@1", "t2i_R@1"}


def config_files(*names: str) -> str:
    """The `--config_file` value: one path, or a list literal that MONAI merges in order."""
    paths = [str(CONFIGS / f"{name}.json") for name in names]
    return paths[0] if len(paths) == 1 else "[" + ",".join(f"'{path}'" for path in paths) + "]"


def monai_bundle(cwd: Path, subcommand: str, *arguments: str, processes: int = 1, **overrides) -> subprocess.CompletedProcess:
    """Run ``python -m monai.bundle SUBCOMMAND`` (under torchrun for `processes` > 1) in `cwd`.

    The run must not write outside the folders it is given: no stray ``runs/`` in the working folder.
    """
    module = ["-m", "monai.bundle", subcommand, *arguments]
    if processes > 1:
        torchrun = str(Path(sys.executable).with_name("torchrun"))
        command = [torchrun, "--standalone", f"--nproc_per_node={processes}", *module]
    else:
        command = [sys.executable, *module]
    for key, value in overrides.items():
        command += [f"--{key}", str(value)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1" if processes > 1 else "2"}
    cwd.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert not (cwd / "runs").exists(), f"{subcommand} wrote a stray runs/ folder in its working directory"
    return result


def run_bundle(run_dir: Path, dataset_dir: Path, *configs: str, processes: int = 1, **overrides) -> subprocess.CompletedProcess:
    """``monai.bundle run`` with the tiny settings; checkpoints in run_dir/models, outputs in run_dir/eval."""
    settings = {
        "bundle_root": BUNDLE,
        "dataset_dir": dataset_dir,
        "ckpt_dir": run_dir / "models",
        "output_dir": run_dir / "eval",
        **SMALL,
        **overrides,
    }
    logging_file = str(CONFIGS / "logging.conf")
    arguments = ("--config_file", config_files(*configs), "--logging_file", logging_file)
    return monai_bundle(run_dir, "run", *arguments, processes=processes, **settings)


def succeeded(result: subprocess.CompletedProcess) -> bool:
    if result.returncode != 0:
        print(result.stdout[-6000:])
    return result.returncode == 0


def event_files(output_dir: Path) -> list[Path]:
    return sorted((output_dir / "tensorboard").glob("events.out.tfevents.*"))


def scalars(event_file: Path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(event_file))
    events.Reload()
    return {tag: [(event.step, event.value) for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def load_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def copy_models(trained: SimpleNamespace, run_dir: Path) -> Path:
    """A private copy of the trained run's checkpoints, for runs that add to or resume from them."""
    shutil.copytree(trained.models, run_dir / "models")
    return run_dir / "models"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """80 IU reports: 49 training, 6 validation, 24 test items, one zero-shot image per class."""
    folder = tmp_path_factory.mktemp("iu_phantom")
    summary = build_corpus(folder, image_size=IMAGE_SIZE, seed=0, limit=80, workers=1)
    assert summary.zero_shot_per_class >= 1
    return folder


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory) -> SimpleNamespace:
    """One single-process training epoch, shared by the tests that need trained checkpoints."""
    run_dir = tmp_path_factory.mktemp("trained")
    result = run_bundle(run_dir, corpus, "train")
    iterations = len(load_datalist(corpus / "datalist.json", "training")) // BATCH_SIZE
    return SimpleNamespace(result=result, models=run_dir / "models", output=run_dir / "eval", iterations=iterations)


def test_train_writes_checkpoints_and_one_event_file(trained):
    assert succeeded(trained.result)
    assert sorted(path.name for path in trained.models.iterdir()) == ["checkpoint_epoch=1.pt", "model.pt"]

    checkpoint = load_checkpoint(trained.models / "checkpoint_epoch=1.pt")
    assert set(checkpoint) == CHECKPOINT_KEYS
    assert checkpoint["trainer"]["iteration"] == trained.iterations
    assert checkpoint["lr_scheduler"]["last_epoch"] == trained.iterations
    best = load_checkpoint(trained.models / "model.pt")
    assert best.keys() == checkpoint["model"].keys()
    # validation and the epoch checkpoint both follow epoch 1: the best model is that epoch's model
    assert all(torch.equal(best[name], checkpoint["model"][name]) for name in best)

    assert f"Iter: {trained.iterations}/{trained.iterations} -- train_loss:" in trained.result.stdout
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


@pytest.mark.parametrize("overrides", ["evaluate.json", "inference.json"])
def test_evaluate_and_inference_have_monai_infer_properties(corpus, tmp_path, overrides):
    folders = {"bundle_root": BUNDLE, "dataset_dir": corpus, "ckpt_dir": tmp_path / "models", "output_dir": tmp_path / "eval"}
    settings = {**{key: str(path) for key, path in folders.items()}, **SMALL}
    workflow = ConfigWorkflow(
        config_file=[str(CONFIGS / "train.json"), str(CONFIGS / overrides)], workflow_type="infer", logging_file=False, **settings
    )
    workflow.initialize()
    assert workflow.check_properties() == []


def test_non_finite_loss_fails_and_keeps_last_checkpoint(trained, corpus, tmp_path):
    models = copy_models(trained, tmp_path)
    before = {path.name: path.read_bytes() for path in models.iterdir()}
    result = run_bundle(tmp_path, corpus, "train", resume=True, **{"train#trainer#max_epochs": 2, "loss#global_weight": "$float('nan')"})
    assert result.returncode != 0
    assert f"non-finite loss (nan) at iteration {trained.iterations + 1} (epoch 2)" in result.stdout
    assert "NonFiniteLossError" in result.stdout
    assert {path.name: path.read_bytes() for path in models.iterdir()} == before


def test_evaluate_reports_retrieval_and_zero_shot(trained, corpus, tmp_path):
    before = {path.name: path.read_bytes() for path in trained.models.iterdir()}
    result = run_bundle(tmp_path, corpus, "train", "evaluate", ckpt_dir=trained.models)
    assert succeeded(result)
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


def test_inference_writes_normalised_embeddings(trained, corpus, tmp_path):
    result = run_bundle(tmp_path, corpus, "train", "inference", ckpt_dir=trained.models)
    assert succeeded(result)
    test_items = load_datalist(corpus / "datalist.json", "test")
    with np.load(tmp_path / "eval" / "embeddings_test.npz") as saved:
        embeddings = {name: saved[name] for name in saved.files}
    assert set(embeddings) == {"image", "image_embedding", "report_embedding"}
    for name in ("image_embedding", "report_embedding"):
        assert embeddings[name].shape == (len(test_items), EMBED_DIM)
        np.testing.assert_allclose(np.linalg.norm(embeddings[name], axis=1), 1.0, atol=1e-5)
    assert [Path(name).name for name in embeddings["image"]] == [Path(item["image"]).name for item in test_items]


def test_multi_process_training_writes_only_from_rank_zero(trained, corpus, tmp_path):
    result = run_bundle(tmp_path, corpus, "train", "multi_gpu_train", processes=2, batch_size=4)
    assert succeeded(result)
    models = tmp_path / "models"
    assert sorted(path.name for path in models.iterdir()) == ["checkpoint_epoch=1.pt", "model.pt"]
    # DDP's wrapper is not in the saved names: evaluation and export read these checkpoints as they are
    assert load_checkpoint(models / "model.pt").keys() == load_checkpoint(trained.models / "model.pt").keys()
    files = event_files(tmp_path / "eval")
    assert len(files) == 1
    iterations = math.ceil(len(load_datalist(corpus / "datalist.json", "training")) / 2) // 4
    assert [step for step, _ in scalars(files[0])["train/loss"]] == list(range(1, iterations + 1))


def test_network_matches_metadata_and_exports_to_torchscript(trained, tmp_path):
    verified = monai_bundle(
        tmp_path, "verify_net_in_out", "network_def", "--meta_file", str(CONFIGS / "metadata.json"), "--config_file", config_files("train")
    )
    assert succeeded(verified)
    assert "data shape of network is verified with no error" in verified.stdout

    exported_file = tmp_path / "model.ts"
    shape = f"[1,1,{IMAGE_SIZE},{IMAGE_SIZE}]"
    network_settings = {"image_size": IMAGE_SIZE, "embed_dim": EMBED_DIM, "freeze_text_layers": SMALL["freeze_text_layers"]}
    exported = monai_bundle(
        tmp_path,
        "ckpt_export",
        "network_def",
        "--filepath", str(exported_file),
        "--ckpt_file", str(trained.models / "model.pt"),
        "--meta_file", str(CONFIGS / "metadata.json"),
        "--config_file", config_files("train"),
        "--use_trace", "True",
        "--input_shape", shape,
        **network_settings,
    )  # fmt: skip
    assert succeeded(exported)

    extra = {"metadata.json": ""}
    scripted = torch.jit.load(str(exported_file), map_location="cpu", _extra_files=extra)
    assert json.loads(extra["metadata.json"])["version"] == json.loads((CONFIGS / "metadata.json").read_text())["version"]
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train.json"))
    parser.update(network_settings)
    eager = parser.get_parsed_content("network_def")
    eager.load_state_dict(load_checkpoint(trained.models / "model.pt"))
    eager.eval()
    image = torch.rand(1, 1, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, actual = eager(image), scripted(image)
    assert actual.shape == (1, EMBED_DIM)
    torch.testing.assert_close(actual.norm(dim=1), torch.ones(1))
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-4)


def test_metadata_validates_against_monai_schema(tmp_path):
    if not SCHEMA.is_file():
        pytest.skip(f"MONAI metadata schema not found at {SCHEMA} (offline copy absent)")
    result = monai_bundle(tmp_path, "verify_metadata", "--meta_file", str(CONFIGS / "metadata.json"), "--filepath", str(SCHEMA))
    assert succeeded(result)
    assert "metadata is verified with no error" in result.stdout
