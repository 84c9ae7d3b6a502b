"""The whole GPU training step against the NumPy one, and the GPU path's edges.

``CudaTrainer.step`` on a tiny network holding every kind of layer (grouped conv, ReLU, LRN,
overlapping max-pool, flatten, linear, dropout) must give the loss, the logits, and after
``sync_to_host`` the parameters and velocities that ``minialexnet.step.train_step`` gives
on a float64 copy of the same network, given the same dropout mask (``reference_step``).
Tolerance: rtol 1e-4, atol 1e-5 (float32 against float64 on sums of a few dozen terms).
"""

from __future__ import annotations

import copy
import os
import pkgutil
import subprocess
import sys

import numpy as np
import pytest
from numba import config

import minialexnet
from minialexnet.cuda.backend import CudaTrainer
from minialexnet.cuda.bench import reference_step
from minialexnet.cuda.gemm import BEST
from minialexnet.layers import (
    Conv2d,
    Dropout,
    Flatten,
    Linear,
    LocalResponseNorm,
    MaxPool2d,
    ReLU,
    Tanh,
)
from minialexnet.model import Sequential, build_alexnet
from minialexnet.optim import SGD

TOL = {"rtol": 1e-4, "atol": 1e-5}
SIMULATOR = bool(config.ENABLE_CUDASIM)


def tiny_alexnet(seed: int = 0) -> Sequential:
    """AlexNet's sequence of layer kinds at toy size: 3x7x7 images, 3 classes."""
    rng = np.random.default_rng(seed)
    layers = [
        ("conv1", Conv2d(3, 4, 3, 2, 1, rng=rng)),
        ("relu1", ReLU()),
        ("norm1", LocalResponseNorm(size=3, alpha=0.5, k=1.0)),
        ("pool1", MaxPool2d(2, 1)),
        ("conv2", Conv2d(4, 6, 3, 1, 1, groups=2, rng=rng)),
        ("relu2", ReLU()),
        ("pool2", MaxPool2d(3, 2)),
        ("flatten", Flatten()),
        ("fc6", Linear(6, 5, rng=rng)),
        ("relu6", ReLU()),
        ("drop6", Dropout(0.5, seed=1)),
        ("fc8", Linear(5, 3, rng=rng)),
    ]
    model = Sequential(layers, (3, 7, 7))
    for p in model.params().values():  # non-zero biases, so every bias path counts
        if p.ndim == 1:
            p[:] = rng.standard_normal(p.shape) * 0.1
    return model


def test_training_step_matches_the_cpu_step():
    model = tiny_alexnet()
    reference = copy.deepcopy(model).astype(np.float64)
    optimizer, ref_optimizer = SGD(model, lr=0.1), SGD(reference, lr=0.1)
    rng = np.random.default_rng(1)
    for name, v in optimizer.velocities.items():  # momentum matters from the first step
        v[...] = rng.standard_normal(v.shape) * 0.01
        ref_optimizer.velocities[name][...] = v
    x = rng.standard_normal((2, 3, 7, 7)).astype(np.float32)
    y = np.array([0, 2])

    # The model's GEMM (v5) is checked layer by layer in test_cuda_layers.py; simulating its
    # 256 threads x 64 accumulators for all 11 products of a step takes 3x as long as v2's.
    trainer = CudaTrainer(model, optimizer, gemm_version=2 if SIMULATOR else BEST)
    trainer.resize(2)
    for buffer in [trainer.grads.flat] + [
        b for layer in trainer.layers for b in (layer.out, layer.dx)
    ]:
        if buffer is not None:
            buffer.copy_to_device(np.full(buffer.shape, np.nan, np.float32))
    loss, logits = trainer.step(x, y)

    # minialexnet.step.train_step, with the NumPy dropout layer drawing the GPU's mask
    ref_loss, ref_logits = reference_step(
        reference, ref_optimizer, x.astype(np.float64), y, trainer.dropout_masks()
    )
    np.testing.assert_allclose(loss, ref_loss, **TOL)
    np.testing.assert_allclose(logits, ref_logits, **TOL)

    before = {name: p.copy() for name, p in model.params().items()}
    trainer.sync_to_host()
    for name, p in model.params().items():
        assert not np.array_equal(p, before[name]), f"{name} was not updated"
        np.testing.assert_allclose(p, reference.params()[name], **TOL, err_msg=name)
        np.testing.assert_allclose(
            optimizer.velocities[name], ref_optimizer.velocities[name], **TOL, err_msg=name
        )


def test_trainer_refuses_what_it_cannot_run():
    model = tiny_alexnet()
    with pytest.raises(TypeError, match="the GPU path computes in float32"):
        CudaTrainer(copy.deepcopy(model).astype(np.float64), SGD(model))
    tanh_net = Sequential([("flatten", Flatten()), ("act", Tanh())], (1, 2, 2))
    with pytest.raises(TypeError, match=r"layer 'act' \(Tanh\) has no GPU kernel"):
        CudaTrainer(tanh_net, SGD(tanh_net))
    trainer = CudaTrainer(model, SGD(model))
    x = np.zeros((2, 3, 7, 7), np.float32)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 3\), got 0\.\.3"):
        trainer.step(x, np.array([0, 3]))
    with pytest.raises(ValueError, match=r"x must have per-image shape \(3, 7, 7\)"):
        trainer.step(np.zeros((2, 3, 8, 8), np.float32), np.array([0, 1]))
    with pytest.raises(TypeError, match="x has dtype float64"):
        trainer.step(x.astype(np.float64), np.array([0, 1]))


def test_a_fast_engine_network_gets_the_same_gpu_twins():
    # the fast engine's layers subclass the reference ones: the GPU path takes either network
    pytest.importorskip("minialexnet.fast")
    twins = {}
    for engine in ("reference", "fast"):
        model = build_alexnet("mini", engine=engine)
        twins[engine] = [type(layer).__name__ for layer in CudaTrainer(model, SGD(model)).layers]
    assert twins["fast"] == twins["reference"]


@pytest.mark.skipif(SIMULATOR, reason="the simulator compiles no kernels: real GPU only")
def test_kernels_ran_only_with_their_registered_signatures():
    """The PTX float64 scan compiles each kernel for its registered signature; this checks,
    after the tests above ran every kernel on a real GPU, that no launch compiled another."""
    from numba.core.sigutils import normalize_signature

    from minialexnet.cuda.ptx import all_kernels

    wrong = {}
    for name, (kernel, signature) in all_kernels().items():
        registered = tuple(normalize_signature(signature)[0])
        others = [sig for sig in kernel.overloads if tuple(sig) != registered]
        if others:
            wrong[name] = others
    assert not wrong, f"kernels compiled for unregistered argument types: {wrong}"


def test_importing_the_package_does_not_import_numba_cuda():
    # The CPU engine (minialexnet.fast) compiles with Numba; only minialexnet.cuda may load
    # Numba's CUDA target (slow to import, and it probes for a driver).
    modules = [
        m.name
        for m in pkgutil.walk_packages(minialexnet.__path__, "minialexnet.")
        if not m.name.startswith("minialexnet.cuda.") and m.name != "minialexnet.__main__"
    ]
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + "print(sorted(m for m in sys.modules if m.startswith('numba.cuda') or "
        + "m.split('.')[0] == 'numba_cuda'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout


def test_bench_without_a_gpu_says_so_in_one_line():
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    env["CUDA_VISIBLE_DEVICES"] = ""  # hides a real GPU too, so this runs the same everywhere
    result = subprocess.run(
        [sys.executable, "-m", "minialexnet", "bench", "--backend", "cuda"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no CUDA GPU" in lines[0], result.stderr
