"""``python -m minialexnet bench --backend cuda``: the GPU path, checked, then timed.

Correct first. Nothing is timed that just gave a wrong answer:
1. every GEMM version, in all four transpose patterns, on a shape that is no multiple of any
   tile, against a float64 NumPy product (``GEMM_ATOL_PER_K``); a failing version is listed
   and left out of the timings;
2. one training step of the model at a small batch against the CPU step (``minialexnet.step``)
   in float64, given the GPU's dropout masks (``reference_step``): loss, logits, every
   parameter and velocity after the update (``STEP_RTOL`` of each tensor's largest
   magnitude). If it fails, the step is not timed.

Then timed, each figure the median of ``repeats`` runs after one warm-up (which compiles):
* every correct GEMM version at 4096^3 and at AlexNet's GEMM shapes at batch 128 (each
  layer's forward, and the dW products of conv1, conv2 and fc6, where split-K matters),
  in TFLOP/s, beside cuBLAS (PyTorch's float32 matmul, TF32 off) in the same run. Kernel time
  comes from CUDA events around the launch;
* the ``ungrouped`` AlexNet training step at batch 128, 227 input, float32: ms per step with
  the batch already on the device (``step_loaded``) and with the copy in (``step``), images/s,
  TFLOP/s (3 x forward FLOPs), and PyTorch's step (forward, cross-entropy, backward, SGD with
  momentum; cuDNN, TF32 off, ``cudnn.benchmark`` on) with its input on the device.

The table comes last. With ``$OUT`` set, the results are also written to
``$OUT/bench_cuda.json``. Without a real GPU: one line on stderr and exit status 2.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numba import config, cuda

from ..accounting import summarize
from ..layers import Conv2d, Linear
from ..model import Sequential, build_alexnet
from ..optim import SGD
from ..step import train_step
from ..timing import median_ms
from ..torch_twin import torch_twin
from . import gpu_unavailable_reason
from .backend import CudaTrainer
from .gemm import VERSIONS, gemm, gemm_flops, reference

GEMM_ATOL_PER_K = 1e-6  # |error| <= this * K for N(0, 1) operands in float32
STEP_RTOL = 1e-3  # of each tensor's largest magnitude: float32 vs float64, sums of ~10^4 terms


@dataclass
class BenchConfig:
    """What to measure. The defaults are the issue's; the tests shrink them for the simulator."""

    model: Callable[[], Sequential] = lambda: build_alexnet("ungrouped")
    batch: int = 128
    square: int = 4096
    check_shape: tuple[int, int, int, int] = (2, 301, 257, 190)  # groups, M, N, K
    check_batch: int = 2
    repeats: int = 5
    compare_torch: bool = True
    allow_simulator: bool = False  # run (untimed, meaningless figures) in the simulator
    results: dict[str, Any] = field(default_factory=dict)


class FixedDraws:
    """Stands in for a NumPy Dropout layer's generator so that it draws a given mask."""

    def __init__(self, mask: np.ndarray) -> None:
        self.mask = mask

    def random(self, shape: tuple[int, ...]) -> np.ndarray:
        if tuple(shape) != self.mask.shape:
            raise ValueError(f"FixedDraws: asked for {shape}, holds a mask of {self.mask.shape}")
        return np.where(self.mask, 0.0, 1.0)  # 0 < keep: kept; 1 >= keep: dropped


def reference_step(
    model: Sequential, optimizer: SGD, x: np.ndarray, y: np.ndarray, masks: dict[str, np.ndarray]
) -> tuple[float, np.ndarray]:
    """``step.train_step`` with each named Dropout layer drawing the given mask (the GPU's)."""
    saved = {name: model.layers[name].rng for name in masks}
    try:
        for name, mask in masks.items():
            model.layers[name].rng = FixedDraws(mask.astype(bool))
        return train_step(model, optimizer, x, y)
    finally:
        for name, rng in saved.items():
            model.layers[name].rng = rng


def event_ms(fn: Callable[[], Any], repeats: int, new_event: Callable[[], Any]) -> float:
    """Median GPU time of ``fn`` in ms after one warm-up, between two events around it."""
    fn()
    times = []
    for _ in range(repeats):
        begin, end = new_event(), new_event()
        begin.record()
        fn()
        end.record()
        end.synchronize()
        times.append(begin.elapsed_time(end))
    return float(np.median(times))


def device_ms(fn: Callable[[], Any], repeats: int) -> float:
    """Median time of ``fn``'s GPU work in ms: CUDA events, or wall time in the simulator
    (whose events measure nothing)."""
    if config.ENABLE_CUDASIM:
        return median_ms(fn, repeats)
    return event_ms(fn, repeats, cuda.event)


def gemm_shapes(model: Sequential, batch: int, square: int) -> list[tuple[str, tuple, bool]]:
    """(label, (groups, M, N, K), trans_b) of the square GEMM and of the model's GEMMs."""
    shapes = [(f"{square}^3", (1, square, square, square), False)]
    backward = []
    for name, layer in model.layers.items():
        per_image = model.shapes[name]
        if isinstance(layer, Conv2d):
            F, OH, OW = per_image
            G, (KH, KW) = layer.groups, layer.kernel_size
            fwd = (G, F // G, batch * OH * OW, layer.in_channels // G * KH * KW)
            shapes.append((f"{name} fwd", fwd, False))
            backward.append((f"{name} dW", (G, fwd[1], fwd[3], fwd[2]), True))
        elif isinstance(layer, Linear):
            fwd = (1, layer.out_features, batch, layer.in_features)
            shapes.append((f"{name} fwd", fwd, False))
            backward.append((f"{name} dW", (1, fwd[1], fwd[3], fwd[2]), True))
    keep = {"conv1 dW", "conv2 dW", "fc6 dW"}
    return shapes + [row for row in backward if row[0] in keep]


def check_gemms(shape: tuple[int, int, int, int]) -> dict[int, float]:
    """Each version's worst error over the four transpose patterns (inf if it raised)."""
    G, M, N, K = shape
    rng = np.random.default_rng(0)
    errors = {}
    for version in VERSIONS:
        worst = 0.0
        for trans_a in (False, True):
            for trans_b in (False, True):
                a = rng.standard_normal((G, K, M) if trans_a else (G, M, K), dtype=np.float32)
                b = rng.standard_normal((G, N, K) if trans_b else (G, K, N), dtype=np.float32)
                c = cuda.to_device(np.full((G, M, N), np.nan, np.float32))
                gemm(
                    cuda.to_device(a),
                    cuda.to_device(b),
                    c,
                    trans_a=trans_a,
                    trans_b=trans_b,
                    version=version,
                )
                got = c.copy_to_host()
                err = np.abs(got - reference(a, b, trans_a, trans_b)).max()
                worst = max(worst, float(err) if np.isfinite(got).all() else float("inf"))
        errors[version] = worst
    return errors


def random_inputs(model: Sequential, batch: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal float32 images for ``model`` and labels over its classes."""
    rng = np.random.default_rng(seed)
    classes = model.shapes[next(reversed(model.shapes))][0]
    x = rng.standard_normal((batch, *model.input_shape), dtype=np.float32)
    return x, rng.integers(0, classes, size=batch)


def check_step(cfg: BenchConfig) -> float:
    """The worst relative difference between one GPU step and the float64 CPU step, over the
    loss, the logits and every parameter and velocity after the update."""
    model = cfg.model()
    ref_model = copy.deepcopy(model).astype(np.float64)
    optimizer, ref_optimizer = SGD(model), SGD(ref_model)
    x, y = random_inputs(model, cfg.check_batch)
    trainer = CudaTrainer(model, optimizer)
    loss, logits = trainer.step(x, y)
    ref_loss, ref_logits = reference_step(
        ref_model, ref_optimizer, x.astype(np.float64), y, trainer.dropout_masks()
    )
    trainer.sync_to_host()
    pairs = [(np.float64(loss), np.float64(ref_loss)), (logits, ref_logits)]
    pairs += [(p, ref_model.params()[n]) for n, p in model.params().items()]
    pairs += [(v, ref_optimizer.velocities[n]) for n, v in optimizer.velocities.items()]
    return max(float(np.abs(a - b).max()) / max(float(np.abs(b).max()), 1e-30) for a, b in pairs)


# ----------------------------------------------------------------------------------------
# PyTorch on the GPU, the yardstick (optional)
# ----------------------------------------------------------------------------------------
def load_torch_cuda() -> tuple[Any, str]:
    """(torch, a line) when PyTorch with CUDA is importable, with TF32 off; else (None, why)."""
    try:
        import torch
    except Exception as error:
        return None, f"PyTorch not importable ({type(error).__name__}): no cuBLAS/cuDNN comparison"
    if config.ENABLE_CUDASIM or not torch.cuda.is_available():
        return None, "PyTorch sees no CUDA GPU: no cuBLAS/cuDNN comparison"
    torch.backends.cuda.matmul.allow_tf32 = False  # float32 against float32
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    return torch, f"PyTorch {torch.__version__}, float32, TF32 off"


def cublas_ms(torch: Any, shape: tuple, trans_b: bool, repeats: int) -> float:
    G, M, N, K = shape
    a = torch.randn(G, M, K, device="cuda")
    b = torch.randn(G, N, K, device="cuda") if trans_b else torch.randn(G, K, N, device="cuda")
    op_b = b.transpose(1, 2) if trans_b else b
    return torch_ms(torch, lambda: torch.matmul(a, op_b), repeats)


def torch_ms(torch: Any, fn: Callable[[], Any], repeats: int) -> float:
    return event_ms(fn, repeats, lambda: torch.cuda.Event(enable_timing=True))


def torch_step_ms(torch: Any, model: Sequential, batch: int, repeats: int) -> float:
    """PyTorch's training step (forward, loss, backward, SGD) with its input on the GPU."""
    net = torch_twin(model).cuda()
    sgd = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x, y = random_inputs(model, batch)
    xt, yt = torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda()

    def step() -> None:
        sgd.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(xt), yt).backward()
        sgd.step()

    return torch_ms(torch, step, repeats)


# ----------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------
def run(cfg: BenchConfig | None = None) -> int:
    """Check, time, print the table; return 0, 1 if a check failed, 2 without a GPU."""
    from tqdm import tqdm

    cfg = cfg or BenchConfig()
    res = cfg.results
    why = gpu_unavailable_reason()
    if why is not None and not (cfg.allow_simulator and config.ENABLE_CUDASIM):
        print(f"bench --backend cuda: {why}", file=sys.stderr)
        return 2
    name = getattr(cuda.get_current_device(), "name", "the CUDA simulator")
    name = name.decode() if isinstance(name, bytes) else name
    print(f"device: {name}; numpy {np.__version__}")
    res["device"] = name
    torch, line = load_torch_cuda() if cfg.compare_torch else (None, "PyTorch comparison off")
    print(line)

    errors = check_gemms(cfg.check_shape)
    K = cfg.check_shape[3]
    good = [v for v, err in errors.items() if err <= GEMM_ATOL_PER_K * K]
    for v, err in errors.items():
        verdict = "ok" if v in good else "WRONG: not timed"
        print(
            f"gemm v{v} ({VERSIONS[v].name}): max error {err:.1e} on {cfg.check_shape}: {verdict}"
        )
    res["gemm_check"] = {f"v{v}": err for v, err in errors.items()}
    step_error = check_step(cfg)
    step_ok = step_error <= STEP_RTOL
    print(
        f"training step vs float64 CPU step: worst relative difference {step_error:.1e} "
        f"({'ok' if step_ok else 'WRONG: the step is not timed'})"
    )
    res["step_check"] = step_error

    model = cfg.model()
    rows = []
    for label, shape, trans_b in tqdm(gemm_shapes(model, cfg.batch, cfg.square), desc="gemm"):
        flops = gemm_flops(*shape)
        row: dict[str, Any] = {"shape": label, "GMNK": shape}
        row["tflops"] = time_gemm_versions(shape, trans_b, good, cfg.repeats)
        if torch is not None:
            row["tflops"]["cuBLAS"] = flops / cublas_ms(torch, shape, trans_b, cfg.repeats) / 1e9
        rows.append(row)
    res["gemm"] = rows

    if step_ok:
        res["step"] = time_steps(cfg, model, torch)
    print_table(res, good)
    out = os.environ.get("OUT")
    if out:
        path = Path(out) / "bench_cuda.json"
        path.write_text(json.dumps(res, indent=1, default=str))
        print(f"results written to {path}")
    return 0 if step_ok and len(good) == len(VERSIONS) else 1


def time_gemm_versions(
    shape: tuple[int, int, int, int], trans_b: bool, versions: list[int], repeats: int
) -> dict[str, float]:
    """TFLOP/s of each version on one (groups, M, N, K) shape, on random operands."""
    G, M, N, K = shape
    # Random operands, not zeros: a GPU multiplying zeros draws less power and may clock higher.
    rng = np.random.default_rng(0)
    a = cuda.to_device(rng.standard_normal((G, M, K), dtype=np.float32))
    b_shape = (G, N, K) if trans_b else (G, K, N)
    b = cuda.to_device(rng.standard_normal(b_shape, dtype=np.float32))
    c = cuda.device_array((G, M, N), np.float32)
    tflops = {}
    for v in versions:
        ms = device_ms(lambda v=v: gemm(a, b, c, trans_b=trans_b, version=v), repeats)
        tflops[f"v{v}"] = gemm_flops(*shape) / ms / 1e9
    return tflops


def time_steps(cfg: BenchConfig, model: Sequential, torch: Any) -> dict[str, float]:
    """ms per training step: ours on the device, ours with the copy in, PyTorch's."""
    flop = 3 * 2 * summarize(model).total_macs * cfg.batch
    x, y = random_inputs(model, cfg.batch)
    trainer = CudaTrainer(model, SGD(model))
    trainer.load(x, y)
    result = {
        "batch": cfg.batch,
        # wall time: each step ends copying the loss back, which waits for the GPU
        "ms_device": median_ms(trainer.step_loaded, cfg.repeats),
        "ms_with_copy": median_ms(lambda: trainer.step(x, y), cfg.repeats),
        "tflop_per_step": flop / 1e12,
    }
    if torch is not None:
        result["ms_pytorch"] = torch_step_ms(torch, model, cfg.batch, cfg.repeats)
    return result


def print_table(res: dict[str, Any], good: list[int]) -> None:
    columns = [f"v{v}" for v in good] + (
        ["cuBLAS"] if any("cuBLAS" in r["tflops"] for r in res["gemm"]) else []
    )
    print(f"\nGEMM TFLOP/s (float32){' and best / cuBLAS' if 'cuBLAS' in columns else ''}")
    print(
        f"{'shape':<12}"
        + "".join(f"{c:>9}" for c in columns)
        + ("  best/cuBLAS" if "cuBLAS" in columns else "")
    )
    for row in res["gemm"]:
        t = row["tflops"]
        line = f"{row['shape']:<12}" + "".join(f"{t.get(c, float('nan')):>9.2f}" for c in columns)
        if "cuBLAS" in t and good:
            line += f"  {max(t[f'v{v}'] for v in good) / t['cuBLAS']:>10.0%}"
        print(line)
    step = res.get("step")
    if step:
        n, tf = step["batch"], step["tflop_per_step"]
        print(f"\ntraining step, batch {n}, float32")
        for key, label in (
            ("ms_device", "minialexnet.cuda (batch on device)"),
            ("ms_with_copy", "minialexnet.cuda (with copy in)"),
            ("ms_pytorch", "PyTorch (cuDNN, TF32 off)"),
        ):
            if key in step:
                ms = step[key]
                rate = f"{n / ms * 1e3:>9.0f} img/s {tf / ms * 1e3:>7.2f} TFLOP/s"
                print(f"{label:<36}{ms:>9.1f} ms {rate}")
        if "ms_pytorch" in step:
            print(f"ours / PyTorch: {step['ms_device'] / step['ms_pytorch']:.2f}x (target <= 2x)")
