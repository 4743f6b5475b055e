"""GLoRIA's text handling: word pieces summed into words, the last layers summed, [SEP] matched and
[CLS] not; on hand-made tokenisations and through the text encoder with the local MiniLM tokenizer."""

from __future__ import annotations

import torch
from transformers import AutoTokenizer

from reclf_monai.data.tokenization import default_text_encoder_path
from reclf_monai.networks import ImageEncoder, RECLFModel, TextEncoder
from reclf_monai.networks.word_pieces import first_piece_ids, sum_into_words, word_slots

CLS, SEP, PAD = 101, 102, 0
CARD, IOM, EGA, IN, LUNG = 10, 11, 12, 13, 14  # "card", "##iom", "##ega": one finding word in three pieces
CONTINUATION = torch.tensor([IOM, EGA])
TINY_BERT = {"hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 2, "intermediate_size": 64}


def test_pieces_of_one_word_share_a_slot_and_padding_has_none():
    input_ids = torch.tensor([[CLS, CARD, IOM, EGA, IN, LUNG, SEP, PAD], [CLS, LUNG, SEP, PAD, PAD, PAD, PAD, PAD]])
    attention_mask = (input_ids != PAD).long()
    slots, counts = word_slots(input_ids, attention_mask, CONTINUATION)
    assert slots.tolist() == [[0, 1, 1, 1, 2, 3, 4, -1], [0, 1, 2, -1, -1, -1, -1, -1]]
    assert counts.tolist() == [5, 3]
    assert first_piece_ids(input_ids, slots, counts, PAD).tolist() == [
        [CLS, CARD, IN, LUNG, SEP, PAD, PAD, PAD],
        [CLS, LUNG, SEP, PAD, PAD, PAD, PAD, PAD],
    ]
    features = torch.arange(16, dtype=torch.float32).view(2, 8, 1).expand(2, 8, 3)
    words = sum_into_words(features, slots)
    assert words[0, :, 0].tolist() == [0, 1 + 2 + 3, 4, 5, 6, 0, 0, 0]  # the padding token's 7 is dropped
    assert words[1, :, 0].tolist() == [8, 9, 10, 0, 0, 0, 0, 0]
    assert torch.equal(sum_into_words(features[..., 0], slots), words[..., 0])  # (B, T) values, e.g. attention


def tokenize(texts, max_length=16):
    tokenizer = AutoTokenizer.from_pretrained(default_text_encoder_path())
    encoded = tokenizer(texts, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
    return tokenizer, encoded["input_ids"], encoded["attention_mask"]


def test_the_encoder_matches_whole_words_from_the_sum_of_the_last_layers():
    torch.manual_seed(0)
    encoder = TextEncoder(embed_dim=8, pretrained=False, config_overrides=TINY_BERT, last_n_layers=2).eval()
    tokenizer, input_ids, attention_mask = tokenize(["Mild cardiomegaly.", "No effusion."])
    pieces = tokenizer.convert_ids_to_tokens(input_ids[0].tolist())
    finding = [i for i, piece in enumerate(pieces) if piece.startswith("##")]
    assert len(finding) >= 1, pieces  # "cardiomegaly" is split into several pieces
    with torch.no_grad():
        features = encoder(input_ids, attention_mask)
        hidden = encoder.model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True).hidden_states
        summed = hidden[-1] + hidden[-2]
    word = finding[0] - 1  # the piece before the first continuation starts the finding word
    slot = int(features["token_words"][0, word])
    pieces_of_word = (features["token_words"][0] == slot).nonzero().flatten().tolist()
    assert pieces_of_word == [word, *[i for i in finding if i > word][: len(pieces_of_word) - 1]]
    torch.testing.assert_close(features["tokens"][0, slot], encoder.token_projection(summed[0, pieces_of_word].sum(0)))
    words = len([piece for piece in tokenizer.tokenize("Mild cardiomegaly.") if not piece.startswith("##")])
    assert features["word_mask"][0].tolist() == [False] + [True] * (words + 1) + [False] * (16 - words - 2)  # words and [SEP]


def test_padding_changes_no_word():
    torch.manual_seed(0)
    encoder = TextEncoder(embed_dim=8, pretrained=False, config_overrides=TINY_BERT).eval()
    _, short_ids, short_mask = tokenize(["Mild cardiomegaly."], max_length=10)
    _, long_ids, long_mask = tokenize(["Mild cardiomegaly."], max_length=24)
    with torch.no_grad():
        short, padded = encoder(short_ids, short_mask), encoder(long_ids, long_mask)
    real = short["word_mask"][0]
    torch.testing.assert_close(padded["tokens"][0, :10][real], short["tokens"][0][real], atol=1e-5, rtol=1e-5)
    assert not padded["word_mask"][0, 10:].any()


def test_checkpoints_from_before_these_settings_rebuild_with_token_level_matching():
    torch.manual_seed(0)
    model = RECLFModel(
        ImageEncoder("resnet18", embed_dim=8), TextEncoder(embed_dim=8, pretrained=False, config_overrides=TINY_BERT), "mean"
    )
    settings = model.settings
    for name in ("last_n_layers", "word_pieces", "sep_as_word"):
        del settings["text_encoder"][name]  # what an earlier checkpoint stores
    rebuilt = RECLFModel.from_settings(settings).text_encoder.settings
    assert (rebuilt["last_n_layers"], rebuilt["word_pieces"], rebuilt["sep_as_word"]) == (1, "tokens", False)
