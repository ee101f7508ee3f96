import pytest

from metriclab.config import Config, ConfigError, resolve_config, shipped_configs


def test_default_config_is_the_shipped_digits_siamese() -> None:
    assert "digits-siamese" in shipped_configs()
    # The shipped file only adds a fixed thread count, which makes the README's figures reproduce.
    default = Config().validate()
    default.train.threads = 1
    assert resolve_config(None, []) == default


def test_threads_key_sets_torchs_thread_count() -> None:
    import torch

    from metriclab.config import apply_threads

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        apply_threads(resolve_config(None, ["train.threads=1"]))
        assert torch.get_num_threads() == 1
        apply_threads(resolve_config(None, ["train.threads=0"]))  # 0 leaves it alone
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ConfigError, match="train.threads"):
        resolve_config(None, ["train.threads=-1"])


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
        # YAML reads an unquoted 3.10 as 3.1: refused rather than silently renamed.
        ("train.whiten_layers=[3.10]", r"'train.whiten_layers\[0\]' wants text .*3.1; quote it"),
    ],
)
def test_bad_overrides_name_the_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_config(None, [override])


def test_distance_init_needs_the_weighted_l1_distance() -> None:
    assert resolve_config(None, ["model.distance_init=1.0"]).model.distance_init == 1.0
    with pytest.raises(
        ConfigError, match=r"applies only to a learned model.distance \(weighted_l1\), not .l2."
    ):
        resolve_config(None, ["model.distance=l2", "model.distance_init=1.0"])


def test_unknown_config_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match="neither a YAML file nor a shipped config"):
        resolve_config(str(tmp_path / "missing.yaml"), [])
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  stepz: 3\n")
    with pytest.raises(ConfigError, match="did you mean 'train.steps'"):
        resolve_config(str(bad), [])


@pytest.mark.parametrize(
    ("override", "key", "suggestion"),
    [
        ("data.name=omniglott", "data.name", "omniglot"),
        ("data.augment=afine", "data.augment", "affine"),
        ("model.backbone=conv5", "model.backbone", "conv4"),
        ("model.distance=weighted_l2", "model.distance", "weighted_l1"),
        ("train.optimizer=adamw2", "train.optimizer", "adamw"),
        ("train.schedule=cosin", "train.schedule", "cosine"),
        ("eval.scorer=prototypes", "eval.scorer", "prototype"),
        ("eval.tta_views=flips", "eval.tta_views", "flip"),
    ],
)
def test_unknown_names_are_reported_from_the_registry(
    override: str, key: str, suggestion: str
) -> None:
    with pytest.raises(ConfigError, match=rf"{key}.*did you mean '{suggestion}'\?.*choose one of"):
        resolve_config(None, [override])


def test_config_choices_are_the_registries() -> None:
    from metriclab.data import AUGMENTATIONS, DATA_SETS, TTA_VIEWS
    from metriclab.evaluation.episodes import SCORERS
    from metriclab.models import BACKBONES
    from metriclab.optim import OPTIMIZERS, SCHEDULES

    keys = {
        "data.name": DATA_SETS,
        "data.augment": AUGMENTATIONS,
        "model.backbone": BACKBONES,
        "train.optimizer": OPTIMIZERS,
        "train.schedule": SCHEDULES,
        "eval.scorer": SCORERS,
        "eval.tta_views": TTA_VIEWS,
    }
    for key, registry in keys.items():
        assert registry.key == key
        for name in registry:
            overrides = [f"{key}={name}"]
            if key == "data.name" and name != "digits":
                overrides.append("data.path=somewhere")  # checked when loading, not here
            assert resolve_config(None, overrides) is not None


def test_an_optimizer_registered_later_is_valid_at_once() -> None:
    from metriclab.optim import OPTIMIZERS

    with pytest.raises(ConfigError, match="train.optimizer"):
        resolve_config(None, ["train.optimizer=rmsprop"])
    OPTIMIZERS.register("rmsprop", lambda parameters, *, lr, weight_decay, momentum: None)
    try:
        assert resolve_config(None, ["train.optimizer=rmsprop"]).train.optimizer == "rmsprop"
    finally:
        OPTIMIZERS.unregister("rmsprop")


def test_torchvision_backbones_pass_validation_and_an_empty_model_does_not() -> None:
    config = resolve_config(None, ["model.backbone=torchvision:resnet18"])
    assert config.model.backbone == "torchvision:resnet18"
    with pytest.raises(ConfigError, match="names no torchvision model"):
        resolve_config(None, ["model.backbone='torchvision:'"])
    with pytest.raises(ConfigError, match=r"or torchvision:<model>"):
        resolve_config(None, ["model.backbone=resnet"])


def test_data_params_are_checked_against_the_data_set() -> None:
    config = resolve_config(
        None, ["data.name=omniglot", "data.path=x", "data.params.alphabets=Latin,Greek"]
    )
    assert config.data.params == {"alphabets": ["Latin", "Greek"]}
    with pytest.raises(
        ConfigError, match=r"data.params.alphabet is not .*did you mean 'alphabets'"
    ):
        resolve_config(None, ["data.name=omniglot", "data.params.alphabet=[Latin]"])
    with pytest.raises(ConfigError, match="data.params.alphabets is not an option of data set "):
        resolve_config(None, ["data.params.alphabets=[Latin]"])  # digits takes none
    with pytest.raises(ConfigError, match="data.params.alphabets"):
        resolve_config(None, ["data.name=omniglot", "data.params.alphabets=3"])


def test_data_alphabets_is_a_deprecated_alias(tmp_path) -> None:
    with pytest.warns(DeprecationWarning, match="data.params.alphabets"):
        config = resolve_config(None, ["data.name=omniglot", "data.alphabets=[Latin]"])
    assert config.data.params == {"alphabets": ["Latin"]}
    assert "alphabets" not in config.to_dict()["data"]
    old = tmp_path / "old.yaml"
    old.write_text("data:\n  name: omniglot\n  alphabets: [Greek, Latin]\n")
    with pytest.warns(DeprecationWarning):
        assert resolve_config(str(old), []).data.params == {"alphabets": ["Greek", "Latin"]}
    with pytest.raises(ConfigError, match="data.alphabets and data.params.alphabets are both set"):
        resolve_config(
            None, ["data.name=omniglot", "data.alphabets=[A]", "data.params.alphabets=[B]"]
        )


def test_saved_configs_from_before_the_move_load_quietly(tmp_path, recwarn) -> None:
    saved = tmp_path / "config.yaml"
    saved.write_text("data:\n  name: digits\n  alphabets: null\n")
    assert resolve_config(str(saved), []).data.params == {}
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]


@pytest.mark.parametrize("text", ["1e-3", "1E-3", "+1e-3", "0.001", "1.0e-3", ".001"])
def test_floats_in_any_notation_on_the_command_line(text: str) -> None:
    config = resolve_config(None, [f"train.lr={text}", f"train.clip_grad={text}"])
    assert config.train.lr == 0.001 and isinstance(config.train.lr, float)
    assert config.train.clip_grad == 0.001  # float | None


def test_floats_in_any_notation_in_a_yaml_file(tmp_path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(
        "train:\n  lr: 1e-3\n  weight_decay: 5e-4\n  clip_grad: 2e0\n"
        "model:\n  distance_init: 1e-2\ndata:\n  test_fraction: 4e-1\n"
    )
    config = resolve_config(str(path), [])
    assert (config.train.lr, config.train.weight_decay, config.train.clip_grad) == (
        0.001,
        0.0005,
        2.0,
    )
    assert config.model.distance_init == 0.01 and config.data.test_fraction == 0.4


def test_floats_inside_lists_and_optionals() -> None:
    from metriclab.config import _coerce

    assert _coerce("k", ["1e-3", 2, "3"], list[float]) == [0.001, 2.0, 3.0]
    assert _coerce("k", "1e-3,2e1", list[float] | None) == [0.001, 20.0]
    assert _coerce("k", None, float | None) is None
    with pytest.raises(ConfigError, match=r"config key 'k\[1\]' must be float, got 'x'"):
        _coerce("k", ["1e-3", "x"], list[float])


@pytest.mark.parametrize("text", ["fast", "1e-3x", "nan", "inf", "1e", "1,5"])
def test_non_numbers_are_still_refused_for_float_keys(text: str) -> None:
    with pytest.raises(ConfigError, match=rf"config key 'train.lr' must be float, got '{text}'"):
        resolve_config(None, [f"train.lr={text}"])


def test_a_recipe_on_other_data_names_every_key_it_bound_to_its_own() -> None:
    own = ["data.name=image_folder", "data.path=/somewhere"]
    with pytest.raises(ConfigError) as caught:
        resolve_config("omniglot-protonet", own)
    message = str(caught.value)
    for needed in (
        "data.test_groups=null",
        "train.within_group=false",
        "eval.episode_files=null",
        "eval.episodes=1000",
    ):
        assert needed in message
    # Passing exactly what the message lists resolves, with nothing of Omniglot's left.
    listed = message.split("also pass ")[1].split(" (")[0].split()
    config = resolve_config("omniglot-protonet", [*own, *listed])
    assert config.data.test_groups is None and not config.train.within_group
    assert config.eval.episode_files is None and config.eval.episodes == 1000
    # A recipe with nothing bound to its data, or its own data set, needs nothing more.
    assert resolve_config(None, own).data.name == "image_folder"
    assert resolve_config("omniglot-protonet", ["data.name=omniglot"]).data.test_groups


def test_the_run_name_follows_the_data() -> None:
    own = resolve_config(None, ["data.name=image_folder", "data.path=/photos/My Shop/"])
    assert own.name == "digits-siamese-My_Shop"
    assert resolve_config(None, ["data.name=image_folder", "data.path=/a", "name=mine"]).name == (
        "mine"
    )
    assert resolve_config(None, ["train.steps=5"]).name == "digits-siamese"
