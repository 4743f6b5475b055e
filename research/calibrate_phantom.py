#!/usr/bin/env python
"""Calibrate IU-Phantom's difficulty: train a supervised ResNet-18 on the five class targets and
report the test AUC per class and macro-averaged.

The phantom should be learnable but not saturated (macro AUC between 0.85 and 0.97), so that
methods can still differ on it. Images are resized to --image_size (default 128 px) to fit CPU
time; the model with the best validation macro AUC is evaluated on the test split.

    python scripts/prepare_demo_data.py --output_dir DIR
    python -m research.calibrate_phantom --data_dir DIR
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch
from monai.data import CacheDataset, DataLoader
from monai.networks.nets import resnet18
from monai.utils import set_determinism
from sklearn.metrics import roc_auc_score

from reclf_monai.data.datalist import load_datalist
from reclf_monai.data.image_loading import chest_xray_transforms


def _dataset(datalist: Path, split: str, image_size: int) -> CacheDataset:
    items = [
        {"image": item["image"], "target": np.asarray(item["target"], np.float32)}
        for item in load_datalist(datalist, split)
    ]
    return CacheDataset(items, chest_xray_transforms("image", None, image_size), num_workers=2, progress=False)


@torch.no_grad()
def _scores(model: torch.nn.Module, loader: DataLoader) -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    scores, targets = [], []
    for batch in loader:
        scores.append(torch.sigmoid(model(batch["image"])).numpy())
        targets.append(batch["target"].numpy())
    return np.concatenate(scores), np.concatenate(targets)


def per_class_auc(scores: np.ndarray, targets: np.ndarray) -> list[float]:
    """ROC AUC of each class over all images (NaN where a class has only one label value)."""
    return [
        float(roc_auc_score(targets[:, k], scores[:, k])) if 0 < targets[:, k].sum() < len(targets) else float("nan")
        for k in range(targets.shape[1])
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True, help="output folder of prepare_demo_data.py")
    parser.add_argument("--image_size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    set_determinism(args.seed)
    datalist = Path(args.data_dir) / "datalist.json"
    class_names = json.loads(datalist.read_text())["class_names"]
    loaders = {
        split: DataLoader(_dataset(datalist, split, args.image_size), batch_size=args.batch_size, shuffle=split == "training")
        for split in ("training", "validation", "test")
    }
    model = resnet18(spatial_dims=2, n_input_channels=1, num_classes=len(class_names))
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, args.epochs)
    loss_function = torch.nn.BCEWithLogitsLoss()
    best_auc, best_state = -1.0, None
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        model.train()
        losses = []
        for batch in loaders["training"]:
            optimiser.zero_grad()
            loss = loss_function(model(batch["image"]), batch["target"])
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        schedule.step()
        val_auc = float(np.nanmean(per_class_auc(*_scores(model, loaders["validation"]))))
        if val_auc > best_auc:
            best_auc, best_state = val_auc, copy.deepcopy(model.state_dict())
        print(f"epoch {epoch}: loss {np.mean(losses):.4f}, validation macro AUC {val_auc:.3f} ({time.perf_counter() - start:.0f} s)", flush=True)
    model.load_state_dict(best_state)
    aucs = per_class_auc(*_scores(model, loaders["test"]))
    for name, auc in zip(class_names, aucs):
        print(f"test AUC {name}: {auc:.3f}")
    print(f"test macro AUC: {np.nanmean(aucs):.3f} (best validation macro AUC {best_auc:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
