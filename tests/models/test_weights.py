"""Pretrained weights: state-dict files, the torchvision hub cache, timm, grey input, frozen BN."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torchvision import models

from metriclab.models import backbone, freeze_batch_norm, load_weights, read_state_dict
from metriclab.models.weights import adapt_channels, torchvision_weights_file


def _randomised_resnet18(seed: int = 0) -> nn.Module:
    """torchvision's resnet18 with random weights and non-trivial BN statistics."""
    torch.manual_seed(seed)
    model = models.resnet18(weights=None)
    for name, buffer in model.named_buffers():
        if name.endswith("running_mean"):
            buffer.normal_(0, 0.1)
        elif name.endswith("running_var"):
            buffer.uniform_(0.5, 1.5)
    return model.eval()


def _features(reference: nn.Module, x: torch.Tensor) -> torch.Tensor:
    reference.fc = nn.Identity()
    with torch.no_grad():
        return reference.eval()(x)


@pytest.fixture()
def resnet_file(tmp_path: Path) -> tuple[Path, nn.Module]:
    reference = _randomised_resnet18()
    file = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), file)
    return file, reference


def test_state_dict_file_loads_into_a_torchvision_backbone(resnet_file) -> None:
    file, reference = resnet_file
    net = backbone("torchvision:resnet18", 3, weights=str(file)).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(net(x), _features(reference, x))


def test_the_report_names_the_dropped_classifier(resnet_file) -> None:
    file, _ = resnet_file
    net = backbone("torchvision:resnet18", 3)
    report = load_weights(net, read_state_dict(file), str(file))
    assert set(report.unexpected) == {"fc.weight", "fc.bias"}
    assert not report.adapted
    assert "fc.weight" in str(report)


def test_grey_input_sums_the_rgb_filters(resnet_file) -> None:
    # A grey image repeated on three channels must give the RGB network's features exactly.
    file, reference = resnet_file
    net = backbone("torchvision:resnet18", 1, weights=str(file)).eval()
    grey = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(
            net(grey), _features(reference, grey.repeat(1, 3, 1, 1)), rtol=1e-4, atol=1e-5
        )


@settings(max_examples=25, deadline=None)
@given(
    out=st.integers(1, 6),
    k=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
def test_summed_filters_on_grey_equal_rgb_filters_on_repeated_grey(
    out: int, k: int, seed: int
) -> None:
    generator = torch.Generator().manual_seed(seed)
    rgb = torch.randn(out, 3, k, k, generator=generator)
    grey = torch.rand(1, 1, k + 4, k + 4, generator=generator)
    summed = adapt_channels(rgb, torch.empty(out, 1, k, k))
    assert summed is not None
    torch.testing.assert_close(
        F.conv2d(grey, summed), F.conv2d(grey.repeat(1, 3, 1, 1), rgb), rtol=1e-4, atol=1e-4
    )


def test_a_file_of_another_architecture_names_the_missing_keys(tmp_path: Path) -> None:
    file = tmp_path / "conv4.pt"
    torch.save(backbone("conv4", 3).state_dict(), file)
    with pytest.raises(ValueError, match=r"lacks 120 .* \(conv1\.weight"):
        backbone("torchvision:resnet18", 3, weights=str(file))


def test_a_wrong_shape_names_the_key(tmp_path: Path) -> None:
    state = backbone("conv4", 3).state_dict()
    state["0.0.weight"] = torch.zeros(64, 3, 5, 5)
    file = tmp_path / "bad.pt"
    torch.save(state, file)
    with pytest.raises(ValueError, match=r"0\.0\.weight has shape \(64, 3, 5, 5\)"):
        backbone("conv4", 3, weights=str(file))


def test_a_pickled_object_is_refused_by_weights_only(tmp_path: Path) -> None:
    file = tmp_path / "model.pt"
    torch.save(backbone("conv4", 1), file)  # a whole module: needs unpickling code
    with pytest.raises(ValueError, match="weights_only=True"):
        backbone("conv4", 1, weights=str(file))


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothere.pt"):
        backbone("conv4", 1, weights=str(tmp_path / "nothere.pt"))


def test_checkpoint_wrappers_and_dataparallel_prefixes_are_unwrapped(tmp_path: Path) -> None:
    net = backbone("conv4", 1)
    file = tmp_path / "wrapped.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, file)
    loaded = backbone("conv4", 1, weights=str(file))
    for key, value in net.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)


def test_torchvision_weight_name_absent_from_the_cache_names_path_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    expected = Path(models.ResNet18_Weights.IMAGENET1K_V1.url).name
    with pytest.raises(FileNotFoundError) as failure:
        backbone("torchvision:resnet18", 3, weights="IMAGENET1K_V1")
    message = str(failure.value)
    assert expected in message and str(tmp_path / "hub" / "checkpoints") in message


def test_torchvision_weight_name_loads_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    reference = _randomised_resnet18(seed=1)
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(reference.state_dict(), folder / Path(models.ResNet18_Weights.DEFAULT.url).name)
    assert torchvision_weights_file("resnet18", "DEFAULT").parent == folder
    net = backbone("torchvision:resnet18", 3, weights="DEFAULT").eval()
    x = torch.rand(1, 3, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(net(x), _features(reference, x))


def test_an_unknown_weight_name_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):
        backbone("torchvision:resnet18", 3, weights="IMAGENET9K")
    with pytest.raises(ValueError, match="not a file"):
        backbone("conv4", 1, weights="IMAGENET1K_V1")


def test_state_dict_loads_into_a_timm_backbone(tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    reference = timm.create_model("resnet18", pretrained=False, num_classes=10).eval()
    file = tmp_path / "timm_resnet18.pth"
    torch.save(reference.state_dict(), file)
    net = backbone("timm:resnet18", 3, weights=str(file)).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        expected = reference.forward_head(reference.forward_features(x), pre_logits=True)
        torch.testing.assert_close(net(x), expected)


def test_unknown_timm_model_is_named() -> None:
    pytest.importorskip("timm")
    with pytest.raises(ValueError, match="unknown timm model 'resnet1999'"):
        backbone("timm:resnet1999", 3)


def test_frozen_batch_norm_keeps_running_statistics_in_training_mode() -> None:
    torch.manual_seed(0)
    net = freeze_batch_norm(backbone("conv4", 1))
    before = {k: v.clone() for k, v in net.state_dict().items() if "running" in k}
    x = torch.rand(8, 1, 28, 28)
    with torch.no_grad():
        expected = net.eval()(x)
        net.train()
        trained = net(x)
    torch.testing.assert_close(trained, expected)
    for key, value in before.items():
        torch.testing.assert_close(net.state_dict()[key], value)
    # Unfrozen, training mode normalises by the batch and moves the statistics.
    plain = backbone("conv4", 1).train()
    plain(x)
    assert not torch.equal(plain.state_dict()["0.1.running_mean"], torch.zeros(64))


def test_cli_names_the_missing_cache_file_in_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from metriclab.cli import main

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    argv = [
        "train",
        "--no-progress",
        "--run-dir",
        str(tmp_path / "run"),
        "model.backbone=torchvision:resnet18",
        "model.weights=IMAGENET1K_V1",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert Path(models.ResNet18_Weights.IMAGENET1K_V1.url).name in err
    assert "Traceback" not in err


def test_timm_grey_backbone_takes_rgb_weights_by_summing(tmp_path: Path) -> None:
    timm = pytest.importorskip("timm")
    torch.manual_seed(1)
    reference = timm.create_model("resnet18", pretrained=False, num_classes=0).eval()
    file = tmp_path / "rgb.pth"
    torch.save(reference.state_dict(), file)
    net = backbone("timm:resnet18", 1, weights=str(file)).eval()
    grey = torch.rand(2, 1, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(
            net(grey), reference(grey.repeat(1, 3, 1, 1)), rtol=1e-4, atol=1e-5
        )
