# %% [markdown]
# # Lesson 11: beyond one GPU: the paper's two-GPU split, data against model parallelism
#
# AlexNet was trained on two GTX 580s, and the network's shape shows it: Fig. 2 of the paper
# draws two towers, one per GPU, each with half of every layer's kernels, that talk to each
# other only at a few layers (§3.2). This lesson
#
# 1. counts what crosses between the two GPUs, from the network's own shapes, and what the
#    whole net would have needed on one 3 GB card;
# 2. runs data-parallel training and the paper's split for real, on two MPI processes;
# 3. compares the two ways to share a step — move the gradients (data parallel) or move the
#    activations (model parallel) — as the batch grows, and the hybrid Krizhevsky proposed two
#    years later ("One weird trick for parallelizing convolutional neural networks", 2014);
# 4. projects all three to 64 ranks with the α–β (latency–bandwidth) model of communication.
#
# Everything is computed by `minialexnet.distributed.projection` from the layer objects; the
# networks' speeds in section 4 are assumptions, stated there. **Deviation from the paper:**
# the "ranks" here are processes on this machine's CPU cores, talking through MPI's shared
# memory, not GPUs on a PCIe bus.

# %%
import json
import math
import os
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

import numpy as np

from minialexnet import build_alexnet, summarize
from minialexnet.distributed import projection as pj
from minialexnet.distributed import step_time as st
from minialexnet.distributed.data_parallel import make_buckets
from minialexnet.optim import SGD
from minialexnet.plots import quick_mode, save_figure
from minialexnet.plots.parallel import plot_bytes_vs_batch, plot_exchange_bytes, plot_projection
from minialexnet.step import train_step
from minialexnet.timing import one_thread, timed_calls

QUICK = quick_mode()
BATCH = 128  # the paper's global batch [P §5]
paper = build_alexnet("paper")

# %% [markdown]
# ## 1. The two-GPU split as the paper drew it
#
# Each GPU held half of conv1's 96 kernels, half of conv2's 256, and so on. conv2, conv4 and
# conv5 are grouped convolutions (`groups=2`, lesson 01): a kernel on GPU g reads only the maps
# GPU g made, so nothing moves. conv3 and the three FC layers read *both* halves: before each
# of them, every GPU must receive the other's half of the input, and in the backward send the
# gradient for it back. So must the loss, which needs all 1000 logits of an image.
# `pj.exchanges` finds these points from the layers (a conv whose groups the ranks split
# evenly stays local; any other conv or Linear reads across ranks). LRN is counted as local:
# each GPU normalises its own maps (were LRN's 5-map window to reach across the boundary, two
# maps per side would move as well).

# %%
split = pj.exchanges(paper, "model", 2)
print(f"{'reads both halves':<18}{'its input':<12}{'floats/image':>13}{'MB/rank/step':>14}")
for e in split:
    print(
        f"{e.layer:<18}{e.source:<12}{e.floats_per_image:>13,}{e.sent_per_rank(BATCH) / 1e6:>14.2f}"
    )
exchanged = sum(e.sent_per_rank(BATCH) for e in split)
gradients = pj.gradient_bytes(paper, "data")
print(
    f"\nper step of {BATCH} images each GPU sends {exchanged / 1e6:.1f} MB of activations; "
    f"its weights' gradients are {gradients / 1e6:.1f} MB ({paper.num_params():,} float32 "
    "numbers), which this split never sends: each GPU updates only its own half"
)

# %% [markdown]
# Why split at all? The paper: "a single GTX 580 GPU has only 3GB of memory, which limits the
# maximum size of the networks that can be trained on it", and 1.2 million training images are
# enough to train networks too big for one GPU. What does a step at batch 128 hold? The
# weights, their gradients and SGD's momentum (one float32 each per parameter), every layer's
# output (kept for the backward) and, during the backward, the gradients of two of them at a
# time (a layer's output and its input):

# %%
GB = 2**30
s = summarize(paper)
acts = [r.activation_bytes * BATCH for r in s.rows]
memory = {
    "weights": 4 * s.total_params,
    "gradients": 4 * s.total_params,
    "momentum": 4 * s.total_params,
    f"activations (batch {BATCH})": sum(acts),
    "activation gradients in flight": sum(sorted(acts)[-2:]),
}
for what, nbytes in memory.items():
    print(f"{what:<32}{nbytes / GB:6.2f} GiB")
total_gb = sum(memory.values()) / GB
print(f"{'total':<32}{total_gb:6.2f} GiB; split over two GPUs: {total_gb / 2:.2f} GiB each")
conv_share, fc_mac_share = s.conv_param_share, 1 - s.conv_mac_share
print(
    f"the FC layers hold {1 - conv_share:.1%} of the parameters and do {fc_mac_share:.1%} of "
    f"the MACs (ungrouped net: {1 - summarize(build_alexnet('ungrouped')).conv_param_share:.1%})"
)

# %% [markdown]
# By this count the paper's net fits on one 3 GB card (1.88 GiB at batch 128, 0.94 GiB per
# GPU when split), so the count alone does not show the split was forced. It is a lower bound
# — it leaves out the convolutions' im2col workspace, the batches of images staged on the card
# and whatever the 2012 driver and cuda-convnet kept besides — but the paper's own argument is
# about the size of the net: memory "limits the maximum size of the networks". What the
# split bought is measured against a smaller net, not a slower one: the two-GPU net beat a
# net with half as many kernels in each conv layer, trained on one GPU, by 1.7% top-1 and
# 1.2% top-5 error (§3.2).
#
# The bars below are the exchange points of the table above, forward and backward; the right
# panel puts them beside what the other schemes of section 3 send on the same two ranks.

# %%
points = {}  # label -> (forward, backward) bytes one rank sends there per step
for e in split:
    forward = pj.allgather_sent(e.gathered_bytes(BATCH), e.ranks)
    points[f"into {e.layer}\n{e.floats_per_image:,} floats/image"] = (
        forward,
        forward if e.backward else 0.0,
    )
totals = {scheme: pj.bytes_sent_per_rank(paper, scheme, 2, BATCH) for scheme in pj.SCHEMES}
save_figure(plot_exchange_bytes(points, totals, BATCH), "11_exchange_bytes")

# %% [markdown]
# ## 2. Two real processes
#
# `python -m minialexnet train --distributed`, launched by `mpiexec -n 2`, trains data
# parallel: each rank takes half of every global batch, and the gradients are summed with
# MPI's all-reduce before every update (`minialexnet/distributed/data_parallel.py` says how).
# The cells below run, each process on one thread (two ranks use this machine's two cores):
#
# * one epoch of the `mini` net on the digits, as a plain single process and on two ranks;
# * the data-parallel benchmark (`python -m minialexnet.distributed.bench`), which times the
#   steps, says where their time goes and how many bytes each rank sent, and times MPI's raw
#   all-reduce at a few sizes: from those we fit this machine's own α and β;
# * the paper's split on two ranks (`minialexnet/distributed/model_parallel.py`): its
#   benchmark (`python -m minialexnet.distributed.model_parallel_bench`) counts the bytes each
#   rank sent at each exchange point, which must equal what `pj.exchanges` computed in section
#   1, and times a step; the full run also trains one epoch with `train --variant paper
#   --model-parallel` (the paper's net at 227×227 on one core per rank: a few minutes).

# %%
MPIEXEC = Path(sys.executable).with_name("mpiexec")
ONE_THREAD = {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")}


def mpi_missing() -> str | None:
    """Why the MPI runs cannot happen here, or None when they can."""
    if not MPIEXEC.exists():
        return f"no mpiexec next to {sys.executable}"
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed"
    return None


def launch(ranks: int, args: list[str], *, one_thread_env: bool, timeout_s: float = 600) -> str:
    """``python -m minialexnet...`` with ``args`` on ``ranks`` processes (``mpiexec`` when
    more than one); its standard output. ``one_thread_env`` limits each to one thread through
    the environment (for ``train``; the benchmarks take ``--threads 1`` and set the thread
    pools themselves, which a one-thread environment would forbid them to widen)."""
    cmd = [sys.executable, "-m", *args]
    if ranks > 1:
        cmd = [str(MPIEXEC), "-n", str(ranks), *cmd]
    env = {**os.environ, **ONE_THREAD} if one_thread_env else None
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
    if run.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{run.stderr[-2000:]}")
    return run.stdout


def epoch_rate(ranks: int, extra: list[str], out: Path) -> float:
    """Training images/s of one epoch of ``train`` on ``ranks`` processes."""
    train = ["minialexnet", "train", "--epochs", "1", "--out", str(out), *extra]
    launch(ranks, train, one_thread_env=True)
    return json.loads((out / "history.json").read_text())["epochs"][0]["images_per_s"]


def bench(ranks: int, runs: list[tuple[str, int]], sizes_mb: list[float], out: Path) -> dict:
    """The data-parallel benchmark's figures (its ``--json``) for ``runs`` (variant, global
    batch) and the all-reduce of ``sizes_mb``."""
    variants, batches = zip(*runs, strict=True)
    args = ["minialexnet.distributed.bench", "--variant", *variants, "--threads", "1"]
    args += ["--batch", *map(str, batches), "--steps", "3" if QUICK else "5"]
    launch(ranks, [*args, "--sizes", *map(str, sizes_mb), "--json", str(out)], one_thread_env=False)
    return json.loads(out.read_text())


nets = {"mini": build_alexnet("mini"), "paper": paper}
# The gradient buckets data_parallel.py all-reduces, by layer name (fc8's first), made on a
# fresh copy of each net: make_buckets points the net's gradients into its buffers.
BUCKETS = {
    variant: [[name for name, _ in b.layers] for b in make_buckets(build_alexnet(variant))]
    for variant in nets
}
missing = mpi_missing()
shared_memory = None  # this machine's MPI as an α-β network, fitted below when MPI is here
if missing:
    print(f'skipping the MPI runs: {missing} (pip install -e ".[mpi]" installs both)')
else:
    with tempfile.TemporaryDirectory() as tmp:
        rates = {
            "1 process": epoch_rate(1, ["--variant", "mini"], Path(tmp, "one")),
            "2 ranks": epoch_rate(2, ["--variant", "mini", "--distributed"], Path(tmp, "two")),
        }
        print(
            f"train, mini, one epoch: {rates['1 process']:.0f} images/s on 1 process, "
            f"{rates['2 ranks']:.0f} on 2 ranks ({rates['2 ranks'] / rates['1 process']:.2f}x)"
        )
        # one rank at two batch sizes per net (for the compute fit), two ranks at the larger
        sizes = {"mini": (32, 16)} if QUICK else {"mini": (32, 16), "paper": (16, 8)}
        single = bench(1, [(v, b) for v, bs in sizes.items() for b in bs], [8e-6], Path(tmp, "1"))
        pair_sizes = [8e-6, 8.0] if QUICK else [8e-6, 8.0, 62.0]
        pair = bench(2, [(v, bs[0]) for v, bs in sizes.items()], pair_sizes, Path(tmp, "2"))
        # the paper's split: its own benchmark (bytes per exchange, step times), and in the
        # full run one epoch of `train --model-parallel` (the paper net at 227: minutes)
        traffic_batch, split_batch = (16, 2) if QUICK else (BATCH, 8)
        split_args = ["minialexnet.distributed.model_parallel_bench", "--threads", "1"]
        split_args += ["--traffic-batch", str(traffic_batch), "--batch", str(split_batch)]
        split_args += ["--steps", "1" if QUICK else "3", "--json", str(Path(tmp, "split"))]
        launch(2, split_args, one_thread_env=False)
        split_run = json.loads(Path(tmp, "split").read_text())
        if not QUICK:
            split_rate = epoch_rate(
                2, ["--variant", "paper", "--model-parallel"], Path(tmp, "split_train")
            )
            print(f"train, paper, the paper's split on 2 ranks: {split_rate:.1f} images/s")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average {load:.1f} on {os.cpu_count()} cores (other programs share them)")
    reduces = pair["allreduce"]
    for r in reduces:
        print(
            f"all-reduce of {r['bytes']:>11,} bytes on 2 ranks: "
            f"{r['time_s']['median'] * 1e3:8.3f} ms (median)"
        )
    shared_memory = pj.fit_allreduce_network(
        "shared memory here (fitted)",
        2,
        [r["bytes"] for r in reduces],
        [r["time_s"]["median"] for r in reduces],
    )
    print(
        f"fitted: α = {shared_memory.latency_s * 1e6:.1f} µs, "
        f"β = {shared_memory.bandwidth / 1e9:.2f} GB/s (shared memory, ring formula)"
    )
    print(
        f"\n{'net':<7}{'batch':>6}{'ranks':>6}{'step ms':>9}{'fwd':>7}{'bwd':>7}{'wait':>7}"
        f"{'upd':>7}{'grad MB':>9}{'computed':>10}{'projected ms':>14}{'its wait':>10}"
    )
    projected = {}  # (variant, ranks) -> projected step seconds
    for run in single["steps"] + pair["steps"]:
        net = nets[run["variant"]]
        mine = [r for r in single["steps"] if r["variant"] == run["variant"]]
        try:
            compute = st.Compute.fit(
                [r["batch"] for r in mine], [r["step_s"]["median"] for r in mine]
            )
            cost = st.step_cost(
                net,
                "data",
                run["ranks"],
                run["batch"],
                compute,
                shared_memory,
                buckets=BUCKETS[run["variant"]],
            )
            step, wait = cost.total, cost.communication - cost.hidden
        except ValueError:  # a busy machine: the larger batch was not slower, nothing to fit
            step = wait = math.nan
        projected[(run["variant"], run["ranks"])] = step
        print(
            f"{run['variant']:<7}{run['batch']:>6}{run['ranks']:>6}"
            f"{run['step_s']['median'] * 1e3:>9.1f}"
            + "".join(
                f"{run[k] * 1e3:>7.1f}" for k in ("forward_s", "backward_s", "wait_s", "update_s")
            )
            + f"{run['gradient_bytes'] / 1e6:>9.2f}{pj.gradient_bytes(net, 'data') / 1e6:>10.2f}"
            f"{step * 1e3:>14.1f}{wait * 1e3:>10.1f}"
        )
    for variant, (batch, half) in sizes.items():
        two = next(r for r in pair["steps"] if r["variant"] == variant)
        one = next(r for r in single["steps"] if r["variant"] == variant and r["batch"] == half)
        ratio = two["step_s"]["median"] / projected[(variant, 2)]
        phases = ", ".join(
            f"{k[:-2]} {two[k] * 1e3:.0f} vs {one[k] * 1e3:.0f} ms"
            for k in ("forward_s", "backward_s", "update_s")
        )
        print(
            f"{variant}, 2 ranks at batch {batch}: measured {ratio:.2f}x the projection; each "
            f"rank's {half} images against one rank's: {phases}"
        )
    if any(math.isnan(t) for t in projected.values()):
        print("(nan: the one-rank step did not grow with the batch on this busy machine: no fit)")
    print(f"\nthe paper's split on 2 ranks, batch {traffic_batch}: MB each rank sent per step")
    for e in pj.exchanges(paper, "model", 2):
        name = "logits" if e.layer == "loss" else e.layer  # the split's name for that exchange
        sent = split_run["traffic"][name]
        measured = sent["forward_bytes"] + sent["backward_bytes"]
        computed = e.sent_per_rank(traffic_batch)
        print(f"  into {name:<7} measured {measured / 1e6:6.2f}   computed {computed / 1e6:6.2f}")
    times = split_run["times"]
    print(
        f"forward + backward at batch {split_batch}: split on 2 ranks {times['split']:.3f} s "
        f"({times['split_exchange_s']:.3f} s in exchanges), one process on one thread "
        f"{times['one_process_1_threads']:.3f} s"
    )

# %% [markdown]
# Reading the table: "grad MB" is what the benchmark all-reduced, "computed" what
# `pj.gradient_bytes` derives from the layers (they agree), "wait" the part of the
# communication the backward did not hide. "projected" is the α–β model (`st.step_cost`)
# with the one-rank compute fitted from the one-rank rows, the fitted α and β and the
# buckets `data_parallel.py` makes, each all-reduced once the backward of its layers is done;
# "its wait" is the part of those all-reduces it projects the backward cannot hide (conv1's
# bucket, ready only when the backward ends, never is). On one rank it only reproduces the
# fit; on two it predicts. The measured wait can be longer than projected: a pending
# all-reduce advances only when the rank calls MPI (between layers: `data_parallel.py`), and
# on one machine it copies through the memory the backward is using.
#
# The first line is the `train` command itself, on one process and on two ranks; the last
# lines say how far the measured two-rank step is from the projection. Where it is slower,
# compare each rank's phases with one rank's on the same number of images: the α–β model
# charges a rank for its own compute and the network only, while two ranks on one machine
# share its memory system (and its two cores with whatever else runs: the load average
# above). The paper's net, with 61 million parameters, makes the SGD update (a pass over
# every weight and its momentum) and the 244 MB all-reduce (which runs during the backward)
# wait on memory bandwidth; the small `mini` net barely touches it. Ranks on separate
# machines would each have their own memory: on one machine, read section 4's shared-memory
# column as optimistic.
#
# ## 3. Move the gradients or move the activations?
#
# The two schemes pay for different things. Data parallel sends every gradient once per step,
# whatever the batch: 244 MB for the paper's net. Model parallel sends activations: a fixed
# number of floats *per image*, so its bytes grow with the batch. The hybrid takes, for each
# part of the net, the cheaper one: conv layers have few weights and large maps, so they all-
# reduce their gradients; FC layers have most of the weights and small inputs, so they send
# activations. Here, on 2 ranks, as the batch grows:

# %%
batches = np.unique(np.geomspace(1, 65536, 49).astype(int))
curves = {
    scheme: np.array([pj.bytes_sent_per_rank(paper, scheme, 2, int(b)) for b in batches])
    for scheme in pj.SCHEMES
}
conv_grads = pj.allreduce_sent(pj.gradient_bytes(paper, "hybrid"), 2)
fc_grads = pj.allreduce_sent(gradients, 2) - conv_grads
hybrid_points = pj.exchanges(paper, "hybrid", 2)
fc_acts = np.array([sum(e.sent_per_rank(int(b)) for e in hybrid_points) for b in batches])
groups = {
    "conv layers": {
        "gradients": np.full(len(batches), conv_grads),
        "activations": curves["model"] - fc_acts,
    },
    "FC layers": {"gradients": np.full(len(batches), fc_grads), "activations": fc_acts},
}
for part, series in groups.items():
    per_image = series["activations"][0] / batches[0]
    grads = series["gradients"][0]
    print(
        f"{part:<12}: all-reducing gradients {grads / 1e6:7.1f} MB per rank per step; "
        f"exchanging activations {per_image / 1e3:6.1f} kB per image: cheaper below batch "
        f"{grads / per_image:,.0f}"
    )
model_per_image = curves["model"][0] / batches[0]  # model parallel's bytes grow with the batch
print(
    "the whole net: model parallel sends more than data parallel from batch "
    f"{curves['data'][0] / model_per_image:,.0f}"
)
save_figure(
    plot_bytes_vs_batch(batches, curves, groups, ranks=2, mark_batch=BATCH), "11_bytes_vs_batch"
)

# %% [markdown]
# The printed crossings: for the conv layers (where, split as the paper did, only conv3's
# input moves), exchanging activations is cheaper than all-reducing their 9.3 MB of gradients
# only below a batch of 54; for the FC layers, it is
# cheaper all the way to a batch of 3,274. The paper's 128 lies between, so the conv layers
# should move gradients and the FC layers activations: that is Krizhevsky's "one weird trick".
# His own estimate (2014): the conv layers hold about 5% of the parameters and do 90–95% of
# the computation, the FC layers the reverse (here: 96.2% of the parameters, 8.1% of the
# MACs). For the whole net the paper's split sends less than data parallel up to a batch of
# 997: at 128, 31 MB against 244 MB.
#
# ## 4. Projecting to 64 ranks: the α–β model
#
# A message of m bytes costs α + m/β: a latency α and a bandwidth β. On N ranks a ring
# all-reduce of S bytes costs 2(N−1)·α + 2(N−1)/N·S/β, and an all-gather of S bytes in all
# (N−1)·α + (N−1)/N·S/β (Thakur, Rabenseifner and Gropp, 2005). `pj.step_cost` adds this to
# one rank's compute, which is **measured** here: a training step of the `paper` net on one
# core at a few batch sizes, fitted as a fixed part per step (the SGD update and the FC
# weights' reads, charged by the share of parameters a rank holds) plus a part per image.

# %%
one_thread(numba=True)  # one rank = one core
sizes = (2, 4) if QUICK else (4, 8, 16)
step_s = []
optimizer = SGD(paper)
for b in sizes:
    rng = np.random.default_rng(b)
    x = rng.standard_normal((b, *paper.input_shape)).astype(np.float32)
    y = rng.integers(0, 1000, b)
    times = timed_calls(partial(train_step, paper, optimizer, x, y), repeats=1 if QUICK else 3)
    step_s.append(float(np.median(times)))
    print(f"paper net, one core, batch {b:>2}: {step_s[-1] * 1e3:7.0f} ms per step")
try:
    cpu = st.Compute.fit(list(sizes), step_s)
except ValueError:  # the steps did not grow with the batch: a busy machine
    cpu = st.Compute(per_image_s=step_s[-1] / sizes[-1])
    print("(the steps did not grow with the batch: the machine was busy; the largest batch's")
    print(" step is taken as all per-image time, which overstates how well ranks divide it)")
print(
    f"fit: {cpu.per_step_s * 1e3:.0f} ms per step + {cpu.per_image_s * 1e3:.1f} ms per image; "
    f"batch {BATCH} on one core: {(cpu.per_step_s + BATCH * cpu.per_image_s):.1f} s"
)

# %% [markdown]
# Two of the networks are **assumed**, not measured: 10 Gb/s Ethernet (β = 1.25 GB/s, α ≈
# 20 µs over TCP) and 100 Gb/s InfiniBand (β ≈ 12 GB/s, α ≈ 2 µs). The third, where MPI ran
# in section 2, is this machine's shared memory with the α and β fitted there between 2 ranks,
# taken on to N as if every rank had such a link of its own (the cores of a real 64-core
# machine would share one memory system: read that column as optimistic). A second row of
# panels swaps this CPU for GPU-speed compute: 20.6 ms for the forward and backward of a
# batch of 128, PyTorch's float32 on an H200 as quoted in docs/facts.md (a reported figure,
# not one measured here, and for the ungrouped net, which does more MACs than the paper's:
# if anything the paper's net would compute faster and communication would weigh more), all
# of it taken as per image.
# Every rank count divides the batch of 128 evenly; compute is assumed to split perfectly.

# %%
RANKS = [1, 2, 4, 8, 16, 32, 64]
NETWORKS = (pj.TEN_GBE, pj.INFINIBAND_100G) + ((shared_memory,) if shared_memory else ())
H200_STEP_S = 0.0206  # PyTorch fp32, batch 128, one H200 (docs/facts.md, "GPU notes"): a quote
computes = {"this CPU": cpu, "H200 speed": st.Compute(per_image_s=H200_STEP_S / BATCH)}
panels = {}  # (compute, network) -> scheme -> overlapped? -> images/s for each N
print(f"images/s, each gradient bucket all-reduced once its layers' backward is done; N = {RANKS}")
for label, compute in computes.items():
    for net in NETWORKS:
        panel = panels[(label, net.name)] = {}
        for scheme in pj.SCHEMES:
            panel[scheme] = {
                overlap: st.images_per_s(
                    paper,
                    scheme,
                    RANKS,
                    BATCH,
                    compute,
                    net,
                    buckets=BUCKETS["paper"] if overlap else None,
                )
                for overlap in (False, True)
            }
            rate = panel[scheme][True]
            limit = st.efficiency_limit(RANKS, rate)
            print(
                f"{label:<11}{net.name:<28}{scheme:<7}{''.join(f'{r:7.0f}' for r in rate)}  "
                f"best N={RANKS[int(np.argmax(rate))]:<3}"
                + (f"under 50% efficiency from N={limit}" if limit else "never under 50%")
            )
        hybrid, data = panel["hybrid"][True], panel["data"][True]
        ahead = [n for n, h, d in zip(RANKS, hybrid, data, strict=True) if h > d]
        print(f"{'':<39}the hybrid is ahead of data parallel at N = {ahead}")


def rate_at(label: str, net: pj.Network, scheme: str, ranks: int, overlap: bool = True) -> float:
    """Projected images/s of ``scheme`` on ``ranks`` ranks, from the panels above."""
    return panels[(label, net.name)][scheme][overlap][RANKS.index(ranks)]


def overlap_gain(label: str, net: pj.Network, scheme: str, ranks: int) -> str:
    """Images/s all-reduced after the backward -> in overlapped buckets, and the change."""
    after, overlapped = (rate_at(label, net, scheme, ranks, o) for o in (False, True))
    return f"{scheme} {after:,.0f} -> {overlapped:,.0f} ({overlapped / after - 1:+.1%})"


buckets = ", ".join("+".join(reversed(b)) for b in BUCKETS["paper"])
print(f"\nimages/s, all-reduced after the backward -> in the buckets {buckets}, overlapped:")
for label in computes:
    for net in (pj.TEN_GBE, pj.INFINIBAND_100G):
        for n in (2, 64):
            gains = "; ".join(overlap_gain(label, net, scheme, n) for scheme in ("data", "hybrid"))
            print(f"  {label:<11}{net.name:<21}N={n:<3}{gains}")
print(f"model parallel against the hybrid over {pj.INFINIBAND_100G.name}, images/s")
for label in computes:
    print(
        f"  {label:<11}"
        + "; ".join(
            f"N={n}: {rate_at(label, pj.INFINIBAND_100G, 'model', n):,.0f} against "
            f"{rate_at(label, pj.INFINIBAND_100G, 'hybrid', n):,.0f}"
            for n in (2, 16, 64)
        )
    )
save_figure(plot_projection(RANKS, panels, BATCH), "11_projection")

# %% [markdown]
# What the projection says. The rows at H200 speed use only quoted and assumed figures, so
# their numbers are the same on every run; the rows at this CPU's speed come from this run's
# measurement and move with it.
#
# * **Data parallel stops scaling.** Read the "under 50% efficiency" column of its rows at
#   this CPU's speed: its bytes per rank do not shrink as N grows (2(N−1)/N of 244 MB tends
#   to 488 MB) while each rank's share of the compute does, and every rank repeats the whole
#   SGD update, the fitted per-step part that no number of ranks divides.
# * **The hybrid is ahead where the "ahead" lines say**: at H200 speed at every N ≥ 2 over
#   both assumed networks (those rows do not move between runs; the rows at this CPU's speed
#   do: read their lines), and its "under 50%" column shows how much further it scales than
#   data parallel at this CPU's speed.
# * **Faster compute makes communication the whole story.** At H200 speed (6,214 images/s on
#   one GPU) data parallel is slower than one GPU at every N: 5,374 images/s on two ranks
#   over InfiniBand, 644 over 10 GbE, where one all-reduce of the gradients takes ~0.2 s
#   against a 21 ms step. The hybrid over InfiniBand peaks at N = 16 (31,988 images/s,
#   5.1×); over 10 GbE it never beats one GPU (6,147 images/s at N = 2).
# * **Overlap hides only what the buckets let it.** A bucket starts once the backward of its
#   layers is done, so it hides only behind the backward of the layers before it in the net,
#   and conv1's bucket, ready when the backward ends, hides behind nothing. At H200 speed the
#   backward is short (7 ms at N = 2), yet worth overlapping: the fc8, fc7 and fc6 buckets,
#   96% of the bytes, are ready about 8% of the way into it, so over InfiniBand at N = 2
#   data parallel goes from 4,179 images/s with one all-reduce after the backward to 5,374
#   overlapped (+28.6%), and the hybrid over 10 GbE from 5,062 to 6,147 (+21.4%). Over 10
#   GbE data parallel gains only 3.3% (623 to 644): its 0.2 s all-reduce dwarfs any backward. At
#   N = 64, where each rank's backward is a fraction of a millisecond, the buckets' own
#   latencies (2(N−1)·α each) cost more than they hide: the hybrid drops from 28,496 to
#   26,370 images/s over InfiniBand (−7.5%), from 3,137 to 2,801 over 10 GbE (−10.7%). At this
#   CPU's speed the backward lasts seconds: at N = 2 the all-reduce is too small against the
#   compute for overlap to show, and as N grows it hides more of a growing share (the
#   printed N = 64 lines; in the figure's top row the data-parallel lines part over 10 GbE).
# * **Model parallel** keeps up with the hybrid over InfiniBand only at this CPU's speed,
#   where compute dwarfs every message (its printed lines), and only because compute is
#   assumed to split perfectly: at N = 64, conv1's 96 kernels would be 1.5 per rank. At H200
#   speed it does not: 9,901 against 11,538 images/s at N = 2, 9,147 against 31,988 at N =
#   16. Over 10 GbE it falls behind, since beyond two ranks the grouped conv2, conv4 and
#   conv5 must exchange maps as well.
#
# What the model leaves out: per-rank batches get small (2 images at N = 64, where a GPU is
# mostly idle; the linear-scaling rule of exercise 4 is the usual way out), contention when
# many ranks share a switch, and the reduction's own arithmetic.
#
# ## Exercises
#
# 1. **Another crossing point.** Make conv4 read both halves: rebuild the `paper` net with
#    `Sequential` (as lesson 01 re-wires layers), its conv4 replaced by `Conv2d(384, 384, 3,
#    1, 1)` (groups=1), and recount with `pj.exchanges(net, "model", 2)`. How many more MB per
#    step would the paper's GPUs have sent, and how many more parameters and MACs would conv4
#    have? Measure the extra step time on one process with `train_step`. Which lines of
#    `ModelParallelNet` would change to run that net split over two ranks?
# 2. **Latency or bandwidth?** For each network of section 4, at what message size does α
#    equal m/β? The paper's net has 16 parameter arrays: if each were all-reduced on its own
#    instead of in the buckets printed in section 4, how much would the 2(N−1)·α terms add per
#    step at N = 64? Project `st.step_cost` with one bucket per layer (`buckets=[["fc8"],
#    ["fc7"], ...]`) and with one bucket of all: what do the buckets of `data_parallel.py`
#    buy, fewer latencies or overlap, and where does each win?
# 3. **Another bandwidth.** Rerun the projection at 25 Gb/s Ethernet (β ≈ 3 GB/s, α ≈ 10 µs)
#    and over a GPU-to-GPU link of β ≈ 100 GB/s, α ≈ 5 µs (both assumed). Sweep β: from which
#    bandwidth does data parallel keep 50% efficiency at N = 8 with H200-speed compute?
# 4. **The linear scaling rule with warm-up** (Goyal et al. 2017, "Accurate, Large Minibatch
#    SGD"): for a global batch of 1024 instead of 128, multiply the learning rate by 8 (0.01 →
#    0.08) and ramp it up linearly from 0.01 over the first 5 epochs. Project the three schemes
#    at batch 1024: how do section 3's crossings and section 4's limits move? Why does a larger
#    batch favour data parallel?
