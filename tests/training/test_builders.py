"""The training classes a config asks for: rotations, then mirror images, of the training split."""

import pytest
import torch

from metriclab.config import ConfigError, resolve_config
from metriclab.training.builders import build_data, training_classes


@pytest.mark.parametrize(
    ("overrides", "copies"),
    [([], 1), (["data.rotations=[180]"], 2), (["data.mirror=true"], 2),
     (["data.rotations=[90,180,270]", "data.mirror=true"], 8)],
)  # fmt: skip
def test_training_classes_multiply_only_the_training_split(
    overrides: list[str], copies: int
) -> None:
    config = resolve_config(None, overrides)
    train, test = build_data(config)
    classes = training_classes(train, config)
    assert classes.num_classes == copies * train.num_classes
    assert len(classes) == copies * len(train)
    assert torch.equal(classes.images[: len(train)], train.images)
    sources = {name.split("@")[0] for name in classes.class_names}
    assert sources == set(train.class_names)
    assert not sources & set(test.class_names)


def test_mirror_must_be_a_boolean() -> None:
    with pytest.raises(ConfigError, match="data.mirror"):
        resolve_config(None, ["data.mirror=3"])
