import csv
import json

import pytest

from reclf_monai.data.errors import DataError
from reclf_monai.data.preparation.chexpert import (
    COMPETITION_CLASSES,
    OBSERVATIONS,
    prepare_chexpert,
    sample_five_by_200,
)
from reclf_monai.data.preparation.tables import read_table

HEADER = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *OBSERVATIONS]
CANDIDATES_PER_CLASS = 6


def row(path, view="Frontal", **labels):
    values = {name.replace(" ", "_"): value for name, value in labels.items()}
    return [path, "Female", "60", view, "AP" if view == "Frontal" else "",
            *(values.get(name.replace(" ", "_"), "") for name in OBSERVATIONS)]  # fmt: skip


def train_rows():
    rows, patient = [], 0

    def path(view="frontal"):
        nonlocal patient
        patient += 1
        return f"CheXpert-v1.0-small/train/patient{patient:05d}/study1/view1_{view}.jpg"

    for name in COMPETITION_CLASSES:  # eligible for 5x200: the only positive, others 0.0 or blank
        for i in range(CANDIDATES_PER_CLASS):
            rows.append(row(path(), **{name.replace(" ", "_"): "1.0", "No_Finding": "" if i % 2 else "0.0"}))
    rows.append(row(path(), Atelectasis="1.0", Edema="1.0"))  # two positives
    rows.append(row(path(), Cardiomegaly="1.0", Support_Devices="1.0"))  # eligible only by the loose rule
    rows.append(row(path(), Consolidation="1.0", Lung_Opacity="-1.0"))  # uncertain other observation
    rows.append(row(path(), Pleural_Effusion="1.0", Atelectasis="-1.0"))  # uncertain competition class
    rows.append(row(path("lateral"), "Lateral", Edema="1.0"))  # lateral view
    rows.append(row(path(), Atelectasis="-1.0", Cardiomegaly="-1.0", Consolidation="-1.0", Edema="-1.0",
                    Pleural_Effusion="-1.0"))  # all uncertain  # fmt: skip
    for _ in range(12):
        rows.append(row(path(), No_Finding="1.0"))
        rows.append(row(path("lateral"), "Lateral", No_Finding="1.0"))
    return rows


def write_csv(path, rows, header=HEADER):
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


@pytest.fixture
def chexpert(tmp_path):
    root = tmp_path / "CheXpert-v1.0-small"
    root.mkdir()
    valid = [
        row("CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg", Edema="1.0", Cardiomegaly="0.0"),
        row("CheXpert-v1.0-small/valid/patient64541/study1/view2_lateral.jpg", "Lateral", Edema="1.0"),
        row("CheXpert-v1.0-small/valid/patient64542/study1/view1_frontal.jpg", Atelectasis="0.0"),
    ]
    write_csv(root / "train.csv", train_rows())
    write_csv(root / "valid.csv", valid)
    for entry in [*train_rows(), *valid]:
        image = root / entry[0].split("/", 1)[1]
        image.parent.mkdir(parents=True, exist_ok=True)
        image.write_bytes(b"")
    return root


def relative(item):
    return item["image"].split("CheXpert-v1.0-small/", 1)[1]


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
    labels = {r["Path"].split("/", 1)[1]: r for r in read_table(chexpert / "train.csv", HEADER)}
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


def test_five_by_200_is_excluded_from_training_and_validation(chexpert, tmp_path):
    _, classification, five = run(chexpert, tmp_path)
    evaluation = {relative(item) for item in five["test"]}
    training = {relative(item) for item in classification["training"]}
    validation = {relative(item) for item in classification["validation"]}
    assert not evaluation & training and not evaluation & validation and not training & validation
    frontal_train = {r["Path"].split("/", 1)[1] for r in read_table(chexpert / "train.csv", HEADER)
                     if r["Frontal/Lateral"] == "Frontal"}  # fmt: skip
    assert evaluation | training | validation == frontal_train


def test_five_by_200_is_deterministic_with_the_seed(chexpert, tmp_path):
    first = run(chexpert, tmp_path / "a")[2]["test"]
    again = run(chexpert, tmp_path / "b")[2]["test"]
    other = run(chexpert, tmp_path / "c", seed=1)[2]["test"]
    assert [relative(i) for i in first] == [relative(i) for i in again]
    assert [relative(i) for i in first] != [relative(i) for i in other]


def test_sample_rules(chexpert):
    rows = read_table(chexpert / "train.csv", HEADER)
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


def test_validation_draw_size_and_refusal(chexpert, tmp_path):
    report, classification, _ = run(chexpert, tmp_path, frontal_only=False)
    assert len(classification["validation"]) == 5
    with pytest.raises(DataError, match="too few for 500 validation images"):
        run(chexpert, tmp_path, validation_size=500)


def test_missing_column_and_bad_value(chexpert, tmp_path):
    rows = train_rows()
    write_csv(chexpert / "train.csv", [r[:3] + r[4:] for r in rows], [h for h in HEADER if h != "Frontal/Lateral"])
    with pytest.raises(DataError, match=r"train.csv: missing column\(s\) \['Frontal/Lateral'\]"):
        run(chexpert, tmp_path)
    rows[0][HEADER.index("Edema")] = "maybe"
    write_csv(chexpert / "train.csv", rows)
    with pytest.raises(DataError, match="Edema is 'maybe'"):
        run(chexpert, tmp_path)
