"""Data-parallel training over MPI (``minialexnet.distributed``): 2 ranks train the run of one
process, checkpoints move between rank counts, rank 0 alone writes, a dead or hung rank ends
the run instead of hanging it, and a missing mpi4py is one clear line.

The MPI tests launch ``mpiexec -n 2`` on ``tests/mpi_worker.py`` (the mini net on 100 digits
per split, batch 25: uneven shards of 13 and 12 rows, dropout on) and compare its checkpoint
with one process's, run here. They need the ``mpi`` extra (mpi4py and an MPI: the ``test``
extra installs both) and are skipped, by name, without it.

Tolerance, 2 ranks against 1 process after one epoch (4 steps): every parameter and velocity
within 1e-5 × the array's largest magnitude. Not bit-exact because float32 sums come out in
another order: one process sums the 25 images' terms of each weight gradient inside one GEMM,
2 ranks sum 13 and 12 in theirs and then add the two (and the engine may pick another conv
algorithm for 13 images than for 25; the loss's softmax sums run over a C-ordered copy of the
logits, where NumPy adds in another order); each addition rounds at 2^-24 ≈ 6e-8 relative. Measured
on the 2-core machine: 1.4e-6 relative after 4 steps. The steps are few on purpose: a 1-ulp
difference can tip a unit's ReLU (or a max-pool's choice) the other way, after which the two
runs part by far more than round-off (seen: 4.5e-5 absolute in fc6 four steps later). What
must be exact is exact: the generators (the batch order, augmentation and the dropout layers'
draws, which shows every rank drew each whole-batch mask) and the epoch counters.

The paper's split (``--model-parallel``, ``train``'s side of it: its checkpoints are the
one-process net's, gathered on rank 0 and scattered back on resume): the ``paper`` net on 4
digits, one step, against one process within 5e-5 × each array's largest magnitude (measured:
2.2e-6; the split's conv2/4/5 are ungrouped convolutions computed another way than the grouped
ones of one process: ``model_parallel``'s docstring). ``tests/test_model_parallel.py`` tests
the split's forward and backward themselves.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import mpi_worker
import numpy as np
import pytest
from mpi_helpers import MPI_TIMEOUT_S, ONE_THREAD, mpiexec

from minialexnet.checkpoint import RunState
from minialexnet.distributed.comm import (
    LAUNCHER_SIZE_VARIABLES,
    DistributedError,
    check_launcher,
    report_failure,
)
from minialexnet.distributed.data_parallel import make_buckets, shard_counts, shard_rows
from minialexnet.distributed.shard_dropout import ShardedDropout
from minialexnet.layers import softmax_cross_entropy
from minialexnet.model import build_alexnet, engine_layers
from minialexnet.train import load_splits, train

WORKER = Path(__file__).with_name("mpi_worker.py")
RTOL = 1e-5  # of each array's largest magnitude (module docstring)
KILL_RANK_1 = ["--fail-rank", "1", "--fail-at", "2", "--fail", "kill"]  # at its 2nd step
HANG_RANK_1 = ["--fail-rank", "1", "--fail-at", "2", "--fail", "sleep"]
RAISE_ON_RANK_1 = ["--fail-rank", "1", "--fail-at", "2", "--fail", "raise"]


def launch(args: list[str], ranks: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, **ONE_THREAD}  # 2 ranks on 2 cores: one thread each
    return subprocess.run(
        [mpiexec(), "-n", str(ranks), sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=MPI_TIMEOUT_S,
        env=env,
    )


def on_two_ranks(out: Path, *extra: str, flag: str | None = "--distributed") -> RunState:
    """The worker's run on 2 ranks (data parallel unless ``extra`` says otherwise); its
    checkpoint."""
    done = launch([str(WORKER), str(out), *([flag] if flag else []), *extra])
    assert done.returncode == 0, done.stderr[-3000:]
    return RunState.load(out / "checkpoint.npz")


def in_one_process(
    out: Path,
    epochs: int = 1,
    resume: Path | None = None,
    limit: int = mpi_worker.LIMIT,
    **options: object,
) -> RunState:
    """The worker's run (``options``: its config's) in this process, without MPI; its
    checkpoint."""
    config = mpi_worker.config(str(out), epochs, **options)
    train(config, splits=load_splits(config, limit=limit), progress=False, resume=resume)
    return RunState.load(out / "checkpoint.npz")


def assert_same_run(got: RunState, expected: RunState, rtol: float = RTOL) -> None:
    for kind in ("params", "velocities"):
        for name, want in getattr(expected, kind).items():
            have = getattr(got, kind)[name]
            atol = rtol * float(np.abs(want).max())
            np.testing.assert_allclose(have, want, rtol=0, atol=atol, err_msg=f"{kind} {name}")
    assert (got.epoch, got.position) == (expected.epoch, expected.position)
    assert got.rng == expected.rng  # the batch order and augmentation: drawn alike
    assert got.dropout_rngs == expected.dropout_rngs  # every rank drew the whole-batch masks


# -- without MPI -------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [0, 1, 2, 7, 25, 128])
@pytest.mark.parametrize("size", [1, 2, 3, 8])
def test_shards_are_contiguous_cover_the_batch_and_differ_by_at_most_one_row(n, size):
    rows = [shard_rows(n, size, rank) for rank in range(size)]
    assert rows[0].start == 0 and rows[-1].stop == n
    assert all(a.stop == b.start for a, b in itertools.pairwise(rows))
    counts = shard_counts(n, size)
    assert counts == [r.stop - r.start for r in rows]
    assert max(counts) - min(counts) <= 1


@pytest.mark.parametrize("engine", ["reference", "fast"])
@pytest.mark.parametrize("bounds", [[0, 13, 25], [0, 0, 5, 5], [0, 2, 3, 5]])
def test_sharded_dropout_uses_its_rows_of_the_one_process_mask(engine, bounds):
    # bounds: the shards' edges; [0, 0, 5, 5] has ranks with no rows (a batch smaller than N)
    L = engine_layers(engine)
    n = bounds[-1]
    x = np.random.default_rng(0).standard_normal((n, 64)).astype(np.float32)
    dout = np.random.default_rng(1).standard_normal((n, 64)).astype(np.float32)
    whole = L.Dropout(0.5, seed=3)  # one process
    out, dx = whole.forward(x), whole.backward(dout)
    for start, stop in itertools.pairwise(bounds):
        rank = ShardedDropout(L.Dropout(0.5, seed=3), axis=0)  # each rank's copy of the layer
        np.testing.assert_array_equal(rank.forward(x[start:stop], start, n), out[start:stop])
        np.testing.assert_array_equal(rank.backward(dout[start:stop]), dx[start:stop])
        assert rank.layer.rng.bit_generator.state == whole.rng.bit_generator.state


def test_sharded_dropout_on_columns_uses_its_columns_of_the_one_process_mask():
    # the paper's split: each rank holds half of the units (axis 1)
    x = np.random.default_rng(0).standard_normal((6, 64))
    dout = np.random.default_rng(1).standard_normal((6, 64))
    whole = engine_layers("reference").Dropout(0.5, seed=3)
    out, dx = whole.forward(x), whole.backward(dout)
    for start in (0, 32):
        half = ShardedDropout(engine_layers("reference").Dropout(0.5, seed=3), axis=1)
        mine = slice(start, start + 32)
        np.testing.assert_array_equal(half.forward(x[:, mine], start, 64), out[:, mine])
        np.testing.assert_array_equal(half.backward(dout[:, mine]), dx[:, mine])


def test_sharded_dropout_refuses_a_part_outside_the_whole():
    sharded = ShardedDropout(engine_layers("reference").Dropout(0.5), axis=0)
    with pytest.raises(ValueError, match=r"a part of 4 along axis 0 must lie inside \[0, 5\), got"):
        sharded.forward(np.zeros((4, 8)), 2, 5)


@pytest.mark.parametrize(
    ("variant", "labels"),
    [
        # 1.85 MB: buckets of at most 1/64 of it (29 kB) close after each layer but fc8 (10 kB)
        ("mini", ["fc7..fc8", "fc6", "conv5", "conv4", "conv3", "conv2", "conv1"]),
        # 244 MB: fc8 (16 MB) alone as the first bucket, then 1/64 (3.8 MB) closes conv5+conv4
        # (4.4 MB) and conv3+conv2 (4.8 MB), leaving conv1's 0.14 MB as the one never hidden
        ("paper", ["fc8", "fc7", "fc6", "conv4..conv5", "conv2..conv3", "conv1"]),
    ],
)
def test_buckets_are_small_towards_conv1_so_little_of_the_all_reduce_is_left_exposed(
    variant, labels
):
    assert [b.label for b in make_buckets(build_alexnet(variant, engine="reference"))] == labels


def test_sequential_backward_calls_its_hook_after_each_layer_and_lets_another_run_a_layer():
    # the hook sees each layer once its gradients are filled, last layer first; a layer named
    # in run_by is run by that function instead (here: the layer's own backward, doubled)
    model = build_alexnet("mini", engine="reference", dropout=0, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32))
    _, dlogits = softmax_cross_entropy(model.forward(x), np.array([1, 2]))
    model.backward(dlogits)
    plain = {
        name: {k: g.copy() for k, g in layer.grads.items()} for name, layer in model.layers.items()
    }
    seen = []

    def after_layer(name, layer):
        seen.append(name)
        if name == "fc7":  # its gradients are final when the hook sees it
            np.testing.assert_array_equal(layer.grads["W"], plain["fc7"]["W"])

    fc8 = model.layers["fc8"]
    model.backward(
        dlogits,
        after_layer=after_layer,
        run_by={"fc7": lambda d: 2 * model.layers["fc7"].backward_unchecked(d)},
    )
    assert seen == list(reversed(model.layers))
    np.testing.assert_allclose(model.layers["fc6"].grads["W"], 2 * plain["fc6"]["W"], rtol=1e-12)
    np.testing.assert_array_equal(fc8.grads["W"], plain["fc8"]["W"])


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_every_gradient_ends_in_its_bucket(engine):
    # fast: the engine writes into the views it was given, nothing is copied; reference: it
    # makes new arrays, which Bucket.adopt copies in
    model = build_alexnet("mini", engine=engine, dropout=0)
    buckets = make_buckets(model, limit=100_000)  # small buckets: several, in backward order
    assert buckets[0].layers[0][0] == "fc8" and len(buckets) > 2
    assert buckets[-1].layers[-1][0] == "conv1"
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    _, dlogits = softmax_cross_entropy(model.forward(x), np.array([1, 2, 3]))
    model.backward(dlogits)
    for bucket in buckets:
        for name, layer in bucket.layers:
            for pname, view in bucket.views[name].items():
                assert (layer.grads[pname] is view) == (engine == "fast")
            bucket.adopt(name, layer)
            for pname, view in bucket.views[name].items():
                assert layer.grads[pname] is view and np.shares_memory(view, bucket.flat)
    # the flat buffers hold the gradient of an ordinary backward, in backward order
    reference = build_alexnet("mini", engine=engine, dropout=0)
    reference.forward(x)
    reference.backward(dlogits)
    expected = [
        g.ravel() for _, layer in reversed(reference.layers.items()) for g in layer.grads.values()
    ]
    np.testing.assert_array_equal(
        np.concatenate([b.flat for b in buckets]), np.concatenate(expected)
    )


def test_distributed_without_mpi4py_says_how_to_install_it(tmp_path):
    code = (
        "import sys; sys.modules['mpi4py'] = None\n"  # import mpi4py now fails
        "from minialexnet.cli import main\n"
        f"sys.exit(main(['train', '--distributed', '--out', {str(tmp_path / 'run')!r}]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == 'train: --distributed needs MPI: pip install -e ".[mpi]"'
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("variable", LAUNCHER_SIZE_VARIABLES)
def test_a_world_smaller_than_the_launcher_started_is_refused_naming_the_cause(
    monkeypatch, variable
):
    for other in LAUNCHER_SIZE_VARIABLES:
        monkeypatch.delenv(other, raising=False)
    monkeypatch.setenv(variable, "2")
    check_launcher(2)  # the world the launcher started
    with pytest.raises(
        DistributedError,
        match=rf"mpiexec started 2 processes \({variable}\), but MPI sees a world of 1: the "
        r"mpiexec is not the MPI mpi4py uses \(activate the virtual environment",
    ):
        check_launcher(1)


def test_an_error_before_the_world_exists_is_printed_by_the_launchers_rank_0_alone(
    monkeypatch, capsys
):
    monkeypatch.setenv("PMI_RANK", "1")
    report_failure(None, "train", ValueError("--distributed and --model-parallel: choose one"))
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("PMI_RANK", "0")
    report_failure(None, "train", ValueError("--distributed and --model-parallel: choose one"))
    assert capsys.readouterr().err == "train: --distributed and --model-parallel: choose one\n"


def test_an_open_mpi_launch_of_the_mpich_build_is_refused_before_anything_is_written(tmp_path):
    # what Open MPI's mpirun sets in each process it starts; mpi4py on MPICH ignores it and
    # sees a world of one
    pytest.importorskip("mpi4py", reason="the MPI tests need the mpi extra (mpi4py, mpich)")
    env = {**os.environ, **ONE_THREAD, "OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "0"}
    for variable in ("PMI_SIZE", "MV2_COMM_WORLD_SIZE"):
        env.pop(variable, None)
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "minialexnet", "train", "--distributed", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=MPI_TIMEOUT_S,
        env=env,
    )
    assert done.returncode == 2
    # mpi4py itself may warn first ("suspicious MPI execution environment"); ours is one line
    ours = [line for line in done.stderr.splitlines() if line.startswith("train:")]
    assert len(ours) == 1
    assert ours[0].startswith(
        "train: mpiexec started 2 processes (OMPI_COMM_WORLD_SIZE), but MPI sees a world of 1"
    )
    assert "Traceback" not in done.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ["--mpi-timeout", "5"],
            "train: --mpi-timeout: only with --distributed or --model-parallel, got 5 without them",
        ),
        (
            ["--distributed", "--mpi-timeout", "0"],
            "train: --mpi-timeout: expected a number of seconds > 0, got 0.0",
        ),
        (
            ["--distributed", "--mpi-timeout", "inf"],
            "train: --mpi-timeout: expected a number of seconds > 0, got inf",
        ),
    ],
)
def test_a_bad_mpi_timeout_is_refused_by_name(tmp_path, capsys, options, message):
    from minialexnet.cli import main

    assert main(["train", *options, "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.strip() == message
    assert not (tmp_path / "run").exists()


# -- on 2 ranks ------------------------------------------------------------------------------
def test_two_ranks_train_the_one_process_run(tmp_path):
    # the worker refuses any file written by rank 1 (mkstemp raises there): rank 0 alone wrote
    two = on_two_ranks(tmp_path / "two")
    one = in_one_process(tmp_path / "one")
    assert_same_run(two, one)
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == [
        "checkpoint.npz",
        "curves.png",
        "history.json",
    ]
    (epoch_two,), (epoch_one,) = two.history, one.history
    assert epoch_two["train_loss"] == pytest.approx(epoch_one["train_loss"], rel=1e-6)
    assert epoch_two["val_error"] == epoch_one["val_error"]  # the whole split, summed over ranks


def test_distributed_under_a_plain_python_runs_as_one_rank(tmp_path):
    # One rank's shard is the whole batch and its all-reduce leaves the gradient as it is; still
    # not bit-exact: the loss is taken on a C-ordered copy of the logits (MPI gathers rows), and
    # NumPy sums a row's exponentials in another order there than along the fast engine's
    # transposed logits.
    pytest.importorskip("mpi4py", reason="the MPI tests need the mpi extra (mpi4py, mpich)")
    done = subprocess.run(
        [sys.executable, str(WORKER), str(tmp_path / "alone"), "--distributed"],
        capture_output=True,
        text=True,
        timeout=MPI_TIMEOUT_S,
        env={**os.environ, **ONE_THREAD},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    alone = RunState.load(tmp_path / "alone" / "checkpoint.npz")
    assert_same_run(alone, in_one_process(tmp_path / "one"))


def test_checkpoints_resume_on_another_number_of_ranks(tmp_path):
    # a 2-rank checkpoint continues in one process as on 2 ranks ...
    two = tmp_path / "two"
    on_two_ranks(two)
    resumed_here = in_one_process(tmp_path / "two_then_one", 2, two / "checkpoint.npz")
    resumed_there = on_two_ranks(
        tmp_path / "two_then_two", "--epochs", "2", "--resume", str(two / "checkpoint.npz")
    )
    assert_same_run(resumed_there, resumed_here)
    # ... and a one-process checkpoint continues on 2 ranks as in one process
    one = tmp_path / "one"
    in_one_process(one)
    on_two = on_two_ranks(
        tmp_path / "one_then_two", "--epochs", "2", "--resume", str(one / "checkpoint.npz")
    )
    assert_same_run(on_two, in_one_process(tmp_path / "one_then_one", 2, one / "checkpoint.npz"))


def test_a_killed_rank_ends_the_run_with_an_error(tmp_path):
    done = launch(
        [str(WORKER), str(tmp_path / "run"), "--distributed", "--epochs", "2", *KILL_RANK_1]
    )  # would raise subprocess.TimeoutExpired, failing the test, if the others hung
    assert done.returncode != 0
    assert "Killed" in done.stdout + done.stderr or "signal 9" in done.stdout + done.stderr


def test_an_uncaught_exception_on_one_rank_ends_every_rank(tmp_path):
    done = launch([str(WORKER), str(tmp_path / "run"), "--distributed", *RAISE_ON_RANK_1])
    assert done.returncode == 1  # the others did not wait for the worker's 60 s deadline:
    assert "RuntimeError: injected failure on rank 1" in done.stderr  # MPI_Abort ended them
    assert "no answer from the other ranks" not in done.stderr


def test_a_rank_that_hangs_is_given_up_after_the_mpi_timeout(tmp_path):
    done = launch(
        [str(WORKER), str(tmp_path / "run"), "--distributed", "--mpi-timeout", "3", *HANG_RANK_1]
    )
    assert done.returncode == 1  # report_failure's status for a timeout (MPI_Abort ends rank 1)
    assert "mpi_worker: rank 0: no answer from the other ranks for 3 s during " in done.stderr
    assert "a rank died or hung (--mpi-timeout sets how long to wait)" in done.stderr


# -- the paper's split (``model_parallel``), trained: its checkpoints are one-process ones ---
PAPER = ["--variant", "paper", "--limit", "4", "--batch", "4"]  # one step an epoch
MP_RTOL = 5e-5  # one step (module docstring: measured 2.2e-6)
TINY_LR = 1e-9  # a step then moves nothing but the velocities' momentum (a resume's test)


@pytest.fixture(scope="module")
def paper_in_one_process(tmp_path_factory) -> Path:
    """The checkpoint of the ``paper`` net's one-step run in one process (made once)."""
    out = tmp_path_factory.mktemp("paper") / "one"
    in_one_process(out, limit=4, variant="paper", batch=4)
    return out / "checkpoint.npz"


def test_model_parallel_trains_the_one_process_paper_run(tmp_path, paper_in_one_process):
    split = on_two_ranks(tmp_path / "split", "--model-parallel", *PAPER, flag=None)
    one = RunState.load(paper_in_one_process)
    assert_same_run(split, one, rtol=MP_RTOL)  # gathered on rank 0, which alone wrote


def test_a_one_process_checkpoint_resumes_on_the_model_parallel_ranks(
    tmp_path, paper_in_one_process
):
    # With a tiny --lr the resumed step changes the parameters by the velocities' momentum
    # alone, the same numbers either way: any half scattered to the wrong rank, or stacked
    # back in the wrong order, would show at once.
    first = paper_in_one_process
    resumed = ["--epochs", "2", "--lr", str(TINY_LR), "--resume", str(first)]
    split = on_two_ranks(tmp_path / "split", "--model-parallel", *PAPER, *resumed, flag=None)
    one = in_one_process(
        tmp_path / "again", 2, first, limit=4, variant="paper", batch=4, lr=TINY_LR
    )
    assert_same_run(split, one, rtol=1e-6)


def test_the_cli_trains_on_two_ranks_and_rank_0_alone_reports(tmp_path):
    out = tmp_path / "run"
    done = launch(
        ["-m", "minialexnet", "train", "--distributed", "--epochs", "1", "--out", str(out)]
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("data parallel on 2 ranks") == 1
    assert done.stdout.count("test (centre crop): top-1 accuracy") == 1
    assert RunState.load(out / "checkpoint.npz").epoch == 1
