"""Every GEMM version against a float64 NumPy product, in every transpose pattern.

Runs in Numba's CUDA simulator (tests/conftest.py) on shapes that are not multiples of any
tile and span more than one block, and unchanged on a real GPU (MINIALEXNET_REAL_GPU=1).
Outputs are filled with NaN before each launch, so an element a kernel forgets to write fails.
Tolerance: float32 products of N(0, 1) values summed over K terms, each rounding adds up to
~6e-8 relative: |error| <= 1e-6 * K is a loose bound (the observed error is ~10x smaller).
"""

from __future__ import annotations

import numpy as np
import pytest
from numba import cuda

from minialexnet.cuda.gemm import VERSIONS, choose_splits, gemm, gemm_flops, reference

# (M, N, K) per version: each crosses its version's tile edge in M or N and ends K mid-tile.
SHAPES = {1: (18, 17, 9), 2: (18, 17, 21), 3: (66, 5, 19), 4: (5, 130, 11), 5: (9, 6, 37)}


def operands(rng, batch, M, N, K, trans_a, trans_b):
    a = rng.standard_normal((batch, K, M) if trans_a else (batch, M, K)).astype(np.float32)
    b = rng.standard_normal((batch, N, K) if trans_b else (batch, K, N)).astype(np.float32)
    return a, b


def run_gemm(a, b, M, N, **kwargs):
    c = cuda.to_device(np.full((a.shape[0], M, N), np.nan, np.float32))
    gemm(cuda.to_device(a), cuda.to_device(b), c, **kwargs)
    return c.copy_to_host()


@pytest.mark.parametrize(
    "trans_a,trans_b", [(False, False), (False, True), (True, False), (True, True)]
)
@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_every_version_matches_numpy(version, trans_a, trans_b):
    M, N, K = SHAPES[version]
    batch = 1 if trans_a or trans_b else 2  # a batch of 2 (a conv's groups) once per version
    rng = np.random.default_rng(version * 4 + 2 * trans_a + trans_b)
    a, b = operands(rng, batch, M, N, K, trans_a, trans_b)
    splits = 2 if version == 5 else None  # v5: K = 37 in slices of 24 and 13
    got = run_gemm(a, b, M, N, trans_a=trans_a, trans_b=trans_b, version=version, splits=splits)
    np.testing.assert_allclose(got, reference(a, b, trans_a, trans_b), rtol=0, atol=1e-6 * K)


def test_two_dimensional_operands_are_one_batch():
    rng = np.random.default_rng(7)
    a, b = operands(rng, 1, 3, 4, 5, False, False)
    c = cuda.to_device(np.full((3, 4), np.nan, np.float32))
    gemm(cuda.to_device(a[0]), cuda.to_device(b[0]), c)
    np.testing.assert_allclose(c.copy_to_host(), reference(a, b, False, False)[0], atol=5e-6)


def test_split_k_with_more_slices_than_blocks_of_k():
    """More slices asked for than K has BK-deep steps: the empty slices are dropped."""
    rng = np.random.default_rng(8)
    a, b = operands(rng, 1, 4, 3, 10, False, True)
    got = run_gemm(a, b, 4, 3, trans_b=True, version=5, splits=7)
    np.testing.assert_allclose(got, reference(a, b, False, True), atol=1e-5)


def test_shape_errors_name_the_operands():
    a = cuda.to_device(np.zeros((4, 5), np.float32))
    b = cuda.to_device(np.zeros((6, 3), np.float32))
    c = cuda.to_device(np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"gemm: op\(a\) is 4x5 and op\(b\) is 6x3"):
        gemm(a, b, c)
    with pytest.raises(TypeError, match="gemm: b must be a device array"):
        gemm(a, np.zeros((5, 3), np.float32), c)
    with pytest.raises(TypeError, match="gemm: a must have dtype float32, got float64"):
        gemm(cuda.to_device(np.zeros((4, 5))), b, c)
    with pytest.raises(ValueError, match="gemm: version must be one of"):
        gemm(a, cuda.to_device(np.zeros((5, 3), np.float32)), c, version=9)
    with pytest.raises(ValueError, match="gemm: splits must be an int >= 1"):
        gemm(a, cuda.to_device(np.zeros((5, 3), np.float32)), c, splits=0)
    with pytest.raises(ValueError, match="gemm: a, b, c must have the same batch size"):
        gemm(cuda.to_device(np.zeros((2, 4, 5), np.float32)), b, c)


def test_choose_splits_fills_the_gpu_only_when_needed():
    sms = 132
    # 4096^3 has 32 x 32 = 1024 tiles: already more blocks than multiprocessors.
    assert choose_splits(1, 4096, 4096, 4096, sms) == 1
    # fc6 forward at batch 128: C is 4096 x 128, 32 tiles -> 9 slices (288 blocks).
    assert choose_splits(1, 4096, 128, 9216, sms) == 9
    # conv1's dW: C is 96 x 363 (3 tiles), K = 128*55*55: capped at 64 slices.
    assert choose_splits(1, 96, 363, 128 * 55 * 55, sms) == 64
    # A short K is never cut below 512 per slice.
    assert choose_splits(1, 64, 64, 1000, sms) == 1


def test_gemm_flops_counts_multiply_and_add():
    assert gemm_flops(2, 3, 4, 5) == 2 * 2 * 3 * 4 * 5
