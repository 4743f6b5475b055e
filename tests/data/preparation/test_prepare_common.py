import gzip

import numpy as np
import pytest
from PIL import Image
from repository import load_script

from reclf_monai.data.errors import DataError
from reclf_monai.data.preparation.files import find_missing, index_by_stem, relative_path
from reclf_monai.data.preparation.masks import boxes_to_mask, write_mask
from reclf_monai.data.preparation.splits import draw_groups, holdout_split, sample_positions, train_validation_split
from reclf_monai.data.preparation.tables import locate_table, read_table


def test_read_table_strips_names_and_values_and_reads_gzip(tmp_path):
    path = tmp_path / "t.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("ImageId, EncodedPixels,Other\nA, -1,x\nB, 1 2\n")
    assert locate_table(tmp_path, "t.csv") == path
    rows = read_table(path, ["ImageId", "EncodedPixels"], optional=["Absent"])
    assert rows == [
        {"ImageId": "A", "EncodedPixels": "-1", "Absent": ""},
        {"ImageId": "B", "EncodedPixels": "1 2", "Absent": ""},
    ]


def test_read_table_names_file_and_missing_column(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("patientId,x,y\n")
    with pytest.raises(DataError, match=r"missing column\(s\) \['Target'\]") as info:
        read_table(path, ["patientId", "Target"])
    assert str(path) in str(info.value)


def test_missing_table_names_the_file(tmp_path):
    with pytest.raises(DataError, match="file not found") as info:
        locate_table(tmp_path, "mimic-cxr-2.0.0-split.csv")
    assert "mimic-cxr-2.0.0-split.csv" in str(info.value)


def test_find_missing_policy(tmp_path):
    present, absent = tmp_path / "a.png", tmp_path / "b.png"
    present.write_bytes(b"x")
    assert find_missing([present], "list.csv", skip_missing=False) == set()
    with pytest.raises(DataError, match="--skip-missing-images") as info:
        find_missing([present, absent], "list.csv", skip_missing=False)
    assert str(absent) in str(info.value)
    assert find_missing([present, absent], "list.csv", skip_missing=True) == {absent}
    with pytest.raises(DataError, match="neither is any other"):
        find_missing([absent], "list.csv", skip_missing=True)


@pytest.mark.parametrize("absent, large", [(2, False), (3, True)])
def test_find_missing_warns_louder_above_a_small_share(tmp_path, caplog, absent, large):
    paths = [tmp_path / f"{i}.png" for i in range(200)]
    for path in paths[absent:]:
        path.write_bytes(b"x")
    assert find_missing(paths, "list.txt", skip_missing=True) == set(paths[:absent])
    (record,) = caplog.records
    assert record.levelname == "WARNING"
    assert f"{absent} of 200 images listed in list.txt are missing" in record.getMessage()
    assert ("(1.5%, more than 1%)" in record.getMessage()) is large


def test_index_by_stem_is_recursive_and_refuses_duplicates(tmp_path):
    (tmp_path / "x" / "y").mkdir(parents=True)
    (tmp_path / "x" / "y" / "1.2.3.dcm").write_bytes(b"")
    (tmp_path / "4.5.dcm").write_bytes(b"")
    (tmp_path / "notes.txt").write_bytes(b"")
    assert index_by_stem(tmp_path, ".dcm") == {"1.2.3": tmp_path / "x" / "y" / "1.2.3.dcm", "4.5": tmp_path / "4.5.dcm"}
    (tmp_path / "x" / "4.5.dcm").write_bytes(b"")
    with pytest.raises(DataError, match="same name"):
        index_by_stem(tmp_path, ".dcm")


def test_relative_path_uses_forward_slashes(tmp_path):
    assert relative_path(tmp_path / "data" / "a" / "b.png", tmp_path / "out") == "../data/a/b.png"


def test_holdout_split_reproduces_the_published_rsna_counts():
    ids = [f"{i:05d}" for i in range(26684)]
    for holdout, expected in ((0.15, (18678, 4003, 4003)), (0.2, (16010, 5337, 5337))):
        split = holdout_split(ids, holdout, seed=0)
        counts = tuple(list(split.values()).count(name) for name in ("training", "validation", "test"))
        assert counts == expected
    assert holdout_split(ids[:100], 0.15, seed=0) == holdout_split(ids[:100], 0.15, seed=0)
    assert holdout_split(ids[:100], 0.15, seed=0) != holdout_split(ids[:100], 0.15, seed=1)


def test_sample_positions_match_numpy_legacy_draw():
    np.random.seed(0)
    expected = np.random.choice(50, size=7, replace=False).tolist()
    assert sample_positions(50, 7, seed=0) == expected
    with pytest.raises(ValueError):
        sample_positions(3, 4, seed=0)


def test_train_validation_split_is_a_partition():
    training, validation = train_validation_split(101, 0.2, seed=0)
    assert len(validation) == 21 and len(training) == 80
    assert sorted(training + validation) == list(range(101))


def test_draw_groups_takes_whole_groups_to_exactly_the_size():
    item_groups = [f"p{i}" for i in range(30) for _ in range(i % 3 + 1)]  # groups of 1, 2 or 3 items
    for seed in range(5):
        chosen = draw_groups(item_groups, 10, seed)
        assert sum(group in chosen for group in item_groups) == 10
    assert draw_groups(item_groups, 10, seed=0) == draw_groups(item_groups, 10, seed=0)
    assert draw_groups(item_groups, 10, seed=0) != draw_groups(item_groups, 10, seed=1)
    assert draw_groups(item_groups, 0, seed=0) == set()
    with pytest.raises(ValueError, match="whole groups make 2 items, not 3"):
        draw_groups(["a", "a", "b", "b"], 3, seed=0)


def test_boxes_to_mask_covers_touched_pixels_and_clips():
    mask = boxes_to_mask([(1.5, 0.0, 2.0, 2.5), (6.0, 3.0, 10.0, 10.0)], (5, 8))
    expected = np.zeros((5, 8), dtype=bool)
    expected[0:3, 1:4] = True  # x 1.5..3.5 touches columns 1-3; y 0..2.5 touches rows 0-2
    expected[3:5, 6:8] = True  # clipped at the image edge
    np.testing.assert_array_equal(mask, expected)


def test_write_mask_is_8bit_0_255_rows_by_columns(tmp_path):
    mask = np.zeros((3, 5), dtype=bool)
    mask[0, 4] = True
    path = write_mask(tmp_path / "m" / "a.png", mask)
    with Image.open(path) as image:
        assert image.mode == "L" and image.size == (5, 3)
        array = np.asarray(image)
    assert array[0, 4] == 255 and array.sum() == 255


@pytest.mark.parametrize(
    "script, expected",
    [
        ("prepare_mimic_cxr", ["mimic-cxr-2.0.0-metadata.csv", "mimic-cxr-2.0.0-split.csv", "--sectioned-csv"]),
        ("prepare_chexpert", ["train.csv", "valid.csv", "--uncertain", "--per-class"]),
        ("prepare_rsna", ["stage_2_train_labels.csv", "stage_2_train_images"]),
        ("prepare_siim", ["train-rle.csv", "dicom-images-train", "--keep-all-negatives"]),
        ("prepare_covidx", ["train.txt", "test.txt", "COVID-19"]),
    ],
)
def test_help_says_what_is_expected_where(script, expected, capsys):
    with pytest.raises(SystemExit) as info:
        load_script(script).main(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for word in ["--root", "--output", *expected]:
        assert word in text


def test_script_reports_missing_input_as_an_error_naming_the_file(tmp_path, capsys):
    status = load_script("prepare_rsna").main(["--root", str(tmp_path), "--output", str(tmp_path / "out")])
    assert status == 2
    error = capsys.readouterr().err
    assert "stage_2_train_labels.csv" in error and "file not found" in error
