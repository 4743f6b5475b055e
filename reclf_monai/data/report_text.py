"""Radiology report text: de-identification tokens, numbering, sentences, FINDINGS + IMPRESSION.

IU reports come sectioned (see :mod:`reclf_monai.data.iu_reports`); the sections of free-text
MIMIC-CXR reports are found by :mod:`reclf_monai.data.report_sections`. Pretraining uses
FINDINGS + IMPRESSION, composed here.
"""

from __future__ import annotations

import re

# IU: "XXXX" (one or more, any case); MIMIC: runs of underscores "___".
_DEID = re.compile(r"\b[Xx]{2,}\b|_{2,}")
# List numbering: "1. ", "2) " at a sentence or text start.
_NUMBERING = re.compile(r"(?:(?<=^)|(?<=[\s.:;]))\d{1,2}[.)](?=\s+[A-Za-z])")
# A sentence ends at .!? followed by space and a capital/digit, or glued to a capitalised word
# ("apex.There"); "2.5 cm" has no capital after the point and stays whole.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\"'])|(?<=[a-z][.!?])(?=[A-Z][a-z])")


def normalise_report_text(text: str, deid_token: str = "") -> str:
    """Clean report text for a tokenizer.

    De-identification tokens (IU "XXXX", MIMIC "___") become `deid_token` (dropped by default),
    list numbering ("1.", "2)") is removed and all whitespace collapses to single spaces.
    """
    text = _DEID.sub(deid_token, text)
    text = _NUMBERING.sub("", text)
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([.,;:])", r"\1", text)
    text = re.sub(r"([.,;:])(?:\s*\1)+", r"\1", text)
    return text


def split_sentences(text: str) -> list[str]:
    """Split normalised report text into sentences, keeping decimals ("2.5 cm") intact."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip(" .")]


def compose_report(findings: str, impression: str, deid_token: str = "") -> str:
    """FINDINGS followed by IMPRESSION, each normalised; empty string when both are empty."""
    parts = [normalise_report_text(p, deid_token) for p in (findings, impression)]
    parts = [p if p.endswith((".", "!", "?")) else f"{p}." for p in parts if p.strip(" .")]
    return " ".join(parts)
