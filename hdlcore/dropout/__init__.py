"""Chapter 5, dropout analysis: the expected dropout (and DropConnect) loss of a factorization, the
low-rank regularizer it induces, its closed-form optimum and training with real masks.

``masks`` describes each masking scheme once (dropout is the scheme ``"units"``); ``risk`` is the one
estimator of the expected loss (closed form, exact enumeration, Monte Carlo) with dropout's public
functions, ``dropconnect`` the other schemes' public functions.
"""

from . import dropconnect, masks, regularizer, risk, training
from .dropconnect import *  # noqa: F403
from .masks import *  # noqa: F403
from .regularizer import *  # noqa: F403
from .risk import *  # noqa: F403
from .training import *  # noqa: F403

__all__ = [*masks.__all__, *risk.__all__, *dropconnect.__all__, *regularizer.__all__, *training.__all__]
