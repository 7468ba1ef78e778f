"""Sampling tests run on one CPU thread (stable timings on shared 2-core machines); restored afterwards."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Run each sampling test with torch.set_num_threads(1), then restore the previous setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
