"""`--shortlist_k` reaches every all-pairs metric of the bundles: the configs parsed as the bundle
CLI reads them, with a stand-in network (no network is built, no data read). The retrieval
bundle's report rankings take it in test_retrieval_bundle's inference run."""

from __future__ import annotations

import pytest
from monai.bundle import ConfigParser

from bundle_testing import BUNDLES

pytestmark = pytest.mark.end_to_end

PRETRAIN = BUNDLES / "reclf_pretrain" / "configs"
RETRIEVAL = BUNDLES / "reclf_retrieval" / "configs"
STAND_INS = {"network": "$torch.nn.Linear(1, 1)"}
# (config files, the metric ids that score all pairs, stand-ins for what those metrics read from
# the checkpoint and the data)
SCORERS = [
    ([PRETRAIN / "train.json"], ["validate#retrieval"], STAND_INS),
    ([PRETRAIN / "train.json", PRETRAIN / "evaluate.json"], ["validate#retrieval"], STAND_INS),
    (
        [RETRIEVAL / "inference.json", RETRIEVAL / "evaluate.json"],
        ["class_retrieval#metric", "pair_retrieval#metric"],
        {**STAND_INS, "tokenize": None, "class_retrieval#class_names": ["a", "b"]},
    ),
]


def parsed(configs, stand_ins, **overrides) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(path) for path in configs])
    parser.update({**stand_ins, **overrides})
    return parser


@pytest.mark.parametrize("configs, metrics, stand_ins", SCORERS)
@pytest.mark.parametrize("override, expected", [(None, "default"), (7, 7), ("null", None), ("None", None)])
def test_the_override_reaches_every_scorer(configs, metrics, stand_ins, override, expected):
    parser = parsed(configs, stand_ins, **({} if override is None else {"shortlist_k": override}))
    if expected == "default":
        expected = parser["shortlist_k"]
        assert isinstance(expected, int) and expected >= 10  # Recall@10 and P@10 read exact scores only
    for metric in metrics:
        assert parser.get_parsed_content(metric).shortlist_k == expected, metric


@pytest.mark.parametrize("configs, metrics, stand_ins", SCORERS)
def test_a_bad_override_stops_with_the_setting_named(configs, metrics, stand_ins):
    parser = parsed(configs, stand_ins, shortlist_k=0)
    with pytest.raises(RuntimeError) as raised:  # MONAI wraps the metric's error
        parser.get_parsed_content(metrics[0])
    assert "shortlist_k must be a whole number >= 1" in str(raised.value.__cause__)

