# %% [markdown]
# # Lesson 02: gradient checking, or how to trust a backward pass
#
# Every `backward` in minialexnet is derived by hand. A forgotten transpose, a wrong mask or
# a dropped term does not crash anything: the network still trains, just worse, and nothing
# tells you why. The remedy is old and cheap: compare the analytic gradient with a numeric
# one computed from the forward pass alone.
#
# In this lesson you will:
# 1. see why the numeric gradient uses *central* differences, in *float64*, with eps ~ 1e-5;
# 2. measure the error against eps and find the classic V: rounding on one side,
#    truncation on the other (the figure `02_gradcheck_eps.png`);
# 3. check every layer of the package, and the whole `mini` network, against the error each
#    layer's docstring expects;
# 4. see why a float32 gradient check cannot be trusted;
# 5. plant bugs and watch the check catch them, including one too subtle for float32.

# %%
import inspect
import re

import numpy as np

from minialexnet import build_alexnet, check_layer, check_model
from minialexnet.gradcheck import (
    DEFAULT_THRESHOLD,
    MODEL_THRESHOLD,
    check_array_gradient,
    error_floor,
)
from minialexnet.layers import Conv2d, Linear, LocalResponseNorm, ReLU, Tanh, softmax_cross_entropy
from minialexnet.plots import quick_mode, save_figure
from minialexnet.plots.gradcheck import plot_gradcheck_eps
from minialexnet.tour import layer_cases

QUICK = quick_mode()  # the test suite's smoke run: fewer steps and samples
rng = np.random.default_rng(0)
GRADCHECK_EPS = inspect.signature(check_layer).parameters["eps"].default  # what the checker uses

# %% [markdown]
# ## 1. Central differences
#
# For a scalar function f, Taylor's theorem gives
#
#     f(x + eps) = f + eps f' + eps^2/2 f'' + eps^3/6 f''' + ...
#     f(x - eps) = f - eps f' + eps^2/2 f'' - eps^3/6 f''' + ...
#
# Subtract and divide by 2 eps: the f'' terms cancel, and
#
#     (f(x + eps) - f(x - eps)) / (2 eps) = f' + eps^2/6 f''' + ...
#
# The *forward* difference (f(x + eps) - f(x)) / eps keeps the f'' term: its error is
# eps/2 f'', one power of eps worse. Central differences cost two evaluations per entry
# instead of one, and are worth it.
#
# That is the *truncation* error, and it shrinks with eps. The other error grows as eps
# shrinks: each evaluation of f is rounded, with an error of about u |f| (u is the unit
# roundoff: 1.1e-16 in float64, 6.0e-8 in float32), and dividing the difference by 2 eps
# magnifies it to about u |f| / eps. The sum is smallest near eps ~ u^(1/3).
#
# For an array input we perturb one entry at a time, with all the others fixed:


# %%
def central_difference(f, x: np.ndarray, index: tuple[int, ...], eps: float) -> float:
    """(f(x + eps e_i) - f(x - eps e_i)) / (2 eps), computed in x's own dtype."""
    step = np.zeros_like(x)
    step[index] = eps
    return float((f(x + step) - f(x - step)) / (2 * eps))


def layer_gradients(layer, x: np.ndarray, G: np.ndarray, eps: float, indices: list):
    """Numeric and analytic dL/dx[i] for L = sum(layer(x) * G), at each index, in x's dtype."""
    layer.forward(x)
    analytic = layer.backward(G)

    def loss(z: np.ndarray):
        return np.sum(layer.forward(z) * G)

    numeric = np.array([central_difference(loss, x, i, eps) for i in indices])
    return numeric, np.array([float(analytic[i]) for i in indices])


# %% [markdown]
# ## 2. The V: error against eps
#
# Take a `Tanh` layer (smooth, with a real third derivative, so truncation shows) and the
# scalar L = sum(tanh(x) * G) for a fixed random G, so dL/dx = G * (1 - tanh(x)^2).
# For each eps, compute the numeric gradient in float64 and in float32 and compare it with
# the analytic float64 gradient. Beside each measured curve, the estimate from section 1:
# truncation eps^2 |f'''| / 6 (for tanh, f''' / f' = -2 (1 - 3 tanh^2)) plus a *bound* on
# rounding, u (sum |terms of L| / |dL/dx| + |x|) / eps (the |x| term: x + eps itself is
# rounded).

# %%
x64 = rng.standard_normal((3, 10))
G64 = rng.standard_normal((3, 10))
tanh = Tanh()
tanh.forward(x64)
exact = tanh.backward(G64)  # float64 analytic gradient: the reference for both dtypes
indices = list(np.ndindex(x64.shape))
eps_grid = np.logspace(-12, 0, 13 if QUICK else 37)

t = np.tanh(x64).ravel()
g = np.abs(exact.ravel())
truncation = np.abs(1 - 3 * t**2) / 3  # |f'''/f'| / 6, times eps^2 below
terms = np.sum(np.abs(np.tanh(x64) * G64))
measured, predicted = {}, {}
for dtype in (np.float64, np.float32):
    name = np.dtype(dtype).name
    u = np.finfo(dtype).eps / 2
    errors, estimate = [], []
    for eps in eps_grid:
        numeric, _ = layer_gradients(Tanh(), x64.astype(dtype), G64.astype(dtype), eps, indices)
        errors.append(np.median(np.abs(numeric - exact.ravel()) / g))
        estimate.append(
            np.median(eps**2 * truncation + u * (terms / g + np.abs(x64.ravel())) / eps)
        )
    measured[name], predicted[name] = np.array(errors), np.array(estimate)
    i = int(np.argmin(errors))
    at_default = np.interp(np.log10(GRADCHECK_EPS), np.log10(eps_grid), np.log10(errors))
    print(
        f"{name}: u = {u:.1e}, u^(1/3) = {u ** (1 / 3):.1e}; best eps {eps_grid[i]:.0e} gives "
        f"median relative error {errors[i]:.1e}; at eps = {GRADCHECK_EPS:g}: {10**at_default:.1e}"
    )

fig = plot_gradcheck_eps(eps_grid, measured, predicted, chosen_eps=GRADCHECK_EPS)
save_figure(fig, "02_gradcheck_eps")  # prints where it saved it

# %% [markdown]
# Read the figure from the right: the truncation branch has slope 2 (eps^2), exactly as
# predicted. Going left, rounding takes over with slope -1 (1/eps); the rounding estimate is
# a bound, so the measured curve sits below it. Far left, float32's curve flattens at 1: the
# step is below half an ulp of x, x + eps rounds back to x, the numeric gradient is exactly
# 0, and its relative error is 100%.
#
# The bottom of the float64 V is deep and wide: anything from about 1e-6 to 1e-4 works, and
# `minialexnet.gradcheck` uses eps = 1e-5. Many layers (Linear, conv, dropout, flatten) are
# linear in each input entry, so they have no truncation error at all; only rounding limits
# them. The bottom of float32's V is shallow, and where it lies depends on the function.
#
# ## 3. Relative error, and its floor
#
# An absolute error means nothing without a scale (1e-6 is tiny for a gradient of 10 and
# huge for a gradient of 1e-7), so the check reports a *relative* error per entry,
#
#     |analytic - numeric| / max(|analytic|, |numeric|, floor),
#
# and the worst one over the entries it samples. The floor (1% of the array's largest gradient,
# see `gradcheck.py`) handles entries whose true gradient is ~0. A saturated tanh shows why:

# %%
x_sat = np.array([[0.5, 12.0, -1.0]])  # tanh'(12) = 1 - tanh(12)^2 is ~1.5e-10
G_sat = np.ones_like(x_sat)
sat_indices = list(np.ndindex(x_sat.shape))
numeric, analytic = layer_gradients(Tanh(), x_sat, G_sat, GRADCHECK_EPS, sat_indices)
floor = error_floor(analytic)
for a, n in zip(analytic, numeric, strict=True):
    plain = abs(a - n) / max(abs(a), abs(n))
    floored = abs(a - n) / max(abs(a), abs(n), floor)
    print(f"analytic {a:+.3e}  numeric {n:+.3e}  rel. error {plain:.1e}  with floor {floored:.1e}")

# %% [markdown]
# At x = 12 the unit is saturated: tanh(12 +- 1e-5) differ only in their last few bits, so
# the numeric gradient is rounding noise on top of a true gradient of ~1e-10, and the plain
# relative error is at the percent level, the score of a bug, for a backward that is right.
# Judged against 1% of the largest gradient instead, the same absolute difference is
# negligible. A real bug still shows: it is wrong on the entries whose gradients matter.
#
# ## 4. Every layer, checked
#
# `check_layer(layer, x)` draws a fixed random G, sets L = sum(layer(x) * G) (so dL/dout = G
# exercises every output), runs one backward, and compares dL/dx and every parameter's
# gradient with central differences at up to 200 sampled entries each. Each layer's module
# docstring states the float64 error it expects; the threshold for a pass is
# `DEFAULT_THRESHOLD`. The inputs have a different size on every axis, so a transposed axis
# cannot hide.

# %%
BOUND = re.compile(r"relative error in float64: below (\d(?:\.\d+)?e-?\d+)")


def documented_bound(obj) -> float:
    """The 'Expected gradient-check relative error in float64: below X' of obj's module."""
    match = BOUND.search(inspect.getmodule(obj).__doc__ or "")
    if match is None:
        raise ValueError(f"{inspect.getmodule(obj).__name__} does not document its error")
    return float(match.group(1))


def print_row(title: str, arrays: str, error: float, bound: float) -> None:
    within = "yes" if error <= bound else "NO"
    verdict = "PASS" if error <= DEFAULT_THRESHOLD else "FAIL"
    print(f"{title:<30}{arrays:<8}{error:>10.1e}{bound:>10.0e}{within:>8}{verdict:>7}")


print(f"threshold {DEFAULT_THRESHOLD:.0e} per layer, {MODEL_THRESHOLD:.0e} for the whole net\n")
print(f"{'layer':<30}{'arrays':<8}{'worst':>10}{'doc':>10}{'<= doc':>8}{'':>7}")
for title, layer, shape in layer_cases():
    report = check_layer(layer, rng.standard_normal(shape))
    arrays = " ".join(c.name for c in report.checks)
    print_row(title, arrays, report.max_rel_error, documented_bound(layer))

# Softmax cross-entropy is a function, not a layer: check dL/dlogits with the array checker.
logits = rng.standard_normal((4, 7))
labels = np.array([0, 6, 3, 3])
_, dlogits = softmax_cross_entropy(logits, labels)
ce = check_array_gradient(
    "logits", lambda: softmax_cross_entropy(logits, labels)[0], logits, dlogits
)
print_row(
    "softmax cross-entropy",
    "logits",
    ce.max_rel_error,
    documented_bound(softmax_cross_entropy),
)

# %% [markdown]
# A "NO" in the `<= doc` column with a PASS beside it means the docstring's estimate was
# optimistic for this input, not that the layer is wrong: the worst of 200 sampled entries
# is often one whose gradient is small next to |L|, where rounding noise (section 2) weighs
# most. A wrong backward lands at 1e-3 or above, far past the threshold (section 6).
#
# Now the whole `mini` AlexNet (32x32 input), every parameter array, through conv, ReLU,
# LRN, max-pool, dropout, FC and softmax cross-entropy. Rounding accumulates through every
# layer, so the threshold is the looser `MODEL_THRESHOLD`.

# %%
model = build_alexnet("mini", dtype=np.float64, seed=0)
print(f"{len(model.layers)} layers, {model.num_params():,} parameters, in training mode")
x = rng.standard_normal((2, *model.input_shape))
report = check_model(model, x, np.array([3, 7]), max_samples=2 if QUICK else 8)
print(report)

# %% [markdown]
# ## 5. Why not float32?
#
# Training runs in float32, so why not check in float32? Because float32's u is 6e-8, not
# 1.1e-16. Section 2 printed the consequence for tanh: at the eps that suits float64 the
# numeric gradient is off by percents, and even the best eps leaves an error far above the
# 1e-6 threshold. Worse, the best eps depends on the function: layers that are linear in x
# (conv, Linear) have no truncation error and like a large eps, curved ones (tanh) do not.
# Here are four correct layers checked entirely in float32 (forward, backward and the
# differences) at four step sizes:

# %%
LRN_CAFFE = {"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 1.0, "convention": "caffe"}
float32_cases = [
    ("Conv2d 3x3, pad 1", Conv2d(3, 5, 3, 1, 1, dtype=np.float32), (2, 3, 7, 6)),
    ("LRN (as Caffe/PyTorch)", LocalResponseNorm(**LRN_CAFFE), (2, 8, 5, 4)),
    ("Tanh", Tanh(), (3, 10)),
    ("Linear 12 -> 7", Linear(12, 7, dtype=np.float32), (3, 12)),
]
float32_eps = (1e-1, 1e-2, 1e-3, 1e-5)


def max_relative_error(numeric: np.ndarray, analytic: np.ndarray) -> float:
    """The worst entry's relative error, with gradcheck.py's floor (1% of the largest gradient)."""
    scale = np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), error_floor(analytic))
    return float(np.max(np.abs(analytic - numeric) / scale))


def sample_entries(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """A random sample of the entries of an array of ``shape`` (all of them if it is small)."""
    size = int(np.prod(shape))
    flat = rng.choice(size, min(size, 20 if QUICK else 80), replace=False)
    return [tuple(int(i) for i in np.unravel_index(f, shape)) for f in flat]


def float32_errors(layer, x32: np.ndarray, G32: np.ndarray, sample: list) -> list[float]:
    """The float32 check's worst relative error on dL/dx at each of ``float32_eps``."""
    return [max_relative_error(*layer_gradients(layer, x32, G32, e, sample)) for e in float32_eps]


def eps_header(first: str) -> str:
    return f"{first:<24}" + "".join(f"{f'eps {e:.0e}':>12}" for e in float32_eps)


print(eps_header("float32, correct layer"))
table = []
for title, layer, shape in float32_cases:
    x32 = rng.standard_normal(shape).astype(np.float32)
    G32 = rng.standard_normal(layer.forward(x32).shape).astype(np.float32)
    table.append(float32_errors(layer, x32, G32, sample_entries(shape)))
    print(f"{title:<24}" + "".join(f"{e:>12.1e}" for e in table[-1]))
worst_per_eps = np.max(table, axis=0)  # one eps for every layer: the worst layer decides
best = int(np.argmin(worst_per_eps))
float32_eps_best, float32_floor = float32_eps[best], float(worst_per_eps[best])
print(
    f"\nWith one eps for all four layers the best choice is {float32_eps_best:.0e}, and even "
    f"then a correct layer scores {float32_floor:.1e}:\na float32 check needs a threshold "
    f"above that, {float32_floor / DEFAULT_THRESHOLD:,.0f}x looser than float64's "
    f"{DEFAULT_THRESHOLD:.0e}."
)

# %% [markdown]
# A check loose enough to pass correct float32 layers lets through every bug smaller than
# that. Section 6 plants one.
#
# ## 6. Planting bugs
#
# Each bug below is a subclass that overrides `_backward` (the layer contract in
# `layers/base.py`: the forward keeps in `self._cache` what the backward needs). Each is a
# mistake people really make.
#
# **Bug 1: a forgotten transpose.** dL/dW of a Linear layer is dout^T @ x, shape
# (out, in). Writing x^T @ dout gives its transpose.


# %%
class LinearForgotTranspose(Linear):
    def _backward(self, dout: np.ndarray) -> np.ndarray:
        dx = super()._backward(dout)
        self.grads["W"] = self._cache.T @ dout  # the product taken in the wrong order
        return dx


square = LinearForgotTranspose(8, 8, dtype=np.float64)
print("square Linear 8 -> 8 with the transposed dW:")
print(check_layer(square, rng.standard_normal((5, 8))))

non_square = LinearForgotTranspose(12, 7, dtype=np.float64)
try:
    check_layer(non_square, rng.standard_normal((5, 12)))
except ValueError as err:
    print(f"\nthe same bug in a 12 -> 7 layer fails on shapes before any number:\n  {err}")

# %% [markdown]
# With distinct sizes the bug cannot even produce a gradient of the right shape; with a
# square layer only the numbers catch it. This is why every test in this project uses
# different sizes on every axis.
#
# **Bug 2: the wrong mask.** ReLU's backward passes dout where the *forward's output* was
# positive. Gating by the sign of dout instead (applying ReLU to the gradient) looks
# plausible and is wrong:


# %%
class ReLUWrongMask(ReLU):
    def _backward(self, dout: np.ndarray) -> np.ndarray:
        return dout * (dout > 0)  # gated by the sign of dout, not by where the ReLU was on


print("ReLU gating the gradient by its own sign:")
print(check_layer(ReLUWrongMask(), rng.standard_normal((3, 10))))

# %% [markdown]
# **Bug 3: a subtle one.** LRN divides by s^beta, where s = k + a * (sum of squares over
# neighbouring channels) depends on x too. Treating s as a constant keeps the main term
# g * s^-beta and drops the cross-channel term. With alpha = 1e-4 (divided by n = 5, as
# Caffe and PyTorch do) the dropped term is small, and so is the error. Check the correct
# and the buggy layer on the same input, in float64 with `check_layer`, and in float32 on
# the same entries at the float32 step sizes of section 5:


# %%
class LRNWithoutCrossTerm(LocalResponseNorm):
    def _backward(self, dout: np.ndarray) -> np.ndarray:
        _, _, s = self._cache  # s = k + alpha * (window sum of x**2), kept by the forward
        return dout * s**-self.beta  # the cross-channel term, through s, is missing


x_lrn = rng.standard_normal((2, 8, 5, 4))
G_lrn = rng.standard_normal(x_lrn.shape).astype(np.float32)
sample = sample_entries(x_lrn.shape)  # the same entries for both layers
print(f"{'LRN':<12}{'float64':>12}" + eps_header("")[24:] + "  (float32)")
scores = {}
for name, layer_type in (("correct", LocalResponseNorm), ("buggy", LRNWithoutCrossTerm)):
    error64 = check_layer(layer_type(**LRN_CAFFE), x_lrn).max_rel_error
    errors32 = float32_errors(layer_type(**LRN_CAFFE), x_lrn.astype(np.float32), G_lrn, sample)
    scores[name] = np.array([error64, *errors32])
    print(f"{name:<12}" + "".join(f"{e:>12.1e}" for e in scores[name]))
ratio = scores["buggy"] / scores["correct"]
print(f"{'buggy/corr.':<12}" + "".join(f"{r:>12,.1f}" for r in ratio))
print(
    f"\nfloat64: the bug scores {scores['buggy'][0]:.1e}, "
    f"{'above' if scores['buggy'][0] > DEFAULT_THRESHOLD else 'BELOW'} the threshold "
    f"{DEFAULT_THRESHOLD:.0e} and {ratio[0]:,.0f}x a correct layer's score.\n"
    f"float32 at its best single eps ({float32_eps_best:.0e}): the bug scores "
    f"{scores['buggy'][1 + best]:.1e}, "
    f"{'below' if scores['buggy'][1 + best] <= float32_floor else 'ABOVE'} the threshold "
    f"{float32_floor:.1e} that correct layers need."
)

# %% [markdown]
# In float64 the correct layer and the buggy one are orders of magnitude apart. In float32,
# at the step sizes that suit other layers, their scores are within a small factor: the bug
# hides in the noise. (A very large eps happens to separate them here, because LRN with a
# tiny alpha is almost linear; section 5's table shows what such an eps does to tanh.) The
# dropped term grows with the square of the activations, so on a real network's larger
# activations the same bug does change training; the check has to see it on any input.
#
# The recipe, then: **float64, central differences, eps ~ 1e-5, relative error with a
# floor, distinct sizes on every axis, random inputs (no ties at a max or kinks at 0)**.
# `tests/` applies it to every layer over random shapes with hypothesis.
#
# ## Exercises
#
# 1. **Linear layers have no truncation error.** Re-run the sweep of section 2 with a
#    `Linear(10, 4)` layer instead of `Tanh` (input (3, 10)). What happens to the right
#    branch of the V, and why can a check of a linear layer use eps = 1 in float64?
# 2. **Forward differences.** Replace `central_difference` by (f(x + eps) - f(x)) / eps
#    and redo the sweep. Predict first: the slope of the truncation branch, the best eps
#    (~ u^(1/2)) and the best error; then check the figure.
# 3. **Ties in max-pooling.** Plant a bug in `MaxPool2d` that sends each window's gradient
#    to its *last* maximum instead of the first. Does `check_layer` catch it on random
#    normal inputs? On inputs drawn from `rng.integers(0, 3, shape)` (with many ties)?
#    Explain both answers, and why the tests use continuous random inputs.
