"""The public API sketch of DESIGN.md, run as written there, so that the design and the code agree.

Three lines differ from the sketch, each for a reason the code states in its error message:
``CosineLoss`` with a cross-entropy term needs ``num_classes`` (its own classifier layer), the
net is built for the 16-px digits (``EmbeddingNet`` defaults to 28 px), and ``episode_set`` (left
to the reader in the sketch) is a seeded :class:`EpisodeSet` of the test classes.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

import metriclab as ml
from tests.bundle.conftest import write_class_folders


def test_the_design_sketch_runs_end_to_end(
    bundle_dir: Path, test_digits: tuple[np.ndarray, np.ndarray, list[str]], tmp_path: Path
) -> None:
    data = ml.data.digits()
    train, test = data.split_classes(test_fraction=0.5, seed=0)
    emb_net = ml.models.EmbeddingNet(
        ml.models.backbone("conv4", in_channels=1), dim=64, image_size=16
    )
    siamese = ml.models.SiameseNet(emb_net, distance=ml.distances.WeightedL1(64))
    images = ml.data.to_float(test.images[:4])
    assert siamese(images[:2], images[2:]).shape == (2,)
    losses = [
        ml.losses.VerificationLoss(),
        ml.losses.ContrastiveLoss(margin=1.0, distance=ml.distances.L2()),
        ml.losses.TripletLoss(margin=0.2, mining="batch_hard"),
        ml.losses.CAMRILoss(
            embedding_dim=64, num_classes=10, margins={3: math.pi / 16}, scale=16.0
        ),
        ml.losses.OHEM(ml.losses.CosineLoss(ce_weight=0.1, num_classes=10), keep=0.7),
        ml.losses.HardMiningLoss(alpha=0.75, delta=1e7, gamma=1.0),
        ml.losses.ComplementCrossEntropy(gamma=-1.0),
    ]
    assert all(isinstance(loss, torch.nn.Module) for loss in losses)
    sampler = ml.data.EpisodeSampler(
        train.labels, n_way=5, k_shot=1, n_query=15, episodes=1000, seed=0
    )
    first = next(iter(sampler))
    assert len(first) == 5 * (1 + 15) and set(train.labels[first].tolist()) <= set(range(10))

    vectors = ml.evaluation.embed(emb_net, test)
    assert vectors.vectors.shape == (len(test.labels), 64)
    episode_set = ml.data.EpisodeSet.sample(test, 5, 1, 15, episodes=20, seed=0)
    result = ml.evaluation.evaluate_episodes(vectors, episode_set, scorer="prototype")
    assert 0.0 <= result.mean <= 1.0 and result.ci95 > 0 and len(result.per_episode) == 20
    index = ml.evaluation.FaissIndex.build(vectors, distance=ml.distances.Cosine(), kind="flat")
    assert len(index) == len(test.labels)

    bundle = ml.Bundle.load(bundle_dir)
    images, labels, names = test_digits
    folder = write_class_folders(tmp_path / "my_classes", images, labels, names, per_class=3)
    files = sorted(folder.rglob("*.png"))[:2]
    embedded = bundle.embed_files(files)
    scores = bundle.distance.matrix(embedded, embedded)
    assert scores.shape == (2, 2) and np.allclose(np.diag(scores), 0, atol=1e-4)
    previous = Path.cwd()
    os.chdir(tmp_path)
    try:
        gallery = ml.Gallery.create(bundle, "my_classes/")
    finally:
        os.chdir(previous)
    assert sorted(set(gallery.classes)) == sorted(names)
