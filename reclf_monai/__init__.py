"""RECLF-MONAI: relation-enhanced contrastive vision-language pretraining for chest X-rays."""

__version__ = "0.1.0"
