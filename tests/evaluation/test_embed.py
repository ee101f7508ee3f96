"""embed: batched, no-grad, eval-mode, float32, mode restored; bad input."""

import math

import pytest
import torch
from torch import nn

from metriclab.data import to_float, tta_views, warp
from metriclab.evaluation import embed
from metriclab.models import EmbeddingNet, conv4
from tests.helpers import tiny_images


class DropoutNet(nn.Module):
    """Flatten → linear → dropout: its output differs between train and eval mode."""

    def __init__(self, size: int = 16, dim: int = 4) -> None:
        super().__init__()
        self.linear = nn.Linear(size * size, dim).double()
        self.dropout = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.linear(x.flatten(1).double()))


def test_embed_equals_one_eval_forward_and_restores_mode() -> None:
    data = tiny_images(num_classes=3, per_class=5)
    torch.manual_seed(0)
    net = DropoutNet()
    net.train()
    embeddings = embed(net, data, batch_size=4, progress=False)
    assert net.training  # the caller's mode is restored
    with torch.no_grad():
        expected = net.eval()(to_float(data.images)).float()
    torch.testing.assert_close(embeddings.vectors, expected, rtol=0, atol=0)
    assert embeddings.vectors.dtype == torch.float32 and not embeddings.vectors.requires_grad
    assert torch.equal(embeddings.labels, data.labels) and embeddings.item_ids == data.item_ids
    assert len(embeddings) == len(data)


def test_embed_refuses_empty_data_nan_and_bad_batch() -> None:
    data = tiny_images(num_classes=2, per_class=2)
    with pytest.raises(ValueError, match="data set to embed is empty"):
        embed(DropoutNet(), data.subset(torch.zeros(0, dtype=torch.int64)), progress=False)
    broken = DropoutNet()
    with torch.no_grad():
        broken.linear.weight.fill_(math.nan)
    with pytest.raises(ValueError, match="NaN or infinite values; check the model's weights"):
        embed(broken, data, progress=False)
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        embed(DropoutNet(), data, batch_size=0, progress=False)


def test_views_average_the_embeddings_of_the_warped_copies() -> None:
    data = tiny_images(num_classes=3, per_class=5)
    torch.manual_seed(0)
    net = DropoutNet()
    views = tta_views(16)
    embeddings = embed(net, data, batch_size=4, progress=False, views=views)
    with torch.no_grad():
        copies = [
            net.eval()(to_float(warp(data.images, view.expand(len(data), 2, 3)))).float()
            for view in views
        ]
    torch.testing.assert_close(embeddings.vectors, torch.stack(copies).mean(0))
    identity_only = embed(net, data, progress=False, views=views[:1])
    torch.testing.assert_close(identity_only.vectors, embed(net, data, progress=False).vectors)


def test_views_keep_a_normalising_network_on_the_unit_sphere() -> None:
    data = tiny_images(num_classes=2, per_class=3)
    torch.manual_seed(0)
    net = EmbeddingNet(conv4(1, hidden=4), dim=5, in_channels=1, image_size=16, normalize=True)
    vectors = embed(net, data, progress=False, views=tta_views(16)).vectors
    torch.testing.assert_close(vectors.norm(dim=1), torch.ones(len(data)))


def test_views_of_the_wrong_shape_are_refused() -> None:
    with pytest.raises(ValueError, match=r"views must be a non-empty \(V, 2, 3\) stack"):
        embed(DropoutNet(), tiny_images(), progress=False, views=torch.zeros(2, 3, 3))
