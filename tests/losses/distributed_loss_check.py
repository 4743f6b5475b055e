"""Run with torchrun: the DDP loss and gradients on a global batch equal the single-process ones.

    torchrun --nproc_per_node=2 tests/losses/distributed_loss_check.py AGGREGATION [MISTAKE]

Each rank first computes the single-process reference on the whole global batch (before the
process group exists), then the distributed loss on its slice; rank 0 compares the rank-mean
loss and the DDP-averaged gradients with the reference and exits non-zero on a mismatch.

Tolerances are relative: float32 sums run in another order in the two computations (and in
another order again on another CPU), so each gradient tensor may differ from the reference by a
small fraction of its own norm, never by a fixed absolute amount. MISTAKE `detached_gather`
gathers the other ranks' features without their gradients (a classic DDP contrastive-loss bug
that leaves the loss unchanged): the check must then report FAIL.
"""

import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from reclf_monai.losses import ContrastiveLoss
from reclf_monai.networks import ImageEncoder, RECLFModel, TextEncoder, reclf_model
from reclf_monai.networks.feature_gathering import gather_features

TINY_BERT = {
    "hidden_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
}


def build_model(aggregation: str) -> RECLFModel:
    torch.manual_seed(0)
    model = RECLFModel(
        ImageEncoder("resnet18", in_channels=1, embed_dim=16),
        TextEncoder(embed_dim=16, pretrained=False, config_overrides=TINY_BERT),
        aggregation,
        match_dim=8,
        relation_heads=2,
    )
    model.train()
    for module in model.modules():  # batch statistics would differ between slices of the batch
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()
    return model


def global_batch(size: int = 4):
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(size, 1, 64, 64, generator=generator)
    input_ids = torch.randint(1000, 3000, (size, 10), generator=generator)
    input_ids[:, 0], input_ids[:, -1] = 101, 102
    attention_mask = torch.ones_like(input_ids)
    attention_mask[::2, 7:] = 0  # some padded reports
    input_ids[::2, 7:] = 0
    input_ids[::2, 6] = 102
    return images, input_ids, attention_mask


# Relative tolerances: float32 reorderings change results by ~1e-7 relative per operation; a
# gradient that misses another rank's contribution differs by tens of percent.
LOSS_RTOL = 1e-5
GRADIENT_RTOL = 1e-4


def gradients(model):
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def relative_error(value: torch.Tensor, reference: torch.Tensor, floor: float) -> float:
    """||value - reference|| / max(||reference||, floor): the floor keeps an all-but-zero reference
    gradient from turning rounding noise into a large ratio."""
    return float((value - reference).norm() / max(float(reference.norm()), floor))


def detached_gather(features):
    """The deliberate mistake: other ranks' features arrive without their gradients."""
    return gather_features({key: value.detach() for key, value in features.items()})


def main(aggregation: str, mistake: str | None = None) -> int:
    torch.set_num_threads(1)
    if mistake == "detached_gather":
        reclf_model.gather_features = detached_gather
    elif mistake is not None:
        raise SystemExit(f"unknown mistake {mistake!r}")
    images, input_ids, attention_mask = global_batch()
    loss_function = ContrastiveLoss()

    reference_model = build_model(aggregation)
    reference_loss = loss_function(reference_model(images, input_ids, attention_mask))
    reference_loss.backward()
    reference_gradients = gradients(reference_model)

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    per_rank = images.shape[0] // world
    part = slice(rank * per_rank, (rank + 1) * per_rank)
    model = DistributedDataParallel(build_model(aggregation))
    loss = loss_function(model(images[part], input_ids[part], attention_mask[part]))
    loss.backward()
    mean_loss = loss.detach().clone()
    dist.all_reduce(mean_loss)
    mean_loss /= world
    ddp_gradients = gradients(model.module)

    failures = []
    loss_error = relative_error(mean_loss, reference_loss.detach(), floor=1e-12)
    if loss_error > LOSS_RTOL:
        failures.append(f"loss {mean_loss.item():.6f} != single-process {reference_loss.item():.6f} (relative error {loss_error:.1e})")
    if set(ddp_gradients) != set(reference_gradients):
        failures.append("different parameters received gradients")
    # The floor: a hundredth of the root-mean-square tensor norm. Some gradients are zero in exact
    # arithmetic (a bias before a softmax, which is shift-invariant) and hold only rounding noise.
    norms = torch.stack([gradient.norm() for gradient in reference_gradients.values()])
    floor = 1e-2 * float(norms.square().mean().sqrt())
    errors = {
        name: relative_error(gradient, reference_gradients[name], floor)
        for name, gradient in ddp_gradients.items()
        if name in reference_gradients
    }
    for name, error in errors.items():
        if error > GRADIENT_RTOL:
            failures.append(f"gradient of {name} differs (relative error {error:.1e} > {GRADIENT_RTOL:.0e})")
    if rank == 0:
        worst = max(errors, key=errors.get)
        print(
            f"DDP_LOSS_CHECK {aggregation} ranks={world} ddp={mean_loss.item():.6f} single={reference_loss.item():.6f} "
            f"loss_relative_error={loss_error:.1e} worst_gradient={worst} relative_error={errors[worst]:.1e}"
        )
        for failure in failures:
            print("FAIL", failure)
    dist.destroy_process_group()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]) if len(sys.argv) > 1 else main("reclf"))
