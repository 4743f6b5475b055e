"""Classification pieces against hand-computed cases: targets, the task record, AUC, the CSV writer."""

import csv
import logging
import math

import pytest
import torch
from ignite.engine import Engine
from monai.data import MetaTensor

from reclf_monai.data import ClassificationTargetd, DataError, classification_target, datalist_class_names
from reclf_monai.handlers import ProbabilityWriter
from reclf_monai.metrics import ClassificationAUC, key_classification_metric, per_class_auc
from reclf_monai.networks import ClassificationTask


def test_multi_label_targets_and_binary_index():
    assert classification_target([0.0, 1.0, 1.0], "multi_label", 3).tolist() == [0.0, 1.0, 1.0]
    assert classification_target([0, 1, 1], "multi_label", 3).dtype == torch.float32
    # RSNA Pneumonia stores a 0/1 index: with one class it is that class's flag
    assert classification_target(1, "multi_label", 1).tolist() == [1.0]
    with pytest.raises(DataError, match=r"a\.png: multi-label target must be 3 values of 0 or 1, got \[0, 1\]"):
        classification_target([0, 1], "multi_label", 3, "a.png")
    with pytest.raises(DataError, match="must be 2 values of 0 or 1"):
        classification_target([0.0, 0.5], "multi_label", 2)
    with pytest.raises(DataError, match="must be 2 values"):
        classification_target(1, "multi_label", 2)  # an index is no multi-hot list of two classes


def test_multi_class_targets():
    target = classification_target(2, "multi_class", 3)
    assert target.dtype == torch.int64 and int(target) == 2
    for bad in (3, -1, [0, 0, 1], 1.5, True):
        with pytest.raises(DataError, match="b.png"):
            classification_target(bad, "multi_class", 3, "b.png")
    with pytest.raises(ValueError, match="--task must be one of multi_label, multi_class, got 'multilabel'"):
        classification_target(1, "multilabel", 3)


def test_target_transform_names_the_image_and_the_label_key():
    image = MetaTensor(torch.zeros(1, 4, 4), meta={"filename_or_obj": "/data/x.png"})
    transform = ClassificationTargetd("target", "multi_label", 2)
    assert transform({"image": image, "target": [1, 0]})["label"].tolist() == [1.0, 0.0]
    with pytest.raises(DataError, match=r"/data/x\.png: item has no 'finding' \(the label key; set --label_key\)"):
        ClassificationTargetd("finding", "multi_label", 2)({"image": image, "target": [1, 0]})


def test_class_names_come_from_the_datalist(tmp_path):
    datalist = tmp_path / "d.json"
    datalist.write_text('{"class_names": ["a", "b"], "training": []}')
    assert datalist_class_names(datalist) == ["a", "b"]
    datalist.write_text('{"training": []}')
    with pytest.raises(DataError, match=r"d\.json: no top-level 'class_names' list"):
        datalist_class_names(datalist)


def test_task_record_loss_activation_and_checkpoint(tmp_path):
    task = ClassificationTask("multi_class", ["normal", "pneumonia", "COVID-19"])
    assert isinstance(task.loss(), torch.nn.CrossEntropyLoss) and not task.multi_label
    assert isinstance(ClassificationTask("multi_label", ["a"]).loss(), torch.nn.BCEWithLogitsLoss)
    logits = torch.tensor([[0.0, math.log(3.0), 0.0]])
    torch.testing.assert_close(task.probabilities(logits), torch.tensor([[0.2, 0.6, 0.2]]))
    torch.testing.assert_close(task.activation()({"pred": logits[0]})["pred"], torch.tensor([0.2, 0.6, 0.2]))
    path = tmp_path / "model.pt"
    torch.save({"model": {}, "network_settings": {"num_classes": 3}, "classification": task.state_dict()}, path)
    loaded = ClassificationTask.from_checkpoint(path)
    assert (loaded.task, loaded.class_names, loaded.num_classes) == ("multi_class", task.class_names, 3)
    with pytest.raises(DataError, match=r"test\.json: class_names \['normal', 'COVID-19'\] differ from those the classifier in .*model\.pt"):
        loaded.check_class_names(["normal", "COVID-19"], tmp_path / "test.json")
    torch.save({"model": {}, "network_settings": {"aggregation": "reclf"}}, path)
    with pytest.raises(DataError, match=r"model\.pt: not a classification checkpoint: no 'classification' entry"):
        ClassificationTask.from_checkpoint(path)


def test_auc_per_class_and_macro_by_hand(caplog):
    probabilities = torch.tensor([[0.9, 0.1, 0.5, 0.3], [0.8, 0.7, 0.5, 0.3], [0.3, 0.6, 0.5, 0.3], [0.1, 0.2, 0.5, 0.3]])
    targets = torch.tensor([[1, 0, 1, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 1, 1, 0]]).float()
    with caplog.at_level(logging.WARNING, logger="reclf.evaluate"):
        result = per_class_auc(probabilities, targets, ["a", "b", "tied", "absent"])
    # a: both positives above both negatives; b: positives 0.7, 0.2 against negatives 0.1, 0.6 ->
    # 3 of 4 pairs ordered; tied: one score for all -> 0.5; absent: no positive, left out
    assert result == {"auc/a": 1.0, "auc/b": 0.75, "auc/tied": 0.5, "auc": pytest.approx(2.25 / 3), "auc_classes": 3.0}
    assert "left out of the macro AUC: absent" in caplog.text
    assert math.isnan(per_class_auc(probabilities[:, 3:], targets[:, 3:], ["absent"])["auc"])


def _run_metric(metric, batches):
    engine = Engine(lambda engine, batch: batch)
    for name, value in metric.items():
        value.attach(engine, name)
    return engine.run(batches).metrics


def test_multi_class_auc_is_one_versus_rest_and_accuracy_is_the_key():
    task = ClassificationTask("multi_class", ["x", "y", "z"])
    auc = ClassificationAUC(task, prefix="val_")
    logits = torch.tensor([[3.0, 0.0, 0.0], [0.0, 2.0, 1.0], [0.0, 1.0, 2.0], [2.0, 0.0, 1.5]])
    labels = torch.tensor([0, 1, 1, 2])
    batches = [{"pred": logits[:2], "label": labels[:2]}, {"pred": logits[2:], "label": labels[2:]}]
    metrics = _run_metric({**key_classification_metric(auc), "auc": auc}, batches)
    assert metrics["val_acc"] == 0.5  # argmax 0, 1, 2, 0 against 0, 1, 1, 2
    # softmax columns: x 0.91, 0.09, 0.09, 0.57; y 0.05, 0.67, 0.24, 0.08; z 0.05, 0.24, 0.67, 0.35.
    # x: the positive (item 1) first; y: positives (items 2, 3) above both negatives; z: the
    # positive (item 4) above items 1 and 2, below item 3
    assert metrics["val_auc/x"] == 1.0 and metrics["val_auc/y"] == 1.0
    assert metrics["val_auc/z"] == pytest.approx(2 / 3)
    assert metrics["val_auc"] == pytest.approx((1 + 1 + 2 / 3) / 3)


def test_multi_label_key_metric_is_the_macro_auc():
    auc = ClassificationAUC(ClassificationTask("multi_label", ["a", "b"]), prefix="val_")
    key = key_classification_metric(auc)
    assert list(key) == ["val_auc"]
    batches = [{"pred": torch.tensor([[2.0, -1.0], [-2.0, 1.0], [0.0, 0.5]]), "label": torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])}]
    metrics = _run_metric({**key, "val_classification": auc}, batches)
    assert metrics["val_auc"] == 1.0 and metrics["val_auc_classes"] == 2.0


def test_probability_writer_one_quoted_row_per_item(tmp_path):
    writer = ProbabilityWriter(tmp_path / "out" / "p.csv", ["a", "b"])
    engine = Engine(lambda engine, batch: batch)
    writer.attach(engine)
    items = [
        {"image": MetaTensor(torch.zeros(1), meta={"filename_or_obj": "x,y.png"}), "pred": torch.tensor([0.25, 0.75])},
        {"image": MetaTensor(torch.zeros(1), meta={"filename_or_obj": "x,y.png"}), "pred": torch.tensor([0.5, 0.5])},
    ]
    engine.run([items[:1], items[1:]])
    with open(tmp_path / "out" / "p.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows == [["image", "a", "b"], ["x,y.png", "0.25", "0.75"], ["x,y.png", "0.5", "0.5"]]
    with pytest.raises(ValueError, match="3 probabilities for 2 classes"):
        engine.run([[{"image": items[0]["image"], "pred": torch.ones(3)}]])
