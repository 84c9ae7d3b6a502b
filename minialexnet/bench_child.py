"""The bench's child processes: each runs one task and prints one JSON line (``result_line``).

``python -m minialexnet bench`` (``bench.py``) never times anything in its own process: it
starts ``child_command(spec)`` for each task, one at a time, and reads the child's last stdout
line back with ``parse_result``. A task (``spec["task"]``) is one of ``TASKS``:

* ``time``: build one framework's network (``reference``, ``fast`` or ``pytorch``), reset the
  peak-RSS counter, time ``repeats`` inference forwards after a warm-up, read the peak, then
  the same for training steps; report every call's seconds and both peaks;
* ``agree-torch`` / ``agree-fast``: PyTorch's twin (``torch_twin.check_agreement``) or the
  fast engine against the reference on one small batch; "available": False where the
  framework cannot be imported;
* ``compile``: the fast engine's first forward+step at batch 1 against a warm one, in whatever
  ``NUMBA_CACHE_DIR`` the parent gave it (empty: Numba compiles; filled: it loads the cache).
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .accounting import summarize
from .layers.loss import softmax_cross_entropy
from .model import ENGINES, Sequential, build_alexnet, engine_layers
from .timing import (
    QUIET_S,
    blas_info,
    peak_rss_mb,
    release_freed_heap,
    reset_peak_rss,
    rss_mb,
    timed_calls,
)
from .torch_twin import check_agreement, relative_difference, torch_twin

PYTORCH = "pytorch"
FRAMEWORKS = (*ENGINES, PYTORCH)  # the order of the table: reference, fast, pytorch
# The fast engine against the reference, float32: each tensor's largest difference relative
# to its largest magnitude (other summation orders give ~1e-6 through AlexNet; a bug, O(1)).
FAST_RTOL = 1e-4
CHILD_TIMEOUT_S = 3600.0
STDERR_LINES = 25  # of a failed child's stderr, shown to the user


def random_batch(
    batch: int, shape: tuple[int, ...] = (3, 227, 227), classes: int = 1000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal float32 images (batch, *shape) and labels in [0, classes)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, *shape), dtype=np.float32), rng.integers(0, classes, batch)


def num_classes(model: Sequential) -> int:
    return model.shapes[list(model.layers)[-1]][0]


class OursRunner:
    """One of our engines: ``forward`` = inference (eval, ``no_grad``), ``step`` = forward +
    softmax cross-entropy + backward in train mode (no update)."""

    def __init__(self, model: Sequential, batch: int) -> None:
        self.model = model
        self.x, self.y = random_batch(batch, model.input_shape, num_classes(model))

    def forward(self) -> None:
        with self.model.eval().no_grad():
            self.model.forward(self.x)

    def step(self) -> None:
        _, dlogits = softmax_cross_entropy(self.model.train().forward(self.x), self.y)
        self.model.backward(dlogits)


class TorchRunner:
    """The PyTorch twin, run the way PyTorch users run it."""

    def __init__(self, net: Any, batch: int, shape: tuple[int, ...], classes: int) -> None:
        import torch

        self.torch, self.net = torch, net
        x, y = random_batch(batch, shape, classes)
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)

    def forward(self) -> None:
        with self.torch.no_grad():
            self.net.eval()(self.x)

    def step(self) -> None:
        self.net.train()
        for p in self.net.parameters():
            p.grad = None  # as optimizer.zero_grad() does
        self.torch.nn.functional.cross_entropy(self.net(self.x), self.y).backward()


def thread_settings() -> dict[str, Any]:
    """The threads this child's libraries run: NumPy's BLAS (threadpoolctl), PyTorch's
    intra-op pool and Numba's, each only where loaded."""
    libraries = {i.get("filepath"): i for i in blas_info()}.values()  # each library once
    blas = ", ".join(
        f"{i.get('num_threads')} ({os.path.basename(os.path.dirname(i.get('filepath', '')))})"
        for i in libraries
    )
    threads: dict[str, Any] = {"blas": blas or None}
    if "torch" in sys.modules:
        threads["torch"] = sys.modules["torch"].get_num_threads()
    if "numba" in sys.modules:
        threads["numba"] = sys.modules["numba"].config.NUMBA_NUM_THREADS
    return threads


# ----------------------------------------------------------------------------------------
# The tasks
# ----------------------------------------------------------------------------------------
def time_task(spec: dict[str, Any]) -> dict[str, Any]:
    """Build one framework's network and its input; reset the peak-RSS counter; time the
    forwards, read the peak; time the steps, read the peak (see ``bench``'s docstring)."""
    framework, batch, repeats = spec["framework"], int(spec["batch"]), int(spec["repeats"])
    quiet_s = float(spec.get("quiet_s", QUIET_S))
    runner: OursRunner | TorchRunner
    if framework == PYTORCH:
        import torch

        torch.set_num_threads(int(spec["threads"]))
        template = build_alexnet(spec["variant"], engine="reference")
        macs = summarize(template).total_macs
        runner = TorchRunner(
            torch_twin(template), batch, template.input_shape, num_classes(template)
        )
        del template  # the NumPy weights were only a template
        gc.collect()
    elif framework in ENGINES:
        model = build_alexnet(spec["variant"], engine=framework)
        macs = summarize(model).total_macs
        runner = OursRunner(model, batch)
    else:
        raise ValueError(f"time task: framework must be one of {FRAMEWORKS}, got {framework!r}")
    release_freed_heap()
    base = rss_mb()
    reset = reset_peak_rss()
    forward = timed_calls(runner.forward, repeats, quiet_s=quiet_s)
    forward_peak = peak_rss_mb() - base
    step = timed_calls(runner.step, repeats, quiet_s=quiet_s)
    step_peak = peak_rss_mb() - base
    return {
        "task": "time",
        "framework": framework,
        "batch": batch,
        "macs_per_image": macs,
        "forward_s": forward,
        "step_s": step,
        "forward_peak_mb": forward_peak,
        "step_peak_mb": step_peak,
        "peak_reset": reset,
        "threads": thread_settings(),
    }


def agree_torch_task(spec: dict[str, Any]) -> dict[str, Any]:
    try:
        import torch
    except Exception as error:  # ImportError, or a broken install raising anything else
        return {
            "task": "agree-torch",
            "available": False,
            "why": f"{type(error).__name__}: {error}",
        }
    torch.set_num_threads(int(spec["threads"]))
    model = build_alexnet(spec["variant"], engine="reference")
    result = {"task": "agree-torch", "available": True, "version": torch.__version__}
    try:
        return {**result, "agree": True, "worst": check_agreement(model, torch_twin(model))}
    except ValueError as error:
        return {**result, "agree": False, "why": str(error)}


def worst_difference(pairs: list[tuple[str, np.ndarray, np.ndarray]]) -> tuple[float, str]:
    """The largest ``max|a - b| / max|a|`` over the pairs, and the name of that pair."""
    worst, where = 0.0, ""
    for name, a, b in pairs:
        if a.shape != b.shape:
            return float("inf"), f"{name} (shape {a.shape} against {b.shape})"
        rel = relative_difference(b, a)
        if rel > worst:
            worst, where = rel, name
    return worst, where


def agree_fast_task(spec: dict[str, Any]) -> dict[str, Any]:
    """The fast engine against the reference: the same initial parameters, then one eval-mode
    batch of 2 (no dropout): logits, logits under ``no_grad``, every parameter gradient."""
    try:
        engine_layers("fast")
    except ValueError as error:
        return {"task": "agree-fast", "available": False, "why": str(error)}
    ref, fast = (build_alexnet(spec["variant"], engine=e) for e in ("reference", "fast"))
    pairs = [(f"{k} (initial value)", v, fast.params()[k]) for k, v in ref.params().items()]
    x, y = random_batch(2, ref.input_shape, num_classes(ref), seed=1)
    out = {}
    for name, model in (("reference", ref), ("fast", fast)):
        logits = model.eval().forward(x).copy()  # kept across the later calls
        model.backward(softmax_cross_entropy(logits, y)[1])
        grads = {k: g.copy() for k, g in model.grads().items()}
        with model.no_grad():
            out[name] = (logits, model.forward(x), grads)
    (r_logits, _, r_grads), (f_logits, f_inference, f_grads) = out["reference"], out["fast"]
    pairs += [("logits", r_logits, f_logits), ("logits under no_grad", r_logits, f_inference)]
    pairs += [(f"{k} gradient", g, f_grads[k]) for k, g in r_grads.items()]
    worst, where = worst_difference(pairs)
    return {
        "task": "agree-fast",
        "available": True,
        "agree": worst <= FAST_RTOL,
        "worst": worst,
        "where": where,
        "rtol": FAST_RTOL,
    }


def compile_task(spec: dict[str, Any]) -> dict[str, Any]:
    """First forward+step at batch 1 against the median of 3 warm ones, in this process's
    ``NUMBA_CACHE_DIR``; also the time to import the fast engine (eager compilation shows
    there) and how many files the cache holds after."""
    start = time.perf_counter()
    engine_layers("fast")
    import_s = time.perf_counter() - start
    runner = OursRunner(build_alexnet(spec["variant"], engine="fast"), 1)

    def both() -> float:
        start = time.perf_counter()
        runner.forward()
        runner.step()
        return time.perf_counter() - start

    first = both()
    warm = statistics.median(both() for _ in range(3))
    cache = os.environ.get("NUMBA_CACHE_DIR", "")
    files = sum(len(f) for _, _, f in os.walk(cache)) if cache else None
    return {
        "task": "compile",
        "import_s": import_s,
        "first_s": first,
        "warm_s": warm,
        "cache_files": files,
    }


TASKS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "time": time_task,
    "agree-torch": agree_torch_task,
    "agree-fast": agree_fast_task,
    "compile": compile_task,
}


# ----------------------------------------------------------------------------------------
# The protocol: a spec as argv[1], one JSON line back on stdout
# ----------------------------------------------------------------------------------------
class ChildError(RuntimeError):
    """A child exited non-zero, ran too long or printed no result; the message ends with the
    tail of its stderr."""


def result_line(result: dict[str, Any]) -> str:
    """The child's one line of output."""
    return json.dumps(result, separators=(",", ":"))


def parse_result(stdout: str) -> dict[str, Any]:
    """The last line of a child's stdout that is a JSON object (libraries may print before)."""
    for line in reversed(stdout.strip().splitlines()):
        with_braces = line.strip()
        if with_braces.startswith("{"):
            try:
                return json.loads(with_braces)
            except json.JSONDecodeError:
                break
    raise ChildError(f"printed no JSON result line; its stdout ends: {stdout[-500:]!r}")


def child_main(argv: list[str] | None = None) -> int:
    """Entry point of a child: run the task of the JSON spec in argv[1], print its result."""
    argv = sys.argv if argv is None else argv
    spec = json.loads(argv[1])
    if spec.get("task") not in TASKS:
        raise ValueError(f"bench child: task must be one of {tuple(TASKS)}, got {spec!r}")
    print(result_line(TASKS[spec["task"]](spec)), flush=True)
    return 0


def child_command(spec: dict[str, Any]) -> list[str]:
    code = "import sys; from minialexnet.bench_child import child_main; sys.exit(child_main())"
    return [sys.executable, "-c", code, json.dumps(spec)]


def describe(spec: dict[str, Any]) -> str:
    words = [spec.get("task", "?"), spec.get("framework", "")]
    if "batch" in spec:
        words.append(f"batch {spec['batch']}")
    return "the " + " ".join(w for w in words if w) + " child"


def run_child(
    spec: dict[str, Any], env: dict[str, str] | None = None, timeout: float = CHILD_TIMEOUT_S
) -> dict[str, Any]:
    """Run one task in a fresh interpreter and return its result; raise ``ChildError``."""
    try:
        done = subprocess.run(
            child_command(spec), capture_output=True, text=True, env=env, timeout=timeout
        )
    except subprocess.TimeoutExpired as error:
        stderr = error.stderr.decode() if isinstance(error.stderr, bytes) else error.stderr
        raise ChildError(f"{describe(spec)} ran past {timeout:.0f} s{tail(stderr)}") from None
    if done.returncode != 0:
        raise ChildError(f"{describe(spec)} failed (exit {done.returncode}){tail(done.stderr)}")
    try:
        return parse_result(done.stdout)
    except ChildError as error:
        raise ChildError(f"{describe(spec)} {error}{tail(done.stderr)}") from None


def tail(stderr: str | None) -> str:
    lines = (stderr or "").rstrip().splitlines()[-STDERR_LINES:]
    return "; its stderr:\n" + "\n".join("  | " + line for line in lines) if lines else ""
