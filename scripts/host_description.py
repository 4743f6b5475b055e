"""The machine a figure was measured on, as the benchmark and study scripts and the demo record it.

Why: ``platform.processor()`` says only "x86_64" on Linux, and a speed figure means little
without the CPU model; lscpu names it (with family and model, which tell CPU generations apart).
"""

from __future__ import annotations

import os
import platform
import subprocess


def cpu_model() -> str:
    """E.g. "AMD EPYC (family 25, model 1)" from lscpu; the platform's processor or machine name
    where lscpu is missing or says nothing."""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    except OSError:
        lscpu = ""
    fields = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    name = fields.get("Model name") or platform.processor() or platform.machine() or "unknown CPU"
    if "CPU family" in fields and "Model" in fields:
        return f"{name} (family {fields['CPU family']}, model {fields['Model']})"
    return name


def cpu_summary() -> str:
    """The CPU model and how many logical CPUs this process sees."""
    return f"{cpu_model()}, {os.cpu_count()} CPUs"
