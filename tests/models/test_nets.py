import pytest
import torch

from metriclab.distances import WeightedL1
from metriclab.models import EmbeddingNet, SiameseNet, TripletNet, backbone


def test_embedding_net_shapes_and_shared_towers() -> None:
    net = EmbeddingNet(backbone("conv4", 1), dim=16, image_size=16)
    x = torch.rand(3, 1, 16, 16)
    assert net(x).shape == (3, 16)
    siamese = SiameseNet(net, WeightedL1(16))
    triplet = TripletNet(net)
    assert siamese(x, x.flip(0)).shape == (3,)
    a, p, n = triplet(x, x, x)
    assert a.shape == p.shape == n.shape == (3, 16)
    assert siamese.embedding_net is triplet.embedding_net


def test_siamese_logit_is_bias_minus_weighted_l1() -> None:
    net = EmbeddingNet(backbone("conv4", 1), dim=8, image_size=16).eval()
    distance = WeightedL1(8)
    siamese = SiameseNet(net, distance).eval()
    x1, x2 = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    e1, e2 = net(x1), net(x2)
    expected = siamese.bias - (distance.weight * (e1 - e2).abs()).sum(-1)
    torch.testing.assert_close(siamese(x1, x2), expected)


def test_embedding_net_rejects_wrong_channels() -> None:
    net = EmbeddingNet(backbone("conv4", 1), dim=4, image_size=16)
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        net(torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match="unknown backbone 'vgg'"):
        backbone("vgg")
