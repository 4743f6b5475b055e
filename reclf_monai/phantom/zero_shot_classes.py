"""The five IU-Phantom classes (CheXpert-5-like) used for class targets and zero-shot tests.

Each class gathers the phantom finding types drawn the same way: Opacity includes airspace
disease, infiltrate, consolidation and pneumonia; Pleural Effusion includes a blunted
costophrenic angle (a trace of fluid); Nodule includes calcified granulomas. The prompts are
what a zero-shot classifier compares images against (several per class, some with locations).
"""

from __future__ import annotations

from collections.abc import Iterable

ZERO_SHOT_CLASSES = ("Atelectasis", "Cardiomegaly", "Opacity", "Pleural Effusion", "Nodule")

CLASS_OF_FINDING = {
    "Atelectasis": "Atelectasis",
    "Cardiomegaly": "Cardiomegaly",
    "Opacity": "Opacity",
    "Consolidation": "Opacity",
    "Pleural Effusion": "Pleural Effusion",
    "Blunted Costophrenic Angle": "Pleural Effusion",
    "Nodule": "Nodule",
    "Calcified Granuloma": "Nodule",
}

PROMPTS = {
    "Atelectasis": [
        "atelectasis",
        "bibasilar atelectasis",
        "subsegmental atelectasis in the left lung base",
        "linear atelectasis at the right base",
        "plate-like atelectasis",
        "mild atelectasis in the lung bases",
    ],
    "Cardiomegaly": [
        "cardiomegaly",
        "the heart is enlarged",
        "mild cardiomegaly",
        "enlarged cardiac silhouette",
        "the heart size is moderately enlarged",
    ],
    "Opacity": [
        "airspace opacity",
        "patchy airspace disease in the right lower lobe",
        "focal consolidation",
        "infiltrate in the left lung base",
        "pulmonary opacity in the right upper lobe",
        "airspace consolidation concerning for pneumonia",
    ],
    "Pleural Effusion": [
        "pleural effusion",
        "small bilateral pleural effusions",
        "left pleural effusion",
        "right pleural effusion",
        "blunting of the costophrenic angle",
    ],
    "Nodule": [
        "pulmonary nodule",
        "calcified granuloma",
        "small nodular opacity in the right lung",
        "calcified granuloma in the left upper lobe",
        "a nodule in the right lower lobe",
    ],
}


def classes_of(types: Iterable[str]) -> set[str]:
    """The zero-shot classes present among rendered finding types."""
    return {CLASS_OF_FINDING[t] for t in types if t in CLASS_OF_FINDING}


def class_target(types: Iterable[str]) -> list[float]:
    """Multi-hot target over :data:`ZERO_SHOT_CLASSES` for rendered finding types."""
    present = classes_of(types)
    return [1.0 if name in present else 0.0 for name in ZERO_SHOT_CLASSES]


def single_class(types: Iterable[str]) -> str | None:
    """The class when exactly one of the five is present, else None."""
    present = classes_of(types)
    return next(iter(present)) if len(present) == 1 else None
