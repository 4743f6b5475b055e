"""Does log-sum-exp scoring favour long prompts, and what do the fixes change in zero-shot figures?

GLoRIA's local similarity S = log sum_t exp(temp2 s_t) lies between temp2 max_t s_t and that plus
ln(words), so a prompt of n words gains up to ln(n) / tau_local for its length alone. This
instrument scores an IU-Phantom zero-shot set with one pretraining checkpoint three ways:

- ``log_sum_exp``: the model's scores with GLoRIA's log-sum-exp (what evaluation did before; for
  aggregations other than ``lse`` the same as ``model``);
- ``model``: ``RECLFModel.pair_logits`` (for ``lse`` the log-mean-exp over words);
- ``gloria``: GLoRIA's zero-shot scoring (best word, best prompt, classes standardised over images).

and reports ACC, macro F1 and macro AUC for each, and, per scoring, the correlation over prompts
between a prompt's word count and its mean score over the images (the length bias itself).

    .venv/bin/python -m research.lse_length_bias --checkpoint CKPT --dataset_dir demo_output/iu_phantom
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from reclf_monai.data import TokenizeReportd, chest_xray_transforms, load_datalist
from reclf_monai.data.class_prompts import read_class_prompts
from reclf_monai.metrics.contrastive_evaluation import concat_feature_batches, detached_features, encode_class_prompts, score_all_pairs
from reclf_monai.metrics.zero_shot import class_scores_from_prompts, standardise_classes, zero_shot_classification_metrics
from reclf_monai.networks import RECLFModel

SCORINGS = ("log_sum_exp", "model", "gloria")


def prompt_pair_scores(model: RECLFModel, image_features: dict, prompt_features: dict) -> dict[str, torch.Tensor]:
    """(N_images, N_prompts) pair scores under each of :data:`SCORINGS`."""
    scores = {scoring: score_all_pairs(model, image_features, prompt_features, scoring=scoring) for scoring in ("model", "gloria")}
    words = prompt_features["word_mask"].sum(-1).clamp_min(1).float()
    length_bonus = words.log() / model.local_temperature().detach().cpu() if model.aggregation == "lse" else torch.zeros_like(words)
    scores["log_sum_exp"] = scores["model"] + length_bonus
    return scores


def length_correlation(pair_scores: torch.Tensor, words: torch.Tensor) -> float:
    """Pearson correlation over prompts between word count and the prompt's mean score."""
    mean_scores = pair_scores.mean(0)
    stacked = torch.stack([words.float(), mean_scores.float()])
    return float(torch.corrcoef(stacked)[0, 1])


def evaluate(checkpoint: Path, zeroshot_datalist: Path, prompts_file: Path, batch_size: int = 32) -> dict:
    model = RECLFModel.from_checkpoint(checkpoint)
    settings = model.settings
    transform = chest_xray_transforms("image", image_size=settings["image_encoder"]["img_size"])
    tokenize = TokenizeReportd(tokenizer=settings["text_encoder"]["model_name_or_path"], max_length=settings["text_encoder"]["max_length"])
    items = load_datalist(zeroshot_datalist, "test", required_keys=["image", "target"])
    class_names = json.loads(Path(zeroshot_datalist).read_text())["class_names"]
    prompts = read_class_prompts(prompts_file)
    batches = []
    with torch.no_grad():
        for start in range(0, len(items), batch_size):
            images = torch.stack([transform(dict(item))["image"].as_tensor() for item in items[start : start + batch_size]])
            batches.append(detached_features(model.encode_image(images)))
        image_features = concat_feature_batches(batches)
        prompt_features, owners = encode_class_prompts(model, prompts, class_names, tokenize)
        pair_scores = prompt_pair_scores(model, image_features, prompt_features)
    targets = torch.tensor([int(item["target"]) for item in items])
    words = prompt_features["word_mask"].sum(-1)
    result = {"checkpoint": str(checkpoint), "aggregation": model.aggregation, "images": len(items), "prompts": int(len(owners))}
    for scoring in SCORINGS:
        pooling = "gloria" if scoring == "gloria" else "model"
        class_scores = class_scores_from_prompts(pair_scores[scoring], owners, len(class_names), pooling)
        if scoring == "gloria":
            class_scores = standardise_classes(class_scores)
        figures = zero_shot_classification_metrics(class_scores, targets)
        result[scoring] = {**{key: round(float(figures[key]), 4) for key in ("auc", "acc", "f1")}, "length_correlation": round(length_correlation(pair_scores[scoring], words), 4)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True, help="a reclf_pretrain model.pt")
    parser.add_argument("--dataset_dir", type=Path, required=True, help="IU-Phantom folder")
    parser.add_argument("--zeroshot_datalist", type=Path, help="default: DATASET_DIR/zeroshot_5xN.json")
    parser.add_argument("--prompts_file", type=Path, help="default: DATASET_DIR/prompts.json")
    parser.add_argument("--output", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    result = evaluate(
        args.checkpoint,
        args.zeroshot_datalist or args.dataset_dir / "zeroshot_5xN.json",
        args.prompts_file or args.dataset_dir / "prompts.json",
    )
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")


if __name__ == "__main__":
    main()
