"""``python -m minialexnet bench``: our two CPU engines and PyTorch, each in its own processes.

What is timed: the ``ungrouped`` AlexNet (float32, 227x227 input, 1000 classes, He-normal
weights from seed 0) in each *framework*: ``reference`` (``minialexnet/layers``, plain NumPy),
``fast`` (``minialexnet/fast``, NumPy + Numba; left out, with a note, where it does not exist)
and ``pytorch`` (where importable: a yardstick, never a dependency), at batch sizes 1, 8, 32:
* **forward**: inference: ``model.eval()`` under ``model.no_grad()`` (PyTorch: ``eval()``
  under ``torch.no_grad()``);
* **forward+backward**: one training step without the update, in train mode: forward, softmax
  cross-entropy, backward to every parameter gradient (PyTorch: gradients set to None first,
  as ``optimizer.zero_grad()`` does).

How: **one framework per process, one process at a time.** Each (framework, batch size) is
timed in ``--processes`` fresh child processes (``bench_child.py``), started in rounds
(reference, fast, pytorch, then the next batch size, then the next round), so that a change
of machine load is spread over all three. A child builds the network, runs one warm-up call
and then ``--repeats`` timed calls of each phase, each call after an idle ``QUIET_S``
(``timing.quiet_wait``), and prints one JSON line. Why not all in one process, as this bench
once did: each framework's idle worker threads and freed memory got in the other's way
(PyTorch's batch-32 step measured 1,600-2,270 ms there, 1,150-1,240 ms alone). The default
run (27 timing processes) took 16 minutes on 2 cores shared with other work (load average 4-5),
the reference's batch-32 cells most of it; ``--processes 1`` or ``--batch 1 8`` for a quick look.

Correct first: before anything is timed, a child checks that the fast engine's logits and
gradients equal the reference's on a batch of 2 (``FAST_RTOL`` of each tensor's largest
magnitude), and another that PyTorch's twin agrees with our network
(``torch_twin.check_agreement``: the same weights copied in, ``AGREEMENT_RTOL``). If either
disagrees, nothing is timed (exit status 1): timing something that computes something else
would be meaningless. If a check cannot run (its child fails), that framework is left out
and the exit status is 1; a failing child is reported with the tail of its stderr. Then, for
the fast engine, **Numba's compile time**: the first forward+step at batch 1 minus a warm
one, in a child with an empty ``NUMBA_CACHE_DIR`` (what the first run on a machine pays) and
in one with that cache filled (what every later run pays).

The columns, per (framework, batch, pass), over all timed calls of all its processes:
* ``min ms``, ``median ms``, ``max ms``: wall time of one call;
* ``images/s`` = batch / median; ``GFLOP/s`` = 2 x MACs per image (``accounting.summarize``)
  x batch / median, x3 for forward+backward (the usual convention: the two backward products
  of each layer cost what its forward does);
* ``peak MB``: the largest, over its processes, of the peak resident set size (``VmHWM``)
  while running that pass, minus the RSS after the imports, the model and the input batch:
  each child resets the kernel's peak counter (``/proc/self/clear_refs``) after building,
  runs the forwards (warm-up included), reads the peak, then the steps, and reads it again.
  So it is what the pass needs beyond the weights: activations, kept caches, gradients,
  scratch, and what a library allocates on its first call in a process (Numba loading its
  compiled kernels: tens of MB). Where the counter cannot be reset, a note says so (the peak
  then includes building); elsewhere than Linux, ``ru_maxrss``, which includes everything;
* ``vs torch``: median / PyTorch's median at the same batch and pass (below 1: faster).

Threads: every child runs as many as NumPy's BLAS (``timing.blas_threads``: all CPUs, or
OPENBLAS_NUM_THREADS / OMP_NUM_THREADS when set): OPENBLAS_NUM_THREADS and MKL_NUM_THREADS are
set to it for the children, PyTorch gets ``torch.set_num_threads`` of it, Numba keeps its
default (all CPUs). On a busy machine ``OPENBLAS_NUM_THREADS=1 python -m minialexnet bench``
gives the steadier comparison: one thread each. The machine is printed before the table: CPU
count, BLAS (threadpoolctl), each child's thread settings, load average before and after.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .bench_child import FAST_RTOL, FRAMEWORKS, PYTORCH, ChildError, run_child
from .layers.base import is_int
from .model import ENGINES, VARIANTS
from .timing import QUIET_S, Spread, blas_info, blas_threads
from .torch_twin import AGREEMENT_RTOL

VARIANT = "ungrouped"
ENGINE_CHOICES = (*ENGINES, "both")
PHASES = {
    "forward": ("forward_s", "forward_peak_mb", 1),
    "forward+backward": ("step_s", "step_peak_mb", 3),
}
BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


@dataclass
class Row:
    """One line of the table: a framework's pass at one batch size, over all its calls."""

    framework: str
    batch: int
    phase: str  # "forward" or "forward+backward"
    ms: Spread
    gflop: float  # floating-point operations of one call, in GFLOP
    calls: int = 0
    peak_mb: float | None = None
    ratio: float | None = None  # median / PyTorch's median

    @property
    def images_per_s(self) -> float:
        return self.batch / (self.ms.median / 1e3)

    @property
    def gflops(self) -> float:
        return self.gflop / (self.ms.median / 1e3)


def aggregate(results: Sequence[dict[str, Any]]) -> list[Row]:
    """The table's rows from the ``time`` children's results: each (framework, batch, pass)
    pools the calls of all its processes; peak = the largest of its processes'; ratio =
    median / PyTorch's median. Sorted by batch, pass, then ``FRAMEWORKS`` order."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["framework"], int(r["batch"])), []).append(r)
    rows = []
    for (framework, batch), runs in groups.items():
        gflop_per_image = 2 * runs[0]["macs_per_image"] / 1e9
        for phase, (times_key, peak_key, flop_factor) in PHASES.items():
            times = [t for r in runs for t in r[times_key]]
            peaks = [r[peak_key] for r in runs if r.get(peak_key) is not None]
            rows.append(
                Row(
                    framework,
                    batch,
                    phase,
                    Spread.of(times).scaled(1e3),
                    flop_factor * gflop_per_image * batch,
                    calls=len(times),
                    peak_mb=max(peaks) if peaks else None,
                )
            )
    torch_ms = {(r.batch, r.phase): r.ms.median for r in rows if r.framework == PYTORCH}
    for row in rows:
        if row.framework != PYTORCH and (row.batch, row.phase) in torch_ms:
            row.ratio = row.ms.median / torch_ms[row.batch, row.phase]
    order = {f: i for i, f in enumerate(FRAMEWORKS)}
    phases = list(PHASES)
    rows.sort(key=lambda r: (r.batch, phases.index(r.phase), order.get(r.framework, 99)))
    return rows


def format_table(rows: Sequence[Row]) -> str:
    header = (
        f"{'framework':<11}{'batch':>5}  {'pass':<17}{'min ms':>10}{'median ms':>11}"
        f"{'max ms':>10}{'images/s':>10}{'GFLOP/s':>9}{'peak MB':>9}{'vs torch':>10}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        peak = "" if r.peak_mb is None else f"{r.peak_mb:,.0f}"
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}x"
        lines.append(
            f"{r.framework:<11}{r.batch:>5}  {r.phase:<17}{r.ms.min:>10,.1f}{r.ms.median:>11,.1f}"
            f"{r.ms.max:>10,.1f}{r.images_per_s:>10,.1f}{r.gflops:>9,.1f}{peak:>9}{ratio:>10}"
        )
    return "\n".join(lines)


def machine_lines(
    threads: int, results: Sequence[dict[str, Any]], load: tuple[list[float], list[float]]
) -> list[str]:
    """CPU count, NumPy's BLAS, each framework's thread settings, load averages."""
    import numpy as np

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    blas = ", ".join(
        f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')} kernels)"
        for i in blas_info()
    )
    lines = [
        f"machine: {os.cpu_count()} CPUs ({usable} usable by this process); NumPy "
        f"{np.__version__}, BLAS: {blas or 'not identified (install threadpoolctl)'}",
        f"threads: {threads} per child for NumPy's BLAS and PyTorch; Numba its default",
    ]
    seen: dict[str, str] = {}
    for r in results:
        if r.get("task") == "time" and r["framework"] not in seen:
            names = {"blas": "BLAS", "torch": "PyTorch", "numba": "Numba"}
            seen[r["framework"]] = ", ".join(
                f"{names.get(k, k)} {v}" for k, v in r["threads"].items() if v is not None
            )
    lines += [f"  {framework} child: {settings}" for framework, settings in seen.items()]
    lines += [
        f"note: {v}={os.environ[v]} overrides OpenBLAS's own CPU tuning"
        for v in BLAS_ENV
        if v in os.environ
    ]
    before, after = (" / ".join(f"{x:.2f}" for x in avg) for avg in load)
    lines.append(f"load average (1, 5, 15 min): before {before}, after {after}")
    return lines


def load_average() -> list[float]:
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else [float("nan")] * 3


# Upper bounds, so that a typo cannot start a run of days or one that cannot fit in memory:
# the default run (batch 1/8/32, 5 repeats, 3 processes) already takes ~16 minutes on 2 cores;
# a batch-256 training step of the reference engine needs ~3 GB and a minute per call.
MAX_BATCH = 256
MAX_REPEATS = 100
MAX_PROCESSES = 20


def check_arguments(
    batch_sizes: Sequence[int], repeats: int, processes: int, engine: str, variant: str
) -> None:
    """Raise ValueError naming the option, what it expects and what it got."""
    sizes = list(batch_sizes)
    if not sizes or not all(is_int(b) and 1 <= b <= MAX_BATCH for b in sizes):
        raise ValueError(f"bench: --batch expects integers >= 1 and <= {MAX_BATCH}, got {sizes}")
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"bench: --batch expects each batch size once, got {sizes}")
    for option, value, most in (
        ("--repeats", repeats, MAX_REPEATS),
        ("--processes", processes, MAX_PROCESSES),
    ):
        if not is_int(value) or not 1 <= value <= most:
            raise ValueError(
                f"bench: {option} expects an integer >= 1 and <= {most}, got {value!r}"
            )
    if engine not in ENGINE_CHOICES:
        raise ValueError(f"bench: --engine expects one of {ENGINE_CHOICES}, got {engine!r}")
    if variant not in VARIANTS:
        raise ValueError(f"bench: variant expects one of {VARIANTS}, got {variant!r}")


def report_failure(error: ChildError) -> None:
    sys.stdout.flush()  # what came before, first
    print(f"bench: {error}", file=sys.stderr)


def check_frameworks(
    engines: list[str], compare_torch: bool, base: dict[str, Any], env: dict[str, str]
) -> tuple[list[str], bool] | None:
    """The frameworks to time after their agreement checks (each in a child of its own), and
    whether a check could not run (reported; that framework is left out). None when one
    disagrees: then nothing is timed."""
    frameworks, crashed = list(engines), False
    checks = [("fast", "agree-fast")] if "fast" in engines else []
    checks += [(PYTORCH, "agree-torch")] if compare_torch else []
    for framework, task in checks:
        try:
            result = run_child({**base, "task": task}, env)
        except ChildError as error:
            report_failure(error)
            print(f"{framework}: its agreement check did not run (stderr above): not timed")
            result, crashed = {"available": False}, True
        if not result["available"]:
            if "why" in result:
                print(f"{framework} not available ({result['why']}): not timed")
            if framework in frameworks:
                frameworks.remove(framework)
            continue
        if not result["agree"]:
            why = result.get("why") or (
                f"{result['where']} differs by {result['worst']:.1e} of its largest magnitude "
                f"(tolerance {FAST_RTOL:.0e})"
            )
            print(f"refusing to time: {framework} disagrees with the reference: {why}")
            return None
        if framework == PYTORCH:
            frameworks.append(PYTORCH)
            print(
                f"PyTorch {result['version']}: logits and gradients agree with ours (worst "
                f"relative difference {result['worst']:.1e}, tolerance {AGREEMENT_RTOL:.0e})"
            )
        else:
            print(
                f"fast engine: parameters, logits and gradients equal the reference's (worst "
                f"relative difference {result['worst']:.1e}, tolerance {FAST_RTOL:.0e})"
            )
    if not compare_torch:
        print("PyTorch comparison off (--no-torch)")
    return frameworks, crashed


def measure_compile(base: dict[str, Any], env: dict[str, str]) -> bool:
    """Print the fast engine's first-run cost with an empty and with a filled Numba cache;
    False if a child failed (reported)."""
    with tempfile.TemporaryDirectory(prefix="minialexnet-numba-cache-") as cache:
        for label in ("empty Numba cache (first run on a machine)", "filled Numba cache"):
            try:
                r = run_child({**base, "task": "compile"}, {**env, "NUMBA_CACHE_DIR": cache})
            except ChildError as error:
                report_failure(error)
                return False
            print(
                f"Numba compile, {label}: the first forward+step at batch 1 took "
                f"{r['first_s'] - r['warm_s']:.2f} s more than a warm one "
                f"({r['warm_s']:.3f} s); import "
                f"{r['import_s']:.2f} s; {r['cache_files']} cache files after"
            )
    return True


def run_bench(
    batch_sizes: Sequence[int] = (1, 8, 32),
    repeats: int = 5,
    processes: int = 3,
    engine: str = "both",
    compare_torch: bool = True,
    variant: str = VARIANT,
    compile_time: bool = True,
    quiet_s: float = QUIET_S,
) -> int:
    """Check, then time each framework in its own child processes and print the table.
    Return 0; 1 if a check disagreed (nothing timed) or a child failed (reported on stderr
    with its stderr; the rest still timed). ``variant`` (default ``ungrouped``) and
    ``quiet_s`` exist for the tests, which run the mini net."""
    from tqdm import tqdm

    check_arguments(batch_sizes, repeats, processes, engine, variant)
    threads = blas_threads()
    load_before, start = load_average(), time.perf_counter()
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    base = {"variant": variant, "threads": threads, "quiet_s": quiet_s}
    print(
        f"alexnet-{variant}, float32; each framework in {processes} process(es) of its own, "
        f"one at a time; per process a warm-up, then {repeats} timed calls per pass"
    )
    engines = list(ENGINES) if engine == "both" else [engine]
    checked = check_frameworks(engines, compare_torch, base, env)
    if checked is None:
        return 1
    frameworks, crashed = checked
    status = 1 if crashed else 0
    if compile_time and "fast" in frameworks:
        status = status if measure_compile(base, env) else 1
    elif compile_time and "fast" in engines:
        print("Numba compile time: not measured (no fast engine)")
    tasks = [(b, f) for _ in range(processes) for b in batch_sizes for f in frameworks]
    results: list[dict[str, Any]] = []
    failed: set[str] = set()
    progress = tqdm(tasks, desc="timing", unit="process", leave=False)
    for batch, framework in progress:
        progress.set_postfix_str(f"{framework} batch {batch}")
        if framework in failed:
            continue
        spec = {**base, "task": "time", "framework": framework, "batch": batch, "repeats": repeats}
        try:
            results.append(run_child(spec, env))
        except ChildError as error:
            report_failure(error)
            print(f"{framework}: a child failed (stderr above); its other runs are skipped")
            failed.add(framework)
            status = 1
    progress.close()
    for r in results:
        if not r["peak_reset"]:
            print(f"note: {r['framework']} batch {r['batch']}: the peak includes building")
            break
    print("\n".join(machine_lines(threads, results, (load_before, load_average()))))
    print(
        f"{len(results)} timing processes; the whole bench took {time.perf_counter() - start:.0f} s"
    )
    print(format_table(aggregate(results)))
    return status
