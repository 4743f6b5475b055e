"""research/run_ablation.py: aggregations x seeds pretrained with one schedule, downstream tasks on
each checkpoint, a resumable run and a report of mean ± std.

The runner is called in this process (its imports are a large part of a call) on the tiny
IU-Phantom of tests/shared_fixtures.py with the tiny settings of tests/pretrain_testing.py,
pretraining on 8 of its training items (one step): two modes, one seed, zero-shot five classes and
linear classification at one fraction. The mean ± std of several seeds is tested on hand-made records.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from research import run_ablation as ablation_script

pytestmark = pytest.mark.research

MODES = ["global_only", "mean"]
REFERENCES = ablation_script.REFERENCES  # the untrained rows, by label: their folder under downstream/
SEEDS = [0]
PRETRAINING_ITEMS = 8
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def pretraining_datalist(corpus: Path, folder: Path) -> Path:
    """The corpus's datalist (absolute paths) with its first PRETRAINING_ITEMS training items."""
    from reclf_monai.data import load_datalist

    splits = {split: load_datalist(corpus / "datalist.json", split, required_keys=()) for split in ("training", "validation", "test")}
    splits["training"] = splits["training"][:PRETRAINING_ITEMS]
    target = folder / "pretraining_datalist.json"
    target.write_text(json.dumps(splits))
    return target


def run_ablation(corpus: Path, folder: Path, *extra: str) -> SimpleNamespace:
    """main() with the tiny schedule; returns its exit status and printed output."""
    from pretrain_testing import SMALL

    settings = {**SMALL, "datalist": str(pretraining_datalist(corpus, folder))}
    overrides = [argument for key, value in settings.items() for argument in ("--pretrain_override", f"{key}={json.dumps(value)}")]
    argv = [
        "--dataset_dir", str(corpus), "--output_dir", str(folder / "runs"), "--report", str(folder / "docs" / "results_ablation.md"),
        "--modes", *MODES, "--seeds", *map(str, SEEDS), "--tasks", "zeroshot_five", "classification", "--fractions", "0.2",
        "--classification_epochs", "1", "--eval_items", "6", "--num_workers", "0", *overrides, *extra,
    ]  # fmt: skip
    output = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        status = ablation_script.main(argv)
    return SimpleNamespace(status=status, output=output.getvalue())


def checkpoint(folder: Path, mode: str, seed: int) -> Path:
    return folder / "runs" / "pretrain" / mode / f"seed{seed}" / "models" / "checkpoint_epoch=1.pt"


def modification_times(folder: Path) -> dict[tuple[str, int], int]:
    return {(mode, seed): checkpoint(folder, mode, seed).stat().st_mtime_ns for mode in MODES for seed in SEEDS}


def table_rows(report: str, title: str) -> dict[str, list[str]]:
    """The markdown table under `## title`: {mode: cells}, header under ""."""
    lines = report.split(f"## {title}\n", 1)[1].strip().splitlines()
    rows = {}
    for line in lines:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows["" if cells[0] == "mode" else cells[0]] = cells[1:]
    rows.pop("---", None)
    return rows


@pytest.fixture(scope="module")
def ablation(pretraining_corpus, tmp_path_factory) -> SimpleNamespace:
    folder = tmp_path_factory.mktemp("ablation")
    first = run_ablation(pretraining_corpus, folder)
    return SimpleNamespace(corpus=pretraining_corpus, folder=folder, first=first, report=folder / "docs" / "results_ablation.md")


def test_report_holds_mean_and_std_per_mode_json_and_plots(ablation):
    assert ablation.first.status == 0, ablation.first.output[-4000:]
    output = ablation.first.output
    cells = 2 * 3 + 2 * 2  # per mode and seed: pretraining, zero-shot, classification; the two references
    assert f"[ablation] cell 1/{cells}: global_only seed 0 pretrain ..." in output
    estimates = [line.split(": ", 1)[1] for line in output.splitlines() if line.startswith("[ablation] time left: ")]
    assert len(estimates) == cells and estimates[-1] == "none"
    assert estimates[0].startswith("at least") and estimates[0].endswith("(not measured yet: classification_f0.2, zeroshot_five)")
    assert estimates[1].endswith("(not measured yet: classification_f0.2)") and estimates[2].startswith("about")
    assert "reused" not in output

    records = json.loads(ablation.report.with_suffix(".json").read_text())["records"]
    downstream = [record for record in records if record["task"] != "pretrain"]
    assert len(downstream) == 2 * 2 + 2 * 2 and all(record["status"] == "computed" for record in records)
    for record in downstream:
        assert record["figures"] and all(0.0 <= value <= 1.0 for value in record["figures"].values()), record

    report = ablation.report.read_text()
    assert "- command: `python -m research.run_ablation --dataset_dir" in report and "cores; torch" in report
    assert "- pretraining wall time per run (recorded): global_only " in report and "; mean " in report
    rows = table_rows(report, "zero-shot, five classes")
    assert rows[""] == ["macro AUC", "ACC"] and list(rows)[1:] == [*MODES, *REFERENCES, "chance"]
    assert rows["chance"] == ["0.500", f"{1 / 5:.3f}"]  # AUC; naming one of five classes at random
    for mode in MODES:  # the table's cells are the per-seed figures' mean and sample std
        values = [record["figures"]["macro AUC"] for record in downstream if record["mode"] == mode and record["task"] == "zeroshot_five"]
        assert rows[mode][0] == f"{values[0]:.3f} (n=1)"
    assert all(rows[reference][0].endswith("(n=1)") for reference in REFERENCES)
    reference_records = [record for record in downstream if record["mode"] in REFERENCES]
    assert [(record["mode"], record["task"]) for record in reference_records] == [
        (reference, task) for reference in REFERENCES for task in ("zeroshot_five", "classification")
    ]
    assert reference_records[0]["figures"] != reference_records[2]["figures"]  # two different untrained networks
    classification = table_rows(report, "linear classification")
    assert classification[""] == ["test macro AUC, 20 %"] and all(classification[mode][0].endswith("(n=1)") for mode in MODES)
    assert classification["chance"] == ["0.500"]

    for task in ("zeroshot_five", "classification"):
        plot = ablation.report.with_suffix("") / f"{task}.png"
        assert plot.read_bytes().startswith(PNG_SIGNATURE) and f"({plot.parent.name}/{task}.png)" in report


def test_zero_shot_aucs_per_class_are_read_from_each_runs_probabilities(ablation):
    import csv

    assert ablation.first.status == 0
    records = json.loads(ablation.report.with_suffix(".json").read_text())["records"]
    zero_shot = [record for record in records if record["task"] == "zeroshot_five"]
    assert len(zero_shot) == len(MODES) + len(REFERENCES)
    for record in zero_shot:
        folder = REFERENCES.get(record["mode"], record["mode"])
        with (ablation.folder / "runs" / "downstream" / folder / "seed0" / "zeroshot_five" / "class_probabilities.csv").open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        for name, auc in record["per_class"].items():  # one-vs-rest AUC, by counting pairs
            positives = [float(row[name]) for row in rows if row["true_class"] == name]
            negatives = [float(row[name]) for row in rows if row["true_class"] != name]
            wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
            assert auc == pytest.approx(wins / (len(positives) * len(negatives)), abs=1e-6), (record["mode"], name)
        # the bundle's macro AUC is their mean (the CSV holds the probabilities rounded to text)
        assert sum(record["per_class"].values()) / len(record["per_class"]) == pytest.approx(record["figures"]["macro AUC"], abs=1e-4)
    rows = table_rows(ablation.report.read_text(), "zero-shot, five classes: AUC per class")
    assert rows[""] == list(zero_shot[0]["per_class"]) and list(rows)[1:] == [*MODES, *REFERENCES]
    assert rows["mean"][0] == f"{zero_shot[1]['per_class'][rows[''][0]]:.3f} (n=1)"


def test_every_run_pretrained_its_own_mode_and_seed_on_one_schedule(ablation):
    assert ablation.first.status == 0
    import torch

    for mode in MODES:
        for seed in SEEDS:
            folder = ablation.folder / "runs" / "pretrain" / mode / f"seed{seed}"
            settings = json.loads((folder / "pretrain_run.json").read_text())["settings"]
            assert (settings["aggregation"], settings["seed"], settings["image_size"], settings["val_interval"]) == (mode, seed, 64, 2)
            stored = torch.load(checkpoint(ablation.folder, mode, seed), map_location="cpu", weights_only=True)
            assert stored["network_settings"]["aggregation"] == mode
            assert stored["trainer"]["iteration"] == PRETRAINING_ITEMS // 8  # the schedule reached the bundle
            assert not (folder / "models" / "model.pt").exists()  # no validation ran


def test_second_invocation_reuses_every_cell(ablation):
    assert ablation.first.status == 0
    before, report = modification_times(ablation.folder), json.loads(ablation.report.with_suffix(".json").read_text())
    again = run_ablation(ablation.corpus, ablation.folder)
    assert again.status == 0, again.output[-4000:]
    assert again.output.count(": reused\n") == 10
    ran = [line for line in again.output.splitlines() if line.startswith("[downstream]") and "written earlier for this checkpoint" not in line]
    assert ran == []
    assert modification_times(ablation.folder) == before
    assert json.loads(ablation.report.with_suffix(".json").read_text())["records"] == [
        {**record, "status": "reused", "seconds": None} for record in report["records"]
    ]


def test_report_only_writes_the_finished_cells_and_computes_nothing(ablation):
    """--report_only with a seed that never ran: its cells are "not run", left out of the tables."""
    assert ablation.first.status == 0
    before = modification_times(ablation.folder)
    report = ablation.folder / "docs" / "partial.md"
    result = run_ablation(ablation.corpus, ablation.folder, "--seeds", "0", "1", "--report_only", "--report", str(report))
    assert result.status == 0, result.output[-4000:]
    assert result.output.count(": reused\n") == 10 and result.output.count(": not run\n") == 6
    ran = [line for line in result.output.splitlines() if line.startswith("[downstream]") and "written earlier for this checkpoint" not in line]
    assert ran == []
    assert not (ablation.folder / "runs" / "pretrain" / "mean" / "seed1").exists()
    assert modification_times(ablation.folder) == before
    text = report.read_text()
    assert "6 cells are not run yet (left out of the tables)" in text
    rows = table_rows(text, "zero-shot, five classes")
    assert set(rows) == {"", "global_only", "mean", *REFERENCES, "chance"}
    assert all("(n=1)" in cell for mode in ("global_only", "mean") for cell in rows[mode])
    statuses = [record["status"] for record in json.loads(report.with_suffix(".json").read_text())["records"]]
    assert statuses.count("not run") == 6 and statuses.count("reused") == 10


def test_a_partially_written_pretraining_cell_is_done_again(ablation):
    """A pretraining run killed before its record was written: that run and its downstream cells
    are computed again, every other cell is reused."""
    assert ablation.first.status == 0
    before = modification_times(ablation.folder)
    (ablation.folder / "runs" / "pretrain" / "global_only" / "seed0" / "pretrain_run.json").unlink()
    again = run_ablation(ablation.corpus, ablation.folder)
    assert again.status == 0, again.output[-4000:]
    assert "global_only seed 0 pretrain: computed" in again.output
    assert "global_only seed 0 zeroshot_five: computed" in again.output and "global_only seed 0 classification_f0.2: computed" in again.output
    assert again.output.count(": reused\n") == 10 - 3  # the references take mean's architecture
    after = modification_times(ablation.folder)
    assert after[("global_only", 0)] != before[("global_only", 0)] and after[("mean", 0)] == before[("mean", 0)]


def imported_run(ablation, folder: Path, report: dict, *extra: str) -> SimpleNamespace:
    """The fixture's study in a new output folder (its pretraining datalist kept), importing `report`."""
    source = folder / "imported.json"
    source.write_text(json.dumps(report))
    return run_ablation(ablation.corpus, ablation.folder, "--output_dir", str(folder / "runs"), "--report", str(folder / "report.md"), "--import_report", str(source), *extra)


def test_an_imported_report_counts_as_finished_and_nothing_is_computed(ablation, tmp_path):
    assert ablation.first.status == 0
    recorded = json.loads(ablation.report.with_suffix(".json").read_text())
    result = imported_run(ablation, tmp_path, recorded)
    assert result.status == 0, result.output[-4000:]
    assert result.output.count(": imported\n") == 10 and "[downstream]" not in result.output
    assert not (tmp_path / "runs" / "pretrain").exists()
    text = (tmp_path / "report.md").read_text()
    assert "0 cells were reused, 10 imported" in text and f"- imported cells from {tmp_path / 'imported.json'}, written by `python -m research.run_ablation" in text
    for title in ("zero-shot, five classes", "linear classification"):
        assert table_rows(text, title) == table_rows(ablation.report.read_text(), title)
    written = json.loads((tmp_path / "report.json").read_text())
    assert written["study"] == recorded["study"] and written["study"]["datalist_sha256"]
    assert [record["status"] for record in written["records"]] == ["imported"] * 10
    assert [{**record, "status": "x"} for record in written["records"]] == [{**record, "status": "x", "seconds": None} for record in recorded["records"]]


def test_a_pretraining_with_a_cell_missing_from_the_import_is_computed(ablation, tmp_path):
    """The import lacks mean's classification cell: mean is pretrained again (the cell needs its
    checkpoint) and that cell computed; the rest, the references included, is imported. The
    report is of the older format without study settings, which are then read from its command."""
    assert ablation.first.status == 0
    recorded = json.loads(ablation.report.with_suffix(".json").read_text())
    recorded.pop("study")
    recorded["records"] = [record for record in recorded["records"] if (record["mode"], record["task"]) != ("mean", "classification")]
    result = imported_run(ablation, tmp_path, recorded)
    assert result.status == 0, result.output[-4000:]
    assert "settings are read from its command" in result.output
    assert "mean seed 0 pretrain: computed" in result.output and "mean seed 0 classification_f0.2: computed" in result.output
    assert "mean seed 0 zeroshot_five: imported" in result.output and result.output.count(": imported\n") == 8
    assert checkpoint(tmp_path, "mean", 0).exists() and not (tmp_path / "runs" / "pretrain" / "global_only").exists()


@pytest.mark.parametrize(
    ("change", "extra", "message"),
    [
        (lambda report: report, ["--classification_epochs", "2"], "recorded with other study settings \\(classification_epochs\\)"),
        (lambda report: {**report, "study": {**report["study"], "datalist_sha256": "0" * 64}}, [], "recorded with other study settings \\(datalist_sha256\\)"),
        (lambda report: {"records": []}, [], "not a run_ablation report JSON"),
    ],
)
def test_an_import_from_another_study_stops_before_computing(ablation, tmp_path, change, extra, message):
    assert ablation.first.status == 0
    recorded = json.loads(ablation.report.with_suffix(".json").read_text())
    with pytest.raises(SystemExit, match=re.escape(f"--import_report {tmp_path / 'imported.json'}: ") + message):
        imported_run(ablation, tmp_path, change(recorded), *extra)
    assert not (tmp_path / "runs" / "pretrain").exists()


def test_a_failing_pretraining_fails_its_cells_and_the_exit_status(pretraining_corpus, tmp_path):
    result = run_ablation(pretraining_corpus, tmp_path, "--modes", "global_only", "--seeds", "0", "--pretrain_override", "backbone=no_such_backbone")
    assert result.status == 1
    assert "FAILED global_only seed 0 pretrain: ValueError: unknown backbone 'no_such_backbone'" in result.output
    report = (tmp_path / "docs" / "results_ablation.md").read_text()
    assert "- failed cells: 7" in report  # pretraining, its two downstream cells, the two of each reference
    rows = table_rows(report, "zero-shot, five classes")
    assert rows["global_only"] == ["failed", "failed"] and all(rows[reference] == ["failed", "failed"] for reference in REFERENCES)


def _record(mode, seed, figures, task="classification", fraction=0.1, status="computed", chance=None):
    return {"mode": mode, "seed": seed, "task": task, "fraction": fraction, "status": status, "figures": figures, "chance": chance or {}}


def test_grounding_is_planned_only_for_modes_with_a_local_scorer():
    args = ablation_script.parse_args(["--dataset_dir", "d", "--output_dir", "o", "--modes", "global_only", "mean", "--seeds", "0", "--fractions", "1"])
    cells = ablation_script.plan(args, ["zeroshot_five", "grounding"])
    assert [cell.label() for cell in cells] == [
        "global_only seed 0 pretrain", "global_only seed 0 zeroshot_five",
        "mean seed 0 pretrain", "mean seed 0 zeroshot_five", "mean seed 0 grounding",
        "ImageNet, not pretrained seed 0 zeroshot_five", "ImageNet, not pretrained seed 0 grounding",
        "random init seed 0 zeroshot_five", "random init seed 0 grounding",
    ]  # fmt: skip
    assert ablation_script.reference_mode(args.modes) == "mean"
    assert ablation_script.reference_mode(["global_only"]) == "global_only"


def test_mean_and_sample_std_per_cell_with_failed_seeds():
    records = [
        _record("lse", 0, {}, task="pretrain", fraction=None),
        _record("lse", 0, {"AUC": 0.5}),
        _record("lse", 1, {"AUC": 0.7}),
        _record("lse", 2, {"AUC": None}, status="failed"),
        _record("lse", 0, {"AUC": 0.9}, fraction=1.0),
        _record("srm", 0, {"AUC": None}, status="failed"),
        _record("srm", 0, {"AUC": 0.8}, fraction=1.0),
        _record("random init", 0, {"AUC": 0.25}, chance={"AUC": 0.5}),
        _record("random init", 0, {"AUC": 0.3}, fraction=1.0, chance={"AUC": float("nan")}),  # no finite chance: no cell
    ]
    tables = ablation_script.summarize(records)
    assert list(tables) == ["classification"]
    rows = tables["classification"]
    assert list(rows) == ["lse", "srm", "random init", "chance"]
    assert rows["lse"]["AUC, 10 %"] == {"values": [0.5, 0.7], "seeds": [0, 1], "failed": 1}
    cells = {mode: [ablation_script.format_cell(row.get(name)) for name in ("AUC, 10 %", "AUC, 100 %")] for mode, row in rows.items()}
    assert cells == {
        "lse": ["0.600 ± 0.141 (n=2, 1 failed)", "0.900 (n=1)"],  # sample std: n - 1 (0.100 with n)
        "srm": ["failed", "0.800 (n=1)"],
        "random init": ["0.250 (n=1)", "0.300 (n=1)"],
        "chance": ["0.500", "-"],
    }
    assert ablation_script.markdown_table(rows).splitlines() == [
        "| mode | AUC, 10 % | AUC, 100 % |",
        "|---|---|---|",
        "| lse | 0.600 ± 0.141 (n=2, 1 failed) | 0.900 (n=1) |",
        "| srm | failed | 0.800 (n=1) |",
        "| random init | 0.250 (n=1) | 0.300 (n=1) |",
        "| chance | 0.500 | - |",
    ]


def test_time_left_is_unknown_until_a_cell_of_that_kind_was_measured():
    Cell = ablation_script.Cell
    cells = [Cell("lse", 0, "pretrain"), Cell("lse", 0, "zeroshot_five"), Cell("lse", 1, "pretrain"), Cell("lse", 1, "zeroshot_five")]
    progress = ablation_script.Progress(cells)
    assert progress.time_left(cells[1:]).startswith("unknown")
    progress.measured = {"pretrain": [100.0, 140.0]}
    assert progress.time_left(cells[1:]) == "at least 2 min 0 s (not measured yet: zeroshot_five)"
    progress.measured["zeroshot_five"] = [10.0]
    assert progress.time_left(cells[1:]) == "about 2 min 20 s (3 cells)"


def test_a_resumed_study_estimates_from_the_times_recorded_with_its_reused_cells(capsys):
    Cell = ablation_script.Cell
    cells = [Cell("lse", 0, "pretrain"), Cell("lse", 0, "zeroshot_five"), Cell("lse", 1, "pretrain"), Cell("lse", 1, "zeroshot_five")]
    progress = ablation_script.Progress(cells)
    progress.finished(0, "reused", None, 300.0)  # computed in an earlier run, in 5 min
    assert progress.time_left(cells[2:]) == "at least 5 min 0 s (not measured yet: zeroshot_five)"
    progress.finished(1, "computed", 20.0, 15.0)  # this run's wall time counts, not the task's own
    assert progress.time_left(cells[2:]) == "about 5 min 20 s (2 cells)"
    assert "cell 1/4: lse seed 0 pretrain: reused" in capsys.readouterr().out


def test_the_report_goes_beside_the_runs_unless_named(tmp_path):
    """The committed docs/results_ablation.md is never the default: a study writes into its own folder."""
    assert ablation_script.parse_args(["--dataset_dir", "d", "--output_dir", str(tmp_path / "o")]).report == str(tmp_path / "o" / "results_ablation.md")
    named = ablation_script.parse_args(["--dataset_dir", "d", "--output_dir", "o", "--report", str(tmp_path / "r.md")])
    assert named.report == str(tmp_path / "r.md")


def test_overrides_are_json_and_per_run_keys_are_refused(tmp_path, capsys):
    args = ablation_script.parse_args(["--dataset_dir", "d", "--output_dir", "o", "--pretrain_override", "learning_rate=1e-4", "--pretrain_override", "backbone=resnet34", "--epochs", "3"])
    assert args.pretrain_override == {"learning_rate": 1e-4, "backbone": "resnet34"}
    settings = ablation_script.pretrain_settings(args, ablation_script.Cell("srm", 2, "pretrain"), tmp_path)
    assert settings["train#trainer#max_epochs"] == 3 and settings["val_interval"] == 4 and settings["embed_dim"] == 128
    assert (settings["aggregation"], settings["seed"], settings["ckpt_dir"]) == ("srm", 2, str(tmp_path / "models"))
    with pytest.raises(SystemExit):
        ablation_script.parse_args(["--dataset_dir", "d", "--output_dir", "o", "--pretrain_override", "seed=3"])
    assert "cannot set ['seed']" in capsys.readouterr().err


def test_plots_without_matplotlib_name_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(SystemExit, match="matplotlib"):
        ablation_script.pyplot()


def test_reclf_is_compared_with_the_best_pooling_baseline_paired_by_seed():
    def records(mode, task, figures_per_seed, fraction=None):
        return [_record(mode, seed, figures, task=task, fraction=fraction) for seed, figures in enumerate(figures_per_seed)]

    tables = ablation_script.summarize([
        *records("mean", "zeroshot_five", [{"macro AUC": 0.60}, {"macro AUC": 0.62}, {"macro AUC": 0.61}]),
        *records("lse", "zeroshot_five", [{"macro AUC": 0.64}, {"macro AUC": 0.66}, {"macro AUC": 0.65}]),
        *records("reclf", "zeroshot_five", [{"macro AUC": 0.70}, {"macro AUC": 0.71}, {"macro AUC": 0.72}]),
        *records("lse", "grounding", [{"pointing game": 0.30}, {"pointing game": 0.20}]),
        *records("reclf", "grounding", [{"pointing game": 0.31}, {"pointing game": 0.17}]),
        # the seeds move both alike: unpaired, +0.025 would be lost in a spread of 0.1
        *records("mean", "retrieval", [{"P@5": 0.60}, {"P@5": 0.70}, {"P@5": 0.80}]),
        *records("reclf", "retrieval", [{"P@5": 0.62}, {"P@5": 0.73}, {"P@5": 0.825}]),
        *records("fixed_importance", "classification", [{"AUC": 0.8}], fraction=0.1),
        *records("reclf", "classification", [{"AUC": 0.7}], fraction=0.1),
        *records("srm", "retrieval", [{"P@5": 0.9}]),
    ])  # fmt: skip
    rows = ablation_script.comparison_rows(tables, {"zeroshot_five": "zero-shot, five classes"})
    summary = [(row["task"], row["figure"], row["baseline"], round(row["difference"], 3), row["verdict"]) for row in rows]
    assert summary == [
        ("zero-shot, five classes", "macro AUC", "lse", 0.06, "above"),  # differences 0.06, 0.05, 0.07
        ("grounding", "pointing game", "lse", -0.01, "within the spread"),  # differences +0.01, -0.03
        ("retrieval", "P@5", "mean", 0.025, "above"),
        ("classification", "AUC, 10 %", "fixed_importance", -0.1, "fewer than two paired seeds"),
    ]  # srm alone has neither side of a comparison
    # t(0.975, 2 degrees of freedom) = 4.303: half-width 4.303 * 0.01 / sqrt(3) = 0.0248
    assert rows[0]["interval"] == pytest.approx((0.06 - 0.0248, 0.06 + 0.0248), abs=1e-4)
    # one degree of freedom: t = 12.706, sample std of (+0.01, -0.03) 0.0283: half-width 0.254
    assert rows[1]["interval"] == pytest.approx((-0.01 - 0.2541, -0.01 + 0.2541), abs=1e-3)
    section = "\n".join(ablation_script.comparison_section(rows))
    assert "reclf is above in 2, below in 0 and within the spread in 1 of 4 scores (1 with fewer than two paired seeds, no interval yet)." in section
    assert "| zero-shot, five classes | macro AUC | lse: 0.650 ± 0.010 (n=3) | 0.710 ± 0.010 (n=3) | +0.060 [+0.035, +0.085] (n=3) | above |" in section
    assert "| fixed_importance: 0.800 (n=1) | 0.700 (n=1) | -0.100 (n=1) | fewer than two paired seeds |" in section


def test_only_the_seeds_both_finished_are_paired():
    candidate = {"values": [0.7, 0.9], "seeds": [0, 2]}
    baseline = {"values": [0.5, 0.6, 0.1], "seeds": [0, 1, 2]}
    paired = ablation_script.paired_difference(candidate, baseline)
    assert paired["differences"] == pytest.approx([0.2, 0.8])
    assert paired["mean"] == pytest.approx(0.5) and paired["interval"] is not None


def test_time_left_leaves_out_imported_cells_and_is_none_when_only_reporting():
    Cell = ablation_script.Cell
    cells = [Cell("lse", 0, "pretrain"), Cell("lse", 0, "zeroshot_five"), Cell("lse", 1, "pretrain"), Cell("lse", 1, "zeroshot_five")]
    progress = ablation_script.Progress(cells, settled=[cells[2].key])
    progress.measured = {"pretrain": [100.0], "zeroshot_five": [10.0]}
    assert progress.time_left(cells[1:]) == "about 20 s (2 cells)"  # the imported pretraining costs nothing
    assert progress.time_left(cells[2:3]) == "none"
    reporting = ablation_script.Progress(cells, report_only=True)
    reporting.measured = progress.measured
    assert reporting.time_left(cells[1:]) == "none (--report_only computes nothing)"
