import pytest

from metriclab.config import Config, ConfigError, resolve_config, shipped_configs


def test_default_config_is_the_shipped_digits_siamese() -> None:
    assert "digits-siamese" in shipped_configs()
    assert resolve_config(None, []) == Config().validate()


def test_overrides_are_typed() -> None:
    config = resolve_config(None, ["train.lr=0.01", "train.steps=5", "model.normalize=true"])
    assert config.train.lr == 0.01 and config.train.steps == 5 and config.model.normalize is True


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trian.steps=3", "did you mean 'train.steps'"),
        ("train.steps=many", "must be int"),
        ("train.steps=0", "train.steps must be at least 1"),
        ("steps", "section.key=value"),
        ("data.test_fraction=1.5", r"must lie in \(0, 1\)"),
        ("model.distance_init=0", "model.distance_init must be positive or null, got 0"),
    ],
)
def test_bad_overrides_name_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_config(None, [override])


def test_distance_init_needs_the_weighted_l1_distance() -> None:
    assert resolve_config(None, ["model.distance_init=1.0"]).model.distance_init == 1.0
    with pytest.raises(ConfigError, match="applies only to model.distance=weighted_l1, not 'l2'"):
        resolve_config(None, ["model.distance=l2", "model.distance_init=1.0"])


def test_unknown_config_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match="neither a YAML file nor a shipped config"):
        resolve_config(str(tmp_path / "missing.yaml"), [])
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  stepz: 3\n")
    with pytest.raises(ConfigError, match="did you mean 'train.steps'"):
        resolve_config(str(bad), [])
