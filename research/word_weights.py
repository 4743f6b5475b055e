#!/usr/bin/env python
"""Which words a pretrained local scorer weighs: its word weights alpha by kind of word.

    python -m research.word_weights --checkpoint RUN/models/checkpoint_epoch=2.pt [MORE.pt ...] \\
        --datalist demo_output/iu_phantom/datalist.json [--split test] [--items 200] [--show 3]
    python -m research.word_weights --checkpoint RUN.pt --image some.png --report "Mild cardiomegaly. No effusion."

Why: RECLF's importance-relation module (IRM) is meant to weigh clinically important matchings
above filler words. The local score of image i and report i is S = sum_t alpha_t s~_t; this script
reads alpha (the same weights the grounding bundle uses) for each of the first N pairs of a split,
each report with its own image, and sorts every word token into one kind:

- finding: a word of one of the report's own MeSH terms (the datalist's ``mesh`` list, e.g.
  "Calcified Granuloma/lung/upper lobe/right"), plural or singular ("arteries" matches
  "Pulmonary Artery"), unless it is a location word;
- location: side, lobe and zone words (LOCATION_WORDS);
- negation: NEGATION_WORDS;
- punctuation;
- other: everything else (filler such as "the", "is", "seen").

Per checkpoint it prints one row per kind: the share of tokens of that kind (mean over reports),
the share of alpha on them (mean over reports; alpha sums to 1 per report), and their ratio, the
lift (above 1: weighed above the uniform weighting of `mean`); then how far the weights are from
uniform at all (percentiles of alpha per token x the report's tokens, 1 for `mean`) and, for
`srm`/`reclf`, how large SRM's score corrections are and how much they vary, against the word
scores they correct (`srm` weighs words uniformly; SRM acts on the scores), and what SRM's
attention links: per kind of query word, the share of its attention on each kind of word over that
kind's share of the report's words (does a finding word attend to location words?). `--show K` also prints the first K
reports word by word with alpha x words (1 = uniform). The report text of IU-Phantom is licensed
(CC BY-NC-ND): print it, do not publish it. `--image` with `--report` scores one hand-written
report against one image instead. Needs an aggregation with a local scorer (not `global_only`).
"""

from __future__ import annotations

import argparse
import re
import string
from collections.abc import Sequence

import torch

from reclf_monai.data import TokenizeReportd, load_datalist
from reclf_monai.metrics import encode_pairs
from reclf_monai.networks import RECLFModel
from reclf_monai.networks.grounding import paired_match_details

KINDS = ("finding", "location", "negation", "punctuation", "other")
LOCATION_WORDS = frozenset(
    "left right bilateral bilaterally unilateral upper lower middle mid lobe lobes base bases basal basilar basilary apex"
    " apices apical zone zones hilar perihilar retrocardiac lateral medial anterior posterior costophrenic hemithorax"
    " hemidiaphragm lingula lingular".split()
)  # fmt: skip
NEGATION_WORDS = frozenset("no not without negative".split())


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", nargs="+", required=True, help="reclf_pretrain checkpoints (one row group each)")
    parser.add_argument("--datalist", help="datalist with image, report and mesh per item")
    parser.add_argument("--split", default="test")
    parser.add_argument("--items", type=int, default=200, help="the first N pairs of the split (0: all)")
    parser.add_argument("--show", type=int, default=0, help="also print the first K reports word by word")
    parser.add_argument("--image", help="with --report: one image file")
    parser.add_argument("--report", help="with --image: one report text")
    parser.add_argument("--batch_size", type=int, default=32, help="encoding batch size")
    args = parser.parse_args(argv)
    if (args.image is None) != (args.report is None):
        parser.error("--image and --report go together")
    if args.datalist is None and args.image is None:
        parser.error("give --datalist (a split's pairs) or --image with --report (one pair)")
    return args


def words_of(tokens: Sequence[str], is_word: Sequence[bool]) -> list[tuple[str, list[int]]]:
    """Whole words and the token positions they span: WordPiece continuations ("##...") join the
    word before them; positions that are not words ([CLS], [SEP], [PAD]) are skipped."""
    words: list[tuple[str, list[int]]] = []
    for position, (token, word) in enumerate(zip(tokens, is_word)):
        if not word:
            continue
        if token.startswith("##") and words:
            words[-1] = (words[-1][0] + token[2:], words[-1][1] + [position])
        else:
            words.append((token, [position]))
    return words


def singular(word: str) -> str:
    """English plural to singular, for the regular endings that report words take ("opacities",
    "effusions"); enough to match a report's words to its MeSH terms, not a general stemmer."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "is", "us")):
        return word[:-1]
    return word


def finding_vocabulary(mesh_terms: Sequence[str]) -> frozenset[str]:
    """The lower-case singular words of a report's MeSH terms ("Aorta, Thoracic/tortuous" -> aorta,
    thoracic, tortuous)."""
    return frozenset(singular(word) for term in mesh_terms for word in re.findall(r"[a-z]+", term.lower()))


def kind_of(word: str, findings: frozenset[str]) -> str:
    if all(character in string.punctuation for character in word):
        return "punctuation"
    if word in LOCATION_WORDS:
        return "location"
    if word in NEGATION_WORDS:
        return "negation"
    return "finding" if singular(word) in findings else "other"


def words_in_slots(tokens: Sequence[str], token_words: torch.Tensor, is_word: torch.Tensor) -> list[tuple[str, list[int]]]:
    """The words of a text encoder that sums word pieces: (word, [slot]) for every matched slot,
    spelt from the tokens in that slot (``token_words``: each token's slot)."""
    words = []
    for slot in torch.nonzero(is_word).flatten().tolist():
        pieces = [tokens[t] for t in torch.nonzero(token_words == slot).flatten().tolist()]
        words.append(("".join(piece.removeprefix("##") for piece in pieces), [slot]))
    return words


def srm_attention(model: RECLFModel, image_features: dict, text_features: dict) -> list[torch.Tensor]:
    """SRM's first-layer attention between the tokens of each report matched with its own image,
    (T, T) per pair (query rows, mean over heads). Read by a hook on its attention module, which
    runs it once more asking for the weights (the layer's fused fast path, which skips the module,
    is switched off meanwhile)."""
    captured = []

    def keep_weights(module, args, kwargs, output):
        captured.append(module.forward(*args, **{**kwargs, "need_weights": True, "average_attn_weights": True})[1][0])

    attention = model.local_matching.srm.encoder.layers[0].self_attn
    handle = attention.register_forward_hook(keep_weights, with_kwargs=True)
    fast_path = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad():
            paired_match_details(model, image_features, text_features)
    finally:
        handle.remove()
        torch.backends.mha.set_fastpath_enabled(fast_path)
    return captured


def attention_lift(attention: list[torch.Tensor], kinds: list[dict[int, str]]) -> dict[tuple[str, str], float]:
    """(query kind, key kind) -> the mean share of a query word token's attention on key words of
    that kind, over the share of such tokens among the report's words (1: attention as if blind to
    kind). Pairs of kinds that never meet are left out."""
    attended = {}
    for weights, kind_at in zip(attention, kinds):
        positions = sorted(kind_at)
        words = weights[positions][:, positions]
        words = words / words.sum(-1, keepdim=True).clamp_min(1e-12)
        for row, query in enumerate(positions):
            for key_kind in KINDS:
                keys = [column for column, key in enumerate(positions) if kind_at[key] == key_kind]
                if keys:
                    attended.setdefault((kind_at[query], key_kind), []).append((float(words[row, keys].sum()), len(keys) / len(positions)))
    return {pair: sum(a for a, _ in values) / sum(b for _, b in values) for pair, values in attended.items()}


def word_weights(checkpoint: str, items: list[dict], batch_size: int) -> tuple[str, list[list[tuple[str, str, float, int]]], dict | None]:
    """The checkpoint's aggregation; per item its words as (word, kind, alpha summed over the
    word's tokens, tokens); and, with SRM, (mean absolute value, standard deviation) over the word
    tokens of its corrections and of the word scores before them, and SRM's attention lift between
    kinds of words (:func:`attention_lift`) (None without SRM): a correction that is the same for
    every word shifts every pair's score alike and changes no ranking."""
    model = RECLFModel.from_checkpoint(checkpoint)
    if model.local_matching is None:
        raise SystemExit(f"{checkpoint}: aggregation {model.aggregation!r} has no local scorer, so no word weights")
    settings = model.settings["text_encoder"]
    tokenize = TokenizeReportd(tokenizer=settings["model_name_or_path"], max_length=settings["max_length"])
    image_features, text_features = encode_pairs(model, items, batch_size)
    word_mask = text_features["word_mask"].bool()
    with torch.no_grad():
        details = paired_match_details(model, image_features, text_features)
    reports, kinds = [], []
    token_words = text_features.get("token_words")
    for index, (item, alpha, is_word) in enumerate(zip(items, details["token_weights"], word_mask)):
        tokens = tokenize.tokenizer.convert_ids_to_tokens(tokenize({"report": item["report"]})["input_ids"].tolist())
        findings = finding_vocabulary(item.get("mesh", []))
        if token_words is None:
            words = words_of(tokens, is_word.tolist())
        else:
            words = words_in_slots(tokens, token_words[index], is_word)
        reports.append([(word, kind_of(word, findings), float(alpha[positions].sum()), len(positions)) for word, positions in words])
        kinds.append({position: kind_of(word, findings) for word, positions in words for position in positions})
    corrections = None
    if "token_corrections" in details:
        added = details["token_corrections"][word_mask]
        plain = details["token_scores"][word_mask] - added
        corrections = {
            "correction": (float(added.abs().mean()), float(added.std())), "score": (float(plain.abs().mean()), float(plain.std())),
            "attention_lift": attention_lift(srm_attention(model, image_features, text_features), kinds),
        }  # fmt: skip
    return model.aggregation, reports, corrections


def relative_weight_range(reports: list[list[tuple[str, str, float, int]]]) -> tuple[float, float, float]:
    """5th percentile, median and 95th percentile over all words of alpha per token x the report's
    tokens: 1 everywhere for uniform weights (`mean`), spread where the aggregation picks words."""
    values = torch.tensor([alpha / count * sum(c for *_, c in words) for words in reports for *_, alpha, count in words])
    return tuple(float(value) for value in torch.quantile(values, torch.tensor([0.05, 0.5, 0.95])))


def summary_rows(reports: list[list[tuple[str, str, float, int]]]) -> dict[str, tuple[float, float]]:
    """kind -> (mean token share, mean weight share) over the reports."""
    token_share = {kind: 0.0 for kind in KINDS}
    weight_share = {kind: 0.0 for kind in KINDS}
    for words in reports:
        total = sum(count for *_, count in words)
        for _, kind, alpha, count in words:
            token_share[kind] += count / total / len(reports)
            weight_share[kind] += alpha / len(reports)
    return {kind: (token_share[kind], weight_share[kind]) for kind in KINDS}


def print_summary(checkpoint: str, aggregation: str, reports: list[list[tuple[str, str, float, int]]], corrections: dict | None) -> None:
    print(f"\n{checkpoint} (aggregation {aggregation}, {len(reports)} reports)")
    print("| kind of word | share of tokens | share of alpha | lift |\n|---|---:|---:|---:|")
    for kind, (tokens, weight) in summary_rows(reports).items():
        lift = f"{weight / tokens:.3f}" if tokens > 0 else "-"
        print(f"| {kind} | {tokens:.3f} | {weight:.3f} | {lift} |")
    low, median, high = relative_weight_range(reports)
    print(f"word weight per token x tokens (1 = uniform): 5th percentile {low:.3f}, median {median:.3f}, 95th percentile {high:.3f}")
    if corrections is not None:
        (added, added_std), (plain, plain_std) = corrections["correction"], corrections["score"]
        print(f"SRM score corrections: mean |g| {added:.4f}, standard deviation {added_std:.4f}; word scores before them: mean |s| {plain:.4f}, standard deviation {plain_std:.4f}")
        lift = corrections["attention_lift"]
        print("SRM attention lift, query words (rows) on key words (columns), 1 = blind to kind:")
        print("| query \\ key | " + " | ".join(KINDS) + " |\n|---|" + "---:|" * len(KINDS))
        for query in KINDS:
            print(f"| {query} | " + " | ".join(f"{lift[query, key]:.2f}" if (query, key) in lift else "-" for key in KINDS) + " |")


def print_report(words: list[tuple[str, str, float, int]]) -> None:
    """One report word by word: word[kind initial] alpha x tokens (1 = uniform weighting)."""
    tokens = sum(count for *_, count in words)
    print("  " + " ".join(f"{word}[{kind[0]}]{alpha * tokens / count:.2f}" for word, kind, alpha, count in words))


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.image is not None:
        items = [{"image": args.image, "report": args.report, "mesh": []}]
    else:
        items = load_datalist(args.datalist, args.split, required_keys=["image", "report"])[: args.items or None]
    for checkpoint in args.checkpoint:
        aggregation, reports, corrections = word_weights(checkpoint, items, args.batch_size)
        if args.image is not None:
            print(f"{checkpoint} (aggregation {aggregation}): word[kind initial] alpha x words")
            print_report(reports[0])
            continue
        print_summary(checkpoint, aggregation, reports, corrections)
        for words in reports[: args.show]:
            print_report(words)


if __name__ == "__main__":
    main()
