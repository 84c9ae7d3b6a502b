"""The tour's layer instances (``minialexnet.tour.layer_cases``) as test cases: looked up by
title, built fresh for every test (a test may change a layer's dtype or state), with a
reproducible random input. Shared by the layer-contract and workspace tests."""

from __future__ import annotations

import numpy as np

from minialexnet.layers import Layer
from minialexnet.tour import layer_cases

CASE_IDS = [title for title, _, _ in layer_cases()]


def fresh_case(title: str) -> tuple[Layer, tuple[int, ...]]:
    """A new instance of the case ``title`` and its input shape."""
    ((layer, shape),) = [(lay, shp) for t, lay, shp in layer_cases() if t == title]
    return layer, shape


def make_case(title: str, dtype: type = np.float64) -> tuple[Layer, np.ndarray]:
    """A fresh layer of the case ``title`` in ``dtype`` and a random input for it (the same
    input every time for one title)."""
    layer, shape = fresh_case(title)
    layer.astype(dtype)
    x = np.random.default_rng(CASE_IDS.index(title)).standard_normal(shape).astype(dtype)
    return layer, x
