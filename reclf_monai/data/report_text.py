"""Radiology report text: section extraction, de-identification tokens, sentences.

IU reports come sectioned (see :mod:`reclf_monai.data.iu_reports`); MIMIC-CXR reports are free
text whose section headers vary in case and spacing ("FINDINGS:", "Findings :", "IMPRESSION:")
and often have only one of the two sections. Pretraining uses FINDINGS + IMPRESSION.
"""

from __future__ import annotations

import re

# Any header-like line start: capitals (and spaces/parentheses) followed by a colon.
_HEADER = re.compile(r"(?m)^[ \t]*([A-Za-z][A-Za-z /()&-]{1,40}?)[ \t]*:")
_SECTION_ALIASES = {
    "findings": "findings",
    "finding": "findings",
    "impression": "impression",
    "impressions": "impression",
    "conclusion": "impression",
    "conclusions": "impression",
}
# IU: "XXXX" (one or more, any case); MIMIC: runs of underscores "___".
_DEID = re.compile(r"\b[Xx]{2,}\b|_{2,}")
# List numbering: "1. ", "2) " at a sentence or text start.
_NUMBERING = re.compile(r"(?:(?<=^)|(?<=[\s.:;]))\d{1,2}[.)](?=\s+[A-Za-z])")
# A sentence ends at .!? followed by space and a capital/digit, or glued to a capitalised word
# ("apex.There"); "2.5 cm" has no capital after the point and stays whole.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\"'])|(?<=[a-z][.!?])(?=[A-Z][a-z])")


def extract_sections(text: str) -> dict[str, str]:
    """Return `{"findings": ..., "impression": ...}` from free-text report `text`.

    A section runs from its header to the next header of any kind (COMPARISON, INDICATION,
    NOTIFICATION, ...). Missing sections are empty strings. Headers are matched
    case-insensitively, with any spacing before the colon.
    """
    sections = {"findings": "", "impression": ""}
    headers = [(m.start(), m.end(), m.group(1).strip().lower()) for m in _HEADER.finditer(text)]
    for index, (_, body_start, name) in enumerate(headers):
        key = _SECTION_ALIASES.get(re.sub(r"\s+", " ", name))
        if key is None:
            continue
        body_end = headers[index + 1][0] if index + 1 < len(headers) else len(text)
        body = text[body_start:body_end].strip()
        sections[key] = f"{sections[key]} {body}".strip() if sections[key] else body
    return sections


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
