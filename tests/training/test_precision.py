"""train.precision (bf16 on the CPU), train.accumulate and train.warmup."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from metriclab.config import Config, ConfigError, resolve_config
from metriclab.training import Trainer, checkpoints, train
from metriclab.training.metrics_log import read_metrics
from metriclab.training.warmup import warmed_up, warmup_factor

SMALL = ["model.width=0.25", "model.dim=16", "train.batch_size=16", "train.log_every=1"]


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_bf16_on_cpu_trains_and_the_loss_falls(tmp_path: Path) -> None:
    config = resolve_config(
        "digits-siamese", [*SMALL, "train.precision=bf16", "train.steps=40", "train.lr=0.003"]
    )
    train(config, tmp_path / "run", progress=False)
    losses = [float(row["loss"]) for row in read_metrics(tmp_path / "run" / "metrics.csv")]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10
    saved = (tmp_path / "run" / "config.yaml").read_text("utf-8")
    assert "precision: bf16" in saved  # the run folder records what was used


def test_bf16_autocast_really_runs_in_bfloat16(tmp_path: Path) -> None:
    """The embedding net's matrix products come out bfloat16 under bf16, float32 under fp32."""
    dtypes = {}
    for precision in ("fp32", "bf16"):
        config = resolve_config("digits-siamese", [*SMALL, f"train.precision={precision}"])
        trainer = Trainer(config, tmp_path / precision, progress=False)
        seen: list[torch.dtype] = []
        hook = trainer.model.embedding_net.register_forward_hook(
            lambda _m, _i, out, seen=seen: seen.append(out.dtype)
        )
        trainer.step = 1
        trainer._one_step()
        hook.remove()
        dtypes[precision] = seen[0]
        assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    assert dtypes == {"fp32": torch.float32, "bf16": torch.bfloat16}


def test_bf16_resumes_to_the_same_weights(tmp_path: Path) -> None:
    overrides = [*SMALL, "train.precision=bf16", "train.steps=6", "train.checkpoint_every=3"]
    config = resolve_config("digits-siamese", overrides)
    whole = train(config, tmp_path / "whole", progress=False)
    broken = tmp_path / "broken"
    train(config, broken, progress=False)
    checkpoints.step_path(broken, 6).unlink()  # as if killed after step 3's checkpoint
    resumed = train(None, broken, resume=True, progress=False)
    for key, value in _weights(whole).items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_fp16_on_cpu_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"train.precision=fp16 needs a CUDA device.*bf16"):
        resolve_config("digits-siamese", ["train.precision=fp16"])
    with pytest.raises(ConfigError, match="unknown train.precision 'fp8'"):
        resolve_config("digits-siamese", ["train.precision=fp8"])


def test_amp_is_a_deprecated_alias_that_says_what_it_did() -> None:
    with pytest.warns(DeprecationWarning, match="train.amp is deprecated"):
        config = resolve_config("digits-siamese", ["train.amp=true"])
    # On the CPU amp never did anything: the run is recorded as what it is.
    assert (config.train.precision, config.train.amp) == ("fp32", None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_config("digits-siamese", []).train.precision == "fp32"


def _sgd(extra: list[str]) -> Config:
    plain = ["train.optimizer=sgd", "train.momentum=0", "train.weight_decay=0", "train.lr=0.1"]
    return resolve_config("digits-siamese", [*SMALL, *plain, *extra])


def test_accumulate_steps_on_the_mean_gradient_of_consecutive_batches(tmp_path: Path) -> None:
    accumulated = Trainer(_sgd(["train.accumulate=3"]), tmp_path / "a", progress=False)
    reference = Trainer(_sgd([]), tmp_path / "b", progress=False)
    accumulated.model.eval()  # BatchNorm on running statistics: batches independent
    reference.model.eval()
    before = dict(reference.step_loss.named_parameters())
    grads = {name: torch.zeros_like(p) for name, p in before.items()}
    losses = []
    for batch in (1, 2, 3):  # the naive reference: three separate backward passes, averaged
        reference.step_loss.zero_grad()
        loss, _ = reference.step_loss(batch)
        loss.backward()
        losses.append(loss.item())
        for name, p in before.items():
            if p.grad is not None:
                grads[name] += p.grad / 3
    expected = {name: p.detach() - 0.1 * grads[name] for name, p in before.items()}
    accumulated.step = 1
    loss, used = accumulated._one_step()
    assert loss.item() == pytest.approx(sum(losses) / 3, rel=1e-6)
    assert used == 3 * 2 * 16
    for name, p in accumulated.step_loss.named_parameters():
        torch.testing.assert_close(p.detach(), expected[name], rtol=1e-5, atol=1e-7)


@given(st.integers(0, 50), st.integers(1, 60))
def test_warmup_factor_rises_linearly_to_one(warmup: int, step: int) -> None:
    factor = warmup_factor(step, warmup)
    assert 0.0 < factor <= 1.0
    assert factor == (1.0 if step >= warmup else step / warmup)
    assert warmup_factor(step + 1, warmup) >= factor


def test_warmed_up_scales_the_step_and_restores_the_schedule() -> None:
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.SGD([weight], lr=0.4)
    weight.grad = torch.ones(3)
    with warmed_up(optimizer, step=1, warmup=4):
        assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1)
        optimizer.step()
    assert optimizer.param_groups[0]["lr"] == 0.4
    torch.testing.assert_close(weight.detach(), torch.full((3,), 0.9))


def test_warmup_in_a_run_lowers_the_first_steps_only(tmp_path: Path) -> None:
    config = _sgd(["train.warmup=4", "train.steps=6"])
    train(config, tmp_path / "run", progress=False)
    lrs = [float(row["lr"]) for row in read_metrics(tmp_path / "run" / "metrics.csv")]
    # The lr logged at step t is the one step t + 1 will use.
    assert lrs == pytest.approx([0.05, 0.075, 0.1, 0.1, 0.1, 0.1])
