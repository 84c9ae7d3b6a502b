"""The PyTorch twin of a minialexnet model: the same layers, our weights copied in.

PyTorch is a yardstick here, never a dependency: ``torch`` is imported inside the functions,
and only the benchmark and the tests that cross-check against it call them.

Two conventions need translating:
* LRN: our ``s = k + a * window_sum(x**2)`` with ``a`` the effective alpha; PyTorch's
  ``nn.LocalResponseNorm`` divides its alpha by size, so it gets ``alpha = a * size``. It has
  no groups: an LRN with ``groups`` > 1 (the ``paper`` variant) becomes one PyTorch LRN per
  block of channels.
* Dropout, ``mode="paper"``: ours keeps x * mask in training and scales by 1-p at test time;
  PyTorch's dropout is inverted (mask / (1-p) in training, identity at test), so the twin
  multiplies its output by 1-p, which gives exactly the paper's form in both modes.

``check_agreement`` is what the benchmark runs before it times anything: the same batch
through both, logits and every parameter gradient compared.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .layers import (
    Conv2d,
    Dropout,
    Flatten,
    Linear,
    LocalResponseNorm,
    MaxPool2d,
    ReLU,
    Sigmoid,
    Tanh,
)
from .layers.loss import softmax_cross_entropy
from .model import Sequential

# Each tensor's largest difference, relative to its largest magnitude. Float32 through
# AlexNet with two different summation orders gives ~2e-6; a wrong kernel, O(1).
AGREEMENT_RTOL = 1e-4


def torch_twin(model: Sequential) -> Any:
    """A ``torch.nn.Sequential`` computing what ``model`` computes (float32), our weights copied."""
    import torch
    from torch import nn

    class PaperDropout(nn.Dropout):
        """Our ``mode="paper"`` dropout: x * mask in training, x * (1-p) at test time."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # PyTorch's dropout is inverted (mask / (1-p)); times (1-p) gives the paper's form.
            return super().forward(x) * (1 - self.p)

    class GroupedLRN(nn.LocalResponseNorm):
        """Our ``LocalResponseNorm(groups=G)``: each block of C / G channels normalised apart."""

        def __init__(self, groups: int, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.groups = groups

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            blocks = torch.chunk(x, self.groups, dim=1)
            return torch.cat([super(GroupedLRN, self).forward(b) for b in blocks], dim=1)

    modules = []
    for name, layer in model.layers.items():
        if isinstance(layer, Conv2d):
            m = nn.Conv2d(
                layer.in_channels,
                layer.out_channels,
                layer.kernel_size,
                layer.stride,
                layer.padding,
                groups=layer.groups,
            )
        elif isinstance(layer, Linear):
            m = nn.Linear(layer.in_features, layer.out_features)
        elif isinstance(layer, ReLU):
            m = nn.ReLU(inplace=True)  # as torchvision's AlexNet
        elif isinstance(layer, Tanh):
            m = nn.Tanh()
        elif isinstance(layer, Sigmoid):
            m = nn.Sigmoid()
        elif isinstance(layer, LocalResponseNorm):
            # PyTorch divides alpha by size; ours multiplies the window sum by effective_alpha.
            m = GroupedLRN(
                layer.groups,
                layer.size,
                alpha=layer.effective_alpha * layer.size,
                beta=layer.beta,
                k=layer.k,
            )
        elif isinstance(layer, MaxPool2d):
            m = nn.MaxPool2d(layer.kernel_size, layer.stride)
        elif isinstance(layer, Flatten):
            m = nn.Flatten()
        elif isinstance(layer, Dropout):
            m = PaperDropout(layer.p) if layer.mode == "paper" else nn.Dropout(layer.p)
        else:
            raise TypeError(f"torch_twin: no PyTorch counterpart for layer {name}: {layer!r}")
        if layer.params:
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(layer.params["W"].astype(np.float32)))
                m.bias.copy_(torch.from_numpy(layer.params["b"].astype(np.float32)))
        modules.append(m)
    return nn.Sequential(*modules).float()


def relative_difference(value: np.ndarray, reference: np.ndarray) -> float:
    """``max|value - reference|`` as a fraction of ``reference``'s largest magnitude."""
    return float(np.abs(value - reference).max()) / max(float(np.abs(reference).max()), 1e-30)


def check_agreement(model: Sequential, net: Any, batch: int = 2) -> float:
    """Run one eval-mode batch through both with the same labels; compare logits and every
    parameter gradient. Return the worst relative difference; raise ValueError naming the
    tensor if it exceeds ``AGREEMENT_RTOL`` (relative to the tensor's largest magnitude).
    Leaves both networks in eval mode, with this batch's gradients."""
    import torch

    rng = np.random.default_rng(1)
    x = rng.standard_normal((batch, *model.input_shape), dtype=np.float32)
    y = rng.integers(0, model.shapes[list(model.layers)[-1]][0], size=batch)
    logits = model.eval().forward(x.astype(model.dtype))
    _, dlogits = softmax_cross_entropy(logits, y)
    model.backward(dlogits)
    net.eval()
    for p in net.parameters():
        p.grad = None
    t_logits = net(torch.from_numpy(x))
    torch.nn.functional.cross_entropy(t_logits, torch.from_numpy(y)).backward()
    pairs = [("logits", logits, t_logits.detach().numpy())]
    for (name, layer), m in zip(model.layers.items(), net, strict=True):
        if layer.params:
            pairs.append((f"{name}.W gradient", layer.grads["W"], m.weight.grad.numpy()))
            pairs.append((f"{name}.b gradient", layer.grads["b"], m.bias.grad.numpy()))
    worst = 0.0
    for name, a, b in pairs:
        rel = relative_difference(a, b)
        worst = max(worst, rel)
        if rel > AGREEMENT_RTOL:
            raise ValueError(
                f"check_agreement: minialexnet and PyTorch disagree on {name}: max difference "
                f"{rel:.2e} of its largest magnitude (tolerance {AGREEMENT_RTOL:.0e})"
            )
    return worst
