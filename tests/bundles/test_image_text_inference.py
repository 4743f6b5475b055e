"""reclf_monai.image_text_inference: the Python API gives what the bundles write, on the same
checkpoint and images (the bundles run in this process through MONAI's ConfigWorkflow)."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch
from bundle_testing import BUNDLES, pretrained_workflow, write_tiny_pretraining_checkpoint
from monai.bundle import ConfigWorkflow
from PIL import Image
from repository import ROOT
from sample_files import real_chest_dicom

from reclf_monai.data import load_datalist
from reclf_monai.data.image_loading import read_display_intensities
from reclf_monai.image_text_inference import ImageTextInference
from reclf_monai.phantom import ZERO_SHOT_CLASSES

pytestmark = pytest.mark.end_to_end


@pytest.fixture(scope="module")
def engine(tiny_pretraining_checkpoint) -> ImageTextInference:
    return ImageTextInference.from_checkpoint(tiny_pretraining_checkpoint, device="cpu", batch_size=3)


def run(workflow: ConfigWorkflow) -> None:
    workflow.initialize()
    workflow.run()
    workflow.finalize()


def test_embeddings_equal_what_the_pretraining_bundle_writes(engine, pretraining_corpus, tiny_pretraining_checkpoint, tmp_path):
    bundle = BUNDLES / "reclf_pretrain"
    settings = {"bundle_root": str(bundle), "dataset_dir": str(pretraining_corpus), "ckpt_dir": str(tiny_pretraining_checkpoint.parent),
                "output_dir": str(tmp_path / "eval"), "num_workers": 0, "cache_rate": 0}  # fmt: skip
    configs = [str(bundle / "configs" / name) for name in ("train.json", "inference.json")]
    run(ConfigWorkflow(config_file=configs, workflow_type="infer", logging_file=False, **settings))
    written = np.load(tmp_path / "eval" / "embeddings_test.npz")
    items = load_datalist(pretraining_corpus / "datalist.json", "test")
    np.testing.assert_allclose(
        engine.embed_images([item["image"] for item in items]).numpy(), written["image_embedding"], atol=1e-5
    )
    np.testing.assert_allclose(
        engine.embed_reports([item["report"] for item in items]).numpy(), written["report_embedding"], atol=1e-5
    )


def test_zero_shot_equals_the_zero_shot_bundles_probabilities(zero_shot_corpus, tiny_pretraining_checkpoint, tmp_path):
    bundle = BUNDLES / "reclf_zeroshot_classification"
    run(
        pretrained_workflow(
            bundle, zero_shot_corpus, tiny_pretraining_checkpoint, tmp_path, "inference", "evaluate", batch_size=4
        )
    )
    with (tmp_path / "eval" / "class_probabilities.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    written = np.array([[float(row[name]) for name in ZERO_SHOT_CLASSES] for row in rows])
    prompts = json.loads((zero_shot_corpus / "prompts.json").read_text())
    engine = ImageTextInference.from_checkpoint(tiny_pretraining_checkpoint, device="cpu")
    probabilities = engine.zero_shot([row["image"] for row in rows], {name: prompts[name] for name in ZERO_SHOT_CLASSES})
    np.testing.assert_allclose(probabilities.numpy(), written, atol=1e-5)  # the CSV holds them rounded to text


def test_rank_reports_equals_the_retrieval_bundles_ranking(engine, pretraining_corpus, tiny_pretraining_checkpoint, tmp_path):
    items = load_datalist(pretraining_corpus / "datalist.json", "test")[:4]
    datalist = tmp_path / "pairs.json"
    datalist.write_text(json.dumps({"test": items}))
    bundle = BUNDLES / "reclf_retrieval"
    run(
        pretrained_workflow(
            bundle,
            pretraining_corpus,
            tiny_pretraining_checkpoint,
            tmp_path,
            "inference",
            infer_datalist=str(datalist),
            top_k=3,
            shortlist_k="none",
        )
    )
    written = json.loads((tmp_path / "eval" / "rankings_test.json").read_text())["images"]
    rankings = engine.rank_reports([item["image"] for item in items], [item["report"] for item in items], top_k=3)
    assert [[index for index, _ in ranking] for ranking in rankings] == [
        [report["item"] for report in entry["reports"]] for entry in written
    ]
    for ranking, entry in zip(rankings, written):
        np.testing.assert_allclose([score for _, score in ranking], [report["score"] for report in entry["reports"]], atol=1e-4)


def test_similarity_map_equals_the_grounding_bundles_heatmap_at_the_images_size(
    engine, pretraining_corpus, tiny_pretraining_checkpoint, tmp_path
):
    """A real DICOM and a phantom PNG cut to a non-square shape, given as files; the PNG also as an array."""
    png = tmp_path / "tall.png"
    Image.fromarray(np.asarray(Image.open(load_datalist(pretraining_corpus / "datalist.json", "test")[0]["image"]))[:, :40]).save(
        png
    )
    items = [
        {"image": str(real_chest_dicom()), "phrase": "right lower lobe opacity"},
        {"image": str(png), "phrase": "cardiomegaly"},
    ]
    datalist = tmp_path / "phrases.json"
    datalist.write_text(json.dumps({"test": items}))
    run(
        pretrained_workflow(
            BUNDLES / "reclf_grounding",
            pretraining_corpus,
            tiny_pretraining_checkpoint,
            tmp_path,
            "inference",
            infer_datalist=str(datalist),
        )
    )
    folder = tmp_path / "eval" / "heatmaps"
    for stem, item in zip(("0000_RG1_UNCI_right_lower_lobe_opacity", "0001_tall_cardiomegaly"), items):
        written = read_display_intensities(folder / f"{stem}_heatmap.nii.gz")
        heatmap = engine.similarity_map(item["image"], item["phrase"])
        assert heatmap.shape == read_display_intensities(item["image"]).shape == written.shape
        np.testing.assert_allclose(heatmap, written, atol=1e-5)
    from_array = engine.similarity_map(np.asarray(Image.open(png), dtype=np.float32), "cardiomegaly")
    np.testing.assert_allclose(from_array, engine.similarity_map(png, "cardiomegaly"), atol=1e-5)


def test_from_bundle_reads_models_model_pt_and_names_what_is_missing(tiny_pretraining_checkpoint, tmp_path):
    (tmp_path / "models").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no pretrained weights in the bundle folder .* \(expected models/model.pt\)"):
        ImageTextInference.from_bundle(tmp_path)
    shutil.copy(tiny_pretraining_checkpoint, tmp_path / "models" / "model.pt")
    engine = ImageTextInference.from_bundle(tmp_path, device="cpu")
    assert engine.embed_reports(["no acute findings."]).norm(dim=-1).item() == pytest.approx(1.0, abs=1e-5)


def test_bad_inputs_are_errors_that_say_what_is_wrong(engine):
    with pytest.raises(ValueError, match=r"\(H, W\) or \(1, H, W\), got shape \(3, 8, 8\)"):
        engine.embed_images([np.zeros((3, 8, 8))])
    with pytest.raises(ValueError, match="top_k must be at least 1"):
        engine.rank_reports([torch.zeros(8, 8)], ["a report."], top_k=0)
    with pytest.raises(ValueError, match="no prompts for classes"):
        engine.zero_shot([torch.zeros(8, 8)], {"effusion": []})


def test_the_readme_quickstart_runs_as_written(pretraining_corpus, tiny_pretraining_checkpoint):
    """README.md's code block under "From Python", with the demo's checkpoint and the example
    files replaced by the tiny checkpoint, a corpus PNG and a real DICOM."""
    section = (ROOT / "README.md").read_text().split("## From Python", 1)[1].split("\n## ", 1)[0]
    block = []
    for line in section.split("\n")[1:]:
        if line and not line.startswith("    "):
            break
        block.append(line[4:])
    png = load_datalist(pretraining_corpus / "datalist.json", "test")[0]["image"]
    stand_ins = {
        "demo_output/reclf_pretrain/models/model.pt": str(tiny_pretraining_checkpoint),
        "a.png": png,
        "b.dcm": str(real_chest_dicom()),
    }
    code = "\n".join(block)
    for placeholder, path in stand_ins.items():
        assert placeholder in code, placeholder
        code = code.replace(placeholder, path)
    namespace: dict = {}
    exec(compile(code, "README.md quickstart", "exec"), namespace)
    assert namespace["engine"].embed_images(namespace["images"]).shape[0] == 2


def test_word_weights_are_the_reports_words_with_the_local_scorers_weights(engine, pretraining_corpus, tmp_path):
    image = load_datalist(pretraining_corpus / "datalist.json", "test")[0]["image"]
    words = engine.word_weights(image, "Mild cardiomegaly. No pleural effusion.")
    separator = ["[SEP]"] if engine.model.settings["text_encoder"]["sep_as_word"] else []  # GLoRIA's convention, in the scorer
    assert [word.text for word in words] == ["mild", "cardiomegaly", ".", "no", "pleural", "effusion", ".", *separator]
    assert sum(word.weight for word in words) == pytest.approx(1.0, abs=1e-5)  # alpha over the report's words
    pieces = [len(word.positions) for word in words]
    matched_alone = engine.model.settings["text_encoder"]["word_pieces"] == "tokens"
    assert pieces[1] == (4 if matched_alone else 1)  # card ##iom ##ega ##ly: matched alone, the word's weight is their sum

    mean = ImageTextInference.from_checkpoint(write_tiny_pretraining_checkpoint(tmp_path / "mean.pt", aggregation="mean"), device="cpu")
    uniform = mean.word_weights(image, "Mild cardiomegaly. No pleural effusion.")
    assert [word.weight for word in uniform] == pytest.approx([count / sum(pieces) for count in pieces], abs=1e-6)
    global_only = ImageTextInference.from_checkpoint(write_tiny_pretraining_checkpoint(tmp_path / "g.pt", aggregation="global_only"), device="cpu")
    with pytest.raises(ValueError, match="word weights need a local scorer"):
        global_only.word_weights(image, "No effusion.")
