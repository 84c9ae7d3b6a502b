"""The α–β projection (``distributed/projection.py``, ``distributed/step_time.py``): formulas
against hand-worked cases, byte counts against shapes worked out here from the architecture,
the gradient buckets' overlap with the backward, limits and bad input.

The hand-worked numbers use α = 1 s and β = 2 bytes/s so that every term is a small whole
number one can check on paper. The AlexNet shapes are computed below from the paper's table
(kernel, stride, padding; max-pool 3/2 after conv1, conv2 and conv5) with the textbook output
formula, calling nothing in minialexnet.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from minialexnet import Sequential, build_alexnet
from minialexnet.distributed import projection as pj
from minialexnet.distributed import step_time as steps
from minialexnet.layers import Conv2d, Flatten, Linear, ReLU

SLOW = pj.Network("test", latency_s=1.0, bandwidth=2.0)
FREE = pj.Network("no latency", latency_s=0.0, bandwidth=1.0)


# The paper net's layers with parameters, fc8 first, in buckets of one or two layers as
# data_parallel.make_buckets might group them (written out here, not taken from it).
PAPER_BUCKETS = [["fc8"], ["fc7"], ["fc6"], ["conv5", "conv4"], ["conv3", "conv2"], ["conv1"]]
ONE_BUCKET = [[name for group in PAPER_BUCKETS for name in group]]


@pytest.fixture(scope="module")
def paper() -> Sequential:
    return build_alexnet("paper")


def side(h: int, k: int, s: int, p: int) -> int:
    return (h + 2 * p - k) // s + 1


def paper_maps() -> dict[str, int]:
    """Floats per image of pool2 (conv3's input) and pool5 (fc6's), from the paper's table."""
    h = side(227, 11, 4, 0)  # conv1: 55
    h = side(h, 3, 2, 0)  # pool1: 27
    h = side(h, 5, 1, 2)  # conv2: 27
    pool2 = side(h, 3, 2, 0)  # 13
    pool5 = side(pool2, 3, 2, 0)  # conv3-5 keep 13 (3x3, pad 1); pool5: 6
    return {"pool2": 256 * pool2 * pool2, "pool5": 256 * pool5 * pool5}


def paper_params() -> tuple[int, int]:
    """(conv parameters, all parameters) of the paper's grouped net, by the usual formula."""
    convs = [(3, 96, 11, 1), (96, 256, 5, 2), (256, 384, 3, 1), (384, 384, 3, 2), (384, 256, 3, 2)]
    conv = sum(f * (c // g) * k * k + f for c, f, k, g in convs)
    fc = sum(i * o + o for i, o in [(paper_maps()["pool5"], 4096), (4096, 4096), (4096, 1000)])
    return conv, conv + fc


# -- collectives, by hand -------------------------------------------------------------------
def test_collectives_match_hand_worked_cases() -> None:
    # message: α + m/β = 1 + 8/2
    assert pj.message_time(8, SLOW) == 5.0
    # ring all-reduce, N=2, S=8: 2·1·α + 2·(1/2)·8/β = 2 + 4
    assert pj.allreduce_time(8, 2, SLOW) == 6.0
    assert pj.allreduce_sent(8, 2) == 8.0
    # N=4, S=8: 2·3·α + 2·(3/4)·8/β = 6 + 6
    assert pj.allreduce_time(8, 4, SLOW) == 12.0
    assert pj.allreduce_sent(8, 4) == 12.0
    # ring all-gather, N=4, S=8 in all: 3·α + (3/4)·8/β = 3 + 3
    assert pj.allgather_time(8, 4, SLOW) == 6.0
    assert pj.allgather_sent(8, 4) == 6.0


def test_one_rank_communicates_nothing(paper: Sequential) -> None:
    assert pj.allreduce_time(1e9, 1, SLOW) == 0 and pj.allgather_time(1e9, 1, SLOW) == 0
    compute = steps.Compute(per_image_s=0.5, per_step_s=0.25)
    for scheme in pj.SCHEMES:
        assert pj.exchanges(paper, scheme, 1) == []
        assert pj.bytes_sent_per_rank(paper, scheme, 1, 128) == 0
        cost = steps.step_cost(paper, scheme, 1, 128, compute, SLOW, buckets=PAPER_BUCKETS)
        assert (cost.communication, cost.hidden) == (0, 0)
        assert cost.total == 0.5 * 128 + 0.25


@given(
    nbytes=st.floats(1.0, 1e10),
    ranks=st.integers(2, 512),
    latency=st.floats(0.0, 1e-3),
    bandwidth=st.floats(1e6, 1e12),
)
def test_ring_collectives_grow_with_ranks_and_stay_under_their_bounds(
    nbytes: float, ranks: int, latency: float, bandwidth: float
) -> None:
    net = pj.Network("any", latency, bandwidth)
    for time in (pj.allreduce_time, pj.allgather_time):
        assert time(nbytes, ranks + 1, net) >= time(nbytes, ranks, net)
    # each rank sends less than 2S (all-reduce) and S (all-gather), approaching them as N grows
    assert nbytes <= pj.allreduce_sent(nbytes, ranks) < 2 * nbytes
    assert nbytes / 2 <= pj.allgather_sent(nbytes, ranks) < nbytes


# -- bytes from the network's shapes --------------------------------------------------------
def test_paper_split_exchanges_where_the_paper_gpus_talked(paper: Sequential) -> None:
    maps = paper_maps()
    found = pj.exchanges(paper, "model", 2)
    expected = [
        ("conv3", maps["pool2"], True),
        ("fc6", maps["pool5"], True),
        ("fc7", 4096, True),
        ("fc8", 4096, True),
        ("loss", 1000, False),
    ]
    assert [(e.layer, e.floats_per_image, e.backward) for e in found] == expected
    assert all(e.ranks == 2 for e in found)
    # each rank sends its half forward (and its half of the gradient back), float32
    batch = 128
    by_hand = sum(floats / 2 * (2 if back else 1) * batch * 4 for _, floats, back in expected)
    assert pj.bytes_sent_per_rank(paper, "model", 2, batch) == by_hand


def test_gradient_bytes_are_the_parameters_in_float32(paper: Sequential) -> None:
    conv, total = paper_params()
    assert pj.gradient_bytes(paper, "data") == 4 * total
    assert pj.gradient_bytes(paper, "hybrid") == 4 * conv
    assert pj.gradient_bytes(paper, "model") == 0
    # ring all-reduce on 2 ranks: each sends half the buffer twice (reduce-scatter, all-gather)
    assert pj.bytes_sent_per_rank(paper, "data", 2, 128) == 4 * total


def test_hybrid_gathers_the_whole_batchs_features_at_fc6(paper: Sequential) -> None:
    ranks, batch = 8, 128
    found = pj.exchanges(paper, "hybrid", ranks)
    assert [e.layer for e in found] == ["fc6", "fc7", "fc8", "loss"]
    fc6 = found[0]
    assert fc6.gathered_bytes(batch) == batch * paper_maps()["pool5"] * 4
    assert fc6.sent_per_rank(batch) == 2 * (ranks - 1) / ranks * batch * paper_maps()["pool5"] * 4
    conv, total = paper_params()
    assert pj.owned_param_share(paper, "hybrid", ranks) == pytest.approx(
        (conv + (total - conv) / ranks) / total
    )


def tiny_grouped_net() -> Sequential:
    """4x6x6 -> conv (8 kernels, 3x3) -> conv (8 kernels, groups=2) -> Linear(8*2*2 -> 3)."""
    rng = np.random.default_rng(0)
    layers = [
        ("a", Conv2d(4, 8, 3, rng=rng)),
        ("relu", ReLU()),
        ("b", Conv2d(8, 8, 3, groups=2, rng=rng)),
        ("flat", Flatten()),
        ("fc", Linear(8 * 2 * 2, 3, rng=rng)),
    ]
    return Sequential(layers, (4, 6, 6), name="tiny")


def test_a_grouped_conv_gathers_within_its_group_only() -> None:
    net = tiny_grouped_net()
    two = pj.exchanges(net, "model", 2)  # each rank holds one whole group of b
    assert [(e.layer, e.floats_per_image, e.ranks) for e in two] == [("fc", 32, 2), ("loss", 3, 2)]
    four = pj.exchanges(net, "model", 4)  # each of b's 2 groups (4 maps of 4x4) spans 2 ranks
    assert [(e.layer, e.source, e.floats_per_image, e.ranks) for e in four[:1]] == [
        ("b", "relu", 4 * 4 * 4, 2)
    ]
    with pytest.raises(ValueError, match=r"b has groups=2.*ranks=3"):
        pj.exchanges(net, "model", 3)


# -- step time --------------------------------------------------------------------------------
def linear_net() -> Sequential:
    """One Linear(4 -> 2): 10 parameters, 40 bytes of gradient; 2 logits per image."""
    return Sequential([("fc", Linear(4, 2, rng=np.random.default_rng(0)))], (4,), name="lin")


def test_step_cost_hand_worked() -> None:
    net, compute = linear_net(), steps.Compute(per_image_s=1.0, per_step_s=2.0)
    # data parallel, N=2, B=4: compute 1·4/2 + 2 (every rank updates all) = 4; all-reduce
    # of 40 bytes with α=0, β=1: 2·(1/2)·40 = 40
    data = steps.step_cost(net, "data", 2, 4, compute, FREE)
    assert (data.compute, data.communication, data.hidden) == (4.0, 40.0, 0.0)
    # its one bucket holds the only layer: ready when the backward ends, so nothing hides
    bucketed = steps.step_cost(net, "data", 2, 4, compute, FREE, buckets=[["fc"]])
    assert bucketed == data
    # model parallel: 2 + 2/2 = 3; only the logits move: all-gather of 2·4·4 = 32 bytes: 16
    model = steps.step_cost(net, "model", 2, 4, compute, FREE)
    assert (model.compute, model.communication) == (3.0, 16.0)
    # with latency (α=1, β=2): the logits' all-gather alone, 1·α + (1/2)·32/β = 9; no
    # all-reduce is charged where there are no gradients to reduce
    slow = steps.step_cost(net, "model", 2, 4, compute, SLOW, buckets=[["fc"]])
    assert (slow.communication, slow.hidden) == (9.0, 0.0)


def two_linear_net() -> Sequential:
    """Linear(2 -> 2) "a", then Linear(2 -> 2) "b": 6 parameters (24 bytes) and 4 MACs each."""
    rng = np.random.default_rng(0)
    return Sequential([("a", Linear(2, 2, rng=rng)), ("b", Linear(2, 2, rng=rng))], (2,), "two")


def test_bucket_schedule_hand_worked() -> None:
    net = two_linear_net()
    # N=2, B=4, 1.5 s per image: 3 s of compute per rank, 2/3 of it backward: 2 s, 1 s per
    # layer (equal MACs); b's backward runs first, in [0, 1], then a's in [1, 2]
    compute = steps.Compute(per_image_s=1.5)
    # α=0, β=24: a bucket of one layer (24 bytes) takes 2·(1/2)·24/24 = 1 s on 2 ranks.
    # b's bucket runs in [1, 2], hidden behind a's backward; a's in [2, 3], after it
    one_s = pj.Network("1 s per layer", latency_s=0.0, bandwidth=24.0)
    timings, backward_s = steps.bucket_schedule(net, "data", 2, 4, compute, one_s, [["b"], ["a"]])
    assert backward_s == pytest.approx(2.0)
    assert [(t.layers, t.ready_s, t.start_s, t.end_s) for t in timings] == pytest.approx(
        [(("b",), 1.0, 1.0, 2.0), (("a",), 2.0, 2.0, 3.0)]
    )
    cost = steps.step_cost(net, "data", 2, 4, compute, one_s, buckets=[["b"], ["a"]])
    assert (cost.communication, cost.hidden) == pytest.approx((2.0, 1.0))
    # β=12: 2 s per bucket; b's runs in [1, 3], so a's (ready at 2) waits for the link: [3, 5]
    two_s = pj.Network("2 s per layer", latency_s=0.0, bandwidth=12.0)
    timings, _ = steps.bucket_schedule(net, "data", 2, 4, compute, two_s, [["b"], ["a"]])
    assert [(t.start_s, t.end_s) for t in timings] == pytest.approx([(1.0, 3.0), (3.0, 5.0)])
    cost = steps.step_cost(net, "data", 2, 4, compute, two_s, buckets=[["b"], ["a"]])
    assert (cost.communication, cost.hidden) == pytest.approx((4.0, 1.0))
    # one bucket of both: ready when the backward ends, nothing hidden, as with no buckets
    both = steps.step_cost(net, "data", 2, 4, compute, two_s, buckets=[["b", "a"]])
    assert both.hidden == 0 and both.total == pytest.approx(
        steps.step_cost(net, "data", 2, 4, compute, two_s).total
    )


def test_the_hybrid_buckets_only_its_conv_layers(paper: Sequential) -> None:
    compute = steps.Compute(per_image_s=0.01)
    timings, backward_s = steps.bucket_schedule(
        paper, "hybrid", 4, 128, compute, pj.TEN_GBE, PAPER_BUCKETS
    )
    assert [t.layers for t in timings] == [("conv5", "conv4"), ("conv3", "conv2"), ("conv1",)]
    # conv1's bucket is ready only when the backward ends: it waits for nothing else to hide
    assert timings[-1].ready_s == pytest.approx(backward_s)
    one = steps.step_cost(paper, "hybrid", 4, 128, compute, pj.TEN_GBE, buckets=ONE_BUCKET)
    assert one.hidden == 0


def test_overlap_hides_at_most_all_but_the_last_bucket(paper: Sequential) -> None:
    compute = steps.Compute(per_image_s=0.01, per_step_s=0.1)
    for scheme in ("data", "hybrid"):
        for ranks in (2, 8, 64):
            for net in (pj.TEN_GBE, pj.INFINIBAND_100G):
                cost = steps.step_cost(
                    paper, scheme, ranks, 128, compute, net, buckets=PAPER_BUCKETS
                )
                timings, _ = steps.bucket_schedule(
                    paper, scheme, ranks, 128, compute, net, PAPER_BUCKETS
                )
                last = timings[-1].end_s - timings[-1].start_s
                assert 0 <= cost.hidden <= cost.communication - last + 1e-12  # round-off
                # one bucket for the whole gradient hides nothing: the same as no buckets
                one = steps.step_cost(paper, scheme, ranks, 128, compute, net, buckets=ONE_BUCKET)
                plain = steps.step_cost(paper, scheme, ranks, 128, compute, net)
                assert one.hidden == 0 and one.total == pytest.approx(plain.total)


def test_buckets_must_cover_the_reduced_layers_in_backward_order(paper: Sequential) -> None:
    compute = steps.Compute(per_image_s=0.01)
    for bad in ([["fc8"], ["fc7"]], [list(reversed(ONE_BUCKET[0]))], [*PAPER_BUCKETS, ["fc8"]]):
        with pytest.raises(ValueError, match=r"buckets must hold each layer.*expected \['fc8'"):
            steps.step_cost(paper, "data", 2, 128, compute, pj.TEN_GBE, buckets=bad)


def test_data_parallel_communication_grows_and_compute_shrinks_with_ranks(
    paper: Sequential,
) -> None:
    compute = steps.Compute(per_image_s=0.01)
    costs = [steps.step_cost(paper, "data", n, 128, compute, pj.TEN_GBE) for n in (1, 2, 4, 8, 16)]
    assert all(a.compute > b.compute for a, b in pairwise(costs))
    assert all(a.communication < b.communication for a, b in pairwise(costs))


def test_unlimited_bandwidth_and_no_latency_give_linear_scaling(paper: Sequential) -> None:
    ideal = pj.Network("ideal", latency_s=0.0, bandwidth=1e30)  # finite: the Network checks
    compute = steps.Compute(per_image_s=0.01)
    ranks = [1, 2, 4, 8]
    for scheme in pj.SCHEMES:
        rate = steps.images_per_s(paper, scheme, ranks, 128, compute, ideal)
        assert rate == pytest.approx(np.array(ranks) * rate[0])
        assert steps.efficiency_limit(ranks, rate) == 0


def test_compute_fit_recovers_a_line_and_efficiency_limit_finds_the_drop() -> None:
    fit = steps.Compute.fit([2, 4, 8], [0.3 + 0.05 * b for b in (2, 4, 8)])
    assert fit.per_image_s == pytest.approx(0.05) and fit.per_step_s == pytest.approx(0.3)
    # efficiencies 1, 0.9, 0.75, 0.5 (throughput / (N × 10))
    assert steps.efficiency_limit([1, 2, 4, 8], np.array([10.0, 18.0, 30.0, 40.0]), 0.6) == 8
    assert steps.efficiency_limit([1, 2, 4, 8], np.array([10.0, 18.0, 30.0, 40.0]), 0.4) == 0


def test_fit_allreduce_network_recovers_latency_and_bandwidth() -> None:
    sizes = [8.0, 8e6, 6.2e7]
    # 4 ranks, α = 3 µs, β = 2 GB/s: t = 6·α + (6/4)·S/β
    times = [6 * 3e-6 + 1.5 * size / 2e9 for size in sizes]
    net = pj.fit_allreduce_network("shm", 4, sizes, times)
    assert net.latency_s == pytest.approx(3e-6) and net.bandwidth == pytest.approx(2e9)
    with pytest.raises(ValueError, match=r"ranks must be >= 2, got 1"):
        pj.fit_allreduce_network("shm", 1, sizes, times)
    with pytest.raises(ValueError, match=r"two or more different sizes"):
        pj.fit_allreduce_network("shm", 2, [8.0], [1.0])


# -- bad input ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: pj.Network("x", 1e-6, 0.0), ValueError, r"Network 'x'.*bandwidth"),
        (lambda: pj.Network("x", -1.0, 1e9), ValueError, r"Network 'x'.*latency_s"),
        (lambda: pj.allreduce_time(8, 0, SLOW), ValueError, r"ranks must be >= 1, got 0"),
        (lambda: pj.allgather_time(-1, 2, SLOW), ValueError, r"nbytes"),
        (lambda: pj.allreduce_time(8, 2.5, SLOW), TypeError, r"ranks must be an int"),
        (lambda: pj.exchanges(linear_net(), "pipeline", 2), ValueError, r"scheme must be one of"),
        (lambda: pj.exchanges("alexnet", "data", 2), TypeError, r"must be a Sequential, got str"),
        (lambda: steps.Compute(per_image_s=0.0), ValueError, r"Compute: per_image_s"),
        (lambda: steps.Compute.fit([8, 8], [1.0, 1.1]), ValueError, r"two or more different batch"),
        (lambda: steps.Compute.fit([2, 8], [1.0, 0.5]), ValueError, r"must grow with the batch"),
        (lambda: steps.efficiency_limit([2, 4], np.ones(2)), ValueError, r"must start at 1"),
    ],
)
def test_bad_input_is_refused_with_a_message(call, error, message) -> None:
    with pytest.raises(error, match=message):
        call()


def test_a_net_without_a_linear_layer_is_refused() -> None:
    convs = Sequential([("a", Conv2d(3, 4, 3, rng=np.random.default_rng(0)))], (3, 5, 5), "convs")
    with pytest.raises(ValueError, match="convs has no Linear layer"):
        pj.gradient_bytes(convs, "hybrid")
