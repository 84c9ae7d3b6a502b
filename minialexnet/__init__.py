"""minialexnet: AlexNet (Krizhevsky, Sutskever, Hinton, NIPS 2012) written out layer by layer.

Start with ``minialexnet.layers`` (every layer's forward and backward), ``minialexnet.model``
(the variants), ``minialexnet.accounting`` (parameters and compute) and
``minialexnet.gradcheck`` (finite-difference checks).
"""

from .accounting import summarize
from .gradcheck import check_layer, check_model
from .model import VARIANTS, Sequential, build_alexnet

__all__ = ["VARIANTS", "Sequential", "build_alexnet", "check_layer", "check_model", "summarize"]
__version__ = "0.1.0"
