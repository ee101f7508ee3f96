"""Run-folder figures: the embedding map shows a readable, seeded subset of many classes."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metriclab.plots import map_classes, plot_embedding_map, plot_roc


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 60), st.integers(1, 15), st.integers(0, 2**31 - 1))
def test_map_classes_keeps_all_or_a_seeded_sample(n_classes: int, most: int, seed: int) -> None:
    labels = np.repeat(np.arange(n_classes), 3)
    shown = map_classes(labels, most, seed)
    assert len(shown) == min(n_classes, most) and len(set(shown.tolist())) == len(shown)
    assert set(shown.tolist()) <= set(range(n_classes)) and np.all(np.diff(shown) > 0)
    np.testing.assert_array_equal(shown, map_classes(labels, most, seed))  # seeded


def test_map_of_many_classes_draws_only_the_shown_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matplotlib.axes

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(40), 5)
    vectors = rng.normal(size=(200, 6)).astype(np.float32) + labels[:, None]
    drawn: list[str] = []
    real = matplotlib.axes.Axes.scatter

    def recording(self, *args, label=None, **kwargs):
        drawn.append(label)
        return real(self, *args, label=label, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "scatter", recording)
    names = tuple(f"class{i}" for i in range(40))
    path = plot_embedding_map(vectors, labels, names, tmp_path / "map.png", seed=3, title="run")
    assert path.read_bytes().startswith(b"\x89PNG")
    expected = [names[c] for c in map_classes(labels, 10, 3)]
    assert drawn == expected and len(set(drawn)) == 10


def test_roc_is_written(tmp_path: Path) -> None:
    fpr, tpr = np.linspace(0, 1, 5), np.sqrt(np.linspace(0, 1, 5))
    path = plot_roc(fpr, tpr, 0.8, 0.25, tmp_path / "roc.png", title="digits-siamese")
    assert path.read_bytes().startswith(b"\x89PNG")
