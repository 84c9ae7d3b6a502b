"""The one contract every layer follows, and the input checks they share.

The contract
------------
* ``forward(x)`` checks ``x`` (rank, channels, dtype, finiteness), computes the output and keeps
  on the layer exactly what ``backward`` needs (``self._cache``).
* ``backward(dout)`` takes dL/d(output) of the same shape and dtype as the forward's output,
  returns dL/d(input), and writes dL/d(param) into ``self.grads[name]``.
* **Gradients overwrite, they do not accumulate.** Each ``backward`` replaces ``self.grads``
  with the gradient of the last forward's batch. One forward, one backward, one optimizer step:
  that is all AlexNet needs, and it means ``zero_grad`` can never be forgotten. (The fast
  engine overwrites the same gradient arrays in place: copy them to keep them past the next
  backward of that layer.)
  (``tests/test_layer_contract.py`` checks it.)
* ``params`` and ``grads`` are dicts with the same keys (``"W"``, ``"b"``) and shapes.
* A layer keeps the dtype it is given: float32 in, float32 out; float64 in, float64 out.
  A layer with parameters refuses an input whose dtype differs from its parameters' (call
  ``astype`` on the layer or model first) rather than silently promoting.
* ``output_shape(in_shape)`` and ``macs(in_shape)`` work on per-image shapes (no batch axis),
  so the accounting never has to run the layer.

* Inside ``Sequential.no_grad()`` (``grad_enabled`` False) a forward is for inference only: a
  layer may keep nothing for a backward, and ``backward`` then raises instead of using stale
  data.

Two engines follow this contract with the same classes: this package (the reference, plain
NumPy, what students read and write) and ``minialexnet/fast`` (the tuned CPU engine, whose
classes subclass these and override only ``_forward``/``_backward``; tested equal).
The subclass writes ``_forward`` and ``_backward`` (the math); the public ``forward`` and
``backward`` here add the checks. ``Sequential`` checks the network input once and then calls
the ``_forward``/``_backward`` of each layer, since it has already checked at construction that
every layer's output fits the next one's input.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Shape = tuple[int, ...]

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_array(
    layer: str,
    argument: str,
    x: Any,
    *,
    ndim: int | tuple[int, ...],
    axes: str,
    expected_dtype: np.dtype | None = None,
    check_finite: bool = True,
    dout_of_forward: bool = False,
) -> np.ndarray:
    """Validate an array given to a layer; raise an error that names everything.

    ``ndim`` is the required rank, or a tuple of accepted ranks. ``axes`` spells the expected
    layout ("NCHW", "ND") and is quoted in the message.
    Raises TypeError for a non-array or a non-float dtype (or the wrong float dtype when
    ``expected_dtype`` is given: the layer's parameters' dtype, or with ``dout_of_forward`` the
    forward output's) and ValueError for the wrong rank or non-finite values.
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(
            f"{layer}: {argument} must be a numpy.ndarray of shape {axes}, got {type(x).__name__}"
        )
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{layer}: {argument} must be float32 or float64, got dtype {x.dtype} "
            f"(convert with x.astype(np.float32))"
        )
    if expected_dtype is not None and x.dtype != expected_dtype:
        if dout_of_forward:
            advice = f"the forward output was {expected_dtype}; pass {argument} as {expected_dtype}"
        else:
            advice = (
                f"the layer's parameters are {expected_dtype}; call .astype(np.{x.dtype}) on the "
                f"layer or model first"
            )
        raise TypeError(f"{layer}: {argument} has dtype {x.dtype} but {advice}")
    ranks = ndim if isinstance(ndim, tuple) else (ndim,)
    if x.ndim not in ranks:
        raise ValueError(
            f"{layer}: {argument} must have {' or '.join(map(str, ranks))} dimensions ({axes}), "
            f"got shape {x.shape}"
        )
    if check_finite and not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0]
        raise ValueError(
            f"{layer}: {argument} contains NaN or inf (first at index {tuple(int(i) for i in bad)})"
        )
    return x


def check_positive_int(layer: str, argument: str, value: Any, *, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise naming the layer and argument."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{layer}: {argument} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{layer}: {argument} must be >= {minimum}, got {value}")
    return int(value)


class Layer:
    """Base class: the public forward/backward with checks around the subclass's math.

    Subclasses set ``input_ndim``/``input_axes`` and implement ``_forward``, ``_backward``,
    ``output_shape``; layers with parameters fill ``self.params`` in ``__init__``.
    """

    input_ndim: int | tuple[int, ...] = 4  # the accepted rank(s) of x, batch axis included
    input_axes: str = "NCHW"

    def __init__(self) -> None:
        self.name = type(self).__name__
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.training = True
        # False for a network's first layer: nothing upstream wants dL/dx, so skip computing it.
        self.needs_input_grad = True
        # False while a forward is for inference only (``Sequential.no_grad``): an engine may
        # then keep nothing for a backward; ``backward`` refuses to run after such a forward.
        self.grad_enabled = True
        self._forward_kept_cache = False
        self._cache: Any = None
        self._out_shape: Shape | None = None
        self._out_dtype: np.dtype | None = None

    # -- public API with checks ---------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        """Check ``x``, compute the output, keep what ``backward`` needs."""
        check_array(
            self.name,
            "x",
            x,
            ndim=self.input_ndim,
            axes=self.input_axes,
            expected_dtype=self.dtype,
        )
        self.output_shape(x.shape[1:])
        return self.forward_unchecked(x)

    def backward(self, dout: np.ndarray) -> np.ndarray | None:
        """Check ``dout`` against the last forward's output; return dL/dx, fill ``grads``.

        Returns None when ``needs_input_grad`` is False.
        """
        if self._out_shape is None:
            raise RuntimeError(f"{self.name}: backward called before forward")
        self.check_backward_allowed()
        check_array(
            self.name,
            "dout",
            dout,
            ndim=len(self._out_shape),
            axes=f"shape {self._out_shape}",
            expected_dtype=self._out_dtype,
            dout_of_forward=True,
        )
        if dout.shape != self._out_shape:
            raise ValueError(
                f"{self.name}: dout must have the forward output's shape {self._out_shape}, "
                f"got {dout.shape}"
            )
        return self._backward(dout)

    def forward_unchecked(self, x: np.ndarray) -> np.ndarray:
        """Forward without input checks (``Sequential`` checks its input once)."""
        out = self._forward(x)
        self._out_shape, self._out_dtype = out.shape, out.dtype
        self._forward_kept_cache = self.grad_enabled
        return out

    def check_backward_allowed(self) -> None:
        """Raise RuntimeError naming the layer if the last forward ran under ``no_grad``."""
        if not self._forward_kept_cache:
            raise RuntimeError(
                f"{self.name}: backward after a forward run without gradients (no_grad); "
                "run the forward again outside no_grad first"
            )

    # -- what subclasses implement ------------------------------------------------------
    def _forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _backward(self, dout: np.ndarray) -> np.ndarray | None:
        raise NotImplementedError

    def output_shape(self, in_shape: Shape) -> Shape:
        """Per-image output shape for a per-image input shape (no batch axis).

        Also the layer's one shape check: it raises ValueError naming the layer when
        ``in_shape`` cannot be processed, so ``forward`` and ``Sequential`` both rely on it.
        """
        self.check_rank(in_shape)
        return in_shape

    def check_rank(self, in_shape: Shape) -> None:
        """Raise ValueError naming the layer if a per-image input shape has the wrong rank."""
        ranks = self.input_ndim if isinstance(self.input_ndim, tuple) else (self.input_ndim,)
        if len(in_shape) + 1 not in ranks:
            raise ValueError(
                f"{self.name}: input must be {self.input_axes}, got per-image shape {in_shape}"
            )

    def macs(self, in_shape: Shape) -> int:
        """Weight multiply-accumulates for one image (0 for layers without weights)."""
        return 0

    # -- parameters, modes, dtype -------------------------------------------------------
    @property
    def dtype(self) -> np.dtype | None:
        """The parameters' dtype, or None for a layer without parameters."""
        return next(iter(self.params.values())).dtype if self.params else None

    def num_params(self) -> int:
        return sum(p.size for p in self.params.values())

    def astype(self, dtype: type | np.dtype) -> Layer:
        """Convert the parameters in place to ``dtype`` (float32 or float64); return self."""
        dtype = np.dtype(dtype)
        if dtype not in FLOAT_DTYPES:
            raise TypeError(f"{self.name}: dtype must be float32 or float64, got {dtype}")
        self.params = {k: v.astype(dtype) for k, v in self.params.items()}
        self.grads = {}
        return self

    def train(self) -> Layer:
        self.training = True
        return self

    def eval(self) -> Layer:
        self.training = False
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
