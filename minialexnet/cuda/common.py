"""What every kernel wrapper shares: host-side precondition checks and launch arithmetic, and
the base classes of the GPU layers (``CudaLayer``; ``WeightedCuda`` for Linear and Conv2d).

Kernels cannot raise a readable error, and an out-of-range index on a GPU reads garbage or
kills the context. So every public wrapper in ``minialexnet.cuda`` checks its arguments *here,
on the host*, before it launches anything, and says which function, which argument, what was
expected and what it got.

Every index a kernel computes must fit in 32 bits (the fast GEMM indexes with unsigned 32-bit
integers, see ``gemm.py``): ``check_device`` refuses arrays of 2**32 elements or more.
"""

from __future__ import annotations

from typing import Any

import numpy as np

THREADS = 256  # threads per block for the one-thread-per-element kernels
MAX_ELEMENTS = 2**32 - 1  # indices are unsigned 32-bit in the fast kernels


def ceil_div(a: int, b: int) -> int:
    """The smallest integer >= a / b (for positive b)."""
    return -(-a // b)


def launch(count: int) -> tuple[int, int]:
    """(blocks, threads per block) for one thread per element of ``count`` elements.

    Blocks hold ``THREADS`` threads, or fewer (a whole number of 32-thread warps) when the
    whole job is smaller: a real GPU doesn't care, and the simulator, which starts one OS
    thread per CUDA thread, runs tiny test shapes that much faster.
    """
    threads = min(THREADS, 32 * max(1, ceil_div(count, 32)))
    return max(1, ceil_div(count, threads)), threads


def is_device_array(x: Any) -> bool:
    """True for a Numba device array (a real one or the simulator's stand-in)."""
    return hasattr(x, "copy_to_host") and hasattr(x, "shape") and hasattr(x, "dtype")


def check_device(
    fn: str,
    argument: str,
    x: Any,
    shape: tuple[int, ...] | None = None,
    dtype: type | np.dtype = np.float32,
) -> Any:
    """Check that ``x`` is a C-contiguous device array of ``dtype`` (and ``shape`` if given).

    Raises TypeError for a host array or the wrong dtype, ValueError for the wrong shape, a
    non-contiguous view or an array too large for 32-bit indices. Returns ``x``.
    """
    if not is_device_array(x):
        raise TypeError(
            f"{fn}: {argument} must be a device array (numba.cuda.to_device / device_array), "
            f"got {type(x).__name__}"
        )
    if np.dtype(x.dtype) != np.dtype(dtype):
        raise TypeError(f"{fn}: {argument} must have dtype {np.dtype(dtype)}, got {x.dtype}")
    if shape is not None and tuple(x.shape) != tuple(shape):
        raise ValueError(f"{fn}: {argument} must have shape {tuple(shape)}, got {tuple(x.shape)}")
    if not x.is_c_contiguous():
        raise ValueError(f"{fn}: {argument} must be C-contiguous (a view with gaps was given)")
    if x.size > MAX_ELEMENTS:
        raise ValueError(
            f"{fn}: {argument} has {x.size} elements; the kernels index with 32 bits "
            f"(at most {MAX_ELEMENTS})"
        )
    return x


def check_same_shape(fn: str, names: tuple[str, ...], arrays: tuple[Any, ...]) -> None:
    """Raise ValueError naming the arguments unless all the arrays have one shape."""
    shapes = [tuple(a.shape) for a in arrays]
    if len(set(shapes)) != 1:
        given = ", ".join(f"{n}{s}" for n, s in zip(names, shapes, strict=True))
        raise ValueError(f"{fn}: {', '.join(names)} must have the same shape, got {given}")


# ----------------------------------------------------------------------------------------
# The kernels' launch signatures, for the PTX float64 scan (``ptx.py``).
# ----------------------------------------------------------------------------------------
# Kernels are compiled lazily, for the argument types of their first launch. The wrappers in
# this package pass float32 scalars as np.float32 and everything else as Python ints, so each
# kernel has exactly one signature, written beside it with ``@register``; ``ptx.py`` compiles
# every registered kernel for it and fails on any float64 instruction, and on a real GPU the
# tests check that no kernel was compiled for another signature.
SIGNATURES: dict[str, tuple[Any, str]] = {}


def register(signature: str) -> Any:
    """Decorator for a ``@cuda.jit`` kernel: record its launch signature under its name."""

    def remember(kernel: Any) -> Any:
        name = f"{kernel.py_func.__module__.rsplit('.', 1)[-1]}.{kernel.py_func.__name__}"
        SIGNATURES[name] = (kernel, signature)
        return kernel

    return remember


def f32(value: float) -> np.float32:
    """A float32 scalar for a kernel argument (a Python float would compile a float64 one)."""
    return np.float32(value)


# ----------------------------------------------------------------------------------------
# The common shape of a GPU layer.
# ----------------------------------------------------------------------------------------
def feature_major(per_image: tuple[int, ...], batch: int) -> tuple[int, ...]:
    """Device shape of a batch: (C, H, W) maps -> (C, N, H, W); (D,) vectors -> (D, N)."""
    return (per_image[0], batch, *per_image[1:])


class CudaLayer:
    """The GPU twin of one ``minialexnet.layers`` layer: the same math on device arrays.

    ``forward(x, training)`` takes a feature-major device batch (``layout.py``) and returns
    ``self.out``; ``backward(dout)`` writes dL/dparams into ``self.grads`` (overwriting, as on
    the CPU) and returns ``self.dx``, or None when ``needs_input_grad`` is False. Buffers are
    allocated for the batch size of the first call and reused while it stays the same:
    device allocation is slow, and a training step would otherwise do dozens.
    """

    def __init__(self, name: str, in_shape: tuple[int, ...], out_shape: tuple[int, ...]):
        self.name = name
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)
        self.params: dict[str, Any] = {}
        self.grads: dict[str, Any] = {}
        self.needs_input_grad = True
        self.batch = 0
        self.out: Any = None
        self.dx: Any = None

    def resize(self, batch: int) -> None:
        """Make the buffers fit ``batch`` images (a no-op when they already do)."""
        if batch == self.batch:
            return
        from numba import cuda

        self.batch = batch
        self.out = cuda.device_array(feature_major(self.out_shape, batch), np.float32)
        self.dx = None
        if self.needs_input_grad:
            self.dx = cuda.device_array(feature_major(self.in_shape, batch), np.float32)
        self.allocate(batch)

    def allocate(self, batch: int) -> None:
        """Buffers besides ``out`` and ``dx`` (im2col columns, masks, ...)."""

    def check_input(self, x: Any) -> int:
        """Check a feature-major input batch; return its batch size, after resizing to it."""
        if not is_device_array(x) or x.ndim != len(self.in_shape) + 1:
            raise ValueError(
                f"{self.name}: x must be a feature-major device batch of per-image shape "
                f"{self.in_shape}, got {type(x).__name__} of shape {getattr(x, 'shape', None)}"
            )
        batch = x.shape[1]
        check_device(self.name, "x", x, feature_major(self.in_shape, batch))
        self.resize(batch)
        return batch

    def check_dout(self, dout: Any) -> None:
        """Check dL/d(output) against the last forward's batch."""
        if self.batch == 0:
            raise RuntimeError(f"{self.name}: backward called before forward")
        check_device(self.name, "dout", dout, feature_major(self.out_shape, self.batch))

    def forward(self, x: Any, training: bool = True) -> Any:
        raise NotImplementedError

    def backward(self, dout: Any) -> Any:
        raise NotImplementedError


def device_params(
    layer: Any, params: dict[str, Any] | None, grads: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A layer's parameters and gradients on the device: the arrays given (the trainer passes
    views into its flat buffers), or else copies of the host parameters and fresh arrays."""
    from numba import cuda  # here, as in CudaLayer.resize: importing this module needs no Numba

    if params is None:
        params = {name: cuda.to_device(np.ascontiguousarray(p)) for name, p in layer.params.items()}
    if grads is None:
        grads = {name: cuda.device_array_like(p) for name, p in params.items()}
    for name, host in layer.params.items():
        check_device(layer.name, f"params[{name!r}]", params[name], host.shape)
        check_device(layer.name, f"grads[{name!r}]", grads[name], host.shape)
    return params, grads


class WeightedCuda(CudaLayer):
    """A layer with W and b whose products run on ``gemm``: the base of Linear and Conv2d.

    ``params``/``grads``: device arrays to use (the trainer's flat buffers), else copies;
    ``gemm_version``: ``gemm.VERSIONS`` (None: the fastest, ``gemm.BEST``).
    """

    def __init__(
        self,
        layer: Any,
        in_shape: tuple[int, ...],
        params: dict[str, Any] | None = None,
        grads: dict[str, Any] | None = None,
        gemm_version: int | None = None,
    ) -> None:
        from .gemm import BEST  # here, not at the top: gemm imports this module

        super().__init__(layer.name, in_shape, layer.output_shape(in_shape))
        self.params, self.grads = device_params(layer, params, grads)
        self.gemm_version = BEST if gemm_version is None else gemm_version
