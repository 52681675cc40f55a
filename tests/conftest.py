"""Shared test settings: tests use tiny models, for which one torch thread is fastest, and it keeps
them from fighting over this 2-core machine's CPUs (small linear-algebra calls slow down ~1000× when
two processes each spin two threads)."""

import os

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _private_user_cache(tmp_path_factory):
    """Commands that keep a persistent cache (stitch's activation cache) write under $XDG_CACHE_HOME:
    a folder of this test session, never the user's own."""
    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if previous is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = previous


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
