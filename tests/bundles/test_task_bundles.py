"""What the task bundles check alike, written once for each bundle that shares it: the metadata
against MONAI's schema (classification, zero-shot, retrieval, grounding) and, for the bundles that
evaluate the tiny pretraining checkpoint as it is (retrieval, grounding; tests/shared_fixtures.py),
MONAI's infer properties, the checkpoint's network beside its untrained twin, and verify_net_in_out
and export from inference.json alone."""

from __future__ import annotations

import pytest
import torch
from bundle_testing import (
    BUNDLES,
    assert_metadata_valid,
    assert_network_is_the_checkpoints_or_its_untrained_twin,
    assert_network_matches_metadata,
    export_inference_network,
    pretrained_workflow,
    trained_model,
)

pytestmark = pytest.mark.end_to_end

IMAGE_SIZE = 64  # the tiny pretraining checkpoint's image size ...
EMBED_DIM = 32  # ... and joint dimension
WITH_METADATA_CHECKS = ["reclf_classification", "reclf_zeroshot_classification", "reclf_retrieval", "reclf_grounding"]
# each bundle on the tiny pretraining checkpoint -> the evaluator whose network --load_pretrain switches
ON_THE_CHECKPOINT = {"reclf_grounding": "grounding#evaluator", "reclf_retrieval": "class_retrieval#evaluator"}


@pytest.mark.parametrize("bundle", WITH_METADATA_CHECKS)
def test_metadata_validates_against_monai_schema(bundle, tmp_path):
    assert_metadata_valid(BUNDLES / bundle / "configs", tmp_path)


@pytest.mark.parametrize("configs", [("inference",), ("inference", "evaluate")])
@pytest.mark.parametrize("bundle", ON_THE_CHECKPOINT)
def test_workflows_have_monai_infer_properties(bundle, pretraining_corpus, tiny_pretraining_checkpoint, tmp_path, configs):
    flow = pretrained_workflow(BUNDLES / bundle, pretraining_corpus, tiny_pretraining_checkpoint, tmp_path, *configs)
    flow.initialize()
    assert flow.check_properties() == []


@pytest.mark.parametrize("bundle, evaluator", ON_THE_CHECKPOINT.items())
def test_network_is_the_checkpoints_and_the_baseline_its_untrained_twin(
    bundle, evaluator, pretraining_corpus, tiny_pretraining_checkpoint, tmp_path
):
    def network_for(load_pretrain):
        flow = pretrained_workflow(
            BUNDLES / bundle,
            pretraining_corpus,
            tiny_pretraining_checkpoint,
            tmp_path,
            "inference",
            "evaluate",
            load_pretrain=load_pretrain,
        )
        flow.initialize()
        return flow.parser.get_parsed_content(evaluator).network

    assert_network_is_the_checkpoints_or_its_untrained_twin(network_for, tiny_pretraining_checkpoint)


@pytest.mark.parametrize("bundle", ON_THE_CHECKPOINT)
def test_network_matches_metadata_and_exports_from_inference_json_alone(bundle, tiny_pretraining_checkpoint, tmp_path):
    root, configs, checkpoint = BUNDLES / bundle, BUNDLES / bundle / "configs", tiny_pretraining_checkpoint
    assert_network_matches_metadata(
        configs, tmp_path, pretrained_checkpoint=checkpoint, **{"_meta_#network_data_format#outputs#pred#num_channels": EMBED_DIM}
    )
    scripted = export_inference_network(
        configs, tmp_path, checkpoint, IMAGE_SIZE, bundle_root=root, pretrained_checkpoint=checkpoint
    )
    image = torch.rand(1, 1, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(scripted(image), trained_model(checkpoint)(image), atol=1e-5, rtol=1e-4)
