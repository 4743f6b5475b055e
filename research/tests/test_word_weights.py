"""research/word_weights.py: words and their kinds, shares that add up, `mean` weighing every token alike."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from bundle_testing import write_tiny_pretraining_checkpoint

from research import word_weights

pytestmark = pytest.mark.research

ROW = re.compile(r"^\| (\w+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+|-) \|$", re.MULTILINE)


def test_word_pieces_join_the_word_before_them_and_special_tokens_are_skipped():
    tokens = ["[CLS]", "card", "##iom", "##ega", "##ly", ".", "no", "effusion", "[SEP]", "[PAD]"]
    is_word = [False, True, True, True, True, True, True, True, False, False]
    assert word_weights.words_of(tokens, is_word) == [("cardiomegaly", [1, 2, 3, 4]), (".", [5]), ("no", [6]), ("effusion", [7])]


def test_kinds_come_from_the_reports_own_mesh_terms_and_the_word_lists():
    findings = word_weights.finding_vocabulary(["Calcified Granuloma/lung/upper lobe/right", "Aorta, Thoracic/tortuous"])
    assert {"calcified", "granuloma", "lung", "upper", "aorta", "thoracic", "tortuous"} <= findings
    kinds = {word: word_weights.kind_of(word, findings) for word in ["granuloma", "right", "upper", "no", ".", "seen", "effusion"]}
    assert kinds == {"granuloma": "finding", "right": "location", "upper": "location", "no": "negation", ".": "punctuation", "seen": "other", "effusion": "other"}


def test_plural_report_words_match_singular_mesh_words_and_back():
    findings = word_weights.finding_vocabulary(["Pulmonary Artery/enlarged", "Opacity/lung/base/bilateral", "Nodules", "Atelectasis"])
    kinds = {word: word_weights.kind_of(word, findings) for word in ["arteries", "opacities", "nodule", "atelectasis", "lungs", "arterial", "glass"]}
    assert kinds == {"arteries": "finding", "opacities": "finding", "nodule": "finding", "atelectasis": "finding", "lungs": "finding", "arterial": "other", "glass": "other"}


def summary_tables(output: str) -> list[dict[str, tuple[float, float, str]]]:
    """kind -> (token share, weight share, lift) of each checkpoint's table, in order."""
    blocks = re.split(r"^.* \(aggregation \w+, \d+ reports\)$", output, flags=re.MULTILINE)[1:]
    return [{kind: (float(tokens), float(weight), lift) for kind, tokens, weight, lift in ROW.findall(block)} for block in blocks]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """An untrained `mean` model and a `reclf` one whose IRM and SRM output layers are random
    (both start at zero: uniform weights, no corrections)."""
    folder = tmp_path_factory.mktemp("word_weights")
    paths = {mode: write_tiny_pretraining_checkpoint(folder / f"{mode}.pt", aggregation=mode) for mode in ("mean", "reclf")}
    checkpoint = torch.load(paths["reclf"], weights_only=True)
    for name in ("local_matching.irm.importance.2.weight", "local_matching.srm.score_correction.weight"):
        checkpoint["model"][name] = torch.randn(checkpoint["model"][name].shape, generator=torch.Generator().manual_seed(0))
    torch.save(checkpoint, paths["reclf"])
    return paths


def test_shares_add_up_to_one_and_mean_weighs_every_token_alike(pretraining_corpus, checkpoints, capsys):
    word_weights.main(["--checkpoint", str(checkpoints["mean"]), str(checkpoints["reclf"]), "--datalist", str(pretraining_corpus / "datalist.json"), "--items", "12", "--show", "2"])
    output = capsys.readouterr().out
    mean, reclf = summary_tables(output)
    assert set(mean) == set(reclf) == set(word_weights.KINDS)
    for table in (mean, reclf):
        assert sum(tokens for tokens, _, _ in table.values()) == pytest.approx(1.0, abs=5e-3)  # rounded to 3 decimals, 5 rows
        assert sum(weight for _, weight, _ in table.values()) == pytest.approx(1.0, abs=5e-3)
    assert mean["finding"][0] > 0 and mean["other"][0] > 0  # the corpus' reports name their MeSH findings
    for tokens, weight, lift in mean.values():
        assert weight == pytest.approx(tokens, abs=1e-3)
        assert lift in ("-", "1.000")
    assert any(abs(weight - tokens) > 1e-3 for tokens, weight, _ in reclf.values())  # IRM does not weigh uniformly
    assert "(aggregation reclf, 12 reports)" in output
    ranges = re.findall(r"5th percentile ([\d.]+), median ([\d.]+), 95th percentile ([\d.]+)", output)
    assert ranges[0] == ("1.000", "1.000", "1.000") and float(ranges[1][2]) > float(ranges[1][0]) + 0.01
    corrections = re.findall(r"mean \|g\| ([\d.]+), standard deviation ([\d.]+); word scores before them: mean \|s\| ([\d.]+), standard deviation ([\d.]+)", output)
    assert len(corrections) == 1 and all(float(value) > 0 for value in corrections[0])  # reclf's SRM only: mean has none
    assert output.count("SRM attention lift") == 1
    lift_rows = re.findall(r"^\| (finding|location|negation|punctuation|other) \| ([-\d. |]+) \|$", output.split("SRM attention lift")[1], flags=re.MULTILINE)[:5]
    assert [kind for kind, _ in lift_rows] == list(word_weights.KINDS)  # reclf's SRM attention, one row per query kind
    assert any(cell.strip() not in ("-", "1.00") for _, cells in lift_rows for cell in cells.split("|"))
    shown = [line for line in output.splitlines() if line.startswith("  ")]
    assert len(shown) == 4  # --show 2 for each checkpoint


def test_one_hand_written_report_against_one_image(pretraining_corpus, checkpoints, capsys):
    image = next((pretraining_corpus / "images").glob("*.png"))
    word_weights.main(["--checkpoint", str(checkpoints["mean"]), "--image", str(image), "--report", "Mild cardiomegaly. No left effusion."])
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].split() == ["mild[o]1.00", "cardiomegaly[o]1.00", ".[p]1.00", "no[n]1.00", "left[l]1.00", "effusion[o]1.00", ".[p]1.00", "[SEP][o]1.00"]  # GLoRIA's convention: [SEP] is matched


def test_global_only_has_no_word_weights(pretraining_corpus, tmp_path):
    checkpoint = write_tiny_pretraining_checkpoint(tmp_path / "global.pt", aggregation="global_only")
    with pytest.raises(SystemExit, match="no local scorer"):
        word_weights.main(["--checkpoint", str(checkpoint), "--datalist", str(pretraining_corpus / "datalist.json"), "--items", "2"])


def test_attention_lift_compares_attention_with_the_share_of_words_of_a_kind():
    """Three word tokens (finding, location, other) and [SEP] (position 3, no word): the finding
    word puts all its attention on the location word, the others attend uniformly."""
    weights = torch.tensor([[0.0, 0.9, 0.0, 0.1], [0.3, 0.3, 0.3, 0.1], [0.3, 0.3, 0.3, 0.1], [0.25] * 4])
    lift = word_weights.attention_lift([weights], [{0: "finding", 1: "location", 2: "other"}])
    assert lift["finding", "location"] == pytest.approx(3.0)  # all of it on a third of the words
    assert lift["finding", "finding"] == 0.0 and lift["finding", "other"] == 0.0
    assert lift["location", "finding"] == pytest.approx(1.0) and lift["other", "other"] == pytest.approx(1.0)
    assert ("negation", "finding") not in lift and ("finding", "negation") not in lift
