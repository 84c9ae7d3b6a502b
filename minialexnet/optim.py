"""How AlexNet learns: its initialization, its SGD rule, and its learning-rate schedule (§5).

Initialization
    ``"paper"``  W ~ N(0, 0.01²); biases 1 in conv2, conv4, conv5, fc6, fc7 and 0 elsewhere. The
                 bias of 1 "accelerates the early stages of learning by providing the ReLUs with
                 positive inputs" [P §5]. (Caffe's reference net used 0.1, having found that 1
                 left the loss flat, and std 0.005 for fc6/fc7.)
    ``"he"``     W ~ N(0, 2 / fan_in), biases 0 (He et al. 2015, three years after AlexNet).
                 Each ReLU layer then keeps the variance of its input, at any depth.

Why the ``mini`` nets default to He: a fixed std of 0.01 shrinks the image-dependent part of the
signal by about 0.01·sqrt(fan_in / 2) per ReLU layer (0.06 for conv1's 5×5×3 fan-in), while
the biases of 1 add a constant. Measured on a batch of digits through ``mini``: the spread of
each fc8 output across images is 3·10⁻⁸ with the paper's init (every image gets the same
logits, so the gradients say almost nothing about the input) against 0.03 with He. The full
net's fan-ins (up to 9216) make the shrinking far milder, which is how the paper trained with
it at all; ``python -m minialexnet train --init paper`` shows what happens to ``mini``.

SGD exactly as printed [P §5], with ε the learning rate:
    v ← 0.9·v − 0.0005·ε·w − ε·⟨∂L/∂w⟩
    w ← w + v
Weight decay sits inside the velocity; that is the same as adding (0.0005/2)·|w|² to the loss
(``tests/test_optim.py`` checks it) and, as printed, applies to every parameter, biases too.

Schedule: ε starts at 0.01 and is divided by 10 "when the validation error rate stopped improving
with the current learning rate" — three times in the paper's run (``PlateauSchedule``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .model import Sequential

INITS = ("paper", "he")
# The layers whose biases the paper starts at 1 [P §5]; every other bias starts at 0.
PAPER_BIAS_ONE = ("conv2", "conv4", "conv5", "fc6", "fc7")


def initialize(model: Sequential, scheme: str = "he", seed: int = 0) -> Sequential:
    """Re-draw every weight and bias of ``model`` in place by ``scheme`` ("paper" or "he").

    Weights are arrays whose first axis is the output unit: conv W (F, C/G, KH, KW), linear
    W (out, in), so ``fan_in = prod(W.shape[1:])`` for both. Returns the model.
    """
    if scheme not in INITS:
        raise ValueError(f"initialize: scheme must be one of {INITS}, got {scheme!r}")
    rng = np.random.default_rng(seed)
    for name, param in model.params().items():
        layer, kind = name.rsplit(".", 1)
        if kind == "W":
            std = 0.01 if scheme == "paper" else np.sqrt(2.0 / np.prod(param.shape[1:]))
            param[...] = rng.standard_normal(param.shape) * std
        elif kind == "b":
            param[...] = 1.0 if scheme == "paper" and layer in PAPER_BIAS_ONE else 0.0
        else:
            raise ValueError(f"initialize: don't know how to initialize parameter {name!r}")
    return model


def sgd_update(
    param: np.ndarray,
    velocity: np.ndarray,
    grad: np.ndarray,
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
) -> None:
    """One step of the paper's rule, in place on ``param`` and ``velocity`` (any equal shapes):

        velocity ← momentum·velocity − weight_decay·lr·param − lr·grad
        param    ← param + velocity

    All three arrays must share shape and dtype; the scalars are cast to that dtype, so a
    float32 model is updated entirely in float32 (as the GPU kernel that is tested against this
    function does).
    """
    for argument, array in (("velocity", velocity), ("grad", grad)):
        if not isinstance(array, np.ndarray) or array.shape != param.shape:
            got = array.shape if isinstance(array, np.ndarray) else type(array).__name__
            raise ValueError(
                f"sgd_update: {argument} must be an array of param's shape {param.shape}, got {got}"
            )
        if array.dtype != param.dtype:
            raise TypeError(
                f"sgd_update: {argument} has dtype {array.dtype}, param has {param.dtype}"
            )
    # EXERCISE sgd: the paper's update, in place, in the parameters' dtype.
    # hint: velocity = momentum*velocity - weight_decay*lr*param - lr*grad; param += velocity.
    t = param.dtype.type
    velocity *= t(momentum)
    velocity -= t(weight_decay * lr) * param
    velocity -= t(lr) * grad
    param += velocity
    # END EXERCISE


class SGD:
    """The paper's SGD over a model's parameters, one velocity per parameter.

    ``velocities`` is keyed like ``model.params()`` ("conv1.W", ...) and starts at zero; it is
    what a checkpoint saves besides the parameters. ``step()`` reads the gradients of the last
    ``model.backward`` and updates every parameter with ``sgd_update``. ``lr`` may be changed
    between steps (the schedule does).
    """

    def __init__(
        self,
        model: Sequential,
        lr: float = 0.01,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
    ) -> None:
        for argument, value in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"SGD: {argument} must be finite and >= 0, got {value}")
        self.model = model
        self.lr, self.momentum, self.weight_decay = float(lr), float(momentum), float(weight_decay)
        self.velocities = {name: np.zeros_like(p) for name, p in model.params().items()}

    def step(self) -> None:
        """Apply one update from the gradients the last backward left in the layers."""
        params, grads = self.model.params(), self.model.grads()
        missing = sorted(set(params) - set(grads))
        if missing:
            raise RuntimeError(f"SGD.step: no gradient for {missing}; call model.backward first")
        for name, param in params.items():
            sgd_update(
                param,
                self.velocities[name],
                grads[name],
                self.lr,
                self.momentum,
                self.weight_decay,
            )


class PlateauSchedule:
    """Divide the learning rate by ``factor`` when validation error stops improving [P §5].

    "Stops improving" is made precise: the error has not gone below ``best - min_delta`` for
    ``patience`` epochs in a row. After ``max_drops`` divisions the rate stays put (the paper
    divided three times). The state is three numbers, saved in checkpoints (``state``).
    """

    def __init__(
        self,
        optimizer: SGD,
        *,
        factor: float = 0.1,
        patience: int = 2,
        max_drops: int = 3,
        min_delta: float = 1e-4,
    ) -> None:
        if not 0 < factor < 1:
            raise ValueError(f"PlateauSchedule: factor must be in (0, 1), got {factor}")
        if patience < 1:
            raise ValueError(f"PlateauSchedule: patience must be >= 1, got {patience}")
        self.optimizer = optimizer
        self.factor, self.patience, self.max_drops, self.min_delta = (
            factor,
            patience,
            max_drops,
            min_delta,
        )
        self.best = float("inf")
        self.bad_epochs = 0
        self.drops = 0

    def step(self, val_error: float) -> bool:
        """Record one epoch's validation error; return True if the learning rate was divided."""
        if val_error < self.best - self.min_delta:
            self.best, self.bad_epochs = val_error, 0
            return False
        self.bad_epochs += 1
        if self.bad_epochs < self.patience or self.drops >= self.max_drops:
            return False
        self.optimizer.lr *= self.factor
        self.drops += 1
        self.bad_epochs = 0
        return True

    def state(self) -> dict[str, Any]:
        return {"best": self.best, "bad_epochs": self.bad_epochs, "drops": self.drops}

    def load_state(self, state: dict[str, Any]) -> None:
        self.best = float(state["best"])
        self.bad_epochs = int(state["bad_epochs"])
        self.drops = int(state["drops"])
