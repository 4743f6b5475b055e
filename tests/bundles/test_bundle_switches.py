import pytest

from reclf_monai.bundle_switches import optional_path, switch_on


@pytest.mark.parametrize("value", [True, 1, "true", "True", "TRUE", " yes ", "on", "1"])
def test_on(value):
    assert switch_on(value, "resume") is True


@pytest.mark.parametrize("value", [False, 0, "false", "False", "no", "off", "0"])
def test_off(value):
    assert switch_on(value, "resume") is False


@pytest.mark.parametrize("value", ["flase", "", 2, None, 0.5])
def test_anything_else_is_refused_with_the_setting_named(value):
    with pytest.raises(ValueError, match="--load_pretrain must be true or false"):
        switch_on(value, "load_pretrain")


@pytest.mark.parametrize("value", [None, "none", "None", " NULL "])
def test_a_file_setting_switched_off(value):
    assert optional_path(value, "pretrained_checkpoint") is None


def test_a_file_setting_given():
    assert optional_path("runs/model.pt", "pretrained_checkpoint") == "runs/model.pt"
    with pytest.raises(ValueError, match="--pretrained_checkpoint is empty"):
        optional_path(" ", "pretrained_checkpoint")
