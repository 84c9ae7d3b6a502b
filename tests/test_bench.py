"""The benchmark's machinery.

Nothing here times anything or asserts a speed (speed is measured by ``python -m minialexnet
bench``). What is checked:
* the PyTorch twin computes what our model computes, and ``check_agreement`` refuses a twin
  that differs; the bench refuses to time a fast engine that differs from the reference;
* the bench's bookkeeping: the timing helpers, the child processes' one-line JSON protocol,
  the aggregation (min/median/max, peaks, ratios: hand-computed), the table from a tiny real
  run, bad options, a failing child (reported with its stderr);
* (the fast engine's reused buffers: tests/test_fast_buffers.py.)
"""

from __future__ import annotations

import inspect
import sys

import numpy as np
import pytest

import minialexnet.bench as bench
import minialexnet.bench_child as bench_child
import minialexnet.timing as timing
from minialexnet import Sequential, build_alexnet
from minialexnet.bench import Row, aggregate, check_arguments, run_bench
from minialexnet.bench_child import ChildError, parse_result, result_line, run_child
from minialexnet.cli import main
from minialexnet.layers import LocalResponseNorm
from minialexnet.timing import Spread, median_ms, timed_calls
from minialexnet.torch_twin import check_agreement, torch_twin


def mini_with_strong_lrn() -> Sequential:
    """The mini AlexNet with LRN alpha = 1 (instead of 1e-4), so that an LRN convention mix-up
    changes the logits by O(1) rather than by less than float32 noise."""
    model = build_alexnet("mini", dtype=np.float32, seed=3, engine="reference")  # as the bench
    for layer in model.layers.values():
        if isinstance(layer, LocalResponseNorm):
            layer.alpha = 1.0
    return model


# -- the PyTorch twin ------------------------------------------------------------------------
def test_twin_agrees_with_our_model(torch):
    model = mini_with_strong_lrn()
    worst = check_agreement(model, torch_twin(model), batch=3)
    assert worst < 1e-4


def test_twin_normalises_each_lrn_group_apart(torch):
    # The paper variant's LRN has groups=2; with alpha = 1 a window crossing the block boundary
    # would change the logits by O(1), so agreement shows the twin keeps the blocks apart.
    model = mini_with_strong_lrn()
    for layer in model.layers.values():
        if isinstance(layer, LocalResponseNorm):
            layer.groups = 2
    assert check_agreement(model, torch_twin(model), batch=3) < 1e-4
    ungrouped = mini_with_strong_lrn()
    with pytest.raises(ValueError, match="disagree on logits"):
        check_agreement(model, torch_twin(ungrouped), batch=3)


def test_agreement_check_refuses_a_twin_with_one_weight_changed(torch):
    model = mini_with_strong_lrn()
    twin = torch_twin(model)
    with torch.no_grad():
        twin[list(model.layers).index("conv3")].weight[0, 0, 0, 0] += 1.0
    with pytest.raises(ValueError, match="disagree on logits"):
        check_agreement(model, twin, batch=3)


def test_agreement_check_refuses_the_lrn_alpha_convention_mixed_up(torch):
    # PyTorch's LocalResponseNorm divides alpha by size; passing our paper alpha unscaled is
    # the classic mistake (LRN 5x weaker). The twin must scale it, and the check must see it.
    model = mini_with_strong_lrn()
    twin = torch_twin(model)
    for module in twin:
        if isinstance(module, torch.nn.LocalResponseNorm):
            module.alpha /= module.size
    with pytest.raises(ValueError, match="disagree"):
        check_agreement(model, twin, batch=3)


# -- the fast engine's agreement check --------------------------------------------------------
@pytest.mark.parametrize("broken", [False, True])
def test_fast_agreement_check_sees_a_changed_lrn(broken, monkeypatch):
    # The "fast" engine stood in by the reference one, its LRN made stronger when broken: the
    # parameters stay equal, so only the logits and gradients can show it.
    def build(variant: str, engine: str | None = None) -> Sequential:
        model = build_alexnet(variant, seed=0, engine="reference")
        if engine == "fast" and broken:
            model.layers["norm1"].alpha *= 1e4
        return model

    monkeypatch.setattr(bench_child, "engine_layers", lambda engine: None)
    monkeypatch.setattr(bench_child, "build_alexnet", build)
    result = bench_child.agree_fast_task({"variant": "mini"})
    assert result["available"] and result["agree"] is not broken
    assert (result["worst"] > bench_child.FAST_RTOL) is broken
    if broken:
        assert (
            result["where"] in ("logits", "logits under no_grad") or "gradient" in result["where"]
        )


def fake_children(monkeypatch, fast: dict) -> list[dict]:
    """Replace the bench's children by canned results (fast's agreement check answers
    ``fast``; each time task answers 10 ms per call); return the specs asked for."""
    asked: list[dict] = []

    def run(spec: dict, env: dict | None = None) -> dict:
        asked.append(spec)
        if spec["task"] == "agree-fast":
            return fast
        return {
            "task": "time",
            "framework": spec["framework"],
            "batch": spec["batch"],
            "macs_per_image": 10**9,
            "forward_s": [0.01] * spec["repeats"],
            "step_s": [0.01] * spec["repeats"],
            "forward_peak_mb": 1.0,
            "step_peak_mb": 2.0,
            "peak_reset": True,
            "threads": {"blas": "x 1"},
        }

    monkeypatch.setattr(bench, "run_child", run)
    return asked


def test_bench_refuses_to_time_a_fast_engine_that_disagrees(monkeypatch, capsys):
    verdict = {"available": True, "agree": False, "worst": 0.5, "where": "fc8.W gradient"}
    asked = fake_children(monkeypatch, verdict)
    assert run_bench([1], repeats=1, processes=1, compare_torch=False) == 1
    assert "refusing to time: fast disagrees" in capsys.readouterr().out
    assert [spec["task"] for spec in asked] == ["agree-fast"]  # nothing timed


def test_bench_without_a_fast_engine_says_so_and_times_the_reference(monkeypatch, capsys):
    asked = fake_children(monkeypatch, {"available": False, "why": "no minialexnet.fast"})
    assert run_bench([1, 2], repeats=2, processes=3, compare_torch=False) == 0
    out = capsys.readouterr().out
    assert "fast not available (no minialexnet.fast)" in out
    assert "Numba compile time: not measured" in out
    timed = [(s["framework"], s["batch"]) for s in asked if s["task"] == "time"]
    assert timed == [("reference", 1), ("reference", 2)] * 3  # rounds, one process at a time


# -- timing helpers -------------------------------------------------------------------------
def test_median_ms_calls_once_for_warm_up_then_repeats_times():
    calls = []
    assert median_ms(lambda: calls.append(1), repeats=4) >= 0
    assert len(calls) == 5


def test_timed_calls_waits_quietly_before_each_timed_call_only(monkeypatch):
    log: list[str] = []
    monkeypatch.setattr(timing, "quiet_wait", lambda seconds: log.append(f"wait {seconds}"))
    times = timed_calls(lambda: log.append("call"), repeats=2, warmup=1, quiet_s=0.5)
    assert log == ["call", "wait 0.5", "call", "wait 0.5", "call"]
    assert len(times) == 2 and min(times) >= 0


def test_spread_is_min_median_max():
    assert Spread.of([0.003, 0.001, 0.010, 0.002]) == Spread(0.001, 0.0025, 0.010)
    assert Spread.of([2.0]).scaled(1e3) == Spread(2000.0, 2000.0, 2000.0)
    with pytest.raises(ValueError, match="no values"):
        Spread.of([])


# -- the child protocol and the aggregation --------------------------------------------------
def test_child_result_line_round_trips_after_other_output():
    result = {
        "task": "time",
        "framework": "fast",
        "batch": 8,
        "forward_s": [0.25, 1e-7],
        "threads": {"blas": "libopenblas 2", "numba": 2},
        "peak_reset": False,
    }
    line = result_line(result)
    assert "\n" not in line
    assert parse_result(f"a library's banner\n{{not json\n{line}\n\n") == result
    with pytest.raises(ChildError, match="no JSON result line"):
        parse_result("Segmentation fault\n")


def time_result(framework: str, batch: int, forward: list, step: list, peaks=(1.0, 2.0)):
    return {
        "task": "time",
        "framework": framework,
        "batch": batch,
        "macs_per_image": 5 * 10**8,
        "forward_s": forward,
        "step_s": step,
        "forward_peak_mb": peaks[0],
        "step_peak_mb": peaks[1],
        "peak_reset": True,
        "threads": {},
    }


def test_aggregate_pools_the_processes_and_divides_by_pytorch():
    # 0.5 GMAC per image = 1 GFLOP forward, 3 GFLOP per training step; batch 2.
    rows = aggregate(
        [
            time_result("reference", 2, [0.4, 0.1], [1.2], peaks=(10.0, 30.0)),
            time_result("pytorch", 2, [0.05, 0.15, 0.10], [0.6, 0.2]),
            time_result("reference", 2, [0.3], [0.9, 0.6], peaks=(12.0, 20.0)),
        ]
    )
    assert [(r.framework, r.phase) for r in rows] == [
        ("reference", "forward"),
        ("pytorch", "forward"),
        ("reference", "forward+backward"),
        ("pytorch", "forward+backward"),
    ]
    ref_fwd, torch_fwd, ref_step, torch_step = rows
    assert ref_fwd.ms == pytest.approx(Spread(100.0, 300.0, 400.0))  # of 400, 100, 300 ms
    assert (ref_fwd.calls, ref_fwd.peak_mb, ref_fwd.gflop) == (3, 12.0, 2.0)
    assert torch_fwd.ms == pytest.approx(Spread(50.0, 100.0, 150.0)) and torch_fwd.ratio is None
    assert ref_fwd.ratio == pytest.approx(3.0)  # 300 / 100
    assert ref_fwd.images_per_s == pytest.approx(2 / 0.3)
    assert ref_fwd.gflops == pytest.approx(2.0 / 0.3)
    assert ref_step.ms == pytest.approx(Spread(600.0, 900.0, 1200.0))
    assert (ref_step.peak_mb, ref_step.gflop) == (30.0, 6.0)
    assert torch_step.ms.median == pytest.approx(400.0)  # of 600 and 200
    assert ref_step.ratio == pytest.approx(900.0 / 400.0)


def test_a_row_without_peak_or_ratio_prints_blanks():
    row = Row("fast", 1, "forward", Spread(1.0, 2.0, 3.0), gflop=1.0)
    line = bench.format_table([row]).splitlines()[-1]
    assert line.split() == ["fast", "1", "forward", "1.0", "2.0", "3.0", "500.0", "500.0"]


# -- a real run, through the Python API -----------------------------------------------------
def table_rows(out: str) -> list[list[str]]:
    lines = out.rstrip().splitlines()
    dashes = max(i for i, line in enumerate(lines) if set(line) == {"-"})
    return [line.split() for line in lines[dashes + 1 :]]


def test_the_public_defaults_are_the_full_run():
    assert inspect.signature(run_bench).parameters["variant"].default == "ungrouped"
    assert inspect.signature(run_bench).parameters["processes"].default == 3


@pytest.mark.parametrize("with_torch", [False, True], ids=["reference", "reference+pytorch"])
def test_tiny_run_prints_a_table_with_every_row(with_torch, request, capsys):
    if with_torch:
        request.getfixturevalue("torch")  # skips where PyTorch is not installed
    batches = [1] if with_torch else [1, 2]  # each PyTorch child takes seconds to import it
    status = run_bench(
        batches,
        repeats=1,
        processes=1,
        engine="reference",
        compare_torch=with_torch,
        variant="mini",
        quiet_s=0.0,
    )
    out, err = capsys.readouterr()
    assert status == 0, out + err  # err: a child's error (a student copy's hook reads it there)
    frameworks = ["reference", "pytorch"] if with_torch else ["reference"]
    expected = [
        (f, str(b), p) for b in batches for p in ("forward", "forward+backward") for f in frameworks
    ]
    rows = table_rows(out)
    assert [tuple(r[:3]) for r in rows] == expected
    assert all(len(r) == (10 if with_torch and r[0] == "reference" else 9) for r in rows)
    assert "machine:" in out and "load average" in out
    if with_torch:
        assert "agree with ours" in out
        assert all(r[-1].endswith("x") for r in rows if r[0] == "reference")
    else:
        assert "PyTorch comparison off" in out


def test_a_failing_child_is_reported_with_its_stderr_not_a_traceback(monkeypatch, capsys):
    code = "import sys; sys.stderr.write('boom: the child broke\\n'); sys.exit(3)"
    monkeypatch.setattr(bench_child, "child_command", lambda spec: [sys.executable, "-c", code])
    assert run_bench([1], repeats=1, processes=2, engine="reference", compare_torch=False) == 1
    captured = capsys.readouterr()
    assert "the time reference batch 1 child failed (exit 3)" in captured.err
    assert "boom: the child broke" in captured.err
    assert "Traceback" not in captured.out + captured.err
    assert captured.err.count("boom") == 1  # the framework's other runs are skipped


def test_a_real_child_that_raises_shows_its_error():
    with pytest.raises(ChildError, match="framework must be one of") as error:
        run_child(
            {
                "task": "time",
                "framework": "caffe",
                "batch": 1,
                "repeats": 1,
                "variant": "mini",
                "threads": 1,
            }
        )
    assert "exit 1" in str(error.value)


# -- bad options ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_sizes": [8, 0]}, r"--batch expects integers >= 1 and <= 256, got \[8, 0\]"),
        ({"batch_sizes": []}, r"--batch expects integers >= 1 and <= 256, got \[\]"),
        ({"batch_sizes": [-1]}, r"--batch expects integers >= 1 and <= 256, got \[-1\]"),
        ({"batch_sizes": [100000]}, r"--batch expects .* <= 256, got \[100000\]"),
        ({"batch_sizes": [True]}, r"--batch expects integers >= 1 and <= 256, got \[True\]"),
        ({"batch_sizes": [8, 1, 8]}, r"--batch expects each batch size once, got \[8, 1, 8\]"),
        ({"repeats": 0}, "--repeats expects an integer >= 1 and <= 100, got 0"),
        ({"repeats": 10**9}, "--repeats expects an integer >= 1 and <= 100, got 1000000000"),
        ({"repeats": 2.5}, "--repeats expects an integer >= 1 and <= 100, got 2.5"),
        ({"processes": -1}, "--processes expects an integer >= 1 and <= 20, got -1"),
        ({"processes": 0}, "--processes expects an integer >= 1 and <= 20, got 0"),
        ({"processes": 10**6}, "--processes expects an integer >= 1 and <= 20, got 1000000"),
        (
            {"engine": "quick"},
            r"--engine expects one of \('reference', 'fast', 'both'\), got 'quick'",
        ),
    ],
)
def test_bad_arguments_name_the_option_the_expected_and_the_given(kwargs, message):
    args = {"batch_sizes": [1], "repeats": 1, "processes": 1, "engine": "both", "variant": "mini"}
    with pytest.raises(ValueError, match=message):
        check_arguments(**{**args, **kwargs})
    with pytest.raises(ValueError, match=message):
        run_bench(**{**args, **kwargs})


def test_cli_refuses_bad_options_before_running_anything(capsys):
    assert main(["bench", "--batch", "1", "0"]) == 2
    assert "--batch expects integers >= 1 and <= 256, got [1, 0]" in capsys.readouterr().err
    assert main(["bench", "--processes", "0"]) == 2
    assert "--processes expects an integer >= 1 and <= 20, got 0" in capsys.readouterr().err
    for option, value in (("--batch", "-1"), ("--batch", "100000"), ("--repeats", "0")):
        assert main(["bench", option, value]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.count("\n") == 1  # one line, no traceback
        assert captured.err.startswith(f"bench: {option} expects")
    # The GPU bench takes --repeats too: refused before the GPU is even looked for.
    assert main(["bench", "--backend", "cuda", "--repeats", "0"]) == 2
    assert capsys.readouterr().err.startswith("bench: --repeats expects an integer >= 1")
    with pytest.raises(SystemExit):
        main(["bench", "--engine", "quick"])
    assert "invalid choice: 'quick'" in capsys.readouterr().err
