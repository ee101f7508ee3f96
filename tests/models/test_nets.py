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


def test_embedding_net_names_the_fix_for_uint8_numpy_and_wrong_sizes() -> None:
    net = EmbeddingNet(backbone("conv4", 1), dim=4, image_size=16)
    with pytest.raises(TypeError, match=r"uint8 .*metriclab\.data\.to_float"):
        net(torch.zeros(2, 1, 16, 16, dtype=torch.uint8))
    with pytest.raises(TypeError, match="torch.from_numpy"):
        net(torch.rand(2, 1, 16, 16).numpy())
    # conv4 pools down to any size, so 28 px would run: it is refused, naming both sizes.
    with pytest.raises(ValueError, match=r"built for 16×16 .* got 28×28; .*image_size=28"):
        net(torch.rand(2, 1, 28, 28))
    assert net(torch.rand(2, 1, 16, 16)).shape == (2, 4)
