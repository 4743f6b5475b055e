"""FINDINGS and IMPRESSION of a free-text MIMIC-CXR report, whatever its headers call them.

MIMIC-CXR reports name their sections in many ways. The rules below follow the dataset's own
section parser (MIT-LCP/mimic-cxr, ``txt/section_parser.py``), which wrote the official
sectioned CSV, so that reading the report files and reading that CSV give the same reports.
Each header belongs to one family:

==========================  ==========================================================  ==========
family                      headers                                                     section
==========================  ==========================================================  ==========
``findings``                name the findings: FINDINGS, FINDING, REFERENCE FINDINGS    findings
``impression``              name the impression: IMPRESSION(S), CONCLUSION(S)           impression
``findings_and_impression`` name both: FINDINGS AND IMPRESSION, FINDINGS/IMPRESSION     impression
``exam_title``              name the chest, the ribs, a portable study or the views     findings
                            taken, and no other section: CHEST, TWO VIEWS; PORTABLE AP
                            CHEST; PA AND LATERAL VIEWS OF THE CHEST
``misspelt``                within two typing errors of FINDINGS or IMPRESSION          that one
``other``                   anything else (INDICATION, COMPARISON, HISTORY, ADDENDUM)   none
==========================  ==========================================================  ==========

Radiologists often write the findings under the title of the study ("CHEST, TWO VIEWS:"),
hence ``exam_title``. A header that names history, comparison or addendum is ``other`` even if
it names the chest, as in the official parser. A section runs from its header to the next
header. Plain section names (FINDINGS, Impression, findings and impression) are recognised in
any case; every other header only in capitals, as in the official parser, so a body line such as
"Lungs: clear" stays inside its section. When a report has several non-empty sections for
findings (or impression), the last one counts, as in the official CSV.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SECTIONS = ("findings", "impression")
# The (section, family) pairs a section can come from, in the order statistics list them.
SECTION_SOURCES = (
    ("findings", "findings"),
    ("findings", "exam_title"),
    ("findings", "misspelt"),
    ("impression", "impression"),
    ("impression", "findings_and_impression"),
    ("impression", "misspelt"),
)

# A header-like line start: letters, spaces and ( ) / , & - followed by a colon.
_HEADER = re.compile(r"(?m)^[ \t]*([A-Za-z][A-Za-z ()/,&-]*?)[ \t]*:")
# Plain section names, recognised in any case.
_PLAIN_NAMES = {
    "findings": ("findings", "findings"),
    "finding": ("findings", "findings"),
    "impression": ("impression", "impression"),
    "impressions": ("impression", "impression"),
    "conclusion": ("impression", "impression"),
    "conclusions": ("impression", "impression"),
    "findings and impression": ("findings_and_impression", "impression"),
    "findings/impression": ("findings_and_impression", "impression"),
}
_NAMES_FINDINGS = re.compile(r"\bfindings?\b")
_NAMES_OTHER_SECTION = re.compile(r"history|comparison|addendum")
# The body part or the views of the study: its title, under which the findings follow.
_EXAM_TITLE = re.compile(
    r"\b(?:chest|ribs|portable|bone window|frontal and|(?:pa|ap|lateral) and (?:pa|ap|lat)"
    r"|(?:one|two|frontal|pa|ap|lateral) views?|frontal (?:semi-)?upright)"
)
_MAX_TYPING_ERRORS = 2


@dataclass(frozen=True)
class Section:
    """The text of one section and the header it came from (as written, spaces collapsed)."""

    text: str
    header: str
    family: str


def _edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions) between `a` and `b`."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def classify_header(name: str) -> tuple[str, str | None] | None:
    """(family, section) of header `name` (the text before the colon); section None for ``other``.

    None when `name` is not a header at all: neither a plain section name nor in capitals.
    """
    name = re.sub(r"\s+", " ", name.strip())
    lower = re.sub(r" ?/ ?", "/", name.lower())
    if lower in _PLAIN_NAMES:
        return _PLAIN_NAMES[lower]
    if name != name.upper():
        return None
    if "impression" in lower:
        return ("findings_and_impression" if _NAMES_FINDINGS.search(lower) else "impression"), "impression"
    if _NAMES_FINDINGS.search(lower):
        return "findings", "findings"
    if _NAMES_OTHER_SECTION.search(lower):
        return "other", None
    if _EXAM_TITLE.search(lower):
        return "exam_title", "findings"
    for section in SECTIONS:
        if " " not in lower and _edit_distance(lower, section) <= _MAX_TYPING_ERRORS:
            return "misspelt", section
    return "other", None


def find_sections(text: str) -> dict[str, Section]:
    """The findings and impression sections of report `text` that have text (keys of :data:`SECTIONS`)."""
    headers = []
    for match in _HEADER.finditer(text):
        kind = classify_header(match.group(1))
        if kind is not None:
            headers.append((match, *kind))
    sections: dict[str, Section] = {}
    for index, (match, family, section) in enumerate(headers):
        if section is None:
            continue
        body_end = headers[index + 1][0].start() if index + 1 < len(headers) else len(text)
        body = text[match.end() : body_end].strip()
        if body:  # a later section of the same kind replaces an earlier one
            sections[section] = Section(body, re.sub(r"\s+", " ", match.group(1).strip()), family)
    return sections


def extract_sections(text: str) -> dict[str, str]:
    """Return ``{"findings": ..., "impression": ...}`` of report `text`; "" for a missing section."""
    sections = find_sections(text)
    return {name: sections[name].text if name in sections else "" for name in SECTIONS}
