"""Whole networks on the fast engine give the reference engine's logits and gradients."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from strategies import random_array as rand

import minialexnet.fast as fast
from minialexnet import build_alexnet
from minialexnet.layers import softmax_cross_entropy
from minialexnet.model import default_engine

ENGINES = ("reference", "fast")


def logits_and_grads(net, x: np.ndarray, labels: np.ndarray):
    logits = net.forward(x)
    _, dlogits = softmax_cross_entropy(logits, labels)
    net.backward(dlogits)
    return logits.copy(), {name: g.copy() for name, g in net.grads().items()}


def worst(got: dict, ref: dict) -> tuple[float, str]:
    """The largest error relative to each array's largest magnitude, and where."""
    errors = {
        name: float(np.abs(got[name] - r).max() / max(np.abs(r).max(), 1e-30))
        for name, r in ref.items()
    }
    name = max(errors, key=errors.get)
    return errors[name], name


def test_the_default_engine_is_fast_and_builds_engine_layers():
    assert default_engine() == "fast"
    net = build_alexnet("mini")
    assert isinstance(net.layers["conv1"], fast.Conv2d)
    assert isinstance(net.layers["norm1"], fast.LocalResponseNorm)


@pytest.mark.parametrize("variant", ["mini", "mini64"])
def test_mini_nets_agree_in_float64_over_two_steps(variant):
    # Two steps with different batches: the second runs on buffers the first sized and
    # filled (and draws the next dropout masks, the same on both engines).
    nets = {e: build_alexnet(variant, engine=e, dtype=np.float64, seed=1) for e in ENGINES}
    size = nets["reference"].input_shape
    for step, n in enumerate((3, 2)):
        x, labels = rand((n, *size), step), np.arange(n) % 10
        ref = logits_and_grads(nets["reference"], x, labels)
        got = logits_and_grads(nets["fast"], x, labels)
        assert worst({"logits": got[0]}, {"logits": ref[0]})[0] < 1e-12
        error, where = worst(got[1], ref[1])
        assert error < 1e-12, f"step {step}: {where} off by {error:.3g}"


def test_mini_net_inference_under_no_grad_equals_the_reference():
    nets = {e: build_alexnet("mini", engine=e, dtype=np.float64, seed=2).eval() for e in ENGINES}
    x = rand((4, 3, 32, 32), 3)
    with nets["fast"].no_grad():
        got = nets["fast"].forward(x)
    assert all(layer._cache is None for layer in nets["fast"].layers.values())
    ref = nets["reference"].forward(x)
    assert worst({"l": got}, {"l": ref})[0] < 1e-12


def test_ungrouped_alexnet_agrees_at_batch_one_in_float32():
    # The real network, in the dtype it trains in: both engines in float32, so each differs
    # from exact by float32 rounding (~1e-6 relative after 8 layers); a wrong kernel is O(1).
    nets = {e: build_alexnet("ungrouped", engine=e, seed=0) for e in ENGINES}
    x, labels = rand((1, 3, 227, 227), 4, np.float32), np.array([7])
    ref = logits_and_grads(nets["reference"], x, labels)
    got = logits_and_grads(nets["fast"], x, labels)
    assert worst({"logits": got[0]}, {"logits": ref[0]})[0] < 1e-4
    error, where = worst(got[1], ref[1])
    assert error < 1e-4, f"{where} off by {error:.3g}"


# Run in a fresh interpreter: in this one, earlier tests may have compiled the kernels already.
KERNEL_DTYPES = """
import numba
import minialexnet.fast as engine
modules = (engine.conv, engine.winograd, engine.pool, engine.lrn, engine.activations, engine.linear)
for module in modules:
    for name, kernel in vars(module).items():
        if isinstance(kernel, numba.core.registry.CPUDispatcher) and not name.startswith("_"):
            dtypes = {str(a.dtype) for sig in kernel.signatures for a in sig if hasattr(a, "dtype")}
            print(module.__name__ + "." + name, " ".join(sorted(dtypes & {"float32", "float64"})))
"""


def test_importing_the_engine_compiles_every_kernel_in_both_dtypes():
    # load_kernels runs at import so that compiling (or loading the cache) happens there, not
    # inside a network's first step. (Kernels named _... are helpers inlined into others.)
    done = subprocess.run(
        [sys.executable, "-c", KERNEL_DTYPES], capture_output=True, text=True, check=True
    )
    compiled = dict(line.split(" ", 1) for line in done.stdout.strip().splitlines())
    assert "minialexnet.fast.winograd.input_transform" in compiled
    assert "minialexnet.fast.conv.im2col" in compiled
    missing = {name: dtypes for name, dtypes in compiled.items() if dtypes != "float32 float64"}
    assert missing == {}
