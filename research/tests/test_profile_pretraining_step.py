"""research/profile_pretraining_step.py at a toy size: one timed line per part of a training step,
the operator table on request, and the switches that rebuild the earlier text encoder."""

from __future__ import annotations

import re

import pytest
import torch

from research import profile_pretraining_step as profile_module

pytestmark = pytest.mark.research

TOY = ["--batch_size", "3", "--image_size", "64", "--embed_dim", "8", "--max_length", "24", "--threads", "1"]


def test_toy_run_times_every_part_and_lists_operators(capsys):
    assert profile_module.main([*TOY, "--iterations", "2", "--warmup", "1", "--ops", "4"]) == 0
    out = capsys.readouterr().out
    seconds = {}
    for part in (*profile_module.PARTS, "iteration"):
        match = re.search(rf"^{re.escape(part)}\s+([0-9.]+) s", out, re.MULTILINE)
        assert match, f"no line for {part!r} in:\n{out}"
        seconds[part] = float(match.group(1))
    assert all(value >= 0 for value in seconds.values()) and seconds["iteration"] > 0
    assert seconds["iteration"] >= max(seconds[part] for part in profile_module.PARTS)
    assert "(median of 2)" in out and "CPUs" in out and "4 text length group(s)" in out
    assert "Self CPU" in out  # torch.profiler's table


def test_switches_rebuild_the_earlier_text_encoder():
    args = profile_module.parse_args([*TOY, "--text_length_groups", "1", "--frozen_text_dropout"])
    model = profile_module.build_model(args)
    text = model.text_encoder
    assert text.length_groups == 1
    assert text.frozen_modules and all(module.training for module in text.frozen_modules)
    default = profile_module.build_model(profile_module.parse_args(TOY)).text_encoder
    assert not any(module.training for module in default.frozen_modules)


def test_cache_switch_times_steps_on_reports_seen_before(capsys):
    assert profile_module.main([*TOY, "--iterations", "1", "--warmup", "1", "--freeze_text_layers", "2", "--frozen_cache_mb", "64"]) == 0
    assert "frozen layers' output cached (64 MiB), reports seen before" in capsys.readouterr().out
    model = profile_module.build_model(profile_module.parse_args([*TOY, "--frozen_cache_mb", "64"]))
    assert model.text_encoder.frozen_cache is not None and len(model.text_encoder.frozen_cache) == 0


def test_report_batches_hold_real_tokenised_reports():
    batches = profile_module.report_batches(batch_size=2, count=2, max_length=16)
    assert len(batches) == 2
    for input_ids, attention_mask in batches:
        assert input_ids.shape == attention_mask.shape == (2, 16)
        assert bool(attention_mask[:, :3].all())  # [CLS] and at least two word pieces
    assert not torch.equal(batches[0][0], batches[1][0])


def test_nothing_to_time_is_refused():
    with pytest.raises(SystemExit):
        profile_module.parse_args(["--iterations", "0"])
