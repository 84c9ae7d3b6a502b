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

* **Empty batches.** The batch axis may be 0: forward returns an empty output of the right
  shape (``(0, *output_shape)``) and backward an empty dL/dx, with every parameter gradient 0
  (the gradient of a sum over no images). The base class handles it before the subclass's
  math runs, so every layer of every engine, and ``Sequential``, behaves the same way.
  ``softmax_cross_entropy`` refuses 0 samples instead: a mean over no samples is undefined,
  and a loss of 0 or NaN would hide an empty batch.
* **Every other axis must be >= 1.** An image with no rows, columns or channels is not an
  input, even where padding would make a window from it (``output_shape`` refuses it).
* **Parameters.** ``params`` are float32 or float64 ndarrays of the names and shapes that
  ``param_shapes()`` states (where a layer states them), all of one dtype. Users may replace
  them (an optimizer, a checkpoint); an array of another dtype, shape or kind is refused with
  a message when the layer next runs forward or backward, never cast or promoted silently.
* **Backward uses the parameters as they are at backward time** (no layer keeps a copy of its
  weights: fc6's are 151 MB). Change them between forward and backward and dL/dx is that of
  the new weights, in every engine and implementation alike; dL/dW depends only on x and dout.
  The input is another matter: a layer may keep a reference to x, so do not change x in place
  before the backward.
* Constructor arguments are checked when the layer is built: a number of the wrong type (a
  bool where an int is expected, a string for a float) raises TypeError, one out of range
  (negative, zero sizes, NaN or inf) ValueError, as does anything but one of a string
  argument's choices; each message names the layer, the argument, what was expected and what
  was given.

* Inside ``Sequential.no_grad()`` (``grad_enabled`` False) a forward is for inference only: a
  layer may keep nothing for a backward, and ``backward`` then raises instead of using stale
  data.

Two engines follow this contract with the same classes: this package (the reference, plain
NumPy, what students read and write) and ``minialexnet/fast`` (the tuned CPU engine, whose
classes subclass these and override only ``_forward``/``_backward``; tested equal).
The subclass writes ``_forward`` and ``_backward`` (the math); the public ``forward`` and
``backward`` here add the checks. ``Sequential`` checks the network input once and then calls
``forward_unchecked``/``backward_unchecked`` of each layer (the math, the empty-batch rule and
the parameter check, without the input checks), since it has already checked at construction
that every layer's output fits the next one's input.
"""

from __future__ import annotations

import math
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


def is_int(value: object) -> bool:
    """A Python int that is not a bool (``True`` would otherwise pass as 1): the test the CLI
    options, the bench's arguments and a checkpoint's saved values use."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_finite_number(value: object) -> bool:
    """An int (not a bool) or a float, and finite."""
    return (is_int(value) or isinstance(value, float)) and math.isfinite(value)  # type: ignore[arg-type]


def check_positive_int(layer: str, argument: str, value: Any, *, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise naming the layer and argument.

    A bool is refused although Python counts it as an int: ``Conv2d(3, True, 3)`` is a slip.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{layer}: {argument} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{layer}: {argument} must be >= {minimum}, got {value}")
    return int(value)


def check_real(
    layer: str,
    argument: str,
    value: Any,
    *,
    low: float,
    high: float | None = None,
    low_open: bool = False,
) -> float:
    """Return ``value`` as a float, ``>= low`` (``> low`` if ``low_open``) and, when ``high``
    is given, ``< high``; or raise naming the layer, the argument, the range and the value.

    Only real numbers pass: a string ("0.5") or a bool is a TypeError, NaN and inf a
    ValueError (every layer constant is finite).
    """
    if high is not None:
        expected = f"in [{low:g}, {high:g})"
    else:
        expected = f"finite and {'>' if low_open else '>='} {low:g}"
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{layer}: {argument} must be a number, {expected}, got {value!r}")
    v = float(value)
    inside = (v > low if low_open else v >= low) and (high is None or v < high)
    if not math.isfinite(v) or not inside:
        raise ValueError(f"{layer}: {argument} must be {expected}, got {v!r}")
    return v


def check_rng(layer: str, value: Any) -> np.random.Generator:
    """The ``rng`` argument: a ``numpy.random.Generator``, or None for ``default_rng(0)``."""
    if value is None:
        return np.random.default_rng(0)
    if not isinstance(value, np.random.Generator):
        raise TypeError(
            f"{layer}: rng must be a numpy.random.Generator or None (np.random.default_rng"
            f"(seed)), got {type(value).__name__}"
        )
    return value


def check_float_dtype(layer: str, value: Any) -> np.dtype:
    """The ``dtype`` argument as a NumPy dtype, float32 or float64, else TypeError naming it.

    None is refused although ``np.dtype(None)`` is float64: a missing dtype is a slip."""
    try:
        dtype = None if value is None else np.dtype(value)
    except TypeError:
        dtype = None
    if dtype is None or dtype not in FLOAT_DTYPES:
        given = repr(value) if dtype is None else str(dtype)
        raise TypeError(f"{layer}: dtype must be float32 or float64, got {given}")
    return dtype


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
        self._empty_input: Shape | None = None  # x.shape when the last forward had 0 images
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
        self.check_params()
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
        return self.backward_unchecked(dout)

    def forward_unchecked(self, x: np.ndarray) -> np.ndarray:
        """Forward without input checks (``Sequential`` checks its input once); the empty
        batch rule of the contract is applied here, so ``_forward`` never sees 0 images."""
        if x.shape[0] == 0:
            self._empty_input, self._cache = x.shape, None
            out = np.empty((0, *self.output_shape(x.shape[1:])), dtype=x.dtype)
        else:
            self._empty_input = None
            out = self._forward(x)
        self._out_shape, self._out_dtype = out.shape, out.dtype
        self._forward_kept_cache = self.grad_enabled
        return out

    def backward_unchecked(self, dout: np.ndarray) -> np.ndarray | None:
        """Backward without the dout checks (``Sequential`` checks the network's once); after
        an empty forward, an empty dL/dx and zero parameter gradients (the contract)."""
        if self._empty_input is None:
            return self._backward(dout)
        for name, param in self.params.items():
            grad = self.grads.get(name)
            if grad is not None and grad.shape == param.shape and grad.dtype == param.dtype:
                grad.fill(0)  # the fast engine's buffers are overwritten in place
            else:
                self.grads[name] = np.zeros_like(param)
        return np.zeros(self._empty_input, dout.dtype) if self.needs_input_grad else None

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
        """Raise ValueError naming the layer if a per-image input shape has the wrong rank or
        an axis of size 0 (the contract: only the batch axis may be empty)."""
        ranks = self.input_ndim if isinstance(self.input_ndim, tuple) else (self.input_ndim,)
        if len(in_shape) + 1 not in ranks:
            raise ValueError(
                f"{self.name}: input must be {self.input_axes}, got per-image shape {in_shape}"
            )
        if min(in_shape, default=1) < 1:
            raise ValueError(
                f"{self.name}: every axis of x but the batch must be >= 1 (an empty image is not "
                f"an input, even with padding), got per-image shape {tuple(in_shape)}"
            )

    def macs(self, in_shape: Shape) -> int:
        """Weight multiply-accumulates for one image (0 for layers without weights)."""
        return 0

    # -- parameters, modes, dtype -------------------------------------------------------
    def param_shapes(self) -> dict[str, Shape] | None:
        """The name and shape of each parameter (Conv2d, Linear), or None where a layer does
        not state them: then ``check_params`` checks only their kind and dtype."""
        return None

    def check_params(self) -> np.dtype | None:
        """Check ``params`` (the contract: the names and shapes of ``param_shapes``, float32 or
        float64 ndarrays, one dtype); return that dtype, None without parameters. Raises
        TypeError/ValueError naming the layer and the parameter: ``params`` is a dict users
        can fill, and a float64 bias beside float32 weights would promote the output."""
        expected = self.param_shapes()
        if expected is not None and set(self.params) != set(expected):
            raise ValueError(
                f"{self.name}: params must have the keys {sorted(expected)}, "
                f"got {sorted(self.params)}"
            )
        for name, param in self.params.items():
            if not isinstance(param, np.ndarray) or param.dtype not in FLOAT_DTYPES:
                given = param.dtype if isinstance(param, np.ndarray) else type(param).__name__
                raise TypeError(
                    f"{self.name}: params[{name!r}] must be a float32 or float64 numpy.ndarray, "
                    f"got {given}"
                )
            if expected is not None and param.shape != expected[name]:
                raise ValueError(
                    f"{self.name}: params[{name!r}] must have shape {expected[name]}, "
                    f"got {param.shape}"
                )
        dtypes = {name: param.dtype for name, param in self.params.items()}
        if len(set(dtypes.values())) > 1:
            given = ", ".join(f"{name} {dtype}" for name, dtype in dtypes.items())
            raise TypeError(
                f"{self.name}: parameters must all have one dtype, got {given}; call "
                f"layer.astype(np.float32) (or float64) after replacing one"
            )
        return next(iter(dtypes.values()), None)

    @property
    def dtype(self) -> np.dtype | None:
        """The parameters' dtype, or None for a layer without parameters (checked: see
        ``check_params``)."""
        return self.check_params()

    def num_params(self) -> int:
        return sum(p.size for p in self.params.values())

    def astype(self, dtype: type | np.dtype) -> Layer:
        """Convert the parameters in place to ``dtype`` (float32 or float64); return self."""
        dtype = check_float_dtype(self.name, dtype)
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
