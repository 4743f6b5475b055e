import numpy as np
import pytest
import torch
from bundle_testing import images, texts
from ignite.engine import Engine
from monai.data import DataLoader, MetaTensor
from monai.engines import PrepareBatchExtraInput, SupervisedEvaluator
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tiny_models import ONE_LAYER_BERT
from torch.utils.tensorboard import SummaryWriter

from reclf_monai.data import TokenizeReportd
from reclf_monai.handlers import (
    EmbeddingCollector,
    StopOnNonFiniteLoss,
    TrainingScalarsHandler,
    WordHeatmapWriter,
    claim_checkpoint_folder,
    last_checkpoint,
    mask_overlay,
    segmentation_overlays,
    write_embeddings,
)
from reclf_monai.handlers.non_finite_loss import NonFiniteLossError
from reclf_monai.handlers.word_heatmaps import report_words, word_map
from reclf_monai.networks import ImageEncoder, RECLFModel, TextEncoder


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


def _earlier_run(folder):
    folder.mkdir(parents=True)
    for name in ("model.pt", "run_checkpoint_epoch=2.pt", "notes.txt"):
        (folder / name).write_bytes(b"earlier")
    return folder


@pytest.mark.parametrize("resume", [None, "false"])
def test_a_new_run_refuses_a_folder_with_earlier_checkpoints(tmp_path, resume):
    folder = _earlier_run(tmp_path / "models")
    with pytest.raises(FileExistsError) as error:
        claim_checkpoint_folder(folder, overwrite="false", resume=resume)
    message = str(error.value)
    assert message.startswith(f"{folder}: holds checkpoints of an earlier run (model.pt, run_checkpoint_epoch=2.pt)")
    assert ("--resume true" in message) == (resume is not None) and "--overwrite true" in message
    assert all((folder / name).read_bytes() == b"earlier" for name in ("model.pt", "run_checkpoint_epoch=2.pt"))


def test_resume_keeps_and_overwrite_deletes_earlier_checkpoints(tmp_path):
    folder = _earlier_run(tmp_path / "models")
    assert claim_checkpoint_folder(folder, overwrite=False, resume="true") == str(folder)
    assert (folder / "model.pt").is_file()
    claim_checkpoint_folder(folder, overwrite="true")
    assert sorted(path.name for path in folder.iterdir()) == ["notes.txt"]


def test_a_new_or_empty_folder_is_claimed(tmp_path):
    assert claim_checkpoint_folder(tmp_path / "new" / "models") == str(tmp_path / "new" / "models")
    assert (tmp_path / "new" / "models").is_dir()
    with pytest.raises(ValueError, match="--overwrite must be true or false"):
        claim_checkpoint_folder(_earlier_run(tmp_path / "models"), overwrite="maybe")


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



def test_image_embeddings_without_file_names_are_refused(tmp_path):
    nameless = _collect("image", [{"rows": torch.tensor([1.0, 2.0]), "item_index": torch.tensor([0, 1])}])
    with pytest.raises(ValueError, match="2 image embeddings but 0 file names"):
        write_embeddings(tmp_path / "images.npz", nameless)
    assert not (tmp_path / "images.npz").exists()

# ------------------------------------------------------------------ TensorBoard images

REPORTS = ["small left pleural effusion", "no pneumothorax"]


def _tiny_evaluator(aggregation: str) -> SupervisedEvaluator:
    """The pretraining bundle's validation evaluator in miniature: a tiny RECLF model, one batch of
    two random images with tokenised reports, no decollation."""
    torch.manual_seed(0)
    model = RECLFModel(
        ImageEncoder("resnet18", in_channels=1, embed_dim=16, img_size=64),
        TextEncoder(embed_dim=16, pretrained=False, config_overrides=ONE_LAYER_BERT, max_length=16),
        aggregation,
        match_dim=8,
        relation_heads=2,
    )
    tokenize = TokenizeReportd(max_length=16)
    items = [{**tokenize({"report": report}), "image": torch.rand(1, 64, 64)} for report in REPORTS]
    return SupervisedEvaluator(
        device=torch.device("cpu"),
        val_data_loader=DataLoader([{key: item[key] for key in ("image", "input_ids", "attention_mask")} for item in items], batch_size=2),
        network=model,
        prepare_batch=PrepareBatchExtraInput({"input_ids": "input_ids", "attention_mask": "attention_mask"}),
        decollate=False,
    )


def test_report_words_join_wordpieces_and_add_their_weights():
    tokenizer = TokenizeReportd().tokenizer
    encoded = tokenizer("left pleural effusion", return_tensors="pt")["input_ids"][0]
    assert tokenizer.convert_ids_to_tokens(encoded.tolist())[2:5] == ["pl", "##eur", "##al"]  # what the test relies on
    weights = torch.arange(len(encoded), dtype=torch.float32)
    word_mask = torch.ones(len(encoded), dtype=torch.bool)
    word_mask[[0, -1]] = False  # [CLS], [SEP]
    words = report_words(tokenizer, encoded, word_mask, weights)
    assert [word.text for word in words] == ["left", "pleural", "effusion"]
    assert [word.positions for word in words][:2] == [[1], [2, 3, 4]]
    assert words[1].weight == 2 + 3 + 4
    maps = torch.zeros(len(encoded), 2, 2)
    maps[2, 0, 0], maps[3, 1, 1] = 1.0, 1.0  # "pl" looks top-left, "##eur" bottom-right, "##al" nowhere
    torch.testing.assert_close(word_map(words[1], weights, maps), torch.tensor([[2.0, 0.0], [0.0, 3.0]]) / 9)


def test_word_heatmaps_reach_one_event_file_at_every_validation(tmp_path):
    evaluator = _tiny_evaluator("reclf")
    writer = SummaryWriter(log_dir=str(tmp_path))
    WordHeatmapWriter(writer, evaluator.network, TokenizeReportd().tokenizer, top_k=3).attach(evaluator)
    before = {name: tensor.clone() for name, tensor in evaluator.network.state_dict().items()}
    for epoch in (1, 2):  # as ValidationHandler runs it after training epochs 1 and 2
        evaluator.run(epoch)
    writer.close()
    # the network is the one being trained: in training mode again and untouched (batch-norm statistics included)
    assert evaluator.network.training
    assert all(torch.equal(tensor, before[name]) for name, tensor in evaluator.network.state_dict().items())
    [event_file] = tmp_path.glob("events.out.tfevents.*")
    pictures, captions = images(event_file), texts(event_file)
    ranks = [f"validation/word_heatmap/rank{rank}" for rank in (1, 2, 3)]
    assert set(pictures) == {*ranks, "validation/word_weights"}
    assert set(captions) == {"validation/word_heatmap/text_summary"}
    for tag in ranks:
        assert [step for step, _ in pictures[tag]] == [1, 2]
        assert all(picture.shape == (64, 64, 3) and picture.std() > 0 for _, picture in pictures[tag])
    first_epoch = [pictures[tag][0][1] for tag in ranks]
    assert not np.array_equal(first_epoch[0], first_epoch[1]) and not np.array_equal(first_epoch[1], first_epoch[2])
    # the caption names the first report's whole words, weights in descending order
    [(_, caption), _] = captions["validation/word_heatmap/text_summary"]
    rows = [line.split("|")[1:4] for line in caption.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [int(rank) for rank, _, _ in rows] == [1, 2, 3]
    assert {word.strip() for _, word, _ in rows} <= {"small", "left", "pleural", "effusion"}
    weights = [float(weight) for _, _, weight in rows]
    assert weights == sorted(weights, reverse=True) and 0 < sum(weights) <= 1.001
    assert "report: small left pleural effusion" in caption
    # the bar chart: one row per word (4 words), bars in two colours (ranked and the rest)
    [(_, chart), _] = pictures["validation/word_weights"]
    assert chart.shape[2] == 3 and chart.shape[0] >= 4 * 14
    colours = {tuple(pixel) for pixel in chart.reshape(-1, 3)}
    assert {(230, 120, 30), (120, 150, 190)} <= colours


def test_no_word_heatmaps_without_a_local_scorer(tmp_path, caplog):
    evaluator = _tiny_evaluator("global_only")
    writer = SummaryWriter(log_dir=str(tmp_path))
    WordHeatmapWriter(writer, evaluator.network, TokenizeReportd().tokenizer).attach(evaluator)
    evaluator.run(1)
    writer.close()
    assert "aggregation 'global_only' has no word-to-region attention" in caplog.text
    [event_file] = tmp_path.glob("events.out.tfevents.*")
    assert images(event_file) == {}


def test_mask_overlay_colours_hits_misses_and_false_positives():
    image = torch.full((1, 2, 2), 0.4)
    label = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])
    prediction = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    overlay = mask_overlay(image, label, prediction)
    assert overlay.shape == (3, 2, 2)
    np.testing.assert_allclose(overlay[:, 0, 0], [0.7, 0.7, 0.2])  # both: yellow over grey
    np.testing.assert_allclose(overlay[:, 0, 1], [0.2, 0.7, 0.2])  # missed: green
    np.testing.assert_allclose(overlay[:, 1, 0], [0.7, 0.2, 0.2])  # false positive: red
    np.testing.assert_allclose(overlay[:, 1, 1], [0.4, 0.4, 0.4])  # neither: the image
    [first] = segmentation_overlays([{"image": image, "label": label, "pred": prediction}])
    np.testing.assert_array_equal(first, overlay)
    with pytest.raises(ValueError, match=r"label \(2, 2\) and prediction \(3, 3\) differ"):
        mask_overlay(image, label, torch.zeros(1, 3, 3))
