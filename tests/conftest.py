"""Shared test settings: tests use tiny models, for which one torch thread is fastest, and it keeps
them from fighting over this 2-core machine's CPUs (small linear-algebra calls slow down ~1000× when
two processes each spin two threads)."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
