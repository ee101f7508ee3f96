"""evaluate_run's checks before any work: a small unseen class names the eval key and the value
that works."""

from pathlib import Path

import pytest
import torch

from metriclab.config import ConfigError, resolve_config
from metriclab.data import EpisodeSet, LabeledImages
from metriclab.evaluation.run import check_episodes_fit


def _data(sizes: list[int]) -> LabeledImages:
    labels = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    n = len(labels)
    return LabeledImages(
        images=torch.zeros(n, 1, 4, 4, dtype=torch.uint8),
        labels=labels,
        class_names=tuple(f"c{i}" for i in range(len(sizes))),
        item_ids=tuple(f"item{i}" for i in range(n)),
    )


@pytest.mark.parametrize(
    ("sizes", "fix"),
    [
        ([20, 20, 6, 20, 20], "eval.n_query=5'"),
        ([20, 20, 20, 1, 20], "one image cannot be both support and query"),
    ],
)
def test_a_small_class_names_the_key_and_the_value_that_works(sizes: list[int], fix: str) -> None:
    config = resolve_config(None, [])
    data = _data(sizes)
    with pytest.raises(ConfigError, match=r"unseen class 'c\d' has only \d+ image") as caught:
        check_episodes_fit(config, data, Path("runs/x"))
    assert fix in str(caught.value) and "eval.k_shot + eval.n_query = 1 + 15" in str(caught.value)
    if "n_query=" in fix:  # the suggested value really samples
        check_episodes_fit(resolve_config(None, ["eval.n_query=5"]), data, Path("runs/x"))
        EpisodeSet.sample(data, n_way=5, k_shot=1, n_query=5, episodes=3, seed=0)
        with pytest.raises(ValueError):  # and one more query would not
            EpisodeSet.sample(data, n_way=5, k_shot=1, n_query=6, episodes=3, seed=0)


@pytest.mark.parametrize(("views", "count"), [("affine", 9), ("flip", 2), ("affine_flip", 18)])
def test_run_views_follow_eval_tta_and_tta_views(views: str, count: int) -> None:
    from metriclab.data import TTA_VIEWS
    from metriclab.evaluation.run import run_views

    assert run_views(resolve_config(None, [f"eval.tta_views={views}"])) is None  # tta off
    config = resolve_config(None, ["eval.tta=true", f"eval.tta_views={views}", "data.size=12"])
    chosen = run_views(config)
    assert chosen is not None and chosen.shape == (count, 2, 3)
    assert torch.equal(chosen, TTA_VIEWS.get(views)(12))
