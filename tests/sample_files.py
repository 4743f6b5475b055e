"""Real files the tests read: one real chest X-ray DICOM, from pydicom's test data package."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def real_chest_dicom() -> Path:
    """RG1_UNCI.dcm: a real MONOCHROME1 chest radiograph of 1955 x 1841 pixels (pydicom-data)."""
    spec = importlib.util.find_spec("data_store")
    assert spec is not None, "pydicom-data (data_store) must be installed: see requirements-demo.txt"
    path = Path(spec.origin).parent / "data" / "RG1_UNCI.dcm"
    assert path.is_file(), path
    return path
