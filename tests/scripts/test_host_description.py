"""scripts/host_description.py: the CPU model from lscpu, and a fallback where lscpu is missing."""

from __future__ import annotations

import platform
import subprocess

import pytest

from scripts import host_description

pytestmark = pytest.mark.research

LSCPU = "Architecture:  x86_64\nModel name:    Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\nCPU family:    6\nModel:         106\n"


def test_model_name_family_and_model_from_lscpu(monkeypatch):
    monkeypatch.setattr(host_description.subprocess, "run", lambda *args, **kwargs: subprocess.CompletedProcess(args, 0, stdout=LSCPU))
    assert host_description.cpu_model() == "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz (family 6, model 106)"
    assert host_description.cpu_summary().startswith("Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz (family 6, model 106), ")


def test_without_lscpu_the_platform_names_the_processor(monkeypatch):
    def missing(*args, **kwargs):
        raise FileNotFoundError("lscpu")

    monkeypatch.setattr(host_description.subprocess, "run", missing)
    assert host_description.cpu_model() == (platform.processor() or platform.machine() or "unknown CPU")
