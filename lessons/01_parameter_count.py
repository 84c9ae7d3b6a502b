# %% [markdown]
# # Lesson 01: counting AlexNet, layer by layer
#
# The abstract of Krizhevsky, Sutskever and Hinton (NIPS 2012) says AlexNet "has 60 million
# parameters and 650,000 neurons". This lesson rebuilds that claim from the layer objects
# and answers four questions on the way:
#
# 1. Where are the parameters, and where is the arithmetic? (Not in the same place.)
# 2. Why does a weight in a conv layer cost thousands of multiply-accumulates per image, and
#    a weight in a fully connected (FC) layer exactly one?
# 3. The paper says the input is 224x224. Why does every implementation use something else?
# 4. What did the paper's two-GPU split (`groups=2`) save?
#
# Every number printed here is computed from the layers by `minialexnet.summarize`, except
# the paper's own figures, which are quoted and marked as quotes. Conventions (as in
# torchvision's metadata): parameters = weights + biases; MACs = the weight
# multiply-accumulates of one image's forward pass (bias adds, ReLU, LRN and pooling are not
# counted); FLOPs = 2 x MACs.

# %%
import math

from minialexnet import Sequential, build_alexnet, summarize
from minialexnet.layers import Conv2d
from minialexnet.plots import quick_mode, save_figure
from minialexnet.plots.accounting import macs_per_weight, plot_params_vs_macs, plot_variant_shares

# Everything here is bookkeeping that takes seconds, so quick mode (the test suite's smoke
# run) only shortens the printout: one full table instead of four.
QUICK = quick_mode()

# %% [markdown]
# ## 1. The per-layer table of every variant
#
# `build_alexnet(variant)` builds:
# * **ungrouped**: 96/256/384/384/256 kernels, 227x227 input, no two-GPU split
#   (the often-quoted "62.3M parameters" AlexNet);
# * **paper**: the same with `groups=2` in conv2, conv4 and conv5, as the paper's two GPUs;
# * **torchvision**: the "one weird trick" net (64/192/384/256/256, 224 input, no LRN);
# * **mini**: the same 5-conv + 3-FC shape narrowed for 32x32 images, to train on a CPU.

# %%
VARIANT_NAMES = ("ungrouped", "paper", "torchvision", "mini")
summaries = {}
for variant in VARIANT_NAMES:
    model = build_alexnet(variant)
    summaries[variant] = summarize(model)
    if variant == "ungrouped":
        ungrouped = model  # kept: section 2 reads its weight shapes, section 3 re-wires it
    else:
        del model  # 60M float32 parameters are ~240 MiB: no need to keep three such nets
    if not QUICK or variant == "ungrouped":
        print(summaries[variant].table(), end="\n\n")

# %% [markdown]
# A check against an outside source: torchvision's model metadata lists its AlexNet at
# 0.714 GMACs ("_ops"), counted with the same convention.

# %%
print(f"torchvision variant here: {summaries['torchvision'].total_macs / 1e9:.3f} GMACs")

# %% [markdown]
# ## 2. Parameters live in the FC layers, compute lives in the conv layers
#
# Add the table's columns by layer type:

# %%
s = summaries["ungrouped"]
conv_params = sum(r.params for r in s.rows if r.kind == "Conv2d")
fc_params = sum(r.params for r in s.rows if r.kind == "Linear")
conv_macs = sum(r.macs for r in s.rows if r.kind == "Conv2d")
fc_macs = sum(r.macs for r in s.rows if r.kind == "Linear")
print(f"parameters: conv {conv_params:>13,} ({conv_params / s.total_params:6.2%})")
print(f"            FC   {fc_params:>13,} ({fc_params / s.total_params:6.2%})")
print(f"MACs:       conv {conv_macs:>13,} ({conv_macs / s.total_macs:6.2%})")
print(f"            FC   {fc_macs:>13,} ({fc_macs / s.total_macs:6.2%})")

# %% [markdown]
# The reason is **weight reuse**. A conv filter is slid over the whole input: the same weight
# multiplies a different input pixel at every output position, so per image
#
#     MACs / weight = OH x OW   (the number of output positions)
#
# An FC weight connects one input unit to one output unit: it is used once per image,
#
#     MACs / weight = 1.
#
# The table below divides each layer's MACs by its number of weights (biases excluded:
# `macs_per_weight`, the same numbers as the figure's third panel) and compares with the
# output positions read from the output shape.

# %%
per_weight = macs_per_weight(s, ungrouped)
print(f"{'layer':<7}{'weights':>13}{'MACs':>16}{'MACs/weight':>13}{'OH x OW':>9}")
for r in s.rows:
    if r.params == 0:
        continue
    weights = ungrouped.layers[r.name].params["W"].size
    positions = r.output_shape[1] * r.output_shape[2] if r.kind == "Conv2d" else 1
    assert per_weight[r.name] == positions  # the claim above, checked for every layer
    print(f"{r.name:<7}{weights:>13,}{r.macs:>16,}{per_weight[r.name]:>13,.0f}{positions:>9,}")

fc6 = ungrouped.layers["fc6"].params["W"]
print(
    f"\nfc6 alone: {fc6.size:,} weights = {fc6.nbytes / 2**20:,.0f} MiB of float32, "
    f"{fc6.size / s.total_params:.1%} of the net, each used once per image."
)

# %% [markdown]
# Consequences you will meet again:
# * **Memory is FC, time is conv.** Storing, updating and regularising the weights is an FC
#   problem (the paper's main weapon against overfitting, dropout, sits in fc6 and fc7,
#   where the parameters are); the forward and backward time is a conv problem.
# * **The FC layers are memory-bound at small batch.** At batch N each FC weight is read
#   once and used N times; each conv weight is used N x OH x OW times. A matrix multiply
#   that does only a few multiply-adds per weight it loads waits on memory, not on
#   arithmetic (see `python -m minialexnet bench`).
# * **The FC share is not a law of nature.** fc6's size is (pool5 map) x (hidden width). The
#   `mini` variant ends on a much smaller map, with narrower FC layers:

# %%
m = summaries["mini"]
width = {
    v: next(r for r in summaries[v].rows if r.name == "flatten").output_shape[0] for v in summaries
}
print(
    f"mini: flatten gives {width['mini']:,} features (ungrouped: {width['ungrouped']:,}); "
    f"conv layers hold {m.conv_param_share:.1%} of its parameters "
    f"and do {m.conv_mac_share:.1%} of its MACs."
)

# %%
save_figure(plot_params_vs_macs(s, per_weight), "01_params_vs_macs")

# %% [markdown]
# ## 3. 224 or 227? The arithmetic of conv1
#
# A convolution with kernel K, stride S and padding P turns an input of size H into
#
#     OH = (H + 2P - K) / S + 1
#
# outputs, which must be a whole number for the windows to tile the input exactly. The paper
# says conv1 (K = 11, S = 4, no padding) takes 224x224 images and gives 55x55 maps; Fig. 2's
# caption agrees ("the network's input is 150,528-dimensional"). It does not add up:

# %%
conv1 = ungrouped.layers["conv1"]
(K, _), (S, _) = conv1.kernel_size, conv1.stride
print(f"conv1: kernel {K}, stride {S}; Fig. 2's input 150,528 = 224*224*3 = {224 * 224 * 3:,}")
for who, H, P in (("the paper", 224, 0), ("Caffe", 227, 0), ("torchvision", 224, 2)):
    exact = (H + 2 * P - K) / S + 1
    OH = Conv2d(3, 1, K, S, P).output_shape((3, H, H))[1]  # the layer floors
    last = (OH - 1) * S + K - 1  # the last row (of the padded input) any window reads
    unused = H + 2 * P - 1 - last
    where = "" if unused == 0 else " (padding)" if unused <= P else " (image pixels: lost)"
    print(
        f"{who:<12} H={H} P={P}: ({H} + 2*{P} - {K}) / {S} + 1 = {exact:g}"
        f" -> {OH} outputs; rows never read: {unused}{where}"
    )
OH_up = math.ceil((224 - K) / S) + 1
overhang = (OH_up - 1) * S + K - 224
print(
    f"cuda-convnet H=224: ceil((224 - {K}) / {S}) + 1 = {OH_up} outputs; "
    f"the last window hangs {overhang} pixels past the edge (read as zeros)"
)

# %% [markdown]
# So every implementation had to pick a fix:
# * **Caffe** feeds **227x227** with no padding: (227 - 11)/4 + 1 = 55 exactly. This package's
#   `ungrouped` and `paper` variants do the same.
# * **torchvision** feeds **224x224** with **padding 2**: (224 + 4 - 11)/4 = 217/4 = 54.25
#   floors to 54, plus 1 gives 55 outputs; the row the floor drops is padding, so no image
#   pixel is lost.
# * **cuda-convnet** (the paper's own code) rounds the output count **up**: 55 windows, the last
#   one hanging over the image's edge.
#
# Feed 224 without a fix and the error does not stay in conv1: every later size shrinks, and
# pool5 no longer gives the 6x6x256 = 9216 features fc6 was built for. Re-wire the same layer
# objects for a 224 input and let `Sequential` check the shapes:

# %%
layers = list(ungrouped.layers.items())
cut = [name for name, _ in layers].index("flatten") + 1
features_224 = Sequential(layers[:cut], (3, 224, 224), name="ungrouped@224")
for name in ("conv1", "pool1", "pool2", "pool5", "flatten"):
    print(
        f"  {name:<8} 224 input: {features_224.shapes[name]!s:<15} "
        f"227 input: {ungrouped.shapes[name]}"
    )
try:
    Sequential(layers, (3, 224, 224), name="ungrouped@224")
except ValueError as err:
    print(f"\nthe whole net at 224 is refused when it is built:\n  ValueError: {err}")

# %% [markdown]
# ## 4. The two-GPU split: what `groups=2` saves
#
# The paper trained on two GTX 580s with 3 GB each, so each GPU held half the kernels of every
# layer. In conv2, conv4 and conv5 a kernel sees only the maps on its own GPU; conv3 and the
# FC layers connect across both (§3.2). In code this is a grouped convolution: with
# `groups=G`, a filter sees `in_channels / G` input channels, so its weights and MACs are
# divided by G. conv2, for example:

# %%
for groups in (1, 2):
    W = Conv2d(96, 256, 5, 1, 2, groups=groups).params["W"]
    print(f"conv2 groups={groups}: W shape {W.shape} -> {W[0].size:,} weights per filter")

u, p = summaries["ungrouped"], summaries["paper"]
print(f"\n{'layer':<7}{'params ungrouped':>18}{'paper':>12}{'MACs ungrouped':>17}{'paper':>14}")
for ru, rp in zip(u.rows, p.rows, strict=True):
    if (ru.params, ru.macs) != (rp.params, rp.macs):
        print(f"{ru.name:<7}{ru.params:>18,}{rp.params:>12,}{ru.macs:>17,}{rp.macs:>14,}")
saved_p, saved_m = u.total_params - p.total_params, u.total_macs - p.total_macs
print(
    f"total  {u.total_params:>18,}{p.total_params:>12,}{u.total_macs:>17,}{p.total_macs:>14,}"
    f"\nsaved: {saved_p:,} parameters ({saved_p / u.total_params:.1%}) and "
    f"{saved_m:,} MACs ({saved_m / u.total_macs:.1%}) per image"
)

# %% [markdown]
# The saving in parameters is small (conv weights were never where the parameters were), but
# a third of the compute goes. The paper does not present it as a saving, though: the split
# was forced by memory, and the authors report that the two-GPU net beat a one-GPU net with
# half as many kernels per layer by 1.7% top-1 (§3.2). Grouping came back later as a design
# tool in its own right (ResNeXt, and depthwise convolutions where G = channels).

# %%
save_figure(plot_variant_shares([summaries[v] for v in VARIANT_NAMES]), "01_variants")

# %% [markdown]
# ## 5. "60 million parameters and 650,000 neurons"
#
# Parameters: the `paper` variant, the one the paper trained, has the count below: that is
# the abstract's "60 million". Neurons: count the outputs of every conv and FC layer (ReLU,
# LRN and pooling outputs are the same units transformed, not new neurons). Fig. 2's caption
# lists them too; its numbers are quoted below (they are the paper's, not computed).

# %%
FIG2_NEURONS = (253_440, 186_624, 64_896, 64_896, 43_264, 4096, 4096, 1000)  # quoted [P Fig. 2]
print(f"paper variant: {p.total_params:,} parameters ({p.total_params / 1e6:.1f} million)\n")
neuron_rows = [r for r in p.rows if r.kind in ("Conv2d", "Linear")]
print(f"{'layer':<7}{'output':>14}{'neurons':>10}{'Fig. 2':>10}")
for r, quoted in zip(neuron_rows, FIG2_NEURONS, strict=True):
    n = math.prod(r.output_shape)
    shape = "x".join(map(str, r.output_shape))
    flag = "" if n == quoted else "  <- differs"
    print(f"{r.name:<7}{shape:>14}{n:>10,}{quoted:>10,}{flag}")
computed = sum(math.prod(r.output_shape) for r in neuron_rows)
print(f"{'total':<21}{computed:>10,}{sum(FIG2_NEURONS):>10,}")
ABSTRACT_NEURONS = 650_000  # quoted [P abstract]
print(
    f"the abstract's {ABSTRACT_NEURONS:,}: computed total {computed / ABSTRACT_NEURONS - 1:+.1%}, "
    f"Fig. 2's total {sum(FIG2_NEURONS) / ABSTRACT_NEURONS - 1:+.1%}"
)

# %% [markdown]
# Every layer matches except conv1, where 55 x 55 x 96 disagrees with the caption's
# 253,440: a known erratum in Fig. 2. The computed total is within a few percent of the
# abstract's round "650,000 neurons"; Fig. 2's own numbers do not add up to it any better.
#
# ## Exercises
#
# 1. **Global average pooling.** Later networks (Network in Network, GoogLeNet) dropped the
#    big FC layers: average each of pool5's 256 maps to one number, then one `Linear(256,
#    1000)`. How many parameters would `ungrouped` have then, and what share would be conv?
#    Build it with `Sequential` from the layers of `build_alexnet("ungrouped")` and a new
#    `Linear`, and check your answer with `summarize`.
# 2. **Batch size and reuse.** At batch N, each FC weight does N MACs per forward pass and
#    each conv weight N x OH x OW. At what batch size does an fc6 weight do as much work as a
#    conv5 weight does for a single image? What does that suggest about the batch size at
#    which the FC layers stop being memory-bound?
# 3. **Other input sizes.** Which input sizes H between 200 and 260 does the `ungrouped` net
#    accept (pool5 must come out 6x6, so that fc6 gets its 9216 features)? Loop over H,
#    re-wire a `Sequential` as in section 3 and catch the ValueError. Then find the sizes for
#    which every layer's window tiles its input exactly (no floor anywhere). Why do the two
#    answers differ so much, and what does an implementation that accepts any of the first
#    set silently do with the extra pixels?
