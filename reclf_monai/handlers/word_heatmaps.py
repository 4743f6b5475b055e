"""TensorBoard images of what the local scorer matched in one validation item, at every validation.

The scalars say how well the model retrieves; these images say what it looks at. For the first
item of the first validation batch (the same item at every validation, since validation is not
shuffled) the handler writes, at the validation's epoch:

- ``{prefix}word_heatmap/rank{r}`` (r = 1 .. top_k): the image with the word-to-region attention
  map of the report word weighed r-th highest, in colour on top (blue low, red high; the
  grounding overlay of :func:`reclf_monai.data.heatmap_overlay`). The tags stay the same from
  epoch to epoch, so TensorBoard's step slider shows one rank over training;
- ``{prefix}word_heatmap`` (text; TensorBoard adds ``/text_summary``): the word and weight behind
  each rank, and the report;
- ``{prefix}word_weights``: a bar chart of the word weights over the report's words in reading
  order, the top_k numbered by rank.

The weights are the local scorer's word weights alpha: IRM's importance for `irm` and `reclf`,
uniform for `mean`/`srm`, the [CLS] attention for `fixed_importance`, softmax(temp2 * s) for `lse`.
A word is a whole word: where the text encoder matches pieces on their own, WordPiece
continuation pieces (``##...``) join the word before them, its weight is the sum of its pieces'
weights and its map their weighted mean (the grounding heatmap of that one-word phrase,
:mod:`reclf_monai.networks.grounding`); where it sums pieces into words, each position is a word.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.networks.utils import eval_mode
from PIL import Image, ImageDraw, ImageFont

from reclf_monai.data.heatmap_files import heatmap_overlay
from reclf_monai.data.tokenization import ATTENTION_MASK_KEY, INPUT_IDS_KEY
from reclf_monai.networks.grounding import upsample_heatmaps, word_attention_maps

_CONTINUATION = "##"
_ROW_HEIGHT = 14
_BAR_WIDTH = 200
_MARGIN = 6
_BACKGROUND, _INK = (255, 255, 255), (0, 0, 0)
_BAR, _RANKED_BAR = (120, 150, 190), (230, 120, 30)


@dataclass
class ReportWord:
    """A whole word of the report: its text, the token positions of its pieces, its weight."""

    text: str
    positions: list[int]
    weight: float


def report_words(
    tokenizer, input_ids: torch.Tensor, word_mask: torch.Tensor, weights: torch.Tensor, token_words: torch.Tensor | None = None
) -> list[ReportWord]:
    """The report's words in reading order from one report's token ids, word mask and weights (T,).

    Without `token_words` the T positions are tokens, and continuation pieces join the word
    before them; with it (the text encoder summed pieces into words: each token's word, (T,)) the
    positions are already words, spelt from their tokens."""
    tokens = tokenizer.convert_ids_to_tokens(input_ids.tolist())
    positions = torch.nonzero(word_mask).flatten().tolist()
    if token_words is not None:
        pieces = {slot: [tokens[t] for t in torch.nonzero(token_words == slot).flatten().tolist()] for slot in positions}
        return [ReportWord(tokenizer.convert_tokens_to_string(pieces[slot]), [slot], float(weights[slot])) for slot in positions]
    groups: list[list[int]] = []
    for position in positions:
        if groups and tokens[position].startswith(_CONTINUATION) and groups[-1][-1] == position - 1:
            groups[-1].append(position)
        else:
            groups.append([position])
    return [
        ReportWord(tokenizer.convert_tokens_to_string([tokens[p] for p in group]), group, float(weights[group].sum()))
        for group in groups
    ]


def report_word_attention(
    model: torch.nn.Module, image: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor, tokenizer
) -> tuple[list[ReportWord], torch.Tensor, torch.Tensor]:
    """One image's (1, C, H, W) local attention over one report's (1, T) tokens: the report's whole
    words with their weights, and the token weights (T,) and maps (T, h, w) behind them, on the CPU.

    The model runs in eval mode: a validation handler calls this while the network trains, and a
    forward pass in training mode would move its batch-norm statistics."""
    with eval_mode(model):
        text_features = model.encode_text(input_ids, attention_mask)
        weights, maps = word_attention_maps(model, model.encode_image(image), text_features)
    weights, maps = weights[0].float().cpu(), maps[0].float().cpu()
    token_words = text_features.get("token_words")
    token_words = None if token_words is None else token_words[0].cpu()
    return report_words(tokenizer, input_ids[0].cpu(), text_features["word_mask"][0].cpu(), weights, token_words), weights, maps


def word_map(word: ReportWord, weights: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """The word's (h, w) map from the token weights (T,) and maps (T, h, w): its pieces' maps
    weighted by the pieces' weights (a one-piece word: its own map)."""
    pieces = weights[word.positions]
    return (pieces[:, None, None] * maps[word.positions]).sum(0) / pieces.sum().clamp_min(torch.finfo(pieces.dtype).tiny)


def word_weight_chart(words: list[ReportWord], ranks: dict[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 bar chart, one row per word in reading order: word, bar (longest = the
    highest weight), weight; the words at `ranks` (word index -> rank) numbered and in orange."""
    font = ImageFont.load_default()
    labels = [f"{ranks[index]}. {word.text}" if index in ranks else word.text for index, word in enumerate(words)]
    label_width = max(int(font.getlength(label)) for label in labels) + _MARGIN
    value_width = int(font.getlength("0.000")) + _MARGIN
    width = _MARGIN + label_width + _BAR_WIDTH + _MARGIN + value_width
    canvas = Image.new("RGB", (width, 2 * _MARGIN + _ROW_HEIGHT * len(words)), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    highest = max(max(word.weight for word in words), np.finfo(np.float32).tiny)
    bar_left = _MARGIN + label_width
    for index, (word, label) in enumerate(zip(words, labels)):
        top = _MARGIN + index * _ROW_HEIGHT
        draw.text((_MARGIN, top), label, fill=_INK, font=font)
        length = round(_BAR_WIDTH * word.weight / highest)
        if length > 0:
            colour = _RANKED_BAR if index in ranks else _BAR
            draw.rectangle((bar_left, top + 2, bar_left + length - 1, top + _ROW_HEIGHT - 3), fill=colour)
        draw.text((bar_left + _BAR_WIDTH + _MARGIN, top), f"{word.weight:.3f}", fill=_INK, font=font)
    return np.asarray(canvas)


class WordHeatmapWriter:
    """Write the word heatmaps and word weights of one validation item (see the module docstring).

    Attach to the validation evaluator (with ``decollate=False``, so that ``state.batch`` is the
    batch dict of `image_key`, ``input_ids`` and ``attention_mask``). One extra forward pass of one
    image and one report per validation.

    Args:
        summary_writer: the run's one ``SummaryWriter`` (shared with MONAI's handlers: one event file).
        network: the evaluated :class:`~reclf_monai.networks.RECLFModel` (or its DDP wrapper).
        tokenizer: the Hugging Face tokenizer of the reports (to turn token ids back into words).
        top_k: how many of the highest-weighted words get a heatmap.
        prefix: tag prefix.
        image_key: the batch key of the images.
    """

    def __init__(
        self, summary_writer, network: torch.nn.Module, tokenizer, top_k: int = 3, prefix: str = "validation/", image_key: str = "image"
    ):
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        self.writer = summary_writer
        self.model = getattr(network, "module", network)
        self.tokenizer = tokenizer
        self.top_k = top_k
        self.prefix = prefix
        self.image_key = image_key

    def attach(self, engine: Engine) -> None:
        """Runs after the first iteration of every evaluator run; a model without local scorer
        (`global_only`) has no word-to-region attention, which is logged once, and nothing is written."""
        if self.model.local_matching is None:
            logging.getLogger(__name__).warning(
                "aggregation %r has no word-to-region attention: no word heatmaps in TensorBoard", self.model.aggregation
            )
            return
        engine.add_event_handler(Events.ITERATION_COMPLETED(once=1), self)

    def __call__(self, engine: Engine) -> None:
        device = next(self.model.parameters()).device
        batch = engine.state.batch
        image = torch.as_tensor(batch[self.image_key][:1]).to(device=device, dtype=torch.float32)
        input_ids = torch.as_tensor(batch[INPUT_IDS_KEY][:1]).to(device)
        attention_mask = torch.as_tensor(batch[ATTENTION_MASK_KEY][:1]).to(device)
        words, weights, maps = report_word_attention(self.model, image, input_ids, attention_mask, self.tokenizer)
        if not words:
            logging.getLogger(__name__).warning("the first validation report has no words: no word heatmaps in TensorBoard")
            return
        ranked = sorted(range(len(words)), key=lambda index: -words[index].weight)[: self.top_k]

        step = engine.state.epoch
        word_maps = torch.stack([word_map(words[index], weights, maps) for index in ranked])
        heatmaps = upsample_heatmaps(word_maps[:, None], image.shape[-2:])[:, 0].numpy()
        grey = image[0, 0].cpu().numpy()
        rows = ["| rank | word | weight |", "| --- | --- | --- |"]
        for rank, (index, heatmap) in enumerate(zip(ranked, heatmaps), start=1):
            self.writer.add_image(f"{self.prefix}word_heatmap/rank{rank}", heatmap_overlay(grey, heatmap), step, dataformats="HWC")
            rows.append(f"| {rank} | {words[index].text} | {words[index].weight:.3f} |")
        report = self.tokenizer.decode(input_ids[0].tolist(), skip_special_tokens=True)
        self.writer.add_text(f"{self.prefix}word_heatmap", "\n".join(rows) + f"\n\nreport: {report}", step)
        chart = word_weight_chart(words, {index: rank for rank, index in enumerate(ranked, start=1)})
        self.writer.add_image(f"{self.prefix}word_weights", chart, step, dataformats="HWC")
        self.writer.flush()
