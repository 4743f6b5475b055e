"""The small components the bundle configs name instead of `$` expressions: each does what the
expression it replaced did, and reads switches the way the bundle CLI hands them over."""

import json

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events
from ignite.metrics import Metric
from monai.data import CacheDataset, MetaTensor
from monai.transforms import Compose, RandFlipd, SelectItemsd
from PIL import Image

from reclf_monai.bundle_layout import BundleLayout
from reclf_monai.data import DataErrorCompose, chest_xray_transforms, image_or_split, keep_keys, save_mask_pngs, write_datalist
from reclf_monai.engines import Evaluator, Trainer, available_device
from reclf_monai.handlers import MetricsReport, MetricsReportHandler, image_metadata, loss_value
from reclf_monai.metrics import grounding_report, metric_entry
from reclf_monai.metrics.shortlist import check_shortlist_k
from reclf_monai.networks import ImageClassifier, trainable_parameters


def _completed_engine(metrics, details=None):
    engine = Engine(lambda engine, batch: None)
    engine.state.metrics = dict(metrics)
    engine.state.metric_details = details or {}
    return engine


def test_a_shared_report_holds_the_sections_of_this_run_only(tmp_path):
    path = tmp_path / "eval" / "metrics.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"stale": {"x": 1.0}}))
    report = MetricsReport(path)
    validation = MetricsReportHandler(report, section="validation")
    zero_shot = MetricsReportHandler(report, section="zero_shot", extra_sections={"evaluated": {"images": 3}})
    validation(_completed_engine({"R@1": torch.tensor(0.25), "per_class": {"a": 1}}))
    assert json.loads(path.read_text()) == {"validation": {"R@1": 0.25}}
    zero_shot(_completed_engine({"auc": 0.5}))
    assert json.loads(path.read_text()) == {"validation": {"R@1": 0.25}, "zero_shot": {"auc": 0.5}, "evaluated": {"images": 3.0}}


def test_the_handler_writes_when_its_engine_completes(tmp_path):
    engine = Engine(lambda engine, batch: None)
    MetricsReportHandler(tmp_path / "metrics.json", section="test").attach(engine)

    @engine.on(Events.EPOCH_COMPLETED)
    def set_metric(engine):
        engine.state.metrics["auc"] = 0.75

    engine.run([0, 1], max_epochs=1)
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"test": {"auc": 0.75}}


def test_grounding_summary_comes_from_the_engines_per_item_details(tmp_path):
    items = [{"group": "nodule", "region_fraction": 0.1}, {"group": "effusion", "region_fraction": 0.3}]
    details = {"pointing_game": torch.tensor([[1.0], [0.0]])}
    handler = MetricsReportHandler(tmp_path / "m.json", summary=lambda engine: grounding_report(engine, items))
    handler(_completed_engine({}, details))
    report = json.loads((tmp_path / "m.json").read_text())
    assert report["all"]["pointing_game"] == 0.5 and report["nodule"]["pointing_game"] == 1.0
    assert report["effusion"]["region_fraction"] == pytest.approx(0.3)


def test_a_report_handler_takes_a_section_or_a_summary(tmp_path):
    with pytest.raises(ValueError, match="section"):
        MetricsReportHandler(tmp_path / "m.json")
    with pytest.raises(ValueError, match="section"):
        MetricsReportHandler(tmp_path / "m.json", section="test", summary=lambda engine: {})


def test_image_metadata_and_loss_value():
    image = MetaTensor(torch.zeros(1, 2, 2), meta={"filename_or_obj": "a.png"})
    assert image_metadata([{"image": image}])[0]["filename_or_obj"] == "a.png"
    assert loss_value({"loss": torch.tensor(1.5), "pred": torch.zeros(2)}) == 1.5


class _Figures(Metric):
    def reset(self):
        pass

    def update(self, output):
        pass

    def compute(self):
        return {"auc": 0.75, "acc": 0.5}


def test_metric_entry_picks_one_figure_and_names_the_keys_when_missing():
    engine = Engine(lambda engine, batch: None)
    metric_entry(_Figures(), "auc").attach(engine, "zeroshot_auc")
    engine.run([0], max_epochs=1)
    assert engine.state.metrics["zeroshot_auc"] == 0.75
    engine = Engine(lambda engine, batch: None)
    metric_entry(_Figures(), "P_mean").attach(engine, "missing")
    with pytest.raises(KeyError, match=r"\['acc', 'auc'\], not 'P_mean'"):
        engine.run([0], max_epochs=1)


@pytest.mark.parametrize("word, expected", [("false", False), ("off", False), (False, False)])
def test_engines_read_amp_as_the_cli_gives_it(word, expected):
    network = torch.nn.Linear(2, 1)
    loader = [{"image": torch.zeros(1, 2), "label": torch.zeros(1, 1)}]
    trainer = Trainer(device="cpu", max_epochs=1, train_data_loader=loader, network=network,
                      optimizer=torch.optim.SGD(network.parameters(), lr=0.1), loss_function=torch.nn.MSELoss(), amp=word)
    evaluator = Evaluator(device="cpu", val_data_loader=loader, network=network, amp=word)
    assert trainer.amp is expected and evaluator.amp is expected
    with pytest.raises(ValueError, match="--amp must be true or false"):
        Evaluator(device="cpu", val_data_loader=loader, network=network, amp="maybe")


def test_available_device_is_the_cpu_without_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert available_device() == torch.device("cpu")
    assert available_device(distributed=True) == torch.device("cpu")


def test_nested_composes_and_lists_become_one_chain_that_caches():
    chain = DataErrorCompose([chest_xray_transforms(image_size=32), [SelectItemsd(keys=["image"])], Compose([RandFlipd(keys="image", prob=0.5)])])
    names = [type(step).__name__ for step in chain.transforms]
    assert names == ["LoadChestXrayd", "ScaleIntensityd", "Resized", "SpatialPadd", "EnsureTyped", "SelectItemsd", "RandFlipd"]
    # CacheDataset caches up to the first random step, so the deterministic steps are cached
    assert chain.get_index_of_first(lambda step: isinstance(step, RandFlipd)) == 6
    dataset = CacheDataset([], chain, progress=False)
    assert dataset.transform.get_index_of_first(lambda step: isinstance(step, Compose)) is None


def test_items_for_inference(tmp_path):
    write_datalist(tmp_path / "datalist.json", {"test": [{"image": "a.png", "label": "a_mask.png"}]})
    assert image_or_split("x.png", tmp_path / "datalist.json", "test") == [{"image": "x.png"}]
    items = image_or_split(None, tmp_path / "datalist.json", "test")
    assert keep_keys(items, ["image"]) == [{"image": str(tmp_path / "a.png")}]


def test_mask_pngs_are_uint8_at_the_given_size(tmp_path):
    mask = MetaTensor(torch.zeros(1, 3, 5), meta={"filename_or_obj": str(tmp_path / "case.png")})
    mask[0, 1, 4] = 1
    save_mask_pngs(tmp_path / "out")({"pred": mask})
    written = np.asarray(Image.open(tmp_path / "out" / "case_mask.png"))
    assert written.dtype == np.uint8 and written.shape == (3, 5) and written[1, 4] == 255 and written.sum() == 255


def test_bundle_layout_is_the_bundles_folders_and_the_demos_outputs():
    layout = BundleLayout("bundles/reclf_retrieval")
    assert layout.ckpt_dir == "bundles/reclf_retrieval/models"
    assert layout.output_dir == "bundles/reclf_retrieval/eval"
    assert layout.demo_dataset_dir == "bundles/reclf_retrieval/../../demo_output/iu_phantom"
    assert layout.demo_pretrained_checkpoint.endswith("../../demo_output/reclf_pretrain/models/model.pt")


def test_downstream_networks_read_their_switches_as_words():
    classifier = ImageClassifier(num_classes=2, pretrained_checkpoint="none", freeze_encoder="false", img_size=32)
    assert classifier.settings["freeze_encoder"] is False
    assert len(trainable_parameters(classifier)) == len(list(classifier.parameters()))
    frozen = ImageClassifier(num_classes=2, pretrained_checkpoint=None, freeze_encoder="true", img_size=32)
    assert [name for name, _ in frozen.named_parameters() if _.requires_grad] == ["head.weight", "head.bias"]
    assert len(trainable_parameters(frozen)) == 2


def test_shortlist_k_may_be_switched_off_by_word():
    assert check_shortlist_k("none") is None and check_shortlist_k("NULL") is None and check_shortlist_k(5) == 5
    with pytest.raises(ValueError, match="shortlist_k must be a whole number"):
        check_shortlist_k("5")


def test_prediction_loss_is_the_loss_of_the_prediction():
    from reclf_monai.handlers import prediction_loss

    transform = prediction_loss(lambda pred: pred.sum() * 2)
    value = transform({"pred": torch.ones(3, requires_grad=True)})
    assert value.item() == 6.0 and not value.requires_grad
