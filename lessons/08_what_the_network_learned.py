# %% [markdown]
# # Lesson 08: what the network learned
#
# The paper's Figure 3 shows the 96 first-layer kernels (11×11×3) learned on ImageNet: edges at
# many orientations and frequencies, and coloured blobs. They were learned, not designed — the
# same kinds of filters that vision scientists found in the primary visual cortex and that
# engineers had built by hand (Gabor filters). [P §6.1] also notes the two GPUs specialised: the
# kernels on GPU 1 were "largely color-agnostic", those on GPU 2 "largely color-specific".
#
# Here we train the `mini` net on the digits for a few minutes' worth of CPU and look inside:
# its 32 conv1 kernels (5×5×3), and the feature maps one digit produces at conv1, conv2 and
# conv5. To look at a net trained elsewhere (say on CIFAR-10 with `python -m minialexnet train
# --dataset cifar10 --data data/cifar-10-batches-bin`), set `CHECKPOINT` to its
# `checkpoint.npz`.

# %%
import numpy as np

from minialexnet.inference import load_trained
from minialexnet.plots import filter_mosaic, image_grid, quick_mode, save_figure
from minialexnet.train import TrainConfig, build_model, load_splits, train

QUICK = quick_mode()
CHECKPOINT = None  # or "runs/<run>/checkpoint.npz"

# %%
config = TrainConfig(epochs=1 if QUICK else 10, batch_size=32, lr=0.01, patience=2)
if CHECKPOINT is None:
    splits = load_splits(config, limit=64 if QUICK else None)
    result = train(config, splits=splits)
    model, pre, test_set = result.trainer.model, result.trainer.pre, splits[2]
    print(f"test error after {config.epochs} epochs: {result.test['top1_error']:.2%}")
else:
    trained = load_trained(CHECKPOINT)
    model, pre = trained.model, trained.pre
    test_set = load_splits(TrainConfig.from_dict(trained.config), limit=64)[2]
model.eval()

# %% [markdown]
# ## 1. The first-layer filters
#
# Each kernel is drawn as a small RGB image, stretched to its own range (as the paper's figure
# does), so its pattern shows whatever its size.

# %%
W = model.params()["conv1.W"]
print(f"conv1 weights: {W.shape} (filters, colour channels, height, width)")
save_figure(filter_mosaic(W, title=f"The {len(W)} conv1 kernels (5×5×3)"), "08_conv1_filters")

# %% [markdown]
# Noise, in every colour. Two reasons, and both can be measured.
#
# **Ten epochs move the kernels only a little** from their random start. **And the digits
# are grey** — R = G = B in every pixel — so the gradient of a kernel's red plane always
# equals that of its green and blue planes: training adds the *same* change to all three, and
# the differences between the planes are whatever the initialisation put there, shrunk a
# little every step by the weight decay. So subtract the initialisation (the same seed rebuilds
# it) and look at what training added:

# %%
if CHECKPOINT is None:
    initial = build_model(config, len(test_set.classes)).params()["conv1.W"]
    learned_diff, initial_diff = W[:, 0] - W[:, 1], initial[:, 0] - initial[:, 1]
    ratio = float((learned_diff * initial_diff).sum() / (initial_diff**2).sum())
    corr = np.corrcoef(learned_diff.ravel(), initial_diff.ravel())[0, 1]
    change = W - initial
    common = np.repeat(change.mean(axis=1, keepdims=True), 3, axis=1)  # the R = G = B part
    grown = np.linalg.norm(change) / np.linalg.norm(initial)
    colour_part = np.linalg.norm(change - common) / np.linalg.norm(change)
    print(f"(R − G) of the trained kernels = {ratio:.4f} × (R − G) at initialisation")
    print(f"  (correlation {corr:.6f}); the change W − W_init is {grown:.2f}× the size of W_init;")
    print(f"  {colour_part:.0%} of it differs between R, G and B (the weight decay at work)")
    save_figure(
        filter_mosaic(common, title="What training added to each kernel (its R = G = B part)"),
        "08_conv1_learned_change",
    )

# %% [markdown]
# With the initial noise subtracted the structure shows: most kernels are oriented edges —
# light on one side, dark on the other, at various angles — and a few are bars and spots: the
# small-scale, grey version of Figure 3's edge detectors, learned in ten epochs from 1,295
# digits. A net trained on colour photographs has no such symmetry, and its conv1 learns colour
# blobs and colour-opponent edges: train one on CIFAR-10 and set `CHECKPOINT`.
#
# ## 2. Feature maps of one image
#
# What each layer computes for one test digit: the image, then the most active channels
# (after the ReLU) of conv1 (32×32), conv2 (15×15) and conv5 (7×7). Each map is scaled to its
# own range.

# %%
image = test_set.images[:1]
x = pre.test_batch(image)
activations = {}
for name, layer in model.layers.items():
    x = layer.forward(x)
    if name in ("relu1", "relu2", "relu5"):
        activations[name] = x[0]
digit = test_set.classes[test_set.labels[0]]
tiles, titles, row_labels = [], [], []
for row, (name, maps) in enumerate(activations.items()):
    layer_name = name.replace("relu", "conv")
    size = "×".join(map(str, maps.shape[1:]))
    row_labels.append(f"{'input, then ' if row == 0 else ''}{layer_name}\n({size} maps)")
    tiles.append(test_set.images[0].mean(axis=0) / 255 if row == 0 else None)  # the input, once
    titles.append(f"input: a {digit}" if row == 0 else "")
    strongest = np.argsort(-maps.max(axis=(1, 2)))[:7]
    tiles += [maps[c] for c in strongest]
    titles += [f"{layer_name} ch {c}" for c in strongest]
    alive = (maps.max(axis=(1, 2)) > 0).mean()
    print(f"{layer_name}: {maps.shape}, {alive:.0%} of channels active here")
grid = image_grid(
    tiles,
    titles,
    ncols=8,
    cmap="magma",
    title="Feature maps of one test digit: each row, a layer's 7 most active channels (after ReLU)",
    row_labels=row_labels,
)
save_figure(grid, "08_feature_maps")

# %% [markdown]
# conv1's maps are still pictures of the digit (each a filtered copy: an edge orientation, a
# stroke); by conv5, at 7×7, they are no longer pictures but a code — which parts of the image
# contain which combinations of strokes — and fc6–fc8 read the class from that code.
#
# ## Exercises
#
# 1. Train on CIFAR-10 (`python data/fetch.py cifar10`, then the CLI) and run this lesson with
#    `CHECKPOINT` set. Which conv1 kernels are colour-specific, which colour-agnostic?
# 2. Plot conv1's kernels after 1, 3 and 10 epochs. When does the structure appear, and how
#    does it depend on the weight decay?
# 3. Find the 9 test digits that most activate one conv5 channel (its largest value over
#    positions). Do they have something in common?
