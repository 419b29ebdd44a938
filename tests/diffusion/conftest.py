"""Fixtures for the diffusion tests: one intra-op thread (tiny tensors in long loops)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def gen():
    """A fresh, fixed-seed generator per test."""
    return torch.Generator().manual_seed(1234)
