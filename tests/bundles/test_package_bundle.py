"""scripts/package_bundle.py: reclf_segmentation zipped with weights as the MONAI model zoo ships a
bundle, downloaded back with MONAI's own CLI (a file:// URL, and HTTP from a server on 127.0.0.1),
run from its download folder; and the packages it refuses to write.

One module fixture packages and downloads once; the weights are a small untrained U-Net saved the
way the bundle's training saves its best model.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import monai.bundle
import monai.bundle.scripts
import numpy as np
import pytest
import torch
from bundle_testing import BUNDLES, load_checkpoint, monai_bundle, succeeded, with_centred_logits
from PIL import Image
from repository import ROOT
from segmentation_testing import run_in_process

from reclf_monai.networks import PretrainedUNet
from scripts import package_bundle

pytestmark = pytest.mark.end_to_end

NAME = "reclf_segmentation"
BUNDLE = BUNDLES / NAME
VERSION = json.loads((BUNDLE / "configs" / "metadata.json").read_text())["version"]
IMAGE_SIZE = 64
DECODER = [32, 16, 16, 8, 8]



def unet(decoder=DECODER, out_channels: int = 1) -> PretrainedUNet:
    return PretrainedUNet(out_channels=out_channels, decoder_channels=decoder, img_size=IMAGE_SIZE)


def save_checkpoint(path: Path, network: PretrainedUNet, weights: dict | None = None) -> Path:
    """What reclf_segmentation's training saves as models/model.pt: {"model", "network_settings"};
    `weights` puts other weights beside the network's settings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": network.state_dict() if weights is None else weights, "network_settings": network.settings}, path)
    return path


def source_files() -> set[str]:
    """The bundle's files as the repository sees them (committed or new, not ignored), hidden ones aside."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", str(BUNDLE)], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return {str(Path(path).relative_to(BUNDLE.relative_to(ROOT))) for path in listed if not Path(path).name.startswith(".")}


def zip_names(zip_file: Path) -> set[str]:
    with zipfile.ZipFile(zip_file) as archive:
        return set(archive.namelist())


@contextmanager
def http_server(folder: Path):
    """Serves `folder` on 127.0.0.1 (a free port); yields its base URL and the request lines it got."""
    requests = []

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, format, *args):
            requests.append(self.requestline)

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def download(bundle_dir: Path, url: str) -> Path:
    """``python -m monai.bundle download`` of `url` into `bundle_dir`; the unpacked bundle's folder."""
    result = monai_bundle(bundle_dir.parent, "download", "--name", NAME, "--version", VERSION, "--url", url, "--bundle_dir", str(bundle_dir))
    assert succeeded(result)
    return bundle_dir / NAME


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> SimpleNamespace:
    folder = tmp_path_factory.mktemp("release")
    torch.manual_seed(0)
    weights = save_checkpoint(folder / "weights" / "model.pt", with_centred_logits(unet()))
    assert package_bundle.main([NAME, "--weights", str(weights), "--output_dir", str(folder / "dist"), "--no_download"]) == 0
    zip_file = folder / "dist" / f"{NAME}_v{VERSION}.zip"
    with http_server(zip_file.parent) as (url, requests), ThreadPoolExecutor(2) as downloads:  # two CLI starts at once
        from_file = downloads.submit(download, folder / "from_file", zip_file.as_uri())
        from_http = downloads.submit(download, folder / "from_http", f"{url}/{zip_file.name}")
        downloaded = [from_file.result(), from_http.result()]
    return SimpleNamespace(weights=weights, zip_file=zip_file, downloads=downloaded, requests=requests)


def test_zip_holds_the_bundle_and_the_weights_in_one_top_level_folder(released):
    assert sorted(path.name for path in released.zip_file.parent.iterdir()) == [released.zip_file.name]
    expected = {f"{NAME}/{path}" for path in source_files() | {"models/model.pt"}}
    assert "large_files.yml" in source_files() and "configs/inference.json" in source_files()
    assert zip_names(released.zip_file) == expected
    with zipfile.ZipFile(released.zip_file) as archive:
        assert archive.read(f"{NAME}/models/model.pt") == released.weights.read_bytes()
        assert archive.read(f"{NAME}/configs/metadata.json") == (BUNDLE / "configs" / "metadata.json").read_bytes()


def test_monai_download_unpacks_it_from_a_file_url_and_over_http(released):
    assert released.requests == [f"GET /{released.zip_file.name} HTTP/1.1"]
    with zipfile.ZipFile(released.zip_file) as archive:
        packed = {name: archive.read(name) for name in archive.namelist()}
    for bundle in released.downloads:
        unpacked = {f"{NAME}/{path.relative_to(bundle).as_posix()}": path.read_bytes() for path in bundle.rglob("*") if path.is_file()}
        assert unpacked == packed


def write_images(folder: Path) -> Path:
    """Two small PNGs (noise, and a gradient of another shape) and a datalist naming them."""
    folder.mkdir(parents=True)
    noise = np.random.default_rng(0).integers(0, 256, size=(IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    gradient = np.tile(np.linspace(0, 255, 40, dtype=np.uint8), (56, 1))
    for name, pixels in (("noise.png", noise), ("gradient.png", gradient)):
        Image.fromarray(pixels).save(folder / name)
    datalist = folder / "images.json"
    datalist.write_text(json.dumps({"test": [{"image": str(folder / name)} for name in ("noise.png", "gradient.png")]}))
    return datalist


def masks(folder: Path) -> dict[str, np.ndarray]:
    return {path.name: np.asarray(Image.open(path)) for path in sorted(folder.glob("*_mask.png"))}


def test_downloaded_bundle_infers_from_its_own_folder_as_the_source_bundle_does(released, tmp_path):
    """inference.json of the download, run by MONAI's CLI with the folder as working directory
    (bundle_root "." and models/model.pt as shipped), writes the masks the source bundle writes
    with the same weights, pixel for pixel."""
    datalist = write_images(tmp_path / "images")
    downloaded = released.downloads[1]
    result = monai_bundle(
        downloaded, "run", "--config_file", "configs/inference.json", "--logging_file", "configs/logging.conf",
        "--infer_datalist", str(datalist), "--num_workers", "0",
    )  # fmt: skip
    assert succeeded(result)
    assert f"loaded weights from ./models/model.pt (backbone resnet18, img_size {IMAGE_SIZE}, out_channels 1)" in result.stdout
    run_in_process(["inference.json"], infer_datalist=datalist, ckpt_dir=released.weights.parent, output_dir=tmp_path / "source")
    written, expected = masks(downloaded / "eval"), masks(tmp_path / "source")
    assert list(written) == ["gradient_mask.png", "noise_mask.png"] == list(expected)
    for name in written:
        np.testing.assert_array_equal(written[name], expected[name])
    assert written["gradient_mask.png"].shape == (56, 40) and written["noise_mask.png"].shape == (IMAGE_SIZE, IMAGE_SIZE)
    assert all(set(np.unique(mask)) == {0, 255} for mask in written.values())  # neither mask is blank or full


def test_monai_bundle_load_returns_the_network_with_the_packaged_weights(released, monkeypatch):
    downloaded = released.downloads[0]
    assert (downloaded / "models" / "model.pt").is_file()  # so load() reads it and downloads nothing
    monkeypatch.chdir(downloaded)  # inference.json reads the network's settings from ./models/model.pt
    network = monai.bundle.load(
        name=NAME, bundle_dir=str(downloaded.parent), source="github", workflow_type="inference", key_in_ckpt="model", device="cpu"
    )
    assert isinstance(network, PretrainedUNet)
    loaded, packaged = network.state_dict(), load_checkpoint(released.weights)["model"]
    assert loaded.keys() == packaged.keys()
    assert all(torch.equal(loaded[name], packaged[name]) for name in loaded)


def test_github_source_fetches_the_release_asset(released, tmp_path, monkeypatch):
    """``download --source github --repo OWNER/REPO/TAG`` asks for the release asset NAME_vVERSION.zip
    and unpacks it like --url does (MONAI's download_url replaced by a copy of the zip: no network)."""
    fetched = []

    def copy_of_the_zip(url, filepath, **kwargs):
        fetched.append(url)
        shutil.copyfile(released.zip_file, filepath)

    monkeypatch.setattr(monai.bundle.scripts, "download_url", copy_of_the_zip)
    monai.bundle.download(name=NAME, version=VERSION, source="github", repo="OWNER/REPO/TAG", bundle_dir=str(tmp_path), progress=False)
    assert fetched == [f"https://github.com/OWNER/REPO/releases/download/TAG/{NAME}_v{VERSION}.zip"]
    assert (tmp_path / NAME / "models" / "model.pt").read_bytes() == released.weights.read_bytes()


def bundle_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "source" / NAME
    shutil.copytree(BUNDLE, copy, ignore=shutil.ignore_patterns("models", "eval", "__pycache__"))
    return copy


def refusal(capsys, *arguments: str) -> str:
    assert package_bundle.main([*arguments, "--no_download"]) == 1
    return capsys.readouterr().err


def test_refuses_a_version_without_a_changelog_entry(tmp_path, capsys):
    bundle = bundle_copy(tmp_path)
    metadata_file = bundle / "configs" / "metadata.json"
    metadata = json.loads(metadata_file.read_text())
    metadata["version"] = "9.9.9"
    metadata_file.write_text(json.dumps(metadata))
    error = refusal(capsys, str(bundle), "--output_dir", str(tmp_path / "dist"))
    entries = ", ".join(metadata["changelog"])
    assert error == f"package_bundle: bundle {NAME}: {metadata_file}: version 9.9.9 has no entry in its changelog (entries: {entries})\n"
    assert not (tmp_path / "dist").exists()


def test_refuses_metadata_the_schema_rejects(tmp_path, capsys):
    bundle = bundle_copy(tmp_path)
    metadata_file = bundle / "configs" / "metadata.json"
    metadata = json.loads(metadata_file.read_text())
    del metadata["network_data_format"]
    metadata_file.write_text(json.dumps(metadata))
    error = refusal(capsys, str(bundle), "--output_dir", str(tmp_path / "dist"))
    assert error.startswith(f"package_bundle: bundle {NAME}: {metadata_file}: does not validate: top level: 'network_data_format' is a required property")
    assert not (tmp_path / "dist").exists()


@pytest.mark.parametrize("kind", ["other_weights", "plain_state_dict", "two_channels"])
def test_refuses_weights_that_do_not_fit(kind, tmp_path, capsys):
    """Weights of another decoder beside the settings, a bare state_dict: they do not load; a
    well-formed checkpoint of a two-channel U-Net loads but contradicts metadata.json (one channel)."""
    weights = tmp_path / "weights.pt"
    if kind == "other_weights":
        save_checkpoint(weights, unet(), weights=unet(decoder=[16, 16, 8, 8, 8]).state_dict())
    elif kind == "plain_state_dict":
        torch.save(unet().state_dict(), weights)
    else:
        save_checkpoint(weights, unet(out_channels=2))
    error = refusal(capsys, NAME, "--weights", str(weights), "--output_dir", str(tmp_path / "dist"))
    problems = {
        "other_weights": f"{weights}: does not load into configs/inference.json's network: DataError: {weights}: weights do not fit the network",
        "plain_state_dict": f"{weights}: does not load into configs/inference.json's network: DataError: {weights}: not a RECLF checkpoint",
        "two_channels": f"{BUNDLE / 'configs' / 'inference.json'}: verify_net_in_out network_def failed: ValueError: output channel number `2` doesn't match: `1`",
    }
    assert error.startswith(f"package_bundle: bundle {NAME}: {problems[kind]}")
    assert not (tmp_path / "dist").exists()


def test_without_weights_the_zip_keeps_large_files_yml_and_leaves_outputs_and_caches_out(tmp_path, capsys):
    bundle = bundle_copy(tmp_path)
    for junk in ("models/model.pt", "models/.gitkeep", "eval/metrics.json", "configs/__pycache__/x.cpython-311.pyc", ".cache/x", "docs/.notes"):
        (bundle / junk).parent.mkdir(parents=True, exist_ok=True)
        (bundle / junk).write_text("not shipped")
    assert package_bundle.main([str(bundle), "--output_dir", str(tmp_path / "dist"), "--no_download"]) == 0
    assert "passed for the default network (no weights packaged)" in capsys.readouterr().out
    names = zip_names(tmp_path / "dist" / f"{NAME}_v{VERSION}.zip")
    assert names == {f"{NAME}/{path}" for path in source_files()}
    assert f"{NAME}/large_files.yml" in names and not any(name.startswith(f"{NAME}/models/") for name in names)


def test_an_unknown_bundle_name_lists_the_bundles(capsys):
    with pytest.raises(SystemExit) as exited:
        package_bundle.main(["reclf_segmentaton"])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    names = sorted(path.parent.name for path in BUNDLES.glob("*/LICENSE"))
    assert len(names) == 6 and f"no bundle 'reclf_segmentaton': give one of {', '.join(names)}" in error
