# %% [markdown]
# # Lesson 06: the paper's data augmentation, on a real photograph
#
# AlexNet has 60 million parameters and ImageNet 1.2 million training images: "without data
# augmentation, our network suffers from substantial overfitting" [P §4.1]. The paper used two
# label-preserving transformations, both computed on the fly on the CPU while the GPUs trained
# on the previous batch — so they cost nothing:
#
# 1. **random crops and mirror images**: train on random 224×224 patches of the 256×256 images
#    and their horizontal reflections; test on ten fixed patches and average;
# 2. **PCA colour augmentation**: shift every image's colours along the principal components of
#    the training set's RGB values, by a fresh random amount every time it is seen.
#
# This lesson applies both to a photograph shipped inside scikit-learn (no download), with the
# functions that `python -m minialexnet train` uses (`minialexnet.data.augment`).

# %%
import numpy as np
from PIL import Image
from sklearn.datasets import load_sample_image

from minialexnet.data.augment import (
    crop_at,
    crop_offsets,
    flip_some,
    pca_color_shifts,
    rgb_pca,
    ten_views,
)
from minialexnet.data.datasets import resize_center_crop
from minialexnet.plots import image_grid, quick_mode, save_figure
from minialexnet.plots.augment import plot_random_crops, plot_rgb_pca

QUICK = quick_mode()  # everything here takes seconds; quick mode only draws fewer samples
rng = np.random.default_rng(2012)

# %% [markdown]
# ## 1. The image, prepared as the paper prepared ImageNet
#
# "Given a rectangular image, we first rescaled the image such that the shorter side was of
# length 256, and then cropped out the central 256×256 patch" [P §2].

# %%
photos = {name: load_sample_image(f"{name}.jpg") for name in ("china", "flower")}
prepared = {name: resize_center_crop(Image.fromarray(p), 256) for name, p in photos.items()}
for name, p in photos.items():
    print(f"{name}.jpg: {p.shape[1]}×{p.shape[0]} pixels -> {prepared[name].shape} (C, H, W)")
image = prepared["china"]

# %% [markdown]
# ## 2. Random 224×224 crops and their mirror images
#
# A crop's top-left corner can sit at any of (256 − 224 + 1)² = 1089 positions, and each crop
# can be mirrored: 2178 different inputs per image. (The paper says "a factor of 2048" —
# 32² × 2, counting 32 offsets per axis.) Neighbouring crops overlap almost entirely, so
# these are far from independent samples, but they teach the network that an object moved by
# a few pixels or seen in a mirror is the same object.

# %%
n = 4 if QUICK else 12
offsets = crop_offsets(n, 256, 224, rng)
flips = rng.random(n) < 0.5
crops = flip_some(crop_at(np.repeat(image[None], n, axis=0), offsets, 224), flips)
save_figure(plot_random_crops(image, offsets, flips, crops), "06_random_crops")
print(f"distinct training inputs per image: {(256 - 224 + 1) ** 2 * 2}")

# %% [markdown]
# At test time the paper does not crop at random: it "extract[s] five 224×224 patches (the four
# corner patches and the center patch) as well as their horizontal reflections (hence ten
# patches in all), and averag[es] the predictions made by the network's softmax layer on the
# ten patches". `python -m minialexnet evaluate --ten-view` does this.

# %%
views = ten_views(image[None], 224)[:, 0]
names = ["top-left", "top-right", "bottom-left", "bottom-right", "centre"]
save_figure(
    image_grid(
        views,
        names + [f"{v} mirrored" for v in names],
        ncols=5,
        title="The ten test views",
        row_labels=["as cropped", "mirrored"],
    ),
    "06_ten_views",
)

# %% [markdown]
# ## 3. PCA colour augmentation
#
# "We perform PCA on the set of RGB pixel values throughout the ImageNet training set. To each
# training image, we add multiples of the found principal components, with magnitudes
# proportional to the corresponding eigenvalues times a random variable drawn from a Gaussian
# with mean zero and standard deviation 0.1":
#
#     I_xy += [p1 p2 p3] · [α1·λ1, α2·λ2, α3·λ3]ᵀ,    α_i ~ N(0, 0.1²), one draw per image per pass.
#
# Our "training set" is the two sample photos (the paper used every pixel of 1.2 million
# images). `rgb_pca` accumulates the 3×3 covariance over all their pixels, in [0, 1] units.

# %%
both = np.stack(list(prepared.values()))
eigvals, eigvecs = rgb_pca(both)
print("eigenvalues λ (variance along each component):", np.array2string(eigvals, precision=5))
print("eigenvectors p_i (columns; rows are R, G, B):")
print(np.array2string(eigvecs, precision=3, suppress_small=True))
mean_colour = both.reshape(2, 3, -1).mean(axis=(0, 2)) / 255
save_figure(plot_rgb_pca(eigvals, eigvecs, mean_colour), "06_rgb_pca")

# %% [markdown]
# The first component has all three channels with the same sign: it is **brightness**, and it
# carries most of the variance. The other two are colour contrasts (roughly red–blue and
# green–magenta). Natural lighting changes mostly along exactly these directions, which is why
# the paper says the scheme "approximately captures an important property of natural images,
# namely, that object identity is invariant to changes in the intensity and color of the
# illumination". It cut ImageNet top-1 error by over 1%.
#
# How large are the shifts? λ is a *variance*, so α·λ depends on the pixel units (the paper
# does not say which it used). In [0, 1] units:

# %%
shifts = pca_color_shifts(100_000, eigvals, eigvecs, rng, sigma=0.1)
print(f"σ = 0.1: typical shift {np.abs(shifts).mean(axis=0) * 255} (in 0..255 units, per R, G, B)")
expected = 0.01 * eigvecs @ np.diag(eigvals**2) @ eigvecs.T
agrees = np.allclose(np.cov(shifts.T), expected, rtol=0.05, atol=1e-7)
print(f"covariance of 100,000 shifts matches σ² P diag(λ²) Pᵀ within 5%: {agrees}")

# %% [markdown]
# A few grey levels: invisible to the eye, but the network sees exact numbers. To *see* what the
# augmentation does we exaggerate σ threefold and tenfold in the second and third rows (the
# first row is the paper's σ = 0.1). Most of each shift is brightness (p1, the largest λ).

# %%
n = 3 if QUICK else 6
rows, titles = [], []
for sigma in (0.1, 0.3, 1.0):
    draws = rng.normal(0, sigma, size=(n, 3))
    for alpha in draws:
        shift = eigvecs @ (alpha * eigvals)
        rows.append(np.clip(image / 255 + shift[:, None, None], 0, 1))
        titles.append(f"σ={sigma}: α=({alpha[0]:+.2f}, {alpha[1]:+.2f}, {alpha[2]:+.2f})")
save_figure(
    image_grid(
        rows,
        titles,
        ncols=n,
        size=2.2,
        title="PCA colour shifts (rows: σ = 0.1 as in the paper, 0.3, 1)",
        row_labels=["σ = 0.1\n(the paper)", "σ = 0.3\n(3× the paper)", "σ = 1\n(10× the paper)"],
    ),
    "06_pca_color_shifts",
)

# %% [markdown]
# ## What the training loop does with all this
#
# `Preprocessor.train_batch` draws, for every image of every batch, a crop position, a flip and
# three α, from one seeded generator: a run is reproducible, and a resumed run draws exactly
# what the uninterrupted run would have. Flips and colour shifts are off by default for the
# digits dataset: a mirrored 2 is not a 2, and the digits are grey.
#
# ## Exercises
#
# 1. The paper's "2048" and our 2178: which crop positions does each count? Train the `mini` net
#    on digits with `--no-random-crop` and compare the test error with the default.
# 2. Replace λ_i by sqrt(λ_i) (the standard deviation along p_i) in the shift. Which version
#    changes if you switch from [0, 1] to 0..255 pixel units, and by how much?
# 3. Compute the RGB PCA of one photo at a time. How different are the two bases, and what
#    does that say about using the PCA of a training set on images from somewhere else?
