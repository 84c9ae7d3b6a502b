# %% [markdown]
# # Lesson 07: two stacked 3×3 convolutions versus one 5×5
#
# AlexNet's kernels are large: 11×11 in conv1, 5×5 in conv2. Two years later VGG (Simonyan and
# Zisserman, 2014) built its whole network from 3×3 kernels, arguing that a stack of small
# kernels sees as far as one large kernel, with fewer parameters and more non-linearities.
# This lesson checks each part of that argument with the layer objects, then trains both
# versions of a small net on the digits.
#
# The comparison, for a block that maps C channels to C channels:
#
# | | one 5×5 conv | two 3×3 convs |
# |---|---|---|
# | weights | 25·C² | 2·9·C² = 18·C² |
# | receptive field | 5×5 | 3×3, then 3×3 of those: 5×5 |
# | MACs per output pixel | 25·C² | 18·C² |
# | non-linearities | 1 ReLU | 2 ReLUs |

# %%
import numpy as np

from minialexnet import Sequential, summarize
from minialexnet.data import Preprocessor
from minialexnet.inference import evaluate
from minialexnet.model import engine_layers
from minialexnet.optim import SGD
from minialexnet.plots import image_grid, plot_runs, quick_mode, save_figure
from minialexnet.train import TrainConfig, Trainer, load_splits

QUICK = quick_mode()
C = 48  # channels in and out of the block being compared
# The layer classes of the default engine: the fast one (in a student copy, the student's own
# reference layers). Both engines build the same networks.
engine = engine_layers()

# %% [markdown]
# ## 1. Parameters and MACs, counted from the layers
#
# Each block works on C×15×15 feature maps (what a 32×32 image becomes after conv1 and one
# 3/2 max-pool). `summarize` counts parameters and multiply-accumulates layer by layer.


# %%
def block(kind: str, rng: np.random.Generator) -> list[tuple[str, object]]:
    """The block under study: one 5×5 conv, or two 3×3 convs with a ReLU between, C -> C."""
    if kind == "5x5":
        return [("conv5x5", engine.Conv2d(C, C, 5, 1, 2, rng=rng)), ("relu_a", engine.ReLU())]
    return [
        ("conv3x3_a", engine.Conv2d(C, C, 3, 1, 1, rng=rng)),
        ("relu_a", engine.ReLU()),
        ("conv3x3_b", engine.Conv2d(C, C, 3, 1, 1, rng=rng)),
        ("relu_b", engine.ReLU()),
    ]


for kind in ("5x5", "3x3+3x3"):
    s = summarize(Sequential(block(kind, np.random.default_rng(0)), (C, 15, 15), name=kind))
    weights = sum(r.params for r in s.rows) - (C if kind == "5x5" else 2 * C)  # minus biases
    print(
        f"{kind:>8}: {weights:,} weights = {weights // C**2}·C², "
        f"{s.total_macs:,} MACs = {s.total_macs // (15 * 15 * C**2)}·C² per output pixel"
    )
print(f"the stack needs {18 / 25:.0%} of the weights and of the MACs")

# %% [markdown]
# ## 2. The receptive field, measured with backward
#
# Which input pixels can change the block's output at the centre pixel? Backpropagate a
# gradient of 1 from that output position alone (every channel) and see where dL/dx is
# non-zero. Averaged over random weights and inputs, the magnitude also shows *how much* each
# input pixel matters: uniform over the 5×5 for the single kernel; peaked in the middle for the
# stack, because the centre pixel reaches the output along many more paths (9 of them) than a
# corner pixel (1 path) — the "effective receptive field" is smaller than the nominal one.


# %%
def input_influence(kind: str, trials: int) -> np.ndarray:
    """Mean |dL/dx| (11×11 input, summed over channels) for L = the centre output, all channels."""
    total = np.zeros((11, 11))
    for t in range(trials):
        rng = np.random.default_rng(t)
        net = Sequential(block(kind, rng), (C, 11, 11), name=kind)
        x = rng.standard_normal((1, C, 11, 11)).astype(np.float32)
        out = net.forward(x)
        dout = np.zeros_like(out)
        dout[0, :, 5, 5] = 1.0
        layers = list(net.layers.values())
        layers[0].needs_input_grad = True  # Sequential skips its first layer's dL/dx; we want it
        grad = dout
        for layer in reversed(layers):
            grad = layer.backward(grad)
        total += np.abs(grad[0]).sum(axis=0)
    return total / trials


trials = 2 if QUICK else 20
maps = {kind: input_influence(kind, trials) for kind in ("5x5", "3x3+3x3")}
for kind, m in maps.items():
    print(f"{kind:>8}: input pixels that reach the centre output: {np.count_nonzero(m)} (5×5 = 25)")
    print(np.array2string(m[3:8, 3:8] / m.max(), precision=2, suppress_small=True))
save_figure(
    image_grid(
        [m / m.max() for m in maps.values()],
        [f"{k}: mean |dL/dx|" for k in maps],
        ncols=2,
        size=3.0,
        cmap="viridis",
        title="Which input pixels reach one output pixel (11×11 input)",
    ),
    "07_receptive_fields",
)

# %% [markdown]
# ## 3. Training both on the digits
#
# The same small net around each block: conv1 (3→C, 3×3) → ReLU → max-pool 3/2 → **block** →
# max-pool 3/2 → a linear classifier. Same seed, same data order, same learning rate, no
# dropout; only the block differs.


# %%
def small_net(kind: str) -> Sequential:
    rng = np.random.default_rng(0)
    layers = [
        ("conv1", engine.Conv2d(3, C, 3, 1, 1, rng=rng)),
        ("relu1", engine.ReLU()),
        ("pool1", engine.MaxPool2d(3, 2)),
        *block(kind, rng),
        ("pool2", engine.MaxPool2d(3, 2)),
        ("flatten", engine.Flatten()),
    ]
    width = Sequential(layers, (3, 32, 32)).shapes["flatten"][0]
    return Sequential([*layers, ("fc", engine.Linear(width, 10, rng=rng))], (3, 32, 32), name=kind)


config = TrainConfig()
train_set, val_set, test_set = load_splits(config, limit=96 if QUICK else None)
pre = Preprocessor.fit(train_set, 32)
epochs = 1 if QUICK else 8
histories, test_error, params = {}, {}, {}
for kind in ("5x5", "3x3+3x3"):
    model = small_net(kind)
    trainer = Trainer(model, SGD(model, lr=0.01), pre, train_set, val_set, batch_size=32)
    trainer.fit(epochs)
    histories[kind] = trainer.history
    test_error[kind] = evaluate(model, pre, test_set)["top1_error"]
    params[kind] = model.num_params()
for kind in histories:
    print(f"{kind:>8}: {params[kind]:,} parameters, test error {test_error[kind]:.2%}")
save_figure(
    plot_runs(histories, "One 5×5 block vs two 3×3 blocks on digits", test=test_error),
    "07_training",
)

# %% [markdown]
# On 32×32 digits both nets learn the task; with 1,295 training images and a few epochs, the
# difference in test error between them is within the noise of one run (change the seed in
# `small_net` and watch it move). What the stack buys is fixed and measurable: 28% fewer
# weights and MACs for the same receptive field, and one more ReLU. VGG's case rested on
# ImageNet, where depth paid off: the 3×3 stacks let it go to 16–19 layers.
#
# ## Exercises
#
# 1. Three stacked 3×3 convs see 7×7. Work out weights and MACs against one 7×7 (27·C² vs
#    49·C²), then check them with `summarize`.
# 2. Remove the ReLU between the two 3×3 convs. Show that the stack is then exactly one 5×5
#    conv (hint: compose the kernels) — so what does the stack still gain?
# 3. AlexNet's conv1 is 11×11 with stride 4. Why is replacing it by 3×3 convs less attractive
#    than replacing conv2 (think of the input channels and the stride)?
