import numpy as np
import pytest
import torch
from ignite.engine import Engine
from monai.data import MetaTensor
from torch.utils.tensorboard import SummaryWriter
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from reclf_monai.handlers import (
    EmbeddingCollector,
    StopOnNonFiniteLoss,
    TrainingScalarsHandler,
    last_checkpoint,
    write_embeddings,
)
from reclf_monai.handlers.non_finite_loss import NonFiniteLossError


def _engine_with_losses(losses):
    def step(engine, batch):
        return {"loss": torch.tensor(losses[engine.state.iteration - 1])}

    return Engine(step)


def test_non_finite_loss_stops_and_names_iteration(caplog):
    engine = _engine_with_losses([1.0, 0.5, float("nan"), 0.2])
    StopOnNonFiniteLoss().attach(engine)
    with pytest.raises(NonFiniteLossError, match=r"iteration 3 \(epoch 1\)"):
        engine.run(range(4), max_epochs=1)
    assert engine.state.iteration == 3


def test_finite_losses_run_through():
    engine = _engine_with_losses([1.0, 0.5, 0.2, 0.1])
    StopOnNonFiniteLoss().attach(engine)
    engine.run(range(4), max_epochs=1)
    assert engine.state.iteration == 4


class _LossWithParts:
    parts = {}


def test_training_scalars_reach_one_event_file(tmp_path):
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([parameter], lr=0.5)
    loss = _LossWithParts()
    writer = SummaryWriter(log_dir=str(tmp_path))

    def step(engine, batch):
        loss.parts = {"loss_global": torch.tensor(float(engine.state.iteration)), "temperature_global": torch.tensor(0.07)}
        optimizer.param_groups[0]["lr"] = 0.5 / engine.state.iteration
        return {"loss": torch.tensor(1.0)}

    engine = Engine(step)
    TrainingScalarsHandler(writer, loss, optimizer).attach(engine)
    engine.run(range(3), max_epochs=1)
    writer.close()
    files = list(tmp_path.glob("events.out.tfevents.*"))
    assert len(files) == 1
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert [e.value for e in events.Scalars("train/loss_global")] == [1.0, 2.0, 3.0]
    assert [round(e.value, 4) for e in events.Scalars("train/lr")] == [0.5, 0.25, 0.1667]
    assert events.Scalars("train/temperature_global")[0].value == pytest.approx(0.07)


def test_last_checkpoint_picks_highest_epoch(tmp_path):
    assert last_checkpoint(tmp_path) is None
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        last_checkpoint(tmp_path, required=True)
    for epoch in (2, 10, 9):
        (tmp_path / f"checkpoint_epoch={epoch}.pt").write_bytes(b"")
    assert last_checkpoint(tmp_path).endswith("checkpoint_epoch=10.pt")


def _collect(kind, batches):
    def step(engine, batch):
        return {"pred": batch["rows"][:, None].repeat(1, 3)}

    engine = Engine(step)
    collector = EmbeddingCollector(kind)
    collector.attach(engine)
    if batches:  # MONAI evaluators skip an empty data loader; ignite refuses one
        engine.run(batches, max_epochs=1)
    return collector


def test_embeddings_keep_order_item_indices_and_names(tmp_path):
    image_batches = []
    for start in (0, 2):
        image = MetaTensor(torch.zeros(2, 1, 4, 4), meta={"filename_or_obj": [f"img{start}.png", f"img{start + 1}.png"]})
        rows = torch.arange(start, start + 2, dtype=torch.float32)
        image_batches.append({"image": image, "rows": rows, "item_index": torch.tensor([start, start + 1]) * 2})
    report_batches = [{"rows": -torch.tensor([5.0, 6.0]), "item_index": torch.tensor([1, 2])}]
    output = tmp_path / "out" / "embeddings.npz"
    write_embeddings(output, _collect("image", image_batches), _collect("report", report_batches))
    saved = np.load(output)
    assert sorted(saved.files) == ["image", "image_embedding", "image_item", "report_embedding", "report_item"]
    assert saved["image"].tolist() == ["img0.png", "img1.png", "img2.png", "img3.png"]
    np.testing.assert_array_equal(saved["image_embedding"][:, 0], [0, 1, 2, 3])
    np.testing.assert_array_equal(saved["image_item"], [0, 2, 4, 6])
    np.testing.assert_array_equal(saved["report_embedding"][:, 0], [-5, -6])
    np.testing.assert_array_equal(saved["report_item"], [1, 2])
    assert sorted(p.name for p in output.parent.iterdir()) == ["embeddings.npz"]


def test_embeddings_of_one_kind_only_and_of_none(tmp_path):
    reports = _collect("report", [{"rows": torch.tensor([1.0]), "item_index": torch.tensor([0])}])
    output = write_embeddings(tmp_path / "reports.npz", _collect("image", []), reports)
    assert sorted(np.load(output).files) == ["report_embedding", "report_item"]
    with pytest.raises(ValueError, match="nothing to write"):
        write_embeddings(tmp_path / "none.npz", _collect("image", []))
    assert not (tmp_path / "none.npz").exists()
