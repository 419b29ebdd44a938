"""Fixtures for the concepts tests: one intra-op thread (tiny tensors in long loops)."""

import pytest
import torch

from genlab.concepts.demos import single_intra_op_thread


@pytest.fixture(autouse=True)
def _one_thread():
    with single_intra_op_thread():
        yield


@pytest.fixture
def gen():
    """A fresh, fixed-seed generator per test."""
    return torch.Generator().manual_seed(1234)
