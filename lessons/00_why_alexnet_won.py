# %% [markdown]
# # Lesson 00: why AlexNet won — more data, faster hardware, and five tricks, each with a number
#
# In 2012 AlexNet won ILSVRC with 15.3% top-5 test error (an average of seven such CNNs)
# against the runner-up's 26.2% [P §6]. Three reasons are usually given, and the paper names
# the first two itself: "all of our experiments suggest that our results can be improved
# simply by waiting for faster GPUs and bigger datasets to become available" [P §1].
#
# 1. **Data**: ImageNet's 1.2 million labelled training images, where earlier benchmarks had
#    tens of thousands [P §1]. Even with that many, the 60-million-parameter net overfit
#    "substantially" without augmentation and dropout [P §4].
# 2. **GPUs**: training took 5–6 days on two NVIDIA GTX 580 cards [P §5]; on the CPUs of the
#    time it would have taken far longer.
# 3. **The algorithm**: ReLUs, dropout, data augmentation, local response normalisation and
#    overlapping pooling, each with a measured gain in the paper.
#
# This lesson puts a number on each: (1) the test error of the `mini` AlexNet on the digits
# against the number of training images, (2) the arithmetic of one AlexNet training at the
# FLOP rates of a GTX 580, of this CPU and of an H200, and (3) the paper's claims for each
# trick, with the lesson of this course that measures it. Sources ([P], [NV], [here]) are in
# `docs/facts.md`.

# %%
import numpy as np
from tqdm import tqdm

from minialexnet import build_alexnet, summarize
from minialexnet.data import num_batches
from minialexnet.data.datasets import split_off
from minialexnet.plots import quick_mode, save_figure
from minialexnet.plots.why import format_duration, plot_learning_curve, plot_training_days
from minialexnet.timing import blas_threads, timed_calls
from minialexnet.train import TrainConfig, load_splits, train

QUICK = quick_mode()

# %% [markdown]
# ## 1. Data: test error against the number of training images
#
# The digits set (scikit-learn's 8×8 handwritten digits, scaled to the `mini` net's 32×32
# input) has a training split of 1,295 images once the 143 validation images are carved out
# (and 359 test images). We train the `mini` AlexNet (5 conv + 3 FC layers, 463,562
# parameters, the fast engine, the default training recipe: batch 32, lr 0.01, momentum 0.9,
# dropout, random crops) on 10%, 25%, 50% and 100% of it, three seeds each; a seed picks the
# subset, the initial weights and the order of the images, so the spread shows all three kinds
# of chance.
#
# **Deviations, to fit the time budget**: the default recipe trains 40 epochs (1.7–2.8% test
# error over seeds 0–2, see README); here every run gets the same number of SGD steps (`STEPS`
# below, a few epochs of the full split), so a small subset is seen many more times than the
# full split, and the learning rate is never divided, so every size gets the same schedule.
# Each run therefore has the same compute, and what differs is only how many *distinct* images
# it learns from; the full split is not trained to convergence.

# %%
FRACTIONS = (0.25, 1.0) if QUICK else (0.1, 0.25, 0.5, 1.0)
SEEDS = (0, 1) if QUICK else (0, 1, 2)
STEPS = 4 if QUICK else 240  # SGD steps per run, whatever the size (batch 32)
BATCH = 32

base = TrainConfig(batch_size=BATCH)
train_full, val_set, test_set = load_splits(base, limit=120 if QUICK else None)


def subset(fraction: float, seed: int):
    """``fraction`` of every class of the training split, drawn with ``seed``."""
    return train_full if fraction >= 1 else split_off(train_full, fraction, seed=seed)[1]


sizes = [len(subset(f, 0)) for f in FRACTIONS]
errors = np.zeros((len(FRACTIONS), len(SEEDS)))
train_errors = np.zeros_like(errors)  # last epoch's, measured with dropout and crops on
runs = [(i, j) for i in range(len(FRACTIONS)) for j in range(len(SEEDS))]
for i, j in tqdm(runs, desc="data: size x seed"):
    images = subset(FRACTIONS[i], SEEDS[j])
    epochs = max(1, round(STEPS / num_batches(len(images), BATCH)))  # about STEPS steps
    # max_lr_drops=0: the plateau rule counts epochs, and a small subset's epochs are a few
    # steps each, so it would divide the rate after a few dozen steps for the small sizes only
    config = TrainConfig(batch_size=BATCH, epochs=epochs, seed=SEEDS[j], max_lr_drops=0)
    result = train(config, splits=(images, val_set, test_set), progress=False)
    errors[i, j] = result.test["top1_error"]
    train_errors[i, j] = result.history[-1]["train_error"]

print(f"{'fraction':>8} {'images':>7} {'epochs':>6}   test error per seed {SEEDS}   mean ± sd")
for i, fraction in enumerate(FRACTIONS):
    epochs = max(1, round(STEPS / num_batches(sizes[i], BATCH)))
    per_seed = "  ".join(f"{e:6.2%}" for e in errors[i])
    print(
        f"{fraction:>8.0%} {sizes[i]:>7} {epochs:>6}   {per_seed}   "
        f"{errors[i].mean():.2%} ± {errors[i].std(ddof=1):.2%}"
    )
low, high = errors[0], errors[-1]
separated = high.max() < low.min()
print(
    f"with {sizes[-1]} images instead of {sizes[0]} the mean test error is "
    f"{'lower' if high.mean() < low.mean() else 'higher'} ({high.mean():.2%} vs {low.mean():.2%}); "
    + (
        f"every seed of the full split beats every seed of the {FRACTIONS[0]:.0%} subset"
        if separated
        else "the seeds' ranges overlap, so the difference is within the spread"
    )
)
train_mean, test_mean = train_errors.mean(axis=1), errors.mean(axis=1)
gaps = test_mean - train_mean
print(
    f"last epoch's training error (dropout and crops on), mean of the seeds: "
    f"{train_mean[0]:.2%} with {sizes[0]} images, {train_mean[-1]:.2%} with {sizes[-1]}; "
    f"test minus training error: {gaps[0]:+.2%} and {gaps[-1]:+.2%}, "
    f"{'larger' if gaps[0] > gaps[-1] else 'not larger'} with fewer images"
)
one_image = 1 / len(test_set)
print(f"(one of the {len(test_set)} test images is {one_image:.2%} of the test error)")
save_figure(plot_learning_curve(sizes, errors, SEEDS, STEPS), "00_error_vs_data")

# %% [markdown]
# The printed lines and `figures/00_error_vs_data.png` say which way the error goes with the
# number of distinct images at the same number of steps, and whether the seeds' spread
# separates the smallest subset from the full split. Two cautions when reading them. At a fixed
# number of steps the larger sets get fewer epochs (the `epochs` column), so the full split is
# the least trained of all: where its error is not below the next size's, that is why (the
# exercises give it more steps). And the training error is measured during the epoch with
# dropout and random crops on, so the printed gap compares the test error with that, not with
# the error on the unaltered training images. More data is what the paper reached for first:
# real (ImageNet) and made up (augmentation, lesson 06).

# %% [markdown]
# ## 2. GPUs: the arithmetic of one training
#
# One training of the paper's net: about 90 epochs over 1.2 million images [P §5]. Each image
# costs a forward pass of `summarize(build_alexnet("paper")).total_macs` multiply-accumulates
# (counted from the layer objects, 227×227 input, the two-GPU grouped net; lesson 01), a
# training step about 3× the forward pass (the backward pass computes two products for each
# one of the forward: gradients for the inputs and for the weights), and FLOPs = 2 × MACs.

# %%
EPOCHS, IMAGES = 90, 1.2e6  # [P §5]
paper_macs = summarize(build_alexnet("paper")).total_macs
ungrouped_macs = summarize(build_alexnet("ungrouped")).total_macs
train_flop = EPOCHS * IMAGES * 3 * 2 * paper_macs
print(
    f"forward pass of the paper's net: {paper_macs / 1e9:.3f} GMACs per image "
    f"(ungrouped: {ungrouped_macs / 1e9:.3f}; the groups halve conv2, conv4 and conv5)"
)
print(
    f"one training: {EPOCHS} x {IMAGES:.1e} images x 3 x 2 x {paper_macs / 1e9:.3f} G "
    f"= {train_flop:.2e} FLOPs"
)

# %% [markdown]
# How fast is this CPU? A float32 matrix product of the shape of AlexNet's conv3 as im2col
# computes it (384 filters × 2304 = 256·3·3 inputs, times 13·13 positions of 32 images), timed
# here; and the fast engine's whole training step of the ungrouped net at batch 32, as
# measured in `docs/performance.md` (median 1,660 ms on the 2-core development machine,
# `bench --processes 2`, 2026-12-02). A machine shared with other jobs measures less than it
# can do: the best of several calls is taken, and the line says how many threads it used.

# %%
rng = np.random.default_rng(0)
columns = 13 * 13 * (1 if QUICK else 32)
w = rng.standard_normal((384, 2304), dtype=np.float32)
cols = rng.standard_normal((2304, columns), dtype=np.float32)
best_s = min(timed_calls(lambda: w @ cols, repeats=3 if QUICK else 10))
matmul_flops = 2 * 384 * 2304 * columns / best_s
STEP_MS_BATCH32 = 1660  # docs/performance.md, `bench --processes 2`: fast engine, training step
engine_flops = 32 * 3 * 2 * ungrouped_macs / (STEP_MS_BATCH32 / 1e3)
print(
    f"this CPU, float32 matmul (384 x 2304) @ (2304 x {columns}), {blas_threads()} BLAS "
    f"thread(s): {matmul_flops / 1e9:.0f} GFLOP/s (best of the calls)"
)
print(f"fast engine, ungrouped training step at batch 32: {engine_flops / 1e9:.0f} GFLOP/s")

# %% [markdown]
# The GPUs: a GTX 580's float32 peak is 1.58 TFLOP/s (512 cores × 1.544 GHz × 2 FLOPs per
# fused multiply-add, NVIDIA's specification [NV]), and the paper used two. An H200's float32
# peak is 67 TFLOP/s (NVIDIA's datasheet [NV]); cuBLAS reached about 50 TFLOP/s on one
# ([here], `docs/facts.md`). Peak rates are what the chip can do at best; real training
# reaches a fraction of it, which the paper's 5–6 days let us estimate.

# %%
DAY = 86400.0
machines = {  # FLOP/s
    "2 x GTX 580, peak": 2 * 1.581e12,
    "this CPU, float32 matmul": matmul_flops,
    "this CPU, fast engine's step": engine_flops,
    "1 x H200, float32 peak": 67e12,
}
days = {name: train_flop / rate / DAY for name, rate in machines.items()}
print(f"{'machine':<30}{'TFLOP/s':>9}   one AlexNet training")
for name, rate in machines.items():
    print(f"{name:<30}{rate / 1e12:>9.3f}   {format_duration(days[name])}")
gtx_peak, h200 = machines["2 x GTX 580, peak"], machines["1 x H200, float32 peak"]
gtx = days["2 x GTX 580, peak"]
print(
    f"the paper's 5-6 days on two GTX 580s means it ran at {gtx / 6:.0%}-{gtx / 5:.0%} of "
    f"their peak; their peak is {gtx_peak / matmul_flops:.0f}x this CPU's matmul rate and "
    f"{gtx_peak / engine_flops:.0f}x its engine's training step; an H200's float32 peak is "
    f"{h200 / gtx_peak:.0f}x theirs"
)
save_figure(plot_training_days(list(days), list(days.values()), (5, 6)), "00_training_days")

# %% [markdown]
# Read the table and `figures/00_training_days.png` as orders of magnitude: the ratios
# printed above say how many times faster the two GPUs of 2012 were than this 2-core CPU,
# which is why every lesson of this course trains a small net on small images, and how far
# one GPU of today is beyond them (in float32 alone; lower precisions are faster still).

# %% [markdown]
# ## 3. The algorithm: what each trick is claimed to do, and where it is measured
#
# The table below collects the paper's claims for each trick, and what the lesson of this
# course that measures it found at small scale (quoted from that lesson's run that made its
# committed figures; run the lesson to see them again, with seeds and spread).

# %%
CLAIMS = [  # (trick [P §], the paper's claim, what the lesson here measured)
    (
        "ReLU, not tanh [§3.1]",
        "4-layer CNN, CIFAR-10: 25% training error 6x sooner",
        "lesson 03: not at each one's best rate (tanh/ReLU 0.7-0.8x, 3 seeds); ReLU is"
        " faster at a shared rate; sigmoid's gradient vanishes (conv1/fc8 6e-5), ReLU's not",
    ),
    (
        "dropout 0.5, fc6-7 [§4.2]",
        "stops 'substantial overfitting'; ~2x iterations",
        "lesson 04: test error 4.83% vs 5.39% without (ranges overlap); 3.7-7.4x the"
        " epochs to a training-loss target; 100 sampled sub-networks agree with the scaled net",
    ),
    (
        "LRN [§3.3]",
        "top-1 / top-5 error -1.4% / -1.2%; CIFAR-10 13% -> 11%",
        "lesson 05: the competition shown (a weak neighbour of a strong channel keeps 30% of"
        " what a far one keeps); not trained with and without (its exercise 1)",
    ),
    (
        "overlapping pool 3/2 [§3.4]",
        "top-1 / top-5 error -0.4% / -0.3% vs 2/2",
        "lesson 05: test error 4.46% vs 4.55%, within the seeds' spread: not reproduced",
    ),
    (
        "crops + flips [§4.1]",
        "2048x the training set; without: 'substantial overfitting'",
        "lesson 06: 2,178 distinct inputs per image; not trained without (its exercise 1)",
    ),
    (
        "PCA colour [§4.1]",
        "top-1 error over 1% lower",
        "lesson 06: the shifts follow the RGB covariance (within 5%); not trained without",
    ),
]
print(f"{'trick':<29}the paper claims / measured here")
for trick, claim, measured in CLAIMS:
    print(f"{trick:<29}{claim}\n{'':<29}{measured}")

# %% [markdown]
# Each gain is a percent or two of ImageNet error, or a factor in training speed; none of them
# alone made the gap of 11 points to the runner-up. Together with a larger net than anyone had
# trained (which the data and the GPUs made possible) they did.
#
# ## Exercises
#
# 1. Extend the learning curve to 5% of the split, and give the full split 40 epochs (the
#    default recipe). Does the curve flatten? How many images would a 60-million-parameter net
#    need by the same trend?
# 2. Repeat section 1 with the same number of *epochs* for every size instead of the same
#    number of steps. Which design answers "does more data help?" and which mixes in "does
#    more compute help?"
# 3. Redo the arithmetic of section 2 for the `ungrouped` net and for torchvision's net
#    (`build_alexnet("torchvision")`). How much did the two-GPU split save in FLOPs?
# 4. Measure the matmul of conv1's shape (96 × 363 times 55·55 positions) and of fc6's
#    (4096 × 9216 times a batch of 128). Which reaches this CPU's peak, and why not the other?
# 5. The paper's 5–6 days implies a fraction of the GTX 580s' peak. Which parts of a training
#    step are not matrix products (lesson 01's table), and why do they run far below peak?
