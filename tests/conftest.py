"""Fixtures shared across the test suite.

Hypothesis strategies live in ``strategies.py``; the layer tests import them from there.
"""

from __future__ import annotations

import os

# The GPU path's tests (test_cuda_*.py) run in Numba's CUDA simulator unless
# MINIALEXNET_REAL_GPU=1 asks for the real GPU. Numba reads the switch once, when it is first
# imported, so it is set here, before anything else is imported.
if os.environ.get("MINIALEXNET_REAL_GPU") == "1":
    os.environ.pop("NUMBA_ENABLE_CUDASIM", None)
else:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

import functools

import numpy as np
import pytest
from hypothesis import settings

from minialexnet import Sequential, build_alexnet

# In CI the hypothesis examples are derandomized: a run is reproducible, and a failure there is
# a failure every time. Local runs keep exploring fresh random examples.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def torch():
    """PyTorch, when importable: an optional yardstick, never a dependency of minialexnet.

    Every test that uses it sits beside NumPy-only checks of the same property, so a machine
    without PyTorch still checks everything; it only loses the cross-check.
    """
    return pytest.importorskip(
        "torch", reason="PyTorch is not installed (optional cross-check only)"
    )


@functools.cache
def _alexnet_float32(variant: str) -> Sequential:
    return build_alexnet(variant, dtype=np.float32, seed=0)


@pytest.fixture(scope="session")
def alexnet():
    """``alexnet(variant)``: a float32 AlexNet built once per session (the big variants hold
    ~62M parameters and take a second to initialise). Tests may run forward/backward on it but
    must not change its parameters, dtype or mode; build a fresh one for that."""
    return _alexnet_float32
