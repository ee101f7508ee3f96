"""Learned comparators: modules that score an episode's queries against its support.

A comparator maps support embeddings ``(E, N, K, D)`` (class-major: ``support[e, n]`` holds the
K shots of class n) and query embeddings ``(E, Q, D)`` to class scores ``(E, Q, N)``, higher =
more likely, each episode on its own (batched only for speed). It is trained episodically with
the embedding network (``train.objective=matching`` / ``relation``) and lives on the model as
``model.comparator`` (``model.comparator`` in the config), so its weights are saved in the
model's state and a run folder rebuilds it for evaluation (``eval.scorer=matching`` /
``relation``).

* :class:`MatchingComparator`: Matching Networks (Vinyals et al. 2016,
  https://arxiv.org/abs/1606.04080), attention over the support, with optional full-context
  embeddings (FCE); scores are log-probabilities.
* :class:`RelationComparator`: Relation Networks (Sung et al. 2018,
  https://arxiv.org/abs/1711.06025), a learned relation module over concatenated embedding
  pairs; scores are relation scores in [0, 1].
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from metriclab.registry import Registry


class Comparator(nn.Module):
    """Base: ``forward(support (E, N, K, D), query (E, Q, D)) → scores (E, Q, N)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"{type(self).__name__}: dim must be a positive integer, got {dim!r}")
        self.dim = dim

    def pair_scores(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """The verification score ``(N,)`` of aligned embedding pairs ``(N, D)`` × ``(N, D)``,
        higher = more alike: how the comparator scores ``second`` as a query against ``first``
        as a one-shot class. Exported bundles score pairs with it (``pair_scorer.onnx``)."""
        raise NotImplementedError(
            f"{type(self).__name__} gives no pair score; define pair_scores to verify pairs"
        )

    def check(self, support: torch.Tensor, query: torch.Tensor) -> None:
        """Refuse inputs of the wrong shape, naming the expected one."""
        if support.ndim != 4 or query.ndim != 3 or support.shape[0] != query.shape[0]:
            raise ValueError(
                f"{type(self).__name__} takes support (E, N, K, D) and queries (E, Q, D), got "
                f"{tuple(support.shape)} and {tuple(query.shape)}"
            )
        if support.shape[-1] != self.dim or query.shape[-1] != self.dim:
            raise ValueError(
                f"{type(self).__name__} was built for {self.dim}-dimensional embeddings, got "
                f"{support.shape[-1]}; it belongs to a model with model.dim={self.dim}"
            )


class MatchingComparator(Comparator):
    """Matching Networks: ``P(n | x̂) = Σ_{i: y_i = n} a(x̂, x_i)`` with attention
    ``a(x̂, x_i) = softmax_i(f(x̂) · g(x_i) / ‖g(x_i)‖)`` (Vinyals et al. 2016, Eq. 1–2).

    The paper's attention is the softmax of the cosine; as in its authors' reference code (and
    easyfsl) the query is left unnormalised, so the query norm acts as a learned temperature (a
    softmax over cosines in [−1, 1] stays nearly flat and trains poorly).

    ``fce=True`` adds the full-context embeddings (paper, Appendix A.2): ``g(x_i) = x_i + h⃗_i +
    h⃖_i`` from a bidirectional LSTM over the support sequence (class-major order), and
    ``f(x̂)`` from ``steps`` (default: the support size, as in the reference code) read steps
    of an attention LSTM: ``r = Σ_i softmax_i(h · g(x_i)) g(x_i)``,
    ``h, c = LSTM([x̂, r], (h, c))``, ``h ← h + x̂``. The LSTM reads the query and the read-out
    as its input and keeps ``h`` as its hidden state, as the reference code does (the paper's
    ``[h, r]`` hidden state would not fit a D-unit LSTM).

    ``forward`` returns log-probabilities ``(E, Q, N)`` (train with NLL), computed as a
    log-sum-exp over each class's shots, so no epsilon guards the logarithm.
    """

    def __init__(self, dim: int, fce: bool = False, steps: int | None = None) -> None:
        super().__init__(dim)
        if not isinstance(fce, bool):
            raise ValueError(f"MatchingComparator: fce must be true or false, got {fce!r}")
        if steps is not None and (
            isinstance(steps, bool) or not isinstance(steps, int) or steps < 1
        ):
            raise ValueError(f"MatchingComparator: steps must be a positive integer, got {steps!r}")
        self.fce = fce
        self.steps = steps
        self.support_lstm = nn.LSTM(dim, dim, batch_first=True, bidirectional=True) if fce else None
        self.query_cell = nn.LSTMCell(2 * dim, dim) if fce else None

    def encode_support(self, support: torch.Tensor) -> torch.Tensor:
        """``g``: support ``(E, S, D)`` → ``(E, S, D)`` (identity without FCE)."""
        if self.support_lstm is None:
            return support
        hidden, _ = self.support_lstm(support)  # (E, S, 2D): forward then backward states
        forward, backward = hidden.split(self.dim, dim=-1)
        return support + forward + backward

    def encode_query(self, query: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
        """``f``: queries ``(E, Q, D)`` read the encoded support ``(E, S, D)`` → ``(E, Q, D)``."""
        if self.query_cell is None:
            return query
        e, q, d = query.shape
        flat = query.reshape(e * q, d)
        hidden, cell = flat, torch.zeros_like(flat)
        for _ in range(self.steps or support.shape[1]):
            attention = (hidden.view(e, q, d) @ support.transpose(1, 2)).softmax(dim=-1)
            read = (attention @ support).reshape(e * q, d)
            hidden, cell = self.query_cell(torch.cat([flat, read], dim=1), (hidden, cell))
            hidden = hidden + flat
        return hidden.view(e, q, d)

    def forward(self, support: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        self.check(support, query)
        e, n_way, k_shot, d = support.shape
        encoded = self.encode_support(support.reshape(e, n_way * k_shot, d))
        queries = self.encode_query(query, encoded)
        logits = queries @ F.normalize(encoded, dim=-1).transpose(1, 2)  # (E, Q, S)
        # log Σ_{i ∈ class n} a_i, with the support class-major: shots of a class are adjacent.
        return logits.log_softmax(dim=-1).unflatten(-1, (n_way, k_shot)).logsumexp(dim=-1)

    def pair_scores(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """The cosine ``(N,)`` of the two trained embeddings: the attention logit of a one-shot
        episode normalises the support item, and the cosine also normalises the query, so the
        score is symmetric and its scale does not depend on either norm. The full-context
        embeddings (FCE) do not apply: they read a support *set*, and a pair has none."""
        return F.cosine_similarity(first, second, dim=-1)


class RelationComparator(Comparator):
    """Relation Networks: ``r_{n,j} = g_φ([Σ_k f(x_{n,k}), f(x_j)])`` (Sung et al. 2018, Eq. 1–2):
    the class feature is the sum of its shots' embeddings, concatenated with the query's.

    The paper's relation module is two conv–batch-norm–ReLU blocks then FC layers (8 units,
    then 1 with a sigmoid) on feature maps; over embedding vectors it is ``Linear(2D, hidden) →
    BatchNorm1d → ReLU → Linear(hidden, 1) → sigmoid``. Both parts matter on vectors (measured
    on digits, 60 steps): without the batch norm the module collapsed to query-blind scores
    (MSE stuck at 0.16, the value of answering 1/N everywhere), and with 8 units it learns far
    slower than with 64, the default here. In training the batch norm normalises over the
    episode's pairs, as the paper's does; in evaluation it uses its running statistics, so
    each query is scored alone. ``forward`` returns relation scores ``(E, Q, N)`` in [0, 1]
    (train with MSE to one-hot targets, paper Eq. 3).
    """

    def __init__(self, dim: int, hidden: int = 64) -> None:
        super().__init__(dim)
        if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
            raise ValueError(
                f"RelationComparator: hidden must be a positive integer, got {hidden!r}"
            )
        self.hidden = hidden
        self.relation = nn.Sequential(
            nn.Linear(2 * dim, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1),
            nn.Sigmoid(),
        )

    def forward(self, support: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        self.check(support, query)
        classes = support.sum(dim=2)  # (E, N, D)
        e, n_way, d = classes.shape
        q = query.shape[1]
        pairs = torch.cat(
            [
                classes.unsqueeze(1).expand(e, q, n_way, d),
                query.unsqueeze(2).expand(e, q, n_way, d),
            ],
            dim=-1,
        )  # (E, Q, N, 2D): class feature first, then the query, as in the paper's C(·, ·)
        return self.relation(pairs.flatten(0, 2)).view(e, q, n_way)

    def pair_scores(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """The relation score ``(N,)`` in [0, 1] of ``second`` (the query) to ``first`` (a
        one-shot class, whose feature is its one embedding): the score a 1-shot episode gives,
        so asymmetric like the paper's ``C(class, query)``. With the module in eval mode the
        batch norm uses its running statistics, so every pair is scored alone."""
        return self.relation(torch.cat([first, second], dim=-1)).squeeze(-1)


#: ``model.comparator`` names → builders ``(dim, params) → Comparator``; ``none`` is no comparator.
COMPARATORS: Registry[Callable[..., Comparator]] = Registry("comparator", key="model.comparator")
COMPARATORS.register("matching", MatchingComparator)
COMPARATORS.register("relation", RelationComparator)


def build_comparator(name: str, dim: int, params: dict[str, Any]) -> Comparator | None:
    """The comparator ``model.comparator`` names with ``model.comparator_params``; None for
    ``none``. An unknown parameter is refused naming the comparator's parameters."""
    if name == "none":
        if params:
            raise ValueError(
                "model.comparator_params is set but model.comparator is none; drop the params "
                f"or choose a comparator ({', '.join(COMPARATORS.names())})"
            )
        return None
    builder = COMPARATORS.get(name)
    allowed = [p for p in inspect.signature(builder).parameters if p != "dim"]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(
            f"model.comparator_params.{unknown[0]} is not a parameter of comparator {name!r}; "
            f"its parameters are {', '.join(allowed)}"
        )
    return builder(dim, **params)
