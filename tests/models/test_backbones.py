import pytest
import torch
import torch.nn.functional as F
from torch import nn

from metriclab.models import (
    BACKBONES,
    EmbeddingNet,
    backbone,
    check_backbone_name,
    koch,
    output_features,
    resnet12,
)


def convs(module: nn.Module) -> list[nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


def test_koch_matches_the_paper_architecture() -> None:
    # Koch et al. 2015, Fig. 4: 64@10×10, 128@7×7, 128@4×4, 256@4×4 on 105×105 → 256@6×6 = 9216.
    net = koch(1)
    layers = [(c.out_channels, c.kernel_size) for c in convs(net)]
    assert layers == [(64, (10, 10)), (128, (7, 7)), (128, (4, 4)), (256, (4, 4))]
    assert sum(isinstance(m, nn.MaxPool2d) for m in net.modules()) == 3
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert output_features(net, 1, 105) == 256 * 6 * 6


def test_koch_embedding_net_has_a_sigmoid_head() -> None:
    tower = backbone("koch", 1, width=0.0625)  # 4-8-8-16 filters keep the test cheap
    net = EmbeddingNet(tower, dim=12, image_size=105, sigmoid=True).eval()
    x = torch.rand(2, 1, 105, 105)
    out = net(x)
    assert out.shape == (2, 12)
    torch.testing.assert_close(out, torch.sigmoid(net.head(tower(x).flatten(1))))
    assert ((out > 0) & (out < 1)).all()
    with pytest.raises(ValueError, match="cannot take 28×28"):
        EmbeddingNet(backbone("koch", 1, width=0.0625), dim=4, image_size=28)


def test_resnet12_has_the_published_size() -> None:
    # 4 blocks × (three 3×3 convs + a 1×1 shortcut), widths 64-160-320-640: the 12.4M-parameter
    # network of Lee et al. 2019 (MetaOptNet).
    net = resnet12(3)
    kernels = [c.kernel_size for c in convs(net)]
    assert kernels.count((3, 3)) == 12 and kernels.count((1, 1)) == 4
    params = sum(p.numel() for p in net.parameters())
    assert params == pytest.approx(12.4e6, rel=0.005)


def reference_block(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """One ResNet-12 block in eval mode, written from the description with functional ops."""
    c1, c2, c3, shortcut = convs(block)
    bn1, bn2, bn3, bn_short = (m for m in block.modules() if isinstance(m, nn.BatchNorm2d))

    def bn(layer: nn.BatchNorm2d, y: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(y, layer.running_mean, layer.running_var, layer.weight, layer.bias)

    y = F.leaky_relu(bn(bn1, F.conv2d(x, c1.weight, padding=1)), 0.1)
    y = F.leaky_relu(bn(bn2, F.conv2d(y, c2.weight, padding=1)), 0.1)
    y = bn(bn3, F.conv2d(y, c3.weight, padding=1))
    y = F.leaky_relu(y + bn(bn_short, F.conv2d(x, shortcut.weight)), 0.1)
    return F.max_pool2d(y, 2)


def test_resnet12_forward_matches_a_functional_reference() -> None:
    torch.manual_seed(0)
    net = backbone("resnet12", 3, width=0.05).eval()  # widths 3-8-16-32
    for m in net.modules():  # non-trivial BN statistics so a swapped layer would show
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.5, 0.5)
    x = torch.randn(2, 3, 20, 20)
    y = x
    for block in list(net)[:4]:
        y = reference_block(block, y)
    expected = y.mean(dim=(2, 3))
    with torch.no_grad():
        torch.testing.assert_close(net(x), expected)
    assert expected.shape == (2, 32)


def test_torchvision_backbone_adapts_channels_and_drops_the_classifier() -> None:
    net = backbone("torchvision:resnet18", in_channels=1)
    assert isinstance(net.fc, nn.Identity)
    assert net.conv1.in_channels == 1
    assert net.conv1.out_channels == 64 and net.conv1.kernel_size == (7, 7)
    assert output_features(net, 1, 32) == 512
    squeeze = backbone("torchvision:squeezenet1_1", in_channels=2)  # a conv classifier
    assert isinstance(squeeze.classifier[1], nn.Identity)
    assert output_features(squeeze, 2, 64) == 512


def test_torchvision_backbone_keeps_a_matching_first_conv() -> None:
    net = backbone("torchvision:mobilenet_v3_small", in_channels=3)
    assert convs(net)[0].in_channels == 3
    assert isinstance(net.classifier[3], nn.Identity)


def test_backbone_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="torchvision:resnet18"):
        backbone("torchvision:resnet19")
    with pytest.raises(ValueError, match="unknown backbone 'resnet13'.*resnet12"):
        backbone("resnet13")
    with pytest.raises(ValueError, match="width must be positive"):
        backbone("conv4", width=0.0)
    with pytest.raises(ValueError, match="width applies only"):
        backbone("torchvision:resnet18", width=0.5)
    with pytest.raises(ValueError, match="in_channels"):
        backbone("koch", in_channels=0)


def test_conv4_nopool_is_conv4_before_its_last_max_pool() -> None:
    torch.manual_seed(0)
    pooled = backbone("conv4").eval()
    spatial = backbone("conv4_nopool").eval()
    spatial.load_state_dict(pooled.state_dict())  # same layers, the pool has no parameters
    images = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        kept = spatial(images)
        assert kept.shape == (3, 64 * 3 * 3)
        # Max-pooling the kept 3 × 3 map gives Conv-4's 1 × 1 features.
        pooled_again = F.max_pool2d(kept.view(3, 64, 3, 3), 2).flatten(1)
        torch.testing.assert_close(pooled_again, pooled(images))
    assert output_features(spatial, 1, 28) == 576
    assert output_features(backbone("conv4_nopool", width=0.5), 1, 84) == 32 * 10 * 10


@pytest.mark.parametrize("name", list(BACKBONES))
@pytest.mark.parametrize("channels", [1, 3])
def test_every_registered_backbone_forwards_a_tiny_batch(name: str, channels: int) -> None:
    torch.manual_seed(0)
    net = backbone(name, in_channels=channels, width=0.125)
    size = 105 if name == "koch" else 16  # Koch's valid convolutions need large inputs
    out = net(torch.rand(2, channels, size, size)).flatten(1)
    assert out.shape[0] == 2 and out.shape[1] == output_features(net, channels, size)
    assert torch.isfinite(out).all()


def test_the_backbone_registry_names_its_key_and_the_torchvision_form() -> None:
    assert BACKBONES.key == "model.backbone"
    with pytest.raises(ValueError, match=r"for model.backbone .*or torchvision:<model>"):
        check_backbone_name("resnet")
    with pytest.raises(ValueError, match="names no torchvision model"):
        check_backbone_name("torchvision:")
    check_backbone_name("torchvision:anything")  # the model name is checked when built
