"""The fitted linear maps of metriclab.models.whitening against naive numpy, and the embedder hook."""

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from torch import nn

from metriclab.models import EmbeddingNet, backbone
from metriclab.models.whitening import WHITENINGS, Whitening, fit_whitening


def _data(seed: int = 0, classes: int = 6, per: int = 8, dim: int = 5):
    """Anisotropic Gaussian classes: ``(N, dim)`` float32 vectors and ``(N,)`` labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim)) * rng.uniform(0.2, 3.0, size=dim)
    noise = rng.normal(size=(classes * per, dim)) @ rng.normal(size=(dim, dim))
    labels = np.repeat(np.arange(classes), per)
    return torch.tensor(centres[labels] + noise, dtype=torch.float32), torch.tensor(labels)


def _naive(x: np.ndarray, y: np.ndarray):
    """``(μ, S_w, S_b, S_t)`` by a loop over classes, straight from the definitions."""
    mu = x.mean(0)
    within = np.zeros((x.shape[1], x.shape[1]))
    means = []
    for c in np.unique(y):
        part = x[y == c]
        means.append(part.mean(0))
        for row in part:
            within += np.outer(row - part.mean(0), row - part.mean(0))
    means = np.array(means)
    between = sum(np.outer(m - mu, m - mu) for m in means) / len(means)
    return mu, within / len(x), between, np.cov(x.T, bias=True)


def _shrunk(s: np.ndarray, a: float) -> np.ndarray:
    return (1 - a) * s + a * np.trace(s) / len(s) * np.eye(len(s))


@pytest.mark.parametrize("a", [0.0, 0.3, 1.0])
@pytest.mark.parametrize(("kind", "which"), [("wccn", 1), ("pca", 3)])
def test_whitening_maps_equal_the_inverse_matrix_square_root(
    kind: str, which: int, a: float
) -> None:
    x, y = _data()
    mean, matrix = fit_whitening(x, y, kind, a, x.shape[1])
    naive = _naive(x.double().numpy(), y.numpy())
    expected = np.linalg.inv(scipy.linalg.sqrtm(_shrunk(naive[which], a)).real)
    np.testing.assert_allclose(mean.numpy(), naive[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(matrix.numpy(), expected, rtol=1e-4, atol=1e-4)


def test_center_only_removes_the_mean() -> None:
    x, y = _data(seed=1)
    mean, matrix = fit_whitening(x, y, "center", 0.5, x.shape[1])
    np.testing.assert_allclose(mean.numpy(), x.double().mean(0).numpy(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(matrix, torch.eye(x.shape[1]))


@pytest.mark.parametrize("a", [0.0, 0.5])
def test_lda_whitens_within_and_orders_between_class_variance(a: float) -> None:
    x, y = _data(seed=2)
    _, w = fit_whitening(x, y, "lda", a, x.shape[1])
    _, within, between, _ = _naive(x.double().numpy(), y.numpy())
    w = w.double().numpy()
    np.testing.assert_allclose(w.T @ _shrunk(within, a) @ w, np.eye(len(w)), atol=1e-4)
    b = w.T @ between @ w  # diagonal, largest first (Fisher's discriminant directions)
    np.testing.assert_allclose(b, np.diag(np.diag(b)), atol=1e-4)
    assert np.all(np.diff(np.diag(b)) <= 1e-6)


def test_a_smaller_output_keeps_the_leading_principal_directions() -> None:
    x, y = _data(seed=3, dim=7)
    mean, full = fit_whitening(x, y, "wccn", 0.2, 7)
    _, reduced = fit_whitening(x, y, "wccn", 0.2, 3)
    assert reduced.shape == (7, 3)
    mapped = (x.double() - mean.double()) @ full.double()
    values = np.linalg.eigvalsh(np.cov(mapped.numpy().T, bias=True))[::-1]
    kept = ((x.double() - mean.double()) @ reduced.double()).numpy()
    covariance = np.cov(kept.T, bias=True)
    np.testing.assert_allclose(np.diag(covariance), values[:3], rtol=1e-4)
    np.testing.assert_allclose(covariance, np.diag(np.diag(covariance)), atol=1e-4)


@pytest.mark.parametrize("kind", WHITENINGS.names())
def test_fitting_is_deterministic(kind: str) -> None:
    x, y = _data(seed=4)
    first = fit_whitening(x, y, kind, 0.1, 3)
    again = fit_whitening(x.clone(), y.clone(), kind, 0.1, 3)
    for a, b in zip(first, again, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("kind", "a", "dim", "labels", "match"),
    [
        ("zca", 0.5, 5, None, "train.whiten"),
        ("pca", 1.5, 5, None, r"whiten_shrinkage must lie in \[0, 1\], got 1.5"),
        ("pca", 0.5, 6, None, r"output size must lie in \[1, 5\]"),
        ("pca", 0.5, 5, "one", "at least 2 classes"),
    ],
)
def test_bad_input_is_one_clear_error(kind, a, dim, labels, match) -> None:
    x, y = _data()
    if labels == "one":
        y = torch.zeros_like(y)
    with pytest.raises(ValueError, match=match):
        fit_whitening(x, y, kind, a, dim)


def test_whitening_is_inactive_until_set_and_travels_in_the_state_dict() -> None:
    layer = Whitening(4, 4)
    assert not layer.active
    mean, matrix = torch.arange(4.0), torch.randn(4, 4, generator=torch.Generator().manual_seed(0))
    layer.set(mean, matrix)
    other = Whitening(4, 4)
    other.load_state_dict(layer.state_dict())
    assert other.active
    x = torch.randn(3, 4)
    torch.testing.assert_close(other(x), (x - mean) @ matrix)
    other.reset()
    assert not other.active
    with pytest.raises(ValueError, match=r"takes a \(4,\) mean and a \(4, 4\) matrix"):
        other.set(mean, torch.zeros(4, 3))


def test_an_unfitted_map_stores_nothing_and_older_identity_states_still_load() -> None:
    """A 2304-feature map would otherwise put a 21 MB identity into every checkpoint."""
    big = Whitening(2304, 2304).state_dict()
    assert sum(t.numel() for t in big.values()) == 1  # the `fitted` flag alone
    fitted = Whitening(3, 2)
    mean, matrix = torch.ones(3), torch.randn(3, 2, generator=torch.Generator().manual_seed(1))
    fitted.set(mean, matrix)
    fresh = Whitening(3, 2)
    fresh.load_state_dict(fitted.state_dict())  # empty buffers take the fitted shapes
    x = torch.randn(5, 3)
    torch.testing.assert_close(fresh(x), (x - mean) @ matrix)
    fresh.load_state_dict(Whitening(3, 2).state_dict())  # and an unfitted state empties them
    assert not fresh.active and fresh.matrix.numel() == 0
    older = {"mean": torch.zeros(3), "matrix": torch.eye(3, 2), "fitted": torch.tensor(False)}
    fresh.load_state_dict(older)  # before this change an unfitted map held its identity
    assert not fresh.active
    with pytest.raises(RuntimeError, match="size mismatch"):
        fresh.load_state_dict({**older, "matrix": torch.eye(3, 3)})


def _net(normalize: bool = True) -> EmbeddingNet:
    torch.manual_seed(0)
    return EmbeddingNet(backbone("conv4", 1), dim=8, image_size=16, normalize=normalize).eval()


@pytest.mark.parametrize("normalize", [True, False])
def test_folded_embedder_equals_the_map_of_the_plain_embedder(normalize: bool) -> None:
    net = _net(normalize)
    images = torch.rand(5, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        plain = net(images)
        layer = net.attach_whitening("embedding")
        torch.testing.assert_close(net(images), plain, rtol=0, atol=0)  # inactive: unchanged
        mean, matrix = torch.randn(8), torch.randn(8, 8)
        layer.set(mean, matrix)
        expected = (plain - mean) @ matrix
        expected = F.normalize(expected, dim=-1) if normalize else expected
        torch.testing.assert_close(net(images), expected)


def test_a_backbone_map_reads_the_features_and_bypasses_the_head() -> None:
    net = _net()
    images = torch.rand(5, 1, 16, 16, generator=torch.Generator().manual_seed(2))
    layer = net.attach_whitening("backbone", 3)
    assert (layer.in_features, layer.out_features) == (net.feature_size, 3)
    mean, matrix = torch.randn(net.feature_size), torch.randn(net.feature_size, 3)
    layer.set(mean, matrix)
    net.head = nn.Identity()  # never called: a head that is used would change the output shape
    with torch.no_grad():
        out = net(images)
        expected = F.normalize((net.backbone(images).flatten(1) - mean) @ matrix, dim=-1)
    assert out.shape == (5, 3)
    torch.testing.assert_close(out, expected)
    with pytest.raises(ValueError, match="unknown whitening source 'head'"):
        net.attach_whitening("head")


def test_a_map_of_backbone_layers_reads_those_modules_outputs_concatenated() -> None:
    net = _net()
    images = torch.rand(5, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        second = net.backbone[:2](images).flatten(1)  # module "1": (5, 64 · 4 · 4)
        last = net.backbone[3][1](net.backbone[3][0](net.backbone[:3](images)))
    # "3.1" is the last block's batch norm, which an in-place ReLU follows: its output must be
    # kept before the ReLU overwrites it (it has negative entries; the ReLU's has none).
    assert (last < 0).any()
    layer = net.attach_whitening("backbone", 3, layers=["1", "3.1"])
    assert (layer.in_features, layer.out_features) == (second.shape[1] + last[0].numel(), 3)
    generator = torch.Generator().manual_seed(4)
    mean = torch.randn(layer.in_features, generator=generator)
    matrix = torch.randn(layer.in_features, layer.out_features, generator=generator)
    layer.set(mean, matrix)
    net.head = nn.Identity()  # never called: the head is bypassed
    with torch.no_grad():
        out = net(images)
    expected = F.normalize((torch.cat([second, last.flatten(1)], 1) - mean) @ matrix, dim=-1)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize(
    ("source", "layers", "match"),
    [
        ("backbone", ["9"], r"'9' is not a module of the backbone; .*: 0, 0.0, 0.1"),
        ("backbone", ["2", "2"], "names a module twice"),
        ("embedding", ["2"], "attach the map with source='backbone'"),
    ],
)
def test_bad_whitening_layers_are_one_clear_error(
    source: str, layers: list[str], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        _net().attach_whitening(source, 0, layers)


def test_a_module_that_runs_twice_is_refused() -> None:
    relu = nn.ReLU()  # one module called twice: which output would the map read?
    tower = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), relu, nn.Conv2d(2, 2, 3, padding=1), relu)
    net = EmbeddingNet(tower, dim=4, image_size=4)
    with pytest.raises(ValueError, match="module '1' ran 2 times in one forward pass"):
        net.attach_whitening("backbone", 0, ["1"])


@pytest.mark.parametrize(
    ("name", "relu"), [("torchvision:resnet18", "relu"), ("timm:resnet18", "act1")]
)
def test_layers_of_torchvision_and_timm_backbones_are_read_by_name(name: str, relu: str) -> None:
    if name.startswith("timm:"):
        pytest.importorskip("timm")
    torch.manual_seed(0)
    net = EmbeddingNet(backbone(name, 3), dim=4, in_channels=3, image_size=32).eval()
    tower = net.backbone
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():  # the stem and the stages by hand: (3, 256 · 2 · 2), (3, 512 · 1 · 1)
        x = tower.maxpool(getattr(tower, relu)(tower.bn1(tower.conv1(images))))
        third = tower.layer3(tower.layer2(tower.layer1(x)))
        fourth = tower.layer4(third)
    assert net.attach_whitening("backbone", 0, ["layer3"]).in_features == 256 * 2 * 2
    with torch.no_grad():
        torch.testing.assert_close(net.whitening_features(images), third.flatten(1))
    if name.startswith("timm:"):  # timm's basic block has a ReLU module per use: the last one
        net.attach_whitening("backbone", 0, ["layer4.1.act2"])  # gives the block's output
        with torch.no_grad():
            torch.testing.assert_close(net.whitening_features(images), fourth.flatten(1))
    else:  # torchvision's basic block applies one ReLU module twice: refused, not guessed
        with pytest.raises(ValueError, match="'layer4.1.relu' ran 2 times in one forward pass"):
            net.attach_whitening("backbone", 0, ["layer4.1.relu"])
