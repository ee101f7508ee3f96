"""evaluate_model and Report: one table, valid JSON, no NaN in JSON."""

import json
import math

import numpy as np
import torch

from metriclab.data import EpisodeSet, tta_views
from metriclab.distances import L2
from metriclab.evaluation import (
    EpisodeResult,
    Report,
    RetrievalMetrics,
    evaluate_model,
    verification_metrics,
)
from metriclab.evaluation.report import KnnAccuracy
from metriclab.models import EmbeddingNet, SiameseNet, backbone
from tests.helpers import tiny_images


def test_evaluate_model_report_table_and_json() -> None:
    data = tiny_images(num_classes=5, per_class=8)
    torch.manual_seed(0)
    siamese = SiameseNet(EmbeddingNet(backbone("conv4", in_channels=1), dim=8, image_size=16), L2())
    sets = {"3-way 1-shot": EpisodeSet.sample(data, 3, 1, 2, episodes=6, seed=0)}
    report = evaluate_model(
        siamese.embedding_net, siamese.distance, data, sets, pairs=40, seed=0,
        scorer=siamese.logit_matrix, aligned_head=siamese.logits, progress=False,
    )  # fmt: skip
    table = report.table()
    for row in ("3-way 1-shot accuracy", "kNN accuracy (k=1, 1-shot gallery)", "MAP@R", "EER"):
        assert row in table
    record = json.loads(report.to_json())
    assert record["episodes"]["3-way 1-shot"]["episodes"] == 6
    assert record["episodes"]["3-way 1-shot"]["scorer"] == "pair head"
    assert record["knn"]["retrieval_queries"] == 40 and record["knn"]["accuracy_queries"] == 35
    assert set(record["verification"]["roc_points"]) == {"fpr", "tpr"}
    assert record["data"]["views"] == 1 and "test-time augmentation" not in table
    augmented = evaluate_model(
        siamese.embedding_net, siamese.distance, data, sets, pairs=40, seed=0,
        progress=False, views=tta_views(16),
    )  # fmt: skip
    assert json.loads(augmented.to_json())["data"]["views"] == 9
    assert "mean of 9 views per image" in augmented.table()


def test_json_has_null_for_an_undefined_ci() -> None:
    rng = np.random.default_rng(0)
    same = rng.random(100) < 0.5
    report = Report(
        episodes={"one": EpisodeResult(0.5, math.nan, np.array([0.5]), "prototype (l2)")},
        retrieval=RetrievalMetrics(1.0, 1.0, 1.0, 4),
        knn=KnnAccuracy(1.0, 1, 1, 2),
        verification=verification_metrics(rng.normal(size=100) + same, same),
        num_classes=2,
        num_items=4,
    )
    text = report.to_json()
    assert "NaN" not in text and json.loads(text)["episodes"]["one"]["ci95"] is None
