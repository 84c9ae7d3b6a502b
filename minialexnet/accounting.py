"""Parameter, compute and memory accounting, computed from the layer objects themselves.

Conventions (docs/facts.md, "Counts"; torchvision's ``_ops`` counts the same way):
* parameters = weights + biases;
* MACs = weight multiply-accumulates of one image's forward pass (bias adds, ReLU, LRN and
  pooling are not counted); FLOPs = 2 x MACs; forward + backward ~ 3 x forward;
* activation memory = the elements of each layer's output, per image, times the dtype's size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .model import Sequential


@dataclass(frozen=True)
class LayerRow:
    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    macs: int
    activation_bytes: int


@dataclass(frozen=True)
class Summary:
    model_name: str
    input_shape: tuple[int, ...]
    rows: list[LayerRow]

    @property
    def total_params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def total_macs(self) -> int:
        return sum(r.macs for r in self.rows)

    @property
    def total_activation_bytes(self) -> int:
        return sum(r.activation_bytes for r in self.rows)

    def _share(self, kind: str, field: str) -> float:
        part = sum(getattr(r, field) for r in self.rows if r.kind == kind)
        return part / max(1, sum(getattr(r, field) for r in self.rows))

    @property
    def conv_param_share(self) -> float:
        return self._share("Conv2d", "params")

    @property
    def conv_mac_share(self) -> float:
        return self._share("Conv2d", "macs")

    def table(self) -> str:
        """The per-layer table with totals, as ``python -m minialexnet summary`` prints it."""
        header = f"{'layer':<9}{'type':<18}{'output':>16}{'params':>14}{'MACs':>16}{'act. KiB':>11}"
        lines = [
            f"{self.model_name}, input {format_shape(self.input_shape)}",
            header,
            "-" * len(header),
        ]
        for r in self.rows:
            lines.append(
                f"{r.name:<9}{r.kind:<18}{format_shape(r.output_shape):>16}{r.params:>14,}"
                f"{r.macs:>16,}{r.activation_bytes / 1024:>11,.1f}"
            )
        lines += [
            "-" * len(header),
            f"{'total':<27}{'':>16}{self.total_params:>14,}{self.total_macs:>16,}"
            f"{self.total_activation_bytes / 1024:>11,.1f}",
            f"conv layers: {self.conv_param_share:.2%} of parameters, "
            f"{self.conv_mac_share:.2%} of MACs; forward {2 * self.total_macs / 1e9:.2f} GFLOP "
            f"per image, forward+backward ~{6 * self.total_macs / 1e9:.2f} GFLOP",
        ]
        return "\n".join(lines)


def format_shape(shape: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in shape)


def summarize(model: Sequential, dtype: type | np.dtype | None = None) -> Summary:
    """One row per layer: output shape, parameters, forward MACs, activation bytes per image."""
    itemsize = np.dtype(dtype if dtype is not None else model.dtype).itemsize
    rows = []
    in_shape = model.input_shape
    for name, layer in model.layers.items():
        out_shape = model.shapes[name]
        rows.append(
            LayerRow(
                name=name,
                kind=type(layer).__name__,
                output_shape=out_shape,
                params=layer.num_params(),
                macs=layer.macs(in_shape),
                activation_bytes=int(np.prod(out_shape)) * itemsize,
            )
        )
        in_shape = out_shape
    return Summary(model.name, model.input_shape, rows)
