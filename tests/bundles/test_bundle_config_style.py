"""The bundle configs wire components; logic lives in tested Python (docs/architecture.md).

A `$` expression carries logic unless it is an import, a reference (``$@id``, optionally followed
by attribute or constant-key access and argument-free method calls such as ``$@evaluator.run()``)
or a dotted name (``$reclf_monai.handlers.loss_value``). Path joins such as
``$@dataset_dir + '/datalist.json'`` count as logic.
"""

import json
import re

import pytest
from repository import ROOT

CONFIGS = sorted(path for path in ROOT.glob("bundles/*/configs/*.json") if path.name != "metadata.json")
NOT_LOGIC = re.compile(
    r"^\$(import [\w., ]+( as \w+)?|from [\w.]+ import [\w, ]+"
    r"|@[\w#]+(\.\w+|\['\w+'\]|\.\w+\(\))*"
    r"|[a-z_]\w*(\.\w+)+)$"
)
MOST_LOGIC_EXPRESSIONS = 80
LONGEST_EXPRESSION = 120


def expressions(node, where=""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from expressions(value, f"{where}#{key}" if where else key)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from expressions(value, f"{where}#{index}")
    elif isinstance(node, str) and node.startswith("$"):
        yield where, node


def logic_expressions():
    return [
        (path.relative_to(ROOT), where, text)
        for path in CONFIGS
        for where, text in expressions(json.loads(path.read_text()))
        if not NOT_LOGIC.match(text)
    ]


@pytest.mark.parametrize(
    "text, logic",
    [
        ("$import reclf_monai.handlers", False),
        ("$import torch.distributed as dist", False),
        ("$@evaluator.run()", False),
        ("$@checkpoint_settings['image_encoder']['img_size']", False),
        ("$reclf_monai.handlers.loss_value", False),
        ("$@bundle_root + '/models'", True),
        ("$len(@items)", True),
        ("$@network_def.to(@device)", True),
        ("$not @is_main_rank", True),
    ],
)
def test_what_counts_as_logic(text, logic):
    assert (NOT_LOGIC.match(text) is None) == logic


def test_configs_hold_little_logic_and_no_long_expressions():
    found = logic_expressions()
    long = [f"{path} {where}: {text}" for path, where, text in found if len(text) > LONGEST_EXPRESSION]
    assert not long, "\n".join(long)
    assert len(found) <= MOST_LOGIC_EXPRESSIONS, "\n".join(f"{path} {where}: {text}" for path, where, text in found)


def test_switches_are_read_inside_components_not_in_the_configs():
    for path in CONFIGS:
        text = path.read_text()
        for call in ("switch_on(", "optional_path(", "optional_setting(", "+ [monai.transforms", "lambda"):
            assert call not in text, (path, call)


def test_no_handler_is_addressed_by_its_position_in_a_list():
    for path in CONFIGS:
        keys = [where for where, _ in expressions(json.loads(path.read_text()))]
        keys += list(json.loads(path.read_text()))
        assert not [key for key in keys if re.search(r"handlers#\d+#_disabled_", key)], path
