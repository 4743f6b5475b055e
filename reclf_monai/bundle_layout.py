"""Where the bundles' files lie, written once for all six.

Every bundle keeps its checkpoints in ``models/`` and its outputs in ``eval/``. In a clone of this
repository the demo (``scripts/demo.sh``) leaves IU-Phantom and the pretrained model in
``demo_output/`` beside ``bundles/``, so a bundle's defaults point two levels up; a downloaded
bundle has no such folder, and its user passes ``--dataset_dir`` and ``--pretrained_checkpoint``.
"""

from __future__ import annotations

import os

DEMO_OUTPUT = "../../demo_output"


class BundleLayout:
    """The folders and files a bundle at `bundle_root` uses by default (strings, as MONAI joins them)."""

    def __init__(self, bundle_root: str | os.PathLike = "."):
        root = os.fspath(bundle_root)
        self.ckpt_dir = f"{root}/models"
        self.output_dir = f"{root}/eval"
        self.demo_dataset_dir = f"{root}/{DEMO_OUTPUT}/iu_phantom"
        self.demo_pretrained_checkpoint = f"{root}/{DEMO_OUTPUT}/reclf_pretrain/models/model.pt"
