# %% [markdown]
# # Lesson 07: stacks of 3×3 convolutions versus one 5×5 or 7×7: fewer weights, the same view
#
# AlexNet's kernels are large: 11×11 in conv1, 5×5 in conv2. Two years later VGG (Simonyan and
# Zisserman, 2014) built its whole network from 3×3 kernels, arguing that a stack of small
# kernels sees as far as one large kernel, with fewer parameters and more non-linearities.
# This lesson checks each part of that argument with the layer objects, for two stacked 3×3
# against one 5×5 and three stacked 3×3 against one 7×7, then trains all four versions of a
# small net on the digits, three seeds each.
#
# The comparison, for a block that maps C channels to C channels (what section 1 counts):
#
# | | one 5×5 conv | two 3×3 convs | one 7×7 conv | three 3×3 convs |
# |---|---|---|---|---|
# | weights | 25·C² | 2·9·C² = 18·C² | 49·C² | 3·9·C² = 27·C² |
# | receptive field | 5×5 | 3×3, then 3×3 of those: 5×5 | 7×7 | 7×7 |
# | MACs per output pixel | 25·C² | 18·C² | 49·C² | 27·C² |
# | non-linearities | 1 ReLU | 2 ReLUs | 1 ReLU | 3 ReLUs |

# %%
import numpy as np
from tqdm import tqdm

from minialexnet import Sequential, summarize
from minialexnet.data import Preprocessor
from minialexnet.inference import evaluate
from minialexnet.model import engine_layers
from minialexnet.optim import SGD
from minialexnet.plots import quick_mode, save_figure
from minialexnet.plots.kernels import plot_kernel_training, plot_receptive_fields
from minialexnet.train import TrainConfig, Trainer, load_splits

QUICK = quick_mode()
C = 48  # channels in and out of the block being compared
# each block: (kernel size, how many stacked), and the pairs that see the same receptive field
KINDS = {"5x5": (5, 1), "3x3 x2": (3, 2), "7x7": (7, 1), "3x3 x3": (3, 3)}
PAIRS = (("5x5", "3x3 x2"), ("7x7", "3x3 x3"))
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
    """The block under study, C -> C: ``KINDS[kind]`` = (k, n): n k×k convs (padding k // 2,
    so the maps keep their size), each followed by a ReLU."""
    k, n = KINDS[kind]
    layers = []
    for i in range(n):
        layers += [(f"conv{k}x{k}_{i}", engine.Conv2d(C, C, k, 1, k // 2, rng=rng))]
        layers += [(f"relu_{i}", engine.ReLU())]
    return layers


counts = {}
for kind in KINDS:
    net = Sequential(block(kind, np.random.default_rng(0)), (C, 15, 15), name=kind)
    weights = sum(p.size for name, p in net.params().items() if name.endswith(".W"))
    counts[kind] = (weights, summarize(net).total_macs)
    print(
        f"{kind:>7}: {weights:,} weights = {weights // C**2}·C², {counts[kind][1]:,} MACs = "
        f"{counts[kind][1] // (15 * 15 * C**2)}·C² per output pixel, {KINDS[kind][1]} ReLU(s)"
    )
for large, stack in PAIRS:
    (w_large, m_large), (w_stack, m_stack) = counts[large], counts[stack]
    print(
        f"{stack} against {large}: {w_stack / w_large:.0%} of the weights and "
        f"{m_stack / m_large:.0%} of the MACs"
    )

# %% [markdown]
# ## 2. The receptive field, measured with backward
#
# Which input pixels can change the block's output at the centre pixel of a 15×15 map?
# Backpropagate a gradient of 1 from that output position alone (every channel) and see where
# dL/dx is non-zero. Averaged over random weights and inputs, the magnitude also shows *how
# much* each input pixel matters: uniform over the k×k for a single kernel; peaked in the
# middle for a stack, because the centre pixel reaches the output along many more paths (9 of
# them for two 3×3, 49 for three) than a corner pixel (1 path) — the "effective receptive
# field" is smaller than the nominal one.


# %%
def input_influence(kind: str, trials: int) -> np.ndarray:
    """Mean |dL/dx| (15×15 input, summed over channels) for L = the centre output, all channels."""
    total = np.zeros((15, 15))
    for t in range(trials):
        rng = np.random.default_rng(t)
        net = Sequential(block(kind, rng), (C, 15, 15), name=kind)
        x = rng.standard_normal((1, C, 15, 15)).astype(np.float32)
        out = net.forward(x)
        dout = np.zeros_like(out)
        dout[0, :, 7, 7] = 1.0
        layers = list(net.layers.values())
        layers[0].needs_input_grad = True  # Sequential skips its first layer's dL/dx; we want it
        grad = dout
        for layer in reversed(layers):
            grad = layer.backward(grad)
        total += np.abs(grad[0]).sum(axis=0)
    return total / trials


trials = 2 if QUICK else 20
maps = {kind: input_influence(kind, trials) for kind in KINDS}
for kind, m in maps.items():
    k, n = KINDS[kind]
    side = 1 + n * (k - 1)  # each stride-1 k×k layer widens the view by k - 1
    reached = np.count_nonzero(m)
    print(
        f"{kind:>7}: input pixels that reach the centre output: {reached} "
        f"({'=' if reached == side**2 else '!='} {side}×{side} = {side**2}); "
        f"corner / centre influence {m[7 - side // 2, 7 - side // 2] / m[7, 7]:.3f}"
    )
    print(np.array2string(m[4:11, 4:11] / m.max(), precision=2, suppress_small=True))
save_figure(plot_receptive_fields(maps), "07_receptive_fields")

# %% [markdown]
# ## 3. Training all four on the digits, three seeds each
#
# The same small net around each block: conv1 (3→C, 3×3) → ReLU → max-pool 3/2 → **block** →
# max-pool 3/2 → a linear classifier. For each seed, every net starts from weights drawn from
# that seed and sees the same data order, learning rate (0.01) and number of epochs; no
# dropout. Only the block differs. One test image is 0.28% of the test error, so only a
# difference larger than the spread over seeds means anything.


# %%
def small_net(kind: str, seed: int) -> Sequential:
    rng = np.random.default_rng(seed)
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
EPOCHS = 1 if QUICK else 4  # fewer than a full training (40): four nets x three seeds must fit
SEEDS = (0,) if QUICK else (0, 1, 2)
val_errors = {kind: np.zeros((len(SEEDS), EPOCHS)) for kind in KINDS}
test_errors = {kind: np.zeros(len(SEEDS)) for kind in KINDS}
params = {}
for kind, (j, seed) in tqdm([(k, js) for k in KINDS for js in enumerate(SEEDS)], desc="training"):
    model = small_net(kind, seed)
    trainer = Trainer(
        model,
        SGD(model, lr=0.01),
        pre,
        train_set,
        val_set,
        batch_size=32,
        seed=seed,
        progress=False,
    )
    trainer.fit(EPOCHS)
    val_errors[kind][j] = [h["val_error"] for h in trainer.history]
    test_errors[kind][j] = evaluate(model, pre, test_set)["top1_error"]
    params[kind] = model.num_params()
print(f"after {EPOCHS} epochs, seeds {SEEDS}:")
for kind, errs in test_errors.items():
    per_seed = "  ".join(f"{e:6.2%}" for e in errs)
    print(
        f"{kind:>7}: {params[kind]:>7,} parameters, test error {per_seed}   "
        f"mean {errs.mean():.2%} (min-max {errs.min():.2%}-{errs.max():.2%})"
    )
for large, stack in PAIRS:
    a, b = test_errors[stack], test_errors[large]
    overlap = a.min() <= b.max() and b.min() <= a.max()
    verdict = (
        "the seeds' ranges overlap: the difference is within the spread"
        if overlap
        else f"every seed of {stack if a.max() < b.min() else large} beats every seed of the other"
    )
    print(
        f"{stack} vs {large}: mean test error {a.mean():.2%} vs {b.mean():.2%} "
        f"({'lower' if a.mean() < b.mean() else 'not lower'} for the stack); {verdict}"
    )
save_figure(plot_kernel_training(val_errors, test_errors, SEEDS), "07_training")

# %% [markdown]
# The printed lines say, for each pair, whether the stack's test error is lower and whether the
# difference is larger than the spread over three seeds; on 1,295 training images of 32×32
# digits and a few epochs, read them with that spread in mind. What the stack buys is fixed and
# measurable whatever the training shows: the weights and MACs of section 1 (72% of the 5×5's,
# 55% of the 7×7's) for the same receptive field (section 2), and one or two more ReLUs. VGG's
# case rested on ImageNet, where depth paid off: the 3×3 stacks let it go to 16–19 layers.
#
# ## Exercises
#
# 1. Five stacked 3×3 convs see 11×11, like AlexNet's conv1. Work out their weights and MACs
#    against one 11×11 conv (45·C² vs 121·C²), then check them with `summarize`.
# 2. Remove the ReLU between the two 3×3 convs. Show that the stack is then exactly one 5×5
#    conv (hint: compose the kernels) — so what does the stack still gain?
# 3. AlexNet's conv1 is 11×11 with stride 4. Why is replacing it by 3×3 convs less attractive
#    than replacing conv2 (think of the input channels and the stride)?
# 4. Train the four nets of section 3 for 20 epochs. Does the order of the test errors change,
#    and does the spread over seeds shrink?
