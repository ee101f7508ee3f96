"""Run-folder figures: training curves, the ROC curve and a 2-D map of unseen-class embeddings.

Every figure is written atomically as a PNG. matplotlib runs headless (Agg).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from metriclab.atomic import atomic_write


def _save(figure: Figure, path: Path) -> Path:
    with atomic_write(path, binary=True) as handle:
        figure.savefig(handle, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return path


def plot_curves(rows: Sequence[dict[str, str]], path: Path, title: str = "") -> Path:
    """Training loss (left axis) and validation accuracy (right axis) against the step."""
    steps = np.array([int(r["step"]) for r in rows])
    loss = np.array([float(r["loss"]) for r in rows])
    figure, left = plt.subplots(figsize=(6.4, 3.6))
    left.plot(steps, loss, color="tab:blue", linewidth=1.0, label="training loss")
    left.set_xlabel("step")
    left.set_ylabel("loss", color="tab:blue")
    validated = [(int(r["step"]), float(r["val_accuracy"])) for r in rows if r.get("val_accuracy")]
    if validated:
        right = left.twinx()
        x, y = zip(*validated, strict=True)
        right.plot(x, y, "o-", color="tab:orange", markersize=3, label="validation accuracy")
        right.set_ylabel("validation accuracy", color="tab:orange")
        right.set_ylim(0.0, 1.0)
    left.set_title(title or "training")
    left.grid(alpha=0.3)
    return _save(figure, path)


def plot_roc(
    fpr: np.ndarray, tpr: np.ndarray, auc: float, eer: float, path: Path, title: str = ""
) -> Path:
    """The verification ROC curve with its AUC and equal-error point; ``title`` names the run."""
    figure, axes = plt.subplots(figsize=(4.2, 4.2))
    axes.plot(fpr, tpr, color="tab:blue", label=f"AUC {auc:.3f}")
    axes.plot([0, 1], [0, 1], ":", color="grey", linewidth=0.8)
    axes.plot([eer], [1 - eer], "o", color="tab:red", label=f"EER {100 * eer:.1f} %")
    axes.set_xlabel("false accept rate")
    axes.set_ylabel("true accept rate")
    axes.set_title(f"{title + ': ' if title else ''}verification ROC, unseen classes")
    axes.legend(loc="lower right")
    axes.grid(alpha=0.3)
    return _save(figure, path)


def map_classes(labels: np.ndarray, max_classes: int, seed: int = 0) -> np.ndarray:
    """The classes an embedding map shows: all when there are at most ``max_classes``, else a
    seeded sample of ``max_classes`` of them (sorted), so that every class keeps its own colour
    and legend entry instead of a cloud of repeated colours."""
    present = np.unique(np.asarray(labels))
    if len(present) <= max_classes:
        return present
    return np.sort(np.random.default_rng(seed).choice(present, max_classes, replace=False))


def plot_embedding_map(
    vectors: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    path: Path,
    seed: int = 0,
    max_points: int = 2000,
    max_classes: int = 10,
    title: str = "",
) -> Path:
    """t-SNE (van der Maaten & Hinton 2008, scikit-learn) of ``(N, D)`` embeddings, coloured by
    class: at most ``max_classes`` classes (a seeded sample, :func:`map_classes`; the title says
    how many of how many) and ``max_points`` points. ``title`` names the run."""
    from sklearn.manifold import TSNE

    vectors, labels = np.asarray(vectors), np.asarray(labels)
    shown = map_classes(labels, max_classes, seed)
    total = len(np.unique(labels))
    vectors, labels = vectors[np.isin(labels, shown)], labels[np.isin(labels, shown)]
    rng = np.random.default_rng(seed)
    keep = rng.permutation(len(vectors))[:max_points]
    vectors, labels = vectors[keep], labels[keep]
    perplexity = float(min(30.0, max(2.0, (len(vectors) - 1) / 3)))
    points = TSNE(
        n_components=2, perplexity=perplexity, init="pca", random_state=seed
    ).fit_transform(vectors)
    figure, axes = plt.subplots(figsize=(5.6, 5.0))
    colours = plt.get_cmap("tab10" if max_classes <= 10 else "tab20")
    for colour, c in enumerate(shown):
        mine = labels == c
        name = class_names[c] if c < len(class_names) else str(c)
        axes.scatter(*points[mine].T, s=6, color=colours(colour % colours.N), label=name)
    axes.legend(markerscale=2, fontsize="small", loc="best")
    which = (
        f"{len(shown)} of {total} unseen classes (seeded sample)"
        if total > len(shown)
        else "unseen classes"
    )
    axes.set_title(f"{title + ': ' if title else ''}{which}, t-SNE", fontsize="medium")
    axes.set_xticks([])
    axes.set_yticks([])
    return _save(figure, path)
