"""The paper's two-GPU split on two MPI ranks (``minialexnet.distributed.model_parallel``).

The MPI tests launch ``mpiexec -n 2`` on ``tests/mpi_model_parallel_worker.py``, which runs one
forward and backward of the split and of the one-process net on the same weights and batch
(dropout on: the masks must agree too) and reports each array's largest difference relative to
the one-process array's largest magnitude. Skipped, by name, without the ``mpi`` extra.

Tolerances (relative to each array's largest magnitude):

* float64: 1e-12 (measured ~1e-14). The split computes the same sums as one process in another
  order (conv3's and the FC layers' input gradients are two partial sums added by the
  reduce-scatter; a rank's conv2/conv4/conv5 are ungrouped convolutions, which the fast engine
  runs by Winograd from two images up where the grouped one-process conv runs im2col).
* float32: 1e-5 (measured ~1e-6 on the 2-core machine), with the split's convolutions forced to
  im2col. Not bit-exact for the reasons above; each float32 addition rounds at ~6e-8. Winograd
  is turned off in float32 because its larger round-off (F(3x3, 5x5) on conv2: ~5e-6 against
  im2col's ~5e-7) tipped one ReLU or max-pool decision in this batch the other way, after which
  conv1-conv3's gradients differed by 1e-2: a different (equally valid) rounding, not a
  different function. The float64 comparison covers the Winograd path.

The non-MPI tests build the split in this process with a stand-in for the communicator (rank
and size only): everything they check happens before the first collective.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from mpi_helpers import MPI_TIMEOUT_S, ONE_THREAD, mpiexec

from minialexnet.distributed.comm import Comm
from minialexnet.distributed.model_parallel import ModelParallelNet
from minialexnet.layers import Conv2d, Linear, LocalResponseNorm
from minialexnet.model import build_alexnet
from minialexnet.train import TrainConfig, build_model

WORKER = Path(__file__).with_name("mpi_model_parallel_worker.py")
TOL = {"float32": 1e-5, "float64": 1e-12}
PARAMS = [f"{layer}.{p}" for layer in ("conv1", "conv2", "conv3", "conv4", "conv5") for p in "Wb"]
PARAMS += [f"{layer}.{p}" for layer in ("fc6", "fc7", "fc8") for p in "Wb"]


def on_two_ranks(tmp_path: Path, *args: str) -> dict:
    """The worker's report (rank 0's JSON) for ``args``."""
    out = tmp_path / "report.json"
    done = subprocess.run(
        [mpiexec(), "-n", "2", sys.executable, str(WORKER), str(out), *args],
        capture_output=True,
        text=True,
        timeout=MPI_TIMEOUT_S,
        env={**os.environ, **ONE_THREAD},  # 2 ranks on 2 cores: one thread each
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


def fake_comm(rank: int = 0, size: int = 2) -> SimpleNamespace:
    """Rank and size, no MPI: enough for what a split does before its first collective."""
    return SimpleNamespace(rank=rank, size=size, is_root=rank == 0)


def hand_count(variant: str, batch: int, itemsize: int, *, lrn: bool | None = None) -> dict:
    """Bytes one rank sends per step, from the one-process net's shapes: at every layer that
    reads both halves (an ungrouped conv after conv1, every FC layer), half of its input in
    the forward's all-gather and half again in the backward's reduce-scatter; half the logits
    forward only (the loss is computed on both ranks, so their gradient needs no exchange)."""
    net = build_alexnet(variant, lrn=lrn)
    names = list(net.layers)
    count = {}
    for i, name in enumerate(names[1:], start=1):
        layer = net.layers[name]
        if (isinstance(layer, Conv2d) and layer.groups == 1) or isinstance(layer, Linear):
            half = int(np.prod(net.shapes[names[i - 1]])) // 2
            count[name] = 2 * batch * half * itemsize
    count["logits"] = batch * net.shapes[names[-1]][0] // 2 * itemsize
    return count


def check_report(report: dict, variant: str, batch: int, lrn: bool | None = None) -> None:
    for dtype, result in report.items():
        assert result["same_start"], f"{dtype}: the halves are not the one-process weights"
        assert result["scatter_kept_params"], f"{dtype}: scatter_full(gather_full(p)) != p"
        assert result["bad_scatter_stopped_both"], f"{dtype}: a rank went on after a bad scatter"
        classes = build_alexnet(variant).shapes["fc8"][0]
        assert result["bad_scatter_message"] == (
            f"scatter_full: fc8.b must have shape ({classes},), got ({classes - 1},)"
        )
        rank0, rank1 = result["losses"]
        assert rank0 == rank1, f"{dtype}: the ranks computed different losses"
        assert abs(rank0 - result["one_loss"]) <= TOL[dtype] * abs(result["one_loss"])
        assert sorted(result["errors"]) == sorted(["logits", *PARAMS])
        worst = {k: e for k, e in result["errors"].items() if not e <= TOL[dtype]}
        assert not worst, f"{dtype}: beyond {TOL[dtype]}: {worst}"
        itemsize = np.dtype(dtype).itemsize
        assert result["bytes_sent"] == hand_count(variant, batch, itemsize, lrn=lrn)


def test_the_split_equals_the_one_process_paper_net(tmp_path):
    report = on_two_ranks(tmp_path, "--dtype", "float32", "float64", "--batch", "2")
    check_report(report, "paper", 2)
    # Where the paper's GPUs talked, and nowhere else.
    assert list(report["float32"]["bytes_sent"]) == ["conv3", "fc6", "fc7", "fc8", "logits"]


def test_a_net_without_lrn_splits_with_an_exchange_into_every_ungrouped_conv(tmp_path):
    # mini has groups=1 everywhere: conv2-conv5 read both halves too. Batch 3: odd.
    report = on_two_ranks(
        tmp_path, "--variant", "mini", "--no-lrn", "--dtype", "float64", "--batch", "3"
    )
    check_report(report, "mini", 3, lrn=False)
    assert list(report["float64"]["bytes_sent"]) == [
        "conv2",
        "conv3",
        "conv4",
        "conv5",
        "fc6",
        "fc7",
        "fc8",
        "logits",
    ]


def test_each_rank_holds_its_half_of_every_layer_as_the_papers_gpu_did():
    # Rank 1 of the paper net: the second half of the full net's kernels and units, each with
    # the paper's per-GPU shape (Fig. 2: 48 kernels of 11x11x3; 128 of 5x5x48; 192 of
    # 3x3x256; 192 of 3x3x192; 128 of 3x3x192; 2048, 2048 and 500 units).
    full = build_alexnet("paper", seed=3).params()
    half = ModelParallelNet(fake_comm(rank=1), variant="paper", seed=3)
    shapes = {name: p.shape for name, p in half.params().items() if name.endswith(".W")}
    assert shapes == {
        "conv1.W": (48, 3, 11, 11),
        "conv2.W": (128, 48, 5, 5),
        "conv3.W": (192, 256, 3, 3),
        "conv4.W": (192, 192, 3, 3),
        "conv5.W": (128, 192, 3, 3),
        "fc6.W": (2048, 9216),
        "fc7.W": (2048, 4096),
        "fc8.W": (500, 4096),
    }
    for name, p in half.params().items():
        np.testing.assert_array_equal(p, full[name][p.shape[0] :], err_msg=name)
    assert [e.into for e in half.exchanges] == ["conv3", "fc6", "fc7", "fc8", "logits"]
    lrn = [half.layers["norm1"], half.layers["norm2"]]
    assert all(isinstance(n, LocalResponseNorm) and n.groups == 1 for n in lrn)
    assert half.num_params() * 2 == sum(p.size for p in full.values())


def test_the_paper_variant_normalises_each_half_of_the_maps_apart():
    net = build_alexnet("paper", dropout=0)
    assert (net.layers["norm1"].groups, net.layers["norm2"].groups) == (2, 2)
    assert build_alexnet("ungrouped", dropout=0).layers["norm1"].groups == 1


@pytest.mark.parametrize("size", [1, 3])
def test_a_world_of_other_than_two_ranks_is_refused(size):
    with pytest.raises(ValueError, match=f"exactly 2 ranks \\(mpiexec -n 2\\), got {size}"):
        ModelParallelNet(fake_comm(size=size), variant="mini", lrn=False)


def test_a_variant_whose_lrn_crosses_the_halves_is_refused_by_layer():
    with pytest.raises(ValueError, match=r"norm1 normalises across all 32 maps .*groups=1"):
        ModelParallelNet(fake_comm(), variant="mini")


def test_an_odd_number_of_classes_is_refused():
    with pytest.raises(ValueError, match="fc8 has 11 output units, which 2 ranks cannot halve"):
        ModelParallelNet(fake_comm(), variant="mini", lrn=False, num_classes=11)


def test_bad_arguments_are_refused_before_any_exchange():
    net = ModelParallelNet(fake_comm(), variant="mini", lrn=False)
    with pytest.raises(RuntimeError, match="backward called before forward"):
        net.backward(np.zeros((1, 10), np.float32))
    with pytest.raises(ValueError, match=r"per-image shape \(3, 32, 32\), got \(3, 31, 32\)"):
        net.forward(np.zeros((1, 3, 31, 32), np.float32))
    with pytest.raises(TypeError, match="x has dtype float64"):
        net.forward(np.zeros((1, 3, 32, 32)))
    params = net.params()
    with pytest.raises(ValueError, match="gather_full: expected arrays named"):
        net.gather_full({"conv1.W": params["conv1.W"]})
    wrong = {**params, "fc6.W": params["fc6.W"][:-1]}
    with pytest.raises(
        ValueError, match=r"gather_full: fc6.W must have shape \(128, 576\), got \(127, 576\)"
    ):
        net.gather_full(wrong)
    with pytest.raises(
        TypeError, match=r"gather_full: fc7\.b must be a float32 array, got float64"
    ):
        net.gather_full({**params, "fc7.b": params["fc7.b"].astype(np.float64)})


def test_from_config_cuts_the_net_that_train_builds_for_the_same_config():
    # The run's own network (init "paper": N(0, 0.01) weights, biases 1 in conv2/4/5, fc6/7)
    # and rank 1's half of the split built from the same config: the second half of each array.
    config = TrainConfig(variant="mini", lrn=False, init="paper", seed=4, pool=(2, 2))
    full = build_model(config, num_classes=10).params()
    half = ModelParallelNet.from_config(fake_comm(rank=1), asdict(config), 10)
    assert half.params().keys() == full.keys()
    for name, p in half.params().items():
        np.testing.assert_array_equal(p, full[name][p.shape[0] :], err_msg=name)
    assert half.layers["pool1"].kernel_size == 2


def test_the_block_collectives_refuse_buffers_of_other_than_one_block_per_rank():
    # igather / iscatter / ireduce_scatter_block check their buffers before MPI sees them
    # (MPI would read or write past the smaller one); the check reads only the world's size.
    check = Comm._check_blocks.__get__(fake_comm(size=2))
    check("igather", "recv", np.zeros((4, 3)), np.zeros((2, 3)))  # two blocks of 6: fits
    with pytest.raises(ValueError, match=r"^igather: recv must hold 2 blocks of 6 elements "):
        check("igather", "recv", np.zeros((3, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"^iscatter: send must be a float32 array, got float64"):
        check("iscatter", "send", np.zeros((4, 3)), np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"^igather: recv must be a float64 array, got NoneType"):
        check("igather", "recv", None, np.zeros((2, 3)))
