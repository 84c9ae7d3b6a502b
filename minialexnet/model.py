"""A Sequential container and the AlexNet variants built with it.

Variants (``build_alexnet(variant)``), each with its input size stated — the paper's "224" does
not fit its own conv1 ((224 - 11) / 4 + 1 = 54.25), so every implementation picked a fix:

=============  =======  ========================================================================
variant        input    what it is
=============  =======  ========================================================================
ungrouped      227      Caffe's fix (227, no padding); 96/256/384/384/256 with no groups:
                        the "62.3M parameters" AlexNet. Paper layer order conv-ReLU-LRN-pool.
paper          227      the same with groups=2 in conv2, conv4, conv5: the paper's two-GPU
                        split, ~61.0M parameters (the abstract's "60 million"). Its LRN
                        normalises each half of the maps apart (groups=2: 48 + 48, 128 + 128),
                        as each of the paper's GPUs did with the maps it held (below).
torchvision    224      torchvision's "one weird trick" net: 64/192/384/256/256, conv1 padding
                        2, no LRN, no groups, inverted dropout before fc6 and fc7. (torchvision's
                        adaptive average pool is the identity at 224 input and is left out.)
mini           32x32    the same 5-conv + 3-FC shape, narrowed for CIFAR-sized images: trains on
                        a laptop CPU in minutes.
mini64         64x64    ``mini`` with a stride-2 conv1, for 64x64 images.
=============  =======  ========================================================================

Dropout in the paper-style variants follows the paper: after fc6's and fc7's ReLU, with the
paper's test-time scaling (``mode="paper"``).

LRN at the boundary of the two GPUs' halves: the paper's GPUs exchanged activations only into
conv3 and the fully connected layers [P §3.2], so each normalised its own half; cuda-convnet2's
two-GPU model-parallel ImageNet net (``layers/layers-imagenet-2gpu-model.cfg``) has one
``cmrnorm`` layer per GPU over its 48 (conv1) and 128 (conv2) maps. The ``paper`` variant does
the same (``LocalResponseNorm(groups=2)``), so that it equals the two-process split of
``minialexnet.distributed.model_parallel``. Caffe's ``bvlc_alexnet`` runs one LRN over all 96
and 256 maps instead (as the ``ungrouped`` variant does). Parameters and MACs are unchanged.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import ModuleType
from typing import Any

import numpy as np

from .layers import Layer
from .layers.base import Shape, check_array, check_float_dtype, check_positive_int, check_real


class LayerStack:
    """What a network of named layers does the same way however its forward runs: train/eval
    modes, ``no_grad``, and parameters and gradients named ``"<layer>.<param>"``. ``Sequential``
    and the model-parallel split (``distributed.model_parallel``) both build on it; ``layers``
    is set by the subclass."""

    layers: dict[str, Layer]

    @contextlib.contextmanager
    def no_grad(self) -> Iterator[Any]:
        """Inference only, inside the ``with`` block: layers may keep nothing for a backward
        (the fast engine then holds only the activations in flight), and ``backward`` after
        such a forward raises. Does not change train/eval mode: call ``eval()`` as well."""
        for layer in self.layers.values():
            layer.grad_enabled = False
        try:
            yield self
        finally:
            for layer in self.layers.values():
                layer.grad_enabled = True

    def params(self) -> dict[str, np.ndarray]:
        """Every parameter by name, e.g. ``"conv1.W"``: the arrays themselves, not copies."""
        return {
            f"{ln}.{pn}": p for ln, layer in self.layers.items() for pn, p in layer.params.items()
        }

    def grads(self) -> dict[str, np.ndarray]:
        """Every gradient from the last backward, keyed like ``params()``."""
        return {
            f"{ln}.{pn}": g for ln, layer in self.layers.items() for pn, g in layer.grads.items()
        }

    def num_params(self) -> int:
        return sum(layer.num_params() for layer in self.layers.values())

    def train(self) -> Any:
        for layer in self.layers.values():
            layer.train()
        return self

    def eval(self) -> Any:
        for layer in self.layers.values():
            layer.eval()
        return self


class Sequential(LayerStack):
    """Layers applied in order, addressable by name; parameters named ``"<layer>.<param>"``.

    The constructor runs ``output_shape`` through every layer, so a network whose layers do not
    fit together fails when it is built, naming the layer, not halfway through a forward pass.
    """

    def __init__(self, layers: Iterable[tuple[str, Layer]], input_shape: Shape, name: str = "net"):
        self.name = name
        self.layers: dict[str, Layer] = {}
        # Each axis an int >= 1 (int() would turn 2.5 into 2; an empty image is no input).
        self.input_shape = tuple(check_positive_int(name, "input_shape", s) for s in input_shape)
        self.shapes: dict[str, Shape] = {}  # per-image output shape of each layer
        shape = self.input_shape
        for layer_name, layer in layers:
            if layer_name in self.layers:
                raise ValueError(f"{name}: duplicate layer name {layer_name!r}")
            layer.name = layer_name
            shape = layer.output_shape(shape)
            self.layers[layer_name] = layer
            self.shapes[layer_name] = shape
        if not self.layers:
            raise ValueError(f"{name}: a Sequential needs at least one layer")
        # Nothing upstream of the first layer wants a gradient: skip its dL/dx (conv1's col2im).
        next(iter(self.layers.values())).needs_input_grad = False
        # An engine whose layers carry scratch memory (``layer.share_scratch``) lets them share
        # it: the layers run one at a time, so the network needs the largest layer's scratch.
        for layer in self.layers.values():
            share = getattr(layer, "share_scratch", None)
            if share is not None:
                share(self)

    # -- forward and backward -----------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        """(N, *input_shape) -> the last layer's output (logits, (N, classes))."""
        check_array(
            self.name,
            "x",
            x,
            ndim=len(self.input_shape) + 1,
            axes="NCHW",
            expected_dtype=self.dtype,
        )
        if x.shape[1:] != self.input_shape:
            raise ValueError(
                f"{self.name}: x must have per-image shape {self.input_shape}, got {x.shape[1:]}"
            )
        for layer in self.layers.values():
            x = layer.forward_unchecked(x)
        return x

    def backward(
        self,
        dout: np.ndarray,
        after_layer: Callable[[str, Layer], None] | None = None,
        run_by: Mapping[str, Callable[[np.ndarray], np.ndarray]] | None = None,
    ) -> None:
        """Backpropagate dL/d(output) through every layer, filling each layer's ``grads``.

        ``after_layer(name, layer)`` is called as each layer's backward is done (last layer
        first): a data-parallel rank starts summing a gradient there while the rest runs.
        ``run_by`` names layers whose backward another object runs (it gets their dout and
        returns their dL/dx): a data-parallel rank's dropout on its rows of the batch."""
        items = list(self.layers.items())
        self.check_params()  # they may have been replaced since the forward
        for _, layer in items[:-1]:
            layer.check_backward_allowed()
        run_by = run_by or {}
        for i, (name, layer) in enumerate(reversed(items)):
            if name in run_by:
                dout = run_by[name](dout)
            elif i == 0:  # the public backward checks dout's shape and dtype once
                dout = layer.backward(dout)
            else:
                dout = layer.backward_unchecked(dout)
            if after_layer is not None:
                after_layer(name, layer)

    # -- parameters ---------------------------------------------------------------------
    @property
    def dtype(self) -> np.dtype:
        """The one dtype of every layer's parameters (float32 for a network without any)."""
        return self.check_params()

    def check_params(self) -> np.dtype:
        """Check every layer's parameters (``Layer.check_params``) and that all layers share
        one dtype, as a layer's own parameters must; return it (float32 if there are none)."""
        dtypes = {name: layer.dtype for name, layer in self.layers.items()}
        found = {dtype for dtype in dtypes.values() if dtype is not None}
        if len(found) > 1:
            given = ", ".join(
                f"{name} {dtype}" for name, dtype in dtypes.items() if dtype is not None
            )
            raise TypeError(
                f"{self.name}: every layer's parameters must have one dtype, got {given}; call "
                f"model.astype(np.float32) (or float64)"
            )
        return found.pop() if found else np.dtype(np.float32)

    def astype(self, dtype: type | np.dtype) -> Sequential:
        """Convert every parameter to ``dtype`` in place (float64 for gradient checks)."""
        dtype = check_float_dtype(self.name, dtype)
        for layer in self.layers.values():
            layer.astype(dtype)
        return self

    def __repr__(self) -> str:
        rows = "\n".join(f"  ({n}): {layer!r}" for n, layer in self.layers.items())
        return f"Sequential {self.name} input {self.input_shape}\n{rows}"


# ----------------------------------------------------------------------------------------
# The variants
# ----------------------------------------------------------------------------------------
VARIANTS = ("ungrouped", "paper", "torchvision", "mini", "mini64")
ACTIVATIONS = ("relu", "tanh")

# The engines: packages with the same layer classes (Conv2d, ReLU, ...), the same constructor
# arguments and the same layer contract. "reference" is minialexnet/layers (plain NumPy, what
# students read and write); "fast" is minialexnet/fast (the tuned CPU engine, tested equal).
ENGINES = {"reference": "minialexnet.layers", "fast": "minialexnet.fast"}


def default_engine() -> str:
    """ "fast", or "reference" where the fast engine is absent: a student copy leaves
    minialexnet/fast out (it would hand over the solutions), so there the student's own
    reference layers run everything."""
    return "fast" if is_real_package("minialexnet.fast") else "reference"


def is_real_package(name: str) -> bool:
    """True when ``name`` is a package with files here, not absent or a bare folder."""
    spec = importlib.util.find_spec(name)
    # origin is None for a bare folder (a namespace package): no code there, just a name.
    return spec is not None and spec.origin is not None


def cuda_unavailable_reason() -> str | None:
    """None when the GPU path can run here, else one line saying why not: a student copy has
    no ``minialexnet/cuda`` (it would hand over the solutions), or no GPU answers."""
    if not is_real_package("minialexnet.cuda"):
        return "this copy has no minialexnet/cuda (a student copy leaves the GPU path out)"
    from .cuda import gpu_unavailable_reason

    return gpu_unavailable_reason()


def engine_layers(engine: str | None = None) -> ModuleType:
    """The package holding ``engine``'s layer classes (None: ``default_engine()``)."""
    engine = default_engine() if engine is None else engine
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {tuple(ENGINES)}, got {engine!r}")
    try:
        return importlib.import_module(ENGINES[engine])
    except ImportError as error:
        raise ValueError(
            f"engine {engine!r} is not available ({error}); a student copy has only "
            "engine='reference'"
        ) from error


# name: (input size, [(out channels, kernel, stride, padding, groups) for conv1..conv5],
#        fc hidden width, LRN after conv1/conv2?, default classes)
# The LRN's channel groups where they are not 1: the paper's per-GPU halves (module docstring).
_LRN_GROUPS = {"paper": 2}
_SPECS: dict[str, tuple[int, list[tuple[int, int, int, int, int]], int, bool, int]] = {
    "ungrouped": (
        227,
        [
            (96, 11, 4, 0, 1),
            (256, 5, 1, 2, 1),
            (384, 3, 1, 1, 1),
            (384, 3, 1, 1, 1),
            (256, 3, 1, 1, 1),
        ],
        4096,
        True,
        1000,
    ),
    "paper": (
        227,
        [
            (96, 11, 4, 0, 1),
            (256, 5, 1, 2, 2),
            (384, 3, 1, 1, 1),
            (384, 3, 1, 1, 2),
            (256, 3, 1, 1, 2),
        ],
        4096,
        True,
        1000,
    ),
    "torchvision": (
        224,
        [
            (64, 11, 4, 2, 1),
            (192, 5, 1, 2, 1),
            (384, 3, 1, 1, 1),
            (256, 3, 1, 1, 1),
            (256, 3, 1, 1, 1),
        ],
        4096,
        False,
        1000,
    ),
    "mini": (
        32,
        [(32, 5, 1, 2, 1), (64, 5, 1, 2, 1), (96, 3, 1, 1, 1), (96, 3, 1, 1, 1), (64, 3, 1, 1, 1)],
        256,
        True,
        10,
    ),
    "mini64": (
        64,
        [(32, 5, 2, 2, 1), (64, 5, 1, 2, 1), (96, 3, 1, 1, 1), (96, 3, 1, 1, 1), (64, 3, 1, 1, 1)],
        256,
        True,
        10,
    ),
}


def input_size(variant: str) -> int:
    """The input height (= width) a variant expects, without building it."""
    if variant not in _SPECS:
        raise ValueError(f"input_size: variant must be one of {VARIANTS}, got {variant!r}")
    return _SPECS[variant][0]


def build_alexnet(
    variant: str = "ungrouped",
    *,
    num_classes: int | None = None,
    dtype: type | np.dtype = np.float32,
    seed: int = 0,
    dropout: float = 0.5,
    lrn_convention: str = "paper",
    activation: str = "relu",
    lrn: bool | None = None,
    pool: tuple[int, int] = (3, 2),
    engine: str | None = None,
) -> Sequential:
    """Build one of ``VARIANTS``: conv1..conv5 (ReLU; LRN after 1-2; max-pool 3/2 after 1, 2, 5),
    then fc6, fc7 (ReLU + dropout) and fc8 giving logits. Weights are He-normal from ``seed``.

    The switches take one of the paper's design choices out, for the lessons that measure it:
    ``activation="tanh"`` (§3.1), ``lrn=False`` (§3.3; None keeps the variant's own choice),
    ``pool=(2, 2)`` for non-overlapping pooling (§3.4), ``dropout=0`` for no dropout layers (§4.2).
    ``engine`` picks the layers' implementation (``ENGINES``; default ``default_engine()``):
    both give the same network, parameters and outputs.
    """
    if variant not in _SPECS:
        raise ValueError(f"build_alexnet: variant must be one of {VARIANTS}, got {variant!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"build_alexnet: activation must be one of {ACTIVATIONS}, got {activation!r}"
        )
    if not isinstance(pool, (tuple, list)) or len(pool) != 2:
        raise ValueError(f"build_alexnet: pool must be (kernel, stride), got {pool!r}")
    # Checked here, not only by the layers, so that the message names build_alexnet's own
    # argument (a bad num_classes would otherwise read "Linear: out_features ...").
    name = "build_alexnet"
    for argument, value in (("pool kernel", pool[0]), ("pool stride", pool[1])):
        check_positive_int(name, argument, value)
    if num_classes is not None:
        check_positive_int(name, "num_classes", num_classes)
    check_positive_int(name, "seed", seed, minimum=0)
    check_real(name, "dropout", dropout, low=0, high=1)
    if lrn is not None and not isinstance(lrn, bool):
        raise TypeError(f"{name}: lrn must be True, False or None, got {lrn!r}")
    size, convs, hidden, use_lrn, default_classes = _SPECS[variant]
    use_lrn = use_lrn if lrn is None else lrn
    L = engine_layers(engine)
    act = {"relu": L.ReLU, "tanh": L.Tanh}[activation]
    num_classes = default_classes if num_classes is None else num_classes
    rng = np.random.default_rng(seed)
    torchvision_style = variant == "torchvision"
    dropout_mode = "inverted" if torchvision_style else "paper"

    layers: list[tuple[str, Layer]] = []
    channels = 3
    for i, (out_ch, k, s, p, g) in enumerate(convs, start=1):
        conv = L.Conv2d(channels, out_ch, k, s, p, g, rng=rng, dtype=dtype)
        layers += [(f"conv{i}", conv), (f"{activation}{i}", act())]
        if use_lrn and i in (1, 2):
            norm = L.LocalResponseNorm(
                convention=lrn_convention, groups=_LRN_GROUPS.get(variant, 1)
            )
            layers.append((f"norm{i}", norm))
        if i in (1, 2, 5):
            layers.append((f"pool{i}", L.MaxPool2d(*pool)))
        channels = out_ch
    layers.append(("flatten", L.Flatten()))
    features = Sequential(layers, (3, size, size))  # only to learn fc6's input width
    (width,) = features.shapes["flatten"]
    for i, out_features in ((6, hidden), (7, hidden)):
        drop = (
            [(f"drop{i}", L.Dropout(dropout, mode=dropout_mode, seed=seed + i))] if dropout else []
        )
        fc = [(f"fc{i}", L.Linear(width, out_features, rng=rng, dtype=dtype))]
        relu = [(f"{activation}{i}", act())]
        layers += drop + fc + relu if torchvision_style else fc + relu + drop
        width = out_features
    layers.append(("fc8", L.Linear(width, num_classes, rng=rng, dtype=dtype)))
    return Sequential(layers, (3, size, size), name=f"alexnet-{variant}")


def model_from_config(
    config: Mapping[str, Any], num_classes: int, *, engine: str | None = None
) -> Sequential:
    """The network a run's config describes (a ``TrainConfig`` as the dict a checkpoint saves),
    with ``build_alexnet``'s He-normal weights from the config's seed.

    ``engine`` overrides the config's own: the engines share parameters, so a checkpoint runs
    on either. A config without one (checkpoints from before engines) gets the default.
    """
    return build_alexnet(
        config["variant"],
        num_classes=num_classes,
        seed=config["seed"],
        dropout=config["dropout"],
        activation=config["activation"],
        lrn=config["lrn"],
        pool=tuple(config["pool"]),
        engine=engine if engine is not None else config.get("engine"),
    )
