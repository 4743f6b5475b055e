"""The reclf_segmentation bundle's workflows parsed and run in this process (the CLI's settings,
without its start-up time): its own tests, the packaging test and the MONAI Label server test run
it so."""

from __future__ import annotations

from pathlib import Path

from bundle_testing import BUNDLES
from monai.bundle import ConfigWorkflow

BUNDLE = BUNDLES / "reclf_segmentation"
CONFIGS = BUNDLE / "configs"
IMAGE_SIZE = 64


def parsed_workflow(configs: list[str], workflow_type: str, **overrides) -> ConfigWorkflow:
    settings = {
        "bundle_root": str(BUNDLE),
        **{key: str(value) if isinstance(value, Path) else value for key, value in overrides.items()},
    }
    config_file = [str(CONFIGS / name) for name in configs]
    workflow = ConfigWorkflow(config_file=config_file, workflow_type=workflow_type, logging_file=False, **settings)
    workflow.initialize()
    return workflow


def run_in_process(configs: list[str], **overrides) -> None:
    """A workflow run in this process (the CLI's own path is tested by test_segmentation_bundle's runs)."""
    workflow = parsed_workflow(configs, "infer", num_workers=0, **overrides)
    workflow.run()
    workflow.finalize()
