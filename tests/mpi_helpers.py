"""What the MPI tests share: finding the right ``mpiexec``, one thread per rank, the launch's
guard against a hang (``tests/test_distributed.py``, ``tests/test_model_parallel.py``)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

MPI_TIMEOUT_S = 120  # a guard against a hang of the launch itself, not a speed limit
# 2 ranks on 2 cores: one thread each
ONE_THREAD = {"OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def mpiexec() -> str:
    """The ``mpiexec`` of the MPI that mpi4py uses (the mpich wheel puts it beside python; one
    of another MPI first on PATH would start independent one-rank runs), or a skip naming what
    is missing."""
    pytest.importorskip("mpi4py", reason="the MPI tests need the mpi extra (mpi4py, mpich)")
    found = Path(sys.executable).with_name("mpiexec")
    path = str(found) if found.exists() else shutil.which("mpiexec")
    if path is None:
        pytest.skip("no mpiexec beside python or on PATH (pip install mpich)")
    return path
