"""Gradient checking: compare a backward pass with central finite differences, in float64.

For a scalar function L of an array a, the central difference
    dL/da[i] ~ (L(a + eps*e_i) - L(a - eps*e_i)) / (2*eps)
has error O(eps**2) from truncation and O(machine_eps * |L| / eps) from rounding; eps = 1e-5
in float64 balances them (and many layers are linear in each entry: no truncation at all).
The relative error reported for an entry is
    |analytic - numeric| / max(|analytic|, |numeric|, floor)
with floor = 1% of the array's largest gradient.
The floor matters for entries whose gradient is tiny next to the rest of the array (a ReLU
that barely fired): there the finite difference's rounding noise (~1e-16 * |L| / eps) is
comparable to the gradient itself, and an exact backward would read as wrong. Such entries are
judged against 1% of the array's largest gradient instead; a real bug (a wrong transpose, a
missing term) still gives 1e-2..1 on the entries that matter.
A correct float64 layer gives 1e-11..1e-7 (threshold 1e-6); a whole network, where rounding
accumulates through every layer, gives up to ~1e-6 (threshold 1e-5).

For a layer, L = sum(layer.forward(x) * G) with a fixed random G, so dL/dout = G and the check
covers every output. Large tensors are checked at a random sample of entries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .layers.base import Layer
from .layers.loss import softmax_cross_entropy
from .model import Sequential

DEFAULT_THRESHOLD = 1e-6
MODEL_THRESHOLD = 1e-5


@dataclass
class ArrayCheck:
    """The result for one array (the input or one parameter)."""

    name: str
    max_rel_error: float
    worst_index: tuple[int, ...]
    analytic: float
    numeric: float
    checked: int  # how many entries were compared
    size: int  # how many entries the array has


@dataclass
class GradCheckReport:
    """All arrays checked for one layer or model, and whether they pass ``threshold``."""

    checks: list[ArrayCheck] = field(default_factory=list)
    threshold: float = DEFAULT_THRESHOLD

    @property
    def max_rel_error(self) -> float:
        return max((c.max_rel_error for c in self.checks), default=0.0)

    @property
    def passed(self) -> bool:
        return self.max_rel_error <= self.threshold

    @property
    def margin(self) -> float:
        """How close to the threshold the worst error came: error / threshold (< 1 passes)."""
        return self.max_rel_error / self.threshold

    def __str__(self) -> str:
        lines = []
        for c in self.checks:
            lines.append(
                f"  {c.name:<8} max rel error {c.max_rel_error:.2e} at {c.worst_index} "
                f"(analytic {c.analytic:+.6e}, numeric {c.numeric:+.6e}; "
                f"{c.checked}/{c.size} entries)"
            )
        verdict = "PASS" if self.passed else "FAIL"
        lines.append(
            f"  {verdict}: worst {self.max_rel_error:.2e} vs threshold {self.threshold:.0e} "
            f"({self.margin:.1e} of it)"
        )
        return "\n".join(lines)


def error_floor(analytic: np.ndarray) -> float:
    """The relative error's floor: 1% of the array's largest gradient (see the module docstring)."""
    return max(1e-2 * float(np.abs(analytic).max(initial=0.0)), 1e-12)


def sample_indices(shape: tuple[int, ...], max_samples: int, rng: np.random.Generator) -> list:
    """Every index of ``shape`` if there are at most ``max_samples``, else a random sample."""
    size = int(np.prod(shape))
    flat = np.arange(size) if size <= max_samples else rng.choice(size, max_samples, replace=False)
    return [tuple(int(i) for i in np.unravel_index(f, shape)) for f in flat]


def check_array_gradient(
    name: str,
    loss: Callable[[], float],
    array: np.ndarray,
    analytic: np.ndarray,
    *,
    eps: float = 1e-5,
    max_samples: int = 200,
    rng: np.random.Generator | None = None,
) -> ArrayCheck:
    """Compare ``analytic`` with central differences of ``loss()`` in ``array``.

    ``array`` is perturbed in place, one entry at a time, and restored.
    """
    if array.dtype != np.float64:
        raise TypeError(
            f"gradcheck: {name} must be float64 for finite differences, got {array.dtype}"
        )
    if analytic.shape != array.shape:
        raise ValueError(
            f"gradcheck: gradient of {name} has shape {analytic.shape}, the array {array.shape}"
        )
    rng = rng if rng is not None else np.random.default_rng(0)
    floor = error_floor(analytic)
    worst = ArrayCheck(name, 0.0, (), 0.0, 0.0, 0, array.size)
    indices = sample_indices(array.shape, max_samples, rng)
    for index in indices:
        original = array[index]
        array[index] = original + eps
        up = loss()
        array[index] = original - eps
        down = loss()
        array[index] = original
        numeric = (up - down) / (2 * eps)
        a = float(analytic[index])
        error = abs(a - numeric) / max(abs(a), abs(numeric), floor)
        if error >= worst.max_rel_error:
            worst = ArrayCheck(name, error, index, a, numeric, 0, array.size)
    worst.checked = len(indices)
    return worst


def check_layer(
    layer: Layer,
    x: np.ndarray,
    *,
    eps: float = 1e-5,
    max_samples: int = 200,
    threshold: float = DEFAULT_THRESHOLD,
    seed: int = 0,
) -> GradCheckReport:
    """Check dL/dx and every dL/dparam of ``layer`` at input ``x`` (both must be float64).

    A layer with randomness (Dropout) is reseeded before every forward, so the function being
    differentiated is one fixed mask.
    """
    if x.dtype != np.float64 or layer.dtype not in (None, np.float64):
        raise TypeError(
            f"check_layer: finite differences need float64, got x {x.dtype} and {layer.name} "
            f"parameters {layer.dtype}; call layer.astype(np.float64) and x.astype(np.float64)"
        )
    rng = np.random.default_rng(seed)
    reseed = getattr(layer, "reseed", None)

    def forward(inp: np.ndarray) -> np.ndarray:
        if reseed is not None:
            reseed(seed)
        return layer.forward(inp)

    out = forward(x)
    G = rng.standard_normal(out.shape)
    dx = layer.backward(G)
    analytic = {name: grad.copy() for name, grad in layer.grads.items()}

    def loss() -> float:
        return float(np.sum(forward(x) * G))

    report = GradCheckReport(threshold=threshold)
    if dx is not None:
        report.checks.append(
            check_array_gradient("x", loss, x, dx, eps=eps, max_samples=max_samples, rng=rng)
        )
    for name, param in layer.params.items():
        report.checks.append(
            check_array_gradient(
                name, loss, param, analytic[name], eps=eps, max_samples=max_samples, rng=rng
            )
        )
    return report


def check_model(
    model: Sequential,
    x: np.ndarray,
    labels: np.ndarray,
    *,
    eps: float = 1e-5,
    max_samples: int = 20,
    threshold: float = MODEL_THRESHOLD,
    seed: int = 0,
) -> GradCheckReport:
    """Check every parameter gradient of a float64 model under softmax cross-entropy.

    Dropout layers are reseeded before each forward, so each evaluation uses the same masks.
    """
    if x.dtype != np.float64 or model.dtype != np.float64:
        raise TypeError(
            f"check_model: finite differences need float64, got x {x.dtype} and {model.name} "
            f"parameters {model.dtype}; call model.astype(np.float64) and x.astype(np.float64)"
        )
    rng = np.random.default_rng(seed)
    dropouts = [layer for layer in model.layers.values() if hasattr(layer, "reseed")]

    def loss_and_dlogits() -> tuple[float, np.ndarray]:
        for i, layer in enumerate(dropouts):
            layer.reseed(seed + i)
        return softmax_cross_entropy(model.forward(x), labels)

    model.backward(loss_and_dlogits()[1])
    analytic = {name: grad.copy() for name, grad in model.grads().items()}

    def loss() -> float:
        return loss_and_dlogits()[0]

    report = GradCheckReport(threshold=threshold)
    for name, param in model.params().items():
        report.checks.append(
            check_array_gradient(
                name, loss, param, analytic[name], eps=eps, max_samples=max_samples, rng=rng
            )
        )
    return report
