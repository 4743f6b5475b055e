"""Weight files in torchvision's ResNet layout, written from torchvision's key names and shapes
(``torchvision.models.resnet``), not from this project's networks: stand-ins for ImageNet files."""

from __future__ import annotations

import torch

# torchvision.models.resnet: blocks per layer, and whether a layer's blocks are Bottlenecks.
TORCHVISION_LAYERS = {"resnet18": ((2, 2, 2, 2), False), "resnet34": ((3, 4, 6, 3), False), "resnet50": ((3, 4, 6, 3), True)}


def batch_norm(prefix: str, channels: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.{name}": (channels,) for name in ("weight", "bias", "running_mean", "running_var")} | {
        f"{prefix}.num_batches_tracked": ()
    }


def torchvision_resnet_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of torchvision's ``resnetN().state_dict()``: conv1/bn1, layerL.B.convK/bnK,
    layerL.0.downsample.{0 conv, 1 batch norm} (no conv bias anywhere), fc (1000 classes)."""
    blocks, bottleneck = TORCHVISION_LAYERS[name]
    expansion = 4 if bottleneck else 1
    shapes = {"conv1.weight": (64, 3, 7, 7), **batch_norm("bn1", 64)}
    in_channels = 64
    for layer, (repeats, width) in enumerate(zip(blocks, (64, 128, 256, 512)), start=1):
        for block in range(repeats):
            prefix = f"layer{layer}.{block}"
            if bottleneck:
                convs = [(width, in_channels, 1), (width, width, 3), (width * expansion, width, 1)]
            else:
                convs = [(width, in_channels, 3), (width, width, 3)]
            for index, (out_channels, conv_in, kernel) in enumerate(convs, start=1):
                shapes[f"{prefix}.conv{index}.weight"] = (out_channels, conv_in, kernel, kernel)
                shapes |= batch_norm(f"{prefix}.bn{index}", out_channels)
            if block == 0 and (layer > 1 or bottleneck):
                shapes[f"{prefix}.downsample.0.weight"] = (width * expansion, in_channels, 1, 1)
                shapes |= batch_norm(f"{prefix}.downsample.1", width * expansion)
            in_channels = width * expansion
    return shapes | {"fc.weight": (1000, in_channels), "fc.bias": (1000,)}


def torchvision_file(path, name: str, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    state = {
        key: torch.tensor(7) if key.endswith("num_batches_tracked") else torch.rand(shape, generator=generator) + 0.5
        for key, shape in torchvision_resnet_shapes(name).items()
    }
    torch.save(state, path)
    return state
