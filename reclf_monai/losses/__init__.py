"""Contrastive losses for image-report pretraining."""

from reclf_monai.losses.contrastive import ContrastiveLoss, SymmetricInfoNCE

__all__ = ["ContrastiveLoss", "SymmetricInfoNCE"]
