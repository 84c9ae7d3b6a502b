"""Every AlexNet layer with its forward and backward in NumPy; ``base.py`` holds the contract."""

from .activations import ReLU, Sigmoid, Tanh
from .base import Layer
from .conv import Conv2d
from .dropout import Dropout
from .linear import Flatten, Linear
from .loss import softmax, softmax_cross_entropy
from .lrn import LocalResponseNorm
from .pool import MaxPool2d

__all__ = [
    "Conv2d",
    "Dropout",
    "Flatten",
    "Layer",
    "Linear",
    "LocalResponseNorm",
    "MaxPool2d",
    "ReLU",
    "Sigmoid",
    "Tanh",
    "softmax",
    "softmax_cross_entropy",
]
