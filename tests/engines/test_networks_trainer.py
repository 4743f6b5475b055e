"""The RECLF model and loss inside MONAI's SupervisedTrainer, as the pretraining bundle uses them."""

import torch
from monai.engines import SupervisedTrainer
from monai.engines.utils import PrepareBatchExtraInput

from reclf_monai.losses import ContrastiveLoss
from reclf_monai.networks import ImageEncoder, RECLFModel, TextEncoder

torch.set_num_threads(1)


def test_one_epoch_of_supervised_trainer_with_token_ids_as_extra_input():
    torch.manual_seed(0)
    tiny_bert = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
    network = RECLFModel(
        ImageEncoder("resnet18", in_channels=1, embed_dim=16),
        TextEncoder(embed_dim=16, pretrained=False, config_overrides=tiny_bert),
        "reclf",
        match_dim=8,
        relation_heads=2,
    )
    batch = {
        "image": torch.randn(3, 1, 64, 64),
        "input_ids": torch.tensor([[101, 2053, 102, 0], [101, 6728, 3012, 102], [101, 2157, 102, 0]]),
        "attention_mask": torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 0]]),
    }
    loss_function = ContrastiveLoss()
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=[batch, batch],
        network=network,
        optimizer=torch.optim.Adam(network.parameters(), lr=1e-3),
        loss_function=loss_function,
        prepare_batch=PrepareBatchExtraInput({"input_ids": "input_ids", "attention_mask": "attention_mask"}),
        decollate=False,  # the prediction is a dict of B x B logits, not per-sample outputs
    )
    srm_correction = network.local_matching.srm.score_correction.weight
    trainer.run()
    assert trainer.state.iteration == 2
    assert torch.isfinite(trainer.state.output["loss"])
    assert set(trainer.state.output["pred"]) >= {"global_logits", "local_logits"}
    assert set(loss_function.parts) == {"loss_global", "loss_local", "temperature_global", "temperature_local"}
    assert srm_correction.abs().sum() > 0  # zero-initialised, moved by the optimiser
