"""What every bundle test needs: the real ``monai.bundle`` CLI, event files, checkpoints, a tiny
RECLF pretraining checkpoint for the downstream bundles, and the runs of the bundles built on it."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from monai.bundle import ConfigWorkflow
from PIL import Image
from repository import ROOT
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from reclf_monai.bundle_metadata import BUILT_IN_CHECK, check_metadata
from reclf_monai.networks import ImageEncoder, RECLFModel, TextEncoder, save_checkpoint, settings_differences

BUNDLES = ROOT / "bundles"


def bundle_config_files(configs: Path, *names: str) -> str:
    """The `--config_file` value: one path, or a list literal that MONAI merges in order."""
    paths = [str(configs / f"{name}.json") for name in names]
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


def run_workflow(bundle: Path, run_dir: Path, *configs: str, run_id: str = "run", processes: int = 1, **settings) -> subprocess.CompletedProcess:
    """The bundle tests' one runner: ``python -m monai.bundle run [RUN_ID]`` of `bundle`'s
    `configs` (names under configs/, merged in order) with its logging.conf, in `run_dir`, with
    ``--bundle_root`` the bundle and `settings` as the other overrides."""
    configs_folder = bundle / "configs"
    arguments = ("--config_file", bundle_config_files(configs_folder, *configs), "--logging_file", str(configs_folder / "logging.conf"))
    run_arguments = arguments if run_id == "run" else (run_id, *arguments)
    return monai_bundle(run_dir, "run", *run_arguments, processes=processes, bundle_root=bundle, **settings)


def run_pretrained_bundle(
    bundle: Path, run_dir: Path, corpus: Path, checkpoint: Path, *configs: str, run_id: str = "run", **overrides
) -> subprocess.CompletedProcess:
    """`run_workflow` of a bundle that evaluates a RECLF pretraining checkpoint as it is (retrieval,
    grounding): `corpus` as dataset_dir, outputs in run_dir/eval, batches of 8, no loader workers."""
    settings = {
        "dataset_dir": corpus,
        "pretrained_checkpoint": checkpoint,
        "output_dir": run_dir / "eval",
        "num_workers": 0,
        "batch_size": 8,
        **overrides,
    }
    return run_workflow(bundle, run_dir, *configs, run_id=run_id, **settings)


def pretrained_workflow(
    bundle: Path, corpus: Path, checkpoint: Path | None, run_dir: Path, *configs: str, run_id: str = "run", **overrides
) -> ConfigWorkflow:
    """A workflow of such a bundle in this process (the CLI's settings, without its start-up time);
    `checkpoint` None leaves pretrained_checkpoint to `overrides`."""
    settings = {"bundle_root": str(bundle), "dataset_dir": str(corpus), "output_dir": str(run_dir / "eval"), "num_workers": 0}
    if checkpoint is not None:
        settings["pretrained_checkpoint"] = str(checkpoint)
    paths = [str(bundle / "configs" / f"{name}.json") for name in configs]
    return ConfigWorkflow(config_file=paths, workflow_type="infer", run_id=run_id, logging_file=False, **settings, **overrides)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (for a server or a rendezvous a test starts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def succeeded(result: subprocess.CompletedProcess) -> bool:
    """True for exit status 0; otherwise prints the end of the run's output for the test log."""
    if result.returncode != 0:
        print(result.stdout[-6000:])
    return result.returncode == 0


def bundle_function_messages(cwd: Path, subcommand: str, **arguments) -> list[str]:
    """The function behind ``python -m monai.bundle SUBCOMMAND``, called with the same arguments in
    this process, in `cwd` and offline, as the CLI call of `monai_bundle` would run it; returns
    what it logged. Why: a CLI call's imports are nearly all of its cost (about 15 s of one core on
    the development VM), so only a few tests go through the CLI itself."""
    from monai.bundle import scripts

    messages: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: messages.append(record.getMessage())
    scripts.logger.addHandler(handler)
    cwd.mkdir(parents=True, exist_ok=True)
    previous = os.getcwd()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("HF_HUB_OFFLINE", "1")
            patch.setenv("TRANSFORMERS_OFFLINE", "1")
            os.chdir(cwd)
            getattr(scripts, subcommand)(**arguments)  # raises where the CLI would fail
    finally:
        os.chdir(previous)
        scripts.logger.removeHandler(handler)
    assert not (cwd / "runs").exists(), f"{subcommand} wrote a stray runs/ folder in its working directory"
    return messages


def assert_metadata_valid(configs: Path, cwd: Path, cli: bool = False) -> None:
    """``monai.bundle verify_metadata`` passes for ``configs/metadata.json`` against MONAI's schema
    where it is at hand (``reclf_monai.bundle_metadata``: $RECLF_MONAI_METADATA_SCHEMA or the user
    cache; tests never download it, they reach no server but their own), else against the built-in
    check written to a schema file, so that MONAI's own function runs either way.

    With `cli`, through ``python -m monai.bundle verify_metadata`` in `cwd` (test_pretrain_bundle
    does so); otherwise in this process (`bundle_function_messages`)."""
    meta_file = configs / "metadata.json"
    schema_file = check_metadata(meta_file, download=False).schema_file
    if schema_file is None:
        schema_file = cwd / "built_in_metadata_check.json"
        cwd.mkdir(parents=True, exist_ok=True)
        schema_file.write_text(json.dumps(BUILT_IN_CHECK))
    arguments = {"meta_file": str(meta_file), "filepath": str(schema_file)}
    if cli:
        result = monai_bundle(cwd, "verify_metadata", *(item for key, value in arguments.items() for item in (f"--{key}", value)))
        assert succeeded(result)
        assert "metadata is verified with no error" in result.stdout
        return
    assert "metadata is verified with no error." in bundle_function_messages(cwd, "verify_metadata", **arguments)


def assert_network_matches_metadata(configs: Path, cwd: Path, **overrides) -> None:
    """``verify_net_in_out`` on ``inference.json`` alone, as model-zoo CI runs it, in this process
    (`bundle_function_messages`; test_pretrain_bundle goes through the CLI)."""
    messages = bundle_function_messages(
        cwd, "verify_net_in_out", net_id="network_def", meta_file=str(configs / "metadata.json"),
        config_file=str(configs / "inference.json"), **{key: str(value) if isinstance(value, Path) else value for key, value in overrides.items()},
    )  # fmt: skip
    assert "data shape of network is verified with no error." in messages


def export_inference_network(configs: Path, cwd: Path, checkpoint: Path, image_size: int, **overrides) -> torch.jit.ScriptModule:
    """``ckpt_export`` (traced) of `checkpoint`'s weights into ``inference.json``'s network alone;
    returns the exported TorchScript module."""
    exported_file = cwd / "model.ts"
    exported = monai_bundle(
        cwd, "ckpt_export", "network_def", "--filepath", str(exported_file), "--ckpt_file", str(checkpoint),
        "--key_in_ckpt", "model", "--meta_file", str(configs / "metadata.json"),
        "--config_file", str(configs / "inference.json"), "--use_trace", "True",
        "--input_shape", f"[1,1,{image_size},{image_size}]", **overrides,
    )  # fmt: skip
    assert succeeded(exported)
    return torch.jit.load(str(exported_file), map_location="cpu")


def event_files(output_dir: Path) -> list[Path]:
    return sorted((output_dir / "tensorboard").glob("events.out.tfevents.*"))


def scalars(event_file: Path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(event_file))
    events.Reload()
    return {tag: [(event.step, event.value) for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def images(event_file: Path) -> dict[str, list[tuple[int, np.ndarray]]]:
    """Every image summary of the event file, decoded: tag -> [(step, (H, W, C) uint8 array)]."""
    events = EventAccumulator(str(event_file))
    events.Reload()
    return {
        tag: [(event.step, np.asarray(Image.open(io.BytesIO(event.encoded_image_string)))) for event in events.Images(tag)]
        for tag in events.Tags()["images"]
    }


def texts(event_file: Path) -> dict[str, list[tuple[int, str]]]:
    """Every text summary of the event file: tag (as TensorBoard shows it) -> [(step, text)]."""
    events = EventAccumulator(str(event_file))
    events.Reload()
    return {
        tag: [(event.step, event.tensor_proto.string_val[0].decode()) for event in events.Tensors(tag)]
        for tag in events.Tags()["tensors"]
        if events.SummaryMetadata(tag).plugin_data.plugin_name == "text"
    }


def load_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def trained_model(checkpoint: Path) -> RECLFModel:
    """The pretraining checkpoint's model, rebuilt from its settings, in eval mode: the reference a
    bundle's outputs are compared with."""
    saved = load_checkpoint(checkpoint)
    model = RECLFModel.from_settings(saved["network_settings"])
    model.load_state_dict(saved["model"])
    return model.eval()


def assert_network_is_the_checkpoints_or_its_untrained_twin(network_for: Callable[[Any], torch.nn.Module], checkpoint: Path) -> None:
    """`network_for(load_pretrain)` gives a workflow's network. With `load_pretrain` true it must be
    the checkpoint's (settings and every weight); with "false" (as the CLI passes it) the same
    settings with other, untrained weights: the random-init baseline of the same network."""
    saved = load_checkpoint(checkpoint)
    for load_pretrain, same_weights in ((True, True), ("false", False)):
        network = network_for(load_pretrain)
        assert settings_differences(saved["network_settings"], network.settings) == []
        weights = network.state_dict()
        assert weights.keys() == saved["model"].keys()
        assert all(torch.equal(weights[name], saved["model"][name]) for name in weights) == same_weights

def write_tiny_pretraining_checkpoint(
    path: Path, aggregation: str = "reclf", image_size: int = 64, seed: int = 0, backbone: str = "resnet18"
) -> Path:
    """A checkpoint as reclf_pretrain writes it (weights + settings) for a small untrained model:
    `backbone` (ResNet-18) at `image_size`, 32-d joint space, the real MiniLM text encoder, 48 tokens."""
    torch.manual_seed(seed)
    model = RECLFModel(
        ImageEncoder(backbone, in_channels=1, embed_dim=32, img_size=image_size),
        TextEncoder(embed_dim=32, max_length=48, freeze_layers=4),
        aggregation,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_checkpoint(model, path)


def with_centred_logits(network: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """An untrained segmentation network (in eval mode) whose masks are neither blank nor full:
    its logits all lie on one side of 0, so its head's bias is shifted to put half of a random
    image's pixels in the foreground."""
    network.eval()
    head_bias = [parameter for name, parameter in network.named_parameters() if name.endswith("bias")][-1]
    image_size = network.settings["image_encoder"]["img_size"]
    with torch.no_grad():
        logits = network(torch.rand(1, 1, image_size, image_size, generator=torch.Generator().manual_seed(seed)))
        head_bias -= logits.median()
    return network
