"""Data layer: datalists and their checks, label-fraction subsets, report text, image reading and
report tokenisation."""

from .classification_targets import CLASSIFICATION_TASKS, ClassificationTargetd, classification_target, datalist_class_names
from .datalist import (
    SPLITS,
    datalist_splits,
    image_or_split,
    items_with,
    keep_keys,
    load_datalist,
    mark_duplicate_reports,
    split_by_group,
    write_datalist,
)
from .datalist_check import BadItem, DatalistCheck, check_datalist_items, drop_unreadable_items, readable_items
from .errors import DataError
from .grounding_items import finding_phrase, grounding_items, phrase_items
from .heatmap_files import WriteHeatmapd, heatmap_overlay, write_heatmap_files
from .image_loading import ChestXrayReader, DataErrorCompose, chest_xray_transforms, read_image_2d
from .mask_files import save_mask_pngs
from .mask_fraction import mask_fraction
from .report_sections import extract_sections
from .report_text import compose_report, normalise_report_text, split_sentences
from .subsets import label_fraction
from .tokenization import TokenizeReportd, default_text_encoder_path
from .xy_order import ToXYOrderd

__all__ = [
    "SPLITS",
    "BadItem",
    "CLASSIFICATION_TASKS",
    "ChestXrayReader",
    "ClassificationTargetd",
    "DataErrorCompose",
    "DataError",
    "WriteHeatmapd",
    "DatalistCheck",
    "TokenizeReportd",
    "chest_xray_transforms",
    "check_datalist_items",
    "classification_target",
    "compose_report",
    "datalist_class_names",
    "datalist_splits",
    "default_text_encoder_path",
    "drop_unreadable_items",
    "readable_items",
    "extract_sections",
    "image_or_split",
    "items_with",
    "keep_keys",
    "label_fraction",
    "load_datalist",
    "mark_duplicate_reports",
    "mask_fraction",
    "save_mask_pngs",
    "normalise_report_text",
    "read_image_2d",
    "split_by_group",
    "split_sentences",
    "write_datalist",
    "finding_phrase",
    "grounding_items",
    "heatmap_overlay",
    "phrase_items",
    "write_heatmap_files",
    "ToXYOrderd",
]
