# %% [markdown]
# # Lesson 04: dropout
#
# AlexNet's fully connected layers hold 58 of its 61 million parameters, and they overfit.
# The paper's remedy [P §4.2]: during training, set the output of each hidden neuron of fc6 and
# fc7 to zero with probability 0.5, afresh for every image. "The neurons which are 'dropped
# out' in this way do not contribute to the forward pass and do not participate in
# back-propagation. So every time an input is presented, the neural network samples a
# different architecture, but all these architectures share weights." At test time every
# neuron is used, and its output multiplied by 0.5.
#
# This lesson checks the arithmetic behind that test-time rule, compares it with the
# "inverted" form that frameworks use, and measures what dropout does to the gap between
# training and test error on the `mini` net.

# %%
from dataclasses import replace

import numpy as np

from minialexnet.inference import evaluate
from minialexnet.layers import Dropout
from minialexnet.plots import plot_runs, quick_mode, save_figure
from minialexnet.plots.dropout import plot_dropout_expectation
from minialexnet.train import TrainConfig, load_splits, train

QUICK = quick_mode()

# %% [markdown]
# ## 1. Two ways to keep the expected activation
#
# A unit with input x is kept with probability 1 − p. In training its expected output is
# therefore (1 − p)·x, while at test time — with every unit kept — it would be x. The next
# layer was trained on the smaller values, so one side must be rescaled:
#
# * **paper**: training output x·mask; test output (1 − p)·x.
# * **inverted** (Caffe, PyTorch): training output x·mask/(1 − p); test output x.
#
# Either way the test output equals the *expected* training output. Check it by averaging
# many training-mode passes of the `Dropout` layer:

# %%
x = np.array([[1.0, 2.0, 0.5, 3.0, 0.0, 1.5]])
passes = 200 if QUICK else 20_000
means, tests = {}, {}
for mode in ("paper", "inverted"):
    layer = Dropout(0.5, mode=mode, seed=1)
    means[mode] = np.mean([layer.forward(x) for _ in range(passes)], axis=0)[0]
    tests[mode] = layer.eval().forward(x)[0]
    gap = np.abs(means[mode] - tests[mode]).max()
    print(f"{mode:>8}: test output {tests[mode]}, mean of {passes:,} training outputs")
    print(f"          {np.round(means[mode], 3)}  (largest difference {gap:.3f})")
save_figure(plot_dropout_expectation(x[0], means, tests), "04_dropout_expectation")

# %% [markdown]
# The two forms give the same network up to a factor of 2 in the weights that read the dropped
# layer: a net trained in one form can be run in the other by scaling those weights. The
# inverted form is preferred today because inference then needs no dropout code at all.
# The averages match only in expectation: a ReLU, max or any non-linear function of a dropped
# layer does not average the same way, so "multiply by 0.5" is an approximation to averaging
# the predictions of the 2^N thinned networks — the paper calls it "a reasonable
# approximation to taking the geometric mean of the predictive distributions".
#
# ## 2. Overfitting with and without dropout
#
# Train the `mini` net on the digits twice, identical except for dropout in fc6 and fc7
# (p = 0.5 vs none). No crops or flips, so that dropout is the only regulariser besides the
# weight decay. We then measure the error on the training images themselves (in test mode,
# all units on) and on the test images.

# %%
config = TrainConfig(
    random_crop=False, epochs=1 if QUICK else 12, batch_size=32, lr=0.01, patience=2
)
splits = load_splits(config, limit=64 if QUICK else None)
histories, test_error, rows = {}, {}, []
for p in (0.5, 0.0):
    label = f"dropout {p}" if p else "no dropout"
    result = train(replace(config, dropout=p), splits=splits)
    trainer = result.trainer
    train_error = evaluate(trainer.model, trainer.pre, splits[0])["top1_error"]
    histories[label], test_error[label] = result.history, result.test["top1_error"]
    rows.append((label, train_error, test_error[label], result.test["loss"]))
print(f"{'':>12}  {'train error':>11}  {'test error':>10}  {'gap':>6}  {'test loss':>9}")
for label, train_err, test_err, test_loss in rows:
    gap = test_err - train_err
    print(f"{label:>12}  {train_err:11.2%}  {test_err:10.2%}  {gap:6.2%}  {test_loss:9.4f}")
save_figure(
    plot_runs(histories, "The mini net on digits, with and without dropout", test=test_error),
    "04_dropout_training",
)
for label, history in histories.items():
    reached = next((h["epoch"] for h in history if h["train_error"] <= 0.10), None)
    when = f"epoch {reached}" if reached else f"not within {len(history)} epochs"
    print(f"{label:>12}: training error (during the epoch) first at or below 10% in {when}")

# %% [markdown]
# What to look for, in the table and in the figure:
#
# * **the speed**: with dropout the training error (dashed, measured with dropout on) falls
#   much more slowly — the paper: "dropout roughly doubles the number of iterations required
#   to converge". Compare the epochs printed above.
# * **the training loss**: without dropout it collapses towards zero — the net memorises its
#   1,295 training images — while the validation loss levels off: the signature of overfitting.
#   With dropout the training loss stays near the validation loss.
# * **the test error**: on this small, easy problem dropout does not pay. When this lesson was
#   written the net without dropout ended ahead, 3.6% against 4.2% test error (13 against 15
#   of the 359 test digits; one seed, and 12 epochs are few for the slower-learning dropout
#   net: its validation loss is still falling at the end). The paper's gain was measured
#   on a net with 58 million FC parameters and 1.2 million images, where the FC layers overfit
#   far more than the `mini` net's 200 thousand do here; the random crops that the digits
#   runs normally use (switched off in this lesson) also regularise.
#
# ## Exercises
#
# 1. Switch both fc layers to `mode="inverted"` (build the net with `build_alexnet("mini")`
#    and replace each `Dropout` layer's `mode`), train again, and compare the learned fc7
#    weights with the paper-mode run's: by what factor do they differ, and why?
# 2. Monte-Carlo dropout: keep the net in training mode at test time and average the softmax
#    of 20 passes. Is that better or worse than the 0.5 scaling on the digits test set?
# 3. Put dropout (p = 0.2) after conv5 as well. What happens to the training time per epoch and
#    to the gap?
