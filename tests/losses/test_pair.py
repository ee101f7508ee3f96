import math

import pytest
import torch

from metriclab.losses import VerificationLoss


def test_verification_loss_matches_hand_computed_value() -> None:
    # logits 0 and 2 for a same pair and a different pair:
    # −log σ(0) = log 2;  −log(1 − σ(2)) = log(1 + e²).
    logits = torch.tensor([0.0, 2.0])
    same = torch.tensor([True, False])
    expected = (math.log(2.0) + math.log(1.0 + math.e**2)) / 2
    assert VerificationLoss()(logits, same).item() == pytest.approx(expected, rel=1e-6)
    per_pair = VerificationLoss(reduction="none")(logits, same)
    assert per_pair.tolist() == pytest.approx([math.log(2.0), math.log(1.0 + math.e**2)])
    assert VerificationLoss(reduction="sum")(logits, same).item() == pytest.approx(2 * expected)


def test_verification_loss_errors() -> None:
    with pytest.raises(ValueError, match="reduction"):
        VerificationLoss(reduction="avg")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shape"):
        VerificationLoss()(torch.zeros(3), torch.zeros(2))
    with pytest.raises(ValueError, match="logits contains NaN"):
        VerificationLoss()(torch.tensor([float("nan")]), torch.ones(1))


def test_verification_loss_gradient() -> None:
    logits = torch.randn(6, dtype=torch.float64, requires_grad=True)
    same = torch.tensor([1, 0, 1, 0, 1, 1])
    assert torch.autograd.gradcheck(lambda z: VerificationLoss()(z, same), (logits,))
