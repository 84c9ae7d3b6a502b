"""Training on more than one process, over MPI (mpi4py): ``mpiexec -n N python -m minialexnet
train --distributed`` (data parallel) or ``--model-parallel`` (the paper's two-GPU split).

Nothing here imports mpi4py at package import: ``comm.world()`` does, when a run asks for MPI,
so that the rest of minialexnet works without the ``mpi`` extra installed.
"""
