"""The benchmark's machinery, and the buffers its fast paths reuse.

Nothing here times anything (speed is measured by ``python -m minialexnet bench``, never
asserted by a test). What is checked:
* the PyTorch twin computes what our model computes, and ``check_agreement`` refuses a twin
  that differs (so the bench never times a wrong network);
* the fast paths' reused workspaces never leak into what a layer returns: outputs, dL/dx and
  gradients held by the caller survive later calls; the chunked convolution (several images
  per chunk, a short last chunk) matches the loop reference.
"""

from __future__ import annotations

import numpy as np
import pytest
from strategies import random_array

import minialexnet.bench as bench
import minialexnet.layers.conv as conv_module
from minialexnet import Sequential, build_alexnet
from minialexnet.bench import median_ms, time_runners
from minialexnet.layers import Conv2d, LocalResponseNorm, MaxPool2d
from minialexnet.torch_twin import check_agreement, torch_twin
from minialexnet.tour import layer_cases


def mini_with_strong_lrn() -> Sequential:
    """The mini AlexNet with LRN alpha = 1 (instead of 1e-4), so that an LRN convention mix-up
    changes the logits by O(1) rather than by less than float32 noise."""
    model = build_alexnet("mini", dtype=np.float32, seed=3)
    for layer in model.layers.values():
        if isinstance(layer, LocalResponseNorm):
            layer.alpha = 1.0
    return model


# -- the PyTorch twin ------------------------------------------------------------------------
def test_twin_agrees_with_our_model(torch):
    model = mini_with_strong_lrn()
    worst = check_agreement(model, torch_twin(model), batch=3)
    assert worst < 1e-4


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


def test_median_ms_calls_once_for_warm_up_then_repeats_times():
    calls = []
    assert median_ms(lambda: calls.append(1), repeats=4) >= 0
    assert len(calls) == 5


def test_time_runners_alternates_the_runners_and_reports_each_phase(monkeypatch):
    # No timing is checked, only the bookkeeping: one warm-up call each, then the runners take
    # turns, and each phase gets one row per runner with the FLOP convention (x3 backward).
    log: list[tuple[str, str, int]] = []

    class Fake:
        def __init__(self, name: str) -> None:
            self.name = name

        def forward(self, batch: int) -> None:
            log.append((self.name, "forward", batch))

        def step(self, batch: int) -> None:
            log.append((self.name, "step", batch))

    monkeypatch.setattr(bench, "QUIET_S", 0.0)
    rows = time_runners([Fake("a"), Fake("b")], batch=4, repeats=3, gflop_per_image=2.0)
    assert log == [(n, "forward", 4) for n in "ab" * 4] + [(n, "step", 4) for n in "ab" * 4]
    assert [(r.framework, r.phase, r.batch, r.gflop) for r in rows] == [
        ("a", "forward", 4, 8.0),
        ("b", "forward", 4, 8.0),
        ("a", "forward+backward", 4, 24.0),
        ("b", "forward+backward", 4, 24.0),
    ]


# -- reused workspaces never leak into what a layer returns ---------------------------------
@pytest.mark.parametrize("title", [title for title, _, _ in layer_cases()])
def test_returned_arrays_survive_later_calls(title, monkeypatch):
    # One image per conv chunk, so the workspaces are reused within a call as well.
    monkeypatch.setattr(conv_module, "CHUNK_BYTES", 1)
    ((layer, shape),) = [(lay, shp) for t, lay, shp in layer_cases() if t == title]
    x1, x2 = random_array(shape, 1), random_array(shape, 2)
    out1 = layer.forward(x1)
    dout1 = random_array(out1.shape, 3)
    dx1 = layer.backward(dout1)
    grads1 = dict(layer.grads)  # the arrays themselves, as an optimizer would hold them
    kept = (out1.copy(), dx1.copy(), {k: g.copy() for k, g in grads1.items()})
    out2 = layer.forward(x2)
    layer.backward(random_array(out2.shape, 4))
    np.testing.assert_array_equal(out1, kept[0])
    np.testing.assert_array_equal(dx1, kept[1])
    for name, grad in grads1.items():
        np.testing.assert_array_equal(grad, kept[2][name], err_msg=name)


@pytest.mark.parametrize("chunk_bytes", [1, 10_000])
@pytest.mark.parametrize("groups", [1, 2])
def test_chunked_im2col_matches_the_loops(chunk_bytes, groups, monkeypatch):
    # 5 images of 5x5 outputs; one image's cols hold 5*5 * 3*2*(4/groups) float64s: 4800 bytes
    # (groups=1) or 2400. chunk_bytes=1 makes each image a chunk; 10_000 makes chunks of 2
    # (2, 2, 1) or 4 (4, 1) images, so dW sums over chunks and the last chunk is short.
    monkeypatch.setattr(conv_module, "CHUNK_BYTES", chunk_bytes)
    args = (4, 6, (3, 2), (2, 1), (1, 1), groups)
    fast = Conv2d(*args, dtype=np.float64, rng=np.random.default_rng(0))
    naive = Conv2d(*args, impl="naive", dtype=np.float64, rng=np.random.default_rng(0))
    x = random_array((5, 4, 9, 4), 5)
    out_fast, out_naive = fast.forward(x), naive.forward(x)
    np.testing.assert_allclose(out_fast, out_naive, rtol=1e-12, atol=1e-12)
    dout = random_array(out_fast.shape, 6)
    np.testing.assert_allclose(fast.backward(dout), naive.backward(dout), rtol=1e-12, atol=1e-12)
    for name in ("W", "b"):
        np.testing.assert_allclose(fast.grads[name], naive.grads[name], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Conv2d(3, 4, 3, padding=1, dtype=np.float64, rng=np.random.default_rng(1)),
        lambda: LocalResponseNorm(3, alpha=0.5),
        lambda: MaxPool2d(3, 2),
    ],
    ids=["conv", "lrn", "pool"],
)
def test_batch_size_can_change_between_calls(make, monkeypatch):
    # Scratch and kept buffers are sized by the call that needs them; after a larger batch, a
    # smaller one (and then a larger one again) must give what a fresh layer gives: buffers
    # reallocated or sliced, never indexed past their end, never stale. 20_000 bytes hold the
    # cols of 2 images here (7*6 positions * 27 weights * 8 bytes each), so chunks change too.
    monkeypatch.setattr(conv_module, "CHUNK_BYTES", 20_000)
    layer = make()
    for n in (1, 4, 2, 3):
        x = random_array((n, 3, 7, 6), n)
        fresh = make()
        expected = fresh.forward(x)
        np.testing.assert_array_equal(layer.forward(x), expected)
        dout = random_array(expected.shape, n + 10)
        np.testing.assert_array_equal(layer.backward(dout), fresh.backward(dout))
        for name, grad in fresh.grads.items():
            np.testing.assert_array_equal(layer.grads[name], grad, err_msg=name)


def test_layers_sharing_a_sequentials_workspace_match_the_loops():
    # A Sequential gives its convolutions one workspace: conv_b's padded input lands in memory
    # conv_a has just filled with its own (unpadded, larger) data, so a border left stale
    # would change conv_b's output. Both must still equal the naive loops.
    def convs(impl: str) -> list[tuple[str, Conv2d]]:
        rng = np.random.default_rng(4)
        return [
            ("conv_a", Conv2d(3, 4, 3, impl=impl, dtype=np.float64, rng=rng)),
            ("conv_b", Conv2d(4, 5, 3, padding=1, impl=impl, dtype=np.float64, rng=rng)),
        ]

    fast, naive = Sequential(convs("im2col"), (3, 9, 8)), Sequential(convs("naive"), (3, 9, 8))
    assert fast.layers["conv_a"].workspace is fast.layers["conv_b"].workspace
    x = random_array((2, 3, 9, 8), 9)
    np.testing.assert_allclose(fast.forward(x), naive.forward(x), rtol=1e-12, atol=1e-12)
    dout = random_array((2, 5, 7, 6), 10)
    fast.backward(dout)
    naive.backward(dout)
    for name, grad in naive.grads().items():
        np.testing.assert_allclose(fast.grads()[name], grad, rtol=1e-12, atol=1e-12, err_msg=name)
