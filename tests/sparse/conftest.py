"""Fixtures: a small random sparse batch (sites and features)."""

from __future__ import annotations

import pytest
import torch
from sparse_inputs import random_sites


@pytest.fixture
def sites() -> torch.Tensor:
    return random_sites(120)


@pytest.fixture
def feats(sites: torch.Tensor) -> torch.Tensor:
    return torch.randn(sites.shape[0], 4, generator=torch.Generator().manual_seed(1))
