"""A real MONAI Label 0.8.5 server (scripts/monailabel_server.sh) serves reclf_segmentation: its
masks for a PNG and a DICOM equal the bundle's own inference, pixel for pixel and in the input's
orientation.

The server runs in its own lean virtual environment (the torch 2.13.0 CPU wheel, monailabel without
its declared dependencies plus what its server imports, numpy<2, pydicom<3, no torchvision; the
script's header says why), built once per machine by the script and reused afterwards; building it
takes about 1.5 minutes and 2.4 GB on a 2-core VM. If it cannot be built, this test fails with the
script's output: no silent skip.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from bundle_testing import free_port, with_centred_logits
from PIL import Image
from repository import ROOT
from sample_files import real_chest_dicom
from segmentation_testing import IMAGE_SIZE, run_in_process

from reclf_monai.data import ToXYOrderd, load_datalist
from reclf_monai.data.image_loading import read_display_intensities
from reclf_monai.networks import PretrainedUNet
from reclf_monai.phantom import build_corpus

pytestmark = pytest.mark.end_to_end

SCRIPT = ROOT / "scripts" / "monailabel_server.sh"
MODEL = "reclf_segmentation"
DECODER = [16, 8, 8, 8, 8]
SETUP_TIMEOUT_S = 900  # building the environment on a new machine (about 1.5 minutes)
START_TIMEOUT_S = 240


def multipart(fields: dict[str, str], files: dict[str, Path]) -> tuple[bytes, str]:
    """A multipart/form-data body (the standard library has no encoder for it)."""
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode() for name, value in fields.items()]
    for name, path in files.items():
        header = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{path.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        parts.append(header.encode() + path.read_bytes() + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


@pytest.fixture(scope="module")
def server_environment() -> Path:
    """The server's environment folder, built or found current by the script."""
    result = subprocess.run(["bash", str(SCRIPT), "--setup-only"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=SETUP_TIMEOUT_S)
    if result.returncode != 0:
        pytest.fail(f"the MONAI Label environment could not be built:\n{result.stdout[-6000:]}")
    return Path(re.search(r"\[monailabel\] (?:environment is current: |building the server environment in )(\S+)", result.stdout)[1])


def test_the_server_environment_is_lean(server_environment):
    """At most 3 GB on disk (monailabel's own dependency tree took 8.4 GB)."""
    size = sum(os.lstat(os.path.join(folder, name)).st_size for folder, _, names in os.walk(server_environment) for name in names)
    assert size <= 3 * 2**30, f"{server_environment}: {size / 2**30:.2f} GiB"


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    """An IU-Phantom PNG (square) and a real chest DICOM (MONOCHROME1, 1955 x 1841, not square)."""
    corpus = tmp_path_factory.mktemp("iu_phantom")
    build_corpus(corpus, image_size=IMAGE_SIZE, seed=0, limit=4, workers=1)
    png = Path(load_datalist(corpus / "datalist.json", "training")[0]["image"])
    return {"png": png, "dicom": real_chest_dicom()}


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """A segmentation checkpoint as the bundle's training writes it (weights + settings), of a
    network whose masks are neither empty nor full."""
    torch.manual_seed(0)
    network = with_centred_logits(PretrainedUNet(decoder_channels=DECODER, img_size=IMAGE_SIZE))
    path = tmp_path_factory.mktemp("weights") / "model.pt"
    torch.save({"model": network.state_dict(), "network_settings": network.settings}, path)
    return path


@pytest.fixture(scope="module")
def server(server_environment, images, weights, tmp_path_factory):
    """The server on a free port of 127.0.0.1, stopped (its whole process group) after the tests."""
    folder = tmp_path_factory.mktemp("monailabel")
    studies = folder / "studies"
    studies.mkdir()
    (studies / images["png"].name).write_bytes(images["png"].read_bytes())
    port = free_port()
    log = (folder / "server.log").open("w")
    command = ["bash", str(SCRIPT), "--weights", str(weights), "--studies", str(studies), "--app_dir", str(folder / "app"), "--port", str(port)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"the server exited with status {process.returncode}:\n{(folder / 'server.log').read_text()[-6000:]}")
            try:
                with urllib.request.urlopen(f"{url}/info/", timeout=10) as response:
                    info = json.load(response)
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    pytest.fail(f"no answer on {url}/info/ after {START_TIMEOUT_S} s:\n{(folder / 'server.log').read_text()[-6000:]}")
                time.sleep(1)
        yield {"url": url, "info": info, "png_id": images["png"].stem}
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


@pytest.fixture(scope="module")
def bundle_masks(images, weights, tmp_path_factory) -> dict[str, np.ndarray]:
    """The bundle's own inference.json with the same weights (a MONAI workflow in this process;
    the CLI path is tested in test_segmentation_bundle): 0/255 masks."""
    run_dir = tmp_path_factory.mktemp("bundle_inference")
    datalist = run_dir / "images.json"
    datalist.write_text(json.dumps({"test": [{"image": str(path)} for path in images.values()]}))
    run_in_process(["inference.json"], ckpt_dir=weights.parent, infer_datalist=datalist, output_dir=run_dir / "eval")
    return {kind: np.asarray(Image.open(run_dir / "eval" / f"{path.stem}_mask.png")) for kind, path in images.items()}


def served_mask(response: bytes, folder: Path) -> np.ndarray:
    (folder / "served.png").write_bytes(response)
    with Image.open(folder / "served.png") as mask:
        return np.asarray(mask)


def infer(server, folder: Path, query: str, files: dict[str, Path] | None = None) -> np.ndarray:
    """``POST /infer/MODEL?...&output=image``, asking for a uint8 PNG (a DICOM input would
    otherwise get its result written as DICOM, the input's extension)."""
    body, content_type = multipart({"params": json.dumps({"result_dtype": "uint8", "result_extension": ".png"})}, files or {})
    request = urllib.request.Request(f"{server['url']}/infer/{MODEL}?{query}&output=image", data=body, method="POST", headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=300) as response:
        assert response.status == 200 and response.headers["Content-Type"] == "image/png"
        return served_mask(response.read(), folder)


def test_server_lists_the_bundle_as_a_2d_segmentation_model(server):
    model = server["info"]["models"][MODEL]
    assert model["type"] == "segmentation" and model["dimension"] == 2
    assert server["info"]["datastore"]["total"] == 1  # the PNG in the studies folder


@pytest.mark.parametrize("kind", ["png", "dicom"])
def test_served_masks_equal_the_bundles_own_inference(server, images, bundle_masks, tmp_path, kind):
    """The PNG is served from the studies folder by its image id, the DICOM is uploaded (MONAI
    Label's local datastore lists no DICOM files); both masks come back in the input's rows and
    columns, with the same pixels as the bundle's inference.json writes."""
    if kind == "png":
        served = infer(server, tmp_path, f"image={server['png_id']}")
    else:
        served = infer(server, tmp_path, "", files={"file": images[kind]})
    expected = bundle_masks[kind]
    assert 0 < (expected > 0).mean() < 1, "the test weights should give a mask that is neither empty nor full"
    assert served.dtype == np.uint8 and set(np.unique(served)) <= {0, 1}
    assert served.shape == expected.shape == read_display_intensities(images[kind]).shape
    np.testing.assert_array_equal(served > 0, expected > 0)


def test_xy_order_refuses_a_prediction_that_is_not_one_2d_channel():
    with pytest.raises(ValueError, match=r"'pred' should be one 2-D channel .* shape \(2, 4, 3\)"):
        ToXYOrderd("pred")({"pred": torch.zeros(2, 4, 3)})
