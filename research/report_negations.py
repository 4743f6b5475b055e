#!/usr/bin/env python
"""How often a corpus's reports deny each finding: the prior a contrastive model learns from.

    python -m research.report_negations --datalist demo_output/iu_phantom/datalist.json [--split training] [--words effusion nodule]

Why: on the relation probe, pretrained checkpoints prefer a report with a finding negated ("no
left pleural effusion.") to the true report for almost every image, the `global_only` model too,
so it is not the local scorer's doing. IU reports mention most findings to deny them ("No pleural
effusion or pneumothorax."), so "no ... effusion" is paired with nearly every image in training.
For each word (default: the laterality set's findings and pneumothorax) this prints the share of
the split's reports that mention it and, of those, the share that deny it: a negation word
(research.word_weights.NEGATION_WORDS) before it in the same sentence. The rule over-counts a
sentence such as "no effusion, but atelectasis" for its second finding; it reads no report text
out (IU-Phantom's reports are licensed CC BY-NC-ND), only counts.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence

from reclf_monai.data import load_datalist
from research.word_weights import NEGATION_WORDS

DEFAULT_WORDS = ("effusion", "opacity", "nodule", "atelectasis", "pneumothorax")
NEGATION = re.compile(r"\b(" + "|".join(sorted(NEGATION_WORDS)) + r")\b")


def mentions(report: str, word: str) -> tuple[bool, bool]:
    """(the report mentions `word`, some sentence that mentions it denies it first)."""
    sentences = [sentence for sentence in report.lower().split(".") if re.search(rf"\b{re.escape(word)}", sentence)]
    denied = any(NEGATION.search(sentence[: re.search(rf"\b{re.escape(word)}", sentence).start()]) for sentence in sentences)
    return bool(sentences), denied


def negation_table(reports: Sequence[str], words: Sequence[str]) -> list[dict[str, float]]:
    """Per word: reports mentioning it, their share of all, and the share of those that deny it."""
    rows = []
    for word in words:
        found = [mentions(report, word) for report in reports]
        mentioned = sum(mention for mention, _ in found)
        denied = sum(deny for _, deny in found)
        rows.append(
            {
                "word": word,
                "reports": mentioned,
                "share": mentioned / len(reports),
                "denied": denied / mentioned if mentioned else float("nan"),
            }
        )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datalist", required=True, help="a datalist with a report per item")
    parser.add_argument("--split", default="training")
    parser.add_argument("--words", nargs="+", default=list(DEFAULT_WORDS), help="words (or word beginnings) to count")
    args = parser.parse_args(argv)
    reports = [item["report"] for item in load_datalist(args.datalist, args.split, required_keys=["report"])]
    print(f"{args.datalist}, split {args.split}: {len(reports)} reports")
    print("| word | reports mentioning it | share of reports | share of those denying it |\n|---|---:|---:|---:|")
    for row in negation_table(reports, args.words):
        print(f"| {row['word']} | {row['reports']} | {row['share']:.3f} | {row['denied']:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
