"""RECLF-MONAI: relation-enhanced contrastive vision-language pretraining for chest X-rays."""

__version__ = "0.2.0"
