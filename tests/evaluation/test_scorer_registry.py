"""Episode scorers by name: every registered scorer scores a tiny episode; names come from one
registry that config validation reads."""

import pytest
import torch

from metriclab.data import EpisodeSet
from metriclab.distances import L1
from metriclab.evaluation import Embeddings, evaluate_episodes
from metriclab.evaluation.episodes import SCORERS, scorer_for
from metriclab.evaluation.method import ScorerContext
from metriclab.models import MatchingComparator, RelationComparator
from tests.helpers import tiny_images


def separable() -> tuple:
    """Embeddings where every class is a tight cluster far from the others: any sane scorer is
    right on every query."""
    data = tiny_images(num_classes=4, per_class=6)
    centres = torch.eye(4) * 10.0
    noise = 0.01 * torch.randn(len(data), 4, generator=torch.Generator().manual_seed(0))
    vectors = Embeddings(centres[data.labels] + noise, data.labels, data.item_ids)
    # 3 queries per class: LaplacianShot links each query to its 2 nearest other queries
    episodes = EpisodeSet.sample(data, n_way=3, k_shot=2, n_query=3, episodes=5, seed=0)
    return vectors, episodes


def pair_head(queries: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    return -L1().matrix(queries, support)


def relation_by_hand() -> RelationComparator:
    """A relation module that compares the separable clusters (centres 10·e_i): hidden unit i
    fires only when class feature and query both lie on axis i."""
    model = RelationComparator(4, hidden=4).eval()
    first, _, _, second, _ = model.relation
    with torch.no_grad():
        first.weight.copy_(torch.cat([torch.eye(4), torch.eye(4)], dim=1))
        first.bias.fill_(-15.0)
        second.weight.fill_(1.0)
        second.bias.fill_(-2.5)
    return model


#: The learned comparators the comparator scorers need (untrained matching attention is already
#: cosine attention; a relation module is set by hand).
COMPARATORS = {"matching": lambda: MatchingComparator(4), "relation": relation_by_hand}


@pytest.mark.parametrize("name", list(SCORERS))
def test_every_registered_scorer_scores_a_tiny_episode(name: str) -> None:
    vectors, episodes = separable()
    # SimpleShot centres on a training mean: here the origin, away from every cluster
    comparator = COMPARATORS[name]() if name in COMPARATORS else None
    context = ScorerContext(train_mean=torch.zeros(4), comparator=comparator)
    result = evaluate_episodes(vectors, episodes, scorer_for(name, pair_head, context=context))
    assert result.per_episode.shape == (5,)
    assert result.mean == 1.0


def test_scorer_names_and_what_they_need() -> None:
    assert SCORERS.key == "eval.scorer"
    assert SCORERS.get("prototype").prototype and not SCORERS.get("nearest").prototype
    assert SCORERS.get("siamese").pair_head
    assert scorer_for("nearest", pair_head) == "nearest"
    assert scorer_for("siamese", pair_head) is pair_head
    with pytest.raises(ValueError, match="scorer 'siamese' scores with a learned pair head"):
        scorer_for("siamese")
    vectors, episodes = separable()
    with pytest.raises(ValueError, match="pass the head itself as scorer"):
        evaluate_episodes(vectors, episodes, "siamese")
    with pytest.raises(ValueError, match=r"got 'nearst' \(did you mean 'nearest'\?\)"):
        evaluate_episodes(vectors, episodes, "nearst")
