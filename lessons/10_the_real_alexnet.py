# %% [markdown]
# # Lesson 10: the real AlexNet
#
# Every trained network so far was the `mini` net, trained for minutes on 8×8 digits. The
# pictures people remember from the paper — the first-layer kernels of Figure 3 (oriented
# edges, colour blobs), the five guesses on photographs and the "most similar" images in the
# 4096-dimensional feature space of Figure 4 — need a network trained on ImageNet: 90 epochs
# over 1.2 million images, five to six days on two GTX 580s [P §5], years on this course's
# CPUs (lesson 00).
#
# torchvision publishes such weights for its AlexNet, the `torchvision` variant of this
# project (the net of Krizhevsky's "One weird trick" paper: 64, 192, 384, 256, 256 kernels, no
# LRN, no groups; lesson 01): 56.5% top-1 and 79.1% top-5 accuracy on the ILSVRC-2012
# validation set, one centre crop [TV]. minialexnet reads PyTorch's file format in NumPy
# alone, without running any of the code a pickle can carry (`minialexnet/pth.py`), and
# converts the weights into its own checkpoint:
#
#     python data/fetch.py alexnet     # downloads 233 MB, checks its SHA-256, converts it
#     python -m minialexnet convert alexnet-owt-7be5be79.pth data/alexnet-torchvision.npz
#
# (the first writes `data/alexnet-torchvision.npz`; the second converts a file you already
# have). This lesson uses that file when it is there, or the file named by the environment
# variable `MINIALEXNET_ALEXNET_WEIGHTS`. Without it — as on the machines this course is
# built and tested on, which cannot download — it runs every line on a network of the same
# shapes with random (He-normal) weights, and every figure says so in its title. The numbers
# it then prints are what an *untrained* AlexNet gives: the baseline the trained one has to
# beat, and every measurement below is chosen so that it tells the two apart.

# %%
import os
from importlib.resources import files
from pathlib import Path

import numpy as np
from sklearn.datasets import load_sample_images

import minialexnet
from minialexnet.data import read_image
from minialexnet.data.augment import center_crop
from minialexnet.inference import predict_proba
from minialexnet.layers import softmax
from minialexnet.plots import quick_mode, save_figure
from minialexnet.plots.real import (
    colour_fraction,
    frequency_concentration,
    layer_outputs,
    occlusion_corners,
    occlusion_sensitivity,
    plot_kernel_measures,
    plot_kernels,
    plot_neighbours,
    plot_occlusion,
    plot_top5,
    receptive_field,
)
from minialexnet.pretrained import IMAGENET_CLASSES, load_pretrained, random_torchvision

QUICK = quick_mode()
# The clone's data/ folder, where `python data/fetch.py alexnet` writes the weights (found from
# the package, which sits beside it, so that this also works in a notebook)
DATA_DIR = Path(minialexnet.__file__).resolve().parent.parent / "data"
WEIGHTS = Path(os.environ.get("MINIALEXNET_ALEXNET_WEIGHTS", DATA_DIR / "alexnet-torchvision.npz"))

# %%
if WEIGHTS.is_file():
    trained = load_pretrained(WEIGHTS)  # refuses a training run's checkpoint
    WHICH = "torchvision's ImageNet weights"
elif "MINIALEXNET_ALEXNET_WEIGHTS" in os.environ:
    raise FileNotFoundError(f"MINIALEXNET_ALEXNET_WEIGHTS names {WEIGHTS}, which does not exist")
else:
    print(f"no weights at {WEIGHTS}: fetch them with `python data/fetch.py alexnet`")
    print("(or convert your own copy of alexnet-owt-7be5be79.pth with `python -m minialexnet")
    print("convert`); until then this lesson runs on random weights of the same shapes")
    trained = random_torchvision(seed=0)
    WHICH = "random weights (not trained)"
model, pre = trained.model, trained.pre
print(f"{model.name}: {model.num_params():,} parameters, {WHICH}")
print(f"input: {pre.size}×{pre.size} stored images, centre crop {pre.crop}×{pre.crop}")

# %% [markdown]
# ## 1. The 64 conv1 kernels: the paper's Figure 3
#
# Figure 3 shows the 96 kernels of the paper's conv1, 11×11×3 each: oriented edges at many
# orientations and frequencies, and colour blobs. "The top 48 kernels were learned on GPU 1
# while the bottom 48 kernels were learned on GPU 2", and the halves differ: "The kernels on
# GPU 1 are largely color-agnostic, while the kernels on GPU 2 are largely color-specific.
# This kind of specialization occurs during every run and is independent of any particular
# random weight initialization (modulo a renumbering of the GPUs)" [P §6.1].
#
# Why halves? In the paper's network conv2 is a grouped convolution (groups = 2, lesson 01):
# the 128 conv2 kernels on each GPU read only the 48 conv1 maps on their own GPU. Each half of
# conv1 serves its own half of the network, so nothing makes the halves learn alike — and
# they did not. torchvision's network has no groups: every one of its 192 conv2 kernels reads
# all 64 conv1 maps, so there are no halves to specialise, and no reason for a kind of kernel
# to sit at any particular place in the layer. Both kinds may still be learned, mixed
# together. To find them without looking, give each kernel two numbers:
#
# - its **colour fraction** ‖W − W̄‖² / ‖W‖², with W̄ the kernel averaged over R, G and B:
#   0 for a kernel that weighs the three channels alike (it sees brightness only:
#   colour-agnostic), 1 for one whose channels sum to zero (it sees colour differences only:
#   a red–green or blue–yellow kernel);
# - its **frequency concentration**: the share of its spatial power spectrum (the 2-D Fourier
#   transform of each channel, its mean removed) in its 4 strongest of 11 × 11 = 121
#   frequencies. An edge, a grating or a smooth blob puts its power into a few frequencies;
#   noise spreads it over all of them.
#
# First what the two numbers give for kernels whose answer we know, then for conv1, and for
# as many kernels of pure noise, the baseline.

# %%
rows, cols = np.mgrid[-5:6, -5:6]
window = np.exp(-(rows**2 + cols**2) / 18)  # a Gaussian window, σ = 3 pixels
edge = window * np.sin(2 * np.pi * 0.2 * (rows * np.cos(1.0) + cols * np.sin(1.0)))
examples = {
    "a grey oriented edge (Gabor)": np.stack([edge, edge, edge]),
    "a red-green blob": np.stack([window, -window, 0 * window]),
    "noise": np.random.default_rng(0).standard_normal((3, 11, 11)),
}
for name, kernel in examples.items():
    c, f = colour_fraction(kernel[None])[0], frequency_concentration(kernel[None])[0]
    print(f"{name:>30}: colour fraction {c:.2f}, frequency concentration {f:.2f}")

# %%
W = model.params()["conv1.W"]
print(f"conv1 weights: {W.shape} (kernels, colour channels, height, width)")
noise = np.random.default_rng(1).standard_normal(W.shape)  # kernels of pure noise
measures = {  # name: (the histogram's axis label, the function)
    "colour fraction": ("colour fraction ‖W − W̄‖² / ‖W‖²", colour_fraction),
    "frequency concentration": (
        "frequency concentration (power in the 4 strongest of 121)",
        frequency_concentration,
    ),
}
values = {name: {"conv1": f(W), "i.i.d. noise": f(noise)} for name, (_, f) in measures.items()}
for name, by_source in values.items():
    ours, base = by_source["conv1"], by_source["i.i.d. noise"]
    low, high = np.quantile(ours, [0.1, 0.9])
    print(f"{name}: median {np.median(ours):.3f} (10%-90%: {low:.3f}-{high:.3f}); ", end="")
    print(f"noise kernels: median {np.median(base):.3f}")
colour = values["colour fraction"]["conv1"]
print(f"nearly grey (colour fraction < 0.1): {(colour < 0.1).sum()} of {len(W)} kernels; ", end="")
print(f"nearly colour only (> 0.9): {(colour > 0.9).sum()}")
title = f"conv1's {len(W)} kernels (11×11×3), most colour-agnostic first\n"
title += f"(caption: kernel number, colour fraction) — {WHICH}"
save_figure(plot_kernels(W, np.argsort(colour, kind="stable"), colour, title), "10_conv1_kernels")
title = f"Two numbers per conv1 kernel that tell learned kernels from noise — {WHICH}"
labelled = {measures[name][0]: by_source for name, by_source in values.items()}
save_figure(plot_kernel_measures(labelled, "i.i.d. noise", title), "10_conv1_measures")

# %% [markdown]
# The known kernels read as they should: the grey edge has colour fraction 0.00, the
# red–green blob 1.00, one kernel of noise 0.70; the edge and the blob put 80% and 92% of
# their power into four frequencies, the noise 9%.
#
# With random weights, conv1 is coloured noise (the mosaic: each kernel stretched on its own
# from its minimum, black, to its maximum, white, over all three channels, as in lesson 08),
# and the numbers say so: median colour fraction 0.658 against 0.671 for the noise kernels
# (noise averages 2/3: two of the three directions of RGB space are colour, one brightness),
# and not one kernel nearly grey; median frequency concentration 0.087 against noise's
# 0.085. He-normal initialisation *is* noise; nothing has been learned yet.
#
# With the ImageNet weights, Figure 3 says what to look for: grey edge detectors pull colour
# fractions towards 0, colour blobs towards 1, both away from noise's 2/3, and the
# frequency concentrations move far above noise's 0.09. The mosaic's first rows then hold the
# edges, its last rows the colour blobs: the paper's two GPUs, found by sorting.
#
# ## 2. Five guesses per photograph: Figure 4, left
#
# Figure 4 (left) shows "eight ILSVRC-2010 test images and the five labels considered most
# probable by our model", with the correct label's probability drawn in red when it is among
# the five [P §6.1]. There are no ImageNet images on this machine, but scikit-learn and
# scikit-image ship seven photographs inside their packages. Each is read exactly as
# `python -m minialexnet predict` reads a file — `read_image` (shorter side resized to 256,
# the centre 256×256 kept), then the checkpoint's own preprocessing (the centre 224×224,
# ÷ 255, minus ImageNet's mean colour, divided by its standard deviation) — and
# `predict_proba` gives the 1,000 probabilities.
#
# A package photo has no ImageNet label, so for each we name by hand the classes we would
# accept, and print the rank of the best of them (1–5: a top-5 hit). The 1,000 classes have a
# `tabby`, an `espresso` and a `moped`, but no dahlia (the nearest is `daisy`) and no
# astronaut: they are mostly animals and things, with a handful of people (`scuba diver`,
# `groom`, `ballplayer`).

# %%
SKLEARN = {Path(f).name: Path(f) for f in load_sample_images().filenames}
SKIMAGE = files("skimage.data")  # photos inside scikit-image's wheel (no download)
PHOTOS = {  # name: (file, the ImageNet classes we would accept for it, chosen by hand)
    "china": (SKLEARN["china.jpg"], ("palace", "monastery", "stupa")),
    "flower": (SKLEARN["flower.jpg"], ("daisy",)),
    "chelsea": (SKIMAGE / "chelsea.png", ("tabby", "tiger cat", "Egyptian cat")),
    "coffee": (SKIMAGE / "coffee.png", ("espresso", "cup", "coffee mug")),
    "rocket": (SKIMAGE / "rocket.jpg", ("missile", "projectile", "space shuttle")),
    "astronaut": (SKIMAGE / "astronaut.png", ()),
    "motorcycle": (SKIMAGE / "motorcycle_left.png", ("moped", "motor scooter")),
}
names = list(PHOTOS)
images = np.stack([read_image(path, pre.size) for path, _ in PHOTOS.values()])
prob = predict_proba(model, pre, images)  # what `python -m minialexnet predict` computes
ranked = []
for name, p, (_, accepted) in zip(names, prob, PHOTOS.values(), strict=True):
    best = np.argsort(-p, kind="stable")[:5]
    ranked.append([(IMAGENET_CLASSES[c], float(p[c])) for c in best])
    print(f"{name}: " + ", ".join(f"{IMAGENET_CLASSES[c]} {p[c]:.2%}" for c in best))
    if accepted:
        index = [IMAGENET_CLASSES.index(c) for c in accepted]
        right = index[int(np.argmax(p[index]))]
        rank = 1 + int((p > p[right]).sum())
        print(f"    best accepted: {IMAGENET_CLASSES[right]}, rank {rank} of 1000, {p[right]:.2%}")
title = f"The five most probable classes (red: one we would accept) — {WHICH}"
expected = [accepted for _, accepted in PHOTOS.values()]
save_figure(plot_top5(center_crop(images, pre.crop), names, ranked, expected, title), "10_top5")

# %% [markdown]
# A random network is not unsure: it is confidently wrong. `Band Aid` comes first for six of
# the seven photos, at 49% to 92%, and the same few classes (Persian cat, Bouvier des
# Flandres, soap dispenser, Greater Swiss Mountain dog) fill most of the other places. The
# accepted classes rank from 7 (moped) to 760 (daisy), about what chance gives (500 on
# average). Why one class for everything? After relu7 all 4096 features are ≥ 0, so the
# feature vectors of different images share a large common part, their mean; fc8 turns the
# mean into the same logits for every image, and the class whose random weight row happens
# to have the largest product with it wins everywhere. Measured:

# %%
h = layer_outputs(model, pre.test_batch(images), ["relu7"])["relu7"].astype(np.float64)
shared = h.mean(axis=0)
along = (h @ shared) ** 2 / (shared @ shared) / (h**2).sum(axis=1)
print(
    f"share of each photo's fc7 features along their mean: {along.min():.0%} to {along.max():.0%}"
)
logits = model.params()["fc8.W"] @ shared + model.params()["fc8.b"]
print(f"the class fc8 gives the mean feature vector: {IMAGENET_CLASSES[int(np.argmax(logits))]}")

# %% [markdown]
# 87% to 96% of every photo's fc7 vector lies along the shared mean, and the mean alone is
# classified as `Band Aid`. Training is what makes the part that differs between images
# large enough to decide. With the ImageNet weights — 79.1% top-5 accuracy on the validation
# images [TV] — the accepted class should be among the five for photos as plain as a cat's
# face, an espresso cup and a rocket on its pad; and we would expect the mean's share to
# fall, since it is the part that differs between images that a trained fc8 reads.
#
# ## 3. Similar images by their fc7 features: Figure 4, right
#
# "Another way to probe the network's visual knowledge is to consider the feature activations
# induced by an image at the last, 4096-dimensional hidden layer. If two images produce
# feature activation vectors with a small Euclidean separation, we can say that the higher
# levels of the neural network consider them to be similar" [P §6.1]. Figure 4 (right) shows
# five test images, each beside the six training images closest to it by this measure, and
# notes that "at the pixel level, the retrieved training images are generally not close in L2
# to the query images": dogs and elephants in other poses.
#
# The distance between images x and y is ‖f(x) − f(y)‖₂, with f(x) the output of relu7 (fc7
# after its ReLU: the 4096 numbers fc8 reads) — or, for comparison, the network's input itself
# (3 × 224 × 224 = 150,528 numbers). With seven photos instead of 1.2 million training images,
# we make it a test of *invariance*: each photo in six versions — as it is, mirrored, zoomed
# in 1.4×, framed further up and left, tinted (a warmer, dimmer light) and grey — 42 images;
# for each original, its 5 nearest among the other 41. A good feature space puts a photo's
# five other versions nearest; pixels should struggle with the mirror image and the moved
# frame, which change almost every pixel.

# %%
S = pre.size
VERSIONS = ("original", "mirrored", "zoomed", "moved", "tinted", "grey")


def versions(path: Path) -> list[np.ndarray]:
    """The photo in each of VERSIONS, (3, S, S) uint8 like `read_image`'s."""
    image = read_image(path, S)
    grey = np.tensordot(np.array([0.299, 0.587, 0.114]), image, axes=1)  # ITU-R BT.601 luma
    made = [
        image,
        image[:, :, ::-1],
        center_crop(read_image(path, round(1.4 * S))[None], S)[0],  # 1.4× closer
        read_image(path, round(1.25 * S))[:, :S, :S],  # the top-left of a 1.25× view
        np.clip(image * np.array([1.1, 0.95, 0.7])[:, None, None], 0, 255),
        np.repeat(grey[None], 3, axis=0),
    ]
    return [np.round(v).astype(np.uint8) for v in made]


gallery = np.stack([v for path, _ in PHOTOS.values() for v in versions(path)])
labels = [f"{name}, {version}" for name in names for version in VERSIONS]
photo_of = np.repeat(np.arange(len(names)), len(VERSIONS))
queries = np.arange(0, len(gallery), len(VERSIONS))  # the originals
k = len(VERSIONS) - 1  # as many neighbours as a photo has other versions
x = pre.test_batch(gallery)
spaces = {
    "fc7 (4096-d, after relu7)": layer_outputs(model, x, ["relu7"])["relu7"],
    f"pixels (the {x[0].size:,}-d input)": x.reshape(len(x), -1),
}
panels, ranks = {}, {}
for space, features in spaces.items():
    f = features.astype(np.float64)
    squared = (f**2).sum(axis=1)
    distance = np.sqrt(np.maximum(squared[:, None] + squared[None, :] - 2 * f @ f.T, 0))
    np.fill_diagonal(distance, np.inf)  # an image is not its own neighbour
    nearest_first = np.argsort(distance[queries], axis=1, kind="stable")
    panels[space] = (nearest_first[:, :k], np.sort(distance[queries], axis=1)[:, :k])
    found = (photo_of[nearest_first[:, :k]] == photo_of[queries][:, None]).sum()
    print(f"{space}: {found} of {len(queries) * k} nearest neighbours are the query's versions")
    rank = 1 + np.argsort(nearest_first, axis=1)  # rank[q, j]: place of image j, 1 = nearest
    ranks[space] = [
        np.mean([rank[i, q + v] for i, q in enumerate(queries)]) for v in range(1, len(VERSIONS))
    ]
chance = k * k / (len(gallery) - 1)
print(f"(picking {k} of the {len(gallery) - 1} others at random finds {chance:.2f} per photo)")
print(f"mean rank of each version among the original's {len(gallery) - 1} others (1 = nearest):")
print(f"{'version':>10}" + "".join(f"{space.split(' (')[0]:>10}" for space in spaces))
for v, version in enumerate(VERSIONS[1:]):
    print(f"{version:>10}" + "".join(f"{ranks[space][v]:>10.1f}" for space in spaces))
title = f"Each photo's {k} nearest images by Euclidean distance (green frame: a version of "
title += f"the same photo) — {WHICH}"
save_figure(
    plot_neighbours(center_crop(gallery, pre.crop), labels, photo_of, queries, panels, title),
    "10_neighbours",
    dpi=100,  # 84 photographs: at the usual 120 dpi the PNG is over 2 MB
)

# %% [markdown]
# The pixels find 26 of the 35 versions, the random network's fc7 33 (picking at random would
# find 0.61 per photo, about 4 of 35). In pixel space the tinted and grey versions come
# nearest (mean ranks 1.1 and 2.0: a change of light moves every pixel a little, in step),
# the mirror image comes far behind (13.4), and (read off the figure's rows, not printed)
# the nearest pixel neighbours of the astronaut and the motorcycle, after their own tinted
# and grey versions, are versions of the cat. fc7 ranks the mirror image 4.3 and the moved
# frame 4.0, against 13.4 and 7.7.
#
# That an *untrained* network already does better is no accident. Random convolutions, each
# followed by a ReLU, and max-pooling are a fixed, blurred and subsampled view of the image;
# pooling over neighbouring positions, and fc6 reading the whole 6×6 map, make that view
# care less about where things are, so a mirror image and a moved frame come closer.
# Random filters with rectification and pooling are known to make surprisingly good
# features (K. Jarrett et al., *What is the best multi-stage architecture for object
# recognition?*, ICCV 2009; A. Saxe et al., *On random weights and unsupervised feature
# learning*, ICML 2011). What random weights cannot give is the paper's point: images of the
# same *kind* — other dogs, other elephants — near each other. Seven photos of seven
# different things cannot test that; with the trained weights, exercise 3 can.
#
# ## 4. What one conv5 unit responds to
#
# A unit of conv5 sees a 163×163 square of the input — computed from the kernel sizes,
# strides and paddings of the layers below it (`receptive_field`) — and its neighbours on the
# 13×13 map are 16 pixels apart. What in that square drives it? Zeiler and Fergus answered it
# by occlusion (*Visualizing and Understanding Convolutional Networks*, ECCV 2014, §4.2):
# cover part of the image with a grey square, and see how far the unit's activation — or the
# probability of the top class — falls. The square here is 0 in the network's input, which is
# ImageNet's mean colour, 40×40 pixels, moved 8 pixels at a time: 576 occluded images, run 31
# at a time beside the unoccluded one (quick mode: a 56-pixel square every 28 pixels). The
# unit is the strongest of all 256 × 13 × 13 for the cat.

# %%
cat = names.index("chelsea")
x0 = pre.test_batch(images[cat][None])
outputs = layer_outputs(model, x0, ["relu5", "fc8"])
activation, p0 = outputs["relu5"][0], softmax(outputs["fc8"])[0]
channel, row, col = (int(i) for i in np.unravel_index(activation.argmax(), activation.shape))
value, top = activation[channel, row, col], int(p0.argmax())
size, step, start = field = receptive_field(model, "relu5")
first_row, first_col = start + row * step, start + col * step
print(f"conv5 output {activation.shape}; strongest unit: channel {channel}, row {row}, col {col}")
print(
    f"  activation {value:.4f}; it sees input rows {first_row} to {first_row + size - 1}, ", end=""
)
print(f"columns {first_col} to {first_col + size - 1} (< 0 or > {pre.crop - 1}: padding)")
print(f"top class: {IMAGENET_CLASSES[top]} ({p0[top]:.2%})")
patch, stride = (56, 28) if QUICK else (40, 8)
corners = occlusion_corners(pre.crop, patch, stride)
readouts = {"relu5": lambda a: a[:, channel, row, col], "fc8": lambda z: softmax(z)[:, top]}
drops = occlusion_sensitivity(model, x0[0], readouts, patch=patch, stride=stride)
unit_drop, prob_drop = drops["relu5"], drops["fc8"]
print(f"{len(corners) ** 2} occluded images ({patch}×{patch} square, every {stride} pixels)")
print(
    f"  the unit: largest drop {unit_drop.max():.4f} ({unit_drop.max() / value:.0%} of it), ",
    end="",
)
print(f"largest rise {-unit_drop.min():.4f}")
print(f"  p({IMAGENET_CLASSES[top]}): largest drop {prob_drop.max():.2%}, ", end="")
print(f"largest rise {-prob_drop.min():.2%}")


def misses(first: int) -> np.ndarray:
    """Which squares, along one axis, lie wholly outside the field that starts at ``first``."""
    return (corners + patch <= first) | (corners >= first + size)


outside = misses(first_row)[:, None] | misses(first_col)[None, :]
if outside.any():
    print(f"  the unit, with the square outside its field ({outside.sum()} positions): ", end="")
    print(f"largest change {np.abs(unit_drop[outside]).max():.2g}")
else:
    print("  every position of the square overlaps the unit's field")
maps = {
    "drop in the unit's activation": unit_drop,
    f"drop in p({IMAGENET_CLASSES[top]})": prob_drop,
}
title = f"conv5 unit (channel {channel}, row {row}, column {col}) and a grey square slid over "
title += f"the photo — {WHICH}"
save_figure(
    plot_occlusion(
        center_crop(images[cat][None], pre.crop)[0],
        (channel, row, col),
        activation[channel],
        field,
        maps,
        corners,
        patch,
        title,
    ),
    "10_occlusion",
)

# %% [markdown]
# The strongest unit is channel 35 at row 4, column 4 (activation 9.15). Its field, rows and
# columns −2 to 160, holds the cat's eye on the left of the picture and the top of its nose,
# and the whole channel is brightest around that eye (second panel; this and where the
# squares lie below are read off the figure). Covering part of the
# field lowers the unit by up to 2.46, 27% of its value (and raises it by up to 0.75 at
# other positions); the squares that lower it most lie on that eye and just below and right
# of it (third panel). The 135 squares wholly outside the field change it by exactly 0: the
# receptive field, seen from outside. (Exactly, because each drop is taken against the image
# run in the same batch: the fast engine chooses its convolution algorithm by batch size,
# and a different algorithm would differ in the last bits.) The random network's top class,
# Band Aid at 55.5%, drops by up to 17.43% and rises by up to 13.30%, in a pattern tied to
# no part of the cat: fc6–fc8 mix all positions, and nothing has taught them which ones matter.
#
# With the ImageNet weights, compare with Zeiler and Fergus's occlusion experiments: there
# the probability of the correct class fell sharply when the object itself was covered and
# hardly at all for the background, and the strongest conv5 maps responded to object parts.
#
# ## What differs from the paper
#
# - **The network** is torchvision's (64, 192, 384, 256, 256 kernels, no LRN, no groups), not
#   the paper's (96, 256, 384, 384, 256, with LRN, on two GPUs): its conv1 has 64 kernels and
#   no halves to specialise. It was trained by torchvision's authors, not the paper's: 56.5%
#   top-1 accuracy on one centre crop [TV], against 40.7% top-1 *error* (59.3% accuracy) for
#   the paper's one CNN on the same validation set [P §6, Table 2].
# - **Figure 4's images** were ILSVRC-2010 test images with their true labels; ours are seven
#   photographs with the classes we chose to accept. Its neighbours were found among 1.2
#   million training images, ours among 42 versions of 7 photos: a test of invariance, not
#   of the semantic similarity (other dogs in other poses) the paper shows.
# - **One view**: the centre crop, as `predict` uses by default; the paper averaged ten views
#   [P §4.1] (`predict --ten-view`).
# - **Occlusion** is Zeiler and Fergus's method (2014), not the paper's.
# - Without the weights file every number above is a random network's: the text says what
#   the trained one should show, and the exercises ask you to check it.
#
# ## Exercises
#
# 1. Fetch the weights (`python data/fetch.py alexnet`) and run the lesson again. Do the
#    colour fractions split towards 0 and 1, away from noise's 2/3? Sort the mosaic by
#    frequency concentration instead: which kernels come last?
# 2. Split the 64 trained kernels at colour fraction 0.5. How many fall on each side (the
#    paper's split was 48 and 48, by GPU)? Do the colour-specific ones have lower spatial
#    frequencies than the grey ones, as Figure 3's bottom half suggests?
# 3. Classify photos of your own: `python -m minialexnet predict data/alexnet-torchvision.npz
#    photo.jpg`, and with `--ten-view`. Add two photos of different dogs to `PHOTOS`: does fc7
#    put them nearer each other than pixels do?
# 4. Find the neighbours by pool5 (9216 numbers), by relu6, and by cosine distance instead of
#    Euclidean. Which layer is the most invariant to mirroring, which to the grey version?
# 5. Occlude with black, or with noise, instead of the mean colour, and with a 20-pixel
#    square. Does the map of the top class change, and why might black mislead?
# 6. Test the explanation of the random network's `Band Aid`: remove from each photo's relu7
#    vector h its part along the mean h̄, h − (h·h̄ / h̄·h̄) h̄, and apply fc8 to what is left.
#    Which classes come first now, and do they still agree between photos?
