"""reclf_pretrain's multi_gpu_train.json across two "nodes" with torchrun's c10d rendezvous.

Two torchrun agents of one process each (``--nnodes 2 --nproc_per_node 1``, one job id, one
rendezvous endpoint on 127.0.0.1) train with gloo, each in its own folder as if the nodes shared no
filesystem. The result must be the single-node two-process run (``torchrun --standalone
--nproc_per_node 2``) with the same settings: the same two ranks, seeds, data shards and
all-reduces, only launched differently.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from bundle_testing import event_files, free_port, load_checkpoint, scalars, succeeded
from pretrain_testing import BUNDLE, CONFIGS, SMALL, config_files

pytestmark = pytest.mark.end_to_end

TIMEOUT_S = 300  # for the two nodes together; a node that fails stops the other at once
STOP_GRACE_S = 30  # torchrun stops its workers on SIGTERM; after this, SIGKILL


def node_command(node_dir: Path, dataset_dir: Path, port: int, overrides: dict) -> list[str]:
    """One node's ``torchrun ... -m monai.bundle run`` of train.json + multi_gpu_train.json, as on a
    cluster but with the rendezvous endpoint on 127.0.0.1."""
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    launch = ["--nnodes=2", "--nproc_per_node=1", "--rdzv_backend=c10d", f"--rdzv_endpoint=127.0.0.1:{port}", "--rdzv_id=multi-node-test"]
    settings = {"bundle_root": BUNDLE, "dataset_dir": dataset_dir, "ckpt_dir": node_dir / "models", "output_dir": node_dir / "eval", **SMALL, **overrides}
    command = [torchrun, *launch, "-m", "monai.bundle", "run", "--config_file", config_files("train", "multi_gpu_train")]
    command += ["--logging_file", str(CONFIGS / "logging.conf")]
    return command + [argument for key, value in settings.items() for argument in (f"--{key}", str(value))]


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (torchrun starts each worker in a session of its own)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid:
            found.append(int(stat.parent.name))
    return found


def stop(process: subprocess.Popen) -> None:
    """End a node that is still running: SIGTERM (torchrun then stops its workers), then SIGKILL
    for the agent and the workers it still has."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        for pid in children(process.pid):
            os.kill(pid, signal.SIGKILL)
        process.kill()
        process.wait()


def run_two_nodes(run_dir: Path, dataset_dir: Path, overrides: dict) -> list[Path]:
    """Start both nodes at once and wait for both; returns their folders. If a node fails or the
    time runs out, the other is stopped and the test fails with both nodes' output."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    nodes = [run_dir / f"node{index}" for index in range(2)]
    processes = []
    try:
        for node_dir in nodes:
            node_dir.mkdir(parents=True)
            with open(node_dir.with_suffix(".log"), "w") as log:
                command = node_command(node_dir, dataset_dir, port, overrides)
                processes.append(subprocess.Popen(command, cwd=node_dir, env=env, stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            codes = [process.poll() for process in processes]
            if codes == [0, 0] or any(codes):  # both done, or a node failed
                break
            time.sleep(1)
        codes = [process.poll() for process in processes]
    finally:
        for process in processes:
            stop(process)
    if codes != [0, 0]:
        for node_dir in nodes:
            print(f"===== {node_dir.name} =====\n" + node_dir.with_suffix(".log").read_text()[-6000:])
        pytest.fail(f"two-node run: exit codes {codes} (None: still running, stopped; time limit {TIMEOUT_S} s)")
    return nodes


def files_under(folder: Path) -> list[str]:
    """The files a run wrote under `folder`; an event file's name (time, host, process) as a pattern."""
    names = (str(path.relative_to(folder)) for path in folder.rglob("*") if not path.is_dir())
    return sorted(re.sub(r"events\.out\.tfevents\..*", "events.out.tfevents.*", name) for name in names)


def test_two_nodes_train_as_one_node_with_two_processes(two_process_pretraining, tmp_path):
    reference = two_process_pretraining
    assert succeeded(reference.result)
    nodes = run_two_nodes(tmp_path, reference.corpus, reference.overrides)

    # Only rank 0 writes: its node holds what the single-node run holds, the other node no file at
    # all (c10d, not the order of the nodes, decides which node's process is rank 0).
    written = [files_under(node) for node in nodes]
    expected = files_under(reference.run_dir)
    assert sorted(written, key=len) == [[], expected], written
    rank_zero = nodes[written.index(expected)]

    # The same training: the same scalars at every step, the same weights, optimizer state and
    # trainer state. Both launches run the same two ranks through the same gloo all-reduces on this
    # machine (each a sum of two float32 values, which does not depend on the order), so not even
    # the last bit may differ.
    [reference_events], [events] = event_files(reference.run_dir / "eval"), event_files(rank_zero / "eval")
    assert scalars(events) == scalars(reference_events)
    for name in ("checkpoint_epoch=1.pt", "model.pt"):
        saved, checkpoint = load_checkpoint(reference.run_dir / "models" / name), load_checkpoint(rank_zero / "models" / name)
        assert checkpoint.keys() == saved.keys()
        for key in saved:
            if key == "optimizer":  # tensors in "state", hyper-parameters in "param_groups"
                assert checkpoint[key]["param_groups"] == saved[key]["param_groups"]
                torch.testing.assert_close(checkpoint[key]["state"], saved[key]["state"], rtol=0, atol=0, msg=lambda text: f"{name} optimizer: {text}")
            elif key == "model":
                torch.testing.assert_close(checkpoint[key], saved[key], rtol=0, atol=0, msg=lambda text: f"{name} model: {text}")
            else:
                assert checkpoint[key] == saved[key], f"{name} {key}"
