import csv
import json

import pytest
from dataset_layouts import CHEXPERT_HEADER, chexpert_row, chexpert_train_rows, write_chexpert_csv

from reclf_monai.data.errors import DataError
from reclf_monai.data.preparation.chexpert import (
    COMPETITION_CLASSES,
    OBSERVATIONS,
    prepare_chexpert,
    sample_five_by_200,
)
from reclf_monai.data.preparation.tables import read_table


@pytest.fixture
def chexpert(tmp_path):
    root = tmp_path / "CheXpert-v1.0-small"
    root.mkdir()
    valid = [
        chexpert_row("CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg", Edema="1.0", Cardiomegaly="0.0"),
        chexpert_row("CheXpert-v1.0-small/valid/patient64541/study1/view2_lateral.jpg", "Lateral", Edema="1.0"),
        chexpert_row("CheXpert-v1.0-small/valid/patient64542/study1/view1_frontal.jpg", Atelectasis="0.0"),
    ]
    write_chexpert_csv(root / "train.csv", chexpert_train_rows())
    write_chexpert_csv(root / "valid.csv", valid)
    for entry in [*chexpert_train_rows(), *valid]:
        image = root / entry[0].split("/", 1)[1]
        image.parent.mkdir(parents=True, exist_ok=True)
        image.write_bytes(b"")
    return root


def relative(item):
    return item["image"].split("CheXpert-v1.0-small/", 1)[1]


def patient(item):
    return relative(item).split("/")[1]


def run(chexpert, tmp_path, **options):
    options = {"per_class": 2, "validation_size": 5, **options}
    report = prepare_chexpert(chexpert, tmp_path / "out", **options)
    classification = json.loads((tmp_path / "out" / "chexpert_classification.json").read_text())
    five = json.loads((tmp_path / "out" / "chexpert_5x200.json").read_text())
    return report, classification, five


def test_five_by_200_rules(chexpert, tmp_path):
    report, classification, five = run(chexpert, tmp_path)
    assert five["class_names"] == list(COMPETITION_CLASSES)
    assert [item["target"] for item in five["test"]] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    labels = {r["Path"].split("/", 1)[1]: r for r in read_table(chexpert / "train.csv", CHEXPERT_HEADER)}
    for item in five["test"]:
        source = labels[relative(item)]
        assert source["Frontal/Lateral"] == "Frontal"
        positives = [name for name in OBSERVATIONS if source[name] == "1.0" and name != "No Finding"]
        assert positives == [COMPETITION_CLASSES[item["target"]]]
        assert all(source[name] in ("", "0.0") for name in OBSERVATIONS if name not in positives + ["No Finding"])
    with (tmp_path / "out" / "chexpert_5x200_ids.csv").open() as handle:
        ids = list(csv.DictReader(handle))
    assert [(r["Path"].split("/", 1)[1], COMPETITION_CLASSES.index(r["class"])) for r in ids] == [
        (relative(item), item["target"]) for item in five["test"]
    ]
    assert report.counts["five_by_200"] == 10


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_patient_is_in_two_splits(chexpert, tmp_path, seed):
    report, classification, five = run(chexpert, tmp_path, seed=seed)
    patients = {name: {patient(item) for item in classification[name]} for name in ("training", "validation", "test")}
    patients["5x200"] = {patient(item) for item in five["test"]}
    names = sorted(patients)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            assert not patients[first] & patients[second], (first, second)
    # Every frontal image of train.csv is in 5x200, training or validation, or counted as left out
    # because its patient has a 5x200 image (here: the later study of each 5x200 patient).
    frontal_train = {r["Path"].split("/", 1)[1] for r in read_table(chexpert / "train.csv", CHEXPERT_HEADER)
                     if r["Frontal/Lateral"] == "Frontal"}  # fmt: skip
    written = {relative(item) for item in [*five["test"], *classification["training"], *classification["validation"]]}
    left_out = frontal_train - written
    assert {path.split("/")[1] for path in left_out} == patients["5x200"]
    assert all("/study2/" in path for path in left_out)
    counts = report.counts
    assert counts["five_by_200_patients"] == 10 and counts["five_by_200_patient_images_left_out"] == len(left_out) == 10
    assert counts["training_patients"] == len(patients["training"])
    assert counts["validation_patients"] == len(patients["validation"])
    assert len(written) == len(frontal_train) - len(left_out)


def test_five_by_200_is_deterministic_with_the_seed(chexpert, tmp_path):
    first = run(chexpert, tmp_path / "a")[2]["test"]
    again = run(chexpert, tmp_path / "b")[2]["test"]
    other = run(chexpert, tmp_path / "c", seed=1)[2]["test"]
    assert [relative(i) for i in first] == [relative(i) for i in again]
    assert [relative(i) for i in first] != [relative(i) for i in other]


def test_sample_rules(chexpert):
    rows = read_table(chexpert / "train.csv", CHEXPERT_HEADER)
    # One more clean candidate for the three classes without a loose-rule-only candidate.
    for name in ("Atelectasis", "Edema", "Pleural Effusion"):
        clean = next(r for r in rows if r[name] == "1.0")
        rows.append({**clean, "Path": clean["Path"].replace("view1", "view9")})
    with pytest.raises(DataError, match="only 6 frontal images have Cardiomegaly"):
        sample_five_by_200(rows, chexpert / "train.csv", per_class=7, rule="mgca")
    loose = sample_five_by_200(rows, chexpert / "train.csv", per_class=7, rule="competition")
    assert any(r["Support Devices"] == "1.0" for r, name in loose if name == "Cardiomegaly")
    assert any(r["Lung Opacity"] == "-1.0" for r, name in loose if name == "Consolidation")
    assert not any(r["Atelectasis"] == "-1.0" for r, _ in loose)


@pytest.mark.parametrize(
    "policy, expected",
    [("u-ones-ae", [1.0, 0.0, 0.0, 1.0, 0.0]), ("gloria-mgca", [1.0, 0.0, 0.0, 1.0, 1.0]),
     ("u-zeros", [0.0] * 5), ("u-ones", [1.0] * 5)],
)  # fmt: skip
def test_uncertain_label_policy(chexpert, tmp_path, policy, expected):
    _, classification, _ = run(chexpert, tmp_path, uncertain=policy)
    assert classification["uncertain_policy"] == policy
    items = {relative(i): i["target"] for split in ("training", "validation") for i in classification[split]}
    assert items["train/patient00036/study1/view1_frontal.jpg"] == expected  # the all-uncertain row
    assert items["train/patient00037/study1/view1_frontal.jpg"] == [0.0] * 5  # blank -> 0


def test_official_valid_is_the_test_split_and_views(chexpert, tmp_path):
    _, classification, _ = run(chexpert, tmp_path)
    assert [relative(i) for i in classification["test"]] == [
        "valid/patient64541/study1/view1_frontal.jpg", "valid/patient64542/study1/view1_frontal.jpg"]
    assert classification["test"][0]["target"] == [0.0, 0.0, 0.0, 1.0, 0.0]
    assert classification["class_names"] == list(COMPETITION_CLASSES)
    assert len(run(chexpert, tmp_path, frontal_only=False)[1]["test"]) == 3


@pytest.mark.parametrize("frontal_only", [True, False])
def test_validation_has_exactly_the_asked_number_of_images_of_the_kept_views(chexpert, tmp_path, frontal_only):
    for seed in range(6):  # laterals are drawn with some seeds when the draw comes before the view filter
        report, classification, _ = run(chexpert, tmp_path / str(seed), validation_size=3, seed=seed,
                                         frontal_only=frontal_only)  # fmt: skip
        assert len(classification["validation"]) == report.counts["validation"] == 3
        if frontal_only:
            assert all("_frontal.jpg" in item["image"] for item in classification["validation"])
    with pytest.raises(DataError, match="too few for 500 validation images"):
        run(chexpert, tmp_path, validation_size=500)


def test_path_without_patient_and_test_patient_in_training_are_errors(chexpert, tmp_path):
    rows = chexpert_train_rows()
    rows[0][0] = "CheXpert-v1.0-small/train/study1/view1_frontal.jpg"
    write_chexpert_csv(chexpert / "train.csv", rows)
    with pytest.raises(DataError, match=r"train.csv: row with Path CheXpert-v1.0-small/train/study1/view1_frontal.jpg: "
                                        r"no patientNNNNN folder"):  # fmt: skip
        run(chexpert, tmp_path)
    rows = chexpert_train_rows()
    rows[-1][0] = "CheXpert-v1.0-small/train/patient64541/study1/view1_frontal.jpg"
    write_chexpert_csv(chexpert / "train.csv", rows)
    with pytest.raises(DataError, match=r"valid.csv: patient patient64541 also has images in .*train.csv"):
        run(chexpert, tmp_path)


def test_missing_column_and_bad_value(chexpert, tmp_path):
    rows = chexpert_train_rows()
    write_chexpert_csv(
        chexpert / "train.csv", [r[:3] + r[4:] for r in rows], [h for h in CHEXPERT_HEADER if h != "Frontal/Lateral"]
    )
    with pytest.raises(DataError, match=r"train.csv: missing column\(s\) \['Frontal/Lateral'\]"):
        run(chexpert, tmp_path)
    rows[0][CHEXPERT_HEADER.index("Edema")] = "maybe"
    write_chexpert_csv(chexpert / "train.csv", rows)
    with pytest.raises(DataError, match="Edema is 'maybe'"):
        run(chexpert, tmp_path)
