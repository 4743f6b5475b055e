#!/usr/bin/env python
"""Package a bundle as the MONAI model-zoo ships one: ``OUTPUT_DIR/NAME_vVERSION.zip`` holding a
single top-level folder ``NAME/`` (configs/, docs/, LICENSE, large_files.yml, ... and, with
--weights, models/model.pt), which ``python -m monai.bundle download --name NAME --url URL``
(or ``--source github --repo OWNER/REPO/TAG``) unpacks. See docs/bundle_distribution.md.

The bundle is copied first into a temporary folder exactly as it will be zipped (no caches,
hidden files, __pycache__, eval/ outputs or models/ contents; --weights becomes models/model.pt),
and every check runs on that copy with ``bundle_root`` set to it, so the checks see what a user
unpacks:

1. ``configs/metadata.json`` validates against MONAI's metadata schema (--schema PATH,
   $RECLF_MONAI_METADATA_SCHEMA, or downloaded once into the user cache), or, where that schema
   cannot be had, against the built-in check of what it requires (``reclf_monai.bundle_metadata``;
   the output says which ran), and its ``version`` has an entry in its ``changelog``.
2. With --weights: ``network`` of the inference configs, parsed as they are, builds and holds
   exactly the packaged weights (the bundle's own loader checks the file's settings and weights).
3. ``verify_net_in_out network_def`` passes on the inference configs: ``configs/inference.json``,
   on top of ``configs/train.json`` where inference.json is an override of it (it does not define
   ``network_def``, as in reclf_pretrain). With --weights the network is the one those weights
   describe, with no override. Without weights, most inference.json read the network's shape from
   models/model.pt; the check then overrides those settings with STAND_IN_SETTINGS (the default
   networks metadata.json describes), so what is checked is the configs' wiring and metadata.

A failed check exits with status 1 and a line naming the bundle, the file and the problem; the
zip is written to a temporary file in OUTPUT_DIR and renamed only when complete.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

import torch
from monai.bundle import ConfigParser, verify_net_in_out

from reclf_monai.bundle_metadata import SCHEMA_ENVIRONMENT_VARIABLE, MetadataCheck, MetadataError, check_metadata
from reclf_monai.networks.checkpoints import WEIGHTS_KEY, read_checkpoint

ROOT = Path(__file__).resolve().parents[1]
BUNDLES = ROOT / "bundles"

# Never packaged: outputs, weights other than --weights, caches. Hidden files (.gitkeep, .cache)
# and __pycache__ are skipped at any depth.
SKIPPED_FOLDERS = ("eval", "models")
METADATA = Path("configs", "metadata.json")
INFERENCE = Path("configs", "inference.json")
MODEL = Path("models", "model.pt")
MONAI_WRAPPERS = ("Failed to evaluate", "Failed to instantiate")

_RESNET18 = {"backbone": "resnet18", "img_size": 224, "in_channels": 1, "vit_config": None, "imagenet_input": False}
_PRETRAINING = {
    "aggregation": "reclf",
    "image_encoder": {"backbone": "resnet18", "in_channels": 1, "embed_dim": 256, "img_size": 224},
    "text_encoder": {"model_name_or_path": None, "embed_dim": 256, "max_length": 128},
}
# The settings inference.json reads from models/model.pt, for the network check without weights:
# the defaults metadata.json's network_data_format describes (224 px ResNet-18, 256-d embeddings,
# one mask channel, five classes). A bundle not listed builds its network without a checkpoint.
STAND_IN_SETTINGS = {
    "reclf_pretrain": {"checkpoint_settings": _PRETRAINING},
    "reclf_grounding": {"network_settings": _PRETRAINING},
    "reclf_retrieval": {"network_settings": _PRETRAINING},
    "reclf_segmentation": {
        "checkpoint_settings": {"out_channels": 1, "decoder_channels": [256, 128, 64, 32, 16], "image_encoder": _RESNET18}
    },
    "reclf_classification": {
        "checkpoint_settings": {"image_encoder": _RESNET18},
        "classification": "$reclf_monai.networks.ClassificationTask('multi_label', ['0', '1', '2', '3', '4'])",
    },
}


class PackagingError(Exception):
    """A check that failed: the message names the bundle, the file and the problem."""


def bundle_names() -> list[str]:
    return sorted(path.parent.parent.name for path in BUNDLES.glob("*/configs/metadata.json"))


def packaged_files(bundle: Path) -> list[Path]:
    """The bundle's files to ship, relative to its folder, in order."""
    files = []
    for path in sorted(bundle.rglob("*")):
        relative = path.relative_to(bundle)
        skipped = relative.parts[0] in SKIPPED_FOLDERS or any(part.startswith(".") or part == "__pycache__" for part in relative.parts)
        if path.is_file() and not skipped and path.suffix != ".pyc":
            files.append(relative)
    return files


class StagedBundle:
    """The bundle as it will be zipped, in `folder`: the checks run on it, their errors name the
    files it was copied from."""

    def __init__(self, source: Path, folder: Path, weights: Path | None):
        self.name, self.source, self.folder, self.weights = source.name, source, folder, weights
        self.files = packaged_files(source)
        for relative in self.files:
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / relative, folder / relative)
        if weights is not None:
            (folder / "models").mkdir(exist_ok=True)
            shutil.copy2(weights, folder / MODEL)
            self.files.append(MODEL)

    def failure(self, relative: Path, problem: str, error: BaseException | None = None) -> PackagingError:
        """`problem` with `error` (under MONAI's RuntimeErrors "Failed to evaluate/instantiate ...",
        which only name the config item), every staged path shown as the file it came from."""
        if error is not None:
            while isinstance(error.__cause__, Exception) and str(error).startswith(MONAI_WRAPPERS):
                error = error.__cause__
            problem += f": {type(error).__name__}: {error}"
        if self.weights is not None:
            problem = problem.replace(str(self.folder / MODEL), str(self.weights))
        original = self.weights if relative == MODEL else self.source / relative
        return PackagingError(f"bundle {self.name}: {original}: {problem.replace(str(self.folder), str(self.source))}")

    def check_metadata(self, schema: Path | None, download: bool) -> tuple[str, MetadataCheck]:
        """The metadata's version and the check that validated it; the version needs a changelog entry."""
        try:
            check = check_metadata(self.folder / METADATA, schema, download)
        except MetadataError as error:
            if Path(error.file) != self.folder / METADATA:  # the schema file itself
                raise PackagingError(f"bundle {self.name}: {error}") from error
            raise self.failure(METADATA, f"does not validate: {error.problem}") from error
        metadata = json.loads((self.folder / METADATA).read_text())
        version, changelog = metadata["version"], metadata.get("changelog", {})
        if version not in changelog:
            entries = ", ".join(changelog) or "none"
            raise self.failure(METADATA, f"version {version} has no entry in its changelog (entries: {entries})")
        return version, check

    def inference_configs(self) -> list[str]:
        """inference.json, on top of train.json where inference.json overrides it (no network_def)."""
        inference = self.folder / INFERENCE
        if "network_def" in json.loads(inference.read_text()):
            return [str(inference)]
        return [str(self.folder / "configs" / "train.json"), str(inference)]

    def check_weights(self) -> None:
        """The inference configs' ``network``, parsed as a user's run parses it, holds exactly the
        packaged weights (the bundle's own loader checks their settings and shapes)."""
        parser = ConfigParser()
        parser.read_config(self.inference_configs())
        parser["bundle_root"] = str(self.folder)
        try:
            packaged = read_checkpoint(self.folder / MODEL)[WEIGHTS_KEY]
            network = parser.get_parsed_content("network")
        except Exception as error:
            raise self.failure(MODEL, "does not load into configs/inference.json's network", error) from error
        loaded = network.state_dict()
        if loaded.keys() != packaged.keys() or not all(torch.equal(loaded[key].cpu(), packaged[key]) for key in loaded):
            raise self.failure(MODEL, "configs/inference.json's network does not hold these weights (it does not load models/model.pt)")

    def check_network(self, overrides: dict) -> None:
        """MONAI's ``verify_net_in_out`` of ``network_def`` against the metadata."""
        try:
            verify_net_in_out(
                net_id="network_def",
                meta_file=str(self.folder / METADATA),
                config_file=self.inference_configs(),
                bundle_root=str(self.folder),
                **overrides,
            )
        except Exception as error:
            raise self.failure(INFERENCE, "verify_net_in_out network_def failed", error) from error

    def write_zip(self, zip_file: Path) -> None:
        """``NAME/...`` entries, written to a temporary file beside `zip_file` and renamed when complete.
        The weights are stored as they are: deflate shrank a ResNet-18 U-Net's 44 MB by under a tenth."""
        zip_file.parent.mkdir(parents=True, exist_ok=True)
        handle, partial = tempfile.mkstemp(dir=zip_file.parent, prefix=f".{zip_file.name}.", suffix=".partial")
        os.close(handle)
        try:
            with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                for relative in self.files:
                    stored = zipfile.ZIP_STORED if relative == MODEL else zipfile.ZIP_DEFLATED
                    archive.write(self.folder / relative, f"{self.name}/{relative.as_posix()}", compress_type=stored)
            os.replace(partial, zip_file)
        finally:
            if os.path.exists(partial):
                os.remove(partial)


def package(bundle: Path, weights: Path | None, output_dir: Path, schema: Path | None = None, download: bool = True) -> Path:
    if weights is not None and not weights.is_file():
        raise PackagingError(f"bundle {bundle.name}: {weights}: weights file not found")
    print(f"packaging bundle {bundle.name} from {bundle}", flush=True)
    with tempfile.TemporaryDirectory(prefix="package_bundle_") as work:
        staged = StagedBundle(bundle, Path(work) / bundle.name, weights)
        version, check = staged.check_metadata(schema, download)
        print(f"  {METADATA}: valid by {check.description}; version {version} has a changelog entry", flush=True)
        if weights is None:
            staged.check_network(STAND_IN_SETTINGS.get(bundle.name, {}))
            print("  verify_net_in_out network_def: passed for the default network (no weights packaged)", flush=True)
        else:
            staged.check_weights()
            print(f"  {weights}: loads into configs/inference.json's network as {MODEL}", flush=True)
            staged.check_network({})
            print("  verify_net_in_out network_def: passed for the network of the packaged weights", flush=True)
        zip_file = output_dir / f"{bundle.name}_v{version}.zip"
        staged.write_zip(zip_file)
        print(f"wrote {zip_file} ({len(staged.files)} files, {zip_file.stat().st_size / 2**20:.1f} MiB)", flush=True)
    return zip_file


def bundle_folder(bundle: str) -> Path | None:
    """A name under bundles/, or a path to a bundle folder (one with configs/metadata.json)."""
    for folder in (BUNDLES / bundle, Path(bundle)):
        if (folder / "configs" / "metadata.json").is_file():
            return folder.resolve()
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", help=f"a bundle name ({', '.join(bundle_names())}) or a bundle folder")
    parser.add_argument("--weights", type=Path, help="checkpoint to ship as models/model.pt (default: none, as large_files.yml says)")
    parser.add_argument("--output_dir", type=Path, default=Path("dist"), help="where NAME_vVERSION.zip goes (default dist)")
    parser.add_argument("--schema", type=Path, help=f"MONAI's metadata schema file (default ${SCHEMA_ENVIRONMENT_VARIABLE}, else the user cache)")
    parser.add_argument("--no_download", action="store_true", help="never download the schema: use the built-in check where it is not at hand")
    args = parser.parse_args(argv)
    bundle = bundle_folder(args.bundle)
    if bundle is None:
        parser.error(f"no bundle {args.bundle!r}: give one of {', '.join(bundle_names())}, or a folder with configs/metadata.json")
    try:
        package(bundle, args.weights, args.output_dir, args.schema, not args.no_download)
    except PackagingError as error:
        print(f"package_bundle: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
