"""Chapter 5, dropout analysis: the expected dropout (and DropConnect) loss of a factorization, the
low-rank regularizer it induces, its closed-form optimum and training with real masks.
"""

from . import dropconnect, regularizer, risk, training
from .dropconnect import *  # noqa: F403
from .regularizer import *  # noqa: F403
from .risk import *  # noqa: F403
from .training import *  # noqa: F403

__all__ = [*risk.__all__, *dropconnect.__all__, *regularizer.__all__, *training.__all__]
