"""A linear map fitted on training-class vectors after training, appended to the embedder.

A metric learned on few classes spends its embedding on what tells *those* classes apart; the
directions that separate unseen classes are there but squeezed. A fixed affine map fitted on the
training classes' vectors, ``z = (x − μ) W``, rescales them (a back-end in the sense of speaker
verification, where it is routine before cosine scoring). The kinds, each ``W`` from the
training vectors ``x`` ``(N, F)`` with labels ``(N,)``:

- ``center``: ``W = I`` (only ``μ`` removed), so cosine measures angles about the data's centre
  instead of the origin.
- ``wccn``: within-class covariance normalisation, ``W = S_w^{-1/2}`` (Hatch et al. 2006,
  "Within-class covariance normalization for SVM-based speaker recognition"): directions in
  which one class's vectors vary count less.
- ``lda``: Fisher's linear discriminant, ``W = S_w^{-1/2} V`` with ``V`` the eigenvectors of
  ``S_w^{-1/2} S_b S_w^{-1/2}`` by decreasing eigenvalue (Fisher 1936): the same as ``wccn`` up
  to a rotation, so it differs only when it keeps fewer dimensions.
- ``pca``: whitening of the total covariance, ``W = S_t^{-1/2}`` (PCA whitening; Kessy et al.
  2018, "Optimal whitening and decorrelation"): every direction the training vectors span gets
  unit variance, including those a classifier loss left small.

Every covariance is shrunk toward a multiple of the identity before it is inverted,
``S ← (1 − a) S + a · tr(S)/F · I`` with ``a`` = ``shrinkage`` in [0, 1] (Ledoit & Wolf 2004):
with tens of classes and ``F`` ≥ 64 dimensions the raw estimate is singular or nearly so, and
``a = 1`` leaves only the centring. When the map must also reduce ``F`` input dimensions to
``K < F`` (vectors from the backbone, reduced to the embedding size), it keeps the ``K``
leading principal directions of the mapped training vectors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from metriclab.registry import Registry

#: A kind's fit: ``(S_w, S_b, S_t, shrinkage)``, each ``(F, F)`` float64 → ``W`` ``(F, F)``.
WhiteningFit = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float], torch.Tensor]
#: ``train.whiten`` kinds → the ``W`` they fit from the within-, between-class and total covariances.
WHITENINGS: Registry[WhiteningFit] = Registry("whitening", key="train.whiten")
#: Where the fitted map reads its input: the trained embedding, or the backbone's features
#: (the embedding head then goes unused; ``train.whiten_from``).
WHITEN_SOURCES = ("embedding", "backbone")


def shrink(covariance: torch.Tensor, shrinkage: float) -> torch.Tensor:
    """``(1 − a) S + a · tr(S)/F · I`` for ``(F, F)`` ``S`` and ``a = shrinkage`` in [0, 1]."""
    size = covariance.shape[0]
    target = torch.trace(covariance) / size * torch.eye(size, dtype=covariance.dtype)
    return (1 - shrinkage) * covariance + shrinkage * target


def inverse_sqrt(covariance: torch.Tensor) -> torch.Tensor:
    """The symmetric ``S^{-1/2}`` of a symmetric positive semi-definite ``(F, F)`` ``S``;
    eigenvalues below 1e-12 of the largest are clamped there (a singular ``S`` with no
    shrinkage stays finite)."""
    values, vectors = torch.linalg.eigh(covariance)
    floor = values.max().clamp(min=1e-300) * 1e-12
    return vectors @ torch.diag(values.clamp(min=floor).rsqrt()) @ vectors.T


def scatter(
    vectors: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(μ, S_w, S_b, S_t)`` of ``(N, F)`` vectors with ``(N,)`` labels, in float64.

    ``S_w``: the mean over items of ``(x − μ_c)(x − μ_c)ᵀ``; ``S_b``: the mean over classes of
    ``(μ_c − μ)(μ_c − μ)ᵀ``; ``S_t``: the covariance of all items about ``μ`` (divided by N).
    """
    x = vectors.to(torch.float64)
    classes, index = torch.unique(labels, return_inverse=True)
    mean = x.mean(0)
    sums = torch.zeros(len(classes), x.shape[1], dtype=x.dtype).index_add_(0, index, x)
    counts = torch.bincount(index, minlength=len(classes)).to(x.dtype)
    centres = sums / counts[:, None]
    within = (x - centres[index]).T @ (x - centres[index]) / len(x)
    between = (centres - mean).T @ (centres - mean) / len(classes)
    total = (x - mean).T @ (x - mean) / len(x)
    return mean, within, between, total


@WHITENINGS.register("center")
def _center(
    within: torch.Tensor, between: torch.Tensor, total: torch.Tensor, a: float
) -> torch.Tensor:
    return torch.eye(within.shape[0], dtype=within.dtype)


@WHITENINGS.register("wccn")
def _wccn(
    within: torch.Tensor, between: torch.Tensor, total: torch.Tensor, a: float
) -> torch.Tensor:
    return inverse_sqrt(shrink(within, a))


@WHITENINGS.register("lda")
def _lda(
    within: torch.Tensor, between: torch.Tensor, total: torch.Tensor, a: float
) -> torch.Tensor:
    root = inverse_sqrt(shrink(within, a))
    values, vectors = torch.linalg.eigh(root @ between @ root)
    return root @ _fix_signs(vectors[:, torch.argsort(values, descending=True)])


@WHITENINGS.register("pca")
def _pca(
    within: torch.Tensor, between: torch.Tensor, total: torch.Tensor, a: float
) -> torch.Tensor:
    return inverse_sqrt(shrink(total, a))


def fit_whitening(
    vectors: torch.Tensor, labels: torch.Tensor, kind: str, shrinkage: float, dim: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit ``(μ, W)``: ``(F,)`` and ``(F, dim)`` float32, so that ``z = (x − μ) W``.

    Args:
        vectors: ``(N, F)`` training vectors; labels: ``(N,)`` their classes (at least 2).
        kind: a name in :data:`WHITENINGS`; shrinkage: ``a`` in [0, 1] (module docstring).
        dim: output size ``K ≤ F``; below ``F`` the map keeps the ``K`` leading principal
            directions of the mapped vectors.

    Deterministic: the same inputs give the same map (float64 eigendecompositions; the sign of
    each eigenvector that enters ``W`` is fixed so its largest-magnitude entry is positive).
    """
    check_whitening(kind, shrinkage)
    if vectors.ndim != 2 or labels.shape != (vectors.shape[0],):
        raise ValueError(
            f"fit_whitening needs (N, F) vectors and (N,) labels, got {tuple(vectors.shape)} "
            f"and {tuple(labels.shape)}"
        )
    if torch.unique(labels).numel() < 2:
        raise ValueError("fit_whitening needs vectors of at least 2 classes; train on more classes")
    if not 1 <= dim <= vectors.shape[1]:
        raise ValueError(
            f"whitening output size must lie in [1, {vectors.shape[1]}] (the input size), "
            f"got {dim}; set model.dim at most {vectors.shape[1]}"
        )
    mean, within, between, total = scatter(vectors, labels)
    matrix = WHITENINGS.get(kind)(within, between, total, shrinkage)
    if dim < matrix.shape[1]:
        mapped = (vectors.to(torch.float64) - mean) @ matrix
        values, directions = torch.linalg.eigh(mapped.T @ mapped / len(mapped))
        matrix = matrix @ _fix_signs(directions[:, torch.argsort(values, descending=True)[:dim]])
    return mean.float(), matrix.float()


def _fix_signs(matrix: torch.Tensor) -> torch.Tensor:
    """Columns flipped so each one's largest-magnitude entry is positive (eigenvectors have no
    sign of their own; this makes the map independent of the LAPACK build's sign choices)."""
    peak = matrix.abs().argmax(0)
    signs = torch.sign(matrix[peak, torch.arange(matrix.shape[1])])
    return matrix * torch.where(signs == 0, torch.ones_like(signs), signs)


def check_whitening(kind: str, shrinkage: float) -> None:
    """Raise ``ValueError`` naming the bad value: ``kind`` must be registered, ``shrinkage``
    in [0, 1]."""
    WHITENINGS.get(kind)  # its own sentence: the key, a close match, the choices
    if not 0.0 <= shrinkage <= 1.0:
        raise ValueError(f"train.whiten_shrinkage must lie in [0, 1], got {shrinkage}")


class Whitening(nn.Module):
    """``(B, F)`` → ``(B, K)``: ``(x − μ) W``, inactive until :meth:`set` installs a fitted map.

    ``mean``, ``matrix`` and ``fitted`` are buffers, so the map travels in the model's state
    dict and in every traced export; ``active`` follows ``fitted`` on load. Until fitted the
    mean and matrix are empty: a 2304 × 2304 float32 identity would add 21 MB to every
    checkpoint of the run for nothing. Loading resizes them to what the state dict holds (empty,
    or ``(F,)`` and ``(F, K)``; an older checkpoint's unfitted identity loads as it was).
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        if not 1 <= out_features <= in_features:
            raise ValueError(
                f"Whitening maps in_features={in_features} to at most as many outputs, got "
                f"out_features={out_features}"
            )
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("mean", torch.zeros(0))
        self.register_buffer("matrix", torch.zeros(0, 0))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))
        self.active = False

    def set(self, mean: torch.Tensor, matrix: torch.Tensor) -> None:
        """Install a fitted ``(F,)`` mean and ``(F, K)`` matrix and switch the map on."""
        features, outputs = self.in_features, self.out_features
        if mean.shape != (features,) or matrix.shape != (features, outputs):
            raise ValueError(
                f"this Whitening takes a ({features},) mean and a ({features}, {outputs}) "
                f"matrix, got {tuple(mean.shape)} and {tuple(matrix.shape)}"
            )
        self.mean = mean.to(self.fitted.device, torch.float32).clone()
        self.matrix = matrix.to(self.fitted.device, torch.float32).clone()
        self.fitted.fill_(True)
        self.active = True

    def reset(self) -> None:
        """Back to inactive (a run that resumes training trains without the old map)."""
        self.mean = self.mean.new_zeros(0)
        self.matrix = self.matrix.new_zeros(0, 0)
        self.fitted.fill_(False)
        self.active = False

    def _load_from_state_dict(
        self, state_dict: dict[str, torch.Tensor], prefix: str, *args: Any
    ) -> None:
        # Take the stored shapes (empty when unfitted) before copying; other sizes than the
        # empty or fitted ones are left for the ordinary size-mismatch report.
        for name, full in (
            ("mean", (self.in_features,)),
            ("matrix", (self.in_features, self.out_features)),
        ):
            stored = state_dict.get(prefix + name)
            current = getattr(self, name)
            if stored is not None and stored.shape in (full, (0,) * len(full)):
                setattr(self, name, current.new_zeros(stored.shape))
        super()._load_from_state_dict(state_dict, prefix, *args)
        self.active = bool(self.fitted)

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        return (vectors - self.mean) @ self.matrix
