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
Each report line says for how many of its entries the floor was used: a check whose every
entry was judged against the floor compared little.
A correct float64 layer gives 1e-11..1e-7 (threshold 1e-6); a whole network, where rounding
accumulates through every layer, gives up to ~1e-6 (threshold 1e-5).

For a layer, L = sum(layer.forward(x) * G) with a fixed random G, so dL/dout = G and the check
covers every output. Large tensors are checked at a random sample of entries. For a whole
network the sample is drawn among the entries whose analytic gradient is non-zero: a dead ReLU
unit leaves whole rows and columns of the next weights with an exactly zero gradient, and a
sample of them would compare 0 with 0 and pass whatever the backward did (fc7.W of the mini net
on two images: most of its entries). The per-layer checks sample all entries, so a backward
that wrongly returns 0 is still caught there. A network also has thousands of ReLU and max-pool
kinks, and moving one conv1 weight by eps moves hundreds of units: when one crosses a kink the
difference bends (1e-3 seen in lesson 02). So an entry of a network that fails is measured
again at eps/10 and eps/100 and keeps its best error, said in its report line: a kink's error
shrinks with eps, a wrong backward's does not.
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
    floor_used: int = 0  # checked entries whose error was measured against the floor
    zero_checked: int = 0  # checked entries whose analytic gradient is exactly 0
    nonzero: int | None = None  # entries with a non-zero gradient, when sampled among them
    retried: int = 0  # entries measured again at smaller eps (see ``check_array_gradient``)

    def describe(self) -> str:
        """One report line: the worst entry, how many entries, how they were chosen, and for
        how many of them the relative error was measured against the floor."""
        among = ""
        if self.nonzero is not None:
            among = (
                f", among {self.nonzero} non-zero"
                if self.nonzero
                else ", the gradient is zero everywhere"
            )
        retried = f"; {self.retried} re-measured at eps/10, eps/100" if self.retried else ""
        return (
            f"  {self.name:<8} max rel error {self.max_rel_error:.2e} at {self.worst_index} "
            f"(analytic {self.analytic:+.6e}, numeric {self.numeric:+.6e}; "
            f"{self.checked}/{self.size} entries{among}; floor used for {self.floor_used} of "
            f"{self.checked}{retried})"
        )


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
        lines = [c.describe() for c in self.checks]
        verdict = "PASS" if self.passed else "FAIL"
        lines.append(
            f"  {verdict}: worst {self.max_rel_error:.2e} vs threshold {self.threshold:.0e} "
            f"({self.margin:.1e} of it)"
        )
        return "\n".join(lines)


def error_floor(analytic: np.ndarray) -> float:
    """The relative error's floor: 1% of the array's largest gradient (see the module docstring)."""
    return max(1e-2 * float(np.abs(analytic).max(initial=0.0)), 1e-12)


def sample_indices(
    shape: tuple[int, ...],
    max_samples: int,
    rng: np.random.Generator,
    among: np.ndarray | None = None,
) -> list:
    """Every index of ``shape`` if there are at most ``max_samples``, else a random sample
    without repeats; ``among`` (flat indices) limits the choice to those entries."""
    pool = np.arange(int(np.prod(shape))) if among is None else np.asarray(among)
    flat = pool if pool.size <= max_samples else rng.choice(pool, max_samples, replace=False)
    return [tuple(int(i) for i in np.unravel_index(f, shape)) for f in flat]


def relative_error(analytic: float, numeric: float, floor: float) -> float:
    """|analytic - numeric| / max(|analytic|, |numeric|, floor) (see the module docstring)."""
    return abs(analytic - numeric) / max(abs(analytic), abs(numeric), floor)


def central_difference(
    loss: Callable[[], float], array: np.ndarray, index: tuple[int, ...], eps: float
) -> float:
    """(L(a + eps e_i) - L(a - eps e_i)) / (2 eps), perturbing ``array[index]`` in place and
    restoring it."""
    original = array[index]
    array[index] = original + eps
    up = loss()
    array[index] = original - eps
    down = loss()
    array[index] = original
    return (up - down) / (2 * eps)


def check_array_gradient(
    name: str,
    loss: Callable[[], float],
    array: np.ndarray,
    analytic: np.ndarray,
    *,
    eps: float = 1e-5,
    max_samples: int = 200,
    rng: np.random.Generator | None = None,
    nonzero_only: bool = False,
    retry_above: float | None = None,
) -> ArrayCheck:
    """Compare ``analytic`` with central differences of ``loss()`` in ``array``.

    ``array`` is perturbed in place, one entry at a time, and restored. With ``nonzero_only``
    the entries are sampled among those whose analytic gradient is not 0 (all entries if
    there are none: then the check shows whether the numeric gradient is 0 too).
    With ``retry_above``, an entry whose error exceeds it is measured again at eps / 10 and
    eps / 100 and keeps its smallest error (counted in ``retried``): a ReLU or max-pool kink
    within eps of the point bends the difference (a whole network has thousands of them),
    and shrinks away with eps, where a wrong backward stays wrong at every eps.
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
    # the worst entry so far: its error, index, analytic and numeric gradients
    worst: tuple[float, tuple[int, ...], float, float] = (0.0, (), 0.0, 0.0)
    nonzero = np.flatnonzero(analytic) if nonzero_only else None
    among = nonzero if nonzero is not None and nonzero.size else None
    indices = sample_indices(array.shape, max_samples, rng, among)
    floor_used = zero_checked = retried = 0
    for index in indices:
        a = float(analytic[index])
        numeric = central_difference(loss, array, index, eps)
        error = relative_error(a, numeric, floor)
        if retry_above is not None and error > retry_above:
            retried += 1
            for step in (eps / 10, eps / 100):
                again = central_difference(loss, array, index, step)
                if (error_again := relative_error(a, again, floor)) < error:
                    numeric, error = again, error_again
        floor_used += max(abs(a), abs(numeric)) < floor
        zero_checked += a == 0
        if error >= worst[0]:
            worst = (error, index, a, numeric)
    return ArrayCheck(
        name,
        *worst,
        checked=len(indices),
        size=array.size,
        floor_used=floor_used,
        zero_checked=zero_checked,
        nonzero=None if nonzero is None else int(nonzero.size),
        retried=retried,
    )


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
    """Check every parameter gradient of a float64 model under softmax cross-entropy, at
    ``max_samples`` entries per parameter drawn among those with a non-zero gradient (the
    module docstring says why).

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
                name,
                loss,
                param,
                analytic[name],
                eps=eps,
                max_samples=max_samples,
                rng=rng,
                nonzero_only=True,
                retry_above=threshold,
            )
        )
    return report
