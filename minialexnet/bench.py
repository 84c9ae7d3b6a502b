"""``python -m minialexnet bench``: time the ``ungrouped`` AlexNet on the CPU, beside PyTorch.

What is timed (float32, 227x227 input, 1000 classes, weights He-normal from seed 0):
* **forward**: inference, ``model.eval()`` (PyTorch additionally under ``torch.no_grad()``);
* **forward+backward**: one training step without the update, ``model.train()``: forward,
  softmax cross-entropy, backward to every parameter gradient (PyTorch: gradients set to
  None first, as ``optimizer.zero_grad()`` does).
Each figure is the **median of ``repeats`` timed calls after one warm-up call** (the warm-up
pays for first touches of fresh memory and for lazy initialisation); ours and PyTorch's calls
alternate, so that both see the same machine load. images/s = batch / time;
GFLOP/s = 2 x MACs per image (``accounting.summarize``) x batch / time, x3 for
forward+backward (the usual convention: the two backward matmuls cost what the forward does).

PyTorch, when importable, is the yardstick, never a dependency. ``torch_twin`` builds the same
network layer by layer from ours (LRN: our effective alpha ``a`` becomes PyTorch's
``alpha = a * size``, since PyTorch divides by size; the paper's dropout, which scales by 1-p
at test time, becomes inverted dropout times 1-p) and **copies our weights** into it.
Before anything is timed, both must give the same logits and the same parameter gradients
for one batch in eval mode (``check_agreement``; tolerance ``AGREEMENT_RTOL`` of each
tensor's largest magnitude): timing an implementation that computes something else would be
meaningless. PyTorch runs with as many threads as NumPy's BLAS, in the same process; the
ratio printed is ours / PyTorch's time (below 1: we are faster).

Peak memory (MB): for each framework and batch size, a fresh child process imports its
framework, notes its resident set size (RSS), builds the network, returns freed heap memory to
the system (glibc ``malloc_trim``) and resets the kernel's peak-RSS counter
(``/proc/self/clear_refs``; where that is unavailable the peak includes building the model),
then runs two inference forwards (the "forward" peak) and two training steps (the
"forward+backward" peak, the larger). Reported: peak RSS (``VmHWM``) minus the RSS right after
the imports, so both frameworks are charged for their weights, gradients, activations and
scratch, not for their libraries. (The PyTorch child builds its twin from a NumPy model that it
frees before the reset.) Linux only; elsewhere ``ru_maxrss``, which includes the setup.

Threads: PyTorch is given as many threads as NumPy's BLAS uses (``blas_threads``: all CPUs,
or OPENBLAS_NUM_THREADS / OMP_NUM_THREADS when set). On a
machine other processes keep busy, multi-threaded matmuls lose most to the waiting between
threads (OpenBLAS far more than PyTorch's oneDNN), so there ``OPENBLAS_NUM_THREADS=1 python -m
minialexnet bench`` gives the steadier comparison: one thread each.

Other backends reuse the machinery: a *runner* is anything with ``name``, ``forward(batch)``
and ``step(batch)`` that returns when the work is done; ``time_runners`` times several side
by side and ``format_table`` prints the rows.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .accounting import summarize
from .layers.loss import softmax_cross_entropy
from .model import Sequential, build_alexnet
from .torch_twin import check_agreement, torch_twin

VARIANT = "ungrouped"
QUIET_S = 0.2  # idle time before each timed call, so no worker thread is still spinning
BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


class Runner(Protocol):
    """What ``time_runners`` times: ``forward(batch)`` and ``step(batch)`` run one inference pass
    and one training step (no update) on a fixed input of that batch size, and return only when
    the work is done (a GPU runner synchronises before returning)."""

    name: str

    def forward(self, batch: int) -> None: ...

    def step(self, batch: int) -> None: ...


@dataclass
class Row:
    """One measured line of the table."""

    framework: str
    batch: int
    phase: str  # "forward" or "forward+backward"
    ms: float
    gflop: float  # floating-point operations of one call, in GFLOP
    peak_mb: float | None = None
    ratio: float | None = None  # ours / PyTorch

    @property
    def images_per_s(self) -> float:
        return self.batch / (self.ms / 1e3)

    @property
    def gflops(self) -> float:
        return self.gflop / (self.ms / 1e3)


def median_ms(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` after one warm-up call, in ms."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def random_batch(batch: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal float32 images (batch, 3, 227, 227) and labels in [0, 1000)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, 3, 227, 227), dtype=np.float32)
    return x, rng.integers(0, 1000, size=batch)


class NumpyRunner:
    """Our model: ``forward`` in eval mode, ``step`` = forward + loss + backward in train mode."""

    name = "minialexnet"

    def __init__(self, model: Sequential) -> None:
        self.model = model
        self.batches: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _batch(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        if batch not in self.batches:  # made once, outside the timed calls
            self.batches[batch] = random_batch(batch)
        return self.batches[batch]

    def forward(self, batch: int) -> None:
        self.model.eval().forward(self._batch(batch)[0])

    def step(self, batch: int) -> None:
        x, y = self._batch(batch)
        _, dlogits = softmax_cross_entropy(self.model.train().forward(x), y)
        self.model.backward(dlogits)


class TorchRunner:
    """The PyTorch twin, run the way PyTorch users run it."""

    name = "pytorch"

    def __init__(self, net: Any) -> None:
        import torch

        self.torch, self.net = torch, net
        self.batches: dict[int, tuple[Any, Any]] = {}

    def _batch(self, batch: int) -> tuple[Any, Any]:
        if batch not in self.batches:
            x, y = random_batch(batch)
            self.batches[batch] = (self.torch.from_numpy(x), self.torch.from_numpy(y))
        return self.batches[batch]

    def forward(self, batch: int) -> None:
        with self.torch.no_grad():
            self.net.eval()(self._batch(batch)[0])

    def step(self, batch: int) -> None:
        x, y = self._batch(batch)
        self.net.train()
        for p in self.net.parameters():
            p.grad = None
        loss = self.torch.nn.functional.cross_entropy(self.net(x), y)
        loss.backward()


# ----------------------------------------------------------------------------------------
# Peak memory, in a fresh child process per framework and batch size
# ----------------------------------------------------------------------------------------
def proc_status_mb(field: str) -> float | None:
    """A memory line of /proc/self/status (Linux) in MB, or None where there is none."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024  # the kernel reports kB
    except OSError:
        pass
    return None


def rss_mb() -> float:
    """Current resident set size in MB (elsewhere than Linux: the peak so far)."""
    return proc_status_mb("VmRSS") or peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident set size in MB. VmHWM first: ``ru_maxrss`` also counts the parent's
    memory when the child was started by vfork + exec, as ``subprocess`` does."""
    hwm = proc_status_mb("VmHWM")
    if hwm is not None:
        return hwm
    import resource

    scale = 2**20 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, else KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter to the current RSS (Linux >= 4.0); False if not."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def release_freed_heap() -> None:
    """Ask glibc to return freed heap memory to the system (``malloc_trim``), so that memory
    freed after building the model (temporaries, the PyTorch child's NumPy template) is not
    counted as in use. A no-op where there is no glibc."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def memory_child(framework: str, batch: int) -> None:
    """Run in a fresh process: print JSON {"forward": MB, "step": MB, "reset": bool}."""
    if framework == TorchRunner.name:
        import torch

        torch.set_num_threads(blas_threads())
        base = rss_mb()
        model = build_alexnet(VARIANT)
        runner: Runner = TorchRunner(torch_twin(model))
        del model  # the NumPy weights were only a template
    else:
        base = rss_mb()
        runner = NumpyRunner(build_alexnet(VARIANT))
    release_freed_heap()
    reset = reset_peak_rss()
    for _ in range(2):
        runner.forward(batch)
    forward_peak = peak_rss_mb() - base
    for _ in range(2):
        runner.step(batch)
    step_peak = peak_rss_mb() - base
    print(json.dumps({"forward": forward_peak, "step": step_peak, "reset": reset}))


def measure_peak_memory(framework: str, batch: int) -> dict[str, Any]:
    """Run ``memory_child`` in a fresh interpreter (same environment) and return its result."""
    code = f"from minialexnet.bench import memory_child; memory_child({framework!r}, {batch})"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=900
    )
    if done.returncode != 0:
        raise RuntimeError(f"memory child {framework} batch {batch} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------
# Timing and the table
# ----------------------------------------------------------------------------------------
def blas_threads() -> int:
    """The threads OpenBLAS uses: OPENBLAS_NUM_THREADS or OMP_NUM_THREADS when set, else the
    CPUs this process may run on."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def time_runners(
    runners: list[Runner], batch: int, repeats: int, gflop_per_image: float
) -> list[Row]:
    """Forward and forward+backward rows for each runner at one batch size.

    After one warm-up call each, the runners take turns, ``repeats`` rounds: on a machine
    whose load changes (other processes come and go), interleaving exposes every runner to the
    same conditions, where timing one and then the other would compare two different moments.
    Before each timed call the process idles ``QUIET_S``: a BLAS or OpenMP worker thread
    busy-waits for a while after its last task (OpenBLAS's up to ~0.1 s), and one left spinning
    by the previous runner would take a core from the next.
    """
    rows = []
    for phase, gflop in (("forward", gflop_per_image), ("forward+backward", 3 * gflop_per_image)):
        calls = [runner.forward if phase == "forward" else runner.step for runner in runners]
        for call in calls:
            call(batch)
        times: list[list[float]] = [[] for _ in runners]
        for _ in range(repeats):
            for call, runner_times in zip(calls, times, strict=True):
                time.sleep(QUIET_S)
                start = time.perf_counter()
                call(batch)
                runner_times.append(time.perf_counter() - start)
        for runner, runner_times in zip(runners, times, strict=True):
            ms = float(np.median(runner_times)) * 1e3
            rows.append(Row(runner.name, batch, phase, ms, gflop * batch))
    return rows


def format_table(rows: list[Row]) -> str:
    header = (
        f"{'framework':<12}{'batch':>6}  {'pass':<17}{'ms':>10}{'images/s':>10}"
        f"{'GFLOP/s':>9}{'peak MB':>9}{'ours/torch':>11}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        peak = "" if r.peak_mb is None else f"{r.peak_mb:,.0f}"
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}x"
        lines.append(
            f"{r.framework:<12}{r.batch:>6}  {r.phase:<17}{r.ms:>10,.1f}{r.images_per_s:>10,.1f}"
            f"{r.gflops:>9,.0f}{peak:>9}{ratio:>11}"
        )
    return "\n".join(lines)


def blas_description() -> str:
    """Which BLAS NumPy runs and with which kernels (via threadpoolctl, if it is installed)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return f"NumPy {np.__version__} (install threadpoolctl to see which BLAS kernels run)"
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    kernels = ", ".join(
        f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')} kernels, "
        f"{i.get('num_threads')} threads)"
        for i in blas
    )
    return f"NumPy {np.__version__}: {kernels or 'BLAS not identified'}"


def load_torch() -> tuple[Any, str]:
    """(torch module or None, a line saying why not)."""
    try:
        import torch
    except Exception as error:  # ImportError, or a broken install raising anything else
        return None, f"PyTorch not importable ({type(error).__name__}: {error}): ours only"
    return torch, f"PyTorch {torch.__version__}"


def run_bench(batch_sizes: list[int], repeats: int = 5, compare_torch: bool = True) -> int:
    """Time our NumPy AlexNet (and PyTorch's, if importable); print the table. Return 0, or 1
    if the two disagree (nothing is timed then)."""
    from tqdm import tqdm

    if repeats < 1 or not batch_sizes or min(batch_sizes) < 1:
        raise ValueError(
            f"run_bench: repeats and batch sizes must be >= 1, got {repeats}, {batch_sizes}"
        )
    model = build_alexnet(VARIANT)
    gflop = 2 * summarize(model).total_macs / 1e9
    threads = blas_threads()
    print(
        f"{model.name}, float32; {threads} thread(s) for NumPy's BLAS and for PyTorch; "
        f"median of {repeats} runs after a warm-up"
    )
    print(blas_description())
    for var in BLAS_ENV:
        if var in os.environ:
            print(f"note: {var}={os.environ[var]} is set; it overrides OpenBLAS's own CPU tuning")
    runners: list[Runner] = [NumpyRunner(model)]
    torch, why = load_torch() if compare_torch else (None, "PyTorch comparison off (--no-torch)")
    print(why)
    if torch is not None:
        torch.set_num_threads(threads)
        net = torch_twin(model)
        try:
            worst = check_agreement(model, net)
        except ValueError as error:
            print(f"refusing to time: {error}")
            return 1
        print(f"logits and gradients agree with PyTorch's (worst relative difference {worst:.1e})")
        runners.append(TorchRunner(net))
    rows: list[Row] = []
    for batch in tqdm(batch_sizes, desc="timing", unit="batch size", leave=False):
        rows += time_runners(runners, batch, repeats, gflop)
    rows.sort(key=lambda r: (r.batch, r.framework != NumpyRunner.name))
    tasks = [(b, r) for b in batch_sizes for r in runners]
    for batch, runner in tqdm(tasks, desc="peak memory", unit="process", leave=False):
        try:
            peaks = measure_peak_memory(runner.name, batch)
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
            print(f"note: peak memory not measured ({error})")
            continue
        if not peaks["reset"]:
            print(f"note: {runner.name} batch {batch}: peak includes building the model")
        for row in rows:
            if (row.framework, row.batch) == (runner.name, batch):
                row.peak_mb = peaks["forward" if row.phase == "forward" else "step"]
    torch_ms = {(r.batch, r.phase): r.ms for r in rows if r.framework == TorchRunner.name}
    for row in rows:
        if row.framework == NumpyRunner.name and (row.batch, row.phase) in torch_ms:
            row.ratio = row.ms / torch_ms[row.batch, row.phase]
    print(format_table(rows))
    return 0
