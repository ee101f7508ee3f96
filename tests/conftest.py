"""Shared fixtures: small, deterministic, no network."""

from __future__ import annotations

import pytest

from metriclab.data import LabeledImages, digits
from tests.helpers import tiny_images


@pytest.fixture(scope="session")
def digit_data() -> LabeledImages:
    return digits()


@pytest.fixture
def tiny() -> LabeledImages:
    return tiny_images()
