"""Shared by the reliability tests (``test_reliability_*.py``): a tiny GPT and one intra-op thread."""

from __future__ import annotations

import os

import pytest
import torch
from recipe_helpers import ROOT

TINY_GPT = ["+model.depth=1", "+model.dim=32", "+model.heads=2", "data.val_batches=1", "sample.tokens=0"]
# Subprocesses: the repo importable, one thread (as in this process, see one_thread).
SUBPROCESS_ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


@pytest.fixture
def one_thread():
    """One intra-op thread: as fast as two on a tiny model (two are 100x slower on a machine whose other core is
    busy), and the same float reduction order here as in the subprocesses."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
